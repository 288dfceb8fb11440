"""Pure parts of the throughput suite: the measured span's delimiting (one worker and
several), the summary's arithmetic, the sweep over worker counts and the command's options
(the gateway batches of the preload are the producers', tested in
tests/unit/producers/test_gateways.py). Nothing is timed and no service is used."""

from __future__ import annotations

import os

import numpy as np
import psutil
import pytest
import typer
from typer.testing import CliRunner

from stream.cli import bench as bench_cli
from stream.tools.bench import common, suites
from stream.tools.bench.common import worker_name
from stream.tools.bench.throughput import (
    SUMMARY_KEYS,
    WORKER,
    Mark,
    delimit,
    restarted_services,
    start_mark,
    steady_rate,
    summarize,
    sweep_summary,
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


# -- several workers ---------------------------------------------------------------------------


def _two_worker_drain(total: int = 1200, rate: float = 300.0) -> tuple[list, list[Mark]]:
    """Two workers: ``worker`` Ready at t=0 and at once committing ``rate / 2`` a second (it
    holds every partition), ``worker-2`` Ready at t=2 after 6 CPU-seconds of start-up; from
    then on each commits ``rate / 2`` a second busy 0.8 of a core. Returns the Ready marks
    (in order) and the samples, each watching both workers and Kafka."""
    cpu = {WORKER: 10.0, "worker-2": 4.0, "kafka": 0.0}
    committed, readies, samples = 0, [], []
    readies.append((WORKER, Mark(0.0, 0, dict(cpu))))
    for t in range(1, 12):
        both = t > 2
        if committed < total:
            committed = min(total, committed + int(rate if both else rate / 2))
            cpu[WORKER] += 0.8
            cpu["worker-2"] += 0.8 if both else 3.0  # before t=2: its start-up
        else:
            cpu[WORKER] += 0.01
            cpu["worker-2"] += 0.01
        cpu["kafka"] += 0.2
        samples.append(Mark(float(t), committed, dict(cpu)))
        if t == 2:
            readies.append(("worker-2", Mark(2.0, committed, dict(cpu))))
    return readies, samples


def test_the_span_starts_at_the_first_ready_and_each_worker_counts_from_its_own() -> None:
    readies, _ = _two_worker_drain()
    start = start_mark(readies)
    assert start.t == 0.0 and start.committed == 0  # every frame is processed in the span
    assert start.cpu_s[WORKER] == 10.0
    assert start.cpu_s["worker-2"] == readies[1][1].cpu_s["worker-2"] == 10.0  # 4 + 2 x 3
    assert start.cpu_s["kafka"] == 0.0  # the services from the first Ready
    # The order of Ready decides the span's start, not the workers' names.
    swapped = start_mark([("worker-2", Mark(0.0, 0, {WORKER: 1.0, "worker-2": 2.0})),
                          (WORKER, Mark(3.0, 50, {WORKER: 7.0, "worker-2": 5.0}))])  # fmt: skip
    assert (swapped.t, swapped.cpu_s) == (0.0, {WORKER: 7.0, "worker-2": 2.0})
    with pytest.raises(ValueError):
        start_mark([])


def test_two_workers_sum_their_cpu_and_the_wall_rate_is_the_drain_span() -> None:
    readies, samples = _two_worker_drain(total=1200, rate=300.0)
    start, end = delimit(start_mark(readies), samples, 1200)
    found = summarize(
        devices=20, seconds=60, per_message=1, start=start, end=end, frames=1200,
        messages=1200, peak_rss_mib={WORKER: 300.0, "worker-2": 340.0, "kafka": 900.0},
        startup_cpu_s=20.0, workers=2,
    )  # fmt: skip
    first = end.cpu_s[WORKER] - 10.0
    second = end.cpu_s["worker-2"] - 10.0  # from its own Ready, not from the first's
    assert found["workers"] == 2
    assert found["workers_cpu_s"] == {
        WORKER: pytest.approx(first),
        "worker-2": pytest.approx(second),
    }
    assert found["worker_cpu_s"] == pytest.approx(first + second, abs=1e-3)
    assert found["device_seconds_per_cpu_s"] == pytest.approx(1200 / (first + second), rel=1e-3)
    assert found["wall_s"] == end.t
    assert found["device_seconds_per_wall_s"] == pytest.approx(1200 / end.t, abs=0.1)
    # Two busy workers: more than one core between them.
    assert found["worker_cpu_percent"] == pytest.approx(100 * (first + second) / end.t, abs=0.1)
    assert found["worker_cpu_percent"] > 100
    assert found["worker_peak_rss_mib"] == 340.0  # the largest worker, not Kafka
    assert found["startup_cpu_s"] == 20.0


def test_a_worker_missing_from_the_span_is_an_error_not_a_smaller_sum() -> None:
    start = Mark(0.0, 0, {WORKER: 1.0, "worker-2": 1.0})
    gone = Mark(5.0, 60, {WORKER: 3.0})  # worker-2 exited: psutil no longer reads it
    with pytest.raises(ValueError, match="worker-2"):
        summarize(10, 6, 1, start, gone, frames=60, messages=60, peak_rss_mib={},
                  startup_cpu_s=2.0, workers=2)  # fmt: skip
    # One worker asked: the second's figures are not looked at.
    one = summarize(10, 6, 1, start, gone, frames=60, messages=60, peak_rss_mib={},
                    startup_cpu_s=1.0)  # fmt: skip
    assert one["worker_cpu_s"] == 2.0 and one["workers_cpu_s"] == {WORKER: 2.0}


def test_the_same_backlog_drained_in_less_wall_time_is_a_higher_wall_rate() -> None:
    """The scale-out reading: same device-seconds, the two-worker drain ends sooner; its
    wall rate is higher by the ratio of the spans, whatever CPU it cost."""
    rows = []
    for workers, wall, cpu in ((1, 40.0, 36.0), (2, 25.0, 44.0)):
        start = Mark(0.0, 0, {worker_name(i): 5.0 for i in range(workers)})
        end = Mark(wall, 3000, {worker_name(i): 5.0 + cpu / workers for i in range(workers)})
        found = summarize(
            100, 30, 1, start, end, frames=3000, messages=3000, peak_rss_mib={},
            startup_cpu_s=5.0 * workers, workers=workers,
        )  # fmt: skip
        extra = {"first_commit_after_s": 2.0, "steady_device_seconds_per_wall_s": None}
        rows.append(
            found | extra | {"partitions": 8, "ready_spread_s": 0.0, "services_restarted": []}
        )
    one, two = rows
    assert two["device_seconds_per_wall_s"] / one["device_seconds_per_wall_s"] == pytest.approx(
        40.0 / 25.0, rel=0.01
    )
    assert two["device_seconds_per_cpu_s"] < one["device_seconds_per_cpu_s"]  # more CPU
    summary = sweep_summary(rows)
    # Backward compatible: the top level is the first (one-worker) run's, as before.
    assert summary["device_seconds_per_cpu_s"] == one["device_seconds_per_cpu_s"]
    assert summary["workers"] == 1
    assert (
        summary["by_workers"]["2"]["device_seconds_per_wall_s"] == two["device_seconds_per_wall_s"]
    )
    assert summary["wall_speedup"] == {"1": 1.0, "2": pytest.approx(1.6, abs=0.01)}
    assert summary["steady_wall_speedup"] == {"1": None, "2": None}  # not measured: not 0
    assert set(summary["by_workers"]["1"]) == set(SUMMARY_KEYS)


def test_the_steady_rate_leaves_out_the_warm_up_before_the_first_commit() -> None:
    """Nothing committed for 8 s (snapshots read, the group rebalancing), then 250 offsets
    a second, checkpointed every 2 s: the steady rate is that pace, the span's rate lower."""
    start = Mark(0.0, 0, {WORKER: 1.0})
    samples, committed = [], 0
    for t in range(1, 21):
        if t > 8 and t % 2 == 0:
            committed = min(3000, committed + 500)
        samples.append(Mark(float(t), committed, {WORKER: 1.0 + 0.5 * t}))
    start, end = delimit(start, samples, 3000)
    # Two device-seconds per offset (gateway batches of 2).
    first_s, steady = steady_rate(start, end, samples, 6000, 3000)
    assert first_s == 10.0
    assert end.t == 20.0
    assert steady == pytest.approx(2 * 2500 / 10.0)
    whole = summarize(300, 20, 2, start, end, frames=6000, messages=3000, peak_rss_mib={},
                      startup_cpu_s=1.0)["device_seconds_per_wall_s"]  # fmt: skip
    assert whole == pytest.approx(6000 / 20.0) and whole < steady
    # No commit before the end sample: too short to tell, not a rate of zero.
    only = [Mark(1.0, 0, {}), Mark(2.0, 3000, {})]
    assert steady_rate(Mark(0.0, 0, {}), only[-1], only, 6000, 3000) == (None, None)


def test_the_command_passes_worker_counts_and_partitions_to_the_suite(monkeypatch) -> None:
    calls: list[dict] = []

    def fake_run(settings, devices, seconds, per_message, **kw) -> tuple[list, dict]:
        calls.append({"devices": devices, "seconds": seconds, **kw})
        return [], {}

    from stream.services import health
    from stream.tools.bench import throughput

    monkeypatch.setattr(health, "check_kafka", lambda settings: None)
    monkeypatch.setattr(health, "check_influx", lambda settings: None)
    monkeypatch.setattr(throughput, "run", fake_run)
    monkeypatch.setattr(common, "envelope", lambda *args: {})
    app = typer.Typer()
    app.command()(bench_cli.bench)
    runner = CliRunner()
    argv = ["throughput", "--devices", "100", "--seconds", "20", "--workers", "2,1",
            "--partitions", "8"]  # fmt: skip
    assert runner.invoke(app, argv).exit_code == 0
    assert calls[-1] == {"devices": 100, "seconds": 20, "workers": [1, 2], "partitions": 8}
    assert runner.invoke(app, ["throughput"]).exit_code == 0
    assert (calls[-1]["workers"], calls[-1]["partitions"]) == ([1], None)  # as before
