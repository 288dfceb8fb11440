"""Scenario files: the shipped ones load, malformed ones name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.scenario import (
    ALERTING_EVENT_KINDS,
    EVENT_CATEGORY,
    ScenarioError,
    load_scenario,
    shipped_scenarios,
)


def test_shipped_scenarios_load() -> None:
    names = shipped_scenarios()
    assert {"default", "quiet_ward", "deteriorating_patient", "noisy_ambulatory"} <= set(names)
    for name in names:
        assert load_scenario(name).patients


def test_default_scenario_exercises_every_event_kind() -> None:
    kinds = {e.event for p in load_scenario("default").patients for e in p.events}
    assert kinds == set(ALERTING_EVENT_KINDS)


def test_unchanged_scenarios_keep_their_events() -> None:
    names = shipped_scenarios()
    assert {"arrhythmia_confounds", "artefacts"} <= set(names)
    for name in ("default", "deteriorating_patient", "quiet_ward"):
        kinds = {e.event for p in load_scenario(name).patients for e in p.events}
        assert all(EVENT_CATEGORY[kind] in ("clinical", "technical") for kind in kinds)


def _kinds(name: str) -> dict[str, set[str]]:
    """Event kinds of a shipped scenario, by category."""
    out: dict[str, set[str]] = {}
    for patient in load_scenario(name).patients:
        for event in patient.events:
            out.setdefault(EVENT_CATEGORY[event.event], set()).add(event.event)
    return out


def test_confound_scenario_has_ectopy_and_no_clinical_event() -> None:
    scenario = load_scenario("arrhythmia_confounds")
    assert _kinds("arrhythmia_confounds") == {"confound": {"premature_beats", "bigeminy"}}
    assert 7 <= len(scenario.patients) <= 10
    assert sum(not p.events for p in scenario.patients) >= 2  # quiet neighbours


def test_artefact_scenario_covers_every_artefact_and_a_lead_off() -> None:
    scenario = load_scenario("artefacts")
    kinds = _kinds("artefacts")
    assert kinds == {
        "artefact": {"walking", "running", "loose_electrode", "low_perfusion", "sensor_noise"},
        "technical": {"sensor_detached"},
    }
    assert 9 <= len(scenario.patients) <= 12
    assert sum(not p.events for p in scenario.patients) >= 2  # clean patients
    ends = [e.end for p in scenario.patients for e in p.events]
    assert 480 <= max(ends) <= 720  # spread over about ten minutes


def test_noisy_ambulatory_labels_its_motion() -> None:
    scenario = load_scenario("noisy_ambulatory")
    assert all(not p.activity_periods for p in scenario.patients)
    kinds = _kinds("noisy_ambulatory")
    assert kinds["artefact"] == {"running"}
    assert kinds["technical"] == {"sensor_detached", "device_silent"}
    assert kinds["clinical"] == {"fall"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\npatients:\n  - id: a\n    events:\n      - {event: seizure, start: 1, end: 2}\n",
         "patients.0.events.0.event"),
        ("name: x\npatients:\n  - id: a\n    events:\n"
         "      - {event: af, start: 1, end: 2, severity: 3}\n",
         "patients.0.events.0.severity"),
        ("name: x\npatients:\n  - id: a\n    baseline: {hr: fast}\n", "patients.0.baseline.hr"),
        ("name: x\npatients:\n  - id: a\n    colour: red\n", "patients.0.colour"),
        ("patients: []\n", "name"),
    ],
)  # fmt: skip
def test_malformed_scenario_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert f"field {field}" in str(info.value)


def test_event_must_end_after_it_starts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: x\npatients:\n  - id: a\n    events:\n      - {event: af, start: 5, end: 5}\n",
    )
    with pytest.raises(ScenarioError, match=r"end .* must be after start"):
        load_scenario(path)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope.yaml: cannot read"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match=r"broken.yaml: not valid YAML"):
        load_scenario(_write(tmp_path, "name: [unclosed\n"))
