"""The limit table: each kind fires at its limit and not just inside it; urgent limits."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.unit.stream.alerts.harness import RULES, conditions_of, context, quiet_features, run


@dataclass(frozen=True)
class LimitCase:
    kind: str
    features: tuple[str, ...]
    above: bool
    limit: str
    urgent: str
    hysteresis: str
    priority: str
    urgent_priority: str
    category: str = "physiological"


LIMIT_CASES = [
    LimitCase("tachycardia", ("ecg_hr_bpm", "ppg_hr_bpm", "hr_device"), True, "tachycardia_bpm",
              "tachycardia_high_bpm", "hr_hysteresis_bpm", "medium", "high"),
    LimitCase("bradycardia", ("ecg_hr_bpm", "ppg_hr_bpm", "hr_device"), False, "bradycardia_bpm",
              "bradycardia_high_bpm", "hr_hysteresis_bpm", "medium", "high"),
    LimitCase("desaturation", ("spo2",), False, "desaturation_pct", "desaturation_high_pct",
              "spo2_hysteresis_pct", "medium", "high"),
    LimitCase("tachypnoea", ("resp_rate",), True, "tachypnoea_rpm", "tachypnoea_high_rpm",
              "resp_hysteresis_rpm", "medium", "high"),
    LimitCase("bradypnoea", ("resp_rate",), False, "bradypnoea_rpm", "bradypnoea_high_rpm",
              "resp_hysteresis_rpm", "medium", "high"),
    LimitCase("fever", ("temp",), True, "fever_c", "fever_high_c", "temp_hysteresis_c",
              "low", "medium"),
    LimitCase("hypothermia", ("temp",), False, "hypothermia_c", "hypothermia_high_c",
              "temp_hysteresis_c", "medium", "high"),
    LimitCase("low_battery", ("battery",), False, "low_battery_pct", "low_battery_high_pct",
              "battery_hysteresis_pct", "low", "medium", "technical"),
]  # fmt: skip


def limit_window(case: LimitCase, value: float) -> dict[str, float]:
    return quiet_features(**dict.fromkeys(case.features, value))


def outward(case: LimitCase, amount: float) -> float:
    """The limit moved ``amount`` further into the abnormal range (negative: back inside)."""
    limit = getattr(RULES, case.limit)
    return limit + amount if case.above else limit - amount


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda c: c.kind)
def test_fires_exactly_at_the_limit(case: LimitCase) -> None:
    [condition] = conditions_of(case.kind, run(limit_window(case, outward(case, 0.0))))
    assert not condition.sustain_only
    assert condition.priority == case.priority
    assert condition.category == case.category
    assert condition.source == f"rule:{case.kind}@1"
    assert condition.values["limit"] == getattr(RULES, case.limit)


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda c: c.kind)
def test_just_inside_the_limit_only_sustains(case: LimitCase) -> None:
    [condition] = conditions_of(case.kind, run(limit_window(case, outward(case, -0.01))))
    assert condition.sustain_only


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda c: c.kind)
def test_past_the_hysteresis_margin_nothing(case: LimitCase) -> None:
    margin = getattr(RULES, case.hysteresis)
    assert conditions_of(case.kind, run(limit_window(case, outward(case, -margin - 0.01)))) == []
    [held] = conditions_of(case.kind, run(limit_window(case, outward(case, -margin))))
    assert held.sustain_only


@pytest.mark.parametrize("case", LIMIT_CASES, ids=lambda c: c.kind)
def test_urgent_limit_raises_priority(case: LimitCase) -> None:
    urgent = getattr(RULES, case.urgent)
    nudge = -0.01 if case.above else 0.01
    [at] = conditions_of(case.kind, run(limit_window(case, urgent)))
    [short] = conditions_of(case.kind, run(limit_window(case, urgent + nudge)))
    assert at.priority == case.urgent_priority
    assert short.priority == case.priority


def test_desaturation_uses_scale2_limits_for_hypercapnic_patients() -> None:
    scale2 = context(spo2_scale=2)
    limit = RULES.desaturation_scale2_pct
    assert conditions_of("desaturation", run(quiet_features(spo2=limit + 3), ctx=scale2)) == []
    [fired] = conditions_of("desaturation", run(quiet_features(spo2=limit), ctx=scale2))
    assert not fired.sustain_only
    # The same value is an urgent desaturation on scale 1.
    assert conditions_of("desaturation", run(quiet_features(spo2=limit)))[0].priority == "high"
