"""The alert feed service (FastAPI): SSE, WebSocket, acknowledgement, webhooks, FHIR.

Routes (documented with curl examples in docs/alerts-api.md; the OpenAPI/Swagger pages
are switched off so an unauthenticated caller learns nothing beyond ``/healthz``):

- ``GET  /healthz`` — liveness/readiness, no details.
- ``GET  /alerts/stream`` — SSE; ``id:`` of every event is its resume cursor.
- ``WS   /alerts/ws`` — the same feed as JSON messages.
- ``POST /alerts/{alert_id}/ack`` — acknowledge (token with ``can_ack``).
- ``POST|GET /webhooks``, ``GET /webhooks/{id}/deliveries``, ``DELETE /webhooks/{id}``.
- ``GET  /fhir/DetectedIssue?patient=...`` — a FHIR searchset Bundle.

Every error is JSON ``{"error": code, "detail": message}``. Tokens are read only from the
``Authorization`` header (``?token=`` is refused) and the access log omits query strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream.config import Settings
from stream.kafka import client_options
from stream.records import Alert
from stream.subscriptions.audit import AlertAudit
from stream.subscriptions.book import AckError
from stream.subscriptions.cursor import Cursor, CursorError
from stream.subscriptions.feed import AlertFeed, Delivery
from stream.subscriptions.fhir import detected_issue, search_bundle
from stream.subscriptions.filters import AlertFilter, FilterError, parse_filter
from stream.subscriptions.tokens import AuthError, TokenRecord, TokenStore, bearer_token
from stream.subscriptions.webhooks import RetryPolicy, WebhookManager

log = logging.getLogger(__name__)
access_log = logging.getLogger("vitalstream.alerts.access")

WS_FIRST_MESSAGE_S = 10.0
SSE_PING_S = 15.0
# A client that cannot take one event for this long is treated as gone.
SSE_SEND_TIMEOUT_S = 30.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    filters: dict[str, str | list[str]] = Field(default_factory=dict)


@dataclass
class Runtime:
    """What the lifespan starts and the routes use."""

    settings: Settings
    tokens: TokenStore
    feed: AlertFeed
    producer: AIOKafkaProducer
    webhooks: WebhookManager
    audit: AlertAudit | None

    async def publish_alert(self, alert: Alert) -> None:
        await self.producer.send_and_wait(
            self.settings.topics.alerts, alert.to_json(), key=alert.patient.encode()
        )


class AccessLog:
    """Method, path (never the query string or headers), status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                access_log.info("WS %s", scope["path"])
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )


