"""Pure parts of the e2e suite: alert-latency matching and the bench scenario's shape.
Nothing is timed."""

from __future__ import annotations

import pytest

from stream.config import RuleSettings
from stream.tools.bench.e2e import alert_latencies, bench_scenario


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
