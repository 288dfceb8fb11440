"""Pure parts of the throughput suite: the gateway batch encoding of the preload, the
refusal of batches the worker cannot read, the measured span's delimiting and the summary's
arithmetic. Nothing is timed and no service is used."""

from __future__ import annotations

import os
import time

import numpy as np
import orjson
import psutil
import pytest
import typer
from typer.testing import CliRunner

from producers.fleet import Fleet
from producers.scenario import load_scenario
from stream.cli import bench as bench_cli
from stream.records import Frame
from stream.tools.bench import common, suites
from stream.tools.bench.throughput import (
    GATEWAY_ENV,
    GATEWAY_REFUSED,
    WORKER,
    GatewayBatchesUnsupported,
    Mark,
    check_per_message,
    delimit,
    gateway_batch,
    gateway_of,
    messages_of,
    restarted_services,
    summarize,
)


def _period(devices: int = 7) -> list[tuple[str, bytes]]:
    """One frame period of a simulated ward, as the preload sends it."""
    fleet = Fleet(load_scenario("default"), devices, seed=3, start=time.time() - 100, faults=False)
    return fleet.tick().messages


def test_one_frame_per_message_is_the_simulators_own_messages() -> None:
    period = _period()
    assert messages_of(period, None) == period
    assert {key for key, _ in period} == {Frame.model_validate_json(v).device_id for _, v in period}


@pytest.mark.parametrize("per_message", [2, 3, 7, 10])
def test_gateway_batches_carry_every_frame_once_keyed_by_gateway(per_message: int) -> None:
    period = _period(7)
    gateways = gateway_of([device for device, _ in period], per_message)
    batches = messages_of(period, gateways)
    assert len(batches) == -(-len(period) // per_message)  # ceil: the last gateway is short
    carried = []
    for key, value in batches:
        batch = orjson.loads(value)
        assert batch["v"] == 1 and batch["gateway_id"] == key
        assert set(batch) == {"v", "gateway_id", "frames"}
        assert len(batch["frames"]) <= per_message
        # Each frame is the simulator's frame object, unchanged, of a device of this gateway.
        for frame in batch["frames"]:
            assert gateways[frame["device_id"]] == key
            assert Frame.model_validate(frame).device_id == frame["device_id"]
        carried += [orjson.dumps(frame) for frame in batch["frames"]]
    # Every frame exactly once, in the simulator's order.
    assert carried == [orjson.dumps(orjson.loads(value)) for _, value in period]


def test_a_gateway_batch_is_the_json_of_its_record() -> None:
    frames = [orjson.dumps({"device_id": f"d{i}", "x": [i, 0.5]}) for i in range(3)]
    assert orjson.loads(gateway_batch("gw-7", frames)) == {
        "v": 1, "gateway_id": "gw-7", "frames": [orjson.loads(f) for f in frames],
    }  # fmt: skip
    assert orjson.loads(gateway_batch("gw-\"x\"", [])) == {
        "v": 1, "gateway_id": 'gw-"x"', "frames": [],
    }  # fmt: skip


def test_gateways_take_consecutive_devices() -> None:
    devices = [f"d{i}" for i in range(5)]
    assert list(gateway_of(devices, 1).values()) == [f"gw-{i:04d}" for i in range(1, 6)]
    assert list(gateway_of(devices, 2).values()) == ["gw-0001"] * 2 + ["gw-0002"] * 2 + ["gw-0003"]
    with pytest.raises(ValueError):
        gateway_of(devices, 0)


def test_gateway_batches_are_refused_unless_asked_for() -> None:
    check_per_message(1, {})
    with pytest.raises(GatewayBatchesUnsupported, match=GATEWAY_REFUSED):
        check_per_message(4, {})
    with pytest.raises(GatewayBatchesUnsupported):
        check_per_message(4, {GATEWAY_ENV: "0"})
    check_per_message(4, {GATEWAY_ENV: "1"})
    check_per_message(4, {GATEWAY_ENV: "true"})
    with pytest.raises(ValueError):
        check_per_message(0, {GATEWAY_ENV: "1"})


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


def test_the_command_defaults_to_200_devices_and_refuses_what_the_worker_cannot_read(
    monkeypatch,
) -> None:
    seen: list[dict] = []

    def fake_run(suite: str, options: dict) -> tuple[list, dict]:
        assert suite == "throughput"
        seen.append(options)
        return [], {}

    monkeypatch.setattr(suites, "run_suite", fake_run)
    monkeypatch.setattr(common, "envelope", lambda *args: {})
    monkeypatch.delenv(GATEWAY_ENV, raising=False)
    app = typer.Typer()
    app.command()(bench_cli.bench)
    runner = CliRunner()
    assert runner.invoke(app, ["throughput"]).exit_code == 0
    assert (seen[-1]["devices"], seen[-1]["seconds"], seen[-1]["per_message"]) == ([200], 60, 1)
    refused = runner.invoke(app, ["throughput", "--per-message", "8"])
    assert refused.exit_code != 0 and len(seen) == 1
    assert "gateway batches are not supported" in " ".join(refused.output.split())
    assert runner.invoke(app, ["throughput", "--devices", "100,200"]).exit_code != 0
    monkeypatch.setenv(GATEWAY_ENV, "1")
    assert runner.invoke(app, ["throughput", "--per-message", "8"]).exit_code == 0
    assert seen[-1]["per_message"] == 8
