"""The feed's fan-out, resume and lagging logic, driven without Kafka."""

import asyncio
from pathlib import Path

import pytest

from stream.config import load_settings
from stream.subscriptions.cursor import Cursor, CursorError
from stream.subscriptions.feed import AlertFeed
from stream.subscriptions.filters import AlertFilter
from stream.subscriptions.tokens import TokenStore


def _feed(tmp_path: Path, buffer: int = 100) -> tuple[AlertFeed, TokenStore]:
    settings = load_settings(
        alerts_api={"tokens_file": tmp_path / "t.json", "client_buffer": buffer}
    )
    tokens = TokenStore(settings.alerts_api.tokens_file)
    feed = AlertFeed(settings, tokens)
    feed.partitions = [0, 1]
    feed.base = Cursor({0: 0, 1: 0})
    feed.position = Cursor(feed.base)
    return feed, tokens


async def _take(stream, n: int) -> list:
    return [await asyncio.wait_for(anext(stream), 1.0) for _ in range(n)]


async def test_resume_from_any_cursor_gives_the_rest_exactly_once(tmp_path, alert_factory) -> None:
    feed, tokens = _feed(tmp_path)
    _, scope = tokens.issue(subject="s", wards="*")
    alerts = [alert_factory(alert_id=f"x{i}", patient=f"p{i % 2}") for i in range(10)]
    offsets = {0: 0, 1: 0}
    first = feed.deliveries(scope, AlertFilter(), None)
    [ready] = await _take(first, 1)
    assert ready.kind == "ready"
    for i, alert in enumerate(alerts):
        partition = i % 2
        feed._consume(partition, offsets[partition], alert.to_json())
        offsets[partition] += 1
    received = await _take(first, 4)
    assert [d.alert.alert_id for d in received] == ["x0", "x1", "x2", "x3"]
    await first.aclose()
    resumed = feed.deliveries(scope, AlertFilter(), Cursor.decode(received[-1].cursor))
    rest = await _take(resumed, 7)
    assert rest[0].kind == "ready"
    assert [d.alert.alert_id for d in rest[1:]] == [f"x{i}" for i in range(4, 10)]
    await resumed.aclose()
    assert feed.subscribers == set()


async def test_scope_is_checked_per_event(tmp_path, alert_factory) -> None:
    feed, tokens = _feed(tmp_path)
    _, ward_a = tokens.issue(subject="a", wards=["A"])
    stream = feed.deliveries(ward_a, AlertFilter(), None)
    await _take(stream, 1)
    for offset, ward in enumerate(["B", "A", "B", "A"]):
        feed._consume(0, offset, alert_factory(ward=ward).to_json())
    got = await _take(stream, 2)
    assert [d.alert.ward for d in got] == ["A", "A"]
    assert Cursor.decode(got[-1].cursor)[0] == 4
    await stream.aclose()


async def test_slow_subscriber_gets_lagging_with_a_resumable_cursor(
    tmp_path, alert_factory
) -> None:
    feed, tokens = _feed(tmp_path, buffer=3)
    _, scope = tokens.issue(subject="s", wards="*")
    stream = feed.deliveries(scope, AlertFilter(), None)
    await _take(stream, 1)
    for offset in range(6):
        feed._consume(0, offset, alert_factory(alert_id=f"x{offset}").to_json())
    [lagging] = await _take(stream, 1)
    assert lagging.kind == "lagging"
    assert feed.subscribers == set()  # the lagging subscriber is gone, its queue with it
    resumed = feed.deliveries(scope, AlertFilter(), Cursor.decode(lagging.cursor))
    got = await _take(resumed, 7)
    assert [d.alert.alert_id for d in got[1:]] == [f"x{i}" for i in range(6)]
    await resumed.aclose()


async def test_revoked_token_ends_the_stream(tmp_path, alert_factory) -> None:
    feed, tokens = _feed(tmp_path)
    _, scope = tokens.issue(subject="s", wards="*")
    stream = feed.deliveries(scope, AlertFilter(), None)
    await _take(stream, 1)
    tokens.revoke(scope.id)
    feed._consume(0, 0, alert_factory().to_json())
    [ended] = await _take(stream, 1)
    assert ended.kind == "expired"


def test_cursors_this_feed_cannot_have_issued_are_refused(tmp_path) -> None:
    feed, _ = _feed(tmp_path)
    feed.position = Cursor({0: 5, 1: 5})
    feed.check_cursor(Cursor({0: 5, 1: 2}))
    with pytest.raises(CursorError, match="partition 7"):
        feed.check_cursor(Cursor({7: 0}))
    with pytest.raises(CursorError, match="ahead"):
        feed.check_cursor(Cursor({0: 6}))


def test_undecodable_records_advance_the_position(tmp_path) -> None:
    feed, _ = _feed(tmp_path)
    assert feed._consume(1, 0, b"not json") is None
    assert feed.position == {0: 0, 1: 1}
