"""The alert book: what each alert's lifecycle looks like, derived only from its events.

The feed applies every event of the alerts topic, from the beginning, to one
:class:`AlertBook`; escalation, acknowledgement and FHIR read it. Because the state is
rebuilt from the topic (which holds earlier ``acknowledged`` and ``escalated`` events),
a restarted server neither re-escalates nor forgets an acknowledgement.

Escalation groups (level -> who is paged) are a deployment matter; the book only counts.

An acknowledgement may carry the clinician's verdict on the alarm (``actionable``,
``not_actionable``, ``artefact``; :data:`stream.records.Verdict`); the book keeps the
``acknowledged`` event (:attr:`BookEntry.acknowledgement`) and when the alarm was first
published (:attr:`BookEntry.triggered_at`), from which the time to acknowledge counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stream.records import Acknowledgement, Alert, Verdict

MAX_ESCALATION_LEVEL = 3
# Closed alerts stay visible (FHIR, late acks get a precise 409) for this long.
_KEEP_CLOSED_S = 24 * 3600.0

Status = Literal["open", "acknowledged", "resolved"]


class AckError(Exception):
    """An acknowledgement that cannot apply: ``status`` 404 (unknown) or 409 (closed)."""

    def __init__(self, status: Literal[404, 409], code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass
class BookEntry:
    latest: Alert
    status: Status = "open"
    level: int = 0
    # Wall-clock time the current escalation step started (trigger or last escalation).
    step_started: float = 0.0
    updated: float = 0.0
    # Wall-clock time the alarm's first ``triggered`` event was published (None: the book
    # never saw it, e.g. retention deleted it before a restart).
    triggered_at: float | None = None
    # The ``acknowledged`` event that closed it for escalation (who, note, verdict, when).
    acknowledgement: Alert | None = None

    def view(self) -> Alert:
        """The alert as it stands: its latest triggering event with ``event`` set to its
        status once closed, and the acknowledgement's who, note and verdict if any."""
        alert = self.latest
        if self.status != "open":
            alert = alert.model_copy(update={"event": self.status})
        if self.acknowledgement is not None:
            ack = self.acknowledgement
            alert = alert.model_copy(
                update={
                    "acknowledged_by": ack.acknowledged_by,
                    "note": ack.note,
                    "verdict": ack.verdict,
                }
            )
        return alert


def _wall_time(alert: Alert) -> float:
    return alert.emitted_at or alert.t_event


class AlertBook:
    """Per-alert lifecycle state; every method is pure in-memory bookkeeping."""

    def __init__(self) -> None:
        self.entries: dict[str, BookEntry] = {}

    def apply(self, alert: Alert) -> None:
        """Fold one event in; applying the same event twice changes nothing."""
        at = _wall_time(alert)
        entry = self.entries.get(alert.alert_id)
        if entry is None:
            entry = self.entries[alert.alert_id] = BookEntry(latest=alert, step_started=at)
        entry.updated = max(entry.updated, at)
        if alert.event == "triggered" and entry.triggered_at is None:
            entry.triggered_at = at
        if alert.event in ("triggered", "repeated"):
            if alert.priority != entry.latest.priority or alert.event == "triggered":
                entry.latest = alert
        elif alert.event == "escalated":
            if alert.escalation_level > entry.level:
                entry.level = alert.escalation_level
                entry.step_started = max(entry.step_started, at)
        elif alert.event == "acknowledged":
            if entry.status == "open":
                entry.status = "acknowledged"
                entry.acknowledgement = alert
        elif alert.event == "resolved":
            entry.status = "resolved"

    def due_escalations(self, now: float, after_s: float) -> list[Alert]:
        """``escalated`` events for open HIGH alerts whose current step is older than after_s."""
        due: list[Alert] = []
        for entry in self.entries.values():
            if (
                entry.status == "open"
                and entry.latest.priority == "high"
                and entry.level < MAX_ESCALATION_LEVEL
                and now - entry.step_started >= after_s
            ):
                event = entry.latest.model_copy(
                    update={
                        "event": "escalated",
                        "escalation_level": entry.level + 1,
                        "t_event": now,
                        "emitted_at": now,
                        "message": f"unacknowledged after {now - entry.step_started:.0f} s: "
                        f"escalated to level {entry.level + 1}",
                    }
                )
                # Applied at once so the next tick does not repeat it before the feed echoes it.
                self.apply(event)
                due.append(event)
        return due

    def acknowledge(
        self, alert_id: str, *, by: str, note: str, now: float, verdict: Verdict | None = None
    ) -> tuple[Acknowledgement, Alert]:
        """The acknowledgement and the feed's ``acknowledged`` event (both carrying the
        verdict, if given), or :class:`AckError`."""
        entry = self.entries.get(alert_id)
        if entry is None:
            raise AckError(404, "unknown_alert", "no such alert (or it closed long ago)")
        if entry.status != "open":
            raise AckError(409, f"already_{entry.status}", f"alert is already {entry.status}")
        alert = entry.latest
        ack = Acknowledgement(
            alert_id=alert_id,
            by=by,
            at=now,
            note=note,
            patient=alert.patient,
            ward=alert.ward,
            verdict=verdict,
        )
        event = alert.model_copy(
            update={
                "event": "acknowledged",
                "t_event": now,
                "emitted_at": now,
                "acknowledged_by": by,
                "note": note or None,
                "verdict": verdict,
                "escalation_level": entry.level,
                "message": f"acknowledged by {by}" + (f": {verdict}" if verdict else ""),
            }
        )
        self.apply(event)
        return ack, event

    def triggered_at(self, alert_id: str) -> float | None:
        """When the alarm was first published (wall clock), if the book saw it."""
        entry = self.entries.get(alert_id)
        return None if entry is None else entry.triggered_at

    def for_patient(self, patient: str) -> list[BookEntry]:
        return [e for e in self.entries.values() if e.latest.patient == patient]

    def prune(self, now: float) -> None:
        """Forget alerts closed, or silent, for longer than a day."""
        stale = [
            alert_id for alert_id, e in self.entries.items() if now - e.updated > _KEEP_CLOSED_S
        ]
        for alert_id in stale:
            del self.entries[alert_id]
