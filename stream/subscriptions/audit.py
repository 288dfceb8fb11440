"""Alert lifecycle history in InfluxDB: acknowledgements, resolutions and escalations.

Measurement ``alerts``: field ``event`` (plus ``escalation_level``), tags ``patient``
(pseudonym), ``ward``, ``kind``, ``priority``, timestamp = the event time. Every
``acknowledged`` event also becomes a line of measurement ``adjudications``
(:func:`stream.sinks.measurements.adjudication_line`: the verdict, the time to acknowledge
from the alarm's first publication as the feed's book saw it, the escalation level).
:func:`audit_lines` is the whole mapping, pure, so a simulation writes what the service
would. The writes use influxdb-client's synchronous API on a worker thread, so a slow
InfluxDB never stalls the feed; a point written twice (the feed replays the topic at
start) lands on the same series and time, so replays are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from stream.config import Settings
from stream.records import Alert
from stream.sinks.measurements import adjudication_line
from stream.subscriptions.book import AlertBook
from stream.subscriptions.feed import FeedEvent

log = logging.getLogger(__name__)

AUDITED_EVENTS = frozenset({"acknowledged", "resolved", "escalated"})
_QUEUE_POINTS = 50_000


def alert_point(alert: Alert) -> Point:
    return (
        Point("alerts")
        .tag("patient", alert.patient)
        .tag("ward", alert.ward)
        .tag("kind", alert.kind)
        .tag("priority", alert.priority)
        .field("event", alert.event)
        .field("escalation_level", alert.escalation_level)
        .time(int(alert.t_event * 1e9), WritePrecision.NS)
    )


def audit_lines(alert: Alert, triggered_at: float | None) -> list[str]:
    """The line-protocol lines the audit writes for one alert event: none for events it
    does not audit; the ``alerts`` point; for ``acknowledged``, the ``adjudications`` line
    too (``triggered_at``: when the alarm was first published, if known)."""
    if alert.event not in AUDITED_EVENTS:
        return []
    lines = [alert_point(alert).to_line_protocol()]
    if alert.event == "acknowledged" and (text := adjudication_line(alert, triggered_at)):
        lines.append(text)
    return lines


class AlertAudit:
    """Batch listener for the feed; owns its InfluxDB client and writer task.

    ``book`` (the feed's) says when each acknowledged alarm was first published; the feed
    applies a batch to it before its listeners see the batch.
    """

    def __init__(self, settings: Settings, book: AlertBook | None = None) -> None:
        self.settings = settings
        self.book = book
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=_QUEUE_POINTS)
        self.written = 0
        self.dropped = 0
        self._client = InfluxDBClient(
            url=settings.influx.url,
            token=settings.influx_token or "",
            org=settings.influx.org,
            timeout=int(settings.influx.timeout_s * 1000),
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def __call__(self, events: list[FeedEvent]) -> None:
        for event in events:
            alert = event.alert
            triggered_at = None if self.book is None else self.book.triggered_at(alert.alert_id)
            for text in audit_lines(alert, triggered_at):
                try:
                    self.queue.put_nowait(text)
                except asyncio.QueueFull:
                    self.dropped += 1

    async def run(self) -> None:
        while True:
            lines = [await self.queue.get()]
            while not self.queue.empty() and len(lines) < self.settings.influx.batch_lines:
                lines.append(self.queue.get_nowait())
            try:
                await asyncio.to_thread(
                    self._write_api.write, bucket=self.settings.influx.bucket, record=lines
                )
                self.written += len(lines)
            except Exception as exc:  # InfluxDB down must not take the feed with it
                log.warning("could not write %d alert events to InfluxDB: %s", len(lines), exc)
                await asyncio.sleep(1.0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
