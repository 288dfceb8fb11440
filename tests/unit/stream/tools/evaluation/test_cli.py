"""`vitalstream evaluate`: options reach the runner, results reach the files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stream.cli.main import app
from stream.tools.evaluation import runner
from stream.tools.evaluation.metrics import Run
from tests.unit.stream.tools.evaluation.sample import T0, alarm, label


def test_a_bad_scenario_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--scenario", "no_such_ward"])
    assert result.exit_code == 2
    assert "no_such_ward" in result.output


def test_options_reach_the_runner_and_the_files_are_written(monkeypatch, tmp_path) -> None:
    calls: dict = {}

    def fake_run_all(specs, *, workers, models_dir, on_done):
        calls.update(specs=specs, workers=workers, models_dir=models_dir)
        runs = [
            Run(s.scenario, s.seed, s.devices, s.seconds, T0,
                [label("dev-1", "tachycardia", 10, 40)], [alarm("dev-1", "tachycardia", 12)])
            for s in specs
        ]  # fmt: skip
        for run in runs:
            on_done(run)
        return runs

    monkeypatch.setattr(runner, "run_all", fake_run_all)
    out = tmp_path / "eval.json"
    report = tmp_path / "report" / "alarm-quality.md"
    args = ["evaluate", "--scenario", "quiet_ward", "--seeds", "2", "--seed-start", "4",
            "--seconds", "60", "--workers", "3", "--no-faults", "--json", str(out),
            "--report", str(report)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [(s.scenario, s.seed, s.seconds, s.faults) for s in calls["specs"]] == [
        ("quiet_ward", 4, 60, False), ("quiet_ward", 5, 60, False),
    ]  # fmt: skip
    assert calls["workers"] == 3 and calls["models_dir"] is None
    data = json.loads(out.read_text())
    assert data["summary"]["recall_by_kind"] == {"tachycardia": 1.0}
    assert data["evaluation"]["seeds"] == [4, 5]
    assert report.exists() and (report.parent / "alarm-quality-latency.png").exists()

    again = CliRunner().invoke(app, [*args[:-4], "--compare", str(out), "--report",
                                     str(tmp_path / "again.md")])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "value before" in (tmp_path / "again.md").read_text()


@pytest.mark.parametrize("content", ["not json", None])
def test_an_unreadable_compare_file_is_a_usage_error(tmp_path, content) -> None:
    path = tmp_path / "before.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(app, ["evaluate", "--compare", str(path)])
    assert result.exit_code == 2
    assert "--compare" in result.output
