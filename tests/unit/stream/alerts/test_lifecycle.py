"""Alert lifecycle: onset delay, repeat, hysteresis, de-duplication, stable ids, restarts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.alerts.conditions import Condition
from stream.alerts.lifecycle import AlertTracker, alert_id
from stream.alerts.rules import evaluate
from stream.config import RuleSettings, load_settings
from stream.records import Alert, PatientContext, Profile

RULES = RuleSettings()
CTX = PatientContext(device_id="dev-1", patient="p-1", ward="A", profile=Profile())


def condition(
    kind: str = "tachycardia",
    priority: str = "medium",
    sustain_only: bool = False,
    category: str = "physiological",
) -> Condition:
    return Condition(
        kind=kind,
        category=category,  # type: ignore[arg-type]
        priority=priority,  # type: ignore[arg-type]
        values={"hr_bpm": 130.0},
        source=f"rule:{kind}@1",
        message=kind,
        sustain_only=sustain_only,
    )


Script = Callable[[float], Sequence[Condition]]


def play(
    script: Script, until: float, tracker: AlertTracker | None = None, start: float = 0.0
) -> list[Alert]:
    """Feed one window per second from ``start`` to ``until`` (inclusive)."""
    tracker = tracker or AlertTracker(RULES)
    alerts: list[Alert] = []
    t = start
    while t <= until:
        alerts += tracker.update(CTX, t, script(t))
        t += 1.0
    return alerts


def during(start: float, end: float, *conditions: Condition) -> Script:
    return lambda t: conditions if start <= t < end else ()


def events(alerts: list[Alert]) -> list[tuple[str, str, float]]:
    return [(a.event, a.kind, a.t_event) for a in alerts]


def test_onset_delay_then_one_trigger() -> None:
    onset = RULES.timing_of("tachycardia").onset_s
    alerts = play(during(10, 20, condition()), until=20)
    assert events(alerts)[0] == ("triggered", "tachycardia", 10 + onset)
    assert alerts[0].t_onset == 10
    assert [a.event for a in alerts].count("triggered") == 1


def test_condition_shorter_than_onset_delay_never_fires() -> None:
    rules = RULES.model_copy(
        update={"timing": {**RULES.timing, "tachycardia": RULES.default_timing.model_copy(
            update={"onset_s": 5.0})}}
    )  # fmt: skip
    tracker = AlertTracker(rules)
    assert play(during(10, 15, condition()), until=40, tracker=tracker) == []


def test_a_gap_restarts_the_onset_delay() -> None:
    onset = RULES.timing_of("desaturation").onset_s
    desat = condition("desaturation")
    gap_at = 10 + onset - 1

    def script(t: float) -> Sequence[Condition]:
        return (desat,) if t >= 10 and t != gap_at else ()

    alerts = play(script, until=40)
    assert events(alerts)[0] == ("triggered", "desaturation", gap_at + 1 + onset)


def test_af_goes_on_through_a_dip_shorter_than_its_gap_but_not_a_longer_one() -> None:
    """A real AF's window statistic dips below its limit for a few seconds now and then:
    the 30 s wait goes on from the episode's start. A longer absence starts it again."""
    timing = RULES.timing_of("af")
    assert timing.onset_gap_s > 0
    af = condition("af")
    for gap in (1.0, timing.onset_gap_s):
        dip = (20.0, 20.0 + gap)  # absent for `gap` seconds
        alerts = play(lambda t, d=dip: (af,) if t >= 10 and not d[0] <= t < d[1] else (), 60)
        assert events(alerts)[0] == ("triggered", "af", 10 + timing.onset_s), gap
        assert alerts[0].t_onset == 10
    longer = timing.onset_gap_s + 2
    alerts = play(lambda t: (af,) if t >= 10 and not 20 <= t < 20 + longer else (), 90)
    assert events(alerts)[0] == ("triggered", "af", 20 + longer + timing.onset_s)


def test_af_goes_on_through_a_four_second_dip_ending_one_window_late() -> None:
    """The windows read the beats decided by their end (the beat stream's decision delay):
    a dip the window detector's beats ended after 4 s ends a window later on the stream's.
    Default seed 10: AF confirmed 128-155 s, five windows 156-160 s read as bigeminy by
    chance (every other interval repeating), confirmed again from 161 s; the 30 s count
    from the episode's start (due at 158 s, raised by the first window back at 161 s), not
    from the dip's end (191 s)."""
    timing = RULES.timing_of("af")
    decided_late = 4.0 + 1.0  # the window detector's longest tolerated dip + one window
    assert timing.onset_gap_s >= decided_late
    af = condition("af")
    alerts = play(lambda t: (af,) if t >= 128 and not 156 <= t <= 160 else (), 240)
    assert events(alerts)[0] == ("triggered", "af", 161)
    assert alerts[0].t_onset == 128


