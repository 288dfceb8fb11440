"""The registry loads good versions and refuses broken ones with a clear reason (no torch)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from stream.config import load_settings
from stream.records import ModelRollout
from stream.scoring import registry
from stream.scoring.registry import ModelCard, ModelError


def tiny_onnx(path: Path, input_name: str = "ecg", rank: int = 3) -> Path:
    """sigmoid(mean over time): one probability per window, dynamic batch and time."""
    dims = ["batch", "time", 1][:rank]
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", [input_name], ["m"], axes=[1], keepdims=0),
            helper.make_node("Sigmoid", ["m"], ["probabilities"]),
        ],
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def card(version: str = "1", mean: float = 0.0, std: float = 1.0) -> ModelCard:
    return ModelCard(
        name="tiny",
        version=version,
        created=registry.now(),
        inputs=[
            {
                "name": "ecg",
                "kind": "ecg",
                "shape": [-1, -1, 1],
                "fs": 64,
                "window_s": 10,
                "channels": ["ecg"],
            }
        ],
        outputs=["probabilities"],
        classes=["af"],
        thresholds={"af": 0.5},
        normalization={"ecg": {"mean": [mean], "std": [std]}},
        training_data={"description": "test", "sha256": "0" * 64},
        code_version="test",
        onnx_sha256="0" * 64,
    )


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(models={"directory": tmp_path / "registry"})


@pytest.fixture
def version_dir(tmp_path: Path, settings) -> Path:
    onnx_path = tiny_onnx(tmp_path / "m.onnx")
    return registry.write_version(settings.models.directory, card(mean=1.0, std=2.0), onnx_path)


def test_load_and_predict_applies_the_cards_normalization(version_dir: Path) -> None:
    model = registry.load(version_dir)
    x = np.full((3, 640, 1), 5.0, dtype=np.float32)
    x[1] = 1.0  # equal to the mean: normalized 0, sigmoid 0.5
    x[2, :, 0] = np.nan  # missing: imputed with the mean
    out = model.predict(x)
    assert list(out) == ["af"]
    np.testing.assert_allclose(out["af"], [1 / (1 + np.exp(-2.0)), 0.5, 0.5], rtol=1e-6)
    assert model.predict(x[0])["af"].shape == (1,)  # a single window
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_predict_batches_large_inputs(version_dir: Path) -> None:
    model = registry.load(version_dir)
    x = np.random.default_rng(0).normal(size=(10, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, batch_size=3)["af"], model.predict(x)["af"])


def test_missing_card_is_refused(version_dir: Path) -> None:
    (version_dir / "card.json").unlink()
    with pytest.raises(ModelError, match="missing model card"):
        registry.load(version_dir)


def test_bad_checksum_is_refused(version_dir: Path) -> None:
    with (version_dir / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="checksum mismatch"):
        registry.load(version_dir)


def test_corrupt_onnx_with_matching_checksum_is_refused(version_dir: Path) -> None:
    (version_dir / "model.onnx").write_bytes(b"not an onnx graph")
    data = json.loads((version_dir / "card.json").read_text())
    data["onnx_sha256"] = registry.sha256_file(version_dir / "model.onnx")
    (version_dir / "card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        registry.load(version_dir)


@pytest.mark.parametrize(
    ("input_name", "rank", "message"),
    [("vitals", 3, "do not match the card"), ("ecg", 2, "rank 2 in ONNX")],
)
def test_mismatched_inputs_are_refused(
    tmp_path: Path, settings, input_name: str, rank: int, message: str
) -> None:
    onnx_path = tiny_onnx(tmp_path / "m.onnx", input_name=input_name, rank=rank)
    target = registry.write_version(settings.models.directory, card(), onnx_path)
    with pytest.raises(ModelError, match=message):
        registry.load(target)


def test_invalid_card_names_the_field(version_dir: Path) -> None:
    data = json.loads((version_dir / "card.json").read_text())
    data["thresholds"] = {"af": 1.5}
    (version_dir / "card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="invalid model card"):
        registry.load(version_dir)


def test_versions_are_immutable(tmp_path: Path, settings, version_dir: Path) -> None:
    with pytest.raises(ModelError, match="immutable"):
        registry.write_version(settings.models.directory, card(), tiny_onnx(tmp_path / "x.onnx"))


def test_promote_resolve_and_list(tmp_path: Path, settings, version_dir: Path) -> None:
    registry.write_version(settings.models.directory, card("2"), tiny_onnx(tmp_path / "b.onnx"))
    rollout = registry.promote("tiny", "2", settings)
    assert isinstance(rollout, ModelRollout)
    assert (rollout.name, rollout.version, rollout.shadow) == ("tiny", "2", False)
    assert rollout.sha256 == registry.read_card(Path(rollout.path)).onnx_sha256
    assert (settings.models.directory / "tiny" / "PROMOTED").read_text().strip() == "2"
    assert registry.resolve("tiny", settings).name == "2"
    registry.promote("tiny", "1", settings, shadow=True)
    assert registry.resolve("tiny", settings, shadow=True).name == "1"
    listed = {(m.name, m.version): m for m in registry.list_models(settings)}
    assert listed[("tiny", "2")].promoted and listed[("tiny", "1")].shadow
    assert registry.show("tiny", settings).version == "2"


def test_promote_refuses_a_broken_version(settings, version_dir: Path) -> None:
    (version_dir / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="checksum"):
        registry.promote("tiny", "1", settings)
    assert not (settings.models.directory / "tiny" / "PROMOTED").exists()


def test_unsafe_names_are_refused(settings) -> None:
    with pytest.raises(ModelError, match="invalid model"):
        registry.find_version("../etc", "1", settings)


def test_shipped_defaults_load_and_resolve(settings) -> None:
    for name in ("rhythm", "deterioration"):
        path = registry.resolve(name, settings)
        assert path.is_relative_to(registry.DEFAULT_DIRECTORY)
        model = registry.load(path)
        spec = model.card.inputs[0]
        x = np.zeros((2, spec.steps, len(spec.channels)), dtype=np.float32)
        scores = model.predict(x)
        assert set(scores) == set(model.card.classes)
        assert all(((s >= 0) & (s <= 1)).all() for s in scores.values())
        assert model.card.training_data.description


def test_a_copied_default_can_be_promoted(tmp_path: Path, settings) -> None:
    source = registry.resolve("rhythm", settings)
    target = settings.models.directory / "rhythm" / "copy"
    shutil.copytree(source, target)
    data = json.loads((target / "card.json").read_text())
    data["version"] = "copy"
    (target / "card.json").write_text(json.dumps(data))
    rollout = registry.promote("rhythm", "copy", settings)
    assert registry.resolve("rhythm", settings) == target
    assert rollout.path == str(target.resolve())
