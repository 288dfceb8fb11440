"""``acknowledge``: the client side of ``POST /alerts/{alert_id}/ack``, against the real
acknowledgement router (its Kafka producer is the test fake)."""

from __future__ import annotations

import httpx
import pytest

from stream.records import Alert
from stream.subscriptions.client import AlertClientError, acknowledge
from stream.subscriptions.routes import acks


def _transport(api) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=api.app(acks.router))


def _token(api, **scope) -> str:
    return api.auth(**scope)["Authorization"].removeprefix("Bearer ")


async def test_acknowledge_sends_the_verdict_and_returns_the_answer(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    token = _token(api, subject="nurse-7", wards=["A"], can_ack=True)
    answer = await acknowledge(
        "http://alerts.test/", token, "a1", verdict="actionable", note="rapid response called",
        transport=_transport(api),
    )  # fmt: skip
    assert (answer["alert_id"], answer["verdict"], answer["acknowledged_by"]) == (
        "a1",
        "actionable",
        "nurse-7",
    )
    [_, (_, event_json, _)] = api.producer.sent
    event = Alert.from_json(event_json)
    assert (event.verdict, event.note) == ("actionable", "rapid response called")


async def test_acknowledge_raises_the_apis_refusal(api, alert_factory) -> None:
    api.publish(alert_factory(alert_id="a1", ward="A"))
    api.feed.ready.set()
    reader = _token(api, wards=["A"])
    with pytest.raises(AlertClientError) as refused:
        await acknowledge(
            "http://alerts.test", reader, "a1", verdict="artefact", transport=_transport(api)
        )
    assert (refused.value.status, refused.value.code) == (403, "insufficient_scope")
    acker = _token(api, wards=["A"], can_ack=True)
    with pytest.raises(AlertClientError) as invalid:
        await acknowledge(
            "http://alerts.test", acker, "a1", verdict="maybe",  # type: ignore[arg-type]
            transport=_transport(api),
        )  # fmt: skip
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_verdict")
    assert api.producer.sent == []
