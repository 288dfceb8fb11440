"""The alert API's routers, one module per concern, in the order the app includes them.

- :mod:`.health` — ``GET /healthz``.
- :mod:`.stream` — ``GET /alerts/stream`` (SSE) and ``WS /alerts/ws``, resumable by cursor.
- :mod:`.acks` — ``POST /alerts/{alert_id}/ack``.
- :mod:`.webhooks` — ``/webhooks`` registration, listing, delivery log, deletion.
- :mod:`.fhir` — ``GET /fhir/DetectedIssue``.
- :mod:`.me` — ``GET /me``: the token's own scope.
- :mod:`.vitals` — ``GET /vitals``: a patient's recent vitals from InfluxDB, within scope.
- :mod:`.board` — ``GET /board`` (the ward board page) and ``GET /board/snapshot``.
"""

from __future__ import annotations

from fastapi import APIRouter

from stream.subscriptions.routes import acks, board, fhir, health, me, stream, vitals, webhooks

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    stream.router,
    acks.router,
    webhooks.router,
    fhir.router,
    me.router,
    vitals.router,
    board.router,
)
