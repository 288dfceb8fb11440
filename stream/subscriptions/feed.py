"""The alert feed: one shared Kafka consumer fanned out to every subscriber, resumable.

Design (why not one consumer per connection): a single consumer reads the alerts topic
from the beginning, folds every event into the :class:`~.book.AlertBook` (escalation and
acknowledgement state survive restarts because they are rebuilt from the topic), and keeps
the most recent events in a ring. A subscriber is a bounded queue fed synchronously by
that consumer, so fan-out to hundreds of connections costs one decode per event.

Resuming: a cursor is the per-partition next offset. When the ring still holds every
event after the cursor, the backlog comes from the ring (registration and backlog are taken
in one synchronous step, so nothing is lost or repeated between them). When the cursor is
older than the ring, that connection reads Kafka itself (``assign`` + ``seek``, no group)
until it reaches what the ring holds, then joins the shared feed.

Slow subscribers: the queue holds ``client_buffer`` events; on overflow the subscriber is
marked lagging and its stream ends with a ``lagging`` delivery carrying its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from stream.config import Settings
from stream.kafka import client_options, ensure_topics, stream_topics
from stream.records import Alert
from stream.subscriptions.book import AlertBook
from stream.subscriptions.cursor import Cursor, CursorError
from stream.subscriptions.filters import AlertFilter
from stream.subscriptions.tokens import TokenRecord, TokenStore

log = logging.getLogger(__name__)

RING_EVENTS = 10_000
_BATCH_RECORDS = 500


@dataclass(frozen=True, slots=True)
class FeedEvent:
    partition: int
    offset: int
    alert: Alert
    position: Cursor  # the feed's position right after this event
    # Encoded once here, not once per subscriber: fan-out is then mostly copying bytes.
    cursor_text: str
    alert_json: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a subscriber's stream yields; ``cursor`` resumes right after it."""

    kind: Literal["ready", "alert", "lagging", "expired"]
    cursor: str
    alert: Alert | None = None
    alert_json: bytes | None = None


BatchListener = Callable[[list[FeedEvent]], None]


class Subscription:
    """One subscriber: its scope, filter, position and bounded live queue."""

    def __init__(
        self, scope: TokenRecord, alert_filter: AlertFilter, start: Cursor, buffer: int
    ) -> None:
        self.scope = scope
        self.filter = alert_filter
        self.cursor = start
        self.queue: asyncio.Queue[FeedEvent] = asyncio.Queue(maxsize=buffer)
        self.backlog: list[FeedEvent] = []
        self.lagging = False

    def wants(self, alert: Alert) -> bool:
        return self.scope.allows(alert) and self.filter.matches(alert)

    def offer(self, event: FeedEvent) -> None:
        """Called by the feed for every event; never blocks, never grows past the buffer."""
        if self.lagging or not self.wants(event.alert):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagging = True


