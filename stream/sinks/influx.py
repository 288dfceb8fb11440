"""The InfluxDB sink: line-protocol batches, gzipped, written durably over HTTP.

Owns the transport: buffering, batching, bounded retry and backpressure, and the spool
fallback. The lines come from :mod:`stream.sinks.measurements` (built with
:mod:`stream.sinks.lines`); the retry policy is :mod:`stream.sinks.retry`, the disk spool
:mod:`stream.sinks.spool`. The contract the worker relies on:

- :meth:`InfluxSink.add` buffers lines; :meth:`InfluxSink.flush` writes all buffered lines
  in batches of ``settings.influx.batch_lines`` and returns only once InfluxDB accepted
  them; :meth:`InfluxSink.write` is add + flush.
- While InfluxDB is unreachable, ``flush`` retries (exponential backoff with jitter) and
  never drops. After ``retry_max_s`` the batch goes to the :class:`Spool`, a durable local
  overflow (fsync'd segment files): the flush returns, Kafka offsets advance and alerts keep
  flowing, and :meth:`InfluxSink.drain` (a worker timer) writes the spool back once InfluxDB
  answers. Only when the spool is full (or disabled) does the awaiting agent stall, so
  offsets are never committed for data that is not durable somewhere. Errors retrying cannot
  fix (bad token, missing bucket) raise :class:`SinkError`.
- Timestamps come from frame time, never the wall clock, so a replay after a crash
  overwrites the same points instead of duplicating them.

The write is a plain ``POST /api/v2/write`` through httpx.

Example::

    from stream.sinks.lines import line

    sink = InfluxSink(settings)
    await sink.write([line("vitals", {"device": "d1"}, {"hr": 72.0}, 1_700_000_000.0)])
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from stream.config import Settings
from stream.sinks.retry import RetryPolicy
from stream.sinks.spool import Spool

log = logging.getLogger(__name__)

# Status codes a retry can cure: rate limits, overload, gateways, server restarts.
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class SinkError(Exception):
    """A write InfluxDB refused for a reason retrying cannot fix (token, bucket, org)."""


class SinkBackpressure(Exception):
    """InfluxDB stayed unavailable for ``retry_max_s``; raised only when not blocking."""


@dataclass
class SinkStats:
    lines_written: int = 0
    batches_written: int = 0
    write_failures: int = 0
    last_write_s: float = 0.0
    backpressure: bool = False
    backpressure_events: int = 0
    spooled_lines: int = 0
    drained_lines: int = 0


class InfluxSink:
    """Durable, batched line-protocol writer for one InfluxDB bucket."""

    def __init__(
        self,
        settings: Settings,
        policy: RetryPolicy | None = None,
        block: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        influx = settings.influx
        self.batch_lines = influx.batch_lines
        self.policy = policy or RetryPolicy(total_s=influx.retry_max_s)
        self.block = block
        self.gzip = influx.gzip
        self.url = influx.url.rstrip("/") + "/api/v2/write"
        self.params = {"org": influx.org, "bucket": influx.bucket, "precision": "ns"}
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if settings.influx_token:
            headers["Authorization"] = f"Token {settings.influx_token}"
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        self.headers = headers
        self._client = client or httpx.AsyncClient(timeout=influx.timeout_s)
        spool_dir = influx.spool_dir or (
            settings.services.data_dir.parent / "spool" / settings.stream.app_id
        )
        max_bytes = int(influx.spool_max_mb * 1024 * 1024)
        self.spool = Spool(spool_dir, max_bytes) if max_bytes > 0 else None
        self._buffer: list[str] = []
        # The batch agent and the timers share one sink: one flush at a time, or two
        # flushes would write the same head of the buffer and then both drop it.
        self._flushing = asyncio.Lock()
        self.stats = SinkStats()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, lines: Iterable[str | None]) -> None:
        self._buffer.extend(text for text in lines if text)

    async def flush(self) -> int:
        """Write everything buffered; returns the number of lines made durable."""
        written = 0
        async with self._flushing:
            while self._buffer:
                batch = self._buffer[: self.batch_lines]
                await self._write_batch(batch)
                # Drop only after InfluxDB accepted it: a cancelled flush loses nothing.
                del self._buffer[: len(batch)]
                written += len(batch)
        return written

    async def write(self, lines: Iterable[str | None]) -> int:
        self.add(lines)
        return await self.flush()

    async def close(self) -> None:
        await self._client.aclose()

    async def _write_batch(self, batch: list[str]) -> None:
        body = "\n".join(batch).encode()
        if self.gzip:
            body = gzip.compress(body, compresslevel=1)
        started = time.monotonic()
        if self.spool is not None and self.spool.segments() and await self._spool(body, batch):
            return  # InfluxDB was down moments ago: queue behind the backlog, drain() sends it
        delays = self.policy.delays()
        while True:
            problem = await self._post(body)
            if problem is None:
                break
            self.stats.write_failures += 1
            if self.policy.exhausted(started, time.monotonic()):
                if self.spool is not None and await self._spool(body, batch, problem):
                    return
                self._report_backpressure(problem, time.monotonic() - started)
                if not self.block:
                    raise SinkBackpressure(problem)
            await asyncio.sleep(next(delays))
        self.stats.backpressure = False
        self.stats.lines_written += len(batch)
        self.stats.batches_written += 1
        self.stats.last_write_s = time.monotonic() - started

    async def _spool(self, body: bytes, batch: list[str], problem: str | None = None) -> bool:
        """Make the batch durable on local disk; False when the spool is full."""
        assert self.spool is not None
        if not await asyncio.to_thread(self.spool.has_room, len(body)):
            return False
        await asyncio.to_thread(self.spool.put, body, len(batch))
        if problem is not None:
            log.warning(
                "InfluxDB unavailable (%s): spooling to %s; consumption and alerts continue",
                problem,
                self.spool.directory,
            )
        self.stats.spooled_lines += len(batch)
        return True

    async def drain(self) -> int:
        """Write spooled segments back, oldest first; stops at the first failure."""
        if self.spool is None or not self.spool.segments():
            return 0
        drained = 0
        with self.spool.draining() as mine:
            if not mine:
                return 0
            for segment in self.spool.segments():
                body = await asyncio.to_thread(segment.read_bytes)
                try:
                    problem = await self._post(body)
                except SinkError as exc:
                    # Refused (token, bucket): keep the segment for when it is fixed; a
                    # raise here would end the drain timer and strand the spool.
                    problem = str(exc)
                    log.error("spooled lines kept in %s: %s", self.spool.directory, exc)
                if problem is not None:
                    self.stats.write_failures += 1
                    break
                segment.unlink()
                drained += Spool.lines_in(segment)
        if drained:
            self.stats.drained_lines += drained
            self.stats.lines_written += drained
            log.info("InfluxDB is back: wrote %d spooled lines", drained)
        return drained

    async def _post(self, body: bytes) -> str | None:
        """``None`` when InfluxDB accepted the batch, else a retryable problem."""
        try:
            response = await self._client.post(
                self.url, params=self.params, headers=self.headers, content=body
            )
        except httpx.TransportError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.status_code < 300:
            return None
        if response.status_code in _RETRYABLE_STATUS:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        detail = response.text[:300]
        if response.status_code == 400:
            # Our own line protocol was refused: a bug, never data to retry forever.
            # InfluxDB 2 keeps the valid lines of a partial write.
            log.error("InfluxDB refused lines (partial write): %s", detail)
            return None
        raise SinkError(f"InfluxDB write refused, HTTP {response.status_code}: {detail}")

    def _report_backpressure(self, problem: str, waited: float) -> None:
        if not self.stats.backpressure:
            self.stats.backpressure_events += 1
            log.warning(
                "InfluxDB unavailable for %.0f s (%s): holding the batch, consumption paused",
                waited,
                problem,
            )
        self.stats.backpressure = True
