"""Fuzzing the alert feed API over real HTTP: hostile filters, cursors, tokens and bodies
(deep nesting, huge strings, unicode, NaN) get a 4xx JSON error, never a 5xx, and the
service keeps answering afterwards.

The service runs once per module on the real Kafka (its lifespan needs the alerts topic),
so this module is an integration test too.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config import Settings
from stream.subscriptions.server import ServerThread
from stream.subscriptions.tokens import TokenStore

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Service:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.client = httpx.Client(base_url=url, timeout=httpx.Timeout(10.0))

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture(scope="module")
def service(services: Settings, kafka_admin, tmp_path_factory) -> Iterator[Service]:
    from tests.conftest import create_topics

    tag = f"fz{uuid.uuid4().hex[:8]}"
    topics = {field: f"{tag}.{name}" for field, name in services.topics.model_dump().items()}
    create_topics(kafka_admin, list(topics.values()), 1)
    tokens_file = tmp_path_factory.mktemp("fuzz-api") / "tokens.json"
    fuzz_settings = services.model_copy(
        update={
            "topics": services.topics.model_copy(update=topics),
            "alerts_api": services.alerts_api.model_copy(update={"tokens_file": tokens_file}),
        }
    )
    token = TokenStore(tokens_file).issue(subject="fuzz", wards=["A"], can_ack=True)[0]
    with ServerThread(fuzz_settings) as server:
        server.wait_ready()
        svc = Service(server.url, token)
        yield svc
        svc.client.close()
    with contextlib.suppress(Exception):
        kafka_admin.delete_topics(list(topics.values()))


def assert_client_error(response: httpx.Response) -> None:
    """Never a 5xx; a 4xx explains itself in JSON. (The API's own errors carry
    ``{"error", "detail"}``; Starlette's body-parse and routing errors only ``detail``:
    see test_unparseable_body_error_follows_the_api_contract.)"""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert body.get("error") or body.get("detail"), response.text[:300]


def hostile_text_of(longest: int) -> st.SearchStrategy[str]:
    # Text a client can send at all: a lone surrogate has no UTF-8 form (httpx refuses it
    # before any request is made, so it would test the client, not the service).
    return (
        st.text(alphabet=st.characters(codec="utf-8"), max_size=50)
        | st.text(alphabet=st.characters(min_codepoint=0x80, codec="utf-8"), max_size=50)
        | st.sampled_from(["NaN", "Infinity", "-1e999", "' OR 1=1 --", "../../etc/passwd",
                           "%00", "\u202e", "🩺" * 20, "*", ",", "high,low"])
        | st.integers(min_value=1, max_value=longest).map(lambda n: "x" * n)
    )  # fmt: skip


# httpx refuses URL parts over 64 KiB client-side; bodies get the really big strings.
hostile_text = hostile_text_of(200_000)
hostile_query_text = hostile_text_of(12_000)
filter_names = st.sampled_from(
    ["ward", "patient", "kind", "min_priority", "priority", "category", "cursor", "token",
     "access_token", "since", "unknown"]
) | st.text(max_size=10)  # fmt: skip


def _deep(depth: int) -> str:
    return '{"note": ' + "[" * depth + "]" * depth + "}"


json_bodies = (
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | hostile_text,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4)
        ),
        max_leaves=15,
    ).map(lambda v: httpx.Request("POST", "/", json=v).content if _jsonable(v) else b"{}")
    | st.integers(min_value=100, max_value=100_000).map(lambda d: _deep(d).encode())
    | st.binary(max_size=300)
    | st.just(b'{"note": NaN}')
    | st.just(b'{"url": "http://x", "filters": {"ward": ' + b"[" * 5000 + b"]" * 5000 + b"}}")
)


def _jsonable(value: object) -> bool:
    try:
        httpx.Request("POST", "/", json=value)
    except (ValueError, TypeError):
        return False
    return True


@FUZZ
@given(params=st.lists(st.tuples(filter_names, hostile_query_text), max_size=5))
def test_hostile_stream_filters_and_cursors(service: Service, params) -> None:
    headers = service.auth()
    with service.client.stream("GET", "/alerts/stream", params=params, headers=headers) as r:
        assert r.status_code < 500, r.status_code
        if r.status_code >= 400:
            r.read()
            assert_client_error(r)


def _header(value: str) -> bytes:
    """Any text as a header value HTTP can carry (no controls, no edge whitespace): raw
    UTF-8 bytes included, which the server must treat as just another bad value."""
    raw = bytes(b for b in value.encode("utf-8", "replace") if b >= 0x20 and b != 0x7F).strip()
    return raw or b"x"


@FUZZ
@given(cursor=hostile_query_text, token=hostile_query_text)
def test_hostile_cursor_header_and_tokens(service: Service, cursor: str, token: str) -> None:
    for headers in (
        {**service.auth(), "Last-Event-ID": _header(cursor)},
        {"Authorization": b"Bearer " + _header(token)},
        {"Authorization": _header(token)},
    ):
        with service.client.stream("GET", "/alerts/stream", headers=headers) as r:
            assert r.status_code < 500, r.status_code
            if r.status_code >= 400:
                r.read()
                assert r.json()["error"]
    wrong = service.client.get(
        "/webhooks", headers={"Authorization": b"Bearer x" + _header(token[:64])}
    )
    assert wrong.status_code in (400, 401), wrong.text


@FUZZ
@given(body=json_bodies, alert_id=hostile_query_text)
def test_hostile_bodies_on_ack_and_webhooks(service: Service, body: bytes, alert_id: str) -> None:
    headers = service.auth() | {"Content-Type": "application/json"}
    from urllib.parse import quote

    path_id = quote(alert_id[:2000].encode("utf-8", "replace"), safe="") or "x"
    for path in (f"/alerts/{path_id}/ack", "/webhooks"):
        response = service.client.post(path, content=body, headers=headers)
        assert_client_error(response)
    fhir = service.client.get(
        "/fhir/DetectedIssue", params={"patient": alert_id[:5000]}, headers=service.auth()
    )
    assert_client_error(fhir)


def test_unparseable_body_error_follows_the_api_contract(service: Service) -> None:
    body = b'{"url": "http://x", "filters": {"ward": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    response = service.client.post(
        "/webhooks", content=body, headers=service.auth() | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]


def test_service_still_healthy_after_fuzzing(service: Service) -> None:
    assert service.client.get("/healthz").status_code == 200
    listed = service.client.get("/webhooks", headers=service.auth())
    assert listed.status_code == 200
