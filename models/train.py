"""Training runs end to end: data → patient-wise CV → final model → export → card → report.

``run`` is what ``vitalstream train`` calls. Seeds are fixed (numpy, torch) so a run is
reproducible; early stopping watches a validation fold of *other patients*; BCE is
weighted per class (rare classes count more); the alert threshold is the best-F1
threshold on validation patients, applied unchanged to the test patients.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models import dataset, evaluate
from models.export import benchmark, export_onnx, export_streaming
from models.rnn import (
    STATE_OUTPUTS,
    RnnConfig,
    SequenceClassifier,
    StatefulClassifier,
    StatefulConfig,
)
from stream.scoring.registry import (
    ModelCard,
    ModelInput,
    StateTensor,
    Streaming,
    TrainingData,
    normalize,
    now,
    write_version,
)

Progress = Callable[[str, int, int], None]  # (task, done, total)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 8
    seed: int = 7


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(
    windows: dataset.Windows,
    train_index: np.ndarray,
    val_index: np.ndarray,
    rnn: RnnConfig,
    config: TrainConfig,
    progress: Progress | None = None,
) -> tuple[SequenceClassifier, list[dict[str, float]], dataset.Normalization]:
    """Train on ``train_index`` with early stopping on ``val_index``; best weights kept."""
    seed_everything(config.seed)
    stats = dataset.fit_normalization(windows.x[train_index])
    x = torch.from_numpy(normalize(windows.x, stats))
    y = torch.from_numpy(windows.y)
    model = SequenceClassifier(rnn)
    loss_fn = nn.BCEWithLogitsLoss(
        pos_weight=torch.from_numpy(dataset.positive_weights(windows.y[train_index]))
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best_loss, best_state, waited = float("inf"), None, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = train_index[torch.randperm(len(train_index), generator=generator).numpy()]
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model.logits(x[batch]), y[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model.logits(x[val_index]), y[val_index]))
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_loss": val_loss})
        if progress:
            progress("epochs", epoch, config.epochs)
        if val_loss < best_loss - 1e-4:
            best_loss, waited = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history, stats


def predict(model: SequenceClassifier, x: np.ndarray, stats: dataset.Normalization) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(normalize(x, stats))).numpy()


def _per_class(y: np.ndarray, p: np.ndarray, thresholds: list[float], classes: tuple[str, ...]):
    return {
        name: evaluate.class_metrics(y[:, k], p[:, k], thresholds[k])
        for k, name in enumerate(classes)
    }


def _thresholds(y: np.ndarray, p: np.ndarray) -> list[float]:
    return [evaluate.best_f1_threshold(y[:, k], p[:, k]) for k in range(y.shape[1])]


def code_version() -> str:
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return result.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class ModelSpec:
    """How one named model is built: its data, input and network."""

    name: str
    kind: str
    input_name: str
    window_s: float
    rnn: Callable[[int, int], RnnConfig]
    description: str


SPECS: dict[str, ModelSpec] = {
    "rhythm": ModelSpec(
        "rhythm",
        "ecg",
        "ecg",
        dataset.RHYTHM_WINDOW_S,
        lambda c, k: RnnConfig(c, k, conv_channels=16, conv_layers=2, conv_stride=4, hidden=32),
        "AF and ventricular-run probability of one 10 s single-lead ECG window: the ECG at "
        "64 Hz plus the step-held RR interval and its beat-to-beat change from the stream's "
        "R-peak detector (stream.signal.beats.detect_r_peaks).",
    ),
    "deterioration": ModelSpec(
        "deterioration",
        "vitals",
        "vitals",
        dataset.DETERIORATION_WINDOW_S,
        lambda c, k: RnnConfig(c, k, conv_channels=0, hidden=32),
        "Deterioration probability from the last 10 min of per-10 s vitals features.",
    ),
}


def build_data(
    name: str,
    patients: int,
    seconds: int,
    seed: int,
    from_recordings: bool,
    simulator: str | None = None,
) -> tuple[dataset.Windows, dict[str, dataset.Windows]]:
    """The development data and any external test sets for model ``name``."""
    external: dict[str, dataset.Windows] = {}
    if name == "rhythm":
        windows = dataset.rhythm_windows(patients, seconds, seed, simulator=simulator)
        if from_recordings:
            external["MIT-BIH record 208 (real ECG, automatic ventricular labels)"] = (
                dataset.record_208_windows()
            )
    else:
        windows = dataset.deterioration_windows(patients, max(seconds // 10, 120), seed)
    return windows, external


def run(
    name: str,
    out: Path,
    epochs: int = 30,
    folds: int = 3,
    patients: int = 60,
    seconds: int = 300,
    seed: int = 7,
    from_recordings: bool = False,
    simulator: str | None = None,
    windows: dataset.Windows | None = None,
    version: str | None = None,
    bench: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Train, evaluate and export model ``name``; returns the new version directory."""
    spec = SPECS[name]
    config = TrainConfig(epochs=epochs, seed=seed)
    external: dict[str, dataset.Windows] = {}
    if windows is None:
        windows, external = build_data(name, patients, seconds, seed, from_recordings, simulator)
    channels, classes = len(windows.channels), len(windows.classes)
    rnn = spec.rnn(channels, classes)
    all_patients = np.unique(windows.patients)
    if len(all_patients) < 4:
        raise ValueError(
            f"need at least 4 patients for patient-wise splits, got {len(all_patients)}"
        )

    # Test patients first, never touched until the end; then CV and a validation split
    # inside the development patients.
    dev, test = dataset.patient_folds(windows, max(2, min(5, len(all_patients) // 2)), seed)[0]
    dev_windows = windows.subset(dev)
    fold_results: list[dict[str, Any]] = []
    k = max(2, min(folds, len(np.unique(dev_windows.patients))))
    splits = dataset.patient_folds(dev_windows, k, seed) if folds >= 2 else []
    features = evaluate.hand_made_features(windows)
    dev_features = features[dev]
    for i, (fold_train, fold_val) in enumerate(splits):
        if progress:
            progress("folds", i, len(splits))
        model, _, stats = fit(dev_windows, fold_train, fold_val, rnn, config)
        p_val = predict(model, dev_windows.x[fold_val], stats)
        y_val = dev_windows.y[fold_val]
        baseline = evaluate.Baseline.fit(dev_features[fold_train], dev_windows.y[fold_train], seed)
        b_val = baseline.predict(dev_features[fold_val])
        fold_results.append(
            {
                "rnn": _per_class(y_val, p_val, _thresholds(y_val, p_val), windows.classes),
                "baseline": _per_class(y_val, b_val, _thresholds(y_val, b_val), windows.classes),
            }
        )
    if progress and splits:
        progress("folds", len(splits), len(splits))

    # Final model: early stopping and thresholds on a patient-wise validation fold.
    inner_train, inner_val = dataset.patient_folds(dev_windows, 4, seed + 1)[0]
    model, history, stats = fit(dev_windows, inner_train, inner_val, rnn, config, progress)
    y_inner = dev_windows.y[inner_val]
    thresholds = _thresholds(y_inner, predict(model, dev_windows.x[inner_val], stats))
    baseline = evaluate.Baseline.fit(dev_features[inner_train], dev_windows.y[inner_train], seed)
    b_thresholds = _thresholds(y_inner, baseline.predict(dev_features[inner_val]))
    test_windows = windows.subset(test)
    p_test = predict(model, test_windows.x, stats)
    b_test = baseline.predict(features[test])
    test_metrics = {
        "rnn": _per_class(test_windows.y, p_test, thresholds, windows.classes),
        "baseline": _per_class(test_windows.y, b_test, b_thresholds, windows.classes),
    }
    external_metrics = {}
    for title, ext in external.items():
        p_ext = predict(model, ext.x, stats)
        b_ext = baseline.predict(evaluate.hand_made_features(ext))
        scored = [k for k, c in enumerate(ext.classes) if c == "ventricular"]
        external_metrics[title] = {
            "note": f"{ext.describe()}; only the ventricular class is labelled.",
            "metrics": {
                ext.classes[k]: {
                    "rnn": evaluate.class_metrics(ext.y[:, k], p_ext[:, k], thresholds[k]),
                    "baseline": evaluate.class_metrics(ext.y[:, k], b_ext[:, k], b_thresholds[k]),
                }
                for k in scored
            },
        }

    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        parity = export_onnx(
            model, onnx_path, normalize(test_windows.x[:256], stats), spec.input_name
        )
        latency = []
        if bench:
            steps = windows.x.shape[1]
            latency = [
                r.__dict__
                for r in benchmark(
                    model, onnx_path, steps, channels, seconds_per_case=0.2, threads=(1,)
                )
            ]
        created = now()
        source = (
            f"ECG simulator {simulator or dataset.simulator_name()}"
            if name == "rhythm"
            else "vitals courses from producers.courses (stable vs sepsis-like drift)"
        )
        version = version or created.strftime("%Y.%m.%d-%H%M%S")
        summary_test = {
            f"{scorer}.{c}.{key}": round(test_metrics[scorer][c][key], 4)
            for scorer in ("rnn", "baseline")
            for c in windows.classes
            for key in ("f1", "auroc", "recall", "precision")
        }
        card = ModelCard(
            name=name,
            version=version,
            created=created,
            description=spec.description,
            inputs=[
                ModelInput(
                    name=spec.input_name,
                    kind=spec.kind,  # type: ignore[arg-type]
                    shape=[-1, -1, channels],
                    fs=windows.fs,
                    window_s=spec.window_s,
                    channels=list(windows.channels),
                )
            ],
            outputs=["probabilities"],
            classes=list(windows.classes),
            thresholds=dict(zip(windows.classes, thresholds, strict=True)),
            normalization={spec.input_name: stats},
            metrics={
                "held_out_test": summary_test,
                "onnx_parity_max_abs_diff": parity.max_abs_diff,
                "architecture": rnn.as_dict(),
                "epochs_run": len(history),
            },
            training_data=TrainingData(
                description=f"{windows.describe()}; {source}, seed {seed}; split by patient",
                sha256=windows.sha256(),
            ),
            code_version=code_version(),
            onnx_sha256="0" * 64,  # filled in by write_version from the file itself
        )
        target = write_version(Path(out), card, onnx_path)

    evaluate.plot_curves(
        test_windows.y, {"rnn": p_test, "baseline": b_test}, windows.classes, target
    )
    evaluate.plot_training(history, target)
    evaluate.plot_confusion(test_metrics["rnn"], target)
    evaluate.write_report(
        target / "report.md",
        {
            "name": name,
            "version": version,
            "created": created.isoformat(timespec="seconds"),
            "code_version": card.code_version,
            "classes": windows.classes,
            "data_description": card.training_data.description,
            "dropped": windows.dropped,
            "split": f"{len(np.unique(test_windows.patients))} test patients, "
            f"{len(np.unique(dev_windows.patients))} development patients, {len(splits)} folds",
            "folds": fold_results,
            "test": test_metrics,
            "external": external_metrics,
            "parity": f"max |onnx - torch| = {parity.max_abs_diff:.2e} on {parity.windows} "
            f"held-out windows (limit {parity.tolerance:.0e})",
            "latency": latency,
        },
    )
    return target


# -- streaming models: stateful training on hop sequences ---------------------------------


@dataclass(frozen=True)
class StreamingSpec:
    """A streaming (stateful) model: its network and how many hops one truncated
    backpropagation-through-time chunk spans."""

    name: str
    kind: str
    input_name: str
    window_s: float
    network: Callable[[int, int], StatefulConfig]
    chunk_hops: int
    description: str
    cold_start: str
    cosine: bool = False  # anneal the learning rate (fit_streaming)
    patients: int = 60  # simulated patients the shipped version was trained on


STREAMING: dict[str, StreamingSpec] = {
    "rhythm": StreamingSpec(
        "rhythm",
        "ecg",
        "ecg",
        dataset.RHYTHM_WINDOW_S,
        # Causal conv front-end kept: 64 GRU steps a second of 64 Hz ECG would cost 16x
        # the GRU steps of 2 stride-4 layers (4 a second), and its carried context is
        # 4 input steps a layer (160 bytes).
        lambda c, k: StatefulConfig(c, k, hidden=32, conv_channels=16, conv_layers=2),
        20,  # 20 s chunks: longer than the 10 s a label looks back over
        "AF and ventricular-run probability after each 1 s hop of single-lead ECG (64 Hz "
        "ECG, step-held RR interval and its change from the stream's beat detector), the "
        "GRU's state carried per device: the labels are those of the 10 s window ending "
        "at the hop.",
        "a device without state is fed every whole 1 s hop of its current window (10 s) "
        "from zero state, each hop built from the window cut at its end; then one hop a "
        "window",
        cosine=True,  # held-out AF F1 0.984 vs 0.977 (LR baseline) with, a tie without
        patients=100,
    ),
    "deterioration": StreamingSpec(
        "deterioration",
        "vitals",
        "vitals",
        dataset.DETERIORATION_WINDOW_S,
        lambda c, k: StatefulConfig(c, k, hidden=32, conv_channels=0),
        60,  # 10 min chunks
        "Deterioration probability after each 10 s vitals step (the mean of each vital's "
        "1 Hz trend over the step), the GRU's state carried per device over the whole "
        "monitoring time.",
        "a device without state is fed its trend history (up to 10 min, from the first step "
        "with any value) from zero state, then one step each time a 10 s boundary passes",
        patients=200,  # at 60 the GRU lost to the baseline (F1 0.940 vs 0.973)
    ),
}


def fit_streaming(
    seq: dataset.Sequences,
    train_index: np.ndarray,
    val_index: np.ndarray,
    network: StatefulConfig,
    config: TrainConfig,
    chunk_hops: int,
    progress: Progress | None = None,
    cosine: bool = False,
) -> tuple[StatefulClassifier, list[dict[str, float]], dataset.Normalization]:
    """Truncated backpropagation through time: each batch of patients runs its whole
    sequence chunk by chunk from zero state, the state carried (detached) between chunks,
    the loss on every trained hop's output; early stopping on validation patients.
    ``cosine``: the learning rate anneals to 0 over the epochs (fine decision boundaries
    late in training, where a constant rate keeps jumping across them)."""
    seed_everything(config.seed)
    stats = dataset.fit_normalization(seq.x[train_index])
    x = torch.from_numpy(normalize(seq.x, stats))
    y = torch.from_numpy(seq.y)
    trained = torch.from_numpy(seq.trained)
    model = StatefulClassifier(network)
    weights = dataset.positive_weights(seq.y[train_index][seq.trained[train_index]])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(weights), reduction="none")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs) if cosine else None
    )
    generator = torch.Generator().manual_seed(config.seed)
    hop_steps = seq.steps_per_hop
    history: list[dict[str, float]] = []
    best_loss, best_state, waited = float("inf"), None, 0

    def hop_loss(logits: torch.Tensor, rows: np.ndarray, first_hop: int) -> torch.Tensor:
        per_hop = hop_steps // network.samples_per_step
        hop_logits = logits[:, per_hop - 1 :: per_hop]
        hops = slice(first_hop, first_hop + hop_logits.shape[1])
        mask = trained[rows, hops].unsqueeze(-1).float()
        loss = loss_fn(hop_logits, y[rows, hops]) * mask
        return loss.sum() / mask.sum().clamp(min=1.0) / y.shape[-1]

    batch = max(4, config.batch_size // 8)  # a row is a whole patient's sequence
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = train_index[torch.randperm(len(train_index), generator=generator).numpy()]
        total, count = 0.0, 0
        for start in range(0, len(order), batch):
            rows = np.sort(order[start : start + batch])
            state = model.zero_state(len(rows))
            for first in range(0, seq.y.shape[1], chunk_hops):
                chunk = x[rows, first * hop_steps : (first + chunk_hops) * hop_steps]
                optimizer.zero_grad()
                logits, h, contexts = model.step_logits(chunk, *state)
                loss = hop_loss(logits, rows, first)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                state = [h.detach(), *(c.detach() for c in contexts)]
                total, count = total + float(loss.detach()), count + 1
        if schedule is not None:
            schedule.step()
        model.eval()
        with torch.no_grad():
            logits, _, _ = model.step_logits(x[val_index], *model.zero_state(len(val_index)))
            val_loss = float(hop_loss(logits, val_index, 0))
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss})
        if progress:
            progress("epochs", epoch, config.epochs)
        if val_loss < best_loss - 1e-4:
            best_loss, waited = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history, stats


