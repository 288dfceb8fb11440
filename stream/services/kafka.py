"""The local Kafka: one broker, or a cluster of brokers (KRaft, each node broker+controller).

Jars come from Maven Central through the recipe pom (cached per version), the storage
is formatted once per data directory, and each node runs detached with its pid file,
config and logs: one broker under ``<data_dir>/kafka``; a cluster of
``services.kafka_brokers`` nodes (``services up --brokers 3``) under
``<data_dir>/kafka-cluster/node-N``, node N listening on ``kafka_port + 2(N-1)`` (its
controller on ``kafka_controller_port + 2(N-1)``), all formatted with one cluster id.
A cluster replicates its internal topics on up to 3 nodes and requires 2 in-sync
replicas (``min.insync.replicas``), so with ``acks=all`` losing one broker loses nothing
and stops nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stream.config import Settings
from stream.kafka import replication_for
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


def layout(settings: Settings, node: int = 1) -> KafkaLayout:
    """Node ``node`` (from 1) of the configured local Kafka."""
    local = settings.services
    libs = local.cache_dir / "kafka" / local.kafka_version / "libs"
    if local.kafka_brokers == 1:
        return KafkaLayout(libs=libs, home=local.data_dir / "kafka")
    return KafkaLayout(libs=libs, home=local.data_dir / "kafka-cluster" / f"node-{node}")


def nodes(settings: Settings) -> list[int]:
    return list(range(1, settings.services.kafka_brokers + 1))


def ports(settings: Settings, node: int = 1) -> tuple[int, int]:
    """(client port, controller port) of a node.

    >>> from stream.config import load_settings
    >>> ports(load_settings(), 3)
    (9096, 9097)
    """
    local = settings.services
    step = 2 * (node - 1)
    return local.kafka_port + step, local.kafka_controller_port + step


def bootstrap(settings: Settings) -> str:
    """Every node's loopback address: a client starts even while one broker is down."""
    return ",".join(f"127.0.0.1:{ports(settings, n)[0]}" for n in nodes(settings))


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


def _server_properties(settings: Settings, data: Path, node: int = 1) -> str:
    port, controller = ports(settings, node)
    voters = ",".join(f"{n}@127.0.0.1:{ports(settings, n)[1]}" for n in nodes(settings))
    factor, min_insync = replication_for(settings.services.kafka_brokers)
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(settings.kafka.partitions),
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": str(factor),
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": str(min_insync),
        "default.replication.factor": str(factor),
        "min.insync.replicas": str(min_insync),
        # Many short test consumers: no point waiting for more members.
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


def _cluster_id(settings: Settings, paths: KafkaLayout) -> str:
    """A new cluster id, or for a cluster the one all its nodes share (kept beside them)."""
    shared = paths.home.parent / "cluster.id" if settings.services.kafka_brokers > 1 else None
    if shared is not None and shared.is_file():
        return shared.read_text().strip()
    uuid = subprocess.run(
        _java(settings, paths, STORAGE_TOOL, "random-uuid"),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if uuid.returncode != 0:
        raise ServiceError("Kafka StorageTool random-uuid failed", uuid.stderr[-2000:])
    cluster_id = uuid.stdout.strip().splitlines()[-1]
    if shared is not None:
        shared.write_text(cluster_id + "\n")
    return cluster_id


def _format_storage(settings: Settings, paths: KafkaLayout) -> None:
    """Format the KRaft log dir once; a formatted dir keeps its cluster id forever."""
    if (paths.data / "meta.properties").is_file():
        return
    cluster_id = _cluster_id(settings, paths)
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


def running_pid(settings: Settings, node: int = 1) -> int | None:
    """The pid of the broker (node) we started, if it still runs."""
    paths = layout(settings, node)
    return process.running_pid(paths.pid_file, str(paths.config))


def running_pids(settings: Settings) -> dict[int, int | None]:
    return {node: running_pid(settings, node) for node in nodes(settings)}


def start(settings: Settings, node: int | None = None) -> list[int]:
    """Write the configs, format once, and start the nodes (or one) detached; their pids."""
    pids = []
    for n in nodes(settings) if node is None else [node]:
        paths = layout(settings, n)
        for directory in (paths.home, paths.data, paths.log_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
        paths.config.write_text(_server_properties(settings, paths.data, n))
        paths.log4j.write_text(_log4j_properties(paths.log_file))
        _format_storage(settings, paths)
        argv = _java(settings, paths, f"-Dkafka.logs.dir={paths.log_file.parent}", MAIN_CLASS)
        argv.append(str(paths.config))
        pids.append(process.start_detached(argv, paths.pid_file, paths.stdout_file, cwd=paths.home))
    return pids


def stop(settings: Settings, node: int | None = None) -> bool:
    """Stop the nodes (or one) we started, controlled shutdown first; False if none ran.

    Without ``node`` it stops whatever local Kafka runs, one broker or a cluster, whatever
    ``kafka_brokers`` says now: ``services down`` must not leave a cluster behind.
    """
    if node is not None:
        paths = layout(settings, node)
        return process.stop(paths.pid_file, str(paths.config), timeout_s=30.0)
    stopped = False
    single = settings.services.model_copy(update={"kafka_brokers": 1})
    for layouts in (
        [layout(settings.model_copy(update={"services": single}))],
        sorted((settings.services.data_dir / "kafka-cluster").glob("node-*/server.properties")),
    ):
        for item in layouts:
            paths = (
                item
                if isinstance(item, KafkaLayout)
                else KafkaLayout(libs=Path(), home=item.parent)
            )
            stopped |= process.stop(paths.pid_file, str(paths.config), timeout_s=30.0)
    return stopped
