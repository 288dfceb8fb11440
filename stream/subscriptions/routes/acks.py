"""``POST /alerts/{alert_id}/ack``: acknowledging an alert (tokens with ``can_ack``).

The acknowledgement goes to ``topics.acks`` and an ``acknowledged`` event to the alerts
topic; if Kafka refuses either, the alert stays open (escalation goes on) and the caller
gets 503 ``kafka_unavailable``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stream.subscriptions.deps import Auth, Service, ready_feed
from stream.subscriptions.errors import ApiError

router = APIRouter()


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(
    alert_id: str,
    body: AckRequest,
    service: Service,
    scope: Auth,
) -> JSONResponse:
    if not scope.can_ack:
        raise ApiError(403, "insufficient_scope", "token may not acknowledge alerts")
    book = ready_feed(service).book
    entry = book.entries.get(alert_id)
    if entry is None or not scope.allows(entry.latest):
        raise ApiError(404, "unknown_alert", "no such alert within this token's scope")
    ack, event = book.acknowledge(alert_id, by=scope.subject, note=body.note, now=time.time())
    try:
        await service.publish_ack(ack)
        await service.publish_alert(event)
    except Exception as exc:
        entry.status = "open"  # not published: escalation must go on
        raise ApiError(503, "kafka_unavailable", "acknowledgement not recorded; retry") from exc
    return JSONResponse({"alert_id": alert_id, "acknowledged_by": ack.by, "at": ack.at})
