"""The evaluation's figures on hand-made runs (see conftest.runs for what they hold)."""

from __future__ import annotations

import pytest

from stream.tools.evaluation.metrics import Run, distribution, evaluate
from tests.unit.stream.tools.evaluation.sample import T0, TIMINGS, alarm, label


def test_patient_hours_are_devices_times_seconds_summed_over_runs(result: dict) -> None:
    assert result["summary"]["patient_hours"] == pytest.approx(2.0)
    assert result["scenarios"]["ward"]["patient_hours"] == pytest.approx(1.0)
    assert result["scenarios"]["gym"]["patient_hours"] == pytest.approx(1.0)


def test_recall_with_two_labels_one_matched_is_a_half(result: dict) -> None:
    summary = result["summary"]
    assert summary["recall_by_kind"] == {"fall": 1.0, "tachycardia": 0.5}
    assert (summary["recall_min"], summary["recall_min_kind"]) == (0.5, "tachycardia")
    kind = result["kinds"]["tachycardia"]
    assert (kind["labels"], kind["scorable"], kind["detected"]) == (2, 2, 1)
    assert "walking" not in result["kinds"]  # artefacts are no recall targets


def test_latency_and_beyond_the_designed_delay(result: dict) -> None:
    tachycardia = result["kinds"]["tachycardia"]
    assert tachycardia["latency_s"] == {"n": 1, "median": 8.0, "p95": 8.0, "max": 8.0}
    assert tachycardia["beyond_delay_s"]["max"] == 6.0  # 8 s, less the 2 s onset delay
    assert result["summary"]["p95_latency_beyond_delay_s"] == {"fall": 0.0, "tachycardia": 6.0}
    assert tachycardia["detected_by"] == {"tachycardia": 1}
    assert tachycardia["own_alert"] == 1


def test_false_alarms_per_patient_hour_overall_and_per_scenario(result: dict) -> None:
    summary = result["summary"]
    assert summary["false_alarms"] == 3
    assert summary["false_alarms_per_patient_hour"] == {
        "overall": 1.5,
        "by_scenario": {"gym": 1.0, "ward": 2.0},
    }
    assert summary["alarms"] == 6
    assert summary["alarm_burden_per_patient_hour"]["overall"] == 3.0
    assert summary["false_high_priority"] == 1
    assert result["scenarios"]["ward"]["false_high_priority"] == 1


def test_false_alarms_per_kind_and_priority(result: dict) -> None:
    rows = [(r["kind"], r["priority"], r["count"], r["per_patient_hour"])
            for r in result["false_by_kind_priority"]]  # fmt: skip
    assert rows == [("bradycardia", "high", 1, 0.5), ("poor_signal", "low", 1, 0.5),
                    ("tachycardia", "low", 1, 0.5)]  # fmt: skip
    groups = [(g["scenario"], g["kind"], g["count"]) for g in result["false_alarm_groups"]]
    assert groups == [("gym", "tachycardia", 1), ("ward", "bradycardia", 1),
                      ("ward", "poor_signal", 1)]  # fmt: skip


def test_technical_and_physiological_split_and_artefact_periods(result: dict) -> None:
    split = result["summary"]["by_category"]
    assert split["physiological"]["alarms"] == 4
    assert split["physiological"]["false_alarms"] == 2
    assert split["physiological"]["false_per_patient_hour"] == 1.0
    assert split["technical"]["false_alarms"] == 1
    assert result["summary"]["false_in_artefact_or_confound"] == 1
    assert result["summary"]["false_outside_artefact_or_confound"] == 2


def test_every_false_alarm_is_listed_with_where_to_look(result: dict) -> None:
    gym = [f for f in result["false_alarms"] if f["scenario"] == "gym"]
    assert gym == [
        {"scenario": "gym", "seed": 0, "device_id": "dev-1", "kind": "tachycardia",
         "priority": "low", "category": "physiological", "onset_s": 50.0, "raised_s": 52.0,
         "source": "rule", "message": "tachycardia at 50",
         "periods": [{"event": "walking", "category": "artefact", "start_s": 0.0,
                      "end_s": 600.0}]},
    ]  # fmt: skip


def test_an_event_that_cannot_fire_by_design_is_counted_apart() -> None:
    runs = [Run("ward", 0, 1, 120, T0, [label("dev-1", "device_silent", 60, 90)], [])]
    result = evaluate(runs, TIMINGS)
    assert result["summary"]["recall_by_kind"] == {}
    assert result["summary"]["recall_min"] is None
    assert result["summary"]["labels_unscorable"] == 1


def test_no_alarms_at_all_is_zero_per_patient_hour() -> None:
    result = evaluate([Run("quiet", 0, 5, 720, T0, [], [])], TIMINGS)
    assert result["summary"]["false_alarms_per_patient_hour"]["overall"] == 0.0
    assert result["summary"]["patient_hours"] == 1.0


def test_duplicate_triggers_are_summed() -> None:
    run = Run("w", 0, 1, 60, T0, [], [alarm("dev-1", "fall", 5)], duplicate_triggers=2)
    assert evaluate([run, run], TIMINGS)["summary"]["duplicate_triggers"] == 4


def test_distribution_of_nothing_and_of_one() -> None:
    assert distribution([]) == {"n": 0, "median": None, "p95": None, "max": None}
    assert distribution([4.0]) == {"n": 1, "median": 4.0, "p95": 4.0, "max": 4.0}
