"""Both local services together: `up` (idempotent, health-checked), `down`, `status`.

`up` starts Kafka first so it boots while InfluxDB is built or started, reuses anything
already healthy, and returns only once each service passed a real round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from stream.config import Settings
from stream.services import influxdb, kafka, process
from stream.services.errors import ServiceError
from stream.services.health import check_influx, check_kafka, influx_version
from stream.services.local_secrets import ensure_local_secrets

Service = Literal["kafka", "influxdb"]
SERVICES: tuple[Service, ...] = ("kafka", "influxdb")


@dataclass
class ServiceReport:
    """What `up` did with one service and where to find it."""

    name: Service
    address: str
    state: Literal["started", "reused"]
    data: Path
    log: Path
    pid: int | None
    ready_s: float
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def local_settings(settings: Settings) -> Settings:
    """Settings whose clients point at the loopback services `up` runs."""
    local = settings.services
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap": kafka.bootstrap(settings), "security_protocol": "PLAINTEXT"}
            ),
            "influx": settings.influx.model_copy(
                update={"url": f"http://127.0.0.1:{local.influxdb_port}"}
            ),
        }
    )


def _lock(settings: Settings) -> Path:
    return settings.services.data_dir / ".services.lock"


def wait_kafka(settings: Settings, started_by_us: bool, node: int | None = None) -> None:
    """Until every node (or one) listens and the cluster answers a real round trip."""
    timeout = settings.services.start_timeout_s
    waited = kafka.nodes(settings) if node is None else [node]
    for n in waited:
        paths = kafka.layout(settings, n)
        alive = (lambda n=n: kafka.running_pid(settings, n) is not None) if started_by_us else None
        port = kafka.ports(settings, n)[0]
        try:
            process.wait_until(
                lambda port=port: process.port_open("127.0.0.1", port) or None,
                timeout, f"Kafka port {port}", alive,
            )  # fmt: skip
            process.wait_until(lambda: check_kafka(settings), timeout, "Kafka round trip", alive)
        except ServiceError as exc:
            raise ServiceError(f"Kafka did not become healthy: {exc}", paths.tail()) from exc


def _up_kafka(settings: Settings, console: Console) -> Callable[[], ServiceReport]:
    """Start the broker(s) if needed; returns a waiter that blocks until healthy."""
    paths = kafka.layout(settings)
    began = time.monotonic()
    running = kafka.running_pids(settings)
    state: Literal["started", "reused"] = "reused"
    missing = [node for node, pid in running.items() if pid is None]
    if missing:
        busy = [kafka.ports(settings, n)[0] for n in missing
                if process.port_open("127.0.0.1", kafka.ports(settings, n)[0])]  # fmt: skip
        if busy and len(missing) == len(running) == 1:
            # Not ours but listening: reuse it only if it really is a working broker.
            try:
                check_kafka(settings)
            except ServiceError as exc:
                raise ServiceError(
                    f"port {busy[0]} is taken by something that is not a working Kafka "
                    f"broker ({exc})"
                ) from exc
        elif busy:
            raise ServiceError(
                f"port(s) {busy} are taken: another Kafka runs there (a single broker? stop it "
                "with `vitalstream services down` before starting a cluster)"
            )
        else:
            kafka.ensure_jars(settings)
            for node in missing:
                running[node] = kafka.start(settings, node)[0]
            state = "started"
            pids = ", ".join(str(pid) for pid in running.values())
            console.print(f"Starting Kafka {settings.services.kafka_version} (pid {pids})")

    def wait() -> ServiceReport:
        wait_kafka(settings, started_by_us=any(running.values()))
        return ServiceReport(
            "kafka", settings.kafka.bootstrap, state, paths.data, paths.log_file,
            running.get(1), time.monotonic() - began, settings.services.kafka_version,
            {"brokers": brokers(settings)},
        )  # fmt: skip

    return wait


def brokers(settings: Settings) -> list[dict[str, Any]]:
    """Each local node: its id, address, pid (None when not running) and data directory."""
    return [
        {
            "node": node,
            "address": f"127.0.0.1:{kafka.ports(settings, node)[0]}",
            "pid": kafka.running_pid(settings, node),
            "data": str(kafka.layout(settings, node).data),
        }
        for node in kafka.nodes(settings)
    ]


def _up_influx(settings: Settings, console: Console) -> ServiceReport:
    paths = influxdb.layout(settings)
    began = time.monotonic()
    pid = influxdb.running_pid(settings)
    state: Literal["started", "reused"] = "reused"
    url = settings.influx.url
    if pid is None and not process.port_open("127.0.0.1", settings.services.influxdb_port):
        binary = influxdb.ensure_binary(settings, console)
        began = time.monotonic()
        pid = influxdb.start(settings, binary)
        state = "started"
        console.print(f"Starting InfluxDB {settings.services.influxdb_version} (pid {pid})")
    alive = (lambda: influxdb.running_pid(settings) is not None) if pid is not None else None
    timeout = settings.services.start_timeout_s
    try:
        version = process.wait_until(
            lambda: influx_version(url), timeout, "InfluxDB /health", alive
        )
        onboarded = influxdb.onboard(settings)
        # Once /health answers, a failing round trip is a real fault, not a slow start.
        process.wait_until(lambda: check_influx(settings), 15.0, "InfluxDB round trip", alive)
    except ServiceError as exc:
        raise ServiceError(f"InfluxDB did not become healthy: {exc}", paths.tail()) from exc
    return ServiceReport(
        "influxdb", url, state, paths.home, paths.log_file, pid, time.monotonic() - began, version,
        {"onboarded_now": onboarded},
    )  # fmt: skip


def up(
    settings: Settings, console: Console, only: tuple[Service, ...] = SERVICES
) -> list[ServiceReport]:
    """Bring the local services up (reusing healthy ones); raises ServiceError on failure."""
    local = local_settings(settings)
    reports = []
    with process.file_lock(_lock(local)):
        ensure_local_secrets(local)
        wait_kafka = _up_kafka(local, console) if "kafka" in only else None
        if "influxdb" in only:
            reports.append(_up_influx(local, console))
        if wait_kafka is not None:
            reports.insert(0, wait_kafka())
    return reports


def down(settings: Settings, only: tuple[Service, ...] = SERVICES) -> dict[Service, bool]:
    """Stop the services this tool started; True per service that was stopped."""
    local = local_settings(settings)
    stoppers = {"kafka": kafka.stop, "influxdb": influxdb.stop}
    with process.file_lock(_lock(local)):
        return {name: stoppers[name](local) for name in only}


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Real health of the local services, as `services status --json` prints it."""
    local = local_settings(settings)
    result: dict[str, dict[str, Any]] = {
        "kafka": {"ok": False, "bootstrap": local.kafka.bootstrap},
        "influxdb": {"ok": False, "url": local.influx.url, "version": None},
    }
    try:
        health = check_kafka(local, timeout_s=10.0)
        result["kafka"].update(ok=True, round_trip_ms=round(health.round_trip_ms, 1))
    except ServiceError as exc:
        result["kafka"]["error"] = str(exc)
    result["kafka"]["pid"] = kafka.running_pid(local)
    result["kafka"]["brokers"] = brokers(local)
    try:
        result["influxdb"]["version"] = influx_version(local.influx.url)
        influx = check_influx(local)
        result["influxdb"].update(ok=True, round_trip_ms=round(influx.round_trip_ms, 1))
    except ServiceError as exc:
        result["influxdb"]["error"] = str(exc)
    result["influxdb"]["pid"] = influxdb.running_pid(local)
    return result
