"""FastAPI dependencies shared by every alert API router: the service state and auth.

- :data:`Service` — the :class:`~.service.AlertService` at ``app.state.service``.
- :data:`Auth` — the caller's :class:`~.tokens.TokenRecord` from ``Authorization: Bearer``
  (a token in the query string is refused with 400 ``token_in_query``).
- :func:`ready_feed` — the feed, or 503 ``starting`` while it replays the topic.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from stream.subscriptions.errors import ApiError
from stream.subscriptions.feed import AlertFeed
from stream.subscriptions.service import AlertService
from stream.subscriptions.tokens import TokenRecord, bearer_token


async def get_service(connection: HTTPConnection) -> AlertService:
    """The service state the lifespan put on the app (HTTP and WebSocket routes alike)."""
    service: AlertService = connection.app.state.service
    return service


Service = Annotated[AlertService, Depends(get_service)]


def authenticate(request: Request, service: Service) -> TokenRecord:
    """The bearer token's record; 400 for a token in the URL, 401 for a bad token."""
    if "token" in request.query_params or "access_token" in request.query_params:
        raise ApiError(400, "token_in_query", "send the token in the Authorization header only")
    return service.tokens.authenticate(bearer_token(request.headers.get("authorization")))


Auth = Annotated[TokenRecord, Depends(authenticate)]


def ready_feed(service: AlertService) -> AlertFeed:
    if not service.feed.ready.is_set():
        raise ApiError(503, "starting", "the alert feed is still catching up; retry shortly")
    return service.feed
