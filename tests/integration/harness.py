"""Shared helpers for integration tests that run real worker and simulator processes.

Owns: the environment a subprocess needs to see a test's isolated settings, a worker
process handle (start, wait until ready, SIGKILL, stop), reading a topic to the end,
Flux queries against the test bucket, and the exact ground truth of a simulated run
(labels and every vitals point, computed in-process with the simulator's own code).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from stream.config import Settings
from stream.kafka import client_options
from stream.records import VITALS, Alert, Frame
from stream.sinks.lines import to_ns

READY_LINE = "[^Worker]: Ready"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from stream.cli.main import main; main()", *args]


def worker_env(settings: Settings, fast_failover: bool = True, **extra: str) -> dict[str, str]:
    """The parent's environment minus VITALSTREAM_*, plus these settings' topics/bucket/app.

    A shorter session timeout than the product's 10 s lets a restarted worker take over
    a SIGKILLed one's partitions sooner.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTREAM_")}
    env |= settings.child_env_vars() | {"VITALSTREAM_STREAM__METRICS_EVERY_S": "2"}
    if fast_failover:
        env |= {
            "VITALSTREAM_STREAM__SESSION_TIMEOUT_S": "8",
            "VITALSTREAM_STREAM__HEARTBEAT_S": "1",
            "VITALSTREAM_STREAM__REBALANCE_TIMEOUT_S": "20",
        }
    return env | extra


@dataclass
class WorkerProcess:
    """One `vitalstream worker` subprocess logging to its own file (appended across restarts)."""

    env: dict[str, str]
    log_path: Path
    workers_dir: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    _ready_seen: int = field(default=0, repr=False)

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts} ===\n".encode())
            self.proc = subprocess.Popen(
                cli("worker", "--workers-dir", str(self.workers_dir)),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until this start logged Faust's Ready line (earlier starts' lines do not count)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log_path.read_text(errors="replace").count(READY_LINE) >= self.starts:
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.3)
        pytest.fail(f"worker not ready:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no changelog sync: the crash the pipeline must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGINT and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def dump_stacks(self) -> str:
        """Every thread's Python stack (py-spy), appended to the log: what a stalled
        worker is waiting on, for the failure report."""
        if self.proc is None or self.proc.poll() is not None:
            return ""
        spy = Path(sys.executable).parent / "py-spy"
        try:
            done = subprocess.run(
                [str(spy), "dump", "--pid", str(self.proc.pid)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            dump = done.stdout + done.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            dump = f"py-spy dump failed: {exc}"
        with self.log_path.open("a") as log:
            log.write(f"\n=== stacks of start {self.starts} (pid {self.proc.pid}) ===\n{dump}\n")
        return dump


def consume(
    settings: Settings,
    topic: str,
    until: Callable[[list[bytes]], bool] = lambda _: False,
    timeout_s: float = 5.0,
) -> list[bytes]:
    """Values of topic from the beginning, until `until(values)` or timeout."""
    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_options(settings.kafka),
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(values):
            for records in consumer.poll(timeout_ms=500).values():
                values += [r.value for r in records]
    finally:
        consumer.close()
    return values


def alerts_of(values: list[bytes]) -> list[Alert]:
    return [Alert.from_json(v) for v in values]


def influx_rows(settings: Settings, influx_client: Any, flux_tail: str) -> list:
    query = f'from(bucket: "{settings.influx.bucket}") |> range(start: 0) {flux_tail}'
    tables = influx_client.query_api().query(query, org=settings.influx.org)
    return [record for table in tables for record in table.records]


_VITAL_FIELDS = " or ".join(f'r._field == "{name}"' for name in VITALS)
VITALS_FLUX = (
    f'|> filter(fn: (r) => r._measurement == "vitals" and ({_VITAL_FIELDS})) '
    '|> keep(columns: ["device", "_time", "_field"])'
)


def written_vitals(settings: Settings, influx_client: Any) -> set[tuple[str, int]]:
    """Distinct (device, time in µs) of the device vitals points now in the bucket."""
    rows = influx_rows(settings, influx_client, VITALS_FLUX)
    return {(r.values["device"], round(r.get_time().timestamp() * 1e6)) for r in rows}


@dataclass(frozen=True)
class Simulation:
    """One simulated run: what `vitalstream simulate` is asked for, and its ground truth."""

    scenario: Path
    devices: int
    duration_s: float
    start: float
    seed: int = 3
    # Devices' frames per message: 1 (keyed by device) unless a test asks for gateway
    # batches; the tests that kill workers and move partitions were written for per-device
    # keys. The ground truth (:meth:`expected`) is the same frames either way.
    per_message: int = 1

    def argv(self, speed: float, labels_out: Path) -> list[str]:
        return cli(
            "simulate", "--scenario", str(self.scenario), "--devices", str(self.devices),
            "--duration", str(self.duration_s), "--speed", str(speed),
            "--start", str(self.start), "--seed", str(self.seed), "--no-faults",
            "--per-message", str(self.per_message), "--labels-out", str(labels_out), "--json",
        )  # fmt: skip

    def expected(self) -> tuple[list[dict], set[tuple[str, int]], int]:
        """(labels, every (device, µs) vitals point, frame count), as the simulator sends.

        Same scenario, seed and start through the simulator's own fleet, at speed 0 into
        a list instead of Kafka: the exact frames the subprocess publishes.
        """
        from producers.fleet import Fleet, run_fleet
        from producers.scenario import load_scenario

        fleet = Fleet(
            load_scenario(str(self.scenario)), self.devices, seed=self.seed,
            start=self.start, frame_s=1.0, faults=False,
        )  # fmt: skip
        labels = fleet.labels(self.duration_s)
        sent: list[tuple[str, str, bytes]] = []
        run_fleet(
            fleet, lambda topic, key, value: sent.append((topic, key, value)),
            frames_topic="frames", enrolments_topic="enrolments",
            duration_s=self.duration_s, speed=0,
        )  # fmt: skip
        points: set[tuple[str, int]] = set()
        frames = 0
        for topic, _key, value in sent:
            if topic != "frames":
                continue
            frames += 1
            frame = Frame.model_validate(orjson.loads(value))
            for name in VITALS:
                block = getattr(frame.signals, name)
                if block is None:
                    continue
                for i in range(len(block.samples)):
                    # The sink's own rounding (to_ns keeps whole microseconds).
                    points.add((frame.device_id, to_ns(frame.t0 + i / block.fs) // 1000))
        return labels, points, frames


def triggered_per_label(alerts: list[Alert], labels: list[dict]) -> dict[tuple[str, str], int]:
    """Distinct 'triggered' alert ids per labelled (device, event)."""
    wanted = {(lab["device_id"], lab["event"]) for lab in labels}
    ids: dict[tuple[str, str], set[str]] = {key: set() for key in wanted}
    for alert in alerts:
        if alert.event == "triggered" and (alert.device_id, alert.kind) in ids:
            ids[(alert.device_id, alert.kind)].add(alert.alert_id)
    return {key: len(found) for key, found in ids.items()}
