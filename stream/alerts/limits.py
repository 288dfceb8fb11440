"""The limit table: each vital sign's normal range, a more urgent limit beyond it, and the
check of one reading against them.

Pure code. Every limit is inclusive: a value exactly at the limit alerts (tachycardia at
120 bpm, desaturation at 91 %). A value past the limit by less than the hysteresis margin
yields a sustain-only condition: it keeps an active alert alive but never starts one.
Limits are :class:`~stream.config.RuleSettings` field names, so a patient's threshold
overrides (``Profile.thresholds``) apply to them. How far the reading is trusted
(:class:`~stream.alerts.trust.Trust`) then bounds the condition.

>>> from stream.config import RuleSettings
>>> from stream.alerts.trust import Reading, Trust
>>> [fast] = checked(Reading(120.0, "ecg", Trust.GOOD), RuleSettings(), TACHYCARDIA)
>>> fast.kind, fast.priority, fast.sustain_only, fast.message
('tachycardia', 'medium', False, 'Heart rate 120 bpm (ecg) ≥ 120')
>>> [held] = checked(Reading(116.0, "ecg", Trust.GOOD), RuleSettings(), TACHYCARDIA)
>>> held.sustain_only  # inside the limit, not past the 5 bpm hysteresis margin
True
>>> checked(Reading(114.0, "ecg", Trust.GOOD), RuleSettings(), TACHYCARDIA)
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.alerts.conditions import Category, Condition, finite_values
from stream.alerts.trust import Reading, apply_trust
from stream.config import RuleSettings
from stream.records import AlertKind, Priority


@dataclass(frozen=True, slots=True)
class Limit:
    """One side of a vital sign's normal range, with a more urgent limit beyond it.

    ``limit``, ``urgent`` and ``hysteresis`` name :class:`RuleSettings` fields, so the
    specs below are built once and per-patient overrides still apply.
    """

    kind: AlertKind
    above: bool
    limit: str
    urgent: str
    hysteresis: str
    label: str
    unit: str
    value_name: str
    priority: Priority = "medium"
    urgent_priority: Priority = "high"
    category: Category = "physiological"

    def check(self, reading: Reading, rules: RuleSettings) -> Condition | None:
        value = reading.value
        limit: float = getattr(rules, self.limit)
        margin: float = getattr(rules, self.hysteresis)
        # Signed so that "beyond" is always "greater": most windows leave here.
        sign = 1.0 if self.above else -1.0
        excess = sign * (value - limit)
        if excess < -margin:
            return None
        if excess >= 0:
            urgent = sign * (value - getattr(rules, self.urgent)) >= 0
            priority = self.urgent_priority if urgent else self.priority
        else:
            priority = self.priority
        relation = "≥" if self.above else "≤"
        condition = Condition(
            kind=self.kind,
            category=self.category,
            priority=priority,
            values=finite_values(**{self.value_name: value, "limit": limit}),
            source=f"rule:{self.kind}@1",
            message=f"{self.label} {value:.4g} {self.unit} ({reading.source}) {relation} {limit:g}",
            sustain_only=excess < 0,
        )
        return apply_trust(condition, reading.trust, rules)


def checked(reading: Reading, rules: RuleSettings, *limits: Limit) -> list[Condition]:
    """The conditions ``reading`` shows against ``limits``, in their order."""
    return [c for limit in limits if (c := limit.check(reading, rules)) is not None]


def _hr_limit(kind: AlertKind, above: bool, limit: str, urgent: str) -> Limit:
    return Limit(kind, above, limit, urgent, "hr_hysteresis_bpm", "Heart rate", "bpm", "hr_bpm")


def _resp_limit(kind: AlertKind, above: bool, limit: str, urgent: str) -> Limit:
    return Limit(
        kind, above, limit, urgent, "resp_hysteresis_rpm", "Respiration rate", "/min", "resp_rpm"
    )


def _spo2_limit(limit: str, urgent: str) -> Limit:
    return Limit(
        "desaturation", False, limit, urgent, "spo2_hysteresis_pct", "SpO2", "%", "spo2_pct"
    )


def _temp_limit(kind: AlertKind, above: bool, limit: str, urgent: str, **priorities: Any) -> Limit:
    return Limit(
        kind, above, limit, urgent, "temp_hysteresis_c", "Temperature", "°C", "temp_c", **priorities
    )


# 120/50 bpm are common adult bedside-monitor defaults; the urgent low limit is where
# NEWS2 pulse scores 3 (RCP 2017: <= 40).
TACHYCARDIA = _hr_limit("tachycardia", True, "tachycardia_bpm", "tachycardia_high_bpm")
BRADYCARDIA = _hr_limit("bradycardia", False, "bradycardia_bpm", "bradycardia_high_bpm")
# NEWS2 (RCP 2017) scores 3 at SpO2 <= 91 % on scale 1 and <= 83 % on scale 2.
DESATURATION = _spo2_limit("desaturation_pct", "desaturation_high_pct")
DESATURATION_SCALE2 = _spo2_limit("desaturation_scale2_pct", "desaturation_scale2_high_pct")
# NEWS2 (RCP 2017) scores 3 at a respiration rate >= 25 or <= 8 /min.
TACHYPNOEA = _resp_limit("tachypnoea", True, "tachypnoea_rpm", "tachypnoea_high_rpm")
BRADYPNOEA = _resp_limit("bradypnoea", False, "bradypnoea_rpm", "bradypnoea_high_rpm")
# NEWS2 (RCP 2017) temperature: >= 38.1 °C scores 1, >= 39.1 scores 2, <= 35.0 scores 3.
FEVER = _temp_limit(
    "fever", True, "fever_c", "fever_high_c", priority="low", urgent_priority="medium"
)
HYPOTHERMIA = _temp_limit("hypothermia", False, "hypothermia_c", "hypothermia_high_c")
LOW_BATTERY = Limit(
    "low_battery", False, "low_battery_pct", "low_battery_high_pct", "battery_hysteresis_pct",
    "Battery", "%", "battery_pct", priority="low", urgent_priority="medium", category="technical",
)  # fmt: skip
