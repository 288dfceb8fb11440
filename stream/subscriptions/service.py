"""The alert service's shared state and its lifetime: what the lifespan starts and stops.

:class:`AlertService` holds the settings, token store, feed, Kafka producer, webhook
manager and (with an InfluxDB token) the audit writer; the routes reach it through
:func:`~.deps.get_service`. :func:`running_service` starts Kafka, the feed, escalation and
the audit, and stops them again in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.kafka import client_options
from stream.records import Acknowledgement, Alert
from stream.subscriptions.audit import AlertAudit
from stream.subscriptions.feed import AlertFeed
from stream.subscriptions.tokens import TokenStore
from stream.subscriptions.webhooks import RetryPolicy, WebhookManager

log = logging.getLogger(__name__)


class Producer(Protocol):
    """What the service needs of a Kafka producer (``AIOKafkaProducer``, or a test fake)."""

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any: ...


@dataclass
class AlertService:
    """What the lifespan starts and the routes use."""

    settings: Settings
    tokens: TokenStore
    feed: AlertFeed
    producer: Producer
    webhooks: WebhookManager
    audit: AlertAudit | None

    async def publish_alert(self, alert: Alert) -> None:
        await self.producer.send_and_wait(
            self.settings.topics.alerts, alert.to_json(), key=alert.patient.encode()
        )

    async def publish_ack(self, ack: Acknowledgement) -> None:
        await self.producer.send_and_wait(
            self.settings.topics.acks, ack.to_json(), key=ack.patient.encode()
        )


async def escalate_forever(service: AlertService) -> None:
    """Publish an ``escalated`` event for every open alert due, once the feed has replayed."""
    after_s = service.settings.alerts_api.escalation_after_s
    tick_s = max(0.05, min(1.0, after_s / 4))
    await service.feed.ready.wait()  # state must be rebuilt from the topic first
    while True:
        for event in service.feed.book.due_escalations(time.time(), after_s):
            log.info("escalating alert %s to level %d", event.alert_id, event.escalation_level)
            await service.publish_alert(event)
        await asyncio.sleep(tick_s)


def _supervised(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped", name)

    return asyncio.create_task(run(), name=name)


@asynccontextmanager
async def running_service(
    settings: Settings, webhook_retry: RetryPolicy | None = None
) -> AsyncIterator[AlertService]:
    """Kafka producer, feed, escalation and audit running for the duration of the block."""
    tokens = TokenStore(settings.alerts_api.tokens_file)
    feed = AlertFeed(settings, tokens)
    producer = AIOKafkaProducer(
        **client_options(settings.kafka, "aiokafka"), acks="all", linger_ms=0
    )
    await producer.start()
    audit = AlertAudit(settings, feed.book) if settings.influx_token else None
    if audit is None:
        log.warning("no InfluxDB token: alert lifecycle events are not written to InfluxDB")
    webhooks = WebhookManager(settings, tokens, webhook_retry)
    feed.listeners.append(webhooks)
    if audit:
        feed.listeners.append(audit)
    service = AlertService(settings, tokens, feed, producer, webhooks, audit)
    tasks = [
        _supervised(feed.run(), "alert feed"),
        _supervised(escalate_forever(service), "escalation"),
    ]
    if audit:
        tasks.append(_supervised(audit.run(), "alert audit"))
    try:
        yield service
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await webhooks.close()
        await producer.stop()
        if audit:
            audit.close()
