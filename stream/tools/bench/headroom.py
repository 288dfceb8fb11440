"""Headroom suite: the CPU left for analysis when the fleet's data only flows through.

Owns the suite (the pass-through floor, measured per fleet size) and the arithmetic on
it. For each device count, on fresh topics, bucket and consumer group:

1. start a *pass-through* consumer in its own process
   (:func:`~stream.tools.bench.passthrough.passthrough`), which does what any worker must
   do for every frame and nothing else: consume with aiokafka in the worker's consumer
   group (``stream.app_id``, whose committed offsets
   :class:`~stream.tools.bench.sampling.OffsetProbe` reads), ``orjson.loads`` each frame,
   write the InfluxDB lines the pipeline writes per frame (the frame's ``vitals_lines`` and
   one window's ``feature_lines``, about four lines) through the real
   :class:`~stream.sinks.influx.InfluxSink`, and commit the offsets once the write is durable.
   No validation, windows, features, models or rules;
2. start ``vitalstream simulate`` exactly as the e2e suite does
   (:func:`~stream.tools.bench.e2e.start_simulator`);
3. every ``SAMPLE_S`` read the produced and committed offsets and the CPU time and RSS of
   the simulator, the pass-through, Kafka and influxd;
4. after ``warmup_s``, measure for ``seconds``; then let the pass-through drain and stop it.

What those processes leave of the machine's cores, per consumed frame, is the CPU time the
worker may spend on everything beyond passing data through (:func:`headroom`). The summary
sets it against the worker's CPU per frame at the e2e knee and pydantic's decode cost from
the ceiling suite (:func:`compare`), when their JSON files exist.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from rich.progress import Progress

from stream.config import Settings
from stream.tools.bench.common import child_env, discard, isolated, prepare, read_json, stop_process
from stream.tools.bench.e2e import simulator_summary, start_simulator
from stream.tools.bench.passthrough import feature_template, passthrough
from stream.tools.bench.sampling import (
    SAMPLE_S,
    OffsetProbe,
    Processes,
    Sample,
    service_processes,
    summarize_size,
    take_sample,
)
from stream.tools.bench.stats import frames_per_cpu_s

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

log = logging.getLogger(__name__)

PASSTHROUGH = "passthrough"
SIMULATOR = "simulator"
READY_TIMEOUT_S = 90.0
DRAIN_S = 15.0  # after the simulator stops, the pass-through may catch up this long
STOP_TIMEOUT_S = 60.0
# The flow figures of an e2e per-size result that mean the same here (the pass-through
# stands where the worker stood; no alert latency is measured).
FLOW_KEYS = (
    "devices", "measured_s", "produced_frames_per_s", "consumed_frames_per_s",
    "consumed_samples_per_s", "lag_frames_end", "lag_frames_max", "lag_slope_frames_per_s",
    "lag_series", "producer_realtime", "realtime", "cpu_percent", "peak_rss_mib", "load_avg_1m",
)  # fmt: skip


# -- the pass-through process, from the suite's side ------------------------------------


def _wait_ready(child: multiprocessing.process.BaseProcess, ready: Event, out: Queue) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and child.is_alive():
        if ready.wait(0.3):
            return
    raise RuntimeError(f"the pass-through did not start: {_report(child, out, 1.0)}")


def _report(child: multiprocessing.process.BaseProcess, out: Queue, timeout_s: float) -> Any:
    """What the pass-through put on ``out``, or an error once it died without a word."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = child.is_alive()  # before the get: a report sent just before exiting counts
        try:
            return out.get(timeout=0.5)
        except queue.Empty:
            if not alive or time.monotonic() > deadline:
                return {"error": f"no report (exit code {child.exitcode})"}


def _end(child: multiprocessing.process.BaseProcess, stop: Event) -> None:
    stop.set()
    child.join(timeout=STOP_TIMEOUT_S)
    if child.is_alive():
        child.terminate()
        child.join(timeout=10)