def predict_hops(
    model: StatefulClassifier, seq: dataset.Sequences, stats: dataset.Normalization
) -> np.ndarray:
    """Probabilities after every hop ``[patients, hops, classes]``, each sequence fed from
    zero state (whole, which is what feeding it hop by hop gives: the parity check)."""
    x = torch.from_numpy(normalize(seq.x, stats))
    per_hop = seq.steps_per_hop // model.config.samples_per_step
    with torch.no_grad():
        logits, _, _ = model.step_logits(x, *model.zero_state(len(x)))
    return torch.sigmoid(logits[:, per_hop - 1 :: per_hop]).numpy()


def build_sequences(
    name: str, patients: int, seconds: int, seed: int, from_recordings: bool
) -> tuple[dataset.Sequences, dict[str, dataset.Sequences]]:
    """A streaming model's development sequences and its external test sequences."""
    if name == "rhythm":
        external = {}
        if from_recordings:
            external["MIT-BIH record 208 (real ECG, automatic ventricular labels)"] = (
                dataset.record_208_sequence()
            )
        return dataset.rhythm_sequences(patients, seconds, seed), external
    steps = max(seconds // 10, dataset.DETERIORATION_STEPS)
    return dataset.deterioration_sequences(patients, steps, seed), {}


def run_streaming(
    name: str,
    out: Path,
    epochs: int = 30,
    folds: int = 3,
    patients: int = 60,
    seconds: int = 300,
    seed: int = 7,
    from_recordings: bool = False,
    sequences: dataset.Sequences | None = None,
    version: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train, evaluate against the baseline, export (state in, state out) and register a
    streaming model; returns the new version directory. Splits are by patient, as in
    :func:`run`; the baseline scores the very windows that end at the scored hops."""
    spec = STREAMING[name]
    config = TrainConfig(epochs=epochs, seed=seed)
    external: dict[str, dataset.Sequences] = {}
    if sequences is None:
        sequences, external = build_sequences(name, patients, seconds, seed, from_recordings)
    seq = sequences
    channels, classes = len(seq.channels), len(seq.classes)
    network = spec.network(channels, classes)
    if len(seq) < 4:
        raise ValueError(f"need at least 4 patients for patient-wise splits, got {len(seq)}")
    dev, test = dataset.sequence_folds(seq, max(2, min(5, len(seq) // 2)), seed)[0]
    dev_seq, test_seq = seq.subset(dev), seq.subset(test)
    features = evaluate.hand_made_features(dev_seq.windows)

    def baseline_rows(part: dataset.Sequences, index: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(part.windows.patients, part.patients[index]))

    fold_results: list[dict[str, Any]] = []
    splits = dataset.sequence_folds(dev_seq, max(2, min(folds, len(dev_seq) // 2)), seed)
    for i, (fold_train, fold_val) in enumerate(splits if folds >= 2 else []):
        if progress:
            progress("folds", i, len(splits))
        model, _, stats = fit_streaming(
            dev_seq, fold_train, fold_val, network, config, spec.chunk_hops, cosine=spec.cosine
        )
        val = dev_seq.subset(fold_val)
        y_val, p_val = val.scored_labels(), predict_hops(model, val, stats)[val.scored]
        train_rows, val_rows = baseline_rows(dev_seq, fold_train), baseline_rows(dev_seq, fold_val)
        baseline = evaluate.Baseline.fit(features[train_rows], dev_seq.windows.y[train_rows], seed)
        b_val = baseline.predict(features[val_rows])
        fold_results.append(
            {
                "rnn": _per_class(y_val, p_val, _thresholds(y_val, p_val), seq.classes),
                "baseline": _per_class(y_val, b_val, _thresholds(y_val, b_val), seq.classes),
            }
        )

    inner_train, inner_val = dataset.sequence_folds(dev_seq, 4, seed + 1)[0]
    model, history, stats = fit_streaming(
        dev_seq, inner_train, inner_val, network, config, spec.chunk_hops, progress, spec.cosine
    )
    val = dev_seq.subset(inner_val)
    y_inner = val.scored_labels()
    thresholds = _thresholds(y_inner, predict_hops(model, val, stats)[val.scored])
    train_rows, val_rows = baseline_rows(dev_seq, inner_train), baseline_rows(dev_seq, inner_val)
    baseline = evaluate.Baseline.fit(features[train_rows], dev_seq.windows.y[train_rows], seed)
    b_thresholds = _thresholds(y_inner, baseline.predict(features[val_rows]))
    y_test = test_seq.scored_labels()
    p_test = predict_hops(model, test_seq, stats)[test_seq.scored]
    b_test = baseline.predict(evaluate.hand_made_features(test_seq.windows))
    test_metrics = {
        "rnn": _per_class(y_test, p_test, thresholds, seq.classes),
        "baseline": _per_class(y_test, b_test, b_thresholds, seq.classes),
    }
    external_metrics = {}
    for title, ext in external.items():
        y_ext, p_ext = ext.scored_labels(), predict_hops(model, ext, stats)[ext.scored]
        b_ext = baseline.predict(evaluate.hand_made_features(ext.windows))
        scored = [k for k, c in enumerate(ext.classes) if c == "ventricular"]
        external_metrics[title] = {
            "note": f"{ext.describe()}; only the ventricular class is labelled.",
            "metrics": {
                ext.classes[k]: {
                    "rnn": evaluate.class_metrics(y_ext[:, k], p_ext[:, k], thresholds[k]),
                    "baseline": evaluate.class_metrics(y_ext[:, k], b_ext[:, k], b_thresholds[k]),
                }
                for k in scored
            },
        }

    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        parity = export_streaming(
            model, onnx_path, normalize(test_seq.x, stats), spec.input_name, seq.steps_per_hop
        )
        created = now()
        version = version or created.strftime("%Y.%m.%d-%H%M%S")
        summary_test = {
            f"{scorer}.{c}.{key}": round(test_metrics[scorer][c][key], 4)
            for scorer in ("rnn", "baseline")
            for c in seq.classes
            for key in ("f1", "auroc", "recall", "precision")
        }
        summary_external = {
            title: {
                f"{scorer}.{c}.{key}": round(m["metrics"][c][scorer][key], 4)
                for c in m["metrics"]
                for scorer in ("rnn", "baseline")
                for key in ("f1", "auroc", "recall", "precision")
            }
            for title, m in external_metrics.items()
        }
        shapes = network.state_shapes()
        source = (
            f"ECG simulator {dataset.simulator_name()}"
            if name == "rhythm"
            else "vitals courses from producers.courses (stable vs sepsis-like drift)"
        )
        card = ModelCard(
            name=name,
            version=version,
            created=created,
            description=spec.description,
            inputs=[
                ModelInput(
                    name=spec.input_name,
                    kind=spec.kind,  # type: ignore[arg-type]
                    shape=[-1, -1, channels],
                    fs=seq.fs,
                    window_s=spec.window_s,
                    channels=list(seq.channels),
                )
            ],
            outputs=["probabilities"],
            classes=list(seq.classes),
            thresholds=dict(zip(seq.classes, thresholds, strict=True)),
            normalization={spec.input_name: stats},
            metrics={
                "held_out_test": summary_test,
                "external": summary_external,
                "onnx_parity_max_abs_diff": parity.max_abs_diff,
                "onnx_parity": "hop by hop with carried state vs torch on whole sequences, "
                f"{parity.windows} held-out hops",
                "architecture": network.as_dict(),
                "training": f"truncated BPTT, {spec.chunk_hops}-hop chunks, state carried"
                + (", cosine learning rate" if spec.cosine else ""),
                "epochs_run": len(history),
            },
            training_data=TrainingData(
                description=f"{seq.describe()}; {source}, seed {seed}; split by patient",
                sha256=seq.sha256(),
            ),
            code_version=code_version(),
            onnx_sha256="0" * 64,
            streaming=Streaming(
                hop_s=seq.hop_s,
                states=[
                    StateTensor(name=s, output=STATE_OUTPUTS[s], shape=list(shape))
                    for s, shape in shapes.items()
                ],
                cold_start=spec.cold_start,
            ),
        )
        target = write_version(Path(out), card, onnx_path)

    evaluate.plot_curves(y_test, {"rnn": p_test, "baseline": b_test}, seq.classes, target)
    evaluate.plot_training(history, target)
    evaluate.plot_confusion(test_metrics["rnn"], target)
    evaluate.write_report(
        target / "report.md",
        {
            "name": name,
            "version": version,
            "created": created.isoformat(timespec="seconds"),
            "code_version": card.code_version,
            "classes": seq.classes,
            "data_description": card.training_data.description,
            "dropped": {},
            "split": f"{len(test_seq)} test patients, {len(dev_seq)} development patients, "
            f"{len(fold_results)} folds; scored at every hop that ends a full window",
            "folds": fold_results,
            "test": test_metrics,
            "external": external_metrics,
            "parity": f"max |onnx fed hop by hop - torch| = {parity.max_abs_diff:.2e} on "
            f"{parity.windows} held-out hops (limit {parity.tolerance:.0e})",
            "latency": [],
        },
    )
    return target
