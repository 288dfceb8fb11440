"""Honest evaluation: metrics, the logistic-regression baseline, plots, the report.

Every number is computed on patients the model never saw. Thresholds are chosen on
validation patients (best F1) and then *applied* to the test patients, so the reported
sensitivity is what the stream's alert threshold would achieve, not an optimistic best.
The baseline is a logistic regression on the stream's own hand-made features
(``stream.signal.features.window_features``), reported beside the RNN: a model that does not
beat it has no business in the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: training runs headless
import matplotlib.pyplot as plt
import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.dataset import Windows


def class_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall (= sensitivity at the alert threshold), F1, AUROC, AUPRC, confusion."""
    predicted = p >= threshold
    both = len(np.unique(y)) == 2
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    return {
        "threshold": round(float(threshold), 4),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "auroc": float(roc_auc_score(y, p)) if both else float("nan"),
        "auprc": float(average_precision_score(y, p)) if both else float("nan"),
        "confusion": [[int(tn), int(fp)], [int(fn), int(tp)]],
        "n": len(y),
        "positives": int(np.sum(y)),
    }


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the best F1 on (validation) data; 0.5 if undefined."""
    if y.sum() == 0 or y.sum() == len(y):
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(np.clip(thresholds[int(np.argmax(f1[:-1]))], 0.01, 0.99))


# -- the baseline ----------------------------------------------------------------------


def hand_made_features(windows: Windows) -> np.ndarray:
    """``window_features`` of every window: the stream's own feature code, unchanged."""
    from stream.signal.features import window_features
    from stream.signal.window import FEATURE_NAMES, SignalWindow

    if windows.raw is None:
        # Vitals sequences are already hand-made features: summarize each window by its
        # latest value, mean and change, what a rule or a clinician would look at.
        x = windows.x
        last = np.array([[_last(col) for col in w.T] for w in x])
        return np.concatenate([last, np.nanmean(x, axis=1), last - x[:, 0]], axis=1)
    rows = []
    for raw in windows.raw:
        signal = SignalWindow(
            t_start=0.0, t_end=len(raw) / windows.raw_fs, ecg=raw, ecg_fs=windows.raw_fs
        )
        features = window_features(signal)
        rows.append([features[name] for name in FEATURE_NAMES if name in ECG_BASELINE])
    return np.asarray(rows, dtype=np.float64)


# The ECG-derived features; the rest are nan for ECG-only windows and carry nothing.
ECG_BASELINE = (
    "ecg_hr_bpm",
    "rr_mean_s",
    "rr_cv",
    "rmssd_ms",
    "pnn50",
    "rr_irregularity",
    "ectopic_fraction",
    "ecg_sqi",
)


def _last(column: np.ndarray) -> float:
    finite = column[np.isfinite(column)]
    return float(finite[-1]) if finite.size else float("nan")


@dataclass
class Baseline:
    """One logistic regression per class on hand-made features (nan → training median)."""

    medians: np.ndarray
    models: list[Any] = field(default_factory=list)

    @classmethod
    def fit(cls, features: np.ndarray, y: np.ndarray, seed: int) -> Baseline:
        medians = np.nanmedian(features, axis=0)
        medians = np.where(np.isfinite(medians), medians, 0.0)
        filled = cls._fill(features, medians)
        baseline = cls(medians)
        for k in range(y.shape[1]):
            if len(np.unique(y[:, k])) < 2:
                # A class absent from a small training fold: predict its prior, do not crash.
                baseline.models.append(DummyClassifier(strategy="prior").fit(filled, y[:, k]))
                continue
            model = make_pipeline(
                StandardScaler(),
                LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
            )
            baseline.models.append(model.fit(filled, y[:, k]))
        return baseline

    @staticmethod
    def _fill(features: np.ndarray, medians: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(features), features, medians)

    def predict(self, features: np.ndarray) -> np.ndarray:
        filled = self._fill(features, self.medians)
        return np.stack([_positive_probability(m, filled) for m in self.models], axis=1)


def _positive_probability(model: Any, features: np.ndarray) -> np.ndarray:
    probabilities = model.predict_proba(features)
    classes = list(model.classes_)
    return probabilities[:, classes.index(1)] if 1 in classes else np.zeros(len(features))


# -- plots -----------------------------------------------------------------------------


