"""The alarm-burden figures from plain rows (no InfluxDB)."""

from __future__ import annotations

import pytest

from stream.tools.burden.metrics import AdjudicationRow, AlarmRow, burden, parse_when

DAY = 86400.0


def alarm(alert_id: str, t: float, kind: str = "tachycardia", priority: str = "high",
          ward: str = "A", patient: str = "p1") -> AlarmRow:  # fmt: skip
    return AlarmRow(alert_id, t, ward, patient, kind, priority)


def ack(
    alarm_row: AlarmRow, verdict: str, latency_s: float | None, level: int = 0
) -> AdjudicationRow:
    return AdjudicationRow(
        alarm_row.alert_id, alarm_row.t + (latency_s or 30.0), alarm_row.ward,
        alarm_row.patient, alarm_row.kind, alarm_row.priority, verdict, latency_s, level, "n1",
    )  # fmt: skip


@pytest.fixture
def ward() -> dict:
    a1 = alarm("a1", 100.0)
    a2 = alarm("a2", 200.0, kind="fever", priority="low")
    a3 = alarm("a3", 300.0, kind="tachycardia", priority="medium", ward="B", patient="p2")
    a4 = alarm("a4", 400.0, kind="poor_signal", priority="low", ward="B", patient="p2")
    before = alarm("old", -500.0)  # raised before the window: not in the alarms
    rows = [a1, a1._replace(t=150.0), a2, a3, a4]  # a1's trigger replayed: one alarm
    acks = [
        ack(a1, "actionable", 60.0, level=1),
        ack(a1, "not_actionable", 900.0),  # a second acknowledgement: the first counts
        ack(a3, "artefact", 240.0)._replace(priority="high"),
        ack(a4, "none", None),  # no known trigger time: no latency
        ack(before, "actionable", 20.0),
    ]
    seconds = {("A", "p1"): DAY / 2, ("B", "p2"): DAY / 4, ("B", "p3"): DAY / 4}
    return burden(rows, acks, seconds, start=0.0, stop=DAY)


def test_alarms_are_counted_once_per_id_over_patient_days(ward: dict) -> None:
    assert (ward["patients"], ward["patient_days"], ward["patient_hours"]) == (3, 1.0, 24.0)
    summary = ward["summary"]
    assert (summary["alarms"], summary["per_patient_day"]) == (4, 4.0)
    assert (summary["acknowledged"], summary["share_acknowledged"]) == (3, 0.75)
    assert summary["escalated_before_ack"] == 1
    assert ward["adjudications_outside_window"] == 1


def test_verdict_shares_are_of_the_acknowledged_and_the_first_ack_counts(ward: dict) -> None:
    summary = ward["summary"]
    assert summary["verdicts"] == {"actionable": 1, "not_actionable": 0, "artefact": 1, "none": 1}
    assert summary["verdict_shares"]["actionable"] == pytest.approx(1 / 3, abs=1e-3)


def test_time_to_acknowledge_leaves_out_unknown_latencies(ward: dict) -> None:
    assert ward["summary"]["time_to_ack_s"] == {"n": 2, "median": 150.0, "p90": 222.0}
    # By the priority the alarm was raised with, whatever it had when acknowledged.
    assert ward["ack_latencies_s"] == {"high": [60.0], "medium": [240.0]}


def test_groups_by_kind_priority_and_ward(ward: dict) -> None:
    kinds = {row["kind"]: row for row in ward["by_kind"]}
    assert ward["by_kind"][0]["kind"] == "tachycardia"  # most alarms first
    assert (kinds["tachycardia"]["alarms"], kinds["tachycardia"]["per_patient_day"]) == (2, 2.0)
    assert kinds["fever"]["share_acknowledged"] == 0.0
    assert kinds["fever"]["verdict_shares"]["actionable"] is None  # none acknowledged
    assert [row["priority"] for row in ward["by_priority"]] == ["high", "medium", "low"]
    wards = {row["ward"]: row for row in ward["by_ward"]}
    # Ward B: two alarms over its own half patient-day (p2 and p3, a quarter day each).
    assert (wards["B"]["alarms"], wards["B"]["per_patient_day"]) == (2, 4.0)
    assert (wards["A"]["alarms"], wards["A"]["per_patient_day"]) == (2, 4.0)


def test_an_empty_window_has_no_rates() -> None:
    empty = burden([], [], {}, start=0.0, stop=DAY, ward="A")
    assert empty["summary"]["per_patient_day"] is None
    assert empty["summary"]["share_acknowledged"] is None
    assert empty["summary"]["time_to_ack_s"] == {"n": 0, "median": None, "p90": None}
    assert (empty["by_kind"], empty["ward"]) == ([], "A")


@pytest.mark.parametrize("text", ["7d", "-7days", "yesterday", "-d"])
def test_window_bounds_that_mean_nothing_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_when(text, 0.0)


def test_window_bounds() -> None:
    assert parse_when("-12h", DAY) == DAY / 2
    assert parse_when("-2w", 3 * 604800.0) == 604800.0
    assert parse_when("2026-05-04T12:00:00+02:00", 0.0) == parse_when("2026-05-04T10:00:00Z", 0.0)
