"""The soak: the demo load for N minutes with faults injected on a schedule.

Owns the soak run (:func:`run`, which ``vitalstream soak`` calls): isolated topics,
consumer group and bucket on the local services; a real `vitalstream worker` and
`vitalstream simulate --no-faults` as subprocesses; a fault schedule (worker SIGKILL +
restart, broker restart, InfluxDB outage, a second worker kill) spread over the run; RSS
of every process sampled every 10 s with psutil; and at the end the run checked against
its ground truth, which is computed in-process from the simulator's own fleet (same
scenario, seed and start):

- ``frames_in``: frames the simulator sent; ``frames_out``: frames whose every vitals
  point is in InfluxDB;
- ``alerts_expected``: labelled clinical and technical events whose alert can fire before
  the load ends (:func:`~stream.tools.ward_run.due_targets`; the others are counted as
  ``alerts_not_due``); ``alerts_delivered``:
  those with a 'triggered' alert on Kafka; ``alerts_duplicated``: extra distinct alert ids for one
  labelled event (a replayed copy with the same id is not a duplicate: consumers dedupe
  on ``alert_id``; those copies are counted as ``alert_replays``);
- ``points_expected`` / ``points_written``: distinct (device, time) vitals points;
- ``peak_rss_mb`` (sum over processes at the worst sample), per-process peaks, the RSS
  slope in MB/min over each process's last incarnation (a fault restarts the worker,
  the broker and InfluxDB; a new process id is a new incarnation), its growth in MB/h
  after a ``WARMUP_S`` warm-up (a leak, as opposed to warming up), and the restarts seen.
  The plot draws every incarnation on the run's clock, faults marked.

:func:`run` returns that summary; the command prints it (:mod:`stream.cli.soak`).
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.tools.ward_run import (
    WorkerProcess,
    alert_counts,
    alert_targets,
    alert_values,
    child_env,
    delete_topics,
    due_targets,
    ground_truth,
    isolated,
    new_tag,
    start_simulator,
    written_points,
)

if TYPE_CHECKING:
    from rich.console import Console

SAMPLE_EVERY_S = 10.0
# Fraction of the run at which each fault starts, and what it is.
SCHEDULE: tuple[tuple[float, str], ...] = (
    (0.15, "worker_kill"),
    (0.35, "broker_restart"),
    (0.55, "influx_outage"),
    (0.75, "worker_kill"),
)
BROKER_DOWN_S = 5.0
INFLUX_DOWN_S = 20.0


# RSS growth is judged after each process's warm-up (caches, JIT, Kafka's page cache and
# index warm-up); a leak is growth that goes on after it.
WARMUP_S = 180.0


@dataclass
class RssTrend:
    """RSS samples per process role, on one clock from the run's start.

    A role's process may be replaced (a fault restarts the worker, the broker, InfluxDB;
    a crash would too): every sample carries its process id, so each incarnation is its
    own segment of the role's line, drawn over the whole run, and growth is judged on the
    last incarnation only, after its warm-up.

    >>> trend = RssTrend(started=0.0)
    >>> for t in range(0, 400, 10):
    ...     trend.record("worker", 101 if t < 200 else 202, 100.0 + t / 60.0, float(t))
    >>> trend.restarts()["worker"], [len(s) for s in trend.incarnations("worker")]
    (1, [20, 20])
    >>> trend.growth_mb_per_hour(warmup_s=60.0)["worker"]  # 1 MB a minute
    60.0
    """

    started: float = field(default_factory=time.monotonic)
    # role -> [(seconds since start, RSS MB, pid)]
    samples: dict[str, list[tuple[float, float, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    totals: list[float] = field(default_factory=list)

    def sample(self, pids: dict[str, int | None]) -> None:
        import psutil

        now = time.monotonic()
        total = 0.0
        for role, pid in pids.items():
            if pid is None:
                continue
            try:
                rss = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
            self.record(role, pid, rss, now)
            total += rss
        self.totals.append(total)

    def record(self, role: str, pid: int, rss_mb: float, now: float) -> None:
        self.samples[role].append((now - self.started, rss_mb, pid))

    def incarnations(self, role: str) -> list[list[tuple[float, float]]]:
        """The role's samples split where its process id changes: (seconds, MB) each."""
        segments: list[list[tuple[float, float]]] = []
        last_pid = None
        for t, rss, pid in self.samples.get(role, []):
            if pid != last_pid:
                segments.append([])
                last_pid = pid
            segments[-1].append((t, rss))
        return segments

    def restarts(self) -> dict[str, int]:
        return {role: max(len(self.incarnations(role)) - 1, 0) for role in self.samples}

    def peaks(self) -> dict[str, float]:
        return {
            role: round(max((rss for _, rss, _ in points), default=0.0), 1)
            for role, points in self.samples.items()
        }

    def _slope_per_min(self, points: list[tuple[float, float]]) -> float | None:
        import numpy as np

        if len(points) < 3:
            return None
        t = np.array([p[0] for p in points]) / 60.0
        rss = np.array([p[1] for p in points])
        return float(np.polyfit(t - t[0], rss, 1)[0])

    def slopes(self) -> dict[str, float | None]:
        """MB/min over each role's last incarnation (least squares)."""
        out: dict[str, float | None] = {}
        for role in self.samples:
            slope = self._slope_per_min(self.incarnations(role)[-1])
            out[role] = None if slope is None else round(slope, 2)
        return out

    def growth_mb_per_hour(self, warmup_s: float = WARMUP_S) -> dict[str, float | None]:
        """MB/h over each role's last incarnation once it is ``warmup_s`` old (None when
        fewer than 3 samples are left: the run was too short to tell)."""
        out: dict[str, float | None] = {}
        for role in self.samples:
            last = self.incarnations(role)[-1]
            settled = [p for p in last if p[0] - last[0][0] >= warmup_s]
            slope = self._slope_per_min(settled)
            out[role] = None if slope is None else round(slope * 60.0, 1)
        return out


