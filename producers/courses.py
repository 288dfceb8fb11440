"""Vitals courses: the deterioration model's training data.

Pure numpy, one patient at a time, independent of the live fleet's
:mod:`producers.physiology`. :func:`simulate_vitals` gives per-10 s vitals where stable
patients wander around their baseline and deteriorating ones drift towards tachycardia,
tachypnoea, fever and desaturation (a sepsis-like course) from a random onset; activity
bursts raise heart rate in everyone, the confound a threshold rule trips on. Read by
``models.dataset.deterioration_windows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VitalsCourse:
    """One patient's per-10 s vitals and, per step, whether they are deteriorating."""

    patient: str
    values: np.ndarray  # [steps, len(VITALS_SIMULATED)]
    deteriorating: np.ndarray  # [steps] bool


VITALS_SIMULATED = ("hr", "spo2", "resp", "temp", "rr_irregularity", "activity_g")


def simulate_vitals(patient: str, steps: int, seed: int, deteriorates: bool) -> VitalsCourse:
    """Vitals at 0.1 Hz; a deteriorating course ramps over 20-60 min from a random onset."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [
            rng.uniform(60, 95),
            rng.uniform(95, 99),
            rng.uniform(12, 18),
            rng.uniform(36.3, 37.2),
            rng.uniform(0.02, 0.08),
            rng.uniform(0.0, 0.15),
        ]
    )
    noise = np.array([2.5, 0.7, 1.2, 0.05, 0.015, 0.05])
    # Slow random walks so stable patients drift too (the negative class is not flat).
    walk = np.cumsum(rng.normal(0, 1, (steps, base.size)), axis=0) * noise * 0.15
    values = base + walk + rng.normal(0, 1, (steps, base.size)) * noise
    ramp = np.zeros(steps)
    if deteriorates:
        onset = int(rng.integers(steps // 6, steps // 2))
        duration = int(rng.integers(120, 360))
        ramp = np.clip((np.arange(steps) - onset) / duration, 0, 1)
        severity = rng.uniform(0.5, 1.0)
        drift = np.array([35, -8, 12, 1.8, 0.05, -0.05]) * severity
        values = values + ramp[:, None] * drift
    # Activity bursts raise heart rate in everyone: the confound a threshold rule trips on.
    for _ in range(int(rng.integers(1, 5))):
        start = int(rng.integers(0, steps - 30))
        length = int(rng.integers(6, 30))
        values[start : start + length, 0] += rng.uniform(15, 35)
        values[start : start + length, 2] += rng.uniform(3, 8)
        values[start : start + length, 5] += rng.uniform(0.3, 0.8)
    values[:, 1] = np.clip(values[:, 1], 70, 100)
    values[:, 5] = np.clip(values[:, 5], 0, None)
    dropout = rng.random(values.shape) < 0.03
    values[dropout] = np.nan
    return VitalsCourse(patient, values.astype(np.float32), ramp > 0.25)
