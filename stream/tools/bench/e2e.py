"""End-to-end suite: a live fleet's load and real ``vitalstream worker`` processes, fleet
size swept.

Owns the sweep. For each device count, on fresh topics, bucket and consumer group (with
``partitions`` partitions each when given, else the configured count):

1. with the ``prerendered`` load (the default), render the fleet's whole run ahead of
   time (:func:`stream.tools.bench.load.render`: the simulator's own frames and labels for
   the bench scenario, seed 1, faults on) before any measured process starts;
2. start ``workers`` ``vitalstream worker`` processes (one consumer group) and wait until
   each says Ready;
3. start the load, its own process at one frame per device per second: the pre-rendered
   run's sender (``python -m stream.tools.bench.load send``: re-dated to now, each
   second's frames sent as that second ends, ~15-20 µs of CPU per frame) or, with
   ``load="simulate"``, ``vitalstream simulate`` (speed 1, rendering physiology as it
   goes: at thousands of devices a core of its own), on a bench scenario whose labelled
   events are spread over the measured span;
4. every ``SAMPLE_S`` read the frames topic's end offsets and the worker group's committed
   offsets (Kafka admin) and the CPU time and RSS of the workers, the load, the Kafka
   broker and influxd (psutil), as :mod:`stream.tools.bench.sampling` does for every
   suite: each one's CPU % of one core is the run's CPU budget;
5. after ``warmup_s``, measure for ``seconds``: frames/s produced and consumed, the lag and
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
import math
import shutil
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
from stream.tools.bench.common import (
    WorkerProcess,
    child_env,
    cli,
    discard,
    isolated,
    prepare,
    start_workers,
    stop_process,
    stop_workers,
    wait_all_ready,
    with_partitions,
)
from stream.tools.bench.sampling import (
    SAMPLE_S,
    OffsetProbe,
    Processes,
    Sample,
    service_processes,
    summarize_size,
    take_sample,
)
from stream.tools.bench.throughput import prime_kernels, restarted_services

# Events whose alert has a plain onset delay; four patients each, spread over the run.
LATENCY_EVENTS = ("tachycardia", "bradycardia", "desaturation", "tachypnoea", "fall")
LABELS_PER_KIND = 4
EVENT_SPAN_S = 45.0
SEED = 1
# The load sources: frames rendered ahead and sent at 1x (cheap), or the live simulator.
PRERENDERED, SIMULATE = "prerendered", "simulate"
LOADS = (PRERENDERED, SIMULATE)
# The watched process of each load source (a column of the CPU budget).
LOAD_PROCESS = {PRERENDERED: "load", SIMULATE: "simulator"}


def bench_scenario(warmup_s: float, seconds: float) -> dict[str, Any]:
    """Twenty labelled patients (four per kind in :data:`LATENCY_EVENTS`); the rest are quiet.

    Events start between warm-up and ``EVENT_SPAN_S`` before the end, so each has time
    to be detected within the measured span whatever the fleet size. Their onsets are
    abrupt: the condition exists from the labelled second, so the latency measured is the
    pipeline's, not the simulated body's drift towards the event's values. For the same
    reason their link is reliable (``reliable_link``: no frame held back or lost): a frame
    the simulator loses (0.1 %) makes the worker hold its device's next frames until the
    gap fills or ``lateness_s`` passes, and one lost before a labelled onset added 2.5-3.3 s
    to that label (a tachypnoea at 1,000 devices), as a late one (0.3 %, 1-3 s) would.
    Duplicates and clock jitter stay, and every fault of the rest of the fleet.
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
                "reliable_link": True,
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


def render_load(
    workdir: Path, devices: int, warmup_s: float, seconds: float, per_message: int = 1
) -> Path:
    """Render the run :func:`start_simulator` would send (same scenario, seed, span and
    frames per message) into a directory for :func:`start_sender`; before any measured
    process starts."""
    from stream.tools.bench import load

    directory = workdir / f"load-{devices}-{per_message}"
    load.render(
        bench_scenario(warmup_s, seconds), devices, math.ceil(warmup_s + seconds), directory,
        seed=SEED, per_message=per_message,
    )  # fmt: skip
    return directory


