"""Alarm actionability from clinicians' verdicts: training, evaluation, export, card, report.

``vitalstream train alarm-actionability`` calls :func:`run`. The model scores a triggered
alert's probability of being *actionable* (what a clinician acknowledging it says:
``actionable`` = 1; ``not_actionable`` and ``artefact`` = 0; alarms never acknowledged
are left out, see :mod:`models.adjudicated`) from the window features at the alert and its
kind and priority (:mod:`stream.scoring.actionability` builds the row, in training and in
the worker alike).

The model: gradient-boosted trees (scikit-learn ``GradientBoostingClassifier``, shallow
trees, shrinkage, row subsampling), exported to ONNX with skl2onnx. Why: the question is
conditional (motion makes a tachycardia suspect, not a fall; a missing SpO2 means nothing
for a fever), which trees express as splits and a linear model cannot; the inputs mix
physical units, flags and one-hots, where trees need no scaling; a few hundred verdicts
suffice for depth-3 trees with a minimum leaf size; and the export is a single
``TreeEnsembleClassifier`` node that runs in microseconds. Torch is not needed.

Honesty rules (as :mod:`models.train`): every split is by patient; a quarter of the
patients is held out and touched once, at the end; the suppression threshold is chosen on
out-of-fold predictions of the *training* patients (among the thresholds that keep ≥ 99 %
of their actionable alarms at or above it and suppress the most, the middle one:
:func:`suppression_threshold`) and then applied unchanged to the held-out patients; the
same protocol gives the baselines their thresholds:

- ``always actionable``: suppresses nothing (what the ward has today);
- ``kind + priority``: a logistic regression on the one-hot kind and priority alone
  (what a per-kind alarm policy could learn from the same verdicts);
- ``logistic, all inputs``: a logistic regression on everything the model sees.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedGroupKFold

from models.adjudicated import AdjudicatedAlerts, verdict_counts
from stream.records import ALERT_KINDS
from stream.scoring.actionability import (
    ACTIONABLE,
    KIND,
    MISSING,
    PRIORITY,
    default_channels,
)
from stream.scoring.registry import (
    ModelCard,
    ModelInput,
    Normalization,
    TrainingData,
    normalize,
    now,
    write_version,
)

NAME = "alarm-actionability"
INPUT_NAME = "alert"
OUTPUT_NAME = "probabilities"
RECALL_TARGET = 0.99
HELD_OUT_FRACTION = 0.25
PARITY_TOLERANCE = 1e-5
# The window the features describe (stream.window_s) and its hop: the card's input says
# so, though one alert is one row.
WINDOW_S = 10.0
HOP_S = 1.0
DESCRIPTION = (
    "Probability that a clinician acknowledging a triggered alert calls it actionable "
    "(verdict actionable; not_actionable and artefact are not), from the window features at "
    "the alert (stream.signal.window.FEATURE_NAMES, their missing flags) and the alert's "
    "kind and priority one-hot. Runs in shadow only: the worker writes each triggered "
    "alert's score to alert_actionability (would_suppress: probability below the threshold, "
    "chosen for >= 99 % recall of actionable alarms on training patients) and changes no "
    "alert."
)

Progress = Callable[[str, int, int], None]


# -- scorers -----------------------------------------------------------------------------


def gradient_boosting(seed: int) -> GradientBoostingClassifier:
    """The model (see module doc): 200 depth-3 trees, shrinkage 0.05, 80 % row samples."""
    return GradientBoostingClassifier(
        n_estimators=200,
        max_depth=3,
        learning_rate=0.05,
        subsample=0.8,
        min_samples_leaf=5,
        random_state=seed,
    )


@dataclass
class Fitted:
    """A fitted scorer: the columns it reads and a predict_proba estimator (or a constant)."""

    columns: np.ndarray | None  # None: all
    estimator: Any | None  # None: always actionable (probability 1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            return np.ones(len(x))
        if len(np.unique(self.estimator.classes_)) < 2:
            return np.full(len(x), float(self.estimator.classes_[0]))
        view = x if self.columns is None else x[:, self.columns]
        return self.estimator.predict_proba(view)[:, 1]


SCORERS = ("model", "kind + priority", "logistic, all inputs", "always actionable")


def fit_scorer(name: str, x: np.ndarray, y: np.ndarray, channels: Sequence[str], seed: int):
    """Fit scorer ``name`` on normalized inputs ``x``."""
    if name == "always actionable":
        return Fitted(None, None)
    if len(np.unique(y)) < 2:
        return Fitted(None, _Constant(int(y[0]) if len(y) else 1))
    if name == "model":
        return Fitted(None, gradient_boosting(seed).fit(x, y))
    if name == "kind + priority":
        columns = np.asarray(
            [i for i, c in enumerate(channels) if c.startswith((KIND, PRIORITY))], dtype=int
        )
        model = LogisticRegression(max_iter=2000, random_state=seed)
        return Fitted(columns, model.fit(x[:, columns], y))
    if name == "logistic, all inputs":
        return Fitted(None, LogisticRegression(max_iter=5000, random_state=seed).fit(x, y))
    raise ValueError(f"unknown scorer {name!r}")


class _Constant:
    def __init__(self, label: int) -> None:
        self.classes_ = np.asarray([label])


# -- thresholds and metrics --------------------------------------------------------------


def recall_threshold(y: np.ndarray, p: np.ndarray, target: float = RECALL_TARGET) -> float:
    """The highest threshold keeping ≥ ``target`` of the positives at or above it.

    >>> recall_threshold(np.array([1, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]), 0.99)
    0.7
    >>> recall_threshold(np.array([1, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]), 0.6)
    0.8
    """
    positives = np.sort(np.asarray(p, dtype=float)[np.asarray(y) == 1])
    if len(positives) == 0:
        return 0.0
    misses = int(np.floor((1.0 - target) * len(positives) + 1e-9))
    return float(positives[misses])


def suppression_threshold(y: np.ndarray, p: np.ndarray, target: float = RECALL_TARGET) -> float:
    """The suppression threshold chosen on (training) scores: of the thresholds that keep
    ≥ ``target`` of the positives, those that suppress the most alarms form an interval;
    its middle, so that scores a little off the training ones fall on the same side.

    >>> y, p = np.array([1, 1, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.3, 0.1])
    >>> recall_threshold(y, p), suppression_threshold(y, p)
    (0.7, 0.5)
    >>> suppression_threshold(np.array([1, 0]), np.array([1.0, 1.0]))  # nothing to suppress
    1.0
    """
    highest = recall_threshold(y, p, target)
    below = np.asarray(p, dtype=float)[np.asarray(p, dtype=float) < highest]
    if below.size == 0:
        return highest
    return float((below.max() + highest) / 2)


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """What suppressing alerts scored below ``threshold`` would have done."""
    y = np.asarray(y)
    keep = np.asarray(p) >= threshold
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    suppressed_negatives = int((~keep & (y == 0)).sum())
    missed = int((~keep & (y == 1)).sum())
    both = positives > 0 and negatives > 0
    return {
        "threshold": float(threshold),
        "alarms": len(y),
        "actionable": positives,
        "non_actionable": negatives,
        "recall": (positives - missed) / positives if positives else float("nan"),
        "actionable_suppressed": missed,
        "non_actionable_suppressed": suppressed_negatives,
        "suppressed_share_of_non_actionable": (
            suppressed_negatives / negatives if negatives else float("nan")
        ),
        "suppressed_share_of_all": (suppressed_negatives + missed) / len(y) if len(y) else 0.0,
        "auroc": float(roc_auc_score(y, p)) if both else float("nan"),
        # Average precision of *non-actionable* (what suppression looks for), score 1 - p.
        "auprc_non_actionable": (
            float(average_precision_score(1 - y, 1 - np.asarray(p))) if both else float("nan")
        ),
    }


def suppression_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall of actionable, share of non-actionable suppressed) over all thresholds."""
    y = np.asarray(y)
    if (y == 1).sum() == 0 or (y == 0).sum() == 0:
        return np.array([1.0]), np.array([0.0])
    fpr, tpr, _ = roc_curve(y, p)
    return tpr, 1.0 - fpr


