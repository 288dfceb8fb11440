"""The alert API's routers, one module per concern, in the order the app includes them.

- :mod:`.health` — ``GET /healthz``.
- :mod:`.stream` — ``GET /alerts/stream`` (SSE) and ``WS /alerts/ws``, resumable by cursor.
- :mod:`.acks` — ``POST /alerts/{alert_id}/ack``.
- :mod:`.webhooks` — ``/webhooks`` registration, listing, delivery log, deletion.
- :mod:`.fhir` — ``GET /fhir/DetectedIssue``.
"""

from __future__ import annotations

from fastapi import APIRouter

from stream.subscriptions.routes import acks, fhir, health, stream, webhooks

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    stream.router,
    acks.router,
    webhooks.router,
    fhir.router,
)
