"""The Grafana dashboards on the real InfluxDB, populated by the real worker.

A simulated ward (``vitalstream simulate``) runs through a real ``vitalstream worker``
subprocess (Kafka → Faust → InfluxDB) with a tiny ONNX model in its registry so the score
panels have data. Then every panel's Flux, substituted as Grafana substitutes it, must
run without error and return rows, and every dashboard must render to a small PNG.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import onnx
import pytest
from influxdb_client import InfluxDBClient
from onnx import TensorProto, helper

from stream.config import Settings
from stream.records import VERDICTS, Alert
from stream.scoring import registry
from stream.scoring.registry import ModelCard
from stream.subscriptions.audit import audit_lines
from stream.tools.burden.influx import write_lines
from stream.tools.dashboard_render import render_dashboard
from stream.tools.dashboard_runner import DashboardRunner
from stream.tools.dashboards import TimeRange, load_dashboards

pytestmark = pytest.mark.integration

DURATION_S = 240
DEVICES = 10
MODEL = "probe"


def probe_model(settings: Settings, scratch: Path) -> None:
    """A registry version whose classes map to no alert kind: scores written, no alerts."""
    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", "time", 1])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])
    gain = helper.make_tensor("gain", TensorProto.FLOAT, [2], [1.0, -1.0])
    nodes = [
        helper.make_node("ReduceMean", ["ecg"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["m", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probabilities"]),
    ]
    graph = helper.make_graph(nodes, MODEL, [x], [y], initializer=[gain])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, scratch / "probe.onnx")
    card = ModelCard(
        name=MODEL,
        version="1",
        created=datetime(2026, 1, 1, tzinfo=UTC),
        inputs=[
            {
                "name": "ecg",
                "kind": "ecg",
                "shape": [-1, -1, 1],
                "fs": 250.0,
                "window_s": 10.0,
                "channels": ["ecg"],
            }
        ],
        outputs=["probabilities"],
        classes=["sinus", "irregular"],
        thresholds={"sinus": 0.5, "irregular": 0.5},
        normalization={"ecg": {"mean": [0.0], "std": [1.0]}},
        training_data={"description": "dashboard test probe", "sha256": "0" * 64},
        code_version="test",
        onnx_sha256="0" * 64,
    )
    registry.write_version(settings.models.directory, card, scratch / "probe.onnx")
    registry.promote(MODEL, "1", settings)


def worker_env(settings: Settings, models_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name, topic in settings.topics.model_dump().items():
        env[f"VITALSTREAM_TOPICS__{name.upper()}"] = topic
    env.update(
        VITALSTREAM_KAFKA__BOOTSTRAP=settings.kafka.bootstrap,
        VITALSTREAM_INFLUX__URL=settings.influx.url,
        VITALSTREAM_INFLUX__BUCKET=settings.influx.bucket,
        VITALSTREAM_STREAM__APP_ID=settings.stream.app_id,
        VITALSTREAM_STREAM__METRICS_EVERY_S="1",
        VITALSTREAM_MODELS__DIRECTORY=str(models_dir),
    )
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from stream.cli.main import main; main()", *args]


def count(client: InfluxDBClient, settings: Settings, predicate: str) -> int:
    flux = (
        f'from(bucket: "{settings.influx.bucket}") |> range(start: -1d) '
        f"|> filter(fn: (r) => {predicate}) |> group() |> count()"
    )
    tables = client.query_api().query(flux, org=settings.influx.org)
    return sum(r.get_value() for t in tables for r in t.records)


def wait_until_settled(client: InfluxDBClient, settings: Settings, timeout_s: float) -> None:
    """Until the worker has written every window and reported its model at least once."""
    deadline = time.monotonic() + timeout_s
    history: list[int] = []
    while time.monotonic() < deadline:
        history.append(count(client, settings, 'r._measurement == "features"'))
        model_reported = count(
            client, settings, f'r._measurement == "pipeline" and r._field == "model_{MODEL}"'
        )
        # Stable for 10 s: one batch of a whole backlog can take several seconds to cut.
        if model_reported and history[-1] > 0 and history[-10:] == [history[-1]] * 10:
            return
        time.sleep(1.0)
    raise AssertionError(f"worker did not settle in {timeout_s} s; feature lines {history[-5:]}")


@pytest.fixture
def populated(
    isolated_settings: Settings, influx_client: InfluxDBClient, tmp_path: Path
) -> Iterator[Settings]:
    models_dir = tmp_path / "models"
    probe_model(
        isolated_settings.model_copy(
            update={"models": isolated_settings.models.model_copy(update={"directory": models_dir})}
        ),
        tmp_path,
    )
    env = worker_env(isolated_settings, models_dir)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        cli("worker", "--workers-dir", str(tmp_path / "workers")),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        start = time.time() - DURATION_S - 5
        simulated = subprocess.run(
            # Per-device keys: each device's enrolment is on its frames' partition, so the
            # worker has it before the frames (the dashboards resolve a patient's device).
            cli("simulate", "--devices", str(DEVICES), "--duration", str(DURATION_S),
                "--speed", "0", "--start", str(start), "--per-message", "1", "--json"),
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert simulated.returncode == 0, simulated.stderr[-2000:]
        try:
            wait_until_settled(influx_client, isolated_settings, timeout_s=90)
        except AssertionError as exc:
            log.flush()
            tail = (tmp_path / "worker.log").read_text()[-3000:]
            raise AssertionError(f"{exc}\nworker log:\n{tail}") from exc
        yield isolated_settings
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def patient_with_resolved_alert(client: InfluxDBClient, settings: Settings) -> tuple[str, str]:
    """A patient (and device) whose alerts both fired and resolved: every panel has data."""
    flux = f'''
from(bucket: "{settings.influx.bucket}")
  |> range(start: -1d)
  |> filter(fn: (r) => r._measurement == "alerts" and r._field == "alert_id")
  |> filter(fn: (r) => r.event == "resolved")
  |> group()
  |> keep(columns: ["patient", "device"])
'''
    records = [
        r for t in client.query_api().query(flux, org=settings.influx.org) for r in t.records
    ]
    assert records, "the scenario resolved no alert"
    return records[0]["patient"], records[0]["device"]


def acknowledge_some_alarms(client: InfluxDBClient, settings: Settings, count: int = 6) -> int:
    """Acknowledge some of the worker's alarms, each verdict in turn, as the alert
    service's audit records them (``alerts`` and ``adjudications`` points, 30 s after the
    alarm): the alarm-burden panels then have data."""
    flux = f'''
from(bucket: "{settings.influx.bucket}")
  |> range(start: -1d)
  |> filter(fn: (r) => r._measurement == "alerts" and r._field == "alert_id")
  |> filter(fn: (r) => r.event == "triggered")
  |> group()
  |> limit(n: {count})
'''
    lines = []
    for i, row in enumerate(r for t in client.query_api().query(flux) for r in t.records):
        triggered_at = row.get_time().timestamp()
        acknowledged = Alert(
            alert_id=row.get_value(), event="acknowledged", kind=row["kind"],
            category=row["category"], priority=row["priority"], patient=row["patient"],
            ward=row["ward"], device_id=row["device"], t_onset=triggered_at - 5,
            t_event=triggered_at + 30 + i, window=(triggered_at - 15, triggered_at),
            source="dashboard test", acknowledged_by="nurse-test", verdict=VERDICTS[i % 3],
        )  # fmt: skip
        lines += audit_lines(acknowledged, triggered_at)
    assert lines, "the scenario raised no alarm"
    return write_lines(client, settings.influx.bucket, settings.influx.org, lines)


def test_every_panel_runs_and_returns_data_and_renders(
    populated: Settings, influx_client: InfluxDBClient, tmp_path: Path
) -> None:
    settings = populated
    patient, device = patient_with_resolved_alert(influx_client, settings)
    acknowledge_some_alarms(influx_client, settings)
    runner = DashboardRunner(
        influx_client, settings.influx.bucket, settings.influx.org, {"patient": patient}
    )
    time_range = TimeRange.last(DURATION_S + 600)
    dashboards = load_dashboards()
    assert set(dashboards) == {"vitalstream-ward", "vitalstream-patient", "vitalstream-pipeline"}

    # The variables resolve from the data: the scenario's ward, the chosen patient's device.
    values = runner.resolve_variables(dashboards["vitalstream-patient"], time_range)
    assert values == {"ward": "ward-a", "patient": patient, "device": device}

    problems = []
    checked = 0
    for uid, dashboard in dashboards.items():
        for result in runner.run(dashboard, time_range):
            checked += 1
            where = f"{uid} #{result.query.panel_id} {result.query.title} {result.query.ref_id}"
            if result.error is not None:
                problems.append(f"{where}: {result.error}")
            elif result.rows == 0:
                problems.append(f"{where}: no rows")
    assert problems == []
    assert checked >= 30

    for uid, dashboard in dashboards.items():
        path = render_dashboard(runner, dashboard, time_range, tmp_path / "png")
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG"), uid
        assert 10_000 < len(data) < 250_000, (uid, len(data))
