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


def test_memory_of_a_restarted_process_is_followed_over_the_whole_run(tmp_path) -> None:
    """The 30-minute soak's plot lost each process at its first restart: a new process id
    now continues its role's line, and growth is judged after the new one's warm-up."""
    trend = soak_tool.RssTrend(started=0.0)
    for t in range(0, 1800, 10):
        # The worker is killed at 450 s and restarted; Kafka restarts at 1140 s. The
        # worker warms up (fast growth for 2 min), then stays flat: no leak.
        pid = 10 if t < 450 else 11
        since = t if t < 450 else t - 450
        trend.record("worker", pid, 200.0 + min(since, 120) * 0.5, float(t))
        trend.record("kafka", 20 if t < 1140 else 21, 700.0 + t / 60.0, float(t))
    worker = trend.incarnations("worker")
    assert [len(segment) for segment in worker] == [45, 135]
    assert worker[-1][-1][0] == 1790.0  # the line reaches the end of the run
    assert trend.restarts() == {"worker": 1, "kafka": 1}
    growth = trend.growth_mb_per_hour(warmup_s=180.0)
    assert growth["worker"] == 0.0  # flat after warm-up
    assert growth["kafka"] == 60.0  # 1 MB a minute: a leak would show like this
    plot = tmp_path / "rss.png"
    soak_tool._plot(trend, plot, [{"fault": "worker_kill", "at_s": 450.0, "took_s": 1.0}])
    assert plot.stat().st_size > 10_000