def start_sender(env: dict[str, str], directory: Path) -> tuple[subprocess.Popen, Path]:
    """The pre-rendered load's sender (its own process); the file its summary goes to."""
    out = directory / "sent.json"
    sender = subprocess.Popen(
        [sys.executable, "-m", "stream.tools.bench.load", "send", str(directory), "--out",
         str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return sender, out


def sender_outcome(directory: Path, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sender's summary and the rendered labels, re-dated by the sender's shift."""
    from stream.tools.bench import load

    if not out.is_file():
        raise RuntimeError("the load generator wrote no summary (it failed or was stopped)")
    summary = orjson.loads(out.read_bytes())
    labels = load.load(directory).meta["labels"]
    return summary, load.shifted_labels(labels, summary["shift_s"])


def simulator_summary(sim_out: Path) -> dict[str, Any]:
    """The simulator's ``--json`` summary (its last output line): frames, samples…"""
    return orjson.loads(sim_out.read_bytes().strip().splitlines()[-1])


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


def timed_labels(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The labels whose alert latency is measured: the bench scenario's events
    (:data:`LATENCY_EVENTS`). The simulator also labels standing conditions over the whole
    run (a fall patient's usual activity is ``walking``), which raise no alert to time.

    >>> [x["event"] for x in timed_labels([{"event": "fall"}, {"event": "walking"}])]
    ['fall']
    """
    return [label for label in labels if label["event"] in LATENCY_EVENTS]


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
    load: str = PRERENDERED,
    partitions: int | None = None,
    per_message: int = 1,
) -> dict[str, Any]:
    """Measure one fleet size on fresh topics; always cleans up its processes and topics.

    ``workers`` worker processes share the frames topic's partitions (one consumer group),
    as a scaled-out deployment does; the first is the one ``profile_to`` samples. ``load``
    is one of :data:`LOADS`; ``per_message`` devices' frames go in each message (gateway
    batches when > 1, as ``vitalstream simulate --per-message`` sends them).
    """
    if load not in LOADS:
        raise ValueError(f"load must be one of {', '.join(LOADS)}, got {load!r}")
    load_dir = (
        render_load(workdir, devices, warmup_s, seconds, per_message)
        if load == PRERENDERED
        else None
    )
    run = with_partitions(isolated(settings, f"e2e{devices}"), partitions)
    prepare(run)
    env = child_env(run) | (worker_env or {})
    collector = AlertCollector(run)
    collector.start()
    probe = OffsetProbe(run)
    watched = Processes()
    workers_started: list[WorkerProcess] = []
    simulator = profiler = None
    samples: list[Sample] = []
    load_summary: dict[str, Any] = {}
    on_topic = None
    restarted: list[str] = []
    try:
        workers_started = start_workers(env, workdir, workers, tag=f"-{devices}")
        wait_all_ready(
            workers_started, lambda w: watched.procs.update({w.name: psutil.Process(w.proc.pid)})
        )
        worker = workers_started[0].proc
        services = service_processes(run)
        watched.procs |= services
        if load_dir is not None:
            simulator, sim_out = start_sender(env, load_dir)
        else:
            simulator, sim_out, labels_path = start_simulator(
                env, workdir, devices, warmup_s, seconds, per_message
            )
        watched.procs[LOAD_PROCESS[load]] = psutil.Process(simulator.pid)
        began = time.time()
        while simulator.poll() is None:
            if profile_to is not None and profiler is None and time.time() - began >= warmup_s:
                profiler = _profile(worker.pid, min(seconds, 30.0), profile_to)
            probe, taken = take_sample(probe, run, watched)
            if taken is not None:
                samples.append(taken)
            time.sleep(SAMPLE_S)
        time.sleep(3.0)  # the last alerts on their way
        restarted = restarted_services(services, service_processes(run))
        with contextlib.suppress(Exception):
            on_topic = probe.read()[0]
        if load_dir is not None:
            summary, labels = sender_outcome(load_dir, sim_out)
            load_summary = summary
        else:
            summary = simulator_summary(sim_out)
            labels = [orjson.loads(x) for x in labels_path.read_bytes().splitlines() if x.strip()]
        samples_per_frame = summary["samples"] / max(summary["frames"], 1)
        # Offsets count messages: a gateway batch carries per_message devices' frames.
        messages = summary.get("messages_sent") or summary.get("messages")
        frames_per_message = summary["frames"] / messages if per_message > 1 and messages else 1.0
    finally:
        if profiler is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(timeout=60)
        if simulator is not None:
            stop_process(simulator)
        stop_workers(workers_started)
        collector.stop.set()
        collector.join(timeout=10)
        probe.close()
        discard(run)
        if load_dir is not None:
            shutil.rmtree(load_dir, ignore_errors=True)  # GBs at thousands of devices
    onset = {kind: run.rules.designed_delay_s(kind) for kind in LATENCY_EVENTS}
    alerts = [(t, orjson.loads(v)) for t, v in collector.received]
    latencies = alert_latencies(timed_labels(labels), alerts, onset)
    result = summarize_size(
        devices, samples, began, warmup_s, samples_per_frame, latencies, watched.peak_rss,
        frames_per_message,
    )  # fmt: skip
    return result | {
        "workers": workers,
        "load": load,
        "per_message": per_message,
        "frames_per_message": round(frames_per_message, 3),
        "partitions": run.kafka.partitions,
        "frames_on_topic": on_topic,
        "load_summary": load_summary,
        "cpu_budget": cpu_budget(result["cpu_percent"], LOAD_PROCESS[load]),
        # Not empty: Kafka or influxd restarted during the run (another job on the
        # machine); its CPU figures stop short and the load stalled: not to be used.
        "services_restarted": restarted,
    }


def cpu_budget(cpu_percent: dict[str, float], load_process: str) -> dict[str, float | None]:
    """Where the machine's CPU went, each in % of one core: the workers together, the
    load generator, the Kafka broker, influxd and their total (``None`` when a process was
    not watched, e.g. services this project did not start).

    >>> cpu_budget({"worker": 80.0, "worker-2": 70.0, "workers": 150.0, "load": 9.5,
    ...             "kafka": 20.0}, "load")
    {'workers': 150.0, 'load': 9.5, 'kafka': 20.0, 'influxd': None, 'total': 179.5}
    """
    parts = {
        "workers": cpu_percent.get("workers", cpu_percent.get("worker")),
        "load": cpu_percent.get(load_process),
        "kafka": cpu_percent.get("kafka"),
        "influxd": cpu_percent.get("influxd"),
    }
    parts["total"] = round(sum(v for v in parts.values() if v is not None), 1)
    return parts


def _sweep_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    knee = stats.find_knee(results)
    at_knee = next((r for r in results if r["devices"] == knee["max_devices_realtime"]), None)
    return {
        **knee,
        "p99_alert_latency_s": at_knee["alert_latency_received_s"]["p99"] if at_knee else None,
        "frames_per_s_at_knee": at_knee["consumed_frames_per_s"] if at_knee else 0.0,
        # Every size's verdict, p99 and CPU budget: where the cores go past the knee too.
        "by_devices": {
            str(r["devices"]): {
                "realtime": r["realtime"],
                "consumed_frames_per_s": r["consumed_frames_per_s"],
                "p99_alert_latency_s": r["alert_latency_received_s"]["p99"],
                # Its two parts: the signal and alert logic, and getting the alert out.
                "p99_detection_s": r.get("alert_detection_s", {}).get("p99"),
                "p99_delivery_s": r.get("alert_delivery_s", {}).get("p99"),
                "cpu_budget": r.get("cpu_budget"),
                "services_restarted": r.get("services_restarted", []),
            }
            for r in results
        },
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
    load: str = PRERENDERED,
    partitions: int | None = None,
    stop_at_knee: bool = True,
    per_message: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sweep the fleet sizes (smallest first) once per worker count; results and summary.

    The summary's top-level figures are those of the worker count that held the most
    devices; ``by_workers`` has each sweep's. The profile is taken in the first sweep.
    ``load`` picks the load source (:data:`LOADS`), ``partitions`` the topics' partitions.
    With ``stop_at_knee`` a sweep ends at the first size the workers cannot hold; without,
    every size is measured (to show where the CPU goes past the knee).
    """
    results: list[dict[str, Any]] = []
    by_workers: dict[int, dict[str, Any]] = {}
    # Compiling the signal kernels is start-up, not real time: fill numba's cache first,
    # or the first size's worker spends its warm-up and more compiling.
    primed_s = prime_kernels()
    with tempfile.TemporaryDirectory(prefix="vitalstream-bench-") as tmp, Progress() as progress:
        task = progress.add_task("e2e sweep", total=len(devices) * len(workers))
        for count in workers:
            sweep = []
            for n in sorted(devices):
                progress.update(task, description=f"e2e {n} devices, {count} worker(s)")
                profile_to = profile_path if profile_at == n and count == workers[0] else None
                measured = one_size(
                    settings, n, seconds, warmup_s, Path(tmp), profile_to, worker_env, count,
                    load=load, partitions=partitions, per_message=per_message,
                )  # fmt: skip
                sweep.append(measured)
                progress.advance(task)
                past_knee = sweep[-1]["producer_realtime"] and not sweep[-1]["worker_realtime"]
                if stop_at_knee and past_knee:
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
        "load": load,
        "partitions": partitions,
        "kernels_primed_s": round(primed_s, 2),
    }
    return results, summary