def plot_curves(
    y: np.ndarray, scores: Mapping[str, np.ndarray], classes: Sequence[str], out: Path
) -> list[Path]:
    """ROC and PR curves per class, one line per scorer (RNN, baseline)."""
    paths = []
    for kind in ("roc", "pr"):
        fig, axes = plt.subplots(1, len(classes), figsize=(4.2 * len(classes), 3.6), squeeze=False)
        for k, name in enumerate(classes):
            ax = axes[0, k]
            if len(np.unique(y[:, k])) < 2:
                ax.set_title(f"{name}: one class only")
                continue
            for scorer, p in scores.items():
                if kind == "roc":
                    fpr, tpr, _ = roc_curve(y[:, k], p[:, k])
                    ax.plot(fpr, tpr, label=f"{scorer} AUC {roc_auc_score(y[:, k], p[:, k]):.3f}")
                    ax.set(xlabel="1 - specificity", ylabel="sensitivity")
                else:
                    precision, recall, _ = precision_recall_curve(y[:, k], p[:, k])
                    ap = average_precision_score(y[:, k], p[:, k])
                    ax.plot(recall, precision, label=f"{scorer} AP {ap:.3f}")
                    ax.set(xlabel="recall", ylabel="precision")
            ax.set_title(name)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{kind}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_training(history: Sequence[Mapping[str, float]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set(xlabel="epoch", ylabel="weighted BCE loss", title="training curve (final model)")
    ax.legend()
    fig.tight_layout()
    path = out / "training.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_confusion(metrics: Mapping[str, Mapping[str, Any]], out: Path) -> Path:
    classes = list(metrics)
    fig, axes = plt.subplots(1, len(classes), figsize=(3.2 * len(classes), 3), squeeze=False)
    for ax, name in zip(axes[0], classes, strict=True):
        matrix = np.asarray(metrics[name]["confusion"])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center")
        ax.set(
            xticks=[0, 1], yticks=[0, 1], xticklabels=["no", "yes"], yticklabels=["no", "yes"],
            xlabel="predicted", ylabel="true", title=f"{name} @ {metrics[name]['threshold']:.2f}",
        )  # fmt: skip
    fig.tight_layout()
    path = out / "confusion.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# -- the report ------------------------------------------------------------------------


TABLE_HEAD = (
    "| class / scorer | F1 | precision | sensitivity | specificity | AUROC | AUPRC | threshold |"
)


def _row(label: str, m: Mapping[str, Any]) -> str:
    return (
        f"| {label} | {m['f1']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | "
        f"{m['specificity']:.3f} | {m['auroc']:.3f} | {m['auprc']:.3f} | {m['threshold']:.2f} |"
    )


def _spread(folds: Sequence[Mapping[str, Any]], scorer: str, name: str, key: str) -> str:
    values = np.array([f[scorer][name][key] for f in folds], dtype=float)
    return f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}"


def write_report(path: Path, summary: Mapping[str, Any]) -> Path:
    """The Markdown report beside the model: data, CV spread, held-out test, external."""
    classes = summary["classes"]
    lines = [
        f"# {summary['name']}@{summary['version']}",
        "",
        f"Trained {summary['created']} with code {summary['code_version']}.",
        "",
        "## Data",
        "",
        f"- {summary['data_description']}",
        f"- Cleaning dropped: {summary['dropped']}",
        f"- Split by patient: {summary['split']}",
        "",
        "## Cross-validation (patient-wise folds, mean ± sd over folds)",
        "",
        "| class | scorer | F1 | AUROC | sensitivity |",
        "|---|---|---|---|---|",
    ]
    folds = summary["folds"]
    for name in classes:
        for scorer in ("rnn", "baseline"):
            if folds:
                lines.append(
                    f"| {name} | {scorer} | {_spread(folds, scorer, name, 'f1')} | "
                    f"{_spread(folds, scorer, name, 'auroc')} | "
                    f"{_spread(folds, scorer, name, 'recall')} |"
                )
    lines += [
        "",
        "## Held-out test patients (threshold chosen on validation patients)",
        "",
        TABLE_HEAD,
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in classes:
        for scorer in ("rnn", "baseline"):
            lines.append(_row(f"{name} / {scorer}", summary["test"][scorer][name]))
    for title, external in summary.get("external", {}).items():
        lines += ["", f"## External: {title}", "", external["note"], ""]
        lines += [TABLE_HEAD, "|---|---|---|---|---|---|---|---|"]
        for name, per_scorer in external["metrics"].items():
            for scorer, m in per_scorer.items():
                lines.append(_row(f"{name} / {scorer}", m))
    lines += ["", "## Export", "", f"- ONNX parity: {summary['parity']}"]
    if summary.get("latency"):
        lines += ["", "| runtime | batch | threads | ms/window |", "|---|---|---|---|"]
        lines += [
            f"| {r['runtime']} | {r['batch']} | {r['threads']} | {r['ms_per_window']:.3f} |"
            for r in summary["latency"]
        ]
    lines += ["", "Plots: roc.png, pr.png, confusion.png, training.png", ""]
    path.write_text("\n".join(lines))
    return path