def test_sixty_second_hr_event_fires_once_within_iec_limit() -> None:
    # IEC 60601-2-27: a heart-rate alarm within 10 s of the condition.
    alerts = play(during(100, 160, condition()), until=300)
    assert [a.event for a in alerts] == ["triggered", "resolved"]
    assert alerts[0].t_event - 100 <= 10
    assert alerts[1].t_event == 159 + RULES.timing_of("tachycardia").resolve_s
    assert alerts[0].alert_id == alerts[1].alert_id


def test_repeats_while_active() -> None:
    timing = RULES.timing_of("tachycardia")
    alerts = play(during(0, 400, condition()), until=399)
    triggered_at = timing.onset_s
    expected = [triggered_at + k * timing.repeat_s for k in range(4)]
    expected = [t for t in expected if t < 400]
    assert [a.t_event for a in alerts] == expected
    assert [a.event for a in alerts] == ["triggered"] + ["repeated"] * (len(expected) - 1)
    assert len({a.alert_id for a in alerts}) == 1


def test_rising_priority_repeats_at_once() -> None:
    def script(t: float) -> Sequence[Condition]:
        return (condition(priority="high" if t >= 20 else "medium"),)

    alerts = play(script, until=30)
    assert [(a.event, a.priority, a.t_event) for a in alerts] == [
        ("triggered", "medium", RULES.timing_of("tachycardia").onset_s),
        ("repeated", "high", 20.0),
    ]


def test_hysteresis_band_keeps_the_alert_active() -> None:
    resolve_s = RULES.timing_of("tachycardia").resolve_s

    def script(t: float) -> Sequence[Condition]:
        if t < 20:
            return (condition(),)
        if t < 100:
            return (condition(sustain_only=True),)  # back inside the limit, not the margin
        return ()

    alerts = play(script, until=200)
    assert [(a.event, a.t_event) for a in alerts] == [
        ("triggered", RULES.timing_of("tachycardia").onset_s),
        ("resolved", 99 + resolve_s),
    ]


def test_sustain_only_never_starts_an_alert() -> None:
    assert play(during(0, 100, condition(sustain_only=True)), until=100) == []


def test_flapping_within_resolve_time_is_one_alert() -> None:
    resolve_s = RULES.timing_of("tachycardia").resolve_s

    def script(t: float) -> Sequence[Condition]:
        # Present for 10 s, absent for just under resolve_s, again and again.
        return (condition(),) if t % (10 + resolve_s - 1) < 10 else ()

    alerts = play(script, until=200)
    assert [a.event for a in alerts].count("triggered") == 1


def test_one_alert_per_kind_from_many_sources() -> None:
    model = Condition("af", "physiological", "medium", {}, "model:rhythm@1.2.0", "model")
    rule = Condition("af", "physiological", "medium", {}, "rule:af@1", "rule")
    alerts = play(during(0, 100, rule, model), until=100)
    assert [a.event for a in alerts] == ["triggered"]
    assert alerts[0].source == "rule:af@1"
    assert alerts[0].t_event == RULES.timing_of("af").onset_s


def test_higher_priority_in_family_supersedes() -> None:
    detached = condition("sensor_detached", "medium", category="technical")
    poor = condition("poor_signal", "low", category="technical")
    poor_onset = RULES.timing_of("poor_signal").onset_s

    def script(t: float) -> Sequence[Condition]:
        return (poor, detached) if t < 60 else (poor,)

    alerts = play(script, until=200)
    fired = [(a.event, a.kind) for a in alerts if a.event == "triggered"]
    assert fired == [("triggered", "sensor_detached"), ("triggered", "poor_signal")]
    poor_alert = next(a for a in alerts if a.kind == "poor_signal")
    # Outranked while the detached alert sounded; its own onset delay starts afterwards.
    assert poor_alert.t_onset == 60 and poor_alert.t_event == 60 + poor_onset