def _drain(probe: OffsetProbe, timeout_s: float) -> tuple[int, int]:
    """Produced and committed frames once the pass-through caught up (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    produced = committed = 0
    while True:
        with contextlib.suppress(Exception):  # a broker hiccup: ask again
            produced, committed = probe.read()
        if (produced and committed >= produced) or time.monotonic() > deadline:
            return produced, committed
        time.sleep(0.5)


# -- arithmetic (pure) -------------------------------------------------------------------


def headroom(cpu_percent: Mapping[str, float], consumed_per_s: float, cores: int) -> dict[str, Any]:
    """What the measured processes leave of ``cores`` (100 % = one core), per frame.

    ``budget_us_per_frame``: CPU µs per consumed frame left for everything the worker does
    beyond passing data through; ``None`` when nothing was consumed.
    """
    used = sum(cpu_percent.values())
    cores_left = max(cores - used / 100, 0.0)
    # Real wearables are not on this machine: what it leaves without the simulator's share
    # (an upper bound: the others were measured competing with the simulator for the CPUs).
    elsewhere = max(cores - (used - cpu_percent.get(SIMULATOR, 0.0)) / 100, 0.0)
    flowing = consumed_per_s > 0
    own = cpu_percent.get(PASSTHROUGH)
    return {
        "cores": cores,
        "total_cpu_percent": round(used, 1),
        "cores_left": round(cores_left, 3),
        "budget_us_per_frame": round(cores_left * 1e6 / consumed_per_s, 1) if flowing else None,
        "cores_left_devices_elsewhere": round(elsewhere, 3),
        "budget_us_per_frame_devices_elsewhere": (
            round(elsewhere * 1e6 / consumed_per_s, 1) if flowing else None
        ),
        "passthrough_us_per_frame": (
            round(own * 1e4 / consumed_per_s, 1) if flowing and own is not None else None
        ),
    }


def speedup(cost_us: float | None, budget_us: float | None) -> float | None:
    """How many times faster a per-frame cost must get to fit the budget (``None`` when
    either is unknown or nothing is left)."""
    if cost_us is None or not budget_us:
        return None
    return round(cost_us / budget_us, 2)


def e2e_worker_cost(e2e: Mapping[str, Any] | None) -> dict[str, Any]:
    """The worker's CPU µs per frame at the e2e knee (the size and worker count of its
    summary): ``1e6 / frames per worker CPU-second``."""
    summary = (e2e or {}).get("summary") or {}
    devices = summary.get("max_devices_realtime")
    workers = summary.get("workers", 1)
    at_knee = next(
        (
            r
            for r in (e2e or {}).get("results", [])
            if r["devices"] == devices and r.get("workers", 1) == workers
        ),
        None,
    )
    per_cpu_s = frames_per_cpu_s(at_knee) if at_knee else None
    return {
        "e2e_knee_devices": devices if at_knee else None,
        "e2e_knee_workers": workers if at_knee else None,
        "e2e_worker_us_per_frame": round(1e6 / per_cpu_s, 1) if per_cpu_s else None,
    }


def pydantic_decode_us(ceiling: Mapping[str, Any] | None) -> float | None:
    """``Frame.model_validate_json`` µs per frame, from the ceiling suite."""
    rate = next(
        (r["rate"] for r in (ceiling or {}).get("results", []) if r["name"] == "pydantic_decode"),
        None,
    )
    return round(1e6 / rate, 1) if rate else None


def compare(
    largest: Mapping[str, Any], e2e: Mapping[str, Any] | None, ceiling: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The budget against the measured worker and decode costs.

    ``speedup_needed``: the whole worker's µs per frame over the budget;
    ``analysis_speedup_needed``: the same for its work beyond the pass-through (the worker's
    cost minus the pass-through's own, which the budget already paid for).
    """
    budget = largest.get("budget_us_per_frame")
    worker = e2e_worker_cost(e2e)
    cost = worker["e2e_worker_us_per_frame"]
    own = largest.get("passthrough_us_per_frame")
    beyond = max(cost - own, 0.0) if cost is not None and own is not None else None
    return {
        **worker,
        "speedup_needed": speedup(cost, budget),
        "analysis_speedup_needed": speedup(beyond, budget),
        "speedup_needed_devices_elsewhere": speedup(
            cost, largest.get("budget_us_per_frame_devices_elsewhere")
        ),
        "pydantic_decode_us_per_frame": pydantic_decode_us(ceiling),
    }


def summarize(
    results: Sequence[Mapping[str, Any]],
    seconds: float,
    warmup_s: float,
    bench_dir: Path | None = None,
) -> dict[str, Any]:
    """The largest size's figures and, from ``bench_dir``'s e2e/ceiling JSON, the comparison."""
    largest = max(results, key=lambda r: r["devices"])
    keys = (
        "devices", "produced_frames_per_s", "consumed_frames_per_s", "realtime",
        "passthrough_keeps_up", "cpu_percent", "total_cpu_percent", "cores", "cores_left",
        "budget_us_per_frame", "passthrough_us_per_frame", "lines_per_frame",
        "cores_left_devices_elsewhere", "budget_us_per_frame_devices_elsewhere",
    )  # fmt: skip
    e2e = read_json(bench_dir / "e2e.json") if bench_dir else None
    ceiling = read_json(bench_dir / "ceiling.json") if bench_dir else None
    return {
        **{key: largest.get(key) for key in keys},
        **compare(largest, e2e, ceiling),
        "seconds_per_size": seconds,
        "warmup_s": warmup_s,
    }


