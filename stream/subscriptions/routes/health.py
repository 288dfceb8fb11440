"""``GET /healthz``: liveness/readiness of the alert service, disclosing nothing else."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from stream.subscriptions.deps import Service

router = APIRouter()


@router.get("/healthz")
async def healthz(service: Service) -> JSONResponse:
    ready = service.feed.ready.is_set()
    return JSONResponse(
        {"status": "ok" if ready else "starting"}, status_code=200 if ready else 503
    )