def test_outranked_active_alert_waits_silently_and_stays_active() -> None:
    poor = condition("poor_signal", "low", category="technical")
    detached = condition("sensor_detached", "medium", category="technical")
    poor_onset = RULES.timing_of("poor_signal").onset_s

    def script(t: float) -> Sequence[Condition]:
        return (poor, detached) if 100 <= t < 400 else (poor,)

    alerts = play(script, until=450)
    poor_events = [(a.event, a.t_event) for a in alerts if a.kind == "poor_signal"]
    # Triggered on its own, then silent (no repeats) while outranked, never resolved.
    assert poor_events[0] == ("triggered", poor_onset)
    assert all(not 100 <= t < 400 for _, t in poor_events)
    assert "resolved" not in [e for e, _ in poor_events]


def test_ventricular_run_silences_af_but_other_families_still_fire() -> None:
    vt = condition("ventricular_run", "high")
    af = condition("af", "medium")
    fast = condition("tachycardia", "high")
    alerts = play(during(0, 60, vt, af, fast), until=60)
    assert {a.kind for a in alerts if a.event == "triggered"} == {"ventricular_run", "tachycardia"}


def test_alert_id_is_deterministic_and_specific() -> None:
    first = play(during(10, 20, condition()), until=20)
    again = play(during(10, 20, condition()), until=20)
    assert first[0].alert_id == again[0].alert_id == alert_id("p-1", "tachycardia", 10.0)
    assert alert_id("p-1", "tachycardia", 10.4) == alert_id("p-1", "tachycardia", 10.0)
    assert alert_id("p-2", "tachycardia", 10.0) != first[0].alert_id
    assert alert_id("p-1", "bradycardia", 10.0) != first[0].alert_id
    assert alert_id("p-1", "tachycardia", 11.0) != first[0].alert_id


def test_state_round_trip_gives_the_same_alerts() -> None:
    script = during(10, 200, condition())
    whole = play(script, until=300)
    tracker = AlertTracker(RULES)
    before = play(script, until=100, tracker=tracker)
    state = json.loads(json.dumps(tracker.to_dict()))
    restored = AlertTracker.from_dict(state, RULES)
    after = play(script, until=300, tracker=restored, start=101)
    assert before + after == whole
    assert restored.active_alerts() == {} and len(json.dumps(state)) < 2000


def test_restarted_worker_replaying_windows_does_not_refire() -> None:
    script = during(10, 200, condition())
    tracker = AlertTracker(RULES)
    fired = play(script, until=50, tracker=tracker)
    restored = AlertTracker.from_dict(tracker.to_dict(), RULES)
    # Kafka offsets were behind the saved state: windows 30..50 come again.
    assert play(script, until=50, tracker=restored, start=30) == []
    assert restored.seen(50) and not restored.seen(51)
    assert fired and fired[0].event == "triggered"


def test_replay_after_a_resolved_alert_does_not_fire_it_again() -> None:
    script = during(10, 30, condition())
    tracker = AlertTracker(RULES)
    fired = play(script, until=100, tracker=tracker)
    assert [a.event for a in fired] == ["triggered", "resolved"]
    restored = AlertTracker.from_dict(json.loads(json.dumps(tracker.to_dict())), RULES)
    assert play(script, until=100, tracker=restored) == []


def test_timings_are_configurable_per_kind_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VITALSTREAM_RULES__TIMING__AF__ONSET_S", "12")
    rules = load_settings().rules
    assert rules.timing_of("af").onset_s == 12
    assert rules.timing_of("af").repeat_s == RULES.timing_of("af").repeat_s
    assert rules.timing_of("tachycardia") == RULES.timing_of("tachycardia")
    alerts = play(during(0, 60, condition("af")), until=60, tracker=AlertTracker(rules))
    assert alerts[0].t_event == 12


def test_device_silent_triggers_and_the_next_window_resolves_it() -> None:
    tracker = AlertTracker(RULES)
    silent = condition("device_silent", category="technical")
    first = tracker.update_silence(CTX, 1000.0, silent)
    assert [(a.event, a.kind) for a in first] == [("triggered", "device_silent")]
    assert tracker.update_silence(CTX, 1000.0, silent) == []  # same timer tick again
    assert tracker.update_silence(CTX, 1005.0, silent) == []  # before the repeat interval
    resolved = tracker.update(CTX, 1010.0, [])
    assert [(a.event, a.alert_id) for a in resolved] == [("resolved", first[0].alert_id)]