def size_result(
    devices: int,
    samples: list[Sample],
    began: float,
    warmup_s: float,
    samples_per_frame: float,
    peak_rss: Mapping[str, float],
    flowed: Mapping[str, int],
    cores: int,
) -> dict[str, Any]:
    """One size: e2e's flow figures (rates, lag, verdicts, CPU) and the headroom on them."""
    flow = summarize_size(devices, samples, began, warmup_s, samples_per_frame, [], dict(peak_rss))
    frames = flowed["frames"]
    return {
        **{key: flow[key] for key in FLOW_KEYS},
        "passthrough_keeps_up": flow["worker_keeps_up"],
        **headroom(flow["cpu_percent"], flow["consumed_frames_per_s"], cores),
        "frames_consumed": frames,
        "lines_written": flowed["lines"],
        "lines_per_frame": round(flowed["lines"] / frames, 2) if frames else None,
        "undecodable_frames": flowed["undecodable"],
        "write_failures": flowed["write_failures"],
    }


# -- the suite ---------------------------------------------------------------------------


def one_size(
    settings: Settings,
    devices: int,
    seconds: float,
    warmup_s: float,
    workdir: Path,
    isolate: bool = True,
) -> dict[str, Any]:
    """Measure one fleet size; always stops its processes and (``isolate``) drops its
    topics and bucket. Without ``isolate`` it runs on ``settings``' own topics, group and
    bucket, which the caller created (and reads back afterwards)."""
    run = isolated(settings, f"headroom{devices}") if isolate else settings
    context = multiprocessing.get_context("spawn")
    stop, ready, out = context.Event(), context.Event(), context.Queue()
    child = context.Process(
        target=passthrough,
        args=(run, feature_template(), stop, ready, out),
        name="bench-passthrough",
        daemon=True,
    )
    watched = Processes()
    samples: list[Sample] = []
    simulator = probe = None
    try:
        if isolate:
            prepare(run)
        probe = OffsetProbe(run)
        child.start()
        _wait_ready(child, ready, out)
        watched.procs[PASSTHROUGH] = psutil.Process(child.pid)
        watched.procs |= service_processes(run)
        simulator, sim_out, _ = start_simulator(child_env(run), workdir, devices, warmup_s, seconds)
        watched.procs["simulator"] = psutil.Process(simulator.pid)
        began = time.time()
        while simulator.poll() is None:
            probe, taken = take_sample(probe, run, watched)
            if taken is not None:
                samples.append(taken)
            time.sleep(SAMPLE_S)
        produced, committed = _drain(probe, DRAIN_S)
        sent = simulator_summary(sim_out)
        stop.set()
        flowed = _report(child, out, STOP_TIMEOUT_S)
    finally:
        if simulator is not None:
            stop_process(simulator)
        if child.pid is not None:
            _end(child, stop)
        if probe is not None:
            probe.close()
        if isolate:
            discard(run)
    if "error" in flowed:
        raise RuntimeError(f"the pass-through failed: {flowed['error']}")
    result = size_result(
        devices, samples, began, warmup_s, sent["samples"] / max(sent["frames"], 1),
        watched.peak_rss, flowed, os.cpu_count() or 1,
    )  # fmt: skip
    return result | {"frames_produced_total": produced, "lag_after_drain": produced - committed}


def run(
    settings: Settings,
    devices: Iterable[int],
    seconds: float = 60.0,
    warmup_s: float = 20.0,
    bench_dir: Path | None = None,
    isolate: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each fleet size (smallest first); results and the largest size's summary.

    ``isolate=False`` measures one size on ``settings``' own topics and bucket (tests).
    """
    sizes = sorted(devices)
    if not isolate and len(sizes) != 1:
        raise ValueError("without isolation, one fleet size at a time")
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="vitalstream-headroom-") as tmp,
        Progress() as progress,
    ):
        task = progress.add_task("headroom", total=len(sizes))
        for n in sizes:
            progress.update(task, description=f"headroom {n} devices")
            results.append(one_size(settings, n, seconds, warmup_s, Path(tmp), isolate))
            progress.advance(task)
    return results, summarize(results, seconds, warmup_s, bench_dir)
