"""End to end: a labelled ward scenario → `vitalstream simulate` → a real `vitalstream
worker` subprocess → the expected alerts on Kafka and the expected points in InfluxDB."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from stream.config import Settings
from stream.kafka import client_options
from stream.records import Alert, DeadLetter
from stream.scoring import registry
from tests.integration.harness import cli, consume, influx_rows
from tests.integration.harness import worker_env as harness_worker_env

pytestmark = pytest.mark.integration

SCENARIO = """
name: e2e
ward: ward-e2e
patients:
  - id: MRN-E2E-A
    events: [{event: tachycardia, start: 20, end: 60, severity: 0.8}]
  - id: MRN-E2E-B
    events: [{event: desaturation, start: 30, end: 70, severity: 0.8}]
  - id: MRN-E2E-C
    events: [{event: device_silent, start: 40, end: 110, severity: 1.0}]
  - id: MRN-E2E-D
    events: [{event: fall, start: 30, end: 80, severity: 0.8}]
  - id: MRN-E2E-QUIET
"""
DURATION_S, SPEED, SILENCE_S = 110, 10, 20
# Priorities the rules may give each event at onset (a threshold event may start at
# medium and escalate, or cross both limits within the onset delay).
EXPECTED_PRIORITY = {
    "tachycardia": {"medium", "high"},
    "desaturation": {"medium", "high"},
    "fall": {"high"},
    "device_silent": {"medium"},
}
# Frame-time slack from a label's start to its alert: onset delays, a 10 s window's
# median, the simulator's ramp; for silence the signal-loss timeout plus the worker's
# 1 s wall-clock check, which is SPEED seconds of frame time in a replay.
MAX_DELAY_S = {"device_silent": SILENCE_S + 2 * SPEED}
DEFAULT_MAX_DELAY_S = 20


def wait_for(path: Path, text: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"worker not ready ({text!r} not logged):\n{path.read_text()[-3000:]}")


def metrics_url(log_path: Path) -> str:
    found = re.search(
        r"Prometheus metrics on (http://127\.0\.0\.1:\d+/metrics)", log_path.read_text()
    )
    assert found, "the worker serves Prometheus metrics on loopback"
    return found.group(1)


def worker_env(settings: Settings) -> dict[str, str]:
    return harness_worker_env(
        settings, fast_failover=False, VITALSTREAM_STREAM__SIGNAL_LOSS_S=str(SILENCE_S)
    )


def test_a_ward_scenario_through_a_real_worker(isolated_settings, influx_client, tmp_path):
    settings = isolated_settings
    env = worker_env(settings)
    scenario = tmp_path / "e2e.yaml"
    scenario.write_text(SCENARIO)
    labels_path = tmp_path / "labels.jsonl"
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(cli("worker"), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(log_path, "[^Worker]: Ready", 90, worker)
        producer = KafkaProducer(**client_options(settings.kafka))
        producer.send(settings.topics.frames, key=b"dev-junk", value=b'{"v": 1, "seq": ')
        producer.flush()
        producer.close()
        start = time.time() - 300  # frame times in the past: a 10x replay never runs ahead
        subprocess.run(
            cli(
                "simulate", "--scenario", str(scenario), "--devices", "5",
                "--duration", str(DURATION_S), "--speed", str(SPEED), "--start", str(start),
                "--seed", "2", "--labels-out", str(labels_path), "--json",
                # Per-device keys: the silence check below reasons about a device alone
                # on its partition.
                "--per-message", "1",
            ),
            env=env, check=True, timeout=90, capture_output=True,
        )  # fmt: skip
        labels = [orjson.loads(line) for line in labels_path.read_bytes().splitlines()]
        expected = {(lab["device_id"], lab["event"]) for lab in labels}

        def all_triggered(values: list[bytes]) -> bool:
            alerts = [Alert.from_json(v) for v in values]
            seen = {(a.device_id, a.kind) for a in alerts if a.event == "triggered"}
            return expected <= seen

        consume(settings, settings.topics.alerts, all_triggered, 60)
        time.sleep(4)  # the last batches, resolutions and a metrics tick
        metrics = httpx.get(metrics_url(log_path), timeout=5).text
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            exit_code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            exit_code = None
    assert exit_code == 0, log_path.read_text()[-3000:]
    # The worker has stopped: what is on Kafka now is everything it published.
    alert_values = consume(settings, settings.topics.alerts, lambda _: False, 4)
    deadletters = consume(settings, settings.topics.deadletter, bool, 20)

    # Each labelled event alerted once, with the right kind and priority, near its start.
    # When the replay ends every device really does fall silent: those silences begin
    # after the scenario (last frame + the timeout) and are not its events. Silence is
    # judged on each partition's own clock, which after its last frame can only advance
    # with wall time (so the silent patient stays silent to the end: in a 10x replay a
    # device alone on its partition is found silent after the timeout in wall time).
    alerts = [Alert.from_json(v) for v in alert_values]
    replay_end = start + DURATION_S
    alerts = [a for a in alerts if not (a.kind == "device_silent" and a.t_onset >= replay_end)]
    triggered = [a for a in alerts if a.event == "triggered"]
    by_label = {(lab["device_id"], lab["event"]): lab for lab in labels}
    assert Counter((a.device_id, a.kind) for a in triggered) == Counter(by_label.keys()), triggered
    for alert in triggered:
        label = by_label[(alert.device_id, alert.kind)]
        assert alert.priority in EXPECTED_PRIORITY[alert.kind], alert
        delay = alert.t_event - label["start"]
        assert 0 <= delay <= MAX_DELAY_S.get(alert.kind, DEFAULT_MAX_DELAY_S), (alert, label)
        assert alert.ward == "ward-e2e" and alert.patient.startswith("p-")
    # Nothing for the quiet patient or outside the events (every trigger matched a label).
    quiet_device = sorted(set(_devices(influx_rows(settings, influx_client, _VITALS))))[-1]
    assert quiet_device not in {a.device_id for a in alerts}

    # The malformed frame went to the dead-letter topic with its reason.
    letters = [DeadLetter.from_json(v) for v in deadletters]
    assert any(d.reason.startswith("bad json") for d in letters), letters

    # InfluxDB: per-second vitals for every device, one alerts row per alert event,
    # features, scores of windows and the worker's own metrics; no raw patient ids.
    vitals = influx_rows(settings, influx_client, _VITALS)
    per_device = Counter(r.values["device"] for r in vitals)
    assert len(per_device) == 5
    assert min(per_device.values()) >= 0.9 * 40  # the silent one sent its first 40 s
    assert {r.values["patient"][:2] for r in vitals} == {"p-"}
    alert_rows = influx_rows(
        settings, influx_client, '|> filter(fn: (r) => r._measurement == "alerts" '
        'and r._field == "alert_id")',
    )  # fmt: skip
    assert len(alert_rows) == len(alerts)
    score_rows = influx_rows(
        settings, influx_client, '|> filter(fn: (r) => r._measurement == "scores") '
        '|> keep(columns: ["model", "version", "_time"]) |> group() |> distinct(column: "model")',
    )  # fmt: skip
    shipped = {v.name for v in registry.list_models(settings)}
    assert {r.get_value() for r in score_rows} == shipped  # every live model scored
    for measurement in ("features", "quality", "pipeline"):
        rows = influx_rows(
            settings, influx_client,
            f'|> filter(fn: (r) => r._measurement == "{measurement}") |> limit(n: 1)',
        )  # fmt: skip
        assert rows, f"no {measurement} points"
    assert "MRN-E2E" not in log_path.read_text()
    frames_total = re.search(r"^vitalstream_frames_total (\S+)$", metrics, re.M)
    assert frames_total and float(frames_total.group(1)) >= 5 * (DURATION_S - 50)


_VITALS = '|> filter(fn: (r) => r._measurement == "vitals" and r._field == "hr")'


def _devices(rows: list) -> list[str]:
    return [r.values["device"] for r in rows]


def tiny_model(root: Path, version: str, gain: float) -> None:
    """A one-node ECG model stored in the registry (classes raise no alerts)."""
    from datetime import UTC, datetime

    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", "time", 1])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])
    gains = helper.make_tensor("gain", TensorProto.FLOAT, [2], [gain, -gain])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["ecg"], ["m"], axes=[1], keepdims=0),
            helper.make_node("Mul", ["m", "gain"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["probabilities"]),
        ],
        "tiny", [x], [y], initializer=[gains],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx_path = root / f"tiny-{version}.onnx"
    onnx.save(model, onnx_path)
    card = registry.ModelCard(
        name="tiny", version=version, created=datetime(2026, 1, 1, tzinfo=UTC),
        inputs=[{"name": "ecg", "kind": "ecg", "shape": [-1, -1, 1], "fs": 128.0,
                 "window_s": 10.0, "channels": ["ecg"]}],
        outputs=["probabilities"], classes=["calm", "busy"],
        thresholds={"calm": 0.5, "busy": 0.5},
        normalization={"ecg": {"mean": [0.0], "std": [1.0]}},
        training_data={"description": "test", "sha256": "0" * 64},
        code_version="test", onnx_sha256="0" * 64,
    )  # fmt: skip
    registry.write_version(root / "models", card, onnx_path)


def test_a_rollout_on_the_control_topic_swaps_the_live_model(isolated_settings, tmp_path):
    settings = isolated_settings.model_copy(
        update={"models": isolated_settings.models.model_copy(
            update={"directory": tmp_path / "models"})}
    )  # fmt: skip
    tiny_model(tmp_path, "1", gain=1.0)
    tiny_model(tmp_path, "2", gain=-1.0)
    registry.promote("tiny", "1", settings)
    env = worker_env(settings) | {"VITALSTREAM_MODELS__DIRECTORY": str(tmp_path / "models")}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(cli("worker"), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(log_path, "Prometheus metrics on", 90, worker)
        url = metrics_url(log_path)
        assert 'vitalstream_model_info{model="tiny",version="1"} 1.0' in httpx.get(url).text
        wait_for(log_path, "following model rollouts", 30, worker)
        good = registry.promote("tiny", "2", settings)
        forged = good.model_copy(update={"version": "1", "sha256": "f" * 64})
        producer = KafkaProducer(**client_options(settings.kafka))
        for rollout in (forged, good):
            producer.send(settings.topics.control, value=rollout.to_json())
        producer.flush()
        producer.close()
        wait_for(log_path, "model tiny@2 now live", 30, worker)
        text = httpx.get(url).text
        assert 'vitalstream_model_info{model="tiny",version="2"} 1.0' in text
        assert 'version="1"' not in text
        assert "rollout of tiny@1 refused" in log_path.read_text()
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
