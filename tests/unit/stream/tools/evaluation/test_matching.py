"""Matching alarms with labelled events: what is true, what is false, what is missed."""

from __future__ import annotations

import pytest

from producers.scenario import EVENT_CATEGORY, EVENT_KINDS
from stream.records import ALERT_KINDS, Alert
from stream.tools.evaluation.matching import (
    EXPLAINS,
    Alarm,
    KindTiming,
    Label,
    Timings,
    designed_delay,
    explained_by,
    explains,
    match_run,
    triggered_alarms,
)

TIMINGS = Timings(
    {
        "tachycardia": KindTiming(2.0, 15.0),
        "af": KindTiming(30.0, 30.0),
        "poor_signal": KindTiming(30.0, 15.0),
        "device_silent": KindTiming(300.0, 0.0),
        "news2": KindTiming(5.0, 30.0),
    },
    KindTiming(5.0, 15.0),
)
PHYSIOLOGICAL = {
    "tachycardia", "bradycardia", "af", "ventricular_run", "desaturation", "tachypnoea",
    "bradypnoea", "fever", "hypothermia", "fall", "news2", "deterioration",
}  # fmt: skip


def alarm(
    kind: str = "tachycardia",
    onset: float = 100.0,
    *,
    device: str = "dev-1",
    raised: float | None = None,
    priority: str = "medium",
    ident: str = "",
) -> Alarm:
    category = "physiological" if kind in PHYSIOLOGICAL else "technical"
    raised = onset + 2.0 if raised is None else raised
    return Alarm(ident or f"{device}-{kind}-{onset}", device, kind, priority, category, onset,
                 raised)  # fmt: skip


# -- the table -------------------------------------------------------------------------------


def test_every_event_kind_of_the_simulator_has_an_entry() -> None:
    assert set(EXPLAINS) == set(EVENT_KINDS)


def test_the_table_names_only_alert_kinds_the_system_raises() -> None:
    for event, kinds in EXPLAINS.items():
        assert kinds <= set(ALERT_KINDS), event


def test_clinical_and_technical_events_explain_the_alert_of_their_name() -> None:
    for event, category in EVENT_CATEGORY.items():
        if category in ("clinical", "technical"):
            assert event in EXPLAINS[event], event


def test_artefacts_explain_technical_alerts_only_and_confounds_nothing() -> None:
    for event, category in EVENT_CATEGORY.items():
        if category == "artefact":
            assert EXPLAINS[event] and not EXPLAINS[event] & PHYSIOLOGICAL, event
        if category == "confound":
            assert EXPLAINS[event] == frozenset(), event


def test_a_detached_sensor_never_explains_a_heart_rate_alarm() -> None:
    assert not EXPLAINS["sensor_detached"] & {"tachycardia", "bradycardia", "af"}


def test_event_kinds_added_later_fall_back_on_their_category() -> None:
    assert explained_by("hypothermia") == frozenset({"hypothermia"})  # unknown: clinical


# -- one alarm, one label -------------------------------------------------------------------


def test_an_onset_exactly_at_the_end_plus_the_resolve_delay_is_explained() -> None:
    label = Label("dev-1", "tachycardia", 60.0, 240.0)
    assert explains(label, alarm(onset=240.0 + 15.0), TIMINGS)
    assert not explains(label, alarm(onset=240.0 + 15.01), TIMINGS)


def test_an_onset_exactly_at_the_start_is_explained_and_before_it_is_not() -> None:
    label = Label("dev-1", "tachycardia", 60.0, 240.0)
    assert explains(label, alarm(onset=60.0), TIMINGS)
    assert not explains(label, alarm(onset=59.9), TIMINGS)


def test_the_resolve_delay_is_the_alarm_kinds() -> None:
    label = Label("dev-1", "af", 60.0, 240.0)
    assert explains(label, alarm("af", onset=240.0 + 30.0), TIMINGS)  # af resolves in 30 s
    assert not explains(label, alarm("tachycardia", onset=240.0 + 30.0), TIMINGS)  # 15 s


def test_an_alarm_explained_only_by_another_devices_label_is_false() -> None:
    labels = [Label("dev-2", "tachycardia", 60.0, 240.0)]
    run = match_run(labels, [alarm(onset=100.0, device="dev-1")], TIMINGS)
    assert [f.alarm.device_id for f in run.false_alarms] == ["dev-1"]
    assert run.false_alarms[0].periods == ()
    assert not run.outcomes[0].detected


