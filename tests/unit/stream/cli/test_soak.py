"""`vitalstream soak` prints the run's summary (the run itself is stream.tools.soak's and
needs the services; here it is replaced)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from stream.cli.main import app
from stream.tools import soak as soak_tool

SUMMARY = {
    "minutes": 1.0, "devices": 2, "frames_in": 120, "frames_out": 120, "alerts_expected": 1,
    "alerts_delivered": 1, "alerts_duplicated": 0, "alert_replays": 0, "points_expected": 600,
    "points_written": 600, "peak_rss_mb": 512.0, "peak_rss_by_process_mb": {"worker": 300.0},
    "rss_slope_mb_per_min": {"worker": 0.1}, "faults": [{"fault": "worker_kill", "at_s": 9.0,
    "took_s": 0.4}], "simulator": None, "logs": "/tmp/soak",
}  # fmt: skip


def test_soak_passes_its_options_and_prints_the_summary(monkeypatch, tmp_path) -> None:
    calls = []

    def fake_run(minutes, devices, scenario, seed, console, plot=None, show_progress=True):
        calls.append((minutes, devices, scenario, seed, plot, show_progress))
        return SUMMARY

    monkeypatch.setattr(soak_tool, "run", fake_run)
    plot = tmp_path / "rss.png"
    args = ["soak", "--minutes", "1", "--devices", "2", "--seed", "3", "--plot", str(plot)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert calls == [(1.0, 2, "default", 3, plot, False)]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == SUMMARY
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0 and calls[-1][-1] is True
