"""What the alert audit writes to InfluxDB for each alert event (no InfluxDB needed: the
lines are checked before any write)."""

from __future__ import annotations

from stream.config import load_settings
from stream.subscriptions.audit import AlertAudit, audit_lines
from stream.subscriptions.book import AlertBook
from stream.subscriptions.cursor import Cursor
from stream.subscriptions.feed import FeedEvent

T0 = 1_700_000_000.0


def _event(alert) -> FeedEvent:
    return FeedEvent(0, 0, alert, Cursor({0: 1}), "", alert.to_json())


def test_worker_events_are_not_audited_and_lifecycle_events_are(alert_factory) -> None:
    assert audit_lines(alert_factory(event="triggered"), None) == []
    assert audit_lines(alert_factory(event="repeated"), None) == []
    [resolved] = audit_lines(alert_factory(event="resolved"), None)
    assert resolved.startswith("alerts,") and 'event="resolved"' in resolved
    [escalated] = audit_lines(alert_factory(event="escalated", escalation_level=2), None)
    assert 'escalation_level=2i,event="escalated"' in escalated


def test_an_acknowledgement_is_an_alerts_point_and_an_adjudication(alert_factory) -> None:
    book = AlertBook()
    book.apply(alert_factory(alert_id="x", emitted_at=T0 + 2, t_onset=T0 - 10))
    [escalated] = book.due_escalations(T0 + 200, after_s=120)
    _, acknowledged = book.acknowledge(
        "x", by="nurse-7", note="", now=T0 + 302, verdict="not_actionable"
    )
    audit = AlertAudit(load_settings(), book)
    audit([_event(escalated), _event(acknowledged)])
    lines = [audit.queue.get_nowait() for _ in range(audit.queue.qsize())]
    assert [text.split(",")[0] for text in lines] == ["alerts", "alerts", "adjudications"]
    adjudication = lines[2]
    assert ",verdict=not_actionable," in adjudication
    # From the alarm's first publication (T0 + 2) to the acknowledgement (T0 + 302).
    assert "latency_s=300.0," in adjudication and "since_onset_s=312.0," in adjudication
    assert "escalation_level=1i" in adjudication and 'by="nurse-7"' in adjudication
    audit.close()
