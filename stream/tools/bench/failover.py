"""`vitalstream bench failover`: how long a ward goes unprocessed when a worker dies.

Owns the failover suite. ``workers`` worker processes (2 by default) share the frames
partitions in one consumer group under the demo load (the default ward at 1x, frames
dated now), with a CPU hog beside them (``--no-hog`` to leave it out): the box is busy, as
it is when failovers go wrong. ``repeat`` times, at a random moment, one worker is
SIGKILLed; per kill the suite reports

- ``failover_s``: from the kill until the group has committed, on every partition, past
  what had been published ``AFTER_KILL_S`` after it struck: a frame sent after the kill
  processed on every partition, the killed worker's by a survivor, and durable (commits
  follow durability); the session timeout and the rebalance included;
- ``rejoin_s``: the same after the killed worker is restarted and takes its share back
  (the second rebalance a routine restart causes);

against ``steady_commit_lag_s``, the same measure with no fault (commit interval and batch
time: the floor under both). At the end the run is checked against its ground truth
(:mod:`stream.tools.ward_run`): ``lost_points`` (vitals points the simulator sent that are
not in InfluxDB), ``lost_alerts`` (labelled events with no triggered alert, of those whose
alert was due before the load ended: ``alerts_not_due`` counts a device going silent less
than ``signal_loss_s`` before the end),
``duplicated_alerts`` (extra alert ids for one event; replayed copies with the same id
are at-least-once delivery, counted apart as ``alert_replays``).

A failover that does not complete within ``FAILOVER_TIMEOUT_S`` is reported with that
value and counted in ``stalled_kills``: a stall is a result, not an error.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.config import Settings
from stream.tools.bench.common import child_env, discard, isolated, prepare
from stream.tools.ward_run import (
    WorkerProcess,
    alert_counts,
    alert_targets,
    alert_values,
    due_targets,
    ground_truth,
    start_simulator,
    written_points,
)

FAILOVER_TIMEOUT_S = 120.0
# The load runs long enough for every kill: a warm-up, then per kill a random wait, the
# failover, the restart and the rejoin (about 30 s together when nothing stalls).
WARMUP_S = 30.0
CYCLE_S = 45.0
KILL_WAIT_S = (3.0, 12.0)  # random moment after the group has settled
# The target is taken this long after the kill: every partition (10 devices over 4, each
# sending a frame a second) then holds a frame sent after the kill, which only a live
# owner can process. A target taken at the kill itself is met at once when the killed
# worker had just committed everything.
AFTER_KILL_S = 1.5
DRAIN_S = 120.0
POLL_S = 0.25
SCENARIO = "default"


def caught_up(committed: dict[int, int], target: dict[int, int]) -> bool:
    """Whether every partition's committed offset has reached its target.

    >>> caught_up({0: 10, 1: 7}, {0: 10, 1: 8})
    False
    >>> caught_up({0: 12, 1: 8}, {0: 10, 1: 8})
    True
    """
    return all(committed.get(partition, -1) >= offset for partition, offset in target.items())


@dataclass
class OffsetProbe:
    """Log-end offsets of the frames topic and the worker group's commits, by partition."""

    settings: Settings

    def __post_init__(self) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

        from stream.kafka import client_options

        options = client_options(self.settings.kafka)
        self._admin: KafkaAdminClient | None = None
        self._consumer = KafkaConsumer(client_id="vitalstream-bench-failover", **options)
        topic = self.settings.topics.frames
        partitions = self._consumer.partitions_for_topic(topic) or set()
        self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]

    def published(self) -> dict[int, int]:
        ends = self._consumer.end_offsets(self._partitions)
        return {tp.partition: offset for tp, offset in ends.items()}

    def committed(self) -> dict[int, int]:
        """The group's committed offsets on the frames topic. A broker that died may have
        been this client's coordinator or controller: after a failure the next call
        starts a fresh admin client, which finds the cluster as it is now."""
        from kafka import KafkaAdminClient

        from stream.kafka import client_options

        group = self.settings.stream.app_id
        if self._admin is None:
            self._admin = KafkaAdminClient(
                client_id="vitalstream-bench-failover", **client_options(self.settings.kafka)
            )
        try:
            offsets = self._admin.list_group_offsets(group).get(group, {})
        except Exception:
            self._admin.close()
            self._admin = None
            raise
        topic = self.settings.topics.frames
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    def time_to_commit(self, target: dict[int, int], since: float, timeout_s: float) -> float:
        """Seconds from ``since`` until the group committed past ``target`` everywhere
        (``timeout_s`` if it never does)."""
        while time.monotonic() - since < timeout_s:
            with contextlib.suppress(Exception):  # the broker is busy, not gone: ask again
                if caught_up(self.committed(), target):
                    return round(time.monotonic() - since, 2)
            time.sleep(POLL_S)
        return timeout_s

    def close(self) -> None:
        self._consumer.close()
        if self._admin is not None:
            self._admin.close()


