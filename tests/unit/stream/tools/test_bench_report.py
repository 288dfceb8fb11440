"""Pure parts of the benchmarks: percentiles, lag trends, real-time verdicts, the knee,
alert-latency matching, profile summaries and the report's shape. Nothing is timed."""

from __future__ import annotations

import math

import pytest

from stream.config import RuleSettings
from stream.tools.bench import stats
from stream.tools.bench.e2e import alert_latencies, bench_scenario
from stream.tools.bench.report import profile_top, render_markdown, table


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


def test_latency_matches_the_first_triggered_alert_after_onset() -> None:
    labels = [
        {"device_id": "d1", "event": "tachycardia", "start": 100.0},
        {"device_id": "d2", "event": "fall", "start": 50.0},
    ]
    alert = {"device_id": "d1", "kind": "tachycardia", "event": "triggered"}
    alerts = [
        (95.5, alert | {"t_event": 95.0, "emitted_at": 95.2}),  # before the event: not it
        (109.5, alert | {"t_event": 109.0, "emitted_at": 109.2}),
        (120.5, alert | {"t_event": 120.0, "emitted_at": 120.2}),
        (130.0, alert | {"event": "resolved", "t_event": 101.0, "emitted_at": 101.0}),
    ]
    found = alert_latencies(labels, alerts, {"tachycardia": 2.0, "fall": 0.0})
    assert found[0]["matched"]
    assert found[0]["emitted_s"] == pytest.approx(7.2)
    assert found[0]["received_s"] == pytest.approx(7.5)
    assert found[1] == {"event": "fall", "matched": False}


def test_bench_scenario_spreads_events_inside_the_measured_span() -> None:
    scenario = bench_scenario(warmup_s=20, seconds=120)
    starts = [p["events"][0]["start"] for p in scenario["patients"]]
    assert len(starts) == 20
    assert min(starts) > 20 and max(starts) <= 20 + 120 - 45
    assert starts == sorted(starts)
    # Whole seconds (the simulator's frame boundaries) and abrupt: the condition exists
    # from the labelled time, so the latency measured is the pipeline's.
    assert all(start == int(start) for start in starts)
    assert {p["events"][0]["onset"] for p in scenario["patients"]} == {"abrupt"}


def test_a_falls_designed_delay_includes_the_inactivity_it_waits_out() -> None:
    rules = RuleSettings()
    assert rules.designed_delay_s("fall") == (
        rules.timing_of("fall").onset_s + rules.fall_inactivity_s
    )
    assert rules.designed_delay_s("tachycardia") == rules.timing_of("tachycardia").onset_s


def test_profile_top_counts_self_and_inclusive_shares() -> None:
    collapsed = "\n".join(
        [
            "main (app.py:1);process (stream/pipeline.py:10);bandpass (stream/features.py:5) 6",
            "main (app.py:1);process (/srv/vs/stream/pipeline.py:10) 2",
            "main (app.py:1);poll (aiokafka/consumer.py:3) 2",
            "garbage line",
        ]
    )
    top = profile_top(collapsed)
    assert top["self"][0] == ("features.py:bandpass", pytest.approx(0.6))
    assert top["self"][2] == ("consumer.py:poll", pytest.approx(0.2))
    totals = dict(top["total"])
    assert "app.py:main" not in totals  # the entry point is on every sample
    assert "consumer.py:poll" not in totals  # library code: only self time
    assert totals["pipeline.py:process"] == pytest.approx(0.8)


def test_table_formats_numbers_and_missing_values() -> None:
    text = table(["a", "b", "c"], [[1234, 0.5, None], [True, math.nan, "x"]])
    lines = text.splitlines()
    assert lines[0] == "| a | b | c |"
    assert lines[2] == "| 1,234 | 0.5 | – |"
    assert lines[3] == "| yes | – | x |"


def _e2e_suite() -> dict:
    row = {
        "devices": 100, "produced_frames_per_s": 99.0, "consumed_frames_per_s": 98.5,
        "consumed_samples_per_s": 21900, "lag_frames_end": 40, "lag_slope_frames_per_s": 0.1,
        "alert_latency_received_s": {"p50": 7.0, "p95": 9.0, "p99": 9.5}, "labels": 10,
        "labels_alerted": 9, "cpu_percent": {"worker": 80.0, "simulator": 5.0},
        "peak_rss_mib": {"worker": 200.0}, "realtime": True, "producer_realtime": True,
        "lag_series": [[0.0, 0], [2.0, 40]], "load_avg_1m": 2.0,
    }  # fmt: skip
    summary = {"max_devices_realtime": 100, "first_failing_devices": None, "limited_by": None,
               "p99_alert_latency_s": 9.5, "seconds_per_size": 60, "warmup_s": 20}  # fmt: skip
    return {"suite": "e2e", "machine": {"cpu": "X", "cores": 2}, "versions": {},
            "results": [row], "summary": summary}  # fmt: skip


def test_report_has_a_section_per_measured_suite_and_names_the_missing() -> None:
    changes = [{"change": "batch filters", "metric": "fr/s", "before": 140.0, "after": 300.0}]
    text = render_markdown(
        {"e2e": _e2e_suite()},
        profile={"self": [("features.py:bandpass", 0.3)], "total": [("app.py:main", 1.0)]},
        changes=changes,
    )
    assert text.startswith("# VitalStream benchmarks")
    assert "## End to end" in text and "**100 devices**" in text
    assert "| 100 | 1 | 99.0 | 98.5 |" in text  # devices, workers, produced, consumed
    assert "## Where the worker's time goes" in text and "features.py:bandpass" in text
    assert "| batch filters | fr/s | 140.0 | 300.0 |" in text
    assert "## Ceilings" not in text
    assert "Not measured yet: `ceiling`, `model`, `influx`, `producer`." in text
