"""`vitalstream bench`: the fleet sizes each suite measures unless told otherwise."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from stream.cli import bench as bench_cli
from stream.tools.bench import common, suites


def test_headroom_measures_5000_devices_unless_told_otherwise(monkeypatch) -> None:
    seen: dict[str, list[int]] = {}

    def fake_run(suite: str, options: dict) -> tuple[list, dict]:
        seen[suite] = options["devices"]
        return [], {}

    monkeypatch.setattr(suites, "run_suite", fake_run)
    monkeypatch.setattr(common, "envelope", lambda *args: {})
    app = typer.Typer()
    app.command()(bench_cli.bench)
    runner = CliRunner()
    assert runner.invoke(app, ["headroom"]).exit_code == 0
    assert seen["headroom"] == [5000]
    assert runner.invoke(app, ["headroom", "--devices", "200,100"]).exit_code == 0
    assert seen["headroom"] == [100, 200]
    assert runner.invoke(app, ["e2e"]).exit_code == 0
    assert seen["e2e"] == bench_cli._counts(bench_cli.DEFAULT_DEVICES)
