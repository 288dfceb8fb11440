"""Alarm actionability: an alert and the window features around it → one model input row.

Owns the contract between ``vitalstream train alarm-actionability`` (models/actionability.py)
and the worker's shadow scoring of alerts (:meth:`stream.scoring.scorer.Scorer.score_alerts`):
the row a triggered alert becomes, and the ``alert_actionability`` line its score becomes.
Pure: plain values and numpy in, arrays and strings out; no model, no I/O.

A model that scores alerts names its one input with ``kind: "alert"`` on its card, shape
``[-1, channels]``. Its channels say how the row is built, in order:

- a feature name of :data:`stream.signal.window.FEATURE_NAMES`: the value the window that
  raised the alert computed (what the worker wrote to the ``features`` and ``quality``
  measurements at the alert's time), nan when missing (the card's normalization then
  imputes the training mean);
- ``missing=<feature>``: 1 when that feature is missing (nan), else 0. Imputation hides
  that a value was missing, and missing values say something here (no heart rate from a
  detached lead, no SpO2 from a moving finger);
- ``kind=<alert kind>`` and ``priority=<priority>``: the alert's one-hot kind and priority
  (an alert of a kind the model never saw has all ``kind=`` channels 0).

>>> channels = default_channels(kinds=("tachycardia", "fall"), features=("ecg_hr_bpm", "motion"))
>>> channels  # doctest: +NORMALIZE_WHITESPACE
('ecg_hr_bpm', 'motion', 'missing=ecg_hr_bpm', 'missing=motion', 'kind=tachycardia',
 'kind=fall', 'priority=low', 'priority=medium', 'priority=high')
>>> alert_row(channels, {"ecg_hr_bpm": 142.0}, "tachycardia", "medium").tolist()
[142.0, nan, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]

An alert whose score is below the card's threshold for :data:`ACTIONABLE` is one the model
*would* suppress; in shadow nothing is suppressed, the line only says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from stream.records import ALERT_KINDS, PRIORITY_RANK, Alert
from stream.signal.window import FEATURE_NAMES
from stream.sinks.lines import line

# The one class such a model scores: the probability that a clinician would call the
# alert actionable (verdict ``actionable``; ``not_actionable`` and ``artefact`` are not).
ACTIONABLE = "actionable"
# The measurement the shadow scores go to (tags as ``alerts``, plus model and version).
MEASUREMENT = "alert_actionability"
PRIORITIES: tuple[str, ...] = tuple(sorted(PRIORITY_RANK, key=PRIORITY_RANK.__getitem__))
MISSING = "missing="
KIND = "kind="
PRIORITY = "priority="


def default_channels(
    kinds: Sequence[str] = ALERT_KINDS,
    priorities: Sequence[str] = PRIORITIES,
    features: Sequence[str] = FEATURE_NAMES,
) -> tuple[str, ...]:
    """Features, their missing flags, the kind one-hot, the priority one-hot."""
    return (
        tuple(features)
        + tuple(f"{MISSING}{name}" for name in features)
        + tuple(f"{KIND}{kind}" for kind in kinds)
        + tuple(f"{PRIORITY}{priority}" for priority in priorities)
    )


@lru_cache(maxsize=16)
def _plan(channels: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each channel as (what, name): what is ``feature``, ``missing``, ``kind`` or
    ``priority``; parsed once per card."""
    plan = []
    for channel in channels:
        for prefix, what in ((MISSING, "missing"), (KIND, "kind"), (PRIORITY, "priority")):
            if channel.startswith(prefix):
                plan.append((what, channel[len(prefix) :]))
                break
        else:
            plan.append(("feature", channel))
    return tuple(plan)


def _value(features: Mapping[str, float], name: str) -> float:
    value = features.get(name)
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def alert_row(
    channels: Sequence[str], features: Mapping[str, float], kind: str, priority: str
) -> np.ndarray:
    """One alert's input row ``[channels]`` (float32; see the module doc)."""
    row = np.empty(len(channels), dtype=np.float32)
    for i, (what, name) in enumerate(_plan(tuple(channels))):
        if what == "feature":
            row[i] = _value(features, name)
        elif what == "missing":
            row[i] = float(math.isnan(_value(features, name)))
        elif what == "kind":
            row[i] = float(kind == name)
        else:
            row[i] = float(priority == name)
    return row


def alert_rows(
    channels: Sequence[str], alerts: Sequence[tuple[Mapping[str, float], str, str]]
) -> np.ndarray:
    """``[alerts, channels]`` for (features, kind, priority) of each alert.

    >>> alert_rows(("spo2", "kind=fall"), [({"spo2": 91.0}, "fall", "high")]).tolist()
    [[91.0, 1.0]]
    >>> alert_rows(("spo2",), []).shape
    (0, 1)
    """
    if not alerts:
        return np.empty((0, len(channels)), dtype=np.float32)
    return np.stack([alert_row(channels, f, kind, priority) for f, kind, priority in alerts])


def would_suppress(probability: float, threshold: float) -> bool:
    """Whether the model would suppress an alert: its actionable probability is below the
    card's threshold (chosen so that ≥ 99 % of actionable alerts stay at or above it).

    >>> would_suppress(0.02, 0.05), would_suppress(0.05, 0.05)
    (True, False)
    """
    return probability < threshold


def actionability_line(
    alert: Alert, model: str, version: str, probability: float, threshold: float
) -> str | None:
    """``alert_actionability``: a shadow model's score of one triggered alert.

    Tags: those of the alert's ``alerts`` point (``ward``, ``patient``, ``device``,
    ``kind``, ``priority``, ``category``) plus ``model`` and ``version``. Fields:
    ``alert_id`` (string), ``probability`` (of actionable) and ``threshold`` (floats),
    ``would_suppress`` (boolean: probability below threshold). At the alert's ``t_event``,
    the time of its ``triggered`` point, so the two join on ``alert_id``.

    >>> alert = Alert(alert_id="a1", event="triggered", kind="tachycardia",
    ...     category="physiological", priority="medium", patient="p-1", ward="w7",
    ...     device_id="d1", t_onset=100.0, t_event=102.0, window=(92.0, 102.0),
    ...     source="hr_high")
    >>> print(actionability_line(alert, "alarm-actionability", "1", 0.03, 0.05))
    ... # doctest: +NORMALIZE_WHITESPACE
    alert_actionability,category=physiological,device=d1,kind=tachycardia,model=alarm-actionability,patient=p-1,priority=medium,version=1,ward=w7
    alert_id="a1",probability=0.03,threshold=0.05,would_suppress=true 102000000000
    """
    tags = {
        "ward": alert.ward,
        "patient": alert.patient,
        "device": alert.device_id,
        "kind": alert.kind,
        "priority": alert.priority,
        "category": alert.category,
        "model": model,
        "version": version,
    }
    fields = {
        "alert_id": alert.alert_id,
        "probability": float(probability),
        "threshold": float(threshold),
        "would_suppress": would_suppress(probability, threshold),
    }
    return line(MEASUREMENT, tags, fields, alert.t_event)