@contextlib.contextmanager
def cpu_hog(enabled: bool) -> Iterator[None]:
    """One busy process for the duration: failovers go wrong on a busy box."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if enabled else None
    try:
        yield
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def run(
    settings: Settings,
    devices: int,
    repeat: int,
    workers: int = 2,
    hog: bool = True,
    seed: int = 7,
    run_dir: Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(per-kill results, summary)``; see the module doc for what each figure means."""
    from influxdb_client import InfluxDBClient

    if workers < 2:
        raise ValueError("a failover needs at least 2 workers")
    run_settings = isolated(settings, "failover")
    prepare(run_settings)
    run_dir = run_dir or settings.services.data_dir.parent / "bench" / run_settings.stream.app_id
    run_dir.mkdir(parents=True, exist_ok=True)
    duration_s = WARMUP_S + repeat * CYCLE_S
    start = float(int(time.time()))
    labels, truth = ground_truth(SCENARIO, devices, seed, start, duration_s)
    env = child_env(run_settings)
    group = [
        WorkerProcess(env, run_dir / f"worker-{i}.log", run_dir / f"state-{i}")
        for i in range(workers)
    ]
    rng = random.Random(seed)
    results: list[dict[str, Any]] = []
    probe: OffsetProbe | None = None
    try:
        for worker in group:
            worker.start()
        for worker in group:
            worker.wait_ready()
        with cpu_hog(hog):
            simulator = start_simulator(
                env, SCENARIO, devices, duration_s, start, seed, run_dir / "simulate.log"
            )
            began = time.monotonic()
            probe = OffsetProbe(run_settings)
            time.sleep(WARMUP_S / 2)
            calm = time.monotonic()
            time.sleep(AFTER_KILL_S)  # the same measure as a failover's, with no kill
            steady = probe.time_to_commit(probe.published(), calm, 60.0)
            for kill in range(1, repeat + 1):
                time.sleep(rng.uniform(*KILL_WAIT_S))
                if simulator.poll() is not None:
                    break  # the load is over: a kill would measure nothing
                victim = rng.randrange(workers)
                struck = time.monotonic()
                group[victim].kill()
                time.sleep(AFTER_KILL_S)
                failover = probe.time_to_commit(probe.published(), struck, FAILOVER_TIMEOUT_S)
                group[victim].start()
                group[victim].wait_ready()
                restarted = time.monotonic()
                time.sleep(AFTER_KILL_S)
                rejoin = probe.time_to_commit(probe.published(), restarted, FAILOVER_TIMEOUT_S)
                results.append({
                    "kill": kill, "victim": victim, "at_s": round(struck - began, 1),
                    "failover_s": failover, "rejoin_s": rejoin,
                    "stalled": max(failover, rejoin) >= FAILOVER_TIMEOUT_S,
                })  # fmt: skip
            simulator.wait(timeout=duration_s + 120)
        expected = set().union(*truth.values()) if truth else set()
        with InfluxDBClient(
            url=run_settings.influx.url, token=run_settings.influx_token,
            org=run_settings.influx.org, timeout=30_000,
        ) as client:  # fmt: skip
            deadline = time.monotonic() + DRAIN_S
            written = written_points(run_settings, client)
            while not expected <= written and time.monotonic() < deadline:
                time.sleep(3)
                written = written_points(run_settings, client)
        time.sleep(3)  # the last alert batches
        due = due_targets(labels, start + duration_s, settings.stream.signal_loss_s)
        counts = alert_counts(alert_values(run_settings), due)
    finally:
        if probe is not None:
            probe.close()
        for worker in group:
            worker.stop()
        discard(run_settings)
    failovers = [r["failover_s"] for r in results]
    summary = {
        "workers": workers, "devices": devices, "hog": hog, "kills": len(results),
        "max_failover_s": max(failovers, default=None),
        "median_failover_s": statistics.median(failovers) if failovers else None,
        "max_rejoin_s": max((r["rejoin_s"] for r in results), default=None),
        "steady_commit_lag_s": steady,
        "stalled_kills": sum(1 for r in results if r["stalled"]),
        "lost_points": len(expected - written),
        "points_expected": len(expected),
        "lost_alerts": len(due) - counts["alerts_delivered"],
        "alerts_not_due": len(alert_targets(labels)) - len(due),
        "duplicated_alerts": counts["alerts_duplicated"],
        "alert_replays": counts["alert_replays"],
        "logs": str(run_dir),
    }  # fmt: skip
    return results, summary
