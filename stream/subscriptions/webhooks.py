"""Webhooks: signed alert deliveries, one bounded queue and worker per endpoint.

Each delivery is a JSON body ``{"cursor": ..., "alert": {...}}`` POSTed with
``X-VitalStream-Signature: sha256=<hex HMAC-SHA256(secret, body)>``. Failures (connection
errors, 408, 429, 5xx) are retried with exponential backoff, at most
``RetryPolicy.attempts`` times; other 4xx are final. Every attempt lands in a bounded
per-endpoint delivery log. A dead endpoint only fills its own queue (the oldest waiting
delivery is dropped and logged), never anyone else's.

The secret is ``alerts_api.webhook_secret`` when configured (shared out of band), otherwise
a random per-endpoint secret returned once when the endpoint is created. Endpoints live in
memory: after a restart they must be registered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from stream.config import Settings
from stream.subscriptions.feed import FeedEvent
from stream.subscriptions.filters import AlertFilter
from stream.subscriptions.tokens import TokenRecord, TokenStore

SIGNATURE_HEADER = "X-VitalStream-Signature"
QUEUE_PER_ENDPOINT = 1000
LOG_PER_ENDPOINT = 500
_RETRYABLE = {408, 429}


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does: constant-time comparison of the signature header."""
    return hmac.compare_digest(sign(secret, body), signature)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: first_delay_s * factor**n, capped, for at most ``attempts`` tries."""

    attempts: int = 5
    first_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 60.0
    timeout_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay_s * self.factor ** (attempt - 1), self.max_delay_s)


@dataclass
class Endpoint:
    id: str
    url: str
    filter: AlertFilter
    owner: TokenRecord
    secret: bytes
    queue: asyncio.Queue[tuple[str, bytes, str, str]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_PER_ENDPOINT)
    )
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_PER_ENDPOINT))
    task: asyncio.Task[None] | None = None
    disabled: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "filters": self.filter.model_dump(mode="json"),
            "queued": self.queue.qsize(),
            "disabled": self.disabled,
        }


class WebhookManager:
    """Registry of endpoints; a batch listener of the feed."""

    def __init__(
        self, settings: Settings, tokens: TokenStore, retry: RetryPolicy | None = None
    ) -> None:
        secret = settings.alerts_api.webhook_secret
        self.shared_secret = secret.get_secret_value().encode() if secret else None
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.endpoints: dict[str, Endpoint] = {}
        self.http = httpx.AsyncClient(timeout=self.retry.timeout_s, follow_redirects=False)

    def register(
        self, owner: TokenRecord, url: str, alert_filter: AlertFilter
    ) -> tuple[Endpoint, str | None]:
        """The endpoint, and its secret when it was generated here (shown once)."""
        generated = None if self.shared_secret else secrets.token_urlsafe(32)
        endpoint = Endpoint(
            id=uuid.uuid4().hex[:12],
            url=url,
            filter=alert_filter,
            owner=owner,
            secret=self.shared_secret or generated.encode(),  # type: ignore[union-attr]
        )
        endpoint.task = asyncio.create_task(self._work(endpoint), name=f"webhook-{endpoint.id}")
        self.endpoints[endpoint.id] = endpoint
        return endpoint, generated

    def owned(self, owner: TokenRecord, endpoint_id: str) -> Endpoint | None:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.owner.sha256 != owner.sha256:
            return None
        return endpoint

    async def remove(self, endpoint: Endpoint) -> None:
        self.endpoints.pop(endpoint.id, None)
        if endpoint.task:
            endpoint.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await endpoint.task

    def __call__(self, events: list[FeedEvent]) -> None:
        for endpoint in list(self.endpoints.values()):
            if endpoint.disabled:
                continue
            if not self.tokens.still_valid(endpoint.owner):
                endpoint.disabled = "owner token expired or revoked"
                self._log(endpoint, None, "disabled", 0, None, endpoint.disabled)
                continue
            for event in events:
                alert = event.alert
                if not (endpoint.owner.allows(alert) and endpoint.filter.matches(alert)):
                    continue
                body = orjson.dumps(
                    {
                        "cursor": event.position.encode(),
                        "alert": alert.model_dump(mode="json", exclude_none=True),
                    }
                )
                if endpoint.queue.full():
                    dropped = endpoint.queue.get_nowait()
                    self._log(endpoint, dropped[0], "dropped", 0, None, "endpoint queue full")
                endpoint.queue.put_nowait((uuid.uuid4().hex, body, alert.alert_id, alert.event))

    async def _work(self, endpoint: Endpoint) -> None:
        while True:
            delivery_id, body, alert_id, event = await endpoint.queue.get()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(endpoint.secret, body),
                "X-VitalStream-Delivery": delivery_id,
                "X-VitalStream-Event": event,
            }
            for attempt in range(1, self.retry.attempts + 1):
                status, error = None, None
                try:
                    response = await self.http.post(endpoint.url, content=body, headers=headers)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                if status is not None and 200 <= status < 300:
                    self._log(endpoint, delivery_id, "delivered", attempt, status, None, alert_id)
                    break
                final = status is not None and status < 500 and status not in _RETRYABLE
                if final or attempt == self.retry.attempts:
                    self._log(endpoint, delivery_id, "failed", attempt, status, error, alert_id)
                    break
                self._log(endpoint, delivery_id, "retrying", attempt, status, error, alert_id)
                await asyncio.sleep(self.retry.delay(attempt))

    @staticmethod
    def _log(
        endpoint: Endpoint,
        delivery_id: str | None,
        outcome: str,
        attempt: int,
        status: int | None,
        error: str | None,
        alert_id: str | None = None,
    ) -> None:
        endpoint.log.append(
            {
                "delivery_id": delivery_id,
                "alert_id": alert_id,
                "outcome": outcome,
                "attempt": attempt,
                "status_code": status,
                "error": error,
                "at": time.time(),
            }
        )

    async def close(self) -> None:
        for endpoint in list(self.endpoints.values()):
            await self.remove(endpoint)
        await self.http.aclose()
