"""Sink: line-protocol encoding, retry policy, durable flush semantics over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import random
from pathlib import Path

import httpx
import pytest

from stream.config import load_settings
from stream.records import Frame
from stream.sinks.influx import (
    InfluxSink,
    RetryPolicy,
    SinkError,
    Spool,
    line,
    raw_lines,
    to_ns,
    vitals_lines,
)


def test_line_escapes_tags_and_types_fields():
    text = line(
        "alerts",
        {"ward": "ward 7,east", "device": "d=1"},
        {"alert_id": 'a"b', "count": 3, "active": True, "value": 1.5},
        2.0,
    )
    assert text == (
        r"alerts,device=d\=1,ward=ward\ 7\,east "
        r'alert_id="a\"b",count=3i,active=true,value=1.5 2000000000'
    )


def test_line_drops_non_finite_fields_and_empty_lines():
    text = line("features", {}, {"hr": float("nan"), "sqi": 0.9}, 1.0)
    assert text == "features sqi=0.9 1000000000"
    assert line("features", {}, {"hr": float("nan"), "x": None}, 1.0) is None


def test_line_is_the_same_whatever_the_tag_order_and_skips_empty_tags():
    # Series keys are cached per (measurement, tags): order and empties must not leak in.
    fields = {"hr": 72.0, "flag": False, "n": 2}
    first = line("vitals", {"ward": "w", "device": "d", "patient": ""}, fields, 1.0)
    second = line("vitals", {"device": "d", "patient": "", "ward": "w"}, fields, 1.0)
    assert first == second == "vitals,device=d,ward=w hr=72.0,flag=false,n=2i 1000000000"
    assert line("quality", {"ward": "w", "device": "d"}, {"sqi": 1.0}, 1.0) == (
        "quality,device=d,ward=w sqi=1.0 1000000000"
    )


def test_timestamps_are_deterministic_at_microsecond_resolution():
    assert to_ns(1_795_535_491.1) == to_ns(1_795_535_491.0 + 0.1)
    assert to_ns(1.000001) == 1_000_001_000


def test_vitals_lines_follow_frame_time():
    frame = Frame.model_validate(
        {
            "device_id": "d1",
            "seq": 0,
            "t0": 100.0,
            "signals": {
                "hr": {"fs": 1, "unit": "bpm", "samples": [70, 71]},
                "spo2": {"fs": 1, "unit": "%", "samples": [97, 96]},
            },
        }
    )
    assert vitals_lines(frame, {"device": "d1"}) == [
        "vitals,device=d1 hr=70.0,spo2=97.0 100000000000",
        "vitals,device=d1 hr=71.0,spo2=96.0 101000000000",
    ]
    assert raw_lines(frame, {"device": "d1"}) == []


def test_retry_policy_grows_caps_and_stops():
    policy = RetryPolicy(initial_s=0.1, factor=2, max_delay_s=1.0, total_s=10)
    rng = random.Random(1)
    delays = [policy.delay(n, rng) for n in range(8)]
    assert all(0.05 <= d <= 0.1 for d in delays[:1])
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    assert not policy.exhausted(0.0, 9.9)
    assert policy.exhausted(0.0, 10.0)


class FakeInflux:
    """An httpx transport answering like InfluxDB: first ``failures`` calls fail."""

    def __init__(self, failures: int = 0, status: int = 503) -> None:
        self.failures = failures
        self.status = status
        self.bodies: list[list[str]] = []
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            if self.status == 0:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(self.status, text="down")
        assert request.headers["content-encoding"] == "gzip"
        assert request.url.params["precision"] == "ns"
        self.bodies.append(gzip.decompress(request.content).decode().split("\n"))
        return httpx.Response(204)


def make_sink(fake: FakeInflux, spool: Path | None = None, spool_mb: float = 1.0, **policy):
    influx = {"batch_lines": 3, "token": "t", "spool_max_mb": 0.0}  # no spool unless asked
    if spool is not None:
        influx |= {"spool_dir": spool, "spool_max_mb": spool_mb}
    settings = load_settings(influx=influx)
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    fast = RetryPolicy(initial_s=0.001, max_delay_s=0.005, total_s=policy.get("total_s", 60))
    return InfluxSink(settings, policy=fast, client=client, block=policy.get("block", True))


async def test_flush_batches_and_empties_the_buffer():
    fake = FakeInflux()
    sink = make_sink(fake)
    lines = [f"m v={i}i {i}" for i in range(7)]
    assert await sink.write(lines) == 7
    assert [len(b) for b in fake.bodies] == [3, 3, 1]
    assert [text for body in fake.bodies for text in body] == lines
    assert sink.pending == 0


@pytest.mark.parametrize("status", [0, 503, 429])
async def test_transient_failures_are_retried_without_loss(status):
    fake = FakeInflux(failures=4, status=status)
    sink = make_sink(fake)
    await sink.write(["m v=1i 1"])
    assert fake.bodies == [["m v=1i 1"]]
    assert sink.stats.write_failures == 4


async def test_backpressure_blocks_instead_of_dropping():
    fake = FakeInflux(failures=10**9, status=0)
    sink = make_sink(fake, total_s=0.01)
    task = asyncio.create_task(sink.write(["m v=1i 1"]))
    await asyncio.sleep(0.2)
    assert not task.done()
    assert sink.stats.backpressure
    assert sink.pending == 1
    fake.failures = 0  # InfluxDB is back
    await asyncio.wait_for(task, 5)
    assert fake.bodies[-1] == ["m v=1i 1"]
    assert not sink.stats.backpressure


async def test_non_blocking_sink_raises_backpressure_and_keeps_the_lines():
    from stream.sinks.influx import SinkBackpressure

    sink = make_sink(FakeInflux(failures=10**9, status=503), total_s=0.01, block=False)
    with pytest.raises(SinkBackpressure):
        await sink.write(["m v=1i 1"])
    assert sink.pending == 1


async def test_configuration_errors_are_not_retried():
    fake = FakeInflux(failures=1, status=401)
    sink = make_sink(fake)
    with pytest.raises(SinkError, match="401"):
        await sink.write(["m v=1i 1"])
    assert fake.calls == 1


async def test_an_outage_spools_to_disk_and_drain_writes_it_back(tmp_path):
    fake = FakeInflux(failures=10**9, status=0)
    sink = make_sink(fake, spool=tmp_path, total_s=0.01)
    # Returns although InfluxDB is down: the batch is durable on disk, the agent moves on.
    assert await asyncio.wait_for(sink.write(["m v=1i 1", "m v=2i 2"]), 5) == 2
    assert sink.pending == 0 and sink.stats.spooled_lines == 2
    calls = fake.calls
    await sink.write(["m v=3i 3"])  # queued behind the backlog without retrying again
    assert fake.calls == calls and len(sink.spool.segments()) == 2
    assert await sink.drain() == 0  # still down: nothing lost, nothing deleted
    assert len(sink.spool.segments()) == 2
    fake.failures = 0
    assert await sink.drain() == 3
    assert [line for body in fake.bodies for line in body] == ["m v=1i 1", "m v=2i 2", "m v=3i 3"]
    assert sink.spool.segments() == []


async def test_a_spool_left_by_a_crashed_worker_is_drained_by_the_next(tmp_path):
    down = FakeInflux(failures=10**9, status=503)
    await make_sink(down, spool=tmp_path, total_s=0.01).write(["m v=1i 1"])
    assert list(tmp_path.glob("*.seg")) and not list(tmp_path.glob(".*.tmp"))
    up = FakeInflux()
    assert await make_sink(up, spool=tmp_path).drain() == 1
    assert up.bodies == [["m v=1i 1"]]


async def test_a_full_spool_falls_back_to_blocking(tmp_path):
    fake = FakeInflux(failures=10**9, status=0)
    sink = make_sink(fake, spool=tmp_path, spool_mb=1e-6, total_s=0.01)  # room for 1 byte
    task = asyncio.create_task(sink.write(["m v=1i 1"]))
    await asyncio.sleep(0.2)
    assert not task.done() and sink.stats.backpressure and sink.pending == 1
    fake.failures = 0
    await asyncio.wait_for(task, 5)
    assert fake.bodies == [["m v=1i 1"]] and sink.spool.segments() == []


def test_spool_size_counts_a_segment_drained_meanwhile_as_nothing(tmp_path, monkeypatch):
    spool = Spool(tmp_path, max_bytes=1_000)
    kept, drained = spool.put(b"x" * 10, 1), spool.put(b"y" * 20, 1)
    listed = spool.segments()
    drained.unlink()  # the drain deletes it between the listing and the stat
    monkeypatch.setattr(spool, "segments", lambda: listed)
    assert spool.size() == 10 and kept.exists()
    assert spool.has_room(990) and not spool.has_room(991)
