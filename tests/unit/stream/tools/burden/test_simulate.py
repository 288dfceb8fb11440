"""The simulated week's acknowledgement through the alert service's book, and its plan."""

from __future__ import annotations

import pytest

from stream.records import Alert
from stream.tools.adjudicator import Adjudication
from stream.tools.burden.simulate import acknowledge_through_book, plan_week

T0 = 1_700_000_000.0


def event(alert_id: str, name: str, at: float, priority: str = "medium") -> Alert:
    return Alert(
        alert_id=alert_id, event=name, kind="tachycardia", category="physiological",
        priority=priority, patient="p-1", ward="A", device_id="d1", t_onset=T0,
        t_event=at - 1.0, emitted_at=at, window=(T0 - 10, T0), source="rule:hr_high",
    )  # fmt: skip


def verdict(alert_id: str, delay_s: float | None, value: str = "actionable") -> Adjudication:
    return Adjudication(alert_id, value, None, delay_s, "sim-nurse-1")  # type: ignore[arg-type]


def test_the_book_decides_which_acknowledgements_land() -> None:
    events = [
        event("open", "triggered", T0 + 1),
        event("short", "triggered", T0 + 2),
        event("short", "resolved", T0 + 40),
        event("ignored", "triggered", T0 + 3),
    ]
    adjudications = [
        verdict("open", 30.0, "artefact"),
        verdict("short", 60.0),  # comes after the alarm resolved: the book refuses
        verdict("ignored", None),
    ]
    lifecycle, outcomes = acknowledge_through_book(events, adjudications, 120.0)
    assert outcomes == {"acknowledged": 1, "resolved_first": 1, "never": 1}
    [(acknowledged, triggered_at)] = [(a, t) for a, t in lifecycle if a.event == "acknowledged"]
    assert (acknowledged.alert_id, acknowledged.verdict, acknowledged.t_event) == (
        "open",
        "artefact",
        T0 + 31,
    )
    assert triggered_at == T0 + 1  # the time to acknowledge counts from publication
    times = [a.emitted_at for a, _ in lifecycle]
    assert times == sorted(times)  # in time order, worker events included
    assert [a.alert_id for a, _ in lifecycle if a.event == "resolved"] == ["short"]


def test_unacknowledged_high_alarms_escalate_until_acknowledged() -> None:
    events = [event("h", "triggered", T0, priority="high")]
    lifecycle, _ = acknowledge_through_book(events, [verdict("h", 250.0)], 120.0)
    names = [(a.event, a.escalation_level) for a, _ in lifecycle]
    assert names == [("triggered", 0), ("escalated", 1), ("escalated", 2), ("acknowledged", 2)]
    escalated_at = [a.emitted_at - T0 for a, _ in lifecycle if a.event == "escalated"]
    assert escalated_at == [120.0, 240.0]


def test_never_acknowledged_high_alarms_escalate_to_the_last_level() -> None:
    lifecycle, outcomes = acknowledge_through_book(
        [event("h", "triggered", T0, priority="high")], [verdict("h", None)], 60.0
    )
    assert [a.escalation_level for a, _ in lifecycle if a.event == "escalated"] == [1, 2, 3]
    assert outcomes == {"never": 1}


def test_runs_are_spread_over_the_span_and_never_overlap_themselves() -> None:
    specs = plan_week(["a", "b", "c"], 4, devices=10, seconds=600, start=T0)
    assert len(specs) == 12 and [s.index for s in specs] == list(range(12))
    assert specs[-1].start - specs[0].start == pytest.approx(11 * 7 * 86400 / 12)
    tight = plan_week(["a"], 3, seconds=600, start=T0, span_s=100.0)
    assert [s.start - T0 for s in tight] == [0.0, 600.0, 1200.0]
    with pytest.raises(ValueError):
        plan_week([], 1, start=T0)
