"""A simulated ward run against the local services: its processes and its ground truth.

Owns what the soak (:mod:`stream.tools.soak`) and the failover bench
(:mod:`stream.tools.bench.failover`) share: settings isolated to a run (topics, consumer
group, bucket), the environment of their ``vitalstream`` children, a worker process
handle (start, SIGKILL, stop, ready), the simulator started with a fixed seed and start,
and the run checked against its ground truth, computed in-process from the simulator's
own fleet: the vitals points and the labelled events it sends, the points InfluxDB holds
and the alerts on Kafka.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from stream.config import Settings
from stream.tools.bench.common import cli

READY_LINE = "[^Worker]: Ready"


def isolated(local: Settings, tag: str) -> Settings:
    """``local`` with the run's own topics (``tag.`` prefixed), consumer group and bucket."""
    return local.model_copy(
        update={
            "topics": local.topics.model_copy(
                update={k: f"{tag}.{v}" for k, v in local.topics.model_dump().items()}
            ),
            "influx": local.influx.model_copy(update={"bucket": tag}),
            "stream": local.stream.model_copy(update={"app_id": f"vitalstream-{tag}"}),
        }
    )


def new_tag(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:8]}"


def child_env(settings: Any) -> dict[str, str]:
    # Children inherit this environment (not read here as configuration), with the run's
    # isolated topics, group and bucket on top.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITALSTREAM_")}
    return env | settings.child_env_vars()