# -- splits ------------------------------------------------------------------------------


def held_out_split(
    rows: AdjudicatedAlerts, seed: int, fraction: float = HELD_OUT_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): about ``fraction`` of the patients held out, verdict
    shares stratified."""
    groups = rows.groups
    splits = max(2, round(1 / fraction))
    if len(np.unique(groups)) < splits:
        raise ValueError(f"need at least {splits} patients, got {len(np.unique(groups))}")
    splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(rows)), rows.y, groups))
    return train, test


def patient_folds(
    y: np.ndarray, groups: np.ndarray, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    k = max(2, min(k, len(np.unique(groups))))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def fit_normalization(x: np.ndarray) -> Normalization:
    """Per-channel mean and std of the training rows (nan ignored), as the registry wants;
    a channel never present gets mean 0 and std 1."""
    finite = np.where(np.isfinite(x), x, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan channels: handled below
        mean, std = np.nanmean(finite, axis=0), np.nanstd(finite, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return Normalization(mean=[float(m) for m in mean], std=[float(s) for s in std])


# -- evaluation --------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Everything :func:`evaluate` found, for the card, the report and the figures."""

    channels: tuple[str, ...]
    train: np.ndarray
    test: np.ndarray
    thresholds: dict[str, float]
    folds: list[dict[str, dict[str, Any]]]
    held_out: dict[str, dict[str, Any]]
    test_scores: dict[str, np.ndarray]
    y_test: np.ndarray
    stats: Normalization
    model: Any  # the final GradientBoostingClassifier


