"""Signal trust: which heart-rate source wins, what poor or detached signal does to the
alerts derived from it, which temperature is read, and when rhythm can be analysed."""

from __future__ import annotations

import pytest

from stream.alerts.conditions import Condition
from stream.alerts.rules import evaluate
from stream.records import Observations
from tests.unit.stream.alerts.harness import (
    NAN,
    RULES,
    conditions_of,
    context,
    quiet_features,
    rhythm_model,
    run,
)


def test_heart_rate_prefers_good_ecg_over_ppg_and_device() -> None:
    window = quiet_features(ecg_hr_bpm=130.0, ppg_hr_bpm=72.0, hr_device=NAN)
    [fired] = conditions_of("tachycardia", run(window))
    assert "(ecg)" in fired.message and fired.values["hr_bpm"] == 130.0


def test_an_ecg_rate_that_a_good_ppg_and_the_device_both_contradict_is_not_believed() -> None:
    """Getting up after a fall, step artefact read as beats gave the ECG 240 bpm while the
    PPG and the device, agreeing, said 73: no tachycardia (the rhythm rules still judge a
    pulse deficit). With only one other source against it, the good ECG still wins."""
    outvoted = quiet_features(ecg_hr_bpm=240.0, ppg_hr_bpm=73.0, hr_device=74.0)
    assert only_begins_onset(conditions_of("tachycardia", run(outvoted)))
    disputed_by_one = quiet_features(ecg_hr_bpm=140.0, ppg_hr_bpm=73.0, hr_device=NAN)
    assert conditions_of("tachycardia", run(disputed_by_one))


def only_begins_onset(conditions: list[Condition]) -> bool:
    """The conditions a set-aside ECG rate raises: one, sustain-only, from the ECG, that
    may begin the onset wait (it raises no alarm by itself)."""
    return [(c.sustain_only, c.begins_onset, "(ecg)" in c.message) for c in conditions] == [
        (True, True, True)
    ]


def test_a_set_aside_resting_ecg_rate_may_begin_the_onset_wait() -> None:
    """After a step in the heart rate the ECG's last two beats have it first; the PPG
    and the device's averaged reading lag (160 bpm read 64 and 96 two seconds after the
    onset). The vote sets the ECG aside, but its crossing begins the onset wait, so that
    the alarm triggers as soon as another source confirms it (stream.alerts.lifecycle).
    Not while the wearer moves, nor from a poor ECG."""
    step = quiet_features(ecg_hr_bpm=160.0, ppg_hr_bpm=64.0, hr_device=96.0)
    assert only_begins_onset(conditions_of("tachycardia", run(step)))
    slowed = quiet_features(ecg_hr_bpm=48.6, ppg_hr_bpm=76.0, hr_device=64.0)
    assert only_begins_onset(conditions_of("bradycardia", run(slowed)))
    moving = quiet_features(ecg_hr_bpm=160.0, ppg_hr_bpm=64.0, hr_device=96.0, motion=1.0)
    assert not any(c.begins_onset for c in run(moving))
    poor = quiet_features(ecg_hr_bpm=160.0, ppg_hr_bpm=64.0, hr_device=96.0, ecg_sqi=0.2)
    assert not any(c.begins_onset for c in run(poor))
    believed = quiet_features(ecg_hr_bpm=160.0, ppg_hr_bpm=150.0, hr_device=96.0)
    assert not any(c.begins_onset for c in run(believed))


def test_an_outvoted_ecg_alarm_reads_the_outvoting_source_nearer_to_it() -> None:
    """Four seconds into a fall to 35 bpm the PPG (over-counting the long diastole) reads
    52.6 and the device's average 49: they agree, and outvote the ECG's 35. Of the two,
    the alarm reads the device's 49, which has followed the ECG further: bradycardia."""
    window = quiet_features(ecg_hr_bpm=35.2, ppg_hr_bpm=52.6, hr_device=49.0)
    fired = [c for c in conditions_of("bradycardia", run(window)) if not c.sustain_only]
    assert [c.values["hr_bpm"] for c in fired] == [49.0]
    assert "(device)" in fired[0].message


def test_three_heart_rates_none_agreeing_are_read_as_their_doubtful_median() -> None:
    """Getting up after a fall, the last two beats read 176 bpm on the ECG (step
    artefact), 111 on the PPG and 79 on the device: none is believed alone, the median
    (111) raises no tachycardia. A true tachycardia the PPG follows still alarms."""
    split = quiet_features(ecg_hr_bpm=176.0, ppg_hr_bpm=111.0, hr_device=79.0)
    assert only_begins_onset(conditions_of("tachycardia", run(split)))
    followed = quiet_features(ecg_hr_bpm=176.0, ppg_hr_bpm=165.0, hr_device=120.0)
    [fired] = conditions_of("tachycardia", run(followed))
    assert "(ecg)" in fired.message and fired.priority == "high"


