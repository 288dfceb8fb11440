"""Windows and helpers the alert-rule tests share: a calm, well-measured adult's features,
and :func:`run`, which judges one window with :func:`stream.alerts.rules.evaluate`."""

from __future__ import annotations

import math
from typing import Any

from stream.alerts.conditions import Condition
from stream.alerts.rules import ModelScores, evaluate
from stream.config import RuleSettings
from stream.records import PatientContext, Profile

RULES = RuleSettings()
NAN = math.nan


def context(**profile: object) -> PatientContext:
    return PatientContext(device_id="dev-1", patient="p-1", ward="A", profile=Profile(**profile))


def quiet_features(**changes: float) -> dict[str, float]:
    """A calm, well-measured adult: no rule should fire."""
    features = {
        "ecg_hr_bpm": 72.0, "ppg_hr_bpm": 72.0, "hr_device": 72.0, "rr_mean_s": 0.83,
        "rr_cv": 0.03, "rmssd_ms": 30.0, "pnn50": 0.1, "rr_irregularity": 0.02,
        "ectopic_fraction": 0.0, "resp_rate": 16.0, "spo2": 97.0, "spo2_slope": 0.0,
        "temp": 36.8, "temp_slope": 0.0, "activity_g": 0.01, "impact_g": 1.02, "still": 1.0,
        "ecg_sqi": 0.9, "ppg_sqi": 0.9, "ecg_lead_off": 0.0, "ecg_flat": 0.0,
        "ecg_saturated": 0.0, "motion": 0.0, "battery": 80.0, "posture_change_deg": 2.0,
        "rr_irregularity_lag2": 0.02, "run_rate_bpm": 75.0,
    }  # fmt: skip
    features.update(changes)
    if "rr_irregularity_lag2" not in changes:  # irregular beats are irregularly irregular
        features["rr_irregularity_lag2"] = features["rr_irregularity"]
    if "af_irregularity" not in changes:  # and not premature beats
        features["af_irregularity"] = features["rr_irregularity"]
    return features


def conditions_of(kind: str, conditions: list[Condition]) -> list[Condition]:
    return [c for c in conditions if c.kind == kind]


def run(
    features: dict[str, float],
    *,
    ctx: PatientContext | None = None,
    t: float = 100.0,
    rules: RuleSettings = RULES,
    **kwargs: Any,
) -> list[Condition]:
    return evaluate(ctx or context(), t, features, rules=rules, **kwargs).conditions


def rhythm_model(af: float, ventricular: float = 0.0) -> ModelScores:
    return ModelScores(
        name="rhythm",
        version="1.2.0",
        probabilities={"normal": 1 - af, "af": af, "ventricular": ventricular},
        thresholds={"normal": 0.5, "af": 0.7, "ventricular": 0.6},
        explanations={"af": {"segment_s": [3.0, 4.0]}},
    )


def fall_sequence(impact: float, still_from: float, moving_after: float | None = None) -> list:
    """Windows every second: an impact seen by the windows of t = 10..19, stillness from
    ``still_from``, movement again from ``moving_after``."""
    seen = []
    for t in range(0, 60):
        still = 1.0 if t >= still_from and (moving_after is None or t < moving_after) else 0.0
        seen.append(
            (float(t), quiet_features(impact_g=impact if 10 <= t < 20 else 1.0, still=still))
        )
    return seen
