"""Why a model scored a window high: occlusion attribution with the ONNX model.

Torch-free (the stream calls it when a model raises an alert). Each time segment, and
each input channel (vitals features; ECG, RR, ΔRR), is replaced in turn by its training
mean (which the card's normalization maps to 0, the model's "nothing unusual") and the
drop in the class probability is that part's attribution. All occluded copies run as
one batch, so explaining a 10 s ECG window in 1 s segments costs one batched inference.

:func:`explain_alerting` is the stream's entry point: it explains every class at or
above its threshold and adds the window's hand-made feature values a clinician would
check (heart rate, RR irregularity, ...), so an alert says what the model saw and where.

Example::

    explanation = explain(model, ecg_window, "af")
    explanation["segment_s"]  # [3.0, 4.0]: seconds into the window that mattered most
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from stream.scoring.registry import LoadedModel

# The stream's features (stream.signal.window.FEATURE_NAMES) that explain a rhythm score.
ECG_FEATURES = (
    "ecg_hr_bpm",
    "rr_mean_s",
    "rr_irregularity",
    "af_irregularity",
    "rr_cv",
    "rmssd_ms",
    "ectopic_fraction",
    "ecg_sqi",
)


def _occlude_segments(window: np.ndarray, mean: np.ndarray, steps: int) -> np.ndarray:
    starts = range(0, window.shape[0], steps)
    batch = np.repeat(window[np.newaxis], len(starts), axis=0)
    for i, start in enumerate(starts):
        batch[i, start : start + steps] = mean
    return batch


def _occlude_channels(window: np.ndarray, mean: np.ndarray) -> np.ndarray:
    batch = np.repeat(window[np.newaxis], window.shape[1], axis=0)
    for i in range(window.shape[1]):
        batch[i, :, i] = mean[i]
    return batch


def _last_finite(column: np.ndarray) -> float | None:
    finite = column[np.isfinite(column)]
    return float(finite[-1]) if finite.size else None


def explain(
    model: LoadedModel,
    window: np.ndarray,
    class_name: str,
    segment_s: float = 1.0,
    top_k: int = 3,
) -> dict[str, Any]:
    """Attribution of ``class_name``'s probability for one raw window ``[time, channels]``.

    Returns JSON-ready data for :attr:`stream.records.Alert.explanation`: the score, the
    most influential segment ``segment_s = [t0, t1]`` (seconds from the window start),
    per-segment attributions, and for vitals models the ``top_features`` with their
    latest values.
    """
    if class_name not in model.card.classes:
        raise ValueError(f"{model.ref} has no class {class_name!r}")
    spec = model.card.inputs[0]
    window = np.asarray(window, dtype=np.float32)
    if window.ndim != 2 or window.shape[1] != len(spec.channels):
        raise ValueError(f"expected one window [time, {len(spec.channels)}], got {window.shape}")
    mean = np.asarray(model.card.normalization[spec.name].mean, dtype=np.float32)
    steps = max(1, round(segment_s * spec.fs))

    segments = _occlude_segments(window, mean, steps)
    if window.shape[1] > 1:
        channels = _occlude_channels(window, mean)
    else:
        channels = np.empty((0, *window.shape), dtype=np.float32)
    batch = np.concatenate([window[np.newaxis], segments, channels])
    scores = model.predict(batch)[class_name]
    score = float(scores[0])
    segment_drop = score - scores[1 : 1 + len(segments)]
    best = int(np.argmax(segment_drop))
    t0 = best * steps / spec.fs
    t1 = min(window.shape[0], (best + 1) * steps) / spec.fs
    explanation: dict[str, Any] = {
        "model": model.ref,
        "class": class_name,
        "score": round(score, 4),
        "segment_s": [round(t0, 3), round(t1, 3)],
        "segment_attribution": [round(float(d), 4) for d in segment_drop],
        "method": f"occlusion, {steps / spec.fs:g} s segments, training-mean baseline",
    }
    channel_drop = score - scores[1 + len(segments) :]
    if len(channel_drop):
        explanation["channel_attribution"] = {
            name: round(float(d), 4) for name, d in zip(spec.channels, channel_drop, strict=True)
        }
    if spec.kind == "vitals":
        ranked = np.argsort(-channel_drop)[:top_k]
        explanation["top_features"] = [
            {
                "name": spec.channels[i],
                "value": _rounded(_last_finite(window[:, i])),
                "attribution": round(float(channel_drop[i]), 4),
            }
            for i in ranked
        ]
    return explanation


def explain_alerting(
    model: LoadedModel,
    window: np.ndarray,
    probabilities: Mapping[str, float],
    features: Mapping[str, float],
    segment_s: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Explanations of the classes whose probability reached the card's threshold.

    ``window`` is the model input the score came from (``[time, channels]``, raw values)
    and ``features`` the window's ``stream.signal.features`` values; each explanation carries
    the relevant ones under ``features`` (finite values only). Classes below threshold
    cost nothing, so the stream can call this for every scored window.
    """
    alerting = [
        name
        for name, p in probabilities.items()
        if name in model.card.thresholds and math.isfinite(p) and p >= model.card.thresholds[name]
    ]
    if not alerting:
        return {}
    spec = model.card.inputs[0]
    names = ECG_FEATURES if spec.kind == "ecg" else spec.channels
    values = {
        name: rounded
        for name in names
        if (rounded := _rounded(_as_float(features.get(name)))) is not None
    }
    explained = {}
    for name in alerting:
        explanation = explain(model, window, name, segment_s=segment_s)
        explanation["features"] = values
        explained[name] = explanation
    return explained


def _as_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)
