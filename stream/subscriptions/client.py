"""``AlertClient``: a small embeddable client for the SSE feed that resumes by itself.

>>> async def watch(url: str, token: str) -> None:  # doctest: +SKIP
...     client = AlertClient(url, token, filters={"ward": "A", "min_priority": "high"})
...     async for alert in client.alerts():
...         print(alert.priority, alert.kind, client.cursor)

The client remembers the cursor of the last event it received and sends it as
``Last-Event-ID`` on every reconnect (network error, server restart, ``lagging``), so the
caller sees every alert exactly once and in order per patient. Errors the caller must fix
(401/403/400) raise :class:`AlertClientError` instead of being retried.

:func:`acknowledge` acknowledges one alert, with the clinician's verdict (what
``vitalstream alerts ack`` calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from httpx_sse import aconnect_sse

from stream.records import Alert, Verdict

_RETRY_STATUS = {502, 503, 504}


class AlertClientError(Exception):
    """A refusal that retrying will not fix (bad filter, bad/expired token, no scope)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


def _refusal(response: httpx.Response) -> AlertClientError:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return AlertClientError(
        response.status_code, body.get("error", "error"), body.get("detail", "")
    )


async def acknowledge(
    base_url: str,
    token: str,
    alert_id: str,
    *,
    verdict: Verdict | None = None,
    note: str = "",
    transport: httpx.AsyncBaseTransport | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """``POST /alerts/{alert_id}/ack`` with ``{"note", "verdict"}``: the service's answer
    (``alert_id``, ``acknowledged_by``, ``at``, ``verdict``), or :class:`AlertClientError`
    carrying the API's error code (404 ``unknown_alert``, 409 ``already_acknowledged``, 422
    ``invalid_verdict``, ...). The token goes in the ``Authorization`` header only."""
    body: dict[str, Any] = {"note": note}
    if verdict is not None:
        body["verdict"] = verdict
    async with httpx.AsyncClient(
        base_url=base_url.rstrip("/"), transport=transport, timeout=timeout_s
    ) as http:
        response = await http.post(
            f"/alerts/{quote(alert_id, safe='')}/ack",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
    if response.status_code != 200:
        raise _refusal(response)
    answer: dict[str, Any] = response.json()
    return answer


class AlertClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        filters: dict[str, str | list[str]] | None = None,
        cursor: str | None = None,
        first_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        on_reconnect: Callable[[int, str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.filters = filters or {}
        self.cursor = cursor
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.on_reconnect = on_reconnect
        self.reconnects = 0

    def _params(self) -> list[tuple[str, str]]:
        return [
            (name, value)
            for name, values in self.filters.items()
            for value in ([values] if isinstance(values, str) else values)
        ]

    async def alerts(self) -> AsyncIterator[Alert]:
        """Every matching alert from ``cursor`` (or now) on, across reconnects, forever."""
        delay = self.first_delay_s
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(timeout=timeout) as http:
            while True:
                reason = "lagging"
                try:
                    async for alert in self._once(http):
                        delay = self.first_delay_s
                        yield alert
                    reason = "stream ended"
                except (httpx.TransportError, _Retry) as exc:
                    reason = type(exc).__name__
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_delay_s)
                self.reconnects += 1
                if self.on_reconnect:
                    self.on_reconnect(self.reconnects, reason)

    async def _once(self, http: httpx.AsyncClient) -> AsyncIterator[Alert]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.cursor:
            headers["Last-Event-ID"] = self.cursor
        url = f"{self.base_url}/alerts/stream"
        async with aconnect_sse(http, "GET", url, params=self._params(), headers=headers) as sse:
            response = sse.response
            if response.status_code != 200:
                await response.aread()
                if response.status_code in _RETRY_STATUS:
                    raise _Retry(response.status_code)
                raise _refusal(response)
            async for event in sse.aiter_sse():
                if event.id:
                    self.cursor = event.id
                if event.event == "alert":
                    yield Alert.from_json(event.data)
                elif event.event == "lagging":
                    return
                elif event.event == "expired":
                    raise AlertClientError(401, "expired_token", "token expired or revoked")


class _Retry(Exception):
    """A transient refusal (server starting or restarting)."""