def ground_truth(
    scenario: str, devices: int, seed: int, start: float, duration_s: float
) -> tuple[list[dict], dict[tuple[str, float], set[tuple[str, int]]]]:
    """(labels, {(device, frame t0): its vitals points as (device, µs)}) the simulator sends."""
    import orjson

    from producers.fleet import Fleet, run_fleet
    from producers.scenario import load_scenario
    from stream.records import VITALS, Frame
    from stream.sinks.lines import to_ns

    fleet = Fleet(load_scenario(scenario), devices, seed=seed, start=start, faults=False)
    labels = fleet.labels(duration_s)
    frames: dict[tuple[str, float], set[tuple[str, int]]] = {}

    def collect(topic: str, _key: str, value: bytes) -> None:
        if topic != "frames":
            return
        frame = Frame.model_validate(orjson.loads(value))
        points = frames.setdefault((frame.device_id, frame.t0), set())
        for name in VITALS:
            block = getattr(frame.signals, name)
            for i in range(len(block.samples) if block is not None else 0):
                points.add((frame.device_id, to_ns(frame.t0 + i / block.fs) // 1000))

    run_fleet(fleet, collect, frames_topic="frames", enrolments_topic="enrolments",
              duration_s=duration_s, speed=0)  # fmt: skip
    return labels, frames


def written_points(settings: Any, client: Any) -> set[tuple[str, int]]:
    from stream.records import VITALS

    fields = " or ".join(f'r._field == "{name}"' for name in VITALS)
    query = (
        f'from(bucket: "{settings.influx.bucket}") |> range(start: 0) '
        f'|> filter(fn: (r) => r._measurement == "vitals" and ({fields})) '
        '|> keep(columns: ["device", "_time"])'
    )
    tables = client.query_api().query(query, org=settings.influx.org)
    return {
        (r.values["device"], round(r.get_time().timestamp() * 1e6))
        for table in tables
        for r in table.records
    }


def alert_values(settings: Any) -> list[bytes]:
    from kafka import KafkaConsumer

    from stream.kafka import client_options

    consumer = KafkaConsumer(
        settings.topics.alerts, auto_offset_reset="earliest", enable_auto_commit=False,
        consumer_timeout_ms=3000, **client_options(settings.kafka),
    )  # fmt: skip
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


def alert_targets(labels: list[dict]) -> list[dict]:
    """The labels a soak expects an alert for: clinical and technical events.

    >>> alert_targets([{"event": "af", "category": "clinical"},
    ...                {"event": "walking", "category": "artefact"}])
    [{'event': 'af', 'category': 'clinical'}]
    """
    return [lab for lab in labels if lab.get("category") in ("clinical", "technical")]


def due_targets(labels: list[dict], end: float, signal_loss_s: float) -> list[dict]:
    """The alert targets whose alert can fire before a run ending at ``end`` (epoch s): a
    device gone silent alerts ``signal_loss_s`` after its last frame, so one that goes
    silent in a short run's last minutes cannot, whatever the run does.

    >>> labels = [{"event": "af", "category": "clinical", "start": 90.0},
    ...           {"event": "device_silent", "category": "technical", "start": 40.0},
    ...           {"event": "device_silent", "category": "technical", "start": 60.0}]
    >>> [lab["start"] for lab in due_targets(labels, end=100.0, signal_loss_s=50.0)]
    [90.0, 40.0]
    """
    return [
        lab for lab in alert_targets(labels)
        if lab["event"] != "device_silent" or lab["start"] + signal_loss_s <= end
    ]  # fmt: skip


def alert_counts(values: list[bytes], labels: list[dict]) -> dict[str, int]:
    """Delivered, duplicated (extra ids per labelled event) and replayed copies.

    Only clinical and technical events are alert targets: an artefact or confound label
    (a walking patient) explains signal trouble and must raise no alert of its name.
    """
    from stream.records import Alert

    ids: dict[tuple[str, str], set[str]] = {
        (lab["device_id"], lab["event"]): set() for lab in alert_targets(labels)
    }
    copies: dict[str, int] = defaultdict(int)
    for value in values:
        alert = Alert.from_json(value)
        if alert.event != "triggered":
            continue
        copies[alert.alert_id] += 1
        if (alert.device_id, alert.kind) in ids:
            ids[(alert.device_id, alert.kind)].add(alert.alert_id)
    return {
        "alerts_delivered": sum(1 for found in ids.values() if found),
        "alerts_duplicated": sum(max(0, len(found) - 1) for found in ids.values()),
        "alert_replays": sum(n - 1 for n in copies.values()),
    }


class WorkerProcess:
    """One ``vitalstream worker`` child logging to its own file (appended across restarts)."""

    def __init__(self, env: dict[str, str], log_path: Path, state: Path) -> None:
        self.env, self.log_path, self.state = env, log_path, state
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cli("worker", "--workers-dir", str(self.state)), env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        from stream.tools.faults import sigkill

        if self.proc is not None and self.proc.poll() is None:
            sigkill(self.proc.pid)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        import signal

        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def ready(self) -> bool:
        """Whether this start has logged Faust's Ready line (earlier starts' do not count)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.count(READY_LINE) >= self.starts

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Seconds until ready; raises RuntimeError if it exits or the time runs out."""
        began = time.monotonic()
        while time.monotonic() - began < timeout_s:
            if self.ready():
                return time.monotonic() - began
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log_path}")
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout_s:.0f} s; see {self.log_path}")


def start_simulator(
    env: dict[str, str],
    scenario: str,
    devices: int,
    duration_s: float,
    start: float,
    seed: int,
    log_path: Path,
    per_message: int = 1,
) -> subprocess.Popen:
    """``vitalstream simulate`` at 1x from ``start`` (no random faults), logging to a file.

    ``per_message`` is explicit, 1 unless asked: the soak and the failover bench kill
    workers and hand partitions over, measured so far with each device's frames on its
    own key's partition (as its enrolment and snapshots are)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cli("simulate", "--scenario", scenario, "--devices", str(devices),
                "--duration", str(duration_s), "--speed", "1", "--start", str(start),
                "--seed", str(seed), "--no-faults", "--per-message", str(per_message),
                "--json"),
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def delete_topics(settings: Any) -> None:
    import contextlib

    from kafka import KafkaAdminClient

    from stream.kafka import client_options

    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(**client_options(settings.kafka))
        ours = [t for t in admin.list_topics()
                if t.startswith(settings.topics.frames.split(".")[0] + ".")
                or t.startswith(settings.stream.app_id)]  # fmt: skip
        admin.delete_topics(ours)
        admin.close()
