"""Alert rules: what one window raises (rhythm, models, NEWS2, technical, silence), and
every kind the simulator labels can be raised."""

from __future__ import annotations

from stream.alerts.fall import FallDetector
from stream.alerts.rules import (
    GEMINAL_ECTOPIC_FRACTION,
    ModelScores,
    evaluate,
    silent_devices,
    with_overrides,
)
from stream.records import Observations
from tests.unit.stream.alerts.harness import (
    NAN,
    RULES,
    conditions_of,
    context,
    fall_sequence,
    quiet_features,
    rhythm_model,
    run,
)

# Simulator event names double as alert kinds (producers/scenario.py): they must match.
LABELLED_KINDS = (
    "tachycardia", "bradycardia", "af", "ventricular_run", "desaturation", "fever",
    "tachypnoea", "fall", "sensor_detached", "device_silent",
)  # fmt: skip


def test_a_quiet_window_raises_nothing() -> None:
    assert run(quiet_features()) == []


def test_per_patient_threshold_overrides() -> None:
    lowered = context(thresholds={"tachycardia_bpm": 100.0, "no_such_threshold": 1.0})
    window = quiet_features(ecg_hr_bpm=105.0, ppg_hr_bpm=105.0, hr_device=105.0)
    assert conditions_of("tachycardia", run(window)) == []
    [fired] = conditions_of("tachycardia", run(window, ctx=lowered))
    assert fired.values["limit"] == 100.0
    assert with_overrides(RULES, {"no_such_threshold": 1.0}) is RULES


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
    irregular = quiet_features(rr_irregularity=0.2)  # AF is irregular, by definition
    [by_model] = [c for c in run(irregular, scores=[model]) if c.source == "model:rhythm@2"]
    assert by_model.kind == "af" and not by_model.sustain_only


def test_frequent_premature_beats_are_not_af() -> None:
    """A premature beat and its pause make three large successive differences: at one beat
    in six the median |ΔRR| is well past AF's limit while the rhythm between them is
    regular: filtered of ectopy (``af_irregularity``), it is not AF, from the rule or the
    rhythm model. Irregular beats that stay irregular after filtering are."""
    premature = quiet_features(rr_irregularity=0.36, rr_irregularity_lag2=0.3, af_irregularity=0.01)
    raised = conditions_of("af", run(premature, scores=[rhythm_model(0.95)]))
    assert all(c.sustain_only for c in raised), raised
    af = quiet_features(rr_irregularity=0.25, rr_irregularity_lag2=0.3, af_irregularity=0.12)
    raised = conditions_of("af", run(af, scores=[rhythm_model(0.95)]))
    assert {c.source for c in raised if not c.sustain_only} == {"rule:af@1", "model:rhythm@1.2.0"}


def test_a_window_of_premature_beats_and_pauses_only_is_not_af() -> None:
    """Ectopy every second to fourth beat leaves the ectopy filter nothing to measure
    (``af_irregularity`` nan): the window is explained by ectopy, from the rule or the
    rhythm model. Nothing left to measure with few premature beats is unknown, not ectopy:
    the beats may confirm an AF."""
    geminal = quiet_features(
        rr_irregularity=0.4, rr_irregularity_lag2=0.35, af_irregularity=NAN,
        ectopic_fraction=GEMINAL_ECTOPIC_FRACTION,
    )  # fmt: skip
    raised = conditions_of("af", run(geminal, scores=[rhythm_model(0.95)]))
    assert raised and all(c.sustain_only for c in raised), raised
    chance = dict(geminal, ectopic_fraction=GEMINAL_ECTOPIC_FRACTION - 0.05)
    raised = conditions_of("af", run(chance, scores=[rhythm_model(0.95)]))
    assert {c.source for c in raised if not c.sustain_only} == {"rule:af@1", "model:rhythm@1.2.0"}


def test_model_rhythm_alert_is_suppressed_on_detached_ecg() -> None:
    conditions = run(quiet_features(ecg_lead_off=1.0), scores=[rhythm_model(0.95)])
    assert all(c.sustain_only for c in conditions_of("af", conditions))


