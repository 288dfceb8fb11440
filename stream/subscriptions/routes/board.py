"""The ward board: ``GET /board`` (the page and its two assets) and ``GET /board/snapshot``.

The page is plain HTML/CSS/JS shipped as package data in ``stream/subscriptions/board/``
(no build step, nothing fetched from elsewhere; docs/board.md). Its responses carry a
strict Content-Security-Policy: scripts, styles and requests only from this origin, no
inline code, no framing, no referrer.

``GET /board/snapshot`` gives the alerts the token may see (open ones and those closed
within the book's memory) as they stand (:meth:`~stream.subscriptions.book.BookEntry.view`:
who acknowledged, the note and verdict) with their status and escalation level, and the
feed cursor at that instant; read in one step with no await in between, so subscribing
to ``/alerts/stream`` from that cursor misses and repeats nothing.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from stream.subscriptions.deps import Auth, Service, ready_feed
from stream.subscriptions.feed import AlertFeed
from stream.subscriptions.tokens import TokenRecord

router = APIRouter()

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
}
SNAPSHOT_LIMIT = 500
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def asset(name: str) -> bytes:
    """One file of the board, read from the package (cached for the process)."""
    return files("stream.subscriptions").joinpath("board", name).read_bytes()


def _asset_response(name: str) -> Response:
    return Response(asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/board")
async def board_page() -> Response:
    return _asset_response("index.html")


@router.get("/board/board.js")
async def board_script() -> Response:
    return _asset_response("board.js")


@router.get("/board/board.css")
async def board_style() -> Response:
    return _asset_response("board.css")


def snapshot(feed: AlertFeed, scope: TokenRecord) -> dict[str, Any]:
    """The token's alerts and the cursor right after them (synchronous: one consistent cut)."""
    entries = [e for e in feed.book.entries.values() if scope.allows(e.latest)]
    entries.sort(key=lambda e: (e.status != "open", -e.updated))
    return {
        "cursor": feed.position.encode(),
        "alerts": [
            {
                "alert": entry.view().model_dump(mode="json", exclude_none=True),
                "status": entry.status,
                "escalation_level": entry.level,
                "updated": entry.updated,
            }
            for entry in entries[:SNAPSHOT_LIMIT]
        ],
    }


@router.get("/board/snapshot")
async def board_snapshot(service: Service, scope: Auth) -> Response:
    body = snapshot(ready_feed(service), scope)
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )
