"""``POST /alerts/{alert_id}/ack``: acknowledging an alert (tokens with ``can_ack``).

Body ``{"note": str, "verdict": "actionable" | "not_actionable" | "artefact"}``, both
optional (acknowledgements without a verdict stay valid); any other verdict is a 422
``invalid_verdict``. The acknowledgement goes to ``topics.acks`` and an ``acknowledged``
event, carrying the verdict, to the alerts topic; if Kafka refuses either, the alert stays
open (escalation goes on) and the caller gets 503 ``kafka_unavailable``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from stream.records import VERDICTS, Verdict
from stream.subscriptions.deps import Auth, Service, ready_feed
from stream.subscriptions.errors import ApiError

router = APIRouter()


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)
    # A string here, checked in the route: a wrong verdict is a 422 with its own code, not
    # the 400 every other malformed body gets.
    verdict: str | None = None


def checked_verdict(value: str | None) -> Verdict | None:
    """The verdict, or 422 ``invalid_verdict`` naming the allowed ones."""
    if value is None or value in VERDICTS:
        return value  # type: ignore[return-value]
    raise ApiError(422, "invalid_verdict", f"verdict {value!r} is not one of {', '.join(VERDICTS)}")


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(
    alert_id: str,
    body: AckRequest,
    service: Service,
    scope: Auth,
) -> JSONResponse:
    if not scope.can_ack:
        raise ApiError(403, "insufficient_scope", "token may not acknowledge alerts")
    verdict = checked_verdict(body.verdict)
    book = ready_feed(service).book
    entry = book.entries.get(alert_id)
    if entry is None or not scope.allows(entry.latest):
        raise ApiError(404, "unknown_alert", "no such alert within this token's scope")
    ack, event = book.acknowledge(
        alert_id, by=scope.subject, note=body.note, now=time.time(), verdict=verdict
    )
    try:
        await service.publish_ack(ack)
        await service.publish_alert(event)
    except Exception as exc:
        entry.status = "open"  # not published: escalation must go on
        entry.acknowledgement = None
        raise ApiError(503, "kafka_unavailable", "acknowledgement not recorded; retry") from exc
    return JSONResponse(
        {"alert_id": alert_id, "acknowledged_by": ack.by, "at": ack.at, "verdict": ack.verdict}
    )
