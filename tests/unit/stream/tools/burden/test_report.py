"""The alarm-burden report's Markdown, JSON and figures from a computed result."""

from __future__ import annotations

import json
from pathlib import Path

from stream.tools.burden.metrics import AdjudicationRow, AlarmRow, burden
from stream.tools.burden.report import markdown, write_json, write_report

DAY = 86400.0


def result() -> dict:
    alarms = [
        AlarmRow("a1", 10.0, "A", "p1", "tachycardia", "high"),
        AlarmRow("a2", 20.0, "A", "p1", "poor_signal", "low"),
        AlarmRow("a3", 30.0, "A", "p2", "tachycardia", "medium"),
    ]
    acks = [
        AdjudicationRow("a1", 70.0, "A", "p1", "tachycardia", "high", "actionable", 60.0, 0, "n"),
        AdjudicationRow("a2", 620.0, "A", "p1", "poor_signal", "low", "artefact", 600.0, 0, "n"),
    ]
    return burden(alarms, acks, {("A", "p1"): DAY, ("A", "p2"): DAY}, start=0.0, stop=DAY)


SIMULATION = {
    "runs": 2, "scenarios": ["default"], "seeds": [0, 1], "devices_per_run": [10],
    "seconds_per_run": [600], "patient_seconds": 12000, "patient_days": 0.1389,
    "start": 0.0, "stop": 1800.0,
    "policy": {"median_response_s": {"high": 210.0}, "sigma": 0.8,
               "never_acknowledged": {"high": 0.0}, "max_response_s": 3600.0},
    "totals": {"alarms": 3, "acknowledged": 2, "resolved_first": 1, "never": 0},
    "verdicts": {"actionable": 1, "artefact": 1},
    "scripted_verdicts": {"actionable": 2, "artefact": 1},
}  # fmt: skip


def test_the_markdown_leads_with_the_figures_and_defines_them() -> None:
    text = markdown(result(), [Path("burden.png")], command="vitalstream alerts report")
    assert "- **3 alarms** over **2.00 patient-days**" in text
    assert "**1.50 alarms per patient-day**" in text
    assert "acknowledged: 2 (67 %)" in text
    assert "median 5.5 min, 90th centile 9.1 min (n = 2)" in text
    assert "![burden](burden.png)" in text
    assert "| tachycardia | 2 | 1.00 | 1 (50 %) | 1.0 min | 1.0 min | 0 | 1 (100 %) |" in text
    assert "## Definitions" in text and "10-second steps" in text
    assert "What was simulated" not in text


def test_a_simulated_week_says_what_was_simulated_and_what_it_does_not_show() -> None:
    text = markdown(result(), simulation=SIMULATION)
    assert "12,000 patient-seconds = 0.14 patient-days" in text
    assert "not from any clinician" in text
    assert "actionable 2, not_actionable 0, artefact 1" in text


def test_report_files(tmp_path: Path) -> None:
    data = result()
    paths = write_report(tmp_path / "out", data)
    assert [p.name for p in paths] == ["report.md", "burden.png", "verdicts.png", "time-to-ack.png"]
    for path in paths[1:]:
        assert path.read_bytes().startswith(b"\x89PNG")
    assert json.loads(write_json(tmp_path / "out" / "report.json", data).read_text()) == data


def test_an_empty_window_still_draws(tmp_path: Path) -> None:
    empty = burden([], [], {}, start=0.0, stop=DAY)
    paths = write_report(tmp_path, empty)
    assert all(p.exists() for p in paths)
