"""Alert lifecycle history in InfluxDB: acknowledgements, resolutions and escalations.

Measurement ``alerts``: field ``event`` (plus ``escalation_level``), tags ``patient``
(pseudonym), ``ward``, ``kind``, ``priority``, timestamp = the event time. The writes use
influxdb-client's synchronous API on a worker thread, so a slow InfluxDB never stalls the
feed; a point written twice (the feed replays the topic at start) lands on the same
series and time, so replays are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from stream.config import Settings
from stream.records import Alert
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


class AlertAudit:
    """Batch listener for the feed; owns its InfluxDB client and writer task."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: asyncio.Queue[Point] = asyncio.Queue(maxsize=_QUEUE_POINTS)
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
            if event.alert.event in AUDITED_EVENTS:
                try:
                    self.queue.put_nowait(alert_point(event.alert))
                except asyncio.QueueFull:
                    self.dropped += 1

    async def run(self) -> None:
        while True:
            points = [await self.queue.get()]
            while not self.queue.empty() and len(points) < self.settings.influx.batch_lines:
                points.append(self.queue.get_nowait())
            try:
                await asyncio.to_thread(
                    self._write_api.write, bucket=self.settings.influx.bucket, record=points
                )
                self.written += len(points)
            except Exception as exc:  # InfluxDB down must not take the feed with it
                log.warning("could not write %d alert events to InfluxDB: %s", len(points), exc)
                await asyncio.sleep(1.0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()
