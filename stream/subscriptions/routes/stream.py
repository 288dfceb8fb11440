"""The live alert feed: ``GET /alerts/stream`` (SSE) and ``WS /alerts/ws``, resumable.

Both take the same filters and a resume cursor (SSE: ``Last-Event-ID`` or ``?cursor=``;
WebSocket: ``?cursor=`` or the first message). Every SSE event's ``id:`` and every
WebSocket message's ``cursor`` is the position right after it. The WebSocket accepts the
token in the ``Authorization`` header (failures refused before the upgrade) or as the
first message ``{"token": ..., "cursor": ...}`` within :data:`WS_FIRST_MESSAGE_S`
(failures close with 4000 + status).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

from stream.subscriptions.cursor import Cursor, CursorError
from stream.subscriptions.deps import Auth, Service, ready_feed
from stream.subscriptions.errors import ApiError, as_api_error, error_response
from stream.subscriptions.feed import Delivery
from stream.subscriptions.filters import AlertFilter, FilterError, parse_filter
from stream.subscriptions.service import AlertService
from stream.subscriptions.tokens import AuthError, TokenRecord, bearer_token

WS_FIRST_MESSAGE_S = 10.0
SSE_PING_S = 15.0
# A client that cannot take one event for this long is treated as gone.
SSE_SEND_TIMEOUT_S = 30.0

router = APIRouter()


def subscription(
    service: AlertService,
    scope: TokenRecord,
    params: list[tuple[str, str]],
    cursor_text: str | None,
) -> tuple[AlertFilter, Cursor | None]:
    """The filter and start cursor of a subscription, checked against scope and feed."""
    alert_filter = parse_filter(params)
    scope.check_filters(alert_filter.wards, alert_filter.patients)
    feed = ready_feed(service)
    start = Cursor.decode(cursor_text) if cursor_text else None
    if start is not None:
        feed.check_cursor(start)
    return alert_filter, start


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    message: dict[str, Any] = {"type": delivery.kind, "cursor": delivery.cursor}
    if delivery.kind == "lagging":
        message["detail"] = "subscriber fell behind; reconnect with this cursor"
    elif delivery.kind == "expired":
        message["detail"] = "token expired or revoked"
    return message


def ws_message(delivery: Delivery) -> str:
    if delivery.alert_json is not None:
        # Spliced rather than re-serialized: the alert's JSON was encoded once by the feed,
        # and a cursor is base64url, which needs no JSON escaping.
        alert = delivery.alert_json.decode()
        return f'{{"type":"alert","cursor":"{delivery.cursor}","alert":{alert}}}'
    return orjson.dumps(delivery_json(delivery)).decode()


@router.get("/alerts/stream")
async def alert_stream(request: Request, service: Service, scope: Auth) -> EventSourceResponse:
    cursor_text = request.headers.get("last-event-id") or request.query_params.get("cursor")
    alert_filter, start = subscription(
        service, scope, request.query_params.multi_items(), cursor_text
    )

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for delivery in service.feed.deliveries(scope, alert_filter, start):
            data = (
                delivery.alert_json.decode()
                if delivery.alert_json is not None
                else orjson.dumps(delivery_json(delivery)).decode()
            )
            yield ServerSentEvent(data=data, event=delivery.kind, id=delivery.cursor)

    return EventSourceResponse(events(), ping=SSE_PING_S, send_timeout=SSE_SEND_TIMEOUT_S)


@router.websocket("/alerts/ws")
async def alert_ws(websocket: WebSocket, service: Service) -> None:
    params = websocket.query_params.multi_items()
    header_token = bearer_token(websocket.headers.get("authorization"))
    try:
        parse_filter(params)  # bad filters are refused before the upgrade
        scope = service.tokens.authenticate(header_token) if header_token else None
    except (FilterError, AuthError) as exc:
        err = as_api_error(exc)
        await websocket.send_denial_response(error_response(err.status, err.code, err.detail))
        return
    await websocket.accept()
    cursor_text = websocket.query_params.get("cursor")
    try:
        if scope is None:
            first = await asyncio.wait_for(websocket.receive_json(), WS_FIRST_MESSAGE_S)
            if not isinstance(first, dict):
                raise ApiError(400, "bad_request", "first message must be a JSON object")
            scope = service.tokens.authenticate(first.get("token"))
            cursor_text = first.get("cursor") or cursor_text
        alert_filter, start = subscription(service, scope, params, cursor_text)
    except (TimeoutError, ValueError, FilterError, AuthError, CursorError, ApiError) as exc:
        if isinstance(exc, CursorError | FilterError | AuthError | ApiError):
            err = as_api_error(exc)
        else:
            err = ApiError(400, "bad_request", 'send {"token": ...} as the first message')
        await websocket.send_json({"type": "error", "error": err.code, "detail": err.detail})
        await websocket.close(code=4000 + err.status, reason=err.code)
        return

    async def send_all() -> None:
        async for delivery in service.feed.deliveries(scope, alert_filter, start):
            await websocket.send_text(ws_message(delivery))
            if delivery.kind in ("lagging", "expired"):
                await websocket.close(code=4008 if delivery.kind == "lagging" else 4401)
                return

    sender = asyncio.create_task(send_all())
    try:
        while not sender.done():
            receiver = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done and receiver.result()["type"] == "websocket.disconnect":
                break
            if receiver not in done:
                receiver.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await sender
