"""The evaluation's JSON, Markdown report (with before/after columns) and terminal tables."""

from __future__ import annotations

import copy
import io

from rich.console import Console

from stream.tools.evaluation.report import (
    markdown,
    print_result,
    read_json,
    write_json,
    write_report,
)

FIGURES = {"false_alarms": "q-false-alarms.png", "latency": "q-latency.png"}


def test_the_json_reads_back_as_written(result: dict, tmp_path) -> None:
    path = write_json(tmp_path / "sub" / "eval.json", result)
    assert read_json(path) == result


def test_the_markdown_has_the_tables_the_figures_and_every_false_alarm(result: dict) -> None:
    text = markdown(result, FIGURES)
    assert text.startswith("# Alarm quality")
    for heading in ("## Summary", "## By scenario", "## Detection by event kind",
                    "## False alarms by scenario, kind and priority", "## Missed events",
                    "## Every false alarm (3)"):  # fmt: skip
        assert heading in text, heading
    assert "![false alarms per patient-hour](q-false-alarms.png)" in text
    assert "| false alarms / patient-hour | 1.50 |" in text
    assert "| lowest recall | 0.500 (tachycardia) |" in text
    assert (
        "| gym | 0 | dev-1 | tachycardia | low | 50.0 | 52.0 | walking (artefact) 0-600 s |" in text
    )
    assert "before" not in text


def test_compare_puts_before_and_after_side_by_side(result: dict) -> None:
    before = copy.deepcopy(result)
    before["summary"]["false_alarms_per_patient_hour"]["overall"] = 4.25
    before["scenarios"]["ward"]["false_alarms_per_patient_hour"] = 9.0
    before["kinds"]["tachycardia"]["recall"] = 0.25
    before["false_alarm_groups"] = [
        {"scenario": "ward", "kind": "bradycardia", "priority": "high", "count": 7,
         "per_patient_hour": 7.0},
        {"scenario": "ward", "kind": "ventricular_run", "priority": "medium", "count": 3,
         "per_patient_hour": 3.0},
    ]  # fmt: skip
    text = markdown(result, FIGURES, before)
    assert "| measure | value before | value after |" in text
    assert "| false alarms / patient-hour | 4.25 | 1.50 |" in text
    assert "| 9.00 | 2.00 |" in text  # ward's false alarms per patient-hour
    assert "| 0.250 | 0.500 |" in text  # tachycardia's recall
    assert "| ward | bradycardia | high | 7 | 1 | 1.00 |" in text
    assert "| ward | ventricular_run | medium | 3 | 0 | 0.00 |" in text  # gone since
    assert "| gym | tachycardia | low | 0 | 1 | 1.00 |" in text  # new


def test_the_report_writes_its_pngs_beside_it(result: dict, tmp_path) -> None:
    written = write_report(tmp_path / "docs" / "alarm-quality.md", result, result)
    assert [p.name for p in written] == [
        "alarm-quality.md", "alarm-quality-false-alarms.png", "alarm-quality-latency.png",
    ]  # fmt: skip
    assert all(p.stat().st_size > 0 for p in written)
    assert "(alarm-quality-latency.png)" in written[0].read_text()


def test_the_terminal_shows_the_summary_and_the_false_alarm_groups(result: dict) -> None:
    out = io.StringIO()
    print_result(Console(file=out, width=200), result)
    text = out.getvalue()
    assert "false alarms / patient-hour" in text and "1.50" in text
    assert "bradycardia" in text and "tachycardia" in text
