"""The InfluxDB sink: line protocol built by hand, batched, gzipped, written durably.

Owns the line-protocol encoding of every measurement VitalStream writes, the bounded
retry policy, and backpressure. The contract the worker relies on:

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

Lines are strings, not influxdb-client ``Point`` objects (those cost microseconds each);
the write is a plain ``POST /api/v2/write`` through httpx.

Tags are bounded: ``ward``, ``patient`` (pseudonym), ``device`` and small enumerations
(model, version, kind, priority, event). Ids such as ``alert_id`` are fields.

Example::

    sink = InfluxSink(settings)
    await sink.write([line("vitals", {"device": "d1"}, {"hr": 72.0}, 1_700_000_000.0)])
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gzip
import logging
import math
import os
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import httpx

from stream.config import Settings
from stream.records import PRIORITY_RANK, VITALS, WAVEFORMS, Alert, Frame

log = logging.getLogger(__name__)

FieldValue = float | int | bool | str

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": "", "\\": "\\\\"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": ""})
# Status codes a retry can cure: rate limits, overload, gateways, server restarts.
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class SinkError(Exception):
    """A write InfluxDB refused for a reason retrying cannot fix (token, bucket, org)."""


class SinkBackpressure(Exception):
    """InfluxDB stayed unavailable for ``retry_max_s``; raised only when not blocking."""


def to_ns(t: float) -> int:
    """Epoch seconds to integer nanoseconds, rounded to the microsecond so the same frame
    time always gives the same timestamp (float noise below 1 µs would split points)."""
    return round(t * 1_000_000) * 1000


def _field(value: FieldValue) -> str | None:
    if type(value) is float:  # nearly every field: skip the isinstance chain
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        return f'"{escaped}"'
    return None


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    t: float,
) -> str | None:
    """One line-protocol line; ``None`` when no field has a finite value.

    >>> line("vitals", {"device": "d1"}, {"hr": 72.0, "lead_off": False}, 1.5)
    'vitals,device=d1 hr=72.0,lead_off=false 1500000000'
    """
    encoded = []
    for name, value in fields.items():
        if type(value) is float:  # nearly every field: no call into _field
            if math.isfinite(value):
                encoded.append(f"{_escaped_key(name)}={value!r}")
            continue
        if value is None:
            continue
        text = _field(value)
        if text is not None:
            encoded.append(f"{_escaped_key(name)}={text}")
    if not encoded:
        return None
    return f"{_series_key(measurement, tuple(tags.items()))} {','.join(encoded)} {to_ns(t)}"


# Measurement, tag and field names repeat on every line of a device (and field names on
# every line of a measurement): escape each distinct one once.
@lru_cache(maxsize=1024)
def _escaped_key(name: str) -> str:
    return name.translate(_TAG_ESCAPES)


@lru_cache(maxsize=65536)
def _series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    head = measurement.translate(_MEASUREMENT_ESCAPES)
    return head + "".join(
        f",{k.translate(_TAG_ESCAPES)}={v.translate(_TAG_ESCAPES)}" for k, v in sorted(tags) if v
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, each delay capped, the total capped.

    Delay ``n`` (0-based) is uniform in ``[c/2, c]`` with ``c = min(max_delay_s,
    initial_s * factor**n)``;
    after ``total_s`` of retrying the caller is told (:meth:`exhausted`) so it can report
    backpressure. Jitter keeps a fleet of workers from hammering a recovering InfluxDB in
    lockstep.
    """

    initial_s: float = 0.2
    factor: float = 2.0
    max_delay_s: float = 5.0
    total_s: float = 60.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay_s, self.initial_s * self.factor**attempt)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1

    def exhausted(self, started: float, now: float) -> bool:
        return now - started >= self.total_s


class Spool:
    """Durable local overflow for batches InfluxDB cannot take now.

    Each batch becomes one segment file holding the exact request body, written under a
    temporary name, fsync'd and renamed, so a segment on disk is always whole. Segments are
    drained oldest first under an exclusive lock (workers on one host may share the
    directory) and deleted only after InfluxDB accepted them: a crash mid-drain writes a
    segment twice, which frame-time timestamps make harmless.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._sequence = 0

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.seg"))

    def size(self) -> int:
        """Bytes spooled. The drain deletes segments while others count them (another
        thread, or another worker sharing the directory): one gone meanwhile counts 0."""
        total = 0
        for segment in self.segments():
            with contextlib.suppress(FileNotFoundError):
                total += segment.stat().st_size
        return total

    def has_room(self, incoming: int) -> bool:
        return self.size() + incoming <= self.max_bytes

    def put(self, body: bytes, lines: int) -> Path:
        self._sequence += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._sequence:06d}-{lines}.seg"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.rename(final)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a power cut
        finally:
            os.close(directory)
        return final

    @contextlib.contextmanager
    def draining(self) -> Iterator[bool]:
        """Exclusive right to drain; yields False when another process holds it."""
        with open(self.directory / ".lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def lines_in(segment: Path) -> int:
        return int(segment.stem.rsplit("-", 1)[1])


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


# -- measurements ------------------------------------------------------------------------
# One function per measurement, so the schema Grafana queries is readable in one place.


def patient_tags(ward: str, patient: str, device: str) -> dict[str, str]:
    return {"ward": ward, "patient": patient, "device": device}


def vitals_lines(frame: Frame, tags: Mapping[str, str]) -> list[str]:
    """``vitals``: the device's own numeric vitals, one line per sample instant."""
    by_time: dict[int, dict[str, FieldValue]] = {}
    for name in VITALS:
        block = getattr(frame.signals, name)
        if block is None:
            continue
        for i, value in enumerate(block.samples):
            t_ns = to_ns(frame.t0 + i / block.fs)
            by_time.setdefault(t_ns, {})[name] = float(value)  # type: ignore[arg-type]
    return [
        text
        for t_ns, fields in sorted(by_time.items())
        if (text := line("vitals", tags, fields, t_ns / 1e9)) is not None
    ]