class AlertFeed:
    """The shared consumer, ring, book and subscriber registry of one server process."""

    def __init__(self, settings: Settings, tokens: TokenStore) -> None:
        self.settings = settings
        self.topic = settings.topics.alerts
        self.tokens = tokens
        self.book = AlertBook()
        self.ring: deque[FeedEvent] = deque()
        self.base = Cursor()  # ring holds every event at or after base
        self.position = Cursor()
        self.partitions: list[int] = []
        self.ready = asyncio.Event()
        self.subscribers: set[Subscription] = set()
        self.listeners: list[BatchListener] = []
        self.consumed = 0

    # ---- the shared consumer -------------------------------------------------------------

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings.kafka, "aiokafka"),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=250,
        )
        await consumer.start()
        try:
            tps = await self._assign(consumer)
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, begin[tp])
            self.base = Cursor({tp.partition: begin[tp] for tp in tps})
            self.position = Cursor(self.base)
            startup_end = Cursor({tp.partition: end[tp] for tp in tps})
            log.info(
                "alert feed replaying %d events",
                sum(startup_end.values()) - sum(self.base.values()),
            )
            while True:
                if not self.ready.is_set() and self.position.covers(startup_end):
                    log.info("alert feed caught up: %d alerts tracked", len(self.book.entries))
                    self.ready.set()
                batch = await consumer.getmany(timeout_ms=200, max_records=_BATCH_RECORDS)
                events = [
                    event
                    for tp, records in batch.items()
                    for record in records
                    if (event := self._consume(tp.partition, record.offset, record.value))
                ]
                if events:
                    for listener in self.listeners:
                        listener(events)
                self.book.prune(time.time())
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            # partitions_for_topic() only knows subscribed topics; with manual assignment the
            # client's full metadata fetch is the way to learn the partitions.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(self.topic)
            if partitions:
                self.partitions = sorted(partitions)
                tps = [TopicPartition(self.topic, p) for p in self.partitions]
                consumer.assign(tps)
                return tps
            # A subscriber may connect before any worker has run (a fresh stack): the feed
            # creates the topic it reads, as the worker would, and serves an empty feed
            # until alerts come, instead of answering 503 until then.
            wanted = {self.topic: stream_topics(self.settings).get(self.topic, {})}
            try:
                created = await asyncio.to_thread(ensure_topics, self.settings, wanted)
            except Exception as exc:  # Kafka unreachable or not allowed: wait and retry
                log.warning("alerts topic %s is missing and cannot be created (%s); retrying",
                            self.topic, exc)  # fmt: skip
                await asyncio.sleep(2.0)
            else:
                if created:
                    log.info("created the alerts topic %s", self.topic)
                await asyncio.sleep(0.2)  # metadata of the new topic

    def _consume(self, partition: int, offset: int, value: bytes | None) -> FeedEvent | None:
        self.position = self.position.after(partition, offset)
        try:
            alert = Alert.from_json(value or b"")
        except ValidationError:
            log.warning("skipping undecodable alert at partition %d offset %d", partition, offset)
            return None
        self.consumed += 1
        event = FeedEvent(
            partition, offset, alert, self.position, self.position.encode(), alert.to_json()
        )
        self.book.apply(alert)
        if len(self.ring) >= RING_EVENTS:
            evicted = self.ring.popleft()
            self.base = self.base.after(evicted.partition, evicted.offset)
        self.ring.append(event)
        for subscriber in self.subscribers:
            subscriber.offer(event)
        return event

    # ---- subscribers ---------------------------------------------------------------------

    def check_cursor(self, cursor: Cursor) -> None:
        """Refuse cursors this feed cannot have issued (unknown partition, future offset)."""
        for partition, offset in cursor.items():
            if partition not in self.partitions:
                raise CursorError(f"cursor names partition {partition}, which the topic lacks")
            if offset > self.position.get(partition, 0):
                raise CursorError(f"cursor is ahead of the feed on partition {partition}")

    def _ring_covers(self, cursor: Cursor) -> bool:
        return all(cursor.get(p, 0) >= self.base.get(p, 0) for p in self.partitions)

    def _join(self, sub: Subscription) -> None:
        """Backlog from the ring plus live registration, in one step with no await."""
        start = sub.cursor
        sub.backlog = [e for e in self.ring if e.offset >= start.get(e.partition, 0)]
        self.subscribers.add(sub)

    async def deliveries(
        self, scope: TokenRecord, alert_filter: AlertFilter, start: Cursor | None
    ) -> AsyncIterator[Delivery]:
        """Everything the subscriber may see after ``start`` (default: now), then live."""
        sub = Subscription(
            scope,
            alert_filter,
            Cursor(self.position) if start is None else start,
            self.settings.alerts_api.client_buffer,
        )
        try:
            if self._ring_covers(sub.cursor):
                self._join(sub)
                yield Delivery("ready", sub.cursor.encode())
            else:
                yield Delivery("ready", sub.cursor.encode())
                async for delivery in self._read_kafka(sub):
                    yield delivery
                if sub.lagging:
                    return
                self._join(sub)
            for event in sub.backlog:
                if (delivery := self._deliver(sub, event)) is not None:
                    if delivery.kind != "alert":
                        self.subscribers.discard(sub)
                    yield delivery
                    if delivery.kind != "alert":
                        return
            sub.backlog = []
            while True:
                if sub.lagging:
                    self.subscribers.discard(sub)
                    yield Delivery("lagging", sub.cursor.encode())
                    return
                event = await sub.queue.get()
                if (delivery := self._deliver(sub, event)) is not None:
                    if delivery.kind != "alert":
                        self.subscribers.discard(sub)
                    yield delivery
                    if delivery.kind != "alert":
                        return
        finally:
            self.subscribers.discard(sub)

    def _deliver(self, sub: Subscription, event: FeedEvent) -> Delivery | None:
        if not self.tokens.still_valid(sub.scope):
            return Delivery("expired", sub.cursor.encode())
        if event.offset < sub.cursor.get(event.partition, 0) or not sub.wants(event.alert):
            return None
        if event.position.covers(sub.cursor):
            sub.cursor = event.position
            return Delivery("alert", event.cursor_text, event.alert, event.alert_json)
        sub.cursor = sub.cursor.merged(event.position)
        return Delivery("alert", sub.cursor.encode(), event.alert, event.alert_json)

    async def _read_kafka(self, sub: Subscription) -> AsyncIterator[Delivery]:
        """A private consumer from an old cursor, until the ring covers its position."""
        consumer = AIOKafkaConsumer(
            **client_options(self.settings.kafka, "aiokafka"),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in self.partitions]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, sub.cursor.get(tp.partition, 0))
            while not self._ring_covers(sub.cursor):
                batch = await consumer.getmany(timeout_ms=200, max_records=_BATCH_RECORDS)
                for tp, records in batch.items():
                    for record in records:
                        if not self.tokens.still_valid(sub.scope):
                            yield Delivery("expired", sub.cursor.encode())
                            sub.lagging = True
                            return
                        sub.cursor = sub.cursor.after(tp.partition, record.offset)
                        try:
                            alert = Alert.from_json(record.value or b"")
                        except ValidationError:
                            continue
                        if sub.wants(alert):
                            yield Delivery("alert", sub.cursor.encode(), alert, alert.to_json())
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def stats(self) -> dict[str, int | bool]:
        return {
            "ready": self.ready.is_set(),
            "subscribers": len(self.subscribers),
            "events_consumed": self.consumed,
        }
