"""``GET /vitals?patient=...&minutes=30``: one patient's recent vitals for the ward board.

The patient is a query parameter (not a path segment) so the pseudonym stays out of the
access log, like FHIR's ``?patient=``. The token must cover the patient (403 otherwise);
its wards are applied inside the InfluxDB query (:mod:`stream.subscriptions.history`), so
a token of another ward gets no points of this one. InfluxDB is read with the service's
own token, which never reaches the browser.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stream.subscriptions import history
from stream.subscriptions.deps import Auth, Service
from stream.subscriptions.errors import ApiError

router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/vitals")
async def vitals(request: Request, service: Service, scope: Auth) -> JSONResponse:
    unknown = set(request.query_params) - {"patient", "minutes"}
    if unknown:
        raise ApiError(400, "unknown_filter", f"unsupported parameter(s) {sorted(unknown)}")
    patient = request.query_params.get("patient", "")
    if not history.PATIENT_PATTERN.match(patient):
        raise ApiError(400, "bad_request", "patient must be a pseudonym (1..128 characters)")
    minutes_text = request.query_params.get("minutes", "30")
    if not minutes_text.isdigit() or not 1 <= int(minutes_text) <= history.MAX_MINUTES:
        raise ApiError(400, "bad_request", f"minutes must be 1..{history.MAX_MINUTES}")
    if not scope.allows_patient(patient):
        raise ApiError(403, "insufficient_scope", "token does not cover this patient")
    influx_token = service.settings.influx_token
    if not influx_token:
        raise ApiError(503, "history_unavailable", "the service has no InfluxDB token")
    try:
        found = await asyncio.to_thread(
            history.read_vitals,
            service.settings,
            influx_token,
            patient,
            scope.wards,
            int(minutes_text),
        )
    except Exception as exc:
        log.warning("vitals history query failed: %s", type(exc).__name__)
        raise ApiError(503, "history_unavailable", "InfluxDB did not answer; retry") from exc
    return JSONResponse(found.to_json(), headers={"Cache-Control": "no-store"})