def evaluate(
    rows: AdjudicatedAlerts,
    *,
    folds: int = 3,
    seed: int = 7,
    channels: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Held-out patients, patient-wise CV on the others, thresholds from their
    out-of-fold scores, final fits on all training patients, metrics on held-out ones."""
    channels = tuple(channels or default_channels(kinds=_kinds(rows)))
    if folds < 2:
        raise ValueError("the threshold is chosen on out-of-fold scores: need --folds >= 2")
    x_raw, y, groups = rows.x(channels), rows.y, rows.groups
    train, test = held_out_split(rows, seed)
    out_of_fold = {name: np.full(len(train), np.nan) for name in SCORERS}
    fold_metrics: list[dict[str, dict[str, Any]]] = []
    splits = patient_folds(y[train], groups[train], folds, seed)
    for i, (fold_train, fold_val) in enumerate(splits):
        if progress:
            progress("folds", i, len(splits))
        stats = fit_normalization(x_raw[train][fold_train])
        x_fit = normalize(x_raw[train][fold_train], stats)
        x_val = normalize(x_raw[train][fold_val], stats)
        per_scorer = {}
        for name in SCORERS:
            fitted = fit_scorer(name, x_fit, y[train][fold_train], channels, seed)
            p_val = fitted.predict(x_val)
            out_of_fold[name][fold_val] = p_val
            per_scorer[name] = at_threshold(
                y[train][fold_val], p_val, suppression_threshold(y[train][fold_val], p_val)
            )
        fold_metrics.append(per_scorer)
    if progress:
        progress("folds", len(splits), len(splits))
    thresholds = {name: suppression_threshold(y[train], out_of_fold[name]) for name in SCORERS}
    stats = fit_normalization(x_raw[train])
    x_train, x_test = normalize(x_raw[train], stats), normalize(x_raw[test], stats)
    held_out, test_scores, final = {}, {}, None
    for name in SCORERS:
        fitted = fit_scorer(name, x_train, y[train], channels, seed)
        test_scores[name] = fitted.predict(x_test)
        held_out[name] = at_threshold(y[test], test_scores[name], thresholds[name])
        if name == "model":
            final = fitted.estimator
    return Evaluation(
        channels=channels, train=train, test=test, thresholds=thresholds, folds=fold_metrics,
        held_out=held_out, test_scores=test_scores, y_test=y[test], stats=stats, model=final,
    )  # fmt: skip


def _kinds(rows: AdjudicatedAlerts) -> tuple[str, ...]:
    """Every alert kind the stream knows, then any the data has beyond them."""
    extra = sorted(set(rows.kinds) - set(ALERT_KINDS))
    return (*ALERT_KINDS, *extra)


# -- export --------------------------------------------------------------------------------


class ParityError(RuntimeError):
    """The ONNX export does not reproduce scikit-learn's probabilities."""


def to_onnx(model: GradientBoostingClassifier, n_channels: int) -> Any:
    """The fitted trees as ONNX: input ``alert`` [batch, channels] (normalized), output
    ``probabilities`` [batch, 1], the probability of actionable (class 1)."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    graph_model = convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_channels]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    graph = graph_model.graph
    # skl2onnx's [batch, 2] output may be called "probabilities" too: rename it first.
    found = next(o.name for o in graph.output if o.name != "label")
    both = "class_probabilities"
    for node in graph.node:
        node.output[:] = [both if name == found else name for name in node.output]
        node.input[:] = [both if name == found else name for name in node.input]
    index = helper.make_tensor("actionable_column", TensorProto.INT64, [1], [1])
    graph.initializer.append(index)
    graph.node.append(
        helper.make_node("Gather", [both, "actionable_column"], [OUTPUT_NAME], axis=1)
    )
    while graph.output:
        graph.output.pop()
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1]))
    onnx.checker.check_model(graph_model)
    return graph_model


def check_parity(
    model: GradientBoostingClassifier,
    path: Path,
    x: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Max |onnxruntime - scikit-learn| over normalized rows ``x``; raises above tolerance."""
    import onnxruntime as ort

    from stream.scoring.registry import session_options

    session = ort.InferenceSession(
        str(path), session_options(1), providers=["CPUExecutionProvider"]
    )
    rows = np.ascontiguousarray(x, dtype=np.float32)
    onnx_p = session.run([OUTPUT_NAME], {INPUT_NAME: rows})[0][:, 0]
    sk_p = model.predict_proba(rows)[:, 1]
    diff = float(np.max(np.abs(onnx_p - sk_p))) if len(rows) else 0.0
    if not diff <= tolerance:
        raise ParityError(
            f"ONNX export differs from scikit-learn by {diff:.2e} > {tolerance:.0e} on "
            f"{len(rows)} rows"
        )
    return diff


def export(model: GradientBoostingClassifier, path: Path, x_check: np.ndarray) -> float:
    """Write the ONNX file and check it; the file is removed if parity fails."""
    import onnx

    onnx.save(to_onnx(model, x_check.shape[1]), str(path))
    try:
        return check_parity(model, path, x_check)
    except ParityError:
        path.unlink(missing_ok=True)
        raise


# -- the whole run -----------------------------------------------------------------------


def run(
    rows: AdjudicatedAlerts,
    out: Path,
    *,
    source: str,
    folds: int = 3,
    seed: int = 7,
    version: str | None = None,
    report_dir: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Evaluate, export, register ``alarm-actionability@version`` under ``out`` (not
    promoted: ``vitalstream models promote alarm-actionability VERSION --shadow``), write
    its report and figures beside it (and into ``report_dir`` too when given)."""
    from models.train import code_version

    if len(rows) == 0:
        raise ValueError(
            "no adjudicated alarms to learn from (acknowledgements with a verdict, raised "
            f"by a window); left out: {rows.left_out}"
        )
    result = evaluate(rows, folds=folds, seed=seed, progress=progress)
    channels = result.channels
    x_all = normalize(rows.x(channels), result.stats)
    created = now()
    version = version or created.strftime("%Y.%m.%d-%H%M%S")
    n_test_patients = len(set(np.asarray(rows.patients)[result.test]))
    n_train_patients = len(set(np.asarray(rows.patients)[result.train]))
    metrics: dict[str, Any] = {
        "model": "GradientBoostingClassifier(200 trees, depth 3, lr 0.05, subsample 0.8)",
        "recall_target": RECALL_TARGET,
        "held_out_test": {name: _rounded(result.held_out[name]) for name in SCORERS},
        "cv_folds": [{name: _rounded(fold[name]) for name in SCORERS} for fold in result.folds],
        "thresholds_from_training_folds": {k: round(v, 6) for k, v in result.thresholds.items()},
        "split": {
            "training_patients": n_train_patients,
            "held_out_patients": n_test_patients,
            "training_alarms": len(result.train),
            "held_out_alarms": len(result.test),
            "folds": len(result.folds),
        },
        "left_out": dict(rows.left_out),
        "verdicts_by_kind": verdict_counts(rows),
        "source": source,
    }
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        parity = export(result.model, onnx_path, x_all)
        metrics["onnx_parity_max_abs_diff"] = parity
        card = ModelCard(
            name=NAME,
            version=version,
            created=created,
            description=DESCRIPTION,
            inputs=[
                ModelInput(
                    name=INPUT_NAME,
                    kind="alert",
                    shape=[-1, len(channels)],
                    fs=1.0 / HOP_S,
                    window_s=WINDOW_S,
                    channels=list(channels),
                )
            ],
            outputs=[OUTPUT_NAME],
            classes=[ACTIONABLE],
            thresholds={ACTIONABLE: float(np.clip(result.thresholds["model"], 0.0, 1.0))},
            normalization={INPUT_NAME: result.stats},
            metrics=metrics,
            training_data=TrainingData(
                description=f"{rows.describe()}; {source}; split by patient", sha256=rows.sha256()
            ),
            code_version=code_version(),
            onnx_sha256="0" * 64,  # write_version fills it in from the file
        )
        target = write_version(Path(out), card, onnx_path)
    figure = plot(result, target / "actionability.png")
    report = write_report(target / "report.md", card, result, rows, figure.name)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        plot(result, report_dir / "alarm-actionability.png")
        write_report(
            report_dir / "alarm-actionability.md", card, result, rows, "alarm-actionability.png"
        )
    del report
    return target


def _rounded(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


# -- figure and report -------------------------------------------------------------------


def plot(result: Evaluation, path: Path) -> Path:
    """Held-out patients: suppression of non-actionable alarms against recall of actionable
    ones (each scorer's curve, its training-fold threshold marked), and ROC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    y = result.y_test
    # Curves often coincide (a perfect scorer and a perfect baseline): styles tell them apart.
    styles = dict(zip(SCORERS, ("-", "--", "-.", ":"), strict=True))
    widths = dict(zip(SCORERS, (3.5, 2.5, 1.8, 1.5), strict=True))
    for name in SCORERS:
        p = result.test_scores[name]
        recall, suppressed = suppression_curve(y, p)
        style = {"linestyle": styles[name], "linewidth": widths[name]}
        m = result.held_out[name]
        if name == "always actionable":  # one operating point: keep everything
            left.plot(m["recall"], m["suppressed_share_of_non_actionable"], "o", label=name)
            continue
        line = left.step(recall, suppressed, where="post", label=name, **style)[0]
        left.plot(m["recall"], m["suppressed_share_of_non_actionable"], "o", color=line.get_color())
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            right.plot(fpr, tpr, label=f"{name} AUC {roc_auc_score(y, p):.3f}", **style)
    left.axvline(RECALL_TARGET, color="grey", linestyle=":", linewidth=1)
    left.set(
        xlabel="recall of actionable alarms (kept)",
        ylabel="share of non-actionable alarms suppressed",
        title="held-out patients (dots: thresholds from training folds)",
        xlim=(0.8, 1.005),
        ylim=(-0.02, 1.02),
    )
    left.legend(fontsize=8, loc="lower left")
    right.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    right.set(
        xlabel="1 - specificity (non-actionable kept)",
        ylabel="sensitivity (actionable kept)",
        title="ROC, held-out patients",
    )
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(
    path: Path,
    card: ModelCard,
    result: Evaluation,
    rows: AdjudicatedAlerts,
    figure: str,
) -> Path:
    """The Markdown report: data, what was left out, held-out results, CV spread, export."""
    m = card.metrics
    split = m["split"]
    features = sum(not c.startswith((MISSING, KIND, PRIORITY)) for c in result.channels)
    lines = [
        f"# {card.ref}: alarm actionability from clinicians' verdicts",
        "",
        f"Trained {card.created.isoformat(timespec='seconds')} with code {card.code_version}. "
        "Runs in **shadow** only: the worker scores each triggered alert and writes "
        "`alert_actionability` (probability, threshold, would_suppress); no alert is "
        "changed or suppressed.",
        "",
        "## Data",
        "",
        f"- Source: {m['source']}",
        f"- {rows.describe()}; label: verdict `actionable` = 1, `not_actionable` and "
        "`artefact` = 0.",
        "- Left out: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["left_out"].items())
        + ". Alarms nobody acknowledged have no verdict and are not guessed.",
        f"- Split by patient: {split['held_out_patients']} held-out patients "
        f"({split['held_out_alarms']} alarms), {split['training_patients']} training patients "
        f"({split['training_alarms']} alarms) in {split['folds']} patient-wise folds.",
        "",
        "Verdicts by alert kind (all rows):",
        "",
        "| kind | actionable | not actionable | artefact |",
        "|---|---|---|---|",
    ]
    for kind, counts in m["verdicts_by_kind"].items():
        lines.append(
            f"| {kind} | {counts.get('actionable', 0)} | {counts.get('not_actionable', 0)} | "
            f"{counts.get('artefact', 0)} |"
        )
    lines += [
        "",
        "## Held-out patients",
        "",
        f"Threshold per scorer, from the *training* patients' out-of-fold scores: of the "
        f"thresholds keeping ≥ {RECALL_TARGET:.0%} of their actionable alarms, those "
        "suppressing the most form an interval, and its middle is taken; applied unchanged "
        "here. Suppressed: alarms scored below it.",
        "",
        "| scorer | AUROC | recall of actionable | actionable suppressed | "
        "non-actionable suppressed | threshold |",
        "|---|---|---|---|---|---|",
    ]
    for name in SCORERS:
        h = m["held_out_test"][name]
        lines.append(
            f"| {name} | {_fmt(h['auroc'])} | {_fmt(h['recall'])} | "
            f"{h['actionable_suppressed']} of {h['actionable']} | "
            f"{h['non_actionable_suppressed']} of {h['non_actionable']} "
            f"({_pct(h['suppressed_share_of_non_actionable'])}) | {h['threshold']:.4f} |"
        )
    lines += [
        "",
        f"![suppression against recall, and ROC, on held-out patients]({figure})",
        "",
        "## Cross-validation on training patients",
        "",
        "Per fold (patient-wise), suppression at a threshold chosen on that fold itself: an "
        "optimistic operating point, shown for the spread across folds only.",
        "",
        "| scorer | AUROC (mean ± sd) | non-actionable suppressed (mean ± sd) |",
        "|---|---|---|",
    ]
    for name in SCORERS:
        auroc = _spread([f[name]["auroc"] for f in m["cv_folds"]])
        share = _spread([f[name]["suppressed_share_of_non_actionable"] for f in m["cv_folds"]])
        lines.append(f"| {name} | {auroc} | {share} |")
    lines += [
        "",
        "## Model and export",
        "",
        f"- {m['model']} on {len(result.channels)} inputs: {features} window features, "
        "their missing flags, kind and priority one-hot (stream/scoring/actionability.py "
        "builds the row, in training and in the worker alike); normalization from training "
        "patients.",
        f"- ONNX (skl2onnx TreeEnsembleClassifier): max |onnxruntime - scikit-learn| = "
        f"{m['onnx_parity_max_abs_diff']:.2e} on {len(rows)} rows (limit "
        f"{PARITY_TOLERANCE:.0e}).",
        f"- Threshold on the card: {card.thresholds[ACTIONABLE]:.4f}.",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.1%}"


def _spread(values: Sequence[float]) -> str:
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if finite.size == 0:
        return "n/a"
    return f"{finite.mean():.3f} ± {finite.std():.3f}"
