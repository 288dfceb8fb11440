"""The benchmark report's Markdown: tables, a section per measured suite (headroom after
the ceilings), the missing ones named. Nothing is timed."""

from __future__ import annotations

import math

from stream.tools.bench.report_sections import render_markdown, table


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


def test_report_has_a_headroom_section_after_the_ceilings(headroom_suite) -> None:
    ceiling = {"summary": {"frames": 20000}, "results": [], "machine": {}, "versions": {}}
    text = render_markdown({"headroom": headroom_suite, "ceiling": ceiling})
    assert "## Headroom (`vitalstream bench headroom`)" in text
    assert text.index("## Ceilings") < text.index("## Headroom")
    assert "**5,000 devices**" in text
    assert "**90.3 µs of CPU per frame**" in text
    assert "**32.34× faster**" in text and "31.23×" in text
    assert "2,920.0 µs of CPU per frame" in text and "135.3 µs" in text
    # devices, produced, consumed, lag, trend, simulator, Kafka, influxd, pass-through CPU
    assert "| 5,000 | 4,990.0 | 4,985.0 | 900 | 1.5 | 45.0 | 20.0 | 40.0 | 50.0 | 155.0 |" in text
    assert "| 0.45 | 90.3 | 100.3 | 4.00 | yes |" in text
    assert "![headroom](bench/headroom_cpu.png)" in text


def test_report_without_headroom_skips_it_and_does_not_ask_for_it(headroom_suite) -> None:
    text = render_markdown({})
    assert "## Headroom" not in text
    assert "Not measured yet: `e2e`, `ceiling`, `model`, `influx`, `producer`." in text
    suite = headroom_suite
    suite["summary"] |= {"e2e_worker_us_per_frame": None, "speedup_needed": None}
    assert "No e2e result to compare the worker with." in render_markdown({"headroom": suite})
    suite["summary"] |= {"e2e_worker_us_per_frame": 2920.0, "budget_us_per_frame": 0.0}
    assert "nothing is left for it" in render_markdown({"headroom": suite})
    suite["summary"] |= {"speedup_needed": 0.5, "analysis_speedup_needed": 0.45}
    fits = render_markdown({"headroom": suite})
    assert "it fits, using **0.50× the budget** (0.45×" in fits and "faster" not in fits


def _failover_suite() -> dict:
    results = [
        {"kill": 1, "victim": 0, "at_s": 21.0, "failover_s": 11.5, "rejoin_s": 6.0,
         "stalled": False},
        {"kill": 2, "victim": 1, "at_s": 70.2, "failover_s": 120.0, "rejoin_s": 5.5,
         "stalled": True},
    ]  # fmt: skip
    summary = {"workers": 2, "devices": 10, "hog": True, "kills": 2, "max_failover_s": 120.0,
               "median_failover_s": 65.75, "max_rejoin_s": 6.0, "steady_commit_lag_s": 3.1,
               "stalled_kills": 1, "lost_points": 0, "points_expected": 5000,
               "lost_alerts": 0, "duplicated_alerts": 0, "alert_replays": 3}  # fmt: skip
    return {"suite": "failover", "machine": {"cpu": "X", "cores": 2}, "versions": {},
            "results": results, "summary": summary}  # fmt: skip


def test_report_has_a_failover_section_when_measured_and_does_not_ask_for_it() -> None:
    text = render_markdown({"e2e": _e2e_suite(), "failover": _failover_suite()})
    assert "## Failover (`vitalstream bench failover`)" in text
    assert "Max failover 120.0 s" in text and "stalled kills 1" in text
    assert "| 2 | 1 | 70.2 | 120.0 | 5.5 | yes |" in text
    assert "`failover`" not in text.split("Not measured yet:")[-1]


def test_failover_figure_is_drawn(tmp_path) -> None:
    from stream.tools.bench.report_figures import write_figures

    written = write_figures({"failover": _failover_suite()}, None, tmp_path)
    assert tmp_path / "failover.png" in written
    assert (tmp_path / "failover.png").stat().st_size > 5_000
