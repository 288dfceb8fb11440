"""``GET /fhir/DetectedIssue?patient=...``: a patient's alerts as a FHIR searchset Bundle.

Rendering is :mod:`stream.subscriptions.fhir`; this route checks the search parameters and
the token's scope and reads the alert book (closed alerts show their closing status, an
acknowledged one who acknowledged it and their verdict).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from stream.subscriptions.deps import Auth, Service, ready_feed
from stream.subscriptions.errors import ApiError
from stream.subscriptions.fhir import detected_issue, search_bundle

router = APIRouter()


@router.get("/fhir/DetectedIssue")
async def fhir_detected_issues(request: Request, service: Service, scope: Auth) -> Response:
    unknown = set(request.query_params) - {"patient"}
    if unknown:
        raise ApiError(400, "unknown_filter", f"unsupported search parameter(s) {sorted(unknown)}")
    patient = request.query_params.get("patient")
    if not patient:
        raise ApiError(400, "bad_request", "the patient search parameter is required")
    if not scope.allows_patient(patient):
        raise ApiError(403, "insufficient_scope", "token does not cover this patient")
    book = ready_feed(service).book
    issues = []
    for entry in book.for_patient(patient):
        if scope.allows(entry.latest):
            issues.append(detected_issue(entry.view(), entry.acknowledgement))
    return Response(
        search_bundle(issues).model_dump_json(exclude_none=True),
        media_type="application/fhir+json",
    )