def test_a_ppg_at_twice_the_ecg_rate_does_not_split_the_vote() -> None:
    """Four seconds into a fall to 36 bpm (bench e2e, 2,000 devices) the ECG reads 35.9,
    the PPG 74.6 (a second wave counted in each long diastole) and the device's average
    51: pulses cannot outnumber beats, so the PPG's disagreement explains itself and the
    ECG is believed against the lagging device: bradycardia. Where the device agrees with
    that PPG instead (an ECG missing every other beat) the two still outvote the ECG; and
    a PPG at another multiple still splits the vote."""
    doubled = quiet_features(ecg_hr_bpm=35.9, ppg_hr_bpm=74.6, hr_device=51.0)
    [fired] = conditions_of("bradycardia", run(doubled))
    assert not fired.sustain_only and "(ecg)" in fired.message
    assert fired.values["hr_bpm"] == 35.9
    halved_ecg = quiet_features(ecg_hr_bpm=35.9, ppg_hr_bpm=74.6, hr_device=72.0)
    assert only_begins_onset(conditions_of("bradycardia", run(halved_ecg)))
    not_doubled = quiet_features(ecg_hr_bpm=35.9, ppg_hr_bpm=95.0, hr_device=60.0)
    assert only_begins_onset(conditions_of("bradycardia", run(not_doubled)))


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
        resp_rate=40.0, temp=30.0, ectopic_fraction=0.5, run_rate_bpm=160.0,
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


def test_rhythm_is_analysed_at_rest_on_a_good_ecg_only() -> None:
    """Rhythm reads beat shape and timing, which motion and a poor ECG mimic: neither is
    analysed (a poor ECG raises the poor-signal technical alarm instead). At rest a rate
    the pulse does not follow may be a pulse deficit, as in VT: kept."""
    vt = [rhythm_model(0, 0.9)]
    run_now = {"run_rate_bpm": 160.0, "ecg_hr_recent_bpm": 160.0}
    for window in (
        quiet_features(motion=1.0, **run_now),  # moving
        quiet_features(ecg_sqi=0.2, **run_now),  # poor ECG at rest
        quiet_features(motion=1.0, ecg_hr_bpm=170.0, ppg_hr_bpm=95.0, hr_device=96.0, **run_now),
    ):
        assert all(c.sustain_only for c in conditions_of("ventricular_run", run(window, scores=vt)))
    deficit = quiet_features(ecg_hr_bpm=170.0, ppg_hr_bpm=95.0, hr_device=96.0, **run_now)
    [kept] = conditions_of("ventricular_run", run(deficit, scores=vt))
    assert kept.priority == "high" and not kept.sustain_only


def test_a_ventricular_run_starts_an_alarm_only_while_it_is_going_on() -> None:
    """An electrode pop between two beats gives three fast intervals once; the run stays in
    the window after it, and so does the pop. A run alarm starts while the ECG's own recent
    rate is a run's, and is only sustained after."""
    vt = [rhythm_model(0, 0.99)]
    after = quiet_features(run_rate_bpm=126.0, ecg_hr_recent_bpm=73.0)
    assert all(c.sustain_only for c in conditions_of("ventricular_run", run(after, scores=vt)))
    during = quiet_features(run_rate_bpm=176.0, ecg_hr_recent_bpm=176.0)
    [started] = conditions_of("ventricular_run", run(during, scores=vt))
    assert not started.sustain_only


def test_rhythm_alarms_start_only_once_the_ecg_has_stayed_good_for_a_window() -> None:
    """A loose electrode's ECG is poor one second and looks good the next, until its next
    pop passes for a wide beat: rhythm alarms start only on an ECG good for
    RHYTHM_SETTLE_S, and an active one is sustained meanwhile."""
    from stream.alerts.trust import RHYTHM_SETTLE_S, EcgHistory

    vt = [rhythm_model(0, 0.99)]
    running = quiet_features(run_rate_bpm=170.0, ecg_hr_recent_bpm=170.0)
    history = EcgHistory()
    run(quiet_features(ecg_sqi=0.2), t=100.0, ecg=history)  # poor a moment ago
    early = conditions_of("ventricular_run", run(running, t=101.0, scores=vt, ecg=history))
    assert early and all(c.sustain_only for c in early)
    later = 101.0 + RHYTHM_SETTLE_S
    [started] = conditions_of("ventricular_run", run(running, t=later, scores=vt, ecg=history))
    assert not started.sustain_only
