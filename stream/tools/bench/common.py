"""What every benchmark suite shares: machine and version facts, isolated topics, JSON.

Owns the result envelope ``{"suite", "machine", "versions", "results", "summary"}``, the
fresh per-run topics / consumer group / InfluxDB bucket a suite measures on (so no run
sees another's data), and the environment handed to the ``vitalstream`` child processes
the suites start: the worker processes of one consumer group (:func:`start_workers`,
:func:`wait_all_ready`, :func:`stop_process`), as the e2e and throughput suites run them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil

from stream.config import Settings

PACKAGES = ("faust-streaming", "aiokafka", "kafka-python", "onnxruntime", "numpy")
# Faust's worker logs this once the app has started (imports, models, topics, the group).
READY_TEXT = "[^Worker]: Ready"
READY_TIMEOUT_S = 180.0
READY_POLL_S = 0.3
# A stopped worker flushes its sink and commits before it exits; past this it is killed.
STOP_TIMEOUT_S = 30.0


def cpu_model() -> str:
    """The CPU's marketing name (``platform.processor()`` is empty on Linux)."""
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(terse=True),
        # Other jobs share this machine: the load at measurement time qualifies every figure.
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(settings: Settings) -> dict[str, str | None]:
    from stream.services.health import influx_version

    found: dict[str, str | None] = {"python": platform.python_version()}
    found |= {name: _package_version(name) for name in PACKAGES}
    found["kafka"] = settings.services.kafka_version
    try:
        found["influxdb"] = influx_version(settings.influx.url)
    except Exception:  # the suite may run without InfluxDB (model, producer)
        found["influxdb"] = settings.services.influxdb_version
    return found


def envelope(
    suite: str, settings: Settings, results: list[dict[str, Any]], summary: dict[str, Any]
) -> dict[str, Any]:
    return {
        "suite": suite,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "versions": versions(settings),
        "results": results,
        "summary": summary,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes()) if path.is_file() else None


def isolated(settings: Settings, label: str) -> Settings:
    """A copy of ``settings`` with fresh topic names, Faust app id and bucket name."""
    tag = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    topics = {name: f"{tag}.{topic}" for name, topic in settings.topics.model_dump().items()}
    return settings.model_copy(
        update={
            "topics": settings.topics.model_copy(update=topics),
            "influx": settings.influx.model_copy(update={"bucket": tag}),
            "stream": settings.stream.model_copy(update={"app_id": tag}),
        }
    )


def prepare(settings: Settings) -> None:
    """Create the isolated run's topics (with the worker's configs) and its bucket."""
    from stream.kafka import ensure_topics, stream_topics
    from stream.services import influxdb

    ensure_topics(settings, stream_topics(settings))
    influxdb.ensure_bucket(settings, settings.influx.bucket)


def discard(settings: Settings) -> None:
    """Delete what :func:`prepare` and the worker created; a failure only leaves litter."""
    from influxdb_client import InfluxDBClient
    from kafka import KafkaAdminClient

    from stream.kafka import client_options
    from stream.services.health import find_bucket

    with contextlib.suppress(Exception):
        config = client_options(settings.kafka)
        admin = KafkaAdminClient(client_id="vitalstream-bench", **config)
        try:
            prefix = settings.stream.app_id
            names = [t for t in admin.list_topics() if t.startswith(prefix)]
            admin.delete_topics(names)
        finally:
            admin.close()
    with (
        contextlib.suppress(Exception),
        InfluxDBClient(
            url=settings.influx.url, token=settings.influx_token, org=settings.influx.org
        ) as client,
    ):
        bucket = find_bucket(client, settings.influx.bucket, settings.influx.org)
        if bucket is not None:
            client.buckets_api().delete_bucket(bucket)


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a ``vitalstream`` child process that should see ``settings``.

    The children build their own Settings from the environment, so the isolated names
    travel as ``VITALSTREAM_*`` variables on top of this process's environment.
    """
    env = dict(os.environ) | settings.child_env_vars()
    env |= {f"VITALSTREAM_{k.upper()}": v for k, v in extra.items()}
    return env


def cli(*args: str) -> list[str]:
    """Command line of a ``vitalstream`` sub-command in this interpreter."""
    return [sys.executable, "-c", "from stream.cli.main import main; main()", *args]


def with_partitions(settings: Settings, partitions: int | None) -> Settings:
    """``settings`` whose topics get ``partitions`` partitions (unchanged for ``None``); the
    workers inherit it through :func:`child_env` (``VITALSTREAM_KAFKA__PARTITIONS``)."""
    if partitions is None:
        return settings
    kafka = settings.kafka.model_copy(update={"partitions": partitions})
    return settings.model_copy(update={"kafka": kafka})


def worker_name(index: int) -> str:
    """``worker`` for the first worker process, ``worker-2``, ``worker-3``… for the others."""
    return "worker" if index == 0 else f"worker-{index + 1}"


@dataclass
class WorkerProcess:
    """One ``vitalstream worker`` child: its process and the log its output goes to."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def ready(self) -> bool:
        return READY_TEXT in self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


def start_workers(
    env: dict[str, str], workdir: Path, count: int, tag: str = ""
) -> list[WorkerProcess]:
    """Start ``count`` ``vitalstream worker`` processes at once, one consumer group (the
    app id in ``env``), each with its own Faust data dir (``faust-i``) and log
    (``worker{tag}-i.log``) under ``workdir``; named as :func:`worker_name` says."""
    started = []
    for i in range(count):
        log_path = workdir / f"worker{tag}-{i + 1}.log"
        argv = cli("worker", "--workers-dir", str(workdir / f"faust-{i + 1}"))
        with log_path.open("wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(WorkerProcess(worker_name(i), proc, log_path))
    return started


def wait_all_ready(
    workers: Sequence[WorkerProcess],
    on_ready: Callable[[WorkerProcess], None] | None = None,
    timeout_s: float = READY_TIMEOUT_S,
    poll_s: float = READY_POLL_S,
) -> None:
    """Poll every worker's log each ``poll_s`` until all say Ready; ``on_ready(worker)`` is
    called as each does (in the order they do: the moment is its start mark). A worker
    that exits, or is not Ready within ``timeout_s``, is an error with its log's tail."""
    pending = list(workers)
    deadline = time.monotonic() + timeout_s
    while pending:
        for worker in list(pending):
            if worker.ready():
                pending.remove(worker)
                if on_ready is not None:
                    on_ready(worker)
            elif worker.proc.poll() is not None:
                raise RuntimeError(f"{worker.name} exited before Ready:\n{worker.log_tail()}")
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending[0].name} did not become ready:\n{pending[0].log_tail()}")
        time.sleep(poll_s)


def stop_process(proc: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (SIGINT is ignored in background jobs), then SIGKILL after ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_workers(workers: Sequence[WorkerProcess]) -> None:
    """Ask every worker to stop at once, then wait for each (they stop in parallel)."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        stop_process(worker.proc)