def test_device_silent_onset_is_when_the_device_went_silent_not_when_it_was_noticed() -> None:
    """A worker catching up on a backlog notices a silence late; the alert (its onset and
    so its id) must be the same as live, or a replay raises a second one."""
    from stream.alerts.rules import silent_devices

    live, late = AlertTracker(RULES), AlertTracker(RULES)
    last_seen = {"dev-1": 1000.0}
    [noticed_at_once] = live.update_silence(
        CTX, 1300.5, silent_devices(last_seen, 1300.5, 300.0)["dev-1"]
    )
    [noticed_late] = late.update_silence(
        CTX, 1341.0, silent_devices(last_seen, 1341.0, 300.0)["dev-1"]
    )
    assert noticed_at_once.t_onset == noticed_late.t_onset == 1300.0
    assert noticed_at_once.alert_id == noticed_late.alert_id
    assert noticed_late.t_event == 1341.0


def test_alerts_carry_context_and_window() -> None:
    tracker = AlertTracker(RULES)
    onset = RULES.timing_of("fall").onset_s
    fall = condition("fall", "high")
    [alert] = tracker.update(CTX, 50.0 + onset, [fall], window=(40.0 + onset, 50.0 + onset))
    assert (alert.patient, alert.ward, alert.device_id) == ("p-1", "A", "dev-1")
    assert alert.window == (40.0 + onset, 50.0 + onset)
    assert alert.values == {"hr_bpm": 130.0} and alert.priority == "high"


def test_rules_and_tracker_together_on_a_tachycardia_episode() -> None:
    tracker = AlertTracker(RULES)
    alerts: list[Alert] = []
    for t in range(0, 120):
        hr = 135.0 if 20 <= t < 80 else (118.0 if 80 <= t < 90 else 72.0)
        features = {"ecg_hr_bpm": hr, "ecg_sqi": 0.9, "ecg_lead_off": 0.0, "ecg_flat": 0.0}
        conditions = evaluate(CTX, float(t), features, rules=RULES, fall=tracker.fall).conditions
        alerts += tracker.update(CTX, float(t), conditions)
    # 118 bpm is inside the hysteresis band (120 - 5): resolution waits until 90 + resolve_s.
    assert [(a.event, a.kind, a.t_event) for a in alerts] == [
        ("triggered", "tachycardia", 20 + RULES.timing_of("tachycardia").onset_s),
        ("resolved", "tachycardia", 89 + RULES.timing_of("tachycardia").resolve_s),
    ]


KINDS = ("tachycardia", "bradycardia", "af", "ventricular_run", "poor_signal", "fall")
step = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(("low", "medium", "high")), st.booleans()),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=120), st.integers(0, 120))
def test_lifecycle_invariants(steps: list, split: int) -> None:
    script = [
        [condition(k, p, sustain_only=s) for k, p, s in window] for window in steps
    ]  # fmt: skip
    tracker = AlertTracker(RULES)
    alerts: list[Alert] = []
    for t, conditions in enumerate(script):
        alerts += tracker.update(CTX, float(t), conditions)
        for kind in KINDS:
            assert list(tracker.active_alerts()).count(kind) <= 1

    lifecycle: dict[str, list[str]] = {}
    for alert in alerts:
        lifecycle.setdefault(alert.alert_id, []).append(alert.event)
    for history in lifecycle.values():
        assert history[0] == "triggered"  # never resolved (or repeated) before triggered
        assert "resolved" not in history[:-1]  # nothing after resolved
        assert history.count("triggered") == 1

    # A restart at any point (state through JSON) changes nothing.
    first = AlertTracker(RULES)
    resumed: list[Alert] = []
    for t, conditions in enumerate(script[:split]):
        resumed += first.update(CTX, float(t), conditions)
    second = AlertTracker.from_dict(json.loads(json.dumps(first.to_dict())), RULES)
    for t, conditions in enumerate(script):
        resumed += second.update(CTX, float(t), conditions)  # replays the first part too
    assert resumed == alerts


def test_the_ecg_history_is_saved_with_the_tracker_and_old_state_still_loads() -> None:
    tracker = AlertTracker(RULES)
    tracker.ecg.good_since = 1234.0
    restored = AlertTracker.from_dict(json.loads(json.dumps(tracker.to_dict())), RULES)
    assert restored.ecg.good_since == 1234.0
    older = {k: v for k, v in tracker.to_dict().items() if k != "ecg_good_since"}
    assert AlertTracker.from_dict(older, RULES).ecg.good_since is None


