"""Pure parts of the headroom suite: the cores left and the per-frame budget, the worker's
and pydantic's costs read from the e2e and ceiling results, the lines a pass-through writes
per frame, the CLI's default fleet size and the report's section. Nothing is timed."""

from __future__ import annotations

import orjson
import pytest
import typer
from typer.testing import CliRunner

from stream.cli import bench as bench_cli
from stream.records import Frame
from stream.signal.features import FEATURE_NAMES
from stream.sinks.influx import feature_lines, patient_tags, vitals_lines
from stream.tools.bench import common
from stream.tools.bench.e2e import Sample
from stream.tools.bench.headroom import (
    FLAG_FEATURES,
    FrameLines,
    compare,
    e2e_worker_cost,
    feature_template,
    headroom,
    pydantic_decode_us,
    size_result,
    speedup,
    summarize,
)
from stream.tools.bench.report import render_markdown, write_report


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


def test_the_feature_template_names_every_feature() -> None:
    template = feature_template()
    assert tuple(template) == FEATURE_NAMES
    assert all(isinstance(v, float) for v in template.values())


def _decoded_frame() -> dict:
    return {
        "v": 1, "device_id": "dev-0007", "seq": 3, "t0": 1_700_000_000.0,
        "signals": {
            "ecg": {"fs": 128, "unit": "mV", "samples": [0.01] * 128},
            "hr": {"fs": 1, "unit": "bpm", "samples": [71]},
            "spo2": {"fs": 1, "unit": "%", "samples": [97]},
            "resp": {"fs": 1, "unit": "/min", "samples": [15]},
            "temp": {"fs": 1, "unit": "°C", "samples": [36.7]},
            "battery": {"fs": 1, "unit": "%", "samples": [88]},
        },
    }  # fmt: skip


def test_a_frame_flows_through_as_its_vitals_and_one_windows_features() -> None:
    decoded = _decoded_frame()
    builder = FrameLines("ward-bench", hop_s=1.0, features=feature_template())
    lines = builder.of(decoded)
    tags = builder.tags("dev-0007")
    assert tags == patient_tags("ward-bench", tags["patient"], "dev-0007")
    assert tags["patient"].startswith("p-") and builder.tags("dev-0007") is tags
    # The pipeline's own vitals lines of the validated frame, then three feature lines.
    assert lines[:1] == vitals_lines(Frame.model_validate(decoded), tags)
    assert len(lines) == 4
    assert [text.split(",", 1)[0] for text in lines] == ["vitals", "features", "quality", "vitals"]
    assert all(text.endswith(" 1700000001000000000") for text in lines[1:])  # window end


def test_feature_values_vary_but_flags_do_not() -> None:
    builder = FrameLines("w", 1.0, feature_template(), seed=4)
    first, second = builder.features(), builder.features()
    assert first["spo2"] != second["spo2"]
    assert first["spo2"] == pytest.approx(97.0, rel=0.011)
    assert all(first[name] == second[name] for name in FLAG_FEATURES)
    assert len(feature_lines(first, {"device": "d"}, 1.0)) == 3


def test_headroom_measures_5000_devices_unless_told_otherwise(monkeypatch) -> None:
    seen: dict[str, list[int]] = {}

    def fake_run(suite: str, options: dict) -> tuple[list, dict]:
        seen[suite] = options["devices"]
        return [], {}

    monkeypatch.setattr(bench_cli, "_run_suite", fake_run)
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


def _headroom_suite() -> dict:
    row = {
        "devices": 5000, "produced_frames_per_s": 4990.0, "consumed_frames_per_s": 4985.0,
        "lag_frames_end": 900, "lag_slope_frames_per_s": 1.5,
        "cpu_percent": {"simulator": 45.0, "kafka": 20.0, "influxd": 40.0, "passthrough": 50.0},
        "total_cpu_percent": 155.0, "cores": 2, "cores_left": 0.45,
        "budget_us_per_frame": 90.3, "passthrough_us_per_frame": 100.3, "lines_per_frame": 4.0,
        "realtime": True, "producer_realtime": True, "passthrough_keeps_up": True,
    }  # fmt: skip
    summary = {
        key: row[key]
        for key in ("devices", "consumed_frames_per_s", "realtime", "passthrough_keeps_up",
                    "total_cpu_percent", "cores", "cores_left", "budget_us_per_frame")
    } | {"e2e_worker_us_per_frame": 2920.0, "e2e_knee_devices": 500, "e2e_knee_workers": 2,
         "speedup_needed": 32.34, "analysis_speedup_needed": 31.23,
         "pydantic_decode_us_per_frame": 135.3, "seconds_per_size": 60, "warmup_s": 20}  # fmt: skip
    return {"suite": "headroom", "machine": {"cpu": "X", "cores": 2}, "versions": {},
            "results": [row], "summary": summary}  # fmt: skip


def test_report_has_a_headroom_section_after_the_ceilings() -> None:
    ceiling = {"summary": {"frames": 20000}, "results": [], "machine": {}, "versions": {}}
    text = render_markdown({"headroom": _headroom_suite(), "ceiling": ceiling})
    assert "## Headroom (`vitalstream bench headroom`)" in text
    assert text.index("## Ceilings") < text.index("## Headroom")
    assert "**5,000 devices**" in text
    assert "**90.3 µs of CPU per frame**" in text
    assert "**32.34× faster**" in text and "31.23×" in text
    assert "2,920.0 µs of CPU per frame" in text and "135.3 µs" in text
    # devices, produced, consumed, lag, trend, simulator, Kafka, influxd, pass-through CPU
    assert "| 5,000 | 4,990.0 | 4,985.0 | 900 | 1.5 | 45.0 | 20.0 | 40.0 | 50.0 | 155.0 |" in text
    assert "| 0.45 | 90.3 | 100.3 | 4.00 | yes |" in text
    assert "![headroom](bench/headroom_cpu.png)" in text


def test_report_without_headroom_skips_it_and_does_not_ask_for_it() -> None:
    text = render_markdown({})
    assert "## Headroom" not in text
    assert "Not measured yet: `e2e`, `ceiling`, `model`, `influx`, `producer`." in text
    suite = _headroom_suite()
    suite["summary"] |= {"e2e_worker_us_per_frame": None, "speedup_needed": None}
    assert "No e2e result to compare the worker with." in render_markdown({"headroom": suite})
    suite["summary"] |= {"e2e_worker_us_per_frame": 2920.0, "budget_us_per_frame": 0.0}
    assert "nothing is left for it" in render_markdown({"headroom": suite})
    suite["summary"] |= {"speedup_needed": 0.5, "analysis_speedup_needed": 0.45}
    fits = render_markdown({"headroom": suite})
    assert "it fits, using **0.50× the budget** (0.45×" in fits and "faster" not in fits


def test_write_report_draws_where_the_cores_go(tmp_path) -> None:
    (tmp_path / "headroom.json").write_bytes(orjson.dumps(_headroom_suite()))
    written = write_report(tmp_path, tmp_path / "benchmarks.md")
    assert tmp_path / "headroom_cpu.png" in written
    assert (tmp_path / "headroom_cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Headroom" in (tmp_path / "benchmarks.md").read_text()
