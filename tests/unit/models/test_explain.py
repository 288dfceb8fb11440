"""Occlusion attribution finds the segment that drives the score (ONNX only, no torch)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from models import registry
from models.explain import explain


def max_model(tmp_path, kind: str, channels: list[str]) -> registry.LoadedModel:
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
        inputs=[{"name": "x", "kind": kind, "shape": [-1, -1, c], "fs": 10, "window_s": 10,
                 "channels": channels}],
        outputs=["probabilities"], classes=["event"], thresholds={"event": 0.5},
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