def test_a_technical_alarm_during_an_artefact_is_explained() -> None:
    labels = [Label("dev-1", "walking", 0.0, 120.0)]
    run = match_run(labels, [alarm("poor_signal", onset=40.0)], TIMINGS)
    assert run.false_alarms == []
    assert not run.outcomes[0].target  # an artefact is no recall target


def test_a_physiological_alarm_during_an_artefact_is_false_and_says_where_it_fell() -> None:
    labels = [Label("dev-1", "walking", 0.0, 120.0), Label("dev-1", "fall", 300.0, 400.0)]
    run = match_run(labels, [alarm("tachycardia", onset=50.0, priority="high")], TIMINGS)
    [false] = run.false_alarms
    assert false.periods == (labels[0],)
    assert false.in_artefact_or_confound


def test_any_alarm_during_a_confound_is_false() -> None:
    labels = [Label("dev-1", "bigeminy", 0.0, 120.0)]
    run = match_run(labels, [alarm("poor_signal", 10.0), alarm("bradycardia", 20.0)], TIMINGS)
    assert len(run.false_alarms) == 2
    assert all(f.in_artefact_or_confound for f in run.false_alarms)


def test_one_alarm_may_explain_two_labels() -> None:
    labels = [Label("dev-1", "desaturation", 60.0, 300.0),
              Label("dev-1", "tachypnoea", 80.0, 300.0)]  # fmt: skip
    run = match_run(labels, [alarm("news2", onset=90.0)], TIMINGS)
    assert [o.detected for o in run.outcomes] == [True, True]
    assert run.false_alarms == []


# -- latency and what can be scored ---------------------------------------------------------


def test_latency_is_the_first_matching_alarm_raised_and_beyond_its_kinds_delay() -> None:
    label = Label("dev-1", "af", 100.0, 400.0)
    later = alarm("af", onset=101.0, raised=140.0)
    first = alarm("tachycardia", onset=104.0, raised=107.0)
    outcome = match_run([label], [later, first], TIMINGS).outcomes[0]
    assert outcome.first == first
    assert outcome.latency_s == pytest.approx(7.0)
    assert outcome.beyond_delay_s == pytest.approx(7.0 - 2.0)  # tachycardia's delay, not af's
    assert len(outcome.matches) == 2


def test_an_event_shorter_than_its_designed_delay_is_not_scored() -> None:
    short_silence = Label("dev-1", "device_silent", 60.0, 90.0)
    short_af = Label("dev-1", "af", 60.0, 80.0)
    run = match_run([short_silence, short_af], [], TIMINGS)
    assert [o.scorable for o in run.outcomes] == [False, False]
    assert designed_delay("device_silent", TIMINGS) == 300.0
    assert match_run([Label("dev-1", "af", 60.0, 90.0)], [], TIMINGS).outcomes[0].scorable


def test_designed_delay_of_an_artefact_is_its_quickest_technical_alert() -> None:
    assert designed_delay("walking", TIMINGS) == 5.0  # sensor_detached: the default timing
    assert designed_delay("bigeminy", TIMINGS) == 0.0


# -- alert events to alarms -----------------------------------------------------------------


def _alert(event: str, alert_id: str = "a-1", t: float = 100.0) -> Alert:
    return Alert(
        alert_id=alert_id, event=event, kind="tachycardia", category="physiological",
        priority="medium", patient="p", ward="w", device_id="dev-1", t_onset=98.0, t_event=t,
        window=(90.0, 100.0), source="rule:tachycardia@1",
    )  # fmt: skip


def test_only_triggered_events_are_alarms_and_each_alert_once() -> None:
    events = [
        _alert("triggered"), _alert("repeated", t=220.0), _alert("resolved", t=300.0),
        _alert("triggered"),  # the same alert triggered again (a replay): one alarm
        _alert("triggered", alert_id="a-2", t=400.0),
    ]  # fmt: skip
    alarms, repeats = triggered_alarms(events)
    assert [(a.alert_id, a.t_event) for a in alarms] == [("a-1", 100.0), ("a-2", 400.0)]
    assert repeats == 1
    assert alarms[0].t_onset == 98.0 and alarms[0].source == "rule:tachycardia@1"
