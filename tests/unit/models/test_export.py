"""Training + ONNX export in seconds: parity holds, and a perturbed export fails it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import dataset, train  # noqa: E402
from models.export import ParityError, benchmark, check_parity, export_onnx  # noqa: E402
from models.rnn import RnnConfig, SequenceClassifier  # noqa: E402
from stream.scoring import registry  # noqa: E402


@pytest.fixture(scope="module")
def tiny_windows() -> dataset.Windows:
    return dataset.rhythm_windows(n_patients=10, seconds=90, seed=3, hop_s=10)


def test_training_and_export_give_a_loadable_version(tmp_path: Path, tiny_windows) -> None:
    target = train.run(
        "rhythm", tmp_path, epochs=2, folds=2, windows=tiny_windows, version="t1", bench=False
    )
    model = registry.load(target)
    card = model.card
    assert card.ref == "rhythm@t1"
    assert card.metrics["onnx_parity_max_abs_diff"] <= 1e-4
    assert card.training_data.sha256 == tiny_windows.sha256()
    assert {"roc.png", "pr.png", "confusion.png", "training.png", "report.md"} <= {
        p.name for p in target.iterdir()
    }
    assert "baseline" in (target / "report.md").read_text()
    scores = model.predict(tiny_windows.x[:4])
    assert scores["af"].shape == (4,)
    # The stream's ONNX path reproduces the torch model on the card's normalization.
    stats = card.normalization["ecg"]
    assert len(stats.mean) == len(tiny_windows.channels) == 3  # ECG, RR, ΔRR
    ecg_mean = float(tiny_windows.x[..., 0].mean())
    assert stats.mean[0] == pytest.approx(ecg_mean, abs=abs(ecg_mean) + 0.05)
    assert 0.3 < stats.mean[1] < 1.5  # a plausible RR interval in seconds, nan ignored


def _model(windows: np.ndarray) -> SequenceClassifier:
    torch.manual_seed(0)
    model = SequenceClassifier(RnnConfig(channels=1, classes=2, conv_layers=2))
    model.eval()
    return model


def test_parity_passes_for_a_faithful_export(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(16, 640, 1)).astype(np.float32)
    parity = export_onnx(_model(x), tmp_path / "m.onnx", x, "ecg")
    assert parity.max_abs_diff <= 1e-4 and parity.windows == 16
    # Dynamic time axis: a 5 s window runs on the same graph.
    check_parity(_model(x), tmp_path / "m.onnx", x[:, :320])


def test_a_perturbed_export_fails_parity(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(16, 640, 1)).astype(np.float32)
    model = _model(x)
    export_onnx(model, tmp_path / "m.onnx", x, "ecg")
    with torch.no_grad():
        model.head[1].bias.add_(0.5)  # the torch model drifts after export
    with pytest.raises(ParityError, match="differs from PyTorch"):
        check_parity(model, tmp_path / "m.onnx", x)


def test_export_removes_a_file_that_fails_parity(tmp_path: Path, monkeypatch) -> None:
    x = np.random.default_rng(2).normal(size=(8, 640, 1)).astype(np.float32)
    with pytest.raises(ParityError):
        export_onnx(_model(x), tmp_path / "m.onnx", x, "ecg", tolerance=-1.0)
    assert not (tmp_path / "m.onnx").exists()


def test_benchmark_reports_both_runtimes(tmp_path: Path) -> None:
    x = np.zeros((2, 640, 1), dtype=np.float32)
    model = _model(x)
    export_onnx(model, tmp_path / "m.onnx", x, "ecg")
    results = benchmark(model, tmp_path / "m.onnx", 640, 1, batches=(1, 4), threads=(1,),
                        seconds_per_case=0.02)  # fmt: skip
    assert {(r.runtime, r.batch) for r in results} == {
        ("onnxruntime", 1),
        ("onnxruntime", 4),
        ("pytorch", 1),
        ("pytorch", 4),
    }
    assert all(r.ms_per_window > 0 for r in results)
