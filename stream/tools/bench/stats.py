"""Pure arithmetic of the benchmarks: percentiles, lag trends, real-time verdicts, the knee,
frames per worker CPU-second.

No I/O and no services, so it is unit-tested (tests/unit/stream/tools/test_bench_stats.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# A consumer keeps real time when it consumes (nearly) everything produced and its lag
# does not grow: Faust commits every few seconds, so the lag saw-tooths; only its trend
# and its size in seconds of input say whether the worker falls behind.
# Rates come from committed offsets, which move in steps of up to ~3 s of input: over a
# 40-60 s window that alone is a 5-8 % error, so the lag trend and bound decide.
CONSUMED_SHARE = 0.9
PRODUCED_SHARE = 0.95  # the simulator paces itself: below this it could not keep up
LAG_GROWTH_SHARE = 0.05  # lag may grow by at most this share of the input rate
LAG_BOUND_S = 15.0  # nor hold more than this many seconds of input at the end
# An alerting pipeline that keeps up but alerts late is not real time: a size also needs
# its p99 alert latency within the product's goal (3 s beyond each rule's designed delay).
LATENCY_GOAL_S = 3.0


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` (linear interpolation); NaN when empty."""
    data = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if data.size == 0:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": float(np.percentile(data, q)) for q in qs}


def slope(times: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (units per second); 0 if < 2 points."""
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    if t.size < 2 or np.ptp(t) == 0:
        return 0.0
    centred = t - t.mean()
    return float(centred @ (y - y.mean()) / (centred @ centred))


def rate(times: Sequence[float], counts: Sequence[float]) -> float:
    """Average rate of a monotone counter between its first and last sample."""
    if len(times) < 2 or times[-1] == times[0]:
        return 0.0
    return float((counts[-1] - counts[0]) / (times[-1] - times[0]))


def latency_parts(latencies: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Percentiles of the two parts of the matched labels' alert latency: *detection*
    (``frame_time_s``: the data time of the window that fired, past onset and designed
    delay: the signal and alert logic) and *delivery* (``received_s`` minus it: batching,
    the worker's backlog, Kafka), so a late p99 says which one made it late.

    >>> parts = latency_parts([{"matched": True, "frame_time_s": 2.0, "received_s": 2.5},
    ...                        {"matched": False}])
    >>> parts["detection_s"]["p99"], parts["delivery_s"]["p99"]
    (2.0, 0.5)
    """
    matched = [x for x in latencies if x["matched"]]
    return {
        "detection_s": percentiles([x["frame_time_s"] for x in matched]),
        "delivery_s": percentiles([x["received_s"] - x["frame_time_s"] for x in matched]),
    }


def holds_realtime(
    devices: int,
    produced_per_s: float,
    consumed_per_s: float,
    lag_slope: float,
    final_lag: float,
    p99_latency_s: float | None = None,
) -> dict[str, bool]:
    """Verdicts for one fleet size (one frame per device per second).

    ``producer``: the simulator put out (nearly) a frame per device per second.
    ``consumer``: the worker consumed what was produced without a growing backlog and,
    when alert latency was measured, alerted within :data:`LATENCY_GOAL_S` (p99);
    ``keeps_up``: the backlog part alone.
    ``realtime``: producer and consumer; a size the producer could not feed proves nothing
    about the worker.
    """
    producer = produced_per_s >= PRODUCED_SHARE * devices
    keeps_up = (
        consumed_per_s >= CONSUMED_SHARE * produced_per_s
        and lag_slope <= LAG_GROWTH_SHARE * max(produced_per_s, 1.0)
        and final_lag <= LAG_BOUND_S * max(produced_per_s, 1.0)
    )
    in_time = p99_latency_s is None or p99_latency_s <= LATENCY_GOAL_S
    consumer = keeps_up and in_time
    return {
        "producer": producer,
        "keeps_up": keeps_up,
        "consumer": consumer,
        "realtime": producer and consumer,
    }


def find_knee(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The largest real-time fleet size below the first size the *worker* fails (the knee).

    Sizes are judged in increasing order. A size the simulator could not feed (broker
    trouble, a starved producer) says nothing about the worker and is skipped; a
    real-time size above a worker failure is noise on a shared machine and does not count.
    """
    ordered = sorted(results, key=lambda r: r["devices"])
    best: dict[str, Any] | None = None
    first_failure: dict[str, Any] | None = None
    inconclusive = []
    for result in ordered:
        if result["realtime"]:
            best = result
        elif not result["producer_realtime"]:
            inconclusive.append(result["devices"])
        else:
            first_failure = result
            break
    limited_by = "worker" if first_failure else ("producer" if inconclusive else None)
    return {
        "max_devices_realtime": best["devices"] if best else 0,
        "first_failing_devices": first_failure["devices"] if first_failure else None,
        "limited_by": limited_by,
        "inconclusive_devices": inconclusive,
    }


def frames_per_cpu_s(result: Mapping[str, Any]) -> float | None:
    """Frames consumed per second of worker CPU: the figure the machine's load (other
    jobs taking CPU from the worker) does not change, unlike frames/s."""
    cpu = result["cpu_percent"].get("workers", result["cpu_percent"].get("worker"))
    return round(100 * result["consumed_frames_per_s"] / cpu, 1) if cpu else None
