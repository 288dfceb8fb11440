"""Why a model scored a window high: occlusion attribution with the ONNX model.

Torch-free (the stream calls it when a model raises an alert). Each time segment, and
for vitals models each feature, is replaced in turn by its training mean (which the
card's normalization maps to 0, the model's "nothing unusual") and the drop in the
class probability is that part's attribution. All occluded copies run as one batch,
so explaining a 10 s ECG window in 1 s segments costs one batched inference.

Example::

    explanation = explain(model, ecg_window, "af")
    explanation["segment_s"]  # [3.0, 4.0]: seconds into the window that mattered most
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.registry import LoadedModel


def _occlude_segments(window: np.ndarray, mean: np.ndarray, steps: int) -> np.ndarray:
    starts = range(0, window.shape[0], steps)
    batch = np.repeat(window[np.newaxis], len(starts), axis=0)
    for i, start in enumerate(starts):
        batch[i, start : start + steps] = mean
    return batch


def _occlude_features(window: np.ndarray, mean: np.ndarray) -> np.ndarray:
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
    if spec.kind == "vitals":
        features = _occlude_features(window, mean)
    else:
        features = np.empty((0, *window.shape), dtype=np.float32)
    batch = np.concatenate([window[np.newaxis], segments, features])
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
    if spec.kind == "vitals":
        feature_drop = score - scores[1 + len(segments) :]
        ranked = np.argsort(-feature_drop)[:top_k]
        explanation["top_features"] = [
            {
                "name": spec.channels[i],
                "value": _rounded(_last_finite(window[:, i])),
                "attribution": round(float(feature_drop[i]), 4),
            }
            for i in ranked
        ]
    return explanation


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)
