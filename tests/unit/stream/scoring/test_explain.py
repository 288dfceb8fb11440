"""Occlusion attribution finds the segment that drives the score (ONNX only, no torch),
and a model-sourced alert from the stream's pipeline carries it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from stream.config import load_settings
from stream.scoring import registry
from stream.scoring.explain import explain, explain_alerting
from stream.scoring.scorer import Scorer
from stream.worker.analyze import analyze_recording


def max_model(
    tmp_path, kind: str, channels: list[str], event: str = "event", fs: float = 10
) -> registry.LoadedModel:
    """sigmoid(max over time and channels): the score is made by the largest value."""
    c = len(channels)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["x"], ["m"], axes=[1, 2], keepdims=0),
            helper.make_node("Unsqueeze", ["m", "axis"], ["u"]),
            helper.make_node("Sigmoid", ["u"], ["probabilities"]),
        ],
        "max",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", c])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 1])],
        initializer=[helper.make_tensor("axis", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    card = registry.ModelCard(
        name="max", version="1", created=registry.now(),
        inputs=[{"name": "x", "kind": kind, "shape": [-1, -1, c], "fs": fs, "window_s": 10,
                 "channels": channels}],
        outputs=["probabilities"], classes=[event], thresholds={event: 0.9},
        normalization={"x": {"mean": [0.0] * c, "std": [1.0] * c}},
        training_data={"description": "test", "sha256": "0" * 64},
        code_version="test", onnx_sha256="0" * 64,
    )  # fmt: skip
    return registry.load(registry.write_version(tmp_path / "reg", card, tmp_path / "m.onnx"))


def test_ecg_explanation_points_at_the_spike(tmp_path) -> None:
    model = max_model(tmp_path, "ecg", ["ecg"])
    window = np.zeros((100, 1), dtype=np.float32)
    window[43] = 3.0  # 4.3 s into the window
    out = explain(model, window, "event", segment_s=1.0)
    assert out["segment_s"] == [4.0, 5.0]
    assert out["score"] > 0.9 and len(out["segment_attribution"]) == 10
    assert "top_features" not in out


def test_vitals_explanation_ranks_features(tmp_path) -> None:
    model = max_model(tmp_path, "vitals", ["hr", "spo2"])
    window = np.zeros((60, 2), dtype=np.float32)
    window[-5:, 0] = 2.5
    window[-1, 1] = np.nan
    out = explain(model, window, "event", segment_s=1.0, top_k=2)
    assert out["top_features"][0]["name"] == "hr"
    assert out["top_features"][0]["value"] == 2.5
    assert out["segment_s"] == [5.0, 6.0]


def test_every_channel_gets_an_attribution(tmp_path) -> None:
    model = max_model(tmp_path, "ecg", ["ecg", "rr_s"])
    window = np.zeros((100, 2), dtype=np.float32)
    window[20, 1] = 4.0  # the RR channel makes the score
    out = explain(model, window, "event")
    assert out["channel_attribution"]["rr_s"] > 0.4
    assert out["channel_attribution"]["ecg"] == 0.0
    assert out["segment_s"] == [2.0, 3.0]


def test_only_classes_over_threshold_are_explained_with_feature_values(tmp_path) -> None:
    model = max_model(tmp_path, "ecg", ["ecg"])
    window = np.zeros((100, 1), dtype=np.float32)
    features = {"ecg_hr_bpm": 61.234, "rr_irregularity": float("nan"), "spo2": 97.0}
    assert explain_alerting(model, window, {"event": 0.5}, features) == {}
    window[70] = 4.0
    [(name, out)] = explain_alerting(model, window, {"event": 0.98}, features).items()
    assert name == "event" and out["segment_s"] == [7.0, 8.0]
    assert out["features"] == {"ecg_hr_bpm": 61.234}  # ECG features only, finite only


def test_a_model_alert_from_the_pipeline_carries_its_explanation(tmp_path) -> None:
    fs = 128.0
    t = np.arange(int(30 * fs)) / fs
    ecg = np.random.default_rng(0).normal(0, 0.01, len(t))
    for beat in np.arange(0.5, 30, 1.0):  # 60 bpm
        ecg += 1.2 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)
    ecg += 4.0 * np.exp(-0.5 * ((t - 14.3) / 0.03) ** 2)  # one huge wide beat
    model = max_model(tmp_path, "ecg", ["ecg", "rr_s"], event="ventricular", fs=64.0)
    # The beats here are at 60 bpm: let the rules take them for a run (their rate gate is
    # tested in tests/unit/stream/alerts), so the plumbing of the explanation is what is tested.
    settings = load_settings(
        models={"directory": tmp_path / "none"},
        pseudonym_key="k",
        rules={"ventricular_run_rate_bpm": 30.0},
    )
    results = analyze_recording(settings, Scorer(settings, {"max": model}), ecg, "ecg", fs)
    alerts = [a for r in results for a in r.alerts if a.source == "model:max@1"]
    assert [a.kind for a in alerts][:1] == ["ventricular_run"]
    first = alerts[0]
    assert first.event == "triggered" and first.explanation is not None
    t0, t1 = first.explanation["segment_s"]
    assert t0 <= 14.3 - first.window[0] <= t1  # the segment holding the wide beat
    assert first.explanation["features"]["ecg_hr_bpm"] > 50
    attribution = first.explanation["channel_attribution"]
    assert attribution["ecg"] > attribution["rr_s"]