def test_ventricular_run_from_model_and_from_ectopy() -> None:
    fast = quiet_features(run_rate_bpm=160.0)
    [vt] = conditions_of("ventricular_run", run(fast, scores=[rhythm_model(0, 0.6)]))
    assert vt.priority == "high" and vt.source == "model:rhythm@1.2.0"
    limit = RULES.ventricular_ectopic_fraction
    ectopy = quiet_features(ectopic_fraction=limit, run_rate_bpm=160.0)
    [rule] = conditions_of("ventricular_run", run(ectopy))
    assert rule.priority == "high" and rule.source == "rule:ventricular_run@1"
    below = quiet_features(ectopic_fraction=limit - 0.01, run_rate_bpm=160.0)
    assert conditions_of("ventricular_run", run(below)) == []
    # In AF the RR-based ectopy count is meaningless: only a model may call VT there.
    in_af = quiet_features(ectopic_fraction=0.5, rr_irregularity=RULES.af_rr_irregularity)
    assert conditions_of("ventricular_run", run(in_af)) == []


# --- NEWS2, technical, silence -------------------------------------------------------------


def news2_window(resp: float, spo2: float, hr: float) -> dict[str, float]:
    return quiet_features(resp_rate=resp, spo2=spo2, ecg_hr_bpm=hr, ppg_hr_bpm=hr, hr_device=hr)


def test_news2_alerts_on_medium_and_high_response_only() -> None:
    # 2 + 1 + 2 = 5 (medium); 2 + 1 + 1 = 4 (low): see tests/unit/stream/alerts/test_news2.py.
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
        quiet_features(ecg_hr_bpm=140.0, ppg_hr_bpm=140.0),
        quiet_features(ecg_hr_bpm=45.0, ppg_hr_bpm=45.0),
        quiet_features(rr_irregularity=0.3),
        quiet_features(ectopic_fraction=0.5, run_rate_bpm=160.0),
        quiet_features(spo2=85.0, resp_rate=30.0, temp=39.0),
        quiet_features(ecg_lead_off=1.0),
    ]
    raised |= {c.kind for w in windows for c in run(w)}
    raised |= {c.kind for c in silent_devices({"a": 0.0}, 1000.0, 300.0).values()}
    assert set(LABELLED_KINDS) <= raised


def test_bigeminy_and_premature_beats_raise_no_rhythm_alarm() -> None:
    """Bigeminy alternates short and long intervals (regularly irregular), and premature
    beats come with a compensatory pause: neither is AF, and neither is a ventricular run
    (three or more ventricular beats faster than 100 bpm), whatever the ECG's shape makes
    the rhythm model or the ectopy count say."""
    bigeminy = quiet_features(
        rr_irregularity=0.57, rr_irregularity_lag2=0.01, ectopic_fraction=0.5, run_rate_bpm=95.0
    )
    # (at most sustain-only: an alarm already active for a real run or AF is not cut short)
    raised = run(bigeminy, scores=[rhythm_model(0.95, 0.99)])
    rhythm = [c for c in raised if c.kind in ("af", "ventricular_run")]
    assert all(c.sustain_only for c in rhythm), raised
    # The sinus rate drifts under bigeminy: every other interval differs by 5-9 %, still a
    # small part of the 70-150 % alternation.
    drifting = quiet_features(rr_irregularity=0.8, rr_irregularity_lag2=0.09, run_rate_bpm=95.0)
    assert all(c.sustain_only for c in conditions_of("af", run(drifting))), run(drifting)
    premature = quiet_features(ectopic_fraction=0.3, run_rate_bpm=92.0)
    raised = run(premature, scores=[rhythm_model(0, 0.99)])
    assert all(c.sustain_only for c in conditions_of("ventricular_run", raised)), raised
    # The same model scores on a fast run, and on irregularly irregular beats, do alarm.
    fast = quiet_features(ectopic_fraction=0.3, run_rate_bpm=150.0)
    assert conditions_of("ventricular_run", run(fast, scores=[rhythm_model(0, 0.99)]))
    irregular = quiet_features(rr_irregularity=0.2, rr_irregularity_lag2=0.22)
    assert conditions_of("af", run(irregular, scores=[rhythm_model(0.95, 0)]))


