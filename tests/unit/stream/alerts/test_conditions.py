"""Conditions and the alert-kind vocabulary: every kind the system names is one of
``stream.records.ALERT_KINDS``, and families group kinds of it."""

from __future__ import annotations

import json
from pathlib import Path

from producers.scenario import ALERTING_EVENT_KINDS
from stream.alerts import limits
from stream.alerts.conditions import DEVICE_SILENT, FAMILY, RHYTHM_KINDS, family_of
from stream.alerts.fall import FallDetector
from stream.alerts.rules import ModelScores, silent_devices
from stream.records import ALERT_KINDS
from tests.unit.stream.alerts.harness import RULES, fall_sequence, quiet_features, run

SHIPPED_MODELS = Path(__file__).parents[4] / "models" / "default"


def test_the_vocabulary_names_each_kind_once() -> None:
    assert len(set(ALERT_KINDS)) == len(ALERT_KINDS)
    assert DEVICE_SILENT in ALERT_KINDS


def test_families_group_kinds_of_the_vocabulary() -> None:
    assert set(FAMILY) <= set(ALERT_KINDS)
    assert family_of("ventricular_run") == family_of("af") == "rhythm"
    assert family_of("news2") == "news2"  # a kind not listed is its own family
    assert sorted(RHYTHM_KINDS) == ["af", "ventricular_run"]


def test_settings_and_limits_name_kinds_of_the_vocabulary() -> None:
    assert set(RULES.timing) <= set(ALERT_KINDS)
    assert set(RULES.model_outputs.values()) <= set(ALERT_KINDS)
    table = [value for value in vars(limits).values() if isinstance(value, limits.Limit)]
    assert table and {limit.kind for limit in table} <= set(ALERT_KINDS)


def test_the_shipped_models_classes_raise_kinds_of_the_vocabulary() -> None:
    cards = sorted(SHIPPED_MODELS.glob("*/*/card.json"))
    assert cards
    for card in cards:
        for name in json.loads(card.read_text())["classes"]:
            kind = RULES.model_outputs.get(name)
            assert kind is None or kind in ALERT_KINDS, (card, name)


def test_the_simulators_labelled_events_are_alert_kinds() -> None:
    assert set(ALERTING_EVENT_KINDS) <= set(ALERT_KINDS)


def test_every_kind_raised_is_in_the_vocabulary() -> None:
    detector = FallDetector()
    raised = {c.kind for t, f in fall_sequence(5.0, 13) for c in run(f, t=t, fall=detector)}
    windows = [
        quiet_features(ecg_hr_bpm=140.0, ppg_hr_bpm=140.0, resp_rate=4.0, temp=33.0, battery=5.0),
        quiet_features(ecg_hr_bpm=45.0, ppg_hr_bpm=45.0, resp_rate=30.0, spo2=85.0),
        quiet_features(rr_irregularity=0.3, temp=39.5, motion=1.0),
        quiet_features(ectopic_fraction=0.5, ecg_lead_off=1.0, run_rate_bpm=160.0),
    ]
    models = [ModelScores("deterioration", "1", {"deterioration": 1.0})]
    raised |= {c.kind for w in windows for c in run(w, scores=models)}
    raised |= {c.kind for c in silent_devices({"a": 0.0}, 1000.0, 300.0).values()}
    assert raised == set(ALERT_KINDS)