def raw_lines(frame: Frame, tags: Mapping[str, str]) -> list[str]:
    """``raw``: every waveform sample (only with ``stream.raw_retention``; it is large)."""
    lines: list[str] = []
    for name in WAVEFORMS:
        block = getattr(frame.signals, name)
        if block is None:
            continue
        for i, sample in enumerate(block.samples):
            if isinstance(sample, tuple):
                fields: dict[str, FieldValue] = {
                    f"{name}_x": sample[0],
                    f"{name}_y": sample[1],
                    f"{name}_z": sample[2],
                }
            else:
                fields = {name: float(sample)}
            text = line("raw", tags, fields, frame.t0 + i / block.fs)
            if text is not None:
                lines.append(text)
    return lines


# Feature names that describe signal quality rather than physiology (Grafana's quality panel).
QUALITY_FEATURES = ("ecg_sqi", "ppg_sqi", "ecg_lead_off", "ecg_flat", "ecg_saturated", "motion")


def feature_lines(features: Mapping[str, float], tags: Mapping[str, str], t: float) -> list[str]:
    """``features`` (physiology), ``quality`` (SQI and flags) and the derived heart rates
    in ``vitals`` (``ecg_hr``, ``ppg_hr``), all at the window's end time."""
    physiology = {k: float(v) for k, v in features.items() if k not in QUALITY_FEATURES}
    quality = {k: float(features[k]) for k in QUALITY_FEATURES if k in features}
    derived = {"ecg_hr": features.get("ecg_hr_bpm"), "ppg_hr": features.get("ppg_hr_bpm")}
    candidates = (
        line("features", tags, physiology, t),
        line("quality", tags, quality, t),
        line("vitals", tags, {k: float(v) for k, v in derived.items() if v is not None}, t),
    )
    return [text for text in candidates if text is not None]


def score_line(
    model: str,
    version: str,
    shadow: bool,
    probabilities: Mapping[str, float],
    tags: Mapping[str, str],
    t: float,
) -> str | None:
    """``scores``: one model's class probabilities, tagged with the exact version."""
    all_tags = {**tags, "model": model, "version": version, "shadow": str(shadow).lower()}
    return line("scores", all_tags, dict(probabilities), t)


def alert_line(alert: Alert) -> str | None:
    """``alerts``: one lifecycle event; ``alert_id`` is a field (unbounded), not a tag."""
    tags = {
        **patient_tags(alert.ward, alert.patient, alert.device_id),
        "kind": alert.kind,
        "priority": alert.priority,
        "event": alert.event,
        "category": alert.category,
    }
    fields: dict[str, FieldValue | None] = {
        "alert_id": alert.alert_id,
        "message": alert.message,
        "source": alert.source,
        "t_onset": alert.t_onset,
        "latency_s": alert.emitted_at - alert.t_onset if alert.emitted_at else None,
        "escalation_level": alert.escalation_level,
        "priority_rank": PRIORITY_RANK[alert.priority],
    }
    fields.update({f"value_{k}": float(v) for k, v in alert.values.items()})
    return line("alerts", tags, fields, alert.t_event)


def news2_line(
    aggregate: int,
    subscores: Mapping[str, int],
    partial: bool,
    response: str,
    tags: Mapping[str, str],
    t: float,
) -> str | None:
    """``news2``: the (possibly partial) early-warning score and its parameter scores."""
    fields: dict[str, FieldValue | None] = {
        "aggregate": aggregate,
        "partial": partial,
        "response": response,
    }
    fields.update({f"score_{k}": int(v) for k, v in subscores.items()})
    return line("news2", tags, fields, t)


def pipeline_line(worker: str, metrics: Mapping[str, float | int], t: float) -> str | None:
    """``pipeline``: worker health (frames/s, lag, dead letters, latencies, versions)."""
    return line("pipeline", {"worker": worker}, dict(metrics), t)
