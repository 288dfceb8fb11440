import pytest

from stream.subscriptions.book import MAX_ESCALATION_LEVEL, AckError, AlertBook

T0 = 1_700_000_000.0


def test_unacknowledged_high_alert_escalates_once_per_step(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0))
    assert book.due_escalations(T0 + 119, after_s=120) == []
    [first] = book.due_escalations(T0 + 120, after_s=120)
    assert (first.event, first.escalation_level, first.alert_id) == ("escalated", 1, "x")
    assert book.due_escalations(T0 + 121, after_s=120) == []  # not repeated before next step
    [second] = book.due_escalations(T0 + 240, after_s=120)
    assert second.escalation_level == 2


def test_escalation_is_capped(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0))
    levels = [
        e.escalation_level for k in range(1, 10) for e in book.due_escalations(T0 + k * 10, 10)
    ]
    assert levels == list(range(1, MAX_ESCALATION_LEVEL + 1))


def test_medium_alerts_do_not_escalate(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(priority="medium", emitted_at=T0))
    assert book.due_escalations(T0 + 10_000, after_s=1) == []


def test_acknowledgement_stops_escalation_and_is_refused_twice(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0, ward="B", patient="p-9"))
    ack, event = book.acknowledge("x", by="nurse-1", note="on it", now=T0 + 5)
    assert (ack.by, ack.ward, ack.patient) == ("nurse-1", "B", "p-9")
    assert (event.event, event.acknowledged_by, event.note) == ("acknowledged", "nurse-1", "on it")
    assert book.due_escalations(T0 + 10_000, after_s=1) == []
    with pytest.raises(AckError) as caught:
        book.acknowledge("x", by="nurse-2", note="", now=T0 + 6)
    assert caught.value.status == 409
    with pytest.raises(AckError) as unknown:
        book.acknowledge("nope", by="n", note="", now=T0)
    assert unknown.value.status == 404


def test_state_rebuilt_from_events_does_not_escalate_again(alert_factory) -> None:
    """A restart replays the topic: earlier escalations count, so nothing is repeated."""
    first = AlertBook()
    trigger = alert_factory(alert_id="x", emitted_at=T0)
    first.apply(trigger)
    [escalated] = first.due_escalations(T0 + 120, after_s=120)
    restarted = AlertBook()
    for event in (trigger, escalated):
        restarted.apply(event)
    assert restarted.due_escalations(T0 + 150, after_s=120) == []
    [again] = restarted.due_escalations(T0 + 240, after_s=120)
    assert again.escalation_level == 2
    restarted.apply(escalated)  # the echo of an already-applied event changes nothing
    assert restarted.entries["x"].level == 2


def test_resolved_alert_neither_escalates_nor_accepts_ack(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0))
    book.apply(alert_factory(alert_id="x", event="resolved", emitted_at=T0 + 1))
    assert book.due_escalations(T0 + 1000, after_s=1) == []
    with pytest.raises(AckError, match="resolved"):
        book.acknowledge("x", by="n", note="", now=T0 + 2)


def test_a_verdict_travels_on_the_ack_and_the_acknowledged_event(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0))
    ack, event = book.acknowledge("x", by="nurse-1", note="", now=T0 + 42, verdict="artefact")
    assert (ack.verdict, event.verdict, event.note) == ("artefact", "artefact", None)
    assert event.message == "acknowledged by nurse-1: artefact"
    assert book.entries["x"].acknowledgement == event


def test_an_acknowledgement_without_a_verdict_is_still_one(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0))
    ack, event = book.acknowledge("x", by="nurse-1", note="seen", now=T0 + 5)
    assert (ack.verdict, event.verdict, book.entries["x"].status) == (None, None, "acknowledged")


def test_the_trigger_time_is_the_first_triggered_event_and_survives_a_replay(
    alert_factory,
) -> None:
    trigger = alert_factory(alert_id="x", emitted_at=T0 + 1, priority="medium")
    repeat = trigger.model_copy(
        update={"event": "repeated", "priority": "high", "emitted_at": T0 + 30}
    )
    book = AlertBook()
    for event in (trigger, trigger, repeat):  # a trigger applied twice changes nothing
        book.apply(event)
    assert book.triggered_at("x") == T0 + 1
    assert book.entries["x"].latest.priority == "high"
    assert book.triggered_at("never-seen") is None


def test_the_view_of_an_entry_shows_its_status_and_the_acknowledgement(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0))
    assert book.entries["x"].view().event == "triggered"
    _, acknowledged = book.acknowledge(
        "x", by="nurse-1", note="on it", now=T0 + 9, verdict="actionable"
    )
    book.apply(acknowledged)  # the feed's echo of it changes nothing
    book.apply(alert_factory(alert_id="x", event="resolved", emitted_at=T0 + 60))
    view = book.entries["x"].view()
    assert (view.event, view.acknowledged_by, view.note, view.verdict) == (
        "resolved",
        "nurse-1",
        "on it",
        "actionable",
    )
