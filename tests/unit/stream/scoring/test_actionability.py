"""Alert scoring in shadow: the input row, the registry's alert inputs, the scorer."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from stream.config import load_settings
from stream.records import ALERT_KINDS, Alert
from stream.scoring import registry
from stream.scoring.actionability import (
    ACTIONABLE,
    MEASUREMENT,
    alert_row,
    alert_rows,
    default_channels,
)
from stream.scoring.registry import ModelCard, ModelError
from stream.scoring.scorer import Scorer, validate
from stream.signal.window import FEATURE_NAMES, SignalWindow

NAME = "alarm-actionability"


def alert_onnx(path: Path, weights: np.ndarray) -> Path:
    """probabilities [batch, 1] = sigmoid(x @ weights): a stand-in alert model."""
    x = helper.make_tensor_value_info("alert", TensorProto.FLOAT, ["batch", len(weights)])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 1])
    w = helper.make_tensor("w", TensorProto.FLOAT, [len(weights), 1], weights.tolist())
    nodes = [
        helper.make_node("MatMul", ["alert", "w"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["probabilities"]),
    ]
    graph = helper.make_graph(nodes, "alert", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def alert_card(version: str, channels: tuple[str, ...], threshold: float = 0.5) -> ModelCard:
    return ModelCard(
        name=NAME,
        version=version,
        created=datetime(2026, 1, 1, tzinfo=UTC),
        inputs=[
            {
                "name": "alert",
                "kind": "alert",
                "shape": [-1, len(channels)],
                "fs": 1.0,
                "window_s": 10.0,
                "channels": list(channels),
            }
        ],
        outputs=["probabilities"],
        classes=[ACTIONABLE],
        thresholds={ACTIONABLE: threshold},
        normalization={"alert": {"mean": [0.0] * len(channels), "std": [1.0] * len(channels)}},
        training_data={"description": "none", "sha256": "0" * 64},
        code_version="test",
        onnx_sha256="0" * 64,
    )


def store_alert_model(settings, tmp_path: Path, version: str = "1") -> ModelCard:
    """A model that says: motion makes an alarm unlikely to be actionable."""
    channels = default_channels()
    weights = np.zeros(len(channels), dtype=np.float32)
    weights[channels.index("motion")] = -4.0
    weights[channels.index("priority=high")] = 2.0
    card = alert_card(version, channels, threshold=0.2)
    onnx_path = alert_onnx(tmp_path / f"alert-{version}.onnx", weights)
    registry.write_version(settings.models.directory, card, onnx_path)
    return card


@pytest.fixture
def settings(tmp_path):
    return load_settings(models={"directory": tmp_path / "models"}, pseudonym_key="k")


def triggered(kind: str = "tachycardia", priority: str = "medium", **update) -> Alert:
    alert = Alert(
        alert_id="a1", event="triggered", kind=kind, category="physiological",
        priority=priority, patient="p-1", ward="w7", device_id="d1", t_onset=100.0,
        t_event=102.0, window=(92.0, 102.0), source="hr_high",
    )  # fmt: skip
    return alert.model_copy(update=update)


def test_the_row_follows_the_cards_channels() -> None:
    channels = default_channels()
    assert channels[: len(FEATURE_NAMES)] == FEATURE_NAMES
    assert len(channels) == 2 * len(FEATURE_NAMES) + len(ALERT_KINDS) + 3
    features = dict.fromkeys(FEATURE_NAMES, math.nan) | {"motion": 1.0, "spo2": 91.5}
    row = alert_row(channels, features, "desaturation", "medium")
    assert row.dtype == np.float32 and row.shape == (len(channels),)
    value = dict(zip(channels, row.tolist(), strict=True))
    assert value["motion"] == 1.0 and value["spo2"] == 91.5 and math.isnan(value["temp"])
    assert value["missing=temp"] == 1.0 and value["missing=spo2"] == 0.0
    assert [c for c, v in value.items() if c.startswith("kind=") and v] == ["kind=desaturation"]
    assert [c for c, v in value.items() if c.startswith("priority=") and v] == ["priority=medium"]
    # Absent, nan and infinite are all missing; an unknown kind has no kind channel set.
    other = alert_row(channels, {"spo2": math.inf}, "a-new-kind", "low")
    other_value = dict(zip(channels, other.tolist(), strict=True))
    assert other_value["missing=spo2"] == 1.0 and other_value["missing=motion"] == 1.0
    assert not any(v for c, v in other_value.items() if c.startswith("kind="))
    # Another order of channels gives the same values in that order.
    shuffled = tuple(reversed(channels))
    assert np.array_equal(
        alert_row(shuffled, features, "desaturation", "medium"), row[::-1], equal_nan=True
    )
    assert alert_rows(channels, [(features, "desaturation", "medium")] * 2).shape == (
        2, len(channels),
    )  # fmt: skip


def test_an_alert_input_is_one_row_per_alert() -> None:
    channels = default_channels()
    card = alert_card("1", channels)
    assert card.scores_alerts
    with pytest.raises(ValueError, match="alert input"):
        alert_card("1", channels).model_copy().model_validate(
            {**card.model_dump(), "inputs": [{**card.inputs[0].model_dump(),
                                              "shape": [-1, 1, len(channels)]}]}
        )  # fmt: skip


def test_an_alert_model_loads_validates_and_promotes_in_shadow_only(settings, tmp_path) -> None:
    store_alert_model(settings, tmp_path)
    model = registry.load(registry.find_version(NAME, "1", settings))
    validate(model)  # the rollout smoke test handles [batch, channels] inputs
    with pytest.raises(ModelError, match="shadow only"):
        registry.promote(NAME, "1", settings)
    assert registry.promote(NAME, "1", settings, shadow=True).shadow


def test_the_scorer_never_makes_it_live_nor_scores_windows_with_it(settings, tmp_path) -> None:
    store_alert_model(settings, tmp_path)
    scorer = Scorer.from_registry(settings)  # not deployed yet: no SHADOW marker
    assert NAME not in scorer.live and NAME not in scorer.shadow
    rollout = registry.promote(NAME, "1", settings, shadow=True)
    scorer = Scorer.from_registry(settings)  # the marker deploys it, models.shadow or not
    assert not settings.models.shadow and scorer.shadow[NAME].card.version == "1"
    assert NAME not in scorer.live
    window = SignalWindow(t_start=0.0, t_end=10.0, spo2=97.0, hr=70.0)
    [scores] = scorer.score([window], [dict.fromkeys(FEATURE_NAMES, 1.0)])
    assert NAME not in {s.model for s in scores}
    # A rollout that would make it live is refused; the shadow one is applied.
    live_rollout = rollout.model_copy(update={"shadow": False})
    assert scorer.apply(live_rollout).startswith("refused")
    assert NAME not in scorer.live
    assert scorer.apply(rollout).startswith(f"installed {NAME}@1 as shadow")


def test_score_alerts_writes_one_line_per_triggered_alert(settings, tmp_path) -> None:
    store_alert_model(settings, tmp_path)
    registry.promote(NAME, "1", settings, shadow=True)
    scorer = Scorer.from_registry(settings)
    still = dict.fromkeys(FEATURE_NAMES, math.nan) | {"motion": 0.0}
    moving = still | {"motion": 1.0}
    alerts = [
        triggered(),
        triggered(alert_id="a2", event="resolved"),  # not a new alarm: not scored
        triggered(alert_id="a3", kind="fall", priority="high"),
    ]
    before = [a.model_copy() for a in alerts]
    lines = scorer.score_alerts(alerts, still)
    assert alerts == before  # nothing about the alerts changes
    assert [ln.split(",", 1)[0] for ln in lines] == [MEASUREMENT, MEASUREMENT]
    assert 'alert_id="a1"' in lines[0] and "model=alarm-actionability" in lines[0]
    assert "probability=0.5," in lines[0] and "would_suppress=false" in lines[0]
    assert 'alert_id="a3"' in lines[1] and lines[1].endswith(" 102000000000")
    [moved] = scorer.score_alerts([triggered()], moving)
    probability = float(moved.split("probability=", 1)[1].split(",", 1)[0])
    assert probability == pytest.approx(1 / (1 + math.exp(4.0)), rel=1e-5)
    assert "would_suppress=true" in moved
    assert scorer.score_alerts([triggered(event="resolved")], moving) == []


def test_a_failing_shadow_model_costs_its_lines_only(settings, tmp_path, caplog) -> None:
    store_alert_model(settings, tmp_path)
    registry.promote(NAME, "1", settings, shadow=True)
    scorer = Scorer.from_registry(settings)
    model = scorer.shadow[NAME]

    class Broken:
        def run(self, *args, **kwargs):
            raise RuntimeError("onnxruntime says no")

    scorer.shadow[NAME] = registry.LoadedModel(model.path, model.card, Broken())  # type: ignore[arg-type]
    assert scorer.score_alerts([triggered()], {"motion": 1.0}) == []
    assert scorer.score_alerts([triggered()], {"motion": 1.0}) == []
    assert sum("shadow alert scoring" in r.message for r in caplog.records) == 1