def test_one_window_back_in_the_hysteresis_band_does_not_restart_the_onset() -> None:
    """A rate climbing through a limit may read just under it for one window (its last
    beat is decided a window later): the onset wait goes on. Two such windows in a row
    restart it, as an absence does."""
    onset = RULES.timing_of("tachycardia").onset_s
    above, band = condition(), condition(sustain_only=True)
    one = play(lambda t: (band,) if t == 11 else (above,) if t >= 10 else (), until=20)
    assert events(one)[0] == ("triggered", "tachycardia", 10 + onset)
    assert one[0].t_onset == 10
    two = play(lambda t: (band,) if t in (11, 12) else (above,) if t >= 10 else (), until=20)
    assert events(two)[0] == ("triggered", "tachycardia", 13 + onset)
    gone = play(lambda t: () if t == 11 else (above,) if t >= 10 else (), until=20)
    assert events(gone)[0] == ("triggered", "tachycardia", 12 + onset)


def test_af_onset_begins_with_the_models_unconfirmed_call() -> None:
    """The rhythm model calls AF before the window's RR intervals confirm it: once they
    do, the 30 s count from the model's first call. An unconfirmed call alone never
    triggers, and one not confirmed within the gap AF tolerates starts nothing."""
    timing = RULES.timing_of("af")
    confirmed = condition("af")
    unconfirmed = replace(condition("af", sustain_only=True), begins_onset=True)
    alerts = play(lambda t: (unconfirmed,) if 10 <= t < 13 else (confirmed,) if t >= 13 else (), 60)
    assert events(alerts)[0] == ("triggered", "af", 10 + timing.onset_s)
    assert alerts[0].t_onset == 10
    assert play(lambda t: (unconfirmed,) if t >= 10 else (), 200) == []
    late = 10 + timing.onset_gap_s + 2  # absent longer than the gap AF tolerates
    alerts = play(lambda t: (unconfirmed,) if t == 10 else (confirmed,) if t >= late else (), 90)
    assert events(alerts)[0] == ("triggered", "af", late + timing.onset_s)
    # A tachycardia within its hysteresis band starts no onset wait.
    band_first = play(lambda t: (condition(sustain_only=True),) if t < 5 else (condition(),), 10)
    assert band_first[0].t_onset == 5
    # Nor does a sustain-only AF that may not begin one (an untrusted ECG's, say).
    untrusted = condition("af", sustain_only=True)
    alerts = play(lambda t: (untrusted,) if t < 5 else (confirmed,), 60)
    assert alerts[0].t_onset == 5


def test_a_begun_onset_is_held_while_its_beginning_condition_lasts() -> None:
    """A set-aside ECG's tachycardia (``begins_onset``, sustain-only) 4 s long before the
    other sources confirm it: the pending wait is held the whole time (longer than the
    gap the kind tolerates), so the first confirmed window triggers at once, its onset the
    ECG's first crossing. Begun alone, it never triggers; broken off for longer than the
    gap, the wait starts again at the confirmation."""
    timing = RULES.timing_of("tachycardia")
    begun = replace(condition(sustain_only=True), begins_onset=True)
    confirmed = condition()
    assert timing.onset_gap_s < 4
    alerts = play(lambda t: (begun,) if 10 <= t < 14 else (confirmed,) if t >= 14 else (), 30)
    assert events(alerts)[0] == ("triggered", "tachycardia", 14)
    assert alerts[0].t_onset == 10
    assert play(lambda t: (begun,) if t >= 10 else (), 60) == []
    late = 11 + timing.onset_gap_s + 2
    alerts = play(lambda t: (begun,) if t in (10, 11) else (confirmed,) if t >= late else (), 40)
    assert events(alerts)[0] == ("triggered", "tachycardia", late + timing.onset_s)


def test_an_af_wait_is_not_held_by_unconfirmed_model_calls() -> None:
    """AF's model calls begin its wait but do not hold it (``HELD_BY_BEGINNING``): a wait
    they began that no confirmed window joins within the gap AF tolerates ends, and the
    next call begins another; so the beats' confirmation never completes a wait older
    than the gap. Holding it raised false AF alarms on arrhythmia confounds."""
    timing = RULES.timing_of("af")
    unconfirmed = replace(condition("af", sustain_only=True), begins_onset=True)
    late = 10 + 3 * timing.onset_gap_s
    alerts = play(lambda t: (unconfirmed,) if 10 <= t < late else (condition("af"),), 120)
    assert late - timing.onset_gap_s - 1 <= alerts[0].t_onset < late
    assert events(alerts)[0] == ("triggered", "af", alerts[0].t_onset + timing.onset_s)
