"""Analysis suite: CPU per device-second of the stream core, in memory, stage by stage.

Owns ``vitalstream bench analysis``. A simulated ward of N devices (the default
scenario's patients, then quiet ones) feeds a fresh :class:`~stream.worker.pipeline.Pipeline`
with the shipped models, one fleet-sized batch per second and a timer tick after it, as
the worker and ``vitalstream evaluate`` drive it. Frames are rendered and encoded by the
simulator outside the measured calls. After a warm-up (the 10 s windows full, kernels
compiled), the suite measures the process's CPU time over ``Pipeline.process``,
``Pipeline.tick`` and, every ``stream.checkpoint_s``, ``Pipeline.checkpoint``, and splits
it by the pipeline's own :class:`~stream.worker.pipeline.StageTimes` (each stage's share
of the calls' wall time):
decode, buffer, features, model inputs, inference, rules, lines. A device-second is one
device's second of signals (one frame); the figure to beat is ``us_per_device_second``.

No services: Kafka's and Faust's own cost per message is the ``ceiling`` and ``headroom``
suites'.
"""

from __future__ import annotations

import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from rich.progress import Progress

from stream.worker.pipeline import STAGES

SCENARIO = "default"
SEED = 7
START = 1_700_000_000.0
PARTITIONS = 3


def measure(devices: int, seconds: int, warmup: int) -> dict[str, Any]:
    """One fleet size: CPU µs per device-second, in total and by stage."""
    from producers.fleet import Fleet
    from producers.scenario import load_scenario
    from stream.scoring.scorer import Scorer
    from stream.tools.evaluation.runner import evaluation_settings
    from stream.worker.collector import settle
    from stream.worker.ingest import RawRecord
    from stream.worker.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="vitalstream-bench-analysis-") as tmp:
        settings = evaluation_settings(Path(tmp) / "registry")  # the shipped models
        scorer = Scorer.from_registry(settings)
        pipeline = Pipeline(settings, scorer, worker="bench")
    settle()  # the collector policy of a worker process (stream.worker.collector)
    fleet = Fleet(load_scenario(SCENARIO), devices, seed=SEED, start=START, faults=False)
    offset = 0
    for device_id, payload in fleet.enrolments():
        offset += 1
        pipeline.save(pipeline.enrol(RawRecord(device_id.encode(), payload, 0, offset), START))
    partition = {d: zlib.crc32(d.encode()) % PARTITIONS for d in fleet.device_ids}
    checkpoint_every = max(round(settings.stream.checkpoint_s), 1)  # seconds of frames
    cpu = wall = 0.0
    frames = windows = alerts = 0
    for second in range(warmup + seconds):
        if second == warmup:
            pipeline.stages.reset()
            cpu = wall = 0.0
            frames = windows = alerts = 0
        tick = fleet.tick()
        records = []
        for device_id, payload in tick.messages:
            offset += 1
            records.append(RawRecord(device_id.encode(), payload, partition[device_id], offset))
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        output = pipeline.process(records, now=tick.t + 1.0)
        pipeline.save(output)
        ticked = pipeline.tick(now=tick.t + 1.5)
        pipeline.save(ticked)
        if (second + 1) % checkpoint_every == 0:
            pipeline.checkpoint()  # the detectors' and models' state, as the worker does
        cpu += time.process_time() - cpu_started
        wall += time.perf_counter() - wall_started
        metrics = output.metrics
        frames += metrics.frames if metrics is not None else 0
        windows += metrics.windows if metrics is not None else 0
        alerts += len(output.alerts) + len(ticked.alerts)
    device_seconds = frames  # one frame is one device's second (no faults)
    per = 1e6 / max(device_seconds, 1)
    # Stage times are wall time (a CPU clock per stage and window would cost more than some
    # stages); on a shared machine wall runs ahead of CPU, so each stage gets its share of
    # the measured calls' wall time, applied to their CPU time.
    cpu_per_wall = cpu / wall if wall > 0 else 0.0
    stages = {name: round(pipeline.stages.seconds[name] * cpu_per_wall * per, 2) for name in STAGES}
    return {
        "devices": devices,
        "seconds": seconds,
        "device_seconds": device_seconds,
        "windows": windows,
        "alerts": alerts,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "us_per_device_second": round(cpu * per, 2),
        "us_per_device_second_by_stage": stages,
        # CPU the stages do not account for: batch bookkeeping, the reorder buffer's
        # release, silence checks, and threads other than the pipeline's.
        "us_unaccounted": round(cpu * per - sum(stages.values()), 2),
    }


def run(
    devices: list[int], seconds: float, warmup: float, repeat: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every fleet size ``repeat`` times; the summary is the median run at the largest."""
    results: list[dict[str, Any]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("analysis", total=len(devices) * repeat)
        for count in devices:
            for attempt in range(repeat):
                row = measure(count, int(seconds), int(warmup))
                row["repeat"] = attempt
                results.append(row)
                progress.advance(task)
    return results, summarize(results)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest fleet's median run (by total CPU per device-second), with the spread of
    its repeats (max / min - 1) as the noise to read differences against.

    >>> rows = [{"devices": 10, "us_per_device_second": v, "us_per_device_second_by_stage": {}}
    ...         for v in (110.0, 100.0, 130.0)]
    >>> s = summarize(rows)
    >>> s["us_per_device_second"], s["repeats"], s["spread"]
    (110.0, 3, 0.3)
    """
    if not results:
        return {}
    largest = max(r["devices"] for r in results)
    runs = sorted(
        (r for r in results if r["devices"] == largest), key=lambda r: r["us_per_device_second"]
    )
    median = runs[len(runs) // 2]
    low, high = runs[0]["us_per_device_second"], runs[-1]["us_per_device_second"]
    return {
        "devices": largest,
        "us_per_device_second": median["us_per_device_second"],
        "us_per_device_second_by_stage": median["us_per_device_second_by_stage"],
        "repeats": len(runs),
        "spread": round(high / low - 1.0, 3) if low > 0 else None,
    }
