"""Pure parts of the headroom suite: the cores left and the per-frame budget, the worker's
and pydantic's costs read from the e2e and ceiling results, one size's result and the
summary. Nothing is timed."""

from __future__ import annotations

import orjson
import pytest

from stream.tools.bench.headroom import (
    compare,
    e2e_worker_cost,
    headroom,
    pydantic_decode_us,
    size_result,
    speedup,
    summarize,
)
from stream.tools.bench.sampling import Sample


def test_cores_left_and_budget_per_frame() -> None:
    cpu = {"simulator": 20.0, "kafka": 10.0, "influxd": 30.0, "passthrough": 40.0}
    found = headroom(cpu, consumed_per_s=5000.0, cores=2)
    assert found["total_cpu_percent"] == 100.0
    assert found["cores_left"] == 1.0
    assert found["budget_us_per_frame"] == pytest.approx(200.0)  # 1 core-s/s over 5,000 fr/s
    assert found["passthrough_us_per_frame"] == pytest.approx(80.0)  # 0.4 core-s/s
    assert found["cores"] == 2
    # Wearables elsewhere: the simulator's 0.2 cores come back.
    assert found["cores_left_devices_elsewhere"] == pytest.approx(1.2)
    assert found["budget_us_per_frame_devices_elsewhere"] == pytest.approx(240.0)


def test_without_the_simulator_no_more_than_every_core_is_left() -> None:
    found = headroom({"simulator": 150.0, "passthrough": 100.0}, 1000.0, cores=2)
    assert found["cores_left"] == 0.0
    assert found["cores_left_devices_elsewhere"] == pytest.approx(1.0)
    assert headroom({"simulator": 30.0}, 10.0, cores=2)["cores_left_devices_elsewhere"] == 2.0
    assert headroom({"passthrough": 300.0}, 10.0, cores=2)["cores_left_devices_elsewhere"] == 0.0


def test_an_overloaded_machine_leaves_nothing_and_an_idle_flow_has_no_budget() -> None:
    busy = headroom({"simulator": 150.0, "passthrough": 100.0}, 1000.0, cores=2)
    assert busy["cores_left"] == 0.0
    assert busy["budget_us_per_frame"] == 0.0
    idle = headroom({"simulator": 1.0}, 0.0, cores=2)
    assert idle["cores_left"] == pytest.approx(1.99)
    assert idle["budget_us_per_frame"] is None
    assert idle["passthrough_us_per_frame"] is None


def test_speedup_needs_a_cost_and_a_budget() -> None:
    assert speedup(2920.0, 200.0) == pytest.approx(14.6)
    assert speedup(100.0, 400.0) == pytest.approx(0.25)
    assert speedup(2920.0, 0.0) is None
    assert speedup(None, 200.0) is None
    assert speedup(2920.0, None) is None


def _e2e_row(devices: int, workers: int, consumed: float, cpu: float) -> dict:
    return {"devices": devices, "workers": workers, "consumed_frames_per_s": consumed,
            "cpu_percent": {"worker": cpu / workers, "workers": cpu}}  # fmt: skip


def _e2e() -> dict:
    results = [
        _e2e_row(500, 1, 300.0, 100.0),
        _e2e_row(400, 2, 400.0, 110.0),
        _e2e_row(500, 2, 480.0, 144.0),
    ]
    return {"results": results, "summary": {"max_devices_realtime": 500, "workers": 2}}


def _ceiling(rate: float = 8000.0) -> dict:
    return {"results": [{"name": "kafka_consume", "rate": 70000.0},
                        {"name": "pydantic_decode", "rate": rate}]}  # fmt: skip


def test_worker_cost_is_read_at_the_e2e_knee_size_and_worker_count() -> None:
    cost = e2e_worker_cost(_e2e())
    assert cost["e2e_knee_devices"] == 500
    assert cost["e2e_knee_workers"] == 2
    # 480 frames/s on 1.44 cores: 333.3 frames per CPU-second, 3,000 µs per frame
    assert cost["e2e_worker_us_per_frame"] == pytest.approx(3000.3, abs=0.1)


