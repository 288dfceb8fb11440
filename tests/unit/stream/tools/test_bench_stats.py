"""Pure arithmetic of the benchmarks: percentiles, lag trends, real-time verdicts, the
knee. Nothing is timed."""

from __future__ import annotations

import math

import pytest

from stream.tools.bench import stats


def test_percentiles_interpolate_and_ignore_non_finite() -> None:
    values = [float(v) for v in range(1, 101)] + [math.nan, math.inf]
    result = stats.percentiles(values)
    assert result["p50"] == pytest.approx(50.5)
    assert result["p95"] == pytest.approx(95.05)
    assert result["p99"] == pytest.approx(99.01)


def test_percentiles_of_nothing_are_nan() -> None:
    assert all(math.isnan(v) for v in stats.percentiles([]).values())


def test_slope_and_rate() -> None:
    times = [0.0, 2.0, 4.0, 6.0]
    assert stats.slope(times, [10, 14, 18, 22]) == pytest.approx(2.0)
    assert stats.slope([1.0], [5.0]) == 0.0
    assert stats.rate(times, [100, 150, 210, 400]) == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("produced", "consumed", "slope", "lag", "expected"),
    [
        (1000.0, 990.0, 2.0, 3000.0, (True, True)),  # saw-tooth commits, steady
        (1000.0, 700.0, 300.0, 9000.0, (True, False)),  # falls behind
        (1000.0, 1000.0, 0.0, 30_000.0, (True, False)),  # steady but 30 s behind
        (600.0, 600.0, 0.0, 100.0, (False, True)),  # the simulator could not keep up
    ],
)
def test_realtime_verdicts(produced, consumed, slope, lag, expected) -> None:
    verdict = stats.holds_realtime(1000, produced, consumed, slope, lag)
    assert (verdict["producer"], verdict["consumer"]) == expected
    assert verdict["realtime"] == all(expected)


def test_a_fleet_kept_up_with_but_alerted_late_is_not_real_time() -> None:
    late = stats.holds_realtime(1000, 1000.0, 990.0, 2.0, 3000.0, stats.LATENCY_GOAL_S + 0.5)
    assert late["keeps_up"] and not late["consumer"] and not late["realtime"]
    in_time = stats.holds_realtime(1000, 1000.0, 990.0, 2.0, 3000.0, stats.LATENCY_GOAL_S)
    assert in_time["realtime"]


def _result(devices: int, realtime: bool, producer: bool = True) -> dict:
    return {"devices": devices, "realtime": realtime, "producer_realtime": producer}


def test_knee_is_the_last_realtime_size_before_the_first_worker_failure() -> None:
    results = [_result(500, False), _result(100, True), _result(250, True), _result(1000, True)]
    knee = stats.find_knee(results)
    assert knee == {"max_devices_realtime": 250, "first_failing_devices": 500,
                    "limited_by": "worker", "inconclusive_devices": []}  # fmt: skip


def test_sizes_the_producer_could_not_feed_are_skipped_as_inconclusive() -> None:
    results = [_result(50, False, producer=False), _result(100, True), _result(150, False)]
    knee = stats.find_knee(results)
    assert knee["max_devices_realtime"] == 100
    assert knee["first_failing_devices"] == 150
    assert knee["inconclusive_devices"] == [50]
    only_producer = stats.find_knee([_result(100, True), _result(200, False, producer=False)])
    assert only_producer["limited_by"] == "producer"
    assert stats.find_knee([_result(100, False)])["max_devices_realtime"] == 0


def test_latency_parts_split_detection_from_delivery() -> None:
    labels = [
        {"matched": True, "frame_time_s": 1.0, "received_s": 1.5},
        {"matched": True, "frame_time_s": 5.0, "received_s": 5.25},
        {"matched": True, "frame_time_s": 2.0, "received_s": 4.0},
        {"matched": False, "frame_time_s": None, "received_s": None},
    ]
    parts = stats.latency_parts(labels)
    assert parts["detection_s"]["p50"] == 2.0
    assert parts["detection_s"]["p99"] == pytest.approx(4.94)
    assert parts["delivery_s"]["p50"] == 0.5
    assert parts["delivery_s"]["p99"] == pytest.approx(1.97)
