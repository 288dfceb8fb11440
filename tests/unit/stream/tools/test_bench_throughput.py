"""Pure parts of the throughput suite: the measured span's delimiting, the summary's
arithmetic and the command's options (the gateway batches of the preload are the
producers', tested in tests/unit/producers/test_gateways.py). Nothing is timed and no
service is used."""

from __future__ import annotations

import os

import numpy as np
import psutil
import pytest
import typer
from typer.testing import CliRunner

from stream.cli import bench as bench_cli
from stream.tools.bench import common, suites
from stream.tools.bench.throughput import (
    WORKER,
    Mark,
    delimit,
    restarted_services,
    summarize,
)


def _drain(total: int = 1200, rate: float = 300.0, cpu_per_s: float = 0.8) -> list[Mark]:
    """A worker committing ``rate`` offsets a second from t=3 (it joins its group first,
    nearly idle), busy ``cpu_per_s`` of a core, then idle once all are committed."""
    marks, committed, cpu = [], 0, 10.0
    for t in range(1, 12):
        busy = t >= 3 and committed < total
        committed = min(total, committed + int(rate)) if busy else committed
        cpu += cpu_per_s if busy else 0.01
        marks.append(Mark(float(t), committed, {WORKER: cpu, "kafka": 0.2 * t}))
    return marks


def test_the_span_runs_from_ready_to_the_first_sample_with_every_offset() -> None:
    ready = Mark(0.0, 0, {WORKER: 10.0, "kafka": 0.0})
    samples = _drain()
    start, end = delimit(ready, samples, 1200)
    assert start is ready
    assert end.committed == 1200
    assert end is next(s for s in samples if s.committed == 1200)  # not the idle ones after
    assert all(s.committed < 1200 for s in samples if s.t < end.t)
    with pytest.raises(ValueError, match="1201"):
        delimit(ready, samples, 1201)  # never all committed


def test_summary_arithmetic_is_consistent() -> None:
    ready = Mark(0.0, 0, {WORKER: 10.0, "kafka": 0.0, "influxd": 5.0})
    start, end = delimit(ready, _drain(total=1200, rate=300.0, cpu_per_s=0.8), 1200)
    found = summarize(
        devices=20, seconds=60, per_message=1, start=start, end=end, frames=1200, messages=1200,
        peak_rss_mib={WORKER: 321.0, "kafka": 500.0}, startup_cpu_s=10.0,
    )  # fmt: skip
    cpu = end.cpu_s[WORKER] - 10.0
    assert found["device_seconds"] == 20 * 60
    assert found["worker_cpu_s"] == pytest.approx(cpu, abs=1e-3)
    assert found["device_seconds_per_cpu_s"] == pytest.approx(1200 / cpu, rel=1e-3)
    assert found["us_per_device_second"] == pytest.approx(1e6 * cpu / 1200, rel=1e-3)
    assert found["device_seconds_per_cpu_s"] * found["us_per_device_second"] == pytest.approx(
        1e6, rel=1e-3
    )
    assert found["wall_s"] == end.t
    assert found["worker_cpu_percent"] == pytest.approx(100 * cpu / end.t, abs=0.1)
    assert found["kafka_cpu_s"] == pytest.approx(0.2 * end.t)
    assert found["kafka_us_per_device_second"] == pytest.approx(1e6 * 0.2 * end.t / 1200, rel=1e-3)
    assert found["influxd_cpu_s"] is None  # influxd not sampled after ready
    assert found["worker_peak_rss_mib"] == 321.0
    assert found["offsets_committed"] == 1200


def test_a_summary_needs_device_seconds_and_worker_cpu() -> None:
    start = Mark(0.0, 0, {WORKER: 1.0})
    with pytest.raises(ValueError):
        summarize(0, 60, 1, start, Mark(1.0, 0, {WORKER: 2.0}), frames=0, messages=0,
                  peak_rss_mib={}, startup_cpu_s=1.0)  # fmt: skip
    with pytest.raises(ValueError):
        summarize(10, 6, 1, start, Mark(1.0, 60, {WORKER: 1.0}), frames=60, messages=60,
                  peak_rss_mib={}, startup_cpu_s=1.0)  # fmt: skip


def test_more_work_for_the_same_device_seconds_is_a_lower_figure() -> None:
    rng = np.random.default_rng(0)
    for cpu in rng.uniform(0.5, 50.0, 20):
        start, end = Mark(0.0, 0, {WORKER: 3.0}), Mark(9.0, 99, {WORKER: 3.0 + cpu})
        one = summarize(100, 30, 1, start, end, frames=3000, messages=3000,
                        peak_rss_mib={}, startup_cpu_s=3.0)  # fmt: skip
        more = Mark(9.0, 99, {WORKER: 3.0 + 2 * cpu})
        two = summarize(100, 30, 1, start, more, frames=3000, messages=3000,
                        peak_rss_mib={}, startup_cpu_s=3.0)  # fmt: skip
        assert two["device_seconds_per_cpu_s"] == pytest.approx(
            one["device_seconds_per_cpu_s"] / 2, rel=0.01
        )


def test_a_service_gone_or_running_as_another_process_counts_as_restarted() -> None:
    me, parent = psutil.Process(os.getpid()), psutil.Process(os.getppid())
    watched = {"kafka": me, "influxd": parent}
    assert restarted_services(watched, {"kafka": me, "influxd": parent}) == []
    assert restarted_services(watched, {"kafka": psutil.Process(os.getpid())}) == ["influxd"]
    assert restarted_services(watched, {"kafka": parent, "influxd": parent}) == ["kafka"]
    assert restarted_services({}, {"kafka": me}) == []  # not running at the start: not watched


def test_the_command_defaults_to_200_devices_one_per_message_and_takes_gateway_batches(
    monkeypatch,
) -> None:
    seen: list[dict] = []

    def fake_run(suite: str, options: dict) -> tuple[list, dict]:
        assert suite == "throughput"
        seen.append(options)
        return [], {}

    monkeypatch.setattr(suites, "run_suite", fake_run)
    monkeypatch.setattr(common, "envelope", lambda *args: {})
    app = typer.Typer()
    app.command()(bench_cli.bench)
    runner = CliRunner()
    assert runner.invoke(app, ["throughput"]).exit_code == 0
    assert (seen[-1]["devices"], seen[-1]["seconds"], seen[-1]["per_message"]) == ([200], 60, 1)
    assert runner.invoke(app, ["throughput", "--per-message", "50"]).exit_code == 0
    assert seen[-1]["per_message"] == 50
    for refused in (["--per-message", "0"], ["--per-message", "1001"], ["--devices", "100,200"]):
        assert runner.invoke(app, ["throughput", *refused]).exit_code != 0
    assert len(seen) == 2
