"""What the alert rules report: a :class:`Condition` per kind seen in a window, and the
families in which alerts of different kinds compete for attention.

Pure code: :mod:`stream.alerts.rules`, :mod:`stream.alerts.limits` and
:mod:`stream.alerts.fall` produce conditions; :class:`stream.alerts.lifecycle.AlertTracker`
turns them into alert events. Kinds are the vocabulary :data:`stream.records.AlertKind`.

>>> family_of("bradycardia"), family_of("fall")
('heart_rate', 'fall')
>>> sorted(RHYTHM_KINDS)
['af', 'ventricular_run']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from stream.records import AlertKind, Priority

Category = Literal["physiological", "technical"]

# Kinds named by more than one module (the silence check raises it, the tracker resolves
# it on the next window): one spelling.
DEVICE_SILENT: AlertKind = "device_silent"

# Kinds that compete for attention: within a family only the highest-priority alert
# sounds (stream/alerts/lifecycle.py). A kind not listed is its own family.
FAMILY: dict[AlertKind, str] = {
    "tachycardia": "heart_rate",
    "bradycardia": "heart_rate",
    "af": "rhythm",
    "ventricular_run": "rhythm",
    "tachypnoea": "respiration",
    "bradypnoea": "respiration",
    "fever": "temperature",
    "hypothermia": "temperature",
    "sensor_detached": "signal",
    "poor_signal": "signal",
}
# Rhythm kinds read beat-to-beat detail of the ECG: its quality bounds their trust,
# whether a rule or a model raises them (stream.alerts.trust.rhythm_trust).
RHYTHM_KINDS: frozenset[AlertKind] = frozenset(
    kind for kind, family in FAMILY.items() if family == "rhythm"
)


def family_of(kind: str) -> str:
    return FAMILY.get(kind, kind)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Condition:
    """Something a rule or model sees in one window; the tracker turns it into alerts.

    ``sustain_only``: the value is back inside the limit but not past the hysteresis
    margin, or is currently untrustworthy; it keeps an active alert from resolving and
    never triggers one. ``begins_onset``: a sustain-only condition that may nevertheless
    begin a pending alert's onset wait (an AF the rhythm model calls on a trusted ECG
    before the RR intervals confirm it; a good resting ECG's heart rate past a limit
    that the other sources' vote set aside; see ``stream.alerts.lifecycle``); the alert
    still triggers only on a condition that is not sustain-only.
    """

    kind: AlertKind
    category: Category
    priority: Priority
    values: dict[str, float]
    source: str
    message: str
    sustain_only: bool = False
    explanation: dict[str, Any] | None = None
    begins_onset: bool = False


def finite_values(**values: float) -> dict[str, float]:
    """``Condition.values``, rounded, without what was not measured.

    >>> finite_values(hr_bpm=131.23456, spo2_pct=float("nan"))
    {'hr_bpm': 131.2346}
    """
    # Alert.values refuses nan/inf: drop what was not measured.
    return {k: round(float(v), 4) for k, v in values.items() if math.isfinite(v)}
