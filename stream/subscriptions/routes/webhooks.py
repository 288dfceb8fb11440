"""``/webhooks``: registering, listing, inspecting and deleting a token's webhooks.

Delivery itself (signing, queues, retry) is :mod:`stream.subscriptions.webhooks`; a token
sees and manages only the endpoints it created.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from stream.subscriptions.deps import Auth, Service
from stream.subscriptions.errors import ApiError
from stream.subscriptions.filters import parse_filter
from stream.subscriptions.service import AlertService
from stream.subscriptions.tokens import TokenRecord
from stream.subscriptions.webhooks import Endpoint

router = APIRouter()


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    filters: dict[str, str | list[str]] = Field(default_factory=dict)


def _owned(service: AlertService, scope: TokenRecord, endpoint_id: str) -> Endpoint:
    endpoint = service.webhooks.owned(scope, endpoint_id)
    if endpoint is None:
        raise ApiError(404, "unknown_webhook", "no such webhook for this token")
    return endpoint


@router.post("/webhooks", status_code=201)
async def create_webhook(body: WebhookRequest, service: Service, scope: Auth) -> JSONResponse:
    pairs = [
        (name, value)
        for name, values in body.filters.items()
        for value in ([values] if isinstance(values, str) else values)
    ]
    alert_filter = parse_filter(pairs, allowed_extra=())
    scope.check_filters(alert_filter.wards, alert_filter.patients)
    endpoint, secret = service.webhooks.register(scope, str(body.url), alert_filter)
    created = endpoint.public()
    if secret:
        created["secret"] = secret
    return JSONResponse(created, status_code=201)


@router.get("/webhooks")
async def list_webhooks(service: Service, scope: Auth) -> JSONResponse:
    hooks = service.webhooks.endpoints.values()
    return JSONResponse([h.public() for h in hooks if h.owner.sha256 == scope.sha256])


@router.get("/webhooks/{endpoint_id}/deliveries")
async def deliveries(endpoint_id: str, service: Service, scope: Auth) -> JSONResponse:
    return JSONResponse(list(_owned(service, scope, endpoint_id).log))


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete_webhook(endpoint_id: str, service: Service, scope: Auth) -> Response:
    await service.webhooks.remove(_owned(service, scope, endpoint_id))
    return Response(status_code=204)
