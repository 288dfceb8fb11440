"""Scoring: batched inputs, one ONNX call per model per batch, safe hot swap, shadow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from stream.config import load_settings
from stream.records import ModelRollout
from stream.scoring import registry
from stream.scoring.inputs import vitals_input
from stream.scoring.registry import ModelCard
from stream.scoring.scorer import Scorer
from stream.signal.window import SignalWindow

FS = 100.0


def tiny_onnx(path: Path, gain: float) -> Path:
    """probabilities = sigmoid(gain * [mean(x), -mean(x)]) over the time axis."""
    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", "time", 1])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])
    gain_t = helper.make_tensor("gain", TensorProto.FLOAT, [2], [gain, -gain])
    nodes = [
        helper.make_node("ReduceMean", ["ecg"], ["m3"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["m3", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probabilities"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[gain_t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def card(version: str) -> ModelCard:
    return ModelCard(
        name="tiny",
        version=version,
        created=datetime(2026, 1, 1, tzinfo=UTC),
        inputs=[
            {
                "name": "ecg",
                "kind": "ecg",
                "shape": [-1, -1, 1],
                "fs": FS,
                "window_s": 10.0,
                "channels": ["ecg"],
            }
        ],
        outputs=["probabilities"],
        classes=["af", "other"],
        thresholds={"af": 0.5, "other": 0.5},
        normalization={"ecg": {"mean": [0.0], "std": [1.0]}},
        training_data={"description": "none", "sha256": "0" * 64},
        code_version="test",
        onnx_sha256="0" * 64,
    )


@pytest.fixture
def settings(tmp_path):
    return load_settings(models={"directory": tmp_path / "models"}, pseudonym_key="k")


@pytest.fixture
def stored(settings, tmp_path):
    root = settings.models.directory
    registry.write_version(root, card("1"), tiny_onnx(tmp_path / "a.onnx", gain=1.0))
    registry.write_version(root, card("2"), tiny_onnx(tmp_path / "b.onnx", gain=-1.0))
    registry.promote("tiny", "1", settings)
    return settings


def tiny(scores: list) -> list:
    """The test model's scores (the shipped default models score the windows too)."""
    return [s for s in scores if s.model == "tiny"]


def ecg_window(level: float, seconds: float = 10.0, fs: float = FS) -> SignalWindow:
    return SignalWindow(
        t_start=0.0, t_end=seconds, ecg=np.full(int(seconds * fs), level), ecg_fs=fs
    )


def test_batch_is_scored_in_one_call_per_model(stored):
    scorer = Scorer.from_registry(stored)
    assert scorer.live["tiny"].card.version == "1"
    windows = [ecg_window(level) for level in (-2.0, 0.0, 2.0)] + [SignalWindow(0.0, 10.0)]
    scores = [tiny(s) for s in scorer.score(windows, [{}] * 4)]
    assert scorer.stats.calls == len(scorer.live)  # one call per model, not per window
    af = [s[0].probabilities["af"] for s in scores[:3]]
    assert af[0] < af[1] < af[2]
    assert af[1] == pytest.approx(0.5)
    assert scores[3] == []  # no ECG: nothing to score
    assert scores[0][0].ref == "tiny@1"


def test_a_window_at_another_rate_is_resampled(stored):
    scorer = Scorer.from_registry(stored)
    [score] = tiny(scorer.score([ecg_window(1.0, fs=250.0)], [{}])[0])
    assert score.probabilities["af"] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-4)


def test_rollout_swaps_the_live_version(stored):
    scorer = Scorer.from_registry(stored)
    rollout = registry.promote("tiny", "2", stored)
    assert scorer.apply(rollout).startswith("installed tiny@2")
    [score] = tiny(scorer.score([ecg_window(2.0)], [{}])[0])
    assert score.version == "2"
    assert score.probabilities["af"] < 0.5  # the new model's negative gain


def test_rollout_with_a_wrong_checksum_is_refused_and_the_old_model_serves(stored):
    scorer = Scorer.from_registry(stored)
    bad = ModelRollout(name="tiny", version="2", path="/etc/passwd", sha256="f" * 64)
    assert scorer.apply(bad).startswith("refused")
    assert scorer.stats.rollouts_refused == 1
    assert scorer.live["tiny"].card.version == "1"


def test_rollout_of_a_corrupt_file_is_refused(stored):
    scorer = Scorer.from_registry(stored)
    rollout = registry.promote("tiny", "2", stored)
    onnx_file = stored.models.directory / "tiny" / "2" / "model.onnx"
    onnx_file.write_bytes(b"garbage")
    assert scorer.apply(rollout).startswith("refused")
    assert scorer.live["tiny"].card.version == "1"


def test_shadow_scores_alongside_live(stored):
    scorer = Scorer.from_registry(stored)
    rollout = registry.promote("tiny", "2", stored, shadow=True)
    scorer.apply(rollout)
    [scores] = scorer.score([ecg_window(2.0)], [{}])
    assert {(s.version, s.shadow) for s in scores} >= {("1", False), ("2", True)}
    assert scorer.versions()["tiny(shadow)"] == "2"


def test_vitals_input_uses_trends_then_current_feature_values():
    spec = registry.ModelInput(
        name="vitals",
        kind="vitals",
        shape=[-1, -1, 2],
        fs=0.5,
        window_s=10.0,
        channels=["hr_device", "rr_irregularity"],
    )
    history = np.arange(10.0)
    history[3] = np.nan  # a gap in the trend
    window = SignalWindow(0.0, 10.0, trends={"hr": history}, trend_fs=1.0)
    x = vitals_input(window, {"rr_irregularity": 0.3}, spec)
    assert x.shape == (5, 2)
    np.testing.assert_allclose(x[:, 0], [0.5, 2, 4.5, 6.5, 8.5])  # block means, gap skipped
    assert x[-1, 1] == 0.3
    assert np.isnan(x[:-1, 1]).all()
