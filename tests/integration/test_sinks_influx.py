"""The InfluxDB sink against the real InfluxDB: durable writes, idempotent replays, and
backpressure (no loss) while InfluxDB is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlparse

import pytest

from stream.config import Settings
from stream.sinks.influx import InfluxSink
from stream.sinks.lines import line
from stream.sinks.retry import RetryPolicy

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


def vitals(n: int, device: str = "dev-1") -> list[str]:
    tags = {"ward": "w", "patient": "p-test", "device": device}
    return [line("vitals", tags, {"hr": 60.0 + i, "spo2": 97.0}, T0 + i) for i in range(n)]


def read_hr(settings: Settings, influx_client) -> dict[float, float]:
    query = f'''
from(bucket: "{settings.influx.bucket}")
  |> range(start: {int(T0) - 60}, stop: {int(T0) + 100000})
  |> filter(fn: (r) => r._measurement == "vitals" and r._field == "hr")
'''
    tables = influx_client.query_api().query(query, org=settings.influx.org)
    return {rec.get_time().timestamp(): rec.get_value() for t in tables for rec in t.records}


async def test_lines_are_written_durably_and_replays_overwrite(isolated_settings, influx_client):
    settings = isolated_settings.model_copy(
        update={"influx": isolated_settings.influx.model_copy(update={"batch_lines": 700})}
    )
    sink = InfluxSink(settings)
    try:
        assert await sink.write(vitals(2000)) == 2000
        assert sink.stats.batches_written == 3
        await sink.write(vitals(2000))  # a replay after a crash: same frame times
    finally:
        await sink.close()
    points = read_hr(settings, influx_client)
    assert len(points) == 2000
    assert points[T0] == 60.0 and points[T0 + 1999] == 60.0 + 1999


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def start_proxy(port: int, target: tuple[str, int]) -> asyncio.Server:
    """A TCP forwarder: "InfluxDB comes back" on ``port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_backpressure_holds_the_batch_until_influxdb_returns(
    isolated_settings, influx_client
):
    real = urlparse(isolated_settings.influx.url)
    port = free_port()  # nothing listens here yet: InfluxDB is "down"
    down = isolated_settings.model_copy(
        update={
            "influx": isolated_settings.influx.model_copy(
                update={"url": f"http://127.0.0.1:{port}", "batch_lines": 500, "spool_max_mb": 0}
            )
        }
    )
    sink = InfluxSink(down, policy=RetryPolicy(initial_s=0.05, max_delay_s=0.2, total_s=0.5))
    write = asyncio.create_task(sink.write(vitals(1200, device="dev-bp")))
    await asyncio.sleep(1.5)
    assert not write.done(), "the sink must block, not drop or give up"
    assert sink.stats.backpressure and sink.stats.write_failures >= 3
    assert sink.pending == 1200  # nothing acknowledged, nothing dropped
    proxy = await start_proxy(port, (real.hostname, real.port))
    try:
        assert await asyncio.wait_for(write, 20) == 1200
    finally:
        proxy.close()
        await sink.close()
    assert not sink.stats.backpressure
    points = read_hr(isolated_settings, influx_client)
    assert len(points) == 1200


async def test_an_outage_is_spooled_and_every_point_written_after_recovery(
    isolated_settings, influx_client, tmp_path
):
    """With the spool on, the worker is not held up by an outage: the batches wait on
    disk and reach the real InfluxDB once it is reachable again."""
    real = urlparse(isolated_settings.influx.url)
    port = free_port()
    down = isolated_settings.model_copy(
        update={
            "influx": isolated_settings.influx.model_copy(
                update={"url": f"http://127.0.0.1:{port}", "batch_lines": 500,
                        "spool_dir": tmp_path / "spool"}
            )
        }
    )  # fmt: skip
    sink = InfluxSink(down, policy=RetryPolicy(initial_s=0.05, max_delay_s=0.2, total_s=0.5))
    assert await asyncio.wait_for(sink.write(vitals(1200, device="dev-sp")), 20) == 1200
    assert sink.stats.spooled_lines == 1200 and len(sink.spool.segments()) == 3
    assert await sink.drain() == 0  # still down
    proxy = await start_proxy(port, (real.hostname, real.port))
    try:
        assert await sink.drain() == 1200
    finally:
        proxy.close()
        await sink.close()
    assert sink.spool.segments() == []
    assert len(read_hr(isolated_settings, influx_client)) == 1200
