"""Streaming models: stateful training on hop sequences, export with state, step-wise parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import dataset, train  # noqa: E402
from models.export import ParityError, check_streaming_parity, export_streaming  # noqa: E402
from models.rnn import StatefulClassifier, StatefulConfig  # noqa: E402
from stream.scoring import registry  # noqa: E402
from stream.scoring.inputs import ecg_channels, ecg_hops  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_sequences() -> dataset.Sequences:
    return dataset.rhythm_sequences(n_patients=8, seconds=40, seed=3)


def _model(channels: int = 3, conv: int = 16) -> StatefulClassifier:
    torch.manual_seed(0)
    return StatefulClassifier(StatefulConfig(channels, 2, conv_channels=conv)).eval()


@pytest.mark.parametrize("conv", [16, 0])
def test_feeding_hop_by_hop_gives_what_feeding_the_whole_sequence_gives(conv: int) -> None:
    model = _model(conv=conv)
    x = torch.randn(3, 64 * 5, 3)
    with torch.no_grad():
        logits, h_whole, _ = model.step_logits(x, *model.zero_state(3))
        state = model.zero_state(3)
        for k in range(5):
            probabilities, *state = model(x[:, 64 * k : 64 * (k + 1)], *state)
    assert torch.allclose(probabilities, torch.sigmoid(logits[:, -1]), atol=1e-5)
    assert torch.allclose(state[0], h_whole, atol=1e-5)


def test_export_carries_the_state_through_onnx_and_a_drifted_model_fails(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(4, 64 * 6, 3)).astype(np.float32)
    model = _model()
    parity = export_streaming(model, tmp_path / "m.onnx", x, "ecg", hop_steps=64)
    assert parity.max_abs_diff <= 1e-4 and parity.windows == 4 * 6
    with torch.no_grad():
        model.head[1].bias.add_(0.5)
    with pytest.raises(ParityError, match="hop by hop"):
        check_streaming_parity(model, tmp_path / "m.onnx", x, hop_steps=64)


def test_a_hop_reads_nothing_after_its_end_and_matches_the_window_inside() -> None:
    rng = np.random.default_rng(1)
    ecg = rng.normal(size=128 * 10)
    peaks = np.arange(50, 1280, 110)
    later = ecg.copy()
    later[-128:] = rng.normal(size=128)  # the last second changes
    channels = ["ecg", "rr_s", "drr_s"]
    hops = ecg_hops(ecg, 128.0, channels, 64.0, 1.0, peaks, count=3)
    changed = ecg_hops(later, 128.0, channels, 64.0, 1.0, peaks, count=3)
    assert hops.shape == (192, 3)
    np.testing.assert_array_equal(hops[:64], changed[:64])  # hops before the change
    assert not np.array_equal(hops[128:, 0], changed[128:, 0])
    # Away from its right edge a hop is the whole window's resampling (same FIR).
    whole = ecg_channels(ecg, 128.0, channels, 64.0, peaks)
    np.testing.assert_allclose(hops[128:150], whole[-64:-42], atol=1e-5)


def test_sequences_are_labelled_like_windows_and_split_by_patient(tiny_sequences) -> None:
    seq = tiny_sequences
    assert seq.x.shape == (8, 40 * 64, 3) and seq.y.shape == (8, 40, 2)
    assert not seq.scored[:, :9].any() and seq.scored[:, 9:].all()  # a full 10 s window
    assert len(seq.windows) == int(seq.scored.sum())
    assert seq.windows.raw is not None and seq.windows.raw.shape[1] == 10 * 128
    for train_index, test_index in dataset.sequence_folds(seq, 2, 0):
        assert not set(seq.patients[train_index]) & set(seq.patients[test_index])
        part = seq.subset(test_index)
        assert set(part.windows.patients) == set(part.patients)
        np.testing.assert_array_equal(part.scored_labels(), part.windows.y)


def test_training_gives_a_streaming_version_the_stream_can_step(tmp_path, tiny_sequences) -> None:
    target = train.run_streaming(
        "rhythm", tmp_path, epochs=2, folds=2, sequences=tiny_sequences, version="s1"
    )
    model = registry.load(target)
    card = model.card
    assert card.streaming is not None and card.streaming.hop_s == 1.0
    assert [s.name for s in card.streaming.states] == ["initial_h", "context_1", "context_2"]
    assert card.metrics["onnx_parity_max_abs_diff"] <= 1e-4
    assert {"rnn.af.f1", "baseline.af.f1"} <= set(card.metrics["held_out_test"])
    # Fed hop by hop through the registry's step(), the model gives what predict() gives
    # for the same hops in one cold start.
    x = tiny_sequences.x[:2, : 64 * 10]
    state = model.zero_state(2)
    for k in range(10):
        stepped, state = model.step({"ecg": x[:, 64 * k : 64 * (k + 1)]}, state)
    whole = model.predict(x)
    np.testing.assert_allclose(stepped["af"], whole["af"], atol=1e-5)
    assert "baseline" in (target / "report.md").read_text()
