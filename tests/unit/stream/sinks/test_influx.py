"""Sink transport: batching, retries, backpressure and spooling over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import httpx
import pytest

from stream.config import load_settings
from stream.sinks.influx import InfluxSink, SinkError
from stream.sinks.retry import RetryPolicy


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
