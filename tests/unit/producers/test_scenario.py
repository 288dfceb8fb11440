"""Scenario files: the shipped ones load, malformed ones name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.scenario import ALERTING_EVENT_KINDS, ScenarioError, load_scenario, shipped_scenarios


def test_shipped_scenarios_load() -> None:
    names = shipped_scenarios()
    assert {"default", "quiet_ward", "deteriorating_patient", "noisy_ambulatory"} <= set(names)
    for name in names:
        assert load_scenario(name).patients


def test_default_scenario_exercises_every_event_kind() -> None:
    kinds = {e.event for p in load_scenario("default").patients for e in p.events}
    assert kinds == set(ALERTING_EVENT_KINDS)


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
