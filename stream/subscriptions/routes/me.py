"""``GET /me``: what the caller's bearer token may do, so a client can shape its UI.

Answers the token's public scope (id, subject, wards, patients, ``can_ack``, expiry),
never its hash. The ward board uses it to sign in and to offer acknowledgement only to
tokens that may acknowledge.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from stream.subscriptions.deps import Auth

router = APIRouter()


@router.get("/me")
async def me(scope: Auth) -> JSONResponse:
    return JSONResponse(
        {
            "id": scope.id,
            "subject": scope.subject,
            "wards": scope.wards,
            "patients": scope.patients,
            "can_ack": scope.can_ack,
            "expires_at": scope.expires_at,
        },
        headers={"Cache-Control": "no-store"},
    )
