"""Alert rules: each kind fires at its limit and not just inside it; quality gating."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest

from stream.alerts.rules import (
    Condition,
    FallDetector,
    ModelScores,
    evaluate,
    silent_devices,
    with_overrides,
)
from stream.config import RuleSettings
from stream.records import Observations, PatientContext, Profile
from stream.signal.features import STILL_SPAN_S

RULES = RuleSettings()
NAN = math.nan
# Simulator event names double as alert kinds (producers/scenario.py): they must match.
LABELLED_KINDS = (
    "tachycardia", "bradycardia", "af", "ventricular_run", "desaturation", "fever",
    "tachypnoea", "fall", "sensor_detached", "device_silent",
)  # fmt: skip


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
    }  # fmt: skip
    features.update(changes)
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


def test_a_quiet_window_raises_nothing() -> None:
    assert run(quiet_features()) == []


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


def test_per_patient_threshold_overrides() -> None:
    lowered = context(thresholds={"tachycardia_bpm": 100.0, "no_such_threshold": 1.0})
    window = quiet_features(ecg_hr_bpm=105.0, ppg_hr_bpm=105.0, hr_device=105.0)
    assert conditions_of("tachycardia", run(window)) == []
    [fired] = conditions_of("tachycardia", run(window, ctx=lowered))
    assert fired.values["limit"] == 100.0
    assert with_overrides(RULES, {"no_such_threshold": 1.0}) is RULES


# --- heart-rate source and signal quality ------------------------------------------------


def test_heart_rate_prefers_good_ecg_over_ppg_and_device() -> None:
    window = quiet_features(ecg_hr_bpm=130.0, ppg_hr_bpm=72.0, hr_device=72.0)
    [fired] = conditions_of("tachycardia", run(window))
    assert "(ecg)" in fired.message and fired.values["hr_bpm"] == 130.0


def test_poor_ecg_falls_back_to_good_ppg_and_raises_poor_signal() -> None:
    window = quiet_features(ecg_sqi=0.2, ecg_hr_bpm=160.0, ppg_hr_bpm=72.0)
    conditions = run(window)
    assert conditions_of("tachycardia", conditions) == []
    [poor] = conditions_of("poor_signal", conditions)
    assert poor.category == "technical" and poor.priority == "low"


def test_device_heart_rate_is_trusted_when_no_waveform_is_sent() -> None:
    window = quiet_features(
        ecg_hr_bpm=NAN, ppg_hr_bpm=NAN, ecg_sqi=NAN, ppg_sqi=NAN, hr_device=130.0
    )
    [fired] = conditions_of("tachycardia", run(window))
    assert fired.priority == "medium" and "(device)" in fired.message


def test_poor_signal_downgrades_alerts_derived_from_it() -> None:
    window = quiet_features(ecg_sqi=0.2, ppg_sqi=0.2, ecg_hr_bpm=130.0, ppg_hr_bpm=130.0)
    [fired] = conditions_of("tachycardia", run(window))
    assert fired.priority == "low" and not fired.sustain_only
    assert "poor signal" in fired.message


def test_poor_signal_can_suppress_instead() -> None:
    rules = RULES.model_copy(update={"poor_signal_action": "suppress"})
    window = quiet_features(ecg_sqi=0.2, ppg_sqi=0.2, ecg_hr_bpm=130.0, ppg_hr_bpm=130.0)
    [held] = conditions_of("tachycardia", run(window, rules=rules))
    assert held.sustain_only


def test_motion_downgrades_desaturation() -> None:
    [fired] = conditions_of("desaturation", run(quiet_features(spo2=88.0, motion=1.0)))
    assert fired.priority == "low"
    [clean] = conditions_of("desaturation", run(quiet_features(spo2=88.0)))
    assert clean.priority == "medium"


@pytest.mark.parametrize("flag", ["ecg_lead_off", "ecg_flat"])
def test_detached_sensor_suppresses_ecg_alerts_and_raises_technical(flag: str) -> None:
    window = quiet_features(
        **{flag: 1.0}, ecg_hr_bpm=NAN, ppg_hr_bpm=NAN, ppg_sqi=NAN, hr_device=180.0,
        resp_rate=40.0, temp=30.0, ectopic_fraction=0.5,
    )  # fmt: skip
    conditions = run(window)
    for kind in ("tachycardia", "tachypnoea", "hypothermia", "ventricular_run"):
        assert all(c.sustain_only for c in conditions_of(kind, conditions)), kind
    [detached] = conditions_of("sensor_detached", conditions)
    assert detached.category == "technical" and detached.priority == "medium"
    assert conditions_of("poor_signal", conditions) == []


def test_detached_sensor_with_good_ppg_keeps_ppg_heart_rate() -> None:
    window = quiet_features(ecg_lead_off=1.0, ecg_hr_bpm=NAN, ppg_hr_bpm=130.0)
    [fired] = conditions_of("tachycardia", run(window))
    assert not fired.sustain_only and "(ppg)" in fired.message


def test_observed_core_temperature_wins_over_skin() -> None:
    window = quiet_features(temp=36.8, ecg_lead_off=1.0)
    obs = Observations(core_temp=34.5)
    [cold] = conditions_of("hypothermia", run(window, observations=obs))
    assert not cold.sustain_only and "(core)" in cold.message


def test_skin_temperature_offset_applies() -> None:
    rules = RULES.model_copy(update={"skin_temp_offset_c": 3.0})
    assert conditions_of("hypothermia", run(quiet_features(temp=33.5), rules=rules)) == []
    assert conditions_of("hypothermia", run(quiet_features(temp=33.5)))[0].priority == "high"


# --- rhythm --------------------------------------------------------------------------------


def test_af_from_irregular_ecg_rr_at_threshold() -> None:
    limit = RULES.af_rr_irregularity
    assert conditions_of("af", run(quiet_features(rr_irregularity=limit - 0.001))) == []
    [af] = conditions_of("af", run(quiet_features(rr_irregularity=limit)))
    assert af.priority == "medium" and af.source == "rule:af@1"
    assert "screening" not in af.values


def test_af_without_ecg_is_only_screening_and_only_while_still() -> None:
    no_ecg = {"ecg_sqi": NAN, "ecg_hr_bpm": NAN, "rr_irregularity": 0.3}
    [af] = conditions_of("af", run(quiet_features(**no_ecg)))
    assert af.priority == "low" and af.values["screening"] == 1.0
    assert af.source == "rule:af_screening@1"
    assert conditions_of("af", run(quiet_features(**no_ecg, still=0.0))) == []


def rhythm_model(af: float, ventricular: float = 0.0) -> ModelScores:
    return ModelScores(
        name="rhythm",
        version="1.2.0",
        probabilities={"normal": 1 - af, "af": af, "ventricular": ventricular},
        thresholds={"normal": 0.5, "af": 0.7, "ventricular": 0.6},
        explanations={"af": {"segment_s": [3.0, 4.0]}},
    )


def test_model_af_at_the_card_threshold() -> None:
    [af] = conditions_of("af", run(quiet_features(), scores=[rhythm_model(0.7)]))
    assert af.source == "model:rhythm@1.2.0" and af.priority == "medium"
    assert af.values == {"probability": 0.7, "threshold": 0.7}
    assert af.explanation == {"segment_s": [3.0, 4.0]}
    [held] = conditions_of("af", run(quiet_features(), scores=[rhythm_model(0.69)]))
    assert held.sustain_only
    below = 0.7 - RULES.model_hysteresis - 0.01
    assert conditions_of("af", run(quiet_features(), scores=[rhythm_model(below)])) == []


def test_model_without_card_threshold_uses_default() -> None:
    model = ModelScores("rhythm", "2", {"af": RULES.model_threshold})
    assert not conditions_of("af", run(quiet_features(), scores=[model]))[0].sustain_only


def test_model_rhythm_alert_is_suppressed_on_detached_ecg() -> None:
    conditions = run(quiet_features(ecg_lead_off=1.0), scores=[rhythm_model(0.95)])
    assert all(c.sustain_only for c in conditions_of("af", conditions))


def test_ventricular_run_from_model_and_from_ectopy() -> None:
    [vt] = conditions_of("ventricular_run", run(quiet_features(), scores=[rhythm_model(0, 0.6)]))
    assert vt.priority == "high" and vt.source == "model:rhythm@1.2.0"
    limit = RULES.ventricular_ectopic_fraction
    [rule] = conditions_of("ventricular_run", run(quiet_features(ectopic_fraction=limit)))
    assert rule.priority == "high" and rule.source == "rule:ventricular_run@1"
    assert (
        conditions_of("ventricular_run", run(quiet_features(ectopic_fraction=limit - 0.01))) == []
    )
    # In AF the RR-based ectopy count is meaningless: only a model may call VT there.
    in_af = quiet_features(ectopic_fraction=0.5, rr_irregularity=RULES.af_rr_irregularity)
    assert conditions_of("ventricular_run", run(in_af)) == []


# --- falls ---------------------------------------------------------------------------------


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


def fall_times(sequence: list, detector: FallDetector | None = None) -> list[float]:
    detector = detector or FallDetector()
    return [
        t for t, features in sequence
        if conditions_of("fall", run(features, t=t, fall=detector))
    ]  # fmt: skip


def test_fall_needs_impact_then_inactivity() -> None:
    times = fall_times(fall_sequence(RULES.fall_impact_g, still_from=13))
    # The still flag judges the trailing STILL_SPAN_S: stillness seen at 13 began at 10
    # (never before the impact, first seen at 10).
    assert times[0] == max(13 - STILL_SPAN_S, 10) + RULES.fall_inactivity_s
    assert times == [float(t) for t in range(int(times[0]), 60)]


def test_impact_below_threshold_is_not_a_fall() -> None:
    assert fall_times(fall_sequence(RULES.fall_impact_g - 0.01, still_from=13)) == []


def test_impact_followed_by_movement_is_not_a_fall() -> None:
    assert fall_times(fall_sequence(5.0, still_from=100)) == []


def test_stillness_long_after_impact_is_not_a_fall() -> None:
    # Seen still at ``late``: still since late - STILL_SPAN_S, past the confirmation span.
    late = 10 + RULES.fall_confirm_within_s + STILL_SPAN_S + 1
    assert fall_times(fall_sequence(5.0, still_from=late)) == []


def test_getting_up_ends_the_fall() -> None:
    times = fall_times(fall_sequence(5.0, still_from=13, moving_after=30))
    assert times and max(times) == 29


def test_stillness_without_any_impact_is_not_a_fall() -> None:
    sequence = [(float(t), quiet_features(still=1.0)) for t in range(60)]
    assert fall_times(sequence) == []


def test_fall_detector_state_survives_serialization() -> None:
    sequence = fall_sequence(5.0, still_from=13)
    detector = FallDetector()
    first = fall_times(sequence[:15], detector)
    restored = FallDetector.from_dict(detector.to_dict())
    assert first + fall_times(sequence[15:], restored) == fall_times(sequence)


# --- NEWS2, technical, silence -------------------------------------------------------------


def news2_window(resp: float, spo2: float, hr: float) -> dict[str, float]:
    return quiet_features(resp_rate=resp, spo2=spo2, ecg_hr_bpm=hr, ppg_hr_bpm=hr, hr_device=hr)


def test_news2_alerts_on_medium_and_high_response_only() -> None:
    # 2 + 1 + 2 = 5 (medium); 2 + 1 + 1 = 4 (low): see tests/unit/stream/test_news2.py.
    [medium] = conditions_of("news2", run(news2_window(22, 95, 112)))
    assert medium.priority == "medium" and medium.values["aggregate"] == 5
    assert medium.values["parameters_covered"] == 3 and "partial" in medium.message
    assert conditions_of("news2", run(news2_window(22, 95, 100))) == []
    obs = Observations(consciousness="V", on_oxygen=True)
    [high] = conditions_of("news2", run(news2_window(22, 95, 112), observations=obs))
    assert high.priority == "high" and high.values["aggregate"] == 10


def test_news2_switched_off_by_profile() -> None:
    off = context(news2=False)
    assert conditions_of("news2", run(news2_window(22, 95, 112), ctx=off)) == []
    assert evaluate(off, 0.0, news2_window(22, 95, 112), (), None, RULES).news2 is None


def test_skin_temperature_is_not_scored_as_news2_temperature() -> None:
    hot_skin = quiet_features(temp=39.5)
    assert "temperature" not in evaluate(context(), 0.0, hot_skin, (), None, RULES).news2.subscores  # type: ignore[union-attr]
    result = evaluate(context(), 0.0, hot_skin, (), Observations(core_temp=39.5), RULES).news2
    assert result is not None and result.subscores["temperature"] == 2


def test_poor_signal_needs_sustained_low_sqi_or_motion() -> None:
    assert conditions_of("poor_signal", run(quiet_features(motion=1.0)))
    assert conditions_of("poor_signal", run(quiet_features(ecg_sqi=RULES.ecg_sqi_good - 0.01)))
    assert conditions_of("poor_signal", run(quiet_features(ecg_sqi=RULES.ecg_sqi_good))) == []


def test_silent_devices_at_the_timeout() -> None:
    silent = silent_devices({"a": 1000.0, "b": 1001.0, "c": 1300.0}, now=1300.0, timeout=300.0)
    assert set(silent) == {"a"}
    assert silent["a"].kind == "device_silent" and silent["a"].category == "technical"
    assert silent["a"].values["silent_s"] == 300.0


def test_every_labelled_simulator_kind_can_be_raised() -> None:
    detector = FallDetector()
    raised = {c.kind for t, f in fall_sequence(5.0, 13) for c in run(f, t=t, fall=detector)}
    windows = [
        quiet_features(ecg_hr_bpm=140.0),
        quiet_features(ecg_hr_bpm=45.0),
        quiet_features(rr_irregularity=0.3),
        quiet_features(ectopic_fraction=0.5),
        quiet_features(spo2=85.0, resp_rate=30.0, temp=39.0),
        quiet_features(ecg_lead_off=1.0),
    ]
    raised |= {c.kind for w in windows for c in run(w)}
    raised |= {c.kind for c in silent_devices({"a": 0.0}, 1000.0, 300.0).values()}
    assert set(LABELLED_KINDS) <= raised


def test_heart_rate_alarms_read_the_last_two_beats_and_news2_the_window_median() -> None:
    # A step to 150 bpm two beats ago: the window median still says 75.
    stepped = quiet_features(ecg_hr_bpm=75.0, ecg_hr_recent_bpm=150.0, ppg_hr_recent_bpm=150.0)
    [tachy] = conditions_of("tachycardia", run(stepped))
    assert tachy.values["hr_bpm"] == 150.0
    assert (
        evaluate(context(), 0.0, stepped, (), None, RULES).news2.subscores["pulse"] == 0
    )  # 75 bpm


def test_under_motion_heart_rate_alarms_fall_back_to_the_window_median() -> None:
    # Artefact beats make a two-beat rate unreliable while the wearer moves.
    moving = quiet_features(ecg_hr_recent_bpm=150.0, ppg_hr_recent_bpm=150.0, motion=1.0)
    assert conditions_of("tachycardia", run(moving)) == []


def test_a_moving_wearers_artefact_ecg_rate_is_outvoted_by_ppg_and_device() -> None:
    # Motion artefact counted as beats: the ECG says 190 while the pulse says 100.
    walking = quiet_features(ecg_hr_bpm=190.0, ppg_hr_bpm=100.0, hr_device=104.0, motion=1.0)
    assert conditions_of("tachycardia", run(walking)) == []
    # All three agree on a fast rate: a real tachycardia, doubtful only because of motion.
    fast = quiet_features(ecg_hr_bpm=135.0, ppg_hr_bpm=133.0, hr_device=134.0, motion=1.0)
    [fired] = conditions_of("tachycardia", run(fast))
    assert fired.priority == "low" and not fired.sustain_only
    assert fired.values["hr_bpm"] == 134.0  # the median of the three


def test_two_disagreeing_heart_rates_without_a_good_source_raise_nothing() -> None:
    window = quiet_features(ecg_sqi=0.2, ecg_hr_bpm=190.0, ppg_hr_bpm=NAN, ppg_sqi=NAN,
                            hr_device=100.0)  # fmt: skip
    assert all(c.sustain_only for c in conditions_of("tachycardia", run(window)))
    agreeing = quiet_features(ecg_sqi=0.2, ecg_hr_bpm=130.0, ppg_hr_bpm=NAN, ppg_sqi=NAN,
                              hr_device=126.0)  # fmt: skip
    [fired] = conditions_of("tachycardia", run(agreeing))
    assert not fired.sustain_only and "(ecg)" in fired.message


def test_rhythm_under_motion_is_doubtful_and_not_analysed_on_a_poor_or_disputed_ecg() -> None:
    vt = [rhythm_model(0, 0.9)]
    moving = quiet_features(motion=1.0)
    [doubtful] = conditions_of("ventricular_run", run(moving, scores=vt))
    assert doubtful.priority == "medium" and not doubtful.sustain_only
    for window in (
        quiet_features(motion=1.0, ecg_sqi=0.2),  # poor ECG
        quiet_features(motion=1.0, ecg_hr_bpm=170.0, ppg_hr_bpm=95.0, hr_device=96.0),
    ):
        assert all(c.sustain_only for c in conditions_of("ventricular_run", run(window, scores=vt)))
    # At rest a rate the pulse does not follow may be a pulse deficit, as in VT: kept.
    deficit = quiet_features(ecg_hr_bpm=170.0, ppg_hr_bpm=95.0, hr_device=96.0)
    [kept] = conditions_of("ventricular_run", run(deficit, scores=vt))
    assert kept.priority == "high"
