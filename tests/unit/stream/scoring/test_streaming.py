"""Streaming models: per-device state carried between hops, cold starts, rounds, durability."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest
from onnx import TensorProto, helper

from stream.config import load_settings
from stream.records import ModelRollout
from stream.scoring import registry
from stream.scoring.registry import ModelCard, ModelError
from stream.scoring.scorer import DeviceState, ModelStates, Scorer, StateLayout
from stream.signal.window import SignalWindow

FS = 64.0  # the model's rate: a window at this rate is fed as is (no resampling)
GAIN = 0.001


def summing_onnx(path: Path, gain: float = GAIN, state_output: str = "Y_h") -> Path:
    """Y_h = initial_h + gain * sum(x over the hop); probabilities = sigmoid(Y_h): the state
    is the running sum of everything fed, so a test can tell what was fed and when."""
    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", "time", 1])
    h = helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, ["batch", 1, 1])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 1])
    y_h = helper.make_tensor_value_info(state_output, TensorProto.FLOAT, ["batch", 1, 1])
    inits = [
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
    ]
    nodes = [
        helper.make_node("ReduceSum", ["ecg", "axes"], ["s"], keepdims=1),
        helper.make_node("Mul", ["s", "gain"], ["g"]),
        helper.make_node("Add", ["initial_h", "g"], [state_output]),
        helper.make_node("Reshape", [state_output, "shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["probabilities"]),
    ]
    graph = helper.make_graph(nodes, "summing", [x, h], [y, y_h], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def card(version: str, state_output: str = "Y_h") -> ModelCard:
    return ModelCard(
        name="summing",
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
        classes=["af"],
        thresholds={"af": 0.99},
        normalization={"ecg": {"mean": [0.0], "std": [1.0]}},
        training_data={"description": "none", "sha256": "0" * 64},
        code_version="test",
        onnx_sha256="0" * 64,
        streaming={
            "hop_s": 1.0,
            "states": [{"name": "initial_h", "output": state_output, "shape": [1, 1]}],
        },
    )


@pytest.fixture
def settings(tmp_path):
    settings = load_settings(models={"directory": tmp_path / "models"}, pseudonym_key="k")
    root = settings.models.directory
    registry.write_version(root, card("1"), summing_onnx(tmp_path / "a.onnx"))
    registry.write_version(root, card("2"), summing_onnx(tmp_path / "b.onnx", gain=2 * GAIN))
    registry.promote("summing", "1", settings)
    return settings


def window(t_end: float, level: float = 1.0, seconds: float = 10.0) -> SignalWindow:
    """A constant ECG ending at ``t_end``: every 1 s hop adds ``GAIN * 64 * level``."""
    return SignalWindow(
        t_start=t_end - seconds, t_end=t_end, ecg=np.full(int(seconds * FS), level), ecg_fs=FS
    )


def summing(scores: list) -> float:
    [score] = [s for s in scores if s.model == "summing" and not s.shadow]
    return score.probabilities["af"]


def fed_seconds(probability: float, gain: float = GAIN) -> float:
    """Seconds of level-1 ECG the summing model has been fed, from its probability."""
    return math.log(probability / (1 - probability)) / (gain * FS)


def test_a_device_starts_cold_on_its_whole_window_then_is_fed_one_hop_a_window(settings):
    scorer = Scorer.from_registry(settings)
    got = [
        fed_seconds(summing(scorer.score([window(t)], [{}], devices=["dev-1"])[0]))
        for t in (10.0, 11.0, 12.0, 15.0)
    ]
    # 10 s cold, then one hop each, then the three hops missed between 12 and 15 s.
    assert got == pytest.approx([10.0, 11.0, 12.0, 15.0], abs=1e-3)
    state = scorer.states.get("dev-1", "summing@1")
    assert state is not None and state.t == 15.0


def test_a_window_with_no_new_hop_keeps_the_last_score_and_a_long_gap_starts_cold(settings):
    scorer = Scorer.from_registry(settings)
    for t in (10.0, 11.0):
        scorer.score([window(t)], [{}], devices=["dev-1"])
    again = scorer.score([window(11.0)], [{}], devices=["dev-1"])  # a replayed window
    assert fed_seconds(summing(again[0])) == pytest.approx(11.0, abs=1e-3)
    back = scorer.score([window(60.0)], [{}], devices=["dev-1"])  # 49 s later: > a window
    assert fed_seconds(summing(back[0])) == pytest.approx(10.0, abs=1e-3)


def test_devices_are_fed_together_and_a_devices_windows_in_time_order(settings):
    scorer = Scorer.from_registry(settings)
    scorer.live = {"summing": scorer.live["summing"]}  # count this model's calls only
    scorer.score([window(10.0)], [{}], devices=["warm"])
    calls = scorer.stats.calls
    # warm is due one hop, new is cold (10 hops), warm's next window comes in round two.
    scores = scorer.score(
        [window(11.0), window(10.0, level=2.0), window(12.0)], [{}, {}, {}],
        devices=["warm", "new", "warm"],
    )  # fmt: skip
    assert [fed_seconds(summing(s)) for s in scores] == pytest.approx([11.0, 20.0, 12.0], abs=1e-3)
    assert scorer.stats.calls - calls == 3  # round 1: one call per hop count; round 2: one


def test_without_device_ids_every_window_is_a_cold_start_and_nothing_is_kept(settings):
    scorer = Scorer.from_registry(settings)
    scores = scorer.score([window(10.0), window(11.0)], [{}, {}])
    assert [fed_seconds(summing(s)) for s in scores] == pytest.approx([10.0, 10.0], abs=1e-3)
    assert scorer.states.devices() == []
    # predict() on a whole window is that cold start as well (validation, explanations).
    model = scorer.live["summing"]
    whole = model.predict(np.ones((10 * int(FS), 1), np.float32))["af"][0]
    assert fed_seconds(float(whole)) == pytest.approx(10.0, abs=1e-3)


def test_the_state_survives_export_and_restore_in_another_scorer(settings):
    first = Scorer.from_registry(settings)
    first.live = {"summing": first.live["summing"]}  # the shipped models' state aside
    for t in (10.0, 11.0, 12.0):
        first.score([window(t)], [{}], devices=["dev-1"])
    taken = first.take_states()
    assert set(taken) == {"dev-1"} and 0 < len(taken["dev-1"]) < 100
    assert first.take_states() == {}  # nothing advanced since
    second = Scorer.from_registry(settings)
    second.states.restore("dev-1", taken["dev-1"])
    after_restart = summing(second.score([window(13.0)], [{}], devices=["dev-1"])[0])
    continued = summing(first.score([window(13.0)], [{}], devices=["dev-1"])[0])
    assert after_restart == continued
    assert fed_seconds(continued) == pytest.approx(13.0, abs=1e-3)


def test_a_rollout_to_a_new_version_starts_cold_and_drops_the_old_versions_state(settings):
    scorer = Scorer.from_registry(settings)
    for t in (10.0, 11.0):
        scorer.score([window(t)], [{}], devices=["dev-1"])
    version = registry.read_card(registry.find_version("summing", "2", settings))
    rollout = ModelRollout(
        name="summing", version="2", path="ignored", sha256=version.onnx_sha256, at=0.0
    )
    assert scorer.apply(rollout).startswith("installed summing@2")
    new = summing(scorer.score([window(12.0)], [{}], devices=["dev-1"])[0])
    assert fed_seconds(new, gain=2 * GAIN) == pytest.approx(10.0, abs=1e-3)  # cold, not 12
    # The snapshot keeps the live version's state only.
    assert {k for k in orjson.loads(scorer.take_states()["dev-1"]) if "summing" in k} == {
        "summing@2"
    }


def test_a_graph_without_the_cards_state_output_is_refused(tmp_path):
    root = tmp_path / "models"
    path = registry.write_version(
        root, card("3", state_output="h_out"), summing_onnx(tmp_path / "c.onnx")
    )
    with pytest.raises(ModelError, match="lack the state"):
        registry.load(path)


def test_a_vitals_cold_start_feeds_the_history_from_its_first_value(settings):
    """Deterioration (10 s steps): a new device has seconds of trend, not 10 min; the
    steps before its first value are not fed as imputed means."""
    from stream.scoring.inputs import cold_hops

    model = Scorer.from_registry(settings).live["deterioration"]
    assert model.card.streaming is not None and model.card.streaming.hop_s == 10.0

    def with_history(seconds: int) -> SignalWindow:
        hr = np.full(600, np.nan)
        if seconds:
            hr[-seconds:] = 70.0
        return SignalWindow(t_start=590.0, t_end=600.0, trends={"hr": hr}, trend_fs=1.0)

    assert [cold_hops(model, with_history(s)) for s in (0, 5, 25, 600)] == [1, 1, 3, 60]


def test_export_many_is_each_devices_export_byte_for_byte() -> None:
    """Two models' tables, devices in both, one or none of them (and one only waiting for
    its model): ``export_many`` is ``export`` of each, and restores to the same rows."""
    rng = np.random.default_rng(2)
    layouts = {
        "rhythm@2": StateLayout(2, (("initial_h", (1, 32)), ("context_1", (4, 3)))),
        "deterioration@2": StateLayout(1, (("initial_h", (1, 32)),)),
    }
    states = ModelStates()
    for key, layout in layouts.items():
        states.register(key, layout)
    devices = [f"dev-{i}" for i in range(40)]
    for i, device in enumerate(devices):
        for j, (key, layout) in enumerate(layouts.items()):
            if i % 7 and (i + j) % 3:  # some devices in one table, some in both, some in none
                tensors = {name: rng.normal(size=shape).astype(np.float32)
                           for name, shape in layout.tensors}  # fmt: skip
                probabilities = rng.random(layout.classes).astype(np.float32)
                states.put(
                    device, key, DeviceState(1e9 + rng.random() * 100, probabilities, tensors)
                )
    states.restore("waiting", orjson.dumps({"other@1": [1.0, ""]}))
    keys = {*layouts, "retired@1"}
    asked = [*devices[::-1], "waiting", "unknown"]
    many = states.export_many(asked, keys)
    assert list(many) == asked
    assert many == {device: states.export(device, keys) for device in asked}
    assert many["unknown"] is None and sum(blob is None for blob in many.values()) > 2
    again = ModelStates()
    for key, layout in layouts.items():
        again.register(key, layout)
    for device, blob in many.items():
        if blob is not None:
            again.restore(device, blob)
    assert again.export_many(asked, keys) == many
