"""End-to-end suite: a real simulator and a real ``vitalstream worker``, fleet size swept.

Owns the sweep. For each device count, on fresh topics, bucket and consumer group:

1. start one ``vitalstream worker`` (its own process) and wait until Faust says Ready;
2. start ``vitalstream simulate`` (its own process, speed 1: one frame per device per
   second) on a bench scenario whose labelled events are spread over the measured span;
3. every ``SAMPLE_S`` read the frames topic's end offsets and the worker group's committed
   offsets (Kafka admin) and the CPU time and RSS of both processes (psutil), as
   :mod:`stream.tools.bench.sampling` does for every suite;
4. after ``warmup_s``, measure for ``seconds``: frames/s produced and consumed, the lag and
   its trend, and alert latency — each labelled event's first ``triggered`` alert of the
   same kind on the same device, minus the event's onset and the rule's designed delay
   (:meth:`~stream.config.RuleSettings.designed_delay_s`), by
   the worker's ``emitted_at`` and by the time this process received it from the topic.

The knee is the largest size that holds real time (:func:`stream.tools.bench.stats.find_knee`);
the sweep stops at the first size the worker cannot hold.
With ``profile_at`` the worker is sampled by py-spy during that size's measurement.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil
import yaml
from rich.progress import Progress

from stream.config import Settings
from stream.tools.bench import stats
from stream.tools.bench.common import child_env, cli, discard, isolated, prepare
from stream.tools.bench.sampling import (
    SAMPLE_S,
    OffsetProbe,
    Processes,
    Sample,
    service_processes,
    summarize_size,
    take_sample,
)

READY_TEXT = "[^Worker]: Ready"
# Events whose alert has a plain onset delay; four patients each, spread over the run.
LATENCY_EVENTS = ("tachycardia", "bradycardia", "desaturation", "tachypnoea", "fall")
LABELS_PER_KIND = 4
EVENT_SPAN_S = 45.0


def bench_scenario(warmup_s: float, seconds: float) -> dict[str, Any]:
    """Twenty labelled patients (four per kind in :data:`LATENCY_EVENTS`); the rest are quiet.

    Events start between warm-up and ``EVENT_SPAN_S`` before the end, so each has time
    to be detected within the measured span whatever the fleet size. Their onsets are
    abrupt: the condition exists from the labelled second, so the latency measured is the
    pipeline's, not the simulated body's drift towards the event's values.
    """
    first = warmup_s + 3.0
    last = max(first, warmup_s + seconds - EVENT_SPAN_S)
    count = LABELS_PER_KIND * len(LATENCY_EVENTS)
    patients = []
    for i in range(count):
        kind = LATENCY_EVENTS[i % len(LATENCY_EVENTS)]
        # Whole seconds: the simulator changes conditions at frame boundaries.
        start = float(round(first + (last - first) * i / max(count - 1, 1)))
        event = {"event": kind, "start": start, "end": start + 60, "severity": 0.8}
        patients.append(
            {
                "id": f"bench-{i:02d}",
                "activity": 0.3 if kind == "fall" else 0.05,
                "events": [event | {"onset": "abrupt"}],
            }
        )
    return {"name": "bench", "ward": "ward-bench", "patients": patients}


class AlertCollector(threading.Thread):
    """Reads the alerts topic from the beginning; keeps (receive time, alert bytes)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="bench-alerts")
        from kafka import KafkaConsumer

        from stream.kafka import client_options

        self.consumer = KafkaConsumer(
            settings.topics.alerts,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **client_options(settings.kafka),
        )
        self.received: list[tuple[float, bytes]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for records in self.consumer.poll(timeout_ms=200).values():
                    now = time.time()
                    self.received += [(now, r.value) for r in records]
        finally:
            self.consumer.close()


def worker_name(index: int) -> str:
    """``worker`` for the first worker process, ``worker-2``, ``worker-3``… for the others."""
    return "worker" if index == 0 else f"worker-{index + 1}"


def start_simulator(
    env: dict[str, str],
    workdir: Path,
    devices: int,
    warmup_s: float,
    seconds: float,
    per_message: int = 1,
) -> tuple[subprocess.Popen, Path, Path]:
    """``vitalstream simulate`` for one fleet size: speed 1 (one frame per device per
    second) for ``warmup_s + seconds`` on :func:`bench_scenario`, seed 1. Returns the
    process, the file its ``--json`` summary goes to and its labels file.

    ``per_message`` is explicit, 1 unless asked: the suites' figures so far were measured
    one frame per message keyed by device, and the headroom suite's pass-through reads
    each message as one frame."""
    scenario_path = workdir / f"scenario-{devices}.yaml"
    scenario_path.write_text(yaml.safe_dump(bench_scenario(warmup_s, seconds)))
    labels_path = workdir / f"labels-{devices}.jsonl"
    sim_out = workdir / f"simulate-{devices}.json"
    with sim_out.open("wb") as out:
        simulator = subprocess.Popen(
            cli(
                "simulate", "--devices", str(devices), "--duration", str(warmup_s + seconds),
                "--speed", "1", "--scenario", str(scenario_path), "--seed", "1",
                "--labels-out", str(labels_path), "--per-message", str(per_message), "--json",
            ),
            env=env, stdout=out, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    return simulator, sim_out, labels_path


def simulator_summary(sim_out: Path) -> dict[str, Any]:
    """The simulator's ``--json`` summary (its last output line): frames, samples…"""
    return orjson.loads(sim_out.read_bytes().strip().splitlines()[-1])


def _wait_ready(log_path: Path, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if READY_TEXT in log_path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"worker did not become ready:\n{tail}")


def _stop(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # SIGINT is ignored in background jobs
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def alert_latencies(
    labels: list[dict[str, Any]],
    alerts: list[tuple[float, dict[str, Any]]],
    onset_s: dict[str, float],
) -> list[dict[str, Any]]:
    """Per label: its first matching ``triggered`` alert's latency beyond the onset delay."""
    triggered: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for received, alert in alerts:
        if alert.get("event") == "triggered":
            triggered[(alert["device_id"], alert["kind"])].append((received, alert))
    out = []
    for label in labels:
        kind, start = label["event"], label["start"]
        delay = onset_s.get(kind, 0.0)
        candidates = [
            (received, alert)
            for received, alert in triggered.get((label["device_id"], kind), [])
            if alert["t_event"] >= start
        ]
        if not candidates:
            out.append({"event": kind, "matched": False})
            continue
        received, alert = min(candidates, key=lambda c: c[1]["t_event"])
        out.append(
            {
                "event": kind,
                "matched": True,
                "emitted_s": alert["emitted_at"] - start - delay,
                "received_s": received - start - delay,
                "frame_time_s": alert["t_event"] - start - delay,
            }
        )
    return out


def _profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
         "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def one_size(
    settings: Settings,
    devices: int,
    seconds: float,
    warmup_s: float,
    workdir: Path,
    profile_to: Path | None = None,
    worker_env: dict[str, str] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Measure one fleet size on fresh topics; always cleans up its processes and topics.

    ``workers`` worker processes share the frames topic's partitions (one consumer group),
    as a scaled-out deployment does; the first is the one ``profile_to`` samples.
    """
    run = isolated(settings, f"e2e{devices}")
    prepare(run)
    env = child_env(run) | (worker_env or {})
    collector = AlertCollector(run)
    collector.start()
    probe = OffsetProbe(run)
    watched = Processes()
    worker_procs: list[subprocess.Popen] = []
    simulator = profiler = None
    samples: list[Sample] = []
    try:
        logs = [workdir / f"worker-{devices}-{i + 1}.log" for i in range(workers)]
        for i, log_path in enumerate(logs):
            argv = cli("worker", "--workers-dir", str(workdir / f"faust-{i + 1}"))
            with log_path.open("wb") as worker_log:
                proc = subprocess.Popen(argv, env=env, stdout=worker_log, stderr=subprocess.STDOUT)
            worker_procs.append(proc)
        for i, (log_path, proc) in enumerate(zip(logs, worker_procs, strict=True)):
            _wait_ready(log_path, proc, 180)
            watched.procs[worker_name(i)] = psutil.Process(proc.pid)
        worker = worker_procs[0]
        watched.procs |= service_processes(run)
        simulator, sim_out, labels_path = start_simulator(env, workdir, devices, warmup_s, seconds)
        watched.procs["simulator"] = psutil.Process(simulator.pid)
        began = time.time()
        while simulator.poll() is None:
            if profile_to is not None and profiler is None and time.time() - began >= warmup_s:
                profiler = _profile(worker.pid, min(seconds, 30.0), profile_to)
            probe, taken = take_sample(probe, run, watched)
            if taken is not None:
                samples.append(taken)
            time.sleep(SAMPLE_S)
        time.sleep(3.0)  # the last alerts on their way
        summary = simulator_summary(sim_out)
        samples_per_frame = summary["samples"] / max(summary["frames"], 1)
        labels = [orjson.loads(x) for x in labels_path.read_bytes().splitlines() if x.strip()]
    finally:
        if profiler is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(timeout=60)
        for proc in (simulator, *worker_procs):
            if proc is not None:
                _stop(proc)
        collector.stop.set()
        collector.join(timeout=10)
        probe.close()
        discard(run)
    onset = {kind: run.rules.designed_delay_s(kind) for kind in LATENCY_EVENTS}
    alerts = [(t, orjson.loads(v)) for t, v in collector.received]
    latencies = alert_latencies(labels, alerts, onset)
    result = summarize_size(
        devices, samples, began, warmup_s, samples_per_frame, latencies, watched.peak_rss
    )
    return result | {"workers": workers}


def _sweep_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    knee = stats.find_knee(results)
    at_knee = next((r for r in results if r["devices"] == knee["max_devices_realtime"]), None)
    return {
        **knee,
        "p99_alert_latency_s": at_knee["alert_latency_received_s"]["p99"] if at_knee else None,
        "frames_per_s_at_knee": at_knee["consumed_frames_per_s"] if at_knee else 0.0,
    }


def run(
    settings: Settings,
    devices: list[int],
    seconds: float,
    warmup_s: float,
    profile_at: int | None = None,
    profile_path: Path | None = None,
    worker_env: dict[str, str] | None = None,
    workers: Sequence[int] = (1,),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sweep the fleet sizes (smallest first) once per worker count; results and summary.

    The summary's top-level figures are those of the worker count that held the most
    devices; ``by_workers`` has each sweep's. The profile is taken in the first sweep.
    """
    results: list[dict[str, Any]] = []
    by_workers: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="vitalstream-bench-") as tmp, Progress() as progress:
        task = progress.add_task("e2e sweep", total=len(devices) * len(workers))
        for count in workers:
            sweep = []
            for n in sorted(devices):
                progress.update(task, description=f"e2e {n} devices, {count} worker(s)")
                profile_to = profile_path if profile_at == n and count == workers[0] else None
                sweep.append(
                    one_size(
                        settings, n, seconds, warmup_s, Path(tmp), profile_to, worker_env, count
                    )
                )
                progress.advance(task)
                if sweep[-1]["producer_realtime"] and not sweep[-1]["worker_realtime"]:
                    break  # past the knee: larger fleets only fall further behind
            results += sweep
            by_workers[count] = _sweep_summary(sweep)
    best = max(by_workers, key=lambda count: by_workers[count]["max_devices_realtime"])
    summary = {
        **by_workers[best],
        "workers": best,
        "by_workers": {str(count): figures for count, figures in by_workers.items()},
        "seconds_per_size": seconds,
        "warmup_s": warmup_s,
    }
    return results, summary