def test_no_e2e_result_or_no_knee_gives_no_worker_cost() -> None:
    assert e2e_worker_cost(None)["e2e_worker_us_per_frame"] is None
    no_knee = _e2e() | {"summary": {"max_devices_realtime": 0, "workers": 1}}
    assert e2e_worker_cost(no_knee) == {
        "e2e_knee_devices": None, "e2e_knee_workers": None, "e2e_worker_us_per_frame": None,
    }  # fmt: skip


def test_pydantic_decode_cost_comes_from_the_ceiling_suite() -> None:
    assert pydantic_decode_us(_ceiling(8000.0)) == pytest.approx(125.0)
    assert pydantic_decode_us(None) is None
    assert pydantic_decode_us({"results": [{"name": "kafka_consume", "rate": 1.0}]}) is None


def test_compare_sets_the_worker_against_the_budget() -> None:
    largest = {"budget_us_per_frame": 200.0, "passthrough_us_per_frame": 100.0}
    found = compare(largest, _e2e(), _ceiling())
    assert found["speedup_needed"] == pytest.approx(15.0, abs=0.01)  # 3,000 / 200
    assert found["analysis_speedup_needed"] == pytest.approx(14.5, abs=0.01)  # 2,900 / 200
    assert found["pydantic_decode_us_per_frame"] == pytest.approx(125.0)
    assert compare(largest, None, None)["speedup_needed"] is None


def _samples() -> list[Sample]:
    """Every 2 s for 10 s: 100 frames/s produced, the pass-through 50 frames behind;
    the pass-through busy 30 % of a core, the simulator 10 %."""
    return [
        Sample(float(t), 100 * t, 100 * t - 50,
               {"passthrough": 0.3 * t, "simulator": 0.1 * t}, {"passthrough": 50.0})
        for t in range(0, 12, 2)
    ]  # fmt: skip


def test_a_size_result_has_the_flow_and_the_headroom_on_it() -> None:
    flowed = {"frames": 1000, "lines": 4000, "undecodable": 0, "write_failures": 0}
    result = size_result(100, _samples(), 0.0, 2.0, 219.0, {"passthrough": 55.0}, flowed, 2)
    assert result["consumed_frames_per_s"] == pytest.approx(100.0)
    assert result["cpu_percent"] == {"passthrough": 30.0, "simulator": 10.0}
    assert result["total_cpu_percent"] == pytest.approx(40.0)
    assert result["cores_left"] == pytest.approx(1.6)
    assert result["budget_us_per_frame"] == pytest.approx(16000.0)
    assert result["passthrough_us_per_frame"] == pytest.approx(3000.0)
    assert result["lines_per_frame"] == pytest.approx(4.0)
    assert result["passthrough_keeps_up"] and result["realtime"]
    assert result["lag_frames_end"] == 50
    assert "alert_latency_received_s" not in result  # nothing of e2e's alerting


def test_summary_is_the_largest_size_compared_with_the_saved_suites(tmp_path) -> None:
    (tmp_path / "e2e.json").write_bytes(orjson.dumps(_e2e()))
    (tmp_path / "ceiling.json").write_bytes(orjson.dumps(_ceiling()))
    small = {"devices": 100, "budget_us_per_frame": 9000.0, "passthrough_us_per_frame": 50.0}
    large = {"devices": 5000, "budget_us_per_frame": 100.0, "passthrough_us_per_frame": 60.0,
             "cores_left": 0.5, "consumed_frames_per_s": 5000.0}  # fmt: skip
    summary = summarize([large, small], seconds=60, warmup_s=20, bench_dir=tmp_path)
    assert summary["devices"] == 5000
    assert summary["budget_us_per_frame"] == 100.0
    assert summary["speedup_needed"] == pytest.approx(30.0, abs=0.01)
    assert summary["pydantic_decode_us_per_frame"] == pytest.approx(125.0)
    assert (summary["seconds_per_size"], summary["warmup_s"]) == (60, 20)
    alone = summarize([small], 60, 20, bench_dir=tmp_path / "missing")
    assert alone["e2e_worker_us_per_frame"] is None and alone["speedup_needed"] is None