def run(
    minutes: float,
    devices: int,
    scenario: str,
    seed: int,
    console: Console,
    plot: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Start the local services, run the soak and return its summary (see the module doc).

    The services' start-up and the progress bar (unless ``show_progress`` is false) go to
    ``console``; with ``plot`` the RSS trend is also drawn to that path as a PNG.
    """
    from influxdb_client import InfluxDBClient
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from stream.config import load_settings
    from stream.kafka import ensure_topics, stream_topics
    from stream.services import influxdb, kafka, stack
    from stream.services.health import find_bucket
    from stream.tools import faults, plotting

    if plot is not None:
        plotting.require()  # before the run, not after it
    base = load_settings()
    stack.up(base, console)
    local = stack.local_settings(base)
    tag = new_tag("soak")
    settings = isolated(local, tag)
    ensure_topics(settings, stream_topics(settings))
    influxdb.ensure_bucket(settings, tag)
    duration_s = minutes * 60.0
    start = float(int(time.time()))
    labels, truth = ground_truth(scenario, devices, seed, start, duration_s)
    env = child_env(settings)
    run_dir = settings.services.data_dir.parent / "soak" / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(env, run_dir / "worker.log", run_dir / "state")
    worker.start()
    simulator = start_simulator(
        env, scenario, devices, duration_s, start, seed, run_dir / "simulate.log"
    )
    trend = RssTrend()
    injected: list[dict[str, Any]] = []
    pending = list(SCHEDULE)
    began = time.monotonic()
    next_sample = began
    with Progress(
        TextColumn("[bold]soak"), BarColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=console, disable=not show_progress,
    ) as progress:  # fmt: skip
        task = progress.add_task("load", total=duration_s)
        while simulator.poll() is None:
            elapsed = time.monotonic() - began
            progress.update(task, completed=min(elapsed, duration_s))
            if pending and elapsed >= pending[0][0] * duration_s:
                _, kind = pending.pop(0)
                progress.update(task, description=kind)
                taken = _inject(kind, worker, settings, faults)
                injected.append({"fault": kind, "at_s": round(elapsed, 1), "took_s": taken})
                progress.update(task, description="load")
            if time.monotonic() >= next_sample:
                trend.sample(_pids(worker, simulator, settings, kafka, influxdb))
                next_sample += SAMPLE_EVERY_S
            time.sleep(0.5)
        progress.update(task, completed=duration_s, description="draining")
        expected_points = set().union(*truth.values()) if truth else set()
        drain_deadline = time.monotonic() + max(120.0, duration_s * 0.2)
        with InfluxDBClient(url=settings.influx.url, token=settings.influx_token,
                            org=settings.influx.org, timeout=30_000) as client:  # fmt: skip
            written: set[tuple[str, int]] = set()
            while time.monotonic() < drain_deadline:
                written = written_points(settings, client)
                if expected_points <= written:
                    break
                if time.monotonic() >= next_sample:
                    trend.sample(_pids(worker, simulator, settings, kafka, influxdb))
                    next_sample += SAMPLE_EVERY_S
                time.sleep(3)
            time.sleep(3)  # the last alert batches
            values = alert_values(settings)
            worker.stop()
            bucket = find_bucket(client, tag, settings.influx.org)
            if bucket is not None:
                client.buckets_api().delete_bucket(bucket)
    summary_line = (run_dir / "simulate.log").read_text().strip().splitlines()
    due = due_targets(labels, start + duration_s, settings.stream.signal_loss_s)
    frames_out = sum(1 for points in truth.values() if points <= written)
    result: dict[str, Any] = {
        "minutes": minutes,
        "devices": devices,
        "frames_in": len(truth),
        "frames_out": frames_out,
        "alerts_expected": len(due),
        "alerts_not_due": len(alert_targets(labels)) - len(due),
        **alert_counts(values, due),
        "points_expected": len(expected_points),
        "points_written": len(expected_points & written),
        "peak_rss_mb": round(max(trend.totals, default=0.0), 1),
        "peak_rss_by_process_mb": trend.peaks(),
        "rss_slope_mb_per_min": trend.slopes(),
        "rss_growth_mb_per_hour": trend.growth_mb_per_hour(),
        "restarts": trend.restarts(),
        "faults": injected,
        "simulator": summary_line[-1] if summary_line else None,
        "logs": str(run_dir),
    }
    delete_topics(settings)
    if plot is not None:
        _plot(trend, plot, injected)
    return result


def _inject(kind: str, worker: WorkerProcess, settings: Any, faults: Any) -> float:
    began = time.monotonic()
    if kind == "worker_kill":
        worker.kill()
        worker.start()
    elif kind == "broker_restart":
        faults.outage_for(settings, "kafka", BROKER_DOWN_S)
    elif kind == "influx_outage":
        faults.outage_for(settings, "influxdb", INFLUX_DOWN_S)
    return round(time.monotonic() - began, 1)


def _pids(worker: WorkerProcess, simulator: subprocess.Popen, settings: Any, kafka: Any,
          influxdb: Any) -> dict[str, int | None]:  # fmt: skip
    return {
        "worker": worker.proc.pid
        if worker.proc is not None and worker.proc.poll() is None
        else None,
        "simulator": simulator.pid if simulator.poll() is None else None,
        "kafka": kafka.running_pid(settings),
        "influxdb": influxdb.running_pid(settings),
    }


def _plot(trend: RssTrend, path: Path, faults: list[dict[str, Any]] | None = None) -> None:
    """RSS of every process over the whole run: a restarted process's new incarnation
    continues its role's line (same colour), faults are marked where they struck."""
    from stream.tools.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4))
    for index, role in enumerate(sorted(trend.samples)):
        colour = f"C{index}"
        for k, segment in enumerate(trend.incarnations(role)):
            ax.plot([t / 60 for t, _ in segment], [r for _, r in segment], color=colour,
                    label=role if k == 0 else None)  # fmt: skip
    for fault in faults or []:
        ax.axvline(fault["at_s"] / 60, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("minutes since the start")
    ax.set_ylabel("RSS (MB)")
    ax.set_title("vitalstream soak: memory per process (dotted: faults)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