def test_an_ecg_run_the_pulse_does_not_follow_starts_no_alarm() -> None:
    """Electrode pops between two sinus beats make a fast "run" on the ECG while a good
    PPG goes on pulsing at the usual rate: that run did not happen (PhysioNet/CinC 2015's
    cross-check with a pulsatile waveform). A run the pulse follows, or one seen with no
    good PPG to contradict it (a run that does not perfuse), still alarms."""
    popped = {"ectopic_fraction": 0.3, "run_rate_bpm": 132.0, "ecg_hr_recent_bpm": 121.0,
              "ecg_hr_bpm": 83.0, "ppg_hr_bpm": 82.0, "hr_device": NAN}  # fmt: skip
    pulse_steady = quiet_features(**popped, ppg_run_rate_bpm=86.0)
    raised = conditions_of("ventricular_run", run(pulse_steady, scores=[rhythm_model(0, 0.99)]))
    assert raised and all(c.sustain_only for c in raised), raised  # may sustain, not start
    pulse_follows = quiet_features(**popped, ppg_run_rate_bpm=170.0)
    raised = conditions_of("ventricular_run", run(pulse_follows, scores=[rhythm_model(0, 0.99)]))
    assert any(not c.sustain_only for c in raised), raised
    # Artefact drags the ECG's own median up too (a patient getting up): the device's
    # reading agreeing with the PPG corroborates the pulse instead.
    getting_up = quiet_features(
        **{**popped, "ecg_hr_bpm": 199.0, "hr_device": 79.0}, ppg_run_rate_bpm=96.0
    )
    raised = conditions_of("ventricular_run", run(getting_up, scores=[rhythm_model(0, 0.99)]))
    assert raised and all(c.sustain_only for c in raised), raised
    for no_pulse in (
        quiet_features(**popped, ppg_run_rate_bpm=86.0, ppg_sqi=0.2),  # weak, unreadable
        quiet_features(**popped, ppg_run_rate_bpm=NAN),  # too few pulses to tell
        quiet_features(**{**popped, "ppg_hr_bpm": 40.0}, ppg_run_rate_bpm=50.0),  # deficit
        # a pulse neither the ECG's median nor the device corroborates:
        quiet_features(**{**popped, "ecg_hr_bpm": 150.0, "hr_device": 150.0}, ppg_run_rate_bpm=90),
    ):
        raised = conditions_of("ventricular_run", run(no_pulse, scores=[rhythm_model(0, 0.99)]))
        assert any(not c.sustain_only for c in raised), (no_pulse, raised)


def test_an_unconfirmed_model_af_may_begin_the_onset_only_on_a_trusted_ecg() -> None:
    """At an AF's onset the window's beats are still mostly sinus: the model's call is
    sustain-only but may begin AF's onset wait (``begins_onset``), on a trusted ECG and
    at or above the card's threshold only."""
    onset = quiet_features(rr_irregularity=0.04, rr_irregularity_lag2=0.06, af_irregularity=0.04)
    called = conditions_of("af", run(onset, scores=[rhythm_model(0.95)]))
    assert [(c.sustain_only, c.begins_onset) for c in called] == [(True, True)]
    near = conditions_of("af", run(onset, scores=[rhythm_model(0.65)]))  # in the band
    assert [(c.sustain_only, c.begins_onset) for c in near] == [(True, False)]
    detached = conditions_of("af", run({**onset, "ecg_lead_off": 1.0}, scores=[rhythm_model(0.95)]))
    assert not any(c.begins_onset for c in detached)
    confirmed = quiet_features(rr_irregularity=0.25, rr_irregularity_lag2=0.3, af_irregularity=0.12)
    assert not any(c.begins_onset for c in run(confirmed, scores=[rhythm_model(0.95)]))
