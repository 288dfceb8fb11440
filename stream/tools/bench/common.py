"""What every benchmark suite shares: machine and version facts, isolated topics, JSON.

Owns the result envelope ``{"suite", "machine", "versions", "results", "summary"}``, the
fresh per-run topics / consumer group / InfluxDB bucket a suite measures on (so no run
sees another's data), and the environment handed to the ``vitalstream`` child processes
the end-to-end suite starts.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil

from stream.config import Settings

PACKAGES = ("faust-streaming", "aiokafka", "kafka-python", "onnxruntime", "numpy")


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