def _error(status: int, code: str, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _as_api_error(exc: Exception) -> ApiError:
    if isinstance(exc, AuthError | AckError | ApiError):
        return ApiError(exc.status, exc.code, exc.detail)
    if isinstance(exc, FilterError):
        return ApiError(400, exc.code, exc.detail)
    if isinstance(exc, CursorError):
        return ApiError(400, "bad_cursor", str(exc))
    raise exc


def _delivery_json(delivery: Delivery) -> dict[str, Any]:
    message: dict[str, Any] = {"type": delivery.kind, "cursor": delivery.cursor}
    if delivery.kind == "lagging":
        message["detail"] = "subscriber fell behind; reconnect with this cursor"
    elif delivery.kind == "expired":
        message["detail"] = "token expired or revoked"
    return message


def _ws_message(delivery: Delivery) -> str:
    if delivery.alert_json is not None:
        # Spliced rather than re-serialized: the alert's JSON was encoded once by the feed,
        # and a cursor is base64url, which needs no JSON escaping.
        alert = delivery.alert_json.decode()
        return f'{{"type":"alert","cursor":"{delivery.cursor}","alert":{alert}}}'
    return orjson.dumps(_delivery_json(delivery)).decode()


async def _escalate_forever(runtime: Runtime) -> None:
    after_s = runtime.settings.alerts_api.escalation_after_s
    tick_s = max(0.05, min(1.0, after_s / 4))
    await runtime.feed.ready.wait()  # state must be rebuilt from the topic first
    while True:
        for event in runtime.feed.book.due_escalations(time.time(), after_s):
            log.info("escalating alert %s to level %d", event.alert_id, event.escalation_level)
            await runtime.publish_alert(event)
        await asyncio.sleep(tick_s)


def _supervised(coro: Any, name: str) -> asyncio.Task[None]:
    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped", name)

    return asyncio.create_task(run(), name=name)


def _authenticated(request: Request) -> TokenRecord:
    if "token" in request.query_params or "access_token" in request.query_params:
        raise ApiError(400, "token_in_query", "send the token in the Authorization header only")
    tokens: TokenStore = request.app.state.runtime.tokens
    return tokens.authenticate(bearer_token(request.headers.get("authorization")))


Auth = Annotated[TokenRecord, Depends(_authenticated)]


def create_app(settings: Settings, *, webhook_retry: RetryPolicy | None = None) -> FastAPI:
    """The service for these settings; Kafka, InfluxDB and tasks start in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tokens = TokenStore(settings.alerts_api.tokens_file)
        feed = AlertFeed(settings, tokens)
        producer = AIOKafkaProducer(
            **client_options(settings.kafka, "aiokafka"), acks="all", linger_ms=0
        )
        await producer.start()
        audit = AlertAudit(settings) if settings.influx_token else None
        if audit is None:
            log.warning("no InfluxDB token: alert lifecycle events are not written to InfluxDB")
        webhooks = WebhookManager(settings, tokens, webhook_retry)
        feed.listeners.append(webhooks)
        if audit:
            feed.listeners.append(audit)
        runtime = Runtime(settings, tokens, feed, producer, webhooks, audit)
        app.state.runtime = runtime
        tasks = [
            _supervised(feed.run(), "alert feed"),
            _supervised(_escalate_forever(runtime), "escalation"),
        ]
        if audit:
            tasks.append(_supervised(audit.run(), "alert audit"))
        try:
            yield
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

    app = FastAPI(
        title="VitalStream alerts",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(AccessLog)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
        err = _as_api_error(exc)
        return _error(err.status, err.code, err.detail)

    for error_type in (AuthError, AckError, FilterError, CursorError):
        app.add_exception_handler(error_type, _domain_error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _error(400, "bad_request", f"{where}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (an unparseable body, an unknown route) keep the
        # API's error shape: a machine-readable code beside the detail.
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    def runtime(request: Request) -> Runtime:
        return request.app.state.runtime

    def ready_feed(rt: Runtime) -> AlertFeed:
        if not rt.feed.ready.is_set():
            raise ApiError(503, "starting", "the alert feed is still catching up; retry shortly")
        return rt.feed

    def subscription(
        rt: Runtime, scope: TokenRecord, params: list[tuple[str, str]], cursor_text: str | None
    ) -> tuple[AlertFilter, Cursor | None]:
        alert_filter = parse_filter(params)
        scope.check_filters(alert_filter.wards, alert_filter.patients)
        feed = ready_feed(rt)
        start = Cursor.decode(cursor_text) if cursor_text else None
        if start is not None:
            feed.check_cursor(start)
        return alert_filter, start

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        ready = runtime(request).feed.ready.is_set()
        return JSONResponse(
            {"status": "ok" if ready else "starting"}, status_code=200 if ready else 503
        )

    @app.get("/alerts/stream")
    async def alert_stream(request: Request, scope: Auth) -> EventSourceResponse:
        rt = runtime(request)
        cursor_text = request.headers.get("last-event-id") or request.query_params.get("cursor")
        alert_filter, start = subscription(
            rt, scope, request.query_params.multi_items(), cursor_text
        )

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for delivery in rt.feed.deliveries(scope, alert_filter, start):
                data = (
                    delivery.alert_json.decode()
                    if delivery.alert_json is not None
                    else orjson.dumps(_delivery_json(delivery)).decode()
                )
                yield ServerSentEvent(data=data, event=delivery.kind, id=delivery.cursor)

        return EventSourceResponse(events(), ping=SSE_PING_S, send_timeout=SSE_SEND_TIMEOUT_S)

    @app.websocket("/alerts/ws")
    async def alert_ws(websocket: WebSocket) -> None:
        rt: Runtime = websocket.app.state.runtime
        params = websocket.query_params.multi_items()
        header_token = bearer_token(websocket.headers.get("authorization"))
        try:
            parse_filter(params)  # bad filters are refused before the upgrade
            scope = rt.tokens.authenticate(header_token) if header_token else None
        except (FilterError, AuthError) as exc:
            err = _as_api_error(exc)
            await websocket.send_denial_response(_error(err.status, err.code, err.detail))
            return
        await websocket.accept()
        cursor_text = websocket.query_params.get("cursor")
        try:
            if scope is None:
                first = await asyncio.wait_for(websocket.receive_json(), WS_FIRST_MESSAGE_S)
                if not isinstance(first, dict):
                    raise ApiError(400, "bad_request", "first message must be a JSON object")
                scope = rt.tokens.authenticate(first.get("token"))
                cursor_text = first.get("cursor") or cursor_text
            alert_filter, start = subscription(rt, scope, params, cursor_text)
        except (TimeoutError, ValueError, FilterError, AuthError, CursorError, ApiError) as exc:
            if isinstance(exc, CursorError | FilterError | AuthError | ApiError):
                err = _as_api_error(exc)
            else:
                err = ApiError(400, "bad_request", 'send {"token": ...} as the first message')
            await websocket.send_json({"type": "error", "error": err.code, "detail": err.detail})
            await websocket.close(code=4000 + err.status, reason=err.code)
            return

        async def send_all() -> None:
            async for delivery in rt.feed.deliveries(scope, alert_filter, start):
                await websocket.send_text(_ws_message(delivery))
                if delivery.kind in ("lagging", "expired"):
                    await websocket.close(code=4008 if delivery.kind == "lagging" else 4401)
                    return

        sender = asyncio.create_task(send_all())
        try:
            while not sender.done():
                receiver = asyncio.ensure_future(websocket.receive())
                done, _ = await asyncio.wait(
                    {sender, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
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

    @app.post("/alerts/{alert_id}/ack")
    async def acknowledge(
        alert_id: str,
        body: AckRequest,
        request: Request,
        scope: Auth,
    ) -> JSONResponse:
        rt = runtime(request)
        if not scope.can_ack:
            raise ApiError(403, "insufficient_scope", "token may not acknowledge alerts")
        book = ready_feed(rt).book
        entry = book.entries.get(alert_id)
        if entry is None or not scope.allows(entry.latest):
            raise ApiError(404, "unknown_alert", "no such alert within this token's scope")
        ack, event = book.acknowledge(alert_id, by=scope.subject, note=body.note, now=time.time())
        try:
            await rt.producer.send_and_wait(
                rt.settings.topics.acks, ack.to_json(), key=ack.patient.encode()
            )
            await rt.publish_alert(event)
        except Exception as exc:
            entry.status = "open"  # not published: escalation must go on
            raise ApiError(503, "kafka_unavailable", "acknowledgement not recorded; retry") from exc
        return JSONResponse({"alert_id": alert_id, "acknowledged_by": ack.by, "at": ack.at})

    @app.post("/webhooks", status_code=201)
    async def create_webhook(body: WebhookRequest, request: Request, scope: Auth) -> JSONResponse:
        pairs = [
            (name, value)
            for name, values in body.filters.items()
            for value in ([values] if isinstance(values, str) else values)
        ]
        alert_filter = parse_filter(pairs, allowed_extra=())
        scope.check_filters(alert_filter.wards, alert_filter.patients)
        endpoint, secret = runtime(request).webhooks.register(scope, str(body.url), alert_filter)
        created = endpoint.public()
        if secret:
            created["secret"] = secret
        return JSONResponse(created, status_code=201)

    @app.get("/webhooks")
    async def list_webhooks(request: Request, scope: Auth) -> JSONResponse:
        hooks = runtime(request).webhooks.endpoints.values()
        return JSONResponse([h.public() for h in hooks if h.owner.sha256 == scope.sha256])

    def owned(request: Request, scope: TokenRecord, endpoint_id: str) -> Any:
        endpoint = runtime(request).webhooks.owned(scope, endpoint_id)
        if endpoint is None:
            raise ApiError(404, "unknown_webhook", "no such webhook for this token")
        return endpoint

    @app.get("/webhooks/{endpoint_id}/deliveries")
    async def deliveries(endpoint_id: str, request: Request, scope: Auth) -> JSONResponse:
        return JSONResponse(list(owned(request, scope, endpoint_id).log))

    @app.delete("/webhooks/{endpoint_id}", status_code=204)
    async def delete_webhook(endpoint_id: str, request: Request, scope: Auth) -> Response:
        await runtime(request).webhooks.remove(owned(request, scope, endpoint_id))
        return Response(status_code=204)

    @app.get("/fhir/DetectedIssue")
    async def fhir_detected_issues(request: Request, scope: Auth) -> Response:
        unknown = set(request.query_params) - {"patient"}
        if unknown:
            raise ApiError(
                400, "unknown_filter", f"unsupported search parameter(s) {sorted(unknown)}"
            )
        patient = request.query_params.get("patient")
        if not patient:
            raise ApiError(400, "bad_request", "the patient search parameter is required")
        if not scope.allows_patient(patient):
            raise ApiError(403, "insufficient_scope", "token does not cover this patient")
        book = ready_feed(runtime(request)).book
        issues = []
        for entry in book.for_patient(patient):
            if scope.allows(entry.latest):
                alert = entry.latest
                if entry.status != "open":
                    alert = alert.model_copy(update={"event": entry.status})
                issues.append(detected_issue(alert))
        return Response(
            search_bundle(issues).model_dump_json(exclude_none=True),
            media_type="application/fhir+json",
        )

    return app
