"""The local single-node Kafka broker (KRaft, combined broker+controller on loopback).

Jars come from Maven Central through the recipe pom (cached per version), the storage
is formatted once per data directory, and the broker runs detached with its pid file,
config and logs under ``<data_dir>/kafka``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stream.config import Settings
from stream.services import process
from stream.services.errors import ServiceError

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


@dataclass(frozen=True)
class KafkaLayout:
    """Where one local broker keeps its jars, config, data, pid and logs."""

    libs: Path
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.home / "log4j.properties"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.home / "logs" / "stdout.log"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(
            part
            for part in (
                process.log_tail(self.log_file, lines),
                process.log_tail(self.stdout_file, 10),
            )
            if part
        )


def layout(settings: Settings) -> KafkaLayout:
    local = settings.services
    return KafkaLayout(
        libs=local.cache_dir / "kafka" / local.kafka_version / "libs",
        home=local.data_dir / "kafka",
    )


def ensure_jars(settings: Settings) -> Path:
    """Download the broker's runtime classpath once per version; returns the libs dir."""
    version = settings.services.kafka_version
    if not version.startswith("3."):
        # 4.x drops reload4j for log4j2: the recipe pom and log config would have to change.
        raise ServiceError(f"the Kafka recipe supports 3.x, not {version}")
    libs = layout(settings).libs
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise ServiceError(
            "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    with process.file_lock(libs.parent / ".fetch.lock"):
        if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
            return libs
        staging = Path(tempfile.mkdtemp(dir=libs.parent, prefix=".libs-"))
        pom = resources.files("stream.services") / "recipes" / "kafka" / "pom.xml"
        with resources.as_file(pom) as pom_path:
            result = subprocess.run(
                [
                    "mvn", "-q", "-B", "dependency:copy-dependencies",
                    "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
                    f"-Dkafka.version={version}", "-f", str(pom_path),
                ],
                capture_output=True,
                text=True,
                check=False,
            )  # fmt: skip
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise ServiceError(f"could not fetch the Kafka {version} jars with Maven", tail)
        staging.rename(libs)
    return libs


def _server_properties(settings: Settings, data: Path) -> str:
    local = settings.services
    port, controller = local.kafka_port, local.kafka_controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(settings.kafka.partitions),
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # One broker, many short test consumers: no point waiting for more members.
        "group.initial.rebalance.delay.ms": "0",
        "delete.topic.enable": "true",
        # A laptop broker: keep a day of data and small segments so disk use stays bounded.
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _log4j_properties(log_file: Path) -> str:
    return f"""\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log_file}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
# Per-partition chatter drowns the lines that explain a failed start.
log4j.logger.kafka.log=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.coordinator=WARN
log4j.logger.kafka.coordinator=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.org.apache.kafka.image=WARN
log4j.logger.kafka.cluster=WARN
"""


def _java(settings: Settings, paths: KafkaLayout, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise ServiceError(
            "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"
        )
    return [
        java,
        f"-Xmx{settings.services.kafka_heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{paths.log4j}",
        "-cp",
        f"{paths.libs}/*",
        *args,
    ]


def _format_storage(settings: Settings, paths: KafkaLayout) -> None:
    """Format the KRaft log dir once; a formatted dir keeps its cluster id forever."""
    if (paths.data / "meta.properties").is_file():
        return
    uuid = subprocess.run(
        _java(settings, paths, STORAGE_TOOL, "random-uuid"),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if uuid.returncode != 0:
        raise ServiceError("Kafka StorageTool random-uuid failed", uuid.stderr[-2000:])
    cluster_id = uuid.stdout.strip().splitlines()[-1]
    formatted = subprocess.run(
        _java(settings, paths, STORAGE_TOOL, "format", "--ignore-formatted",
              "-t", cluster_id, "-c", str(paths.config)),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if formatted.returncode != 0:
        raise ServiceError(
            f"formatting Kafka storage in {paths.data} failed",
            (formatted.stdout + formatted.stderr)[-2000:],
        )


def running_pid(settings: Settings) -> int | None:
    """The pid of the broker we started, if it still runs."""
    paths = layout(settings)
    return process.running_pid(paths.pid_file, str(paths.config))


def start(settings: Settings) -> int:
    """Write the config, format once, and start the broker detached; returns its pid."""
    paths = layout(settings)
    for directory in (paths.home, paths.data, paths.log_file.parent):
        directory.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(_server_properties(settings, paths.data))
    paths.log4j.write_text(_log4j_properties(paths.log_file))
    _format_storage(settings, paths)
    argv = _java(settings, paths, f"-Dkafka.logs.dir={paths.log_file.parent}", MAIN_CLASS)
    argv.append(str(paths.config))
    return process.start_detached(argv, paths.pid_file, paths.stdout_file, cwd=paths.home)


def stop(settings: Settings) -> bool:
    """Stop the broker we started (controlled shutdown first); False if none ran."""
    paths = layout(settings)
    return process.stop(paths.pid_file, str(paths.config), timeout_s=30.0)
