"""The alert feed service (FastAPI): the app factory, wiring state, routers and handlers.

Routes (documented with curl examples in docs/alerts-api.md; the OpenAPI/Swagger pages
are switched off so an unauthenticated caller learns nothing beyond ``/healthz``):

- ``GET  /healthz`` — liveness/readiness, no details (:mod:`.routes.health`).
- ``GET  /alerts/stream`` — SSE; ``id:`` of every event is its resume cursor.
- ``WS   /alerts/ws`` — the same feed as JSON messages (both :mod:`.routes.stream`).
- ``POST /alerts/{alert_id}/ack`` — acknowledge (token with ``can_ack``; :mod:`.routes.acks`).
- ``POST|GET /webhooks``, ``GET /webhooks/{id}/deliveries``, ``DELETE /webhooks/{id}``
  (:mod:`.routes.webhooks`).
- ``GET  /fhir/DetectedIssue?patient=...`` — a FHIR searchset Bundle (:mod:`.routes.fhir`).
- ``GET  /board`` (and its assets), ``GET /board/snapshot`` — the ward board page and the
  open alerts in scope with the feed cursor (:mod:`.routes.board`).
- ``GET  /me`` — the token's scope (:mod:`.routes.me`); ``GET /vitals?patient=...`` —
  recent vitals from InfluxDB within the token's wards (:mod:`.routes.vitals`).

Every error is JSON ``{"error": code, "detail": message}`` (:mod:`.errors`). Tokens are read
only from the ``Authorization`` header (``?token=`` is refused; :mod:`.deps`) and the access
log omits query strings (:mod:`.access_log`). The shared state is an
:class:`~.service.AlertService` built in the lifespan and stored at ``app.state.service``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from stream.config import Settings
from stream.subscriptions.access_log import AccessLog
from stream.subscriptions.errors import install_error_handlers
from stream.subscriptions.routes import ROUTERS
from stream.subscriptions.service import running_service
from stream.subscriptions.webhooks import RetryPolicy


def create_app(settings: Settings, *, webhook_retry: RetryPolicy | None = None) -> FastAPI:
    """The service for these settings; Kafka, InfluxDB and tasks start in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_service(settings, webhook_retry) as service:
            app.state.service = service
            yield

    app = FastAPI(
        title="VitalStream alerts",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(AccessLog)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
