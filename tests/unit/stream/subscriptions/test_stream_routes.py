"""The live feed routers mounted alone: SSE and WebSocket framing, resume, scope; health."""

import asyncio
import warnings
from urllib.parse import urlencode

import orjson
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from stream.subscriptions.cursor import Cursor
from stream.subscriptions.routes import health, stream

with warnings.catch_warnings():  # starlette warns about its httpx-based client on import
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient, WebSocketDenialResponse

START = Cursor({0: 0}).encode()


async def _sse_frames(
    app: FastAPI, query: dict[str, str], headers: dict[str, str], frames: int
) -> tuple[int, list[dict[str, str]]]:
    """Drive the ASGI app directly: read ``frames`` SSE events, then disconnect."""
    disconnect, enough = asyncio.Event(), asyncio.Event()
    status, body = 0, b""

    async def receive() -> dict[str, str]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
            if body.count(b"\r\n\r\n") >= frames:
                enough.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/alerts/stream",
        "raw_path": b"/alerts/stream",
        "query_string": urlencode(query).encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("alerts.test", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(enough.wait(), 5)
    disconnect.set()
    await asyncio.wait_for(task, 5)
    events = []
    for block in body.decode().split("\r\n\r\n")[:frames]:
        fields = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
        events.append(fields)
    return status, events


async def test_sse_resumes_from_a_cursor_with_only_the_tokens_wards(api, alert_factory) -> None:
    for alert_id, ward in [("a0", "A"), ("b0", "B"), ("a1", "A"), ("a2", "A")]:
        api.publish(alert_factory(alert_id=alert_id, ward=ward))
    api.feed.ready.set()
    headers = {**api.auth(wards=["A"]), "Last-Event-ID": Cursor({0: 2}).encode()}
    status, events = await _sse_frames(api.app(stream.router), {}, headers, frames=3)
    assert status == 200
    ready, *alerts = events
    assert ready == {
        "event": "ready",
        "id": Cursor({0: 2}).encode(),
        "data": orjson.dumps({"type": "ready", "cursor": Cursor({0: 2}).encode()}).decode(),
    }
    assert [e["event"] for e in alerts] == ["alert", "alert"]
    assert [orjson.loads(e["data"])["alert_id"] for e in alerts] == ["a1", "a2"]
    assert [e["id"] for e in alerts] == [Cursor({0: 3}).encode(), Cursor({0: 4}).encode()]
    assert api.feed.subscribers == set()  # the disconnect unsubscribed it


async def test_sse_refusals(api) -> None:
    ward_a = api.auth(wards=["A"])
    async with api.client(stream.router) as client:
        starting = await client.get("/alerts/stream", headers=ward_a)
        api.feed.ready.set()
        outside = await client.get("/alerts/stream?ward=B", headers=ward_a)
        unknown = await client.get("/alerts/stream?colour=red", headers=ward_a)
        bad_cursor = await client.get("/alerts/stream?cursor=garbage", headers=ward_a)
        ahead = await client.get(
            "/alerts/stream", headers={**ward_a, "Last-Event-ID": Cursor({0: 9}).encode()}
        )
        anonymous = await client.get("/alerts/stream")
        in_query = await client.get("/alerts/stream?token=vs_x")
    assert (starting.status_code, starting.json()["error"]) == (503, "starting")
    assert (outside.status_code, outside.json()["error"]) == (403, "insufficient_scope")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unknown_filter")
    assert (bad_cursor.status_code, bad_cursor.json()["error"]) == (400, "bad_cursor")
    assert (ahead.status_code, ahead.json()["error"]) == (400, "bad_cursor")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "missing_token")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (in_query.status_code, in_query.json()["error"]) == (400, "token_in_query")


def test_websocket_with_a_header_token_streams_json_messages(api, alert_factory) -> None:
    for alert_id, ward in [("a0", "A"), ("b0", "B"), ("a1", "A")]:
        api.publish(alert_factory(alert_id=alert_id, ward=ward))
    api.feed.ready.set()
    client = TestClient(api.app(stream.router))
    with client.websocket_connect(
        f"/alerts/ws?cursor={START}", headers=api.auth(wards=["A"])
    ) as ws:
        messages = [ws.receive_json() for _ in range(3)]
    assert messages[0] == {"type": "ready", "cursor": START}
    assert [(m["type"], m["alert"]["alert_id"]) for m in messages[1:]] == [
        ("alert", "a0"),
        ("alert", "a1"),
    ]
    assert [m["cursor"] for m in messages[1:]] == [Cursor({0: 1}).encode(), Cursor({0: 3}).encode()]


def test_websocket_first_message_authentication(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a0", ward="A"))
    api.feed.ready.set()
    client = TestClient(api.app(stream.router))
    token = api.auth(wards=["A"])["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect("/alerts/ws") as ws:
        ws.send_json({"token": token, "cursor": START})
        assert ws.receive_json() == {"type": "ready", "cursor": START}
        assert ws.receive_json()["alert"]["alert_id"] == "a0"
    with client.websocket_connect("/alerts/ws?ward=B") as ws:
        ws.send_json({"token": token})
        assert ws.receive_json() == {
            "type": "error",
            "error": "insufficient_scope",
            "detail": "token does not cover ward(s) ['B']",
        }
        closed = ws.receive()
        assert (closed["code"], closed["reason"]) == (4403, "insufficient_scope")
    with client.websocket_connect("/alerts/ws") as ws:
        ws.send_json({"token": "vs_nope"})
        assert ws.receive_json()["error"] == "unknown_token"
        assert ws.receive()["code"] == 4401


def test_websocket_refuses_bad_filters_and_header_tokens_before_the_upgrade(api) -> None:
    api.feed.ready.set()
    client = TestClient(api.app(stream.router))
    with (
        pytest.raises(WebSocketDenialResponse) as bad_filter,
        client.websocket_connect("/alerts/ws?colour=red"),
    ):
        pass
    assert bad_filter.value.status_code == 400
    assert bad_filter.value.json()["error"] == "unknown_filter"
    with (
        pytest.raises(WebSocketDenialResponse) as bad_token,
        client.websocket_connect("/alerts/ws", headers={"Authorization": "Bearer vs_x"}),
    ):
        pass
    assert bad_token.value.status_code == 401
    assert bad_token.value.headers["www-authenticate"] == "Bearer"
    assert bad_token.value.json()["error"] == "unknown_token"


async def test_healthz_reports_readiness_only(api) -> None:
    async with api.client(health.router) as client:
        starting = await client.get("/healthz")
        api.feed.ready.set()
        ready = await client.get("/healthz")
    assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
