"""A small synthetic ward of adjudicated alarms whose verdicts depend on the features.

Within each alert kind the verdict turns on what the window showed, so the alert kind
alone cannot separate actionable from non-actionable alarms (every kind has actionable
ones) while the window features can:

- ``tachycardia``: an artefact when the wearer moved (``motion`` 1, low ECG SQI);
- ``poor_signal``: actionable when the lead is off (``ecg_lead_off``), else an artefact;
- ``desaturation``: not actionable when the PPG quality is poor (a probe artefact);
- ``fall``: always actionable.

Used by the unit tests (rows in memory) and the integration test (written to InfluxDB as
the worker and the alert service write them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.adjudicated import TriggerRow, VerdictRow, join, to_us
from stream.records import Alert

START = 1_700_000_000.0
KINDS = {
    "tachycardia": ("medium", "physiological", 0.4),
    "poor_signal": ("low", "technical", 0.25),
    "desaturation": ("medium", "physiological", 0.2),
    "fall": ("high", "physiological", 0.15),
}


@dataclass
class Alarm:
    triggered: Alert
    features: dict[str, float]
    acknowledged: Alert | None  # None: never acknowledged


def _features(rng: np.random.Generator, moving: bool) -> dict[str, float]:
    return {
        "ecg_hr_bpm": float(rng.normal(85, 10)),
        "ppg_hr_bpm": float(rng.normal(85, 10)),
        "spo2": float(rng.normal(96, 1.5)),
        "resp_rate": float(rng.normal(16, 3)),
        "temp": float(rng.normal(36.8, 0.3)),
        "activity_g": float(rng.uniform(0.3, 1.2) if moving else rng.uniform(0.0, 0.05)),
        "impact_g": float(rng.uniform(0.0, 0.3)),
        "motion": float(moving),
        "ecg_sqi": float(rng.uniform(0.2, 0.6) if moving else rng.uniform(0.8, 1.0)),
        "ppg_sqi": float(rng.uniform(0.8, 1.0)),
        "ecg_lead_off": 0.0,
    }


def ward(
    patients: int = 60, alarms_per_patient: int = 6, seed: int = 0, start: float = START,
    acknowledged: float = 0.8,
) -> list[Alarm]:  # fmt: skip
    """``patients`` patients one after the other (an hour each), their alarms and verdicts."""
    rng = np.random.default_rng(seed)
    names = list(KINDS)
    shares = [KINDS[k][2] for k in names]
    alarms = []
    for p in range(patients):
        patient, device = f"p-{seed}-{p:03d}", f"d-{seed}-{p:03d}"
        t = start + p * 3600.0
        for i in range(alarms_per_patient):
            t = round(t + float(rng.uniform(60, 400)), 3)
            kind = str(rng.choice(names, p=shares))
            priority, category, _ = KINDS[kind]
            features = _features(rng, moving=bool(rng.random() < 0.4))
            verdict = "actionable"
            if kind == "tachycardia":
                features["ecg_hr_bpm"] = float(rng.normal(135, 10))
                if features["motion"]:
                    verdict = "artefact"
            elif kind == "poor_signal":
                if rng.random() < 0.3:
                    features["ecg_lead_off"] = 1.0
                    features["ecg_hr_bpm"] = math.nan
                else:
                    verdict = "artefact"
            elif kind == "desaturation":
                features["spo2"] = float(rng.normal(86, 2))
                if rng.random() < 0.35:
                    features["ppg_sqi"] = float(rng.uniform(0.1, 0.4))
                    verdict = "not_actionable"
            else:
                features["impact_g"] = float(rng.uniform(2.5, 5.0))
            triggered = Alert(
                alert_id=f"{patient}-{i}", event="triggered", kind=kind, category=category,
                priority=priority, patient=patient, ward="ward-s", device_id=device,
                t_onset=t - 5.0, t_event=t, window=(t - 10.0, t), source="synthetic",
            )  # fmt: skip
            ack = None
            if rng.random() < acknowledged:
                ack = triggered.model_copy(
                    update={
                        "event": "acknowledged", "t_event": t + 120.0,
                        "acknowledged_by": "nurse-1", "verdict": verdict,
                    }
                )  # fmt: skip
            alarms.append(Alarm(triggered, features, ack))
    return alarms


def rows(alarms: list[Alarm]):
    """The alarms as :func:`models.adjudicated.join` rows."""
    verdicts = [
        VerdictRow(a.alert_id, a.t_event, a.ward, a.patient, a.kind, a.priority, a.verdict)
        for a in (alarm.acknowledged for alarm in alarms)
        if a is not None
    ]
    triggers = [
        TriggerRow(a.alert_id, to_us(a.t_event), a.ward, a.patient, a.device_id, a.kind,
                   a.priority)
        for a in (alarm.triggered for alarm in alarms)
    ]  # fmt: skip
    features = {
        (alarm.triggered.device_id, to_us(alarm.triggered.t_event)): alarm.features
        for alarm in alarms
    }
    return join(verdicts, triggers, features)
