"""The e2e suite's cheap load generator: a fleet's frames rendered ahead, sent at 1x.

Owns the pre-rendered load. ``vitalstream simulate`` renders every device's physiology
while it sends, which at thousands of devices takes a core of its own on the machine
being measured. Here the same simulator (:class:`~producers.fleet.Fleet`, same scenario,
seed and faults, so the same bytes and labels) renders the whole run ahead of time into
a directory (:func:`render`), outside the measured span and processes; a separate sender
process (:func:`send`, ``python -m stream.tools.bench.load send DIR``) then publishes each
second's messages when the wall clock reaches that second's end (as a wearable sends a
frame once its last sample is taken), so the worker sees a live fleet.

Re-dating without re-rendering: the run is rendered from a whole-second epoch
``render_start``. The sender picks its own whole-second start just ahead of the clock
(:func:`plan_start`) and shifts every message's time by the whole seconds between the two
(:func:`shift_clock`): epoch seconds have ten integer digits (until 2286), so a whole-second
shift rewrites those ten bytes in place (at an offset recorded at render time,
:func:`clock_offset`) and leaves the fraction (the simulated clock jitter) and the
message's length alone. Labels shift by the same amount (:func:`shifted_labels`).

On disk (:class:`Rendered`): ``values.bin`` (every message value, back to back, in send
order: the enrolments, then each second's frames as :meth:`Fleet.tick
<producers.fleet.Fleet.tick>` gives them, late ones released and duplicates repeated), and
``index.npz`` (per message: its second, -1 for enrolments; its offset and length in
``values.bin``; its key's index; the offsets of its clock digits, one per frame it
carries) and ``meta.json`` (keys, counts, labels).

``per_message`` > 1 renders gateway batches, as ``vitalstream simulate --per-message``
sends them (:mod:`producers.gateways`: consecutive devices share a gateway, each
gateway's frames of a second are one message keyed by the gateway id); each inner frame's
clock is re-dated.

The sender builds its own record batches: per second, one per partition of the frames
topic (a new one when :data:`BATCH_BYTES` fill up), each key's partition worked out once
by the simulator's rule (:func:`partitions_of`), handed whole to aiokafka
(``create_batch`` / ``send_batch``; options from :func:`stream.kafka.client_options`).
Its Cython batch builder costs a few µs per message where kafka-python's ``send`` (the
simulator's publisher) costs 30-45 µs in pure Python: ~20 % of a core at 5,000 devices.
Compression is snappy (:data:`COMPRESSION`): 2,100-byte frames shrink to ~900 bytes for
~5-8 µs per message, where aiokafka's lz4 (level 9) took ~170 µs. The sender reports
its own CPU (user + system, its I/O included) per message sent.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import mmap
import resource
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import orjson

# Epoch seconds are written with this many integer digits from 2001 to 2286.
CLOCK_DIGITS = 10
# Where each record keeps its time: a frame's first sample, an enrolment's moment.
FRAME_CLOCK = b'"t0":'
ENROLMENT_CLOCK = b'"t":'
ENROLMENTS_SECOND = -1
# The sender's first second starts at least this long after it is ready to send: time to
# deliver the enrolments, so no frame reaches the worker before its device's enrolment.
LEAD_S = 1.0
# A wearable sends a period's frame once its last sample is taken: the frames dated
# ``start + k`` leave this many periods later. (``vitalstream simulate`` sends a period's
# frames as it begins; its alert latencies read ~0.5 s shorter for that.)
SEND_AFTER_PERIODS = 1.0
# Batching for throughput: a second's frames leave in a few large compressed batches.
BATCH_BYTES = 1024 * 1024
COMPRESSION = "snappy"
REQUEST_BYTES = 8 * 1024 * 1024
VALUES_FILE, INDEX_FILE, META_FILE = "values.bin", "index.npz", "meta.json"


# -- re-dating (pure) ----------------------------------------------------------------------


def clock_offset(value: bytes, field: bytes) -> int:
    """Offset in ``value`` of the integer digits of the epoch that follows ``field``.

    >>> clock_offset(b'{"seq":3,"t0":1796349482.6829,"signals":{}}', b'"t0":')
    14
    >>> clock_offset(b'{"t0":17.5}', b'"t0":')
    Traceback (most recent call last):
    ...
    ValueError: "t0": is not followed by a 10-digit epoch: b'17.5}'
    """
    at = value.index(field) + len(field)
    digits = value[at : at + CLOCK_DIGITS]
    follows = value[at + CLOCK_DIGITS : at + CLOCK_DIGITS + 1]
    if not (digits.isdigit() and len(digits) == CLOCK_DIGITS and follows in (b".", b",", b"}")):
        raise ValueError(
            f"{field.decode()} is not followed by a {CLOCK_DIGITS}-digit epoch: "
            f"{value[at : at + CLOCK_DIGITS + 2]!r}"
        )
    return at


def clock_offsets(value: bytes, field: bytes) -> list[int]:
    """:func:`clock_offset` of every ``field`` in ``value`` (a gateway batch's frames).

    >>> clock_offsets(b'{"frames":[{"t0":1796349482.5},{"t0":1796349483.0}]}', b'"t0":')
    [17, 37]
    """
    found = []
    at = value.find(field)
    while at >= 0:
        found.append(clock_offset(value[at:], field) + at)
        at = value.find(field, at + len(field))
    return found


def shift_clock(value: bytes, at: int | Sequence[int], shift_s: int) -> bytes:
    """``value`` with the epoch whose integer digits start at ``at`` (or each of several
    such offsets) moved by ``shift_s`` whole seconds; the fractions and the length are
    unchanged.

    >>> shift_clock(b'{"t0":1796349481.9877,"x":1}', 6, 120)
    b'{"t0":1796349601.9877,"x":1}'
    >>> shift_clock(b'[{"t0":1796349481.5},{"t0":1796349482.0}]', [7, 27], 1)
    b'[{"t0":1796349482.5},{"t0":1796349483.0}]'
    """
    offsets = [at] if isinstance(at, int) else at
    if len(offsets) == 1:
        at = offsets[0]
        seconds = int(value[at : at + CLOCK_DIGITS]) + shift_s
        return b"%s%d%s" % (value[:at], seconds, value[at + CLOCK_DIGITS :])
    shifted = bytearray(value)
    for at in offsets:
        shifted[at : at + CLOCK_DIGITS] = b"%d" % (int(value[at : at + CLOCK_DIGITS]) + shift_s)
    return bytes(shifted)


def plan_start(render_start: int, now: float, lead_s: float = LEAD_S) -> tuple[int, int]:
    """The sender's first second (the first whole second at least ``lead_s`` after
    ``now``) and the whole-second shift from ``render_start`` to it.

    >>> plan_start(1_000, now=5_000.2, lead_s=1.0)
    (5002, 4002)
    >>> plan_start(1_000, now=5_000.0, lead_s=1.0)
    (5001, 4001)
    """
    start = math.ceil(now + lead_s)
    return start, start - render_start


def second_bounds(seconds_of: np.ndarray, seconds: int) -> np.ndarray:
    """Where each second's messages begin in send order, and where the last one ends:
    second ``k``'s messages are ``bounds[k]:bounds[k + 1]`` (enrolments come before 0).

    >>> second_bounds(np.array([-1, -1, 0, 0, 0, 2]), 3).tolist()
    [2, 5, 5, 6]
    """
    if np.any(np.diff(seconds_of) < 0):
        raise ValueError("messages are not in send order")
    return np.searchsorted(seconds_of, np.arange(seconds + 1), side="left")


def shifted_labels(labels: Sequence[dict[str, Any]], shift_s: float) -> list[dict[str, Any]]:
    """The labels re-dated with the frames (their start and end move by ``shift_s``).

    >>> shifted_labels([{"event": "fall", "start": 10.0, "end": 70.0}], 100)
    [{'event': 'fall', 'start': 110.0, 'end': 170.0}]
    """
    return [label | {"start": label["start"] + shift_s, "end": label["end"] + shift_s}
            for label in labels]  # fmt: skip


def due_in(start: float, k: int, frame_s: float, now: float) -> float:
    """Seconds until second ``k`` is due (``start + k x frame_s``); negative when late.

    >>> due_in(100.0, 3, 1.0, now=101.5), due_in(100.0, 1, 1.0, now=101.25)
    (1.5, -0.25)
    """
    return start + k * frame_s - now


async def paced(
    start: float, seconds: int, frame_s: float = 1.0
) -> AsyncIterator[tuple[int, float]]:
    """Yield ``(k, behind_s)`` at ``start + k x frame_s`` for each second ``k`` (sleeping
    until then without blocking the event loop the producer's I/O runs on); ``behind_s``
    is how late the sender got there (0 when on time). The schedule is absolute: a slow
    second is caught up on, not pushed onto every later one."""
    for k in range(seconds):
        wait = due_in(start, k, frame_s, time.time())
        if wait > 0:
            await asyncio.sleep(wait)
        yield k, max(0.0, -wait)


# -- render (before the measured span) -------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A rendered run in ``directory``: what :func:`render` wrote, as :func:`load` reads it."""

    directory: Path
    meta: dict[str, Any]
    second: np.ndarray  # per message: its second (ENROLMENTS_SECOND for enrolments)
    offset: np.ndarray  # per message: where its value starts in values.bin
    length: np.ndarray  # per message: its value's length
    key: np.ndarray  # per message: index into meta["keys"]
    clock: np.ndarray  # per message: offset of its (first) epoch's integer digits
    # Every frame's clock of each message (a gateway batch has one per frame): message
    # i's are clocks[clock_bounds[i]:clock_bounds[i + 1]].
    clocks: np.ndarray
    clock_bounds: np.ndarray

    @property
    def messages(self) -> int:
        return int(self.second.size)


def render(
    scenario: dict[str, Any],
    devices: int,
    seconds: int,
    directory: Path,
    *,
    seed: int = 1,
    faults: bool = True,
    render_start: int | None = None,
    per_message: int = 1,
) -> dict[str, Any]:
    """Render ``seconds`` of ``devices`` on ``scenario`` (a scenario dict, as the e2e suite
    writes for ``vitalstream simulate``) into ``directory``; returns its meta.

    The same fleet ``vitalstream simulate --scenario ... --seed ... --per-message ...``
    sends, dated from ``render_start`` (default: the current whole second), which the
    sender moves.
    """
    from producers.fleet import Fleet
    from producers.gateways import gateways_for, messages_of
    from producers.scenario import Scenario

    began, cpu_began = time.perf_counter(), time.process_time()
    render_start = int(time.time()) if render_start is None else int(render_start)
    fleet = Fleet(
        Scenario.model_validate(scenario), devices, seed=seed, start=render_start, faults=faults
    )
    gateways = gateways_for(fleet.device_ids, per_message)
    keys = list(fleet.device_ids)
    keys += sorted(set(gateways.values())) if gateways is not None else []
    key_of = {key: i for i, key in enumerate(keys)}
    columns: dict[str, list[int]] = {"second": [], "offset": [], "length": [], "key": [],
                                     "clock": [], "clock_count": []}  # fmt: skip
    clocks: list[int] = []
    directory.mkdir(parents=True, exist_ok=True)
    written = frames = samples = 0
    with (directory / VALUES_FILE).open("wb") as out:

        def put(second: int, messages: Sequence[tuple[str, bytes]], field: bytes) -> None:
            nonlocal written
            for key, value in messages:
                found = clock_offsets(value, field)
                columns["second"].append(second)
                columns["offset"].append(written)
                columns["length"].append(len(value))
                columns["key"].append(key_of[key])
                columns["clock"].append(found[0])
                columns["clock_count"].append(len(found))
                clocks.extend(found)
                written += len(value)
            out.write(b"".join(value for _, value in messages))

        put(ENROLMENTS_SECOND, fleet.enrolments(), ENROLMENT_CLOCK)
        for k in range(seconds):
            tick = fleet.tick()
            frames += tick.frames
            samples += tick.samples
            # The simulator sends the frames still held back as late right after the last.
            last = fleet.drain() if k == seconds - 1 else []
            put(k, messages_of([*tick.messages, *last], gateways), FRAME_CLOCK)
    np.savez(
        directory / INDEX_FILE,
        second=np.array(columns["second"], np.int32),
        offset=np.array(columns["offset"], np.int64),
        length=np.array(columns["length"], np.int32),
        key=np.array(columns["key"], np.int32),
        clock=np.array(columns["clock"], np.int32),
        clock_count=np.array(columns["clock_count"], np.int32),
        clocks=np.array(clocks, np.int32),
    )
    meta = {
        "devices": devices,
        "seconds": seconds,
        "frame_s": fleet.frame_s,
        "per_message": per_message,
        "render_start": render_start,
        "keys": keys,
        "enrolments": len(fleet.device_ids),
        "frames": frames,
        "samples": samples,
        "messages": len(columns["second"]) - len(fleet.device_ids),
        "bytes": written,
        "labels": fleet.labels(float(seconds)),
        "render_s": round(time.perf_counter() - began, 2),
        "render_cpu_s": round(time.process_time() - cpu_began, 2),
    }
    (directory / META_FILE).write_bytes(orjson.dumps(meta))
    return meta


def load(directory: Path) -> Rendered:
    """Read what :func:`render` wrote (the values stay on disk)."""
    meta = orjson.loads((directory / META_FILE).read_bytes())
    with np.load(directory / INDEX_FILE) as index:
        columns = {name: index[name] for name in ("second", "offset", "length", "key", "clock")}
        counts = index["clock_count"] if "clock_count" in index else np.ones_like(columns["clock"])
        clocks = index["clocks"] if "clocks" in index else columns["clock"]
    bounds = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    return Rendered(directory, meta, **columns, clocks=clocks, clock_bounds=bounds)


# -- send (the load generator's own process) -------------------------------------------------


def partitions_of(keys: Sequence[str], partitions: Iterable[int]) -> list[int]:
    """Each key's partition by the simulator's rule (kafka-python's murmur2 of the key),
    so one device's frames stay in one partition, in order, as ``simulate`` sends them.

    >>> first, second, again = partitions_of(["dev-0001", "dev-0002", "dev-0001"], {3, 1, 0, 2})
    >>> first == again and {first, second} <= {0, 1, 2, 3}
    True
    """
    from producers.publisher import _positive_murmur2

    ordered = sorted(partitions)
    return [ordered[_positive_murmur2(key.encode()) % len(ordered)] for key in keys]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Batches:
    """One open batch per partition of a topic; a full one is handed to the producer."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.open: dict[int, Any] = {}
        self.delivered: list[asyncio.Future] = []

    async def add(self, partition: int, key: bytes, value: bytes) -> None:
        batch = self.open.get(partition)
        if batch is None:
            batch = self.open[partition] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it
            await self.send(partition)
            batch = self.open[partition] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a {len(value)}-byte message does not fit in a batch")

    async def send(self, partition: int) -> None:
        batch = self.open.pop(partition)
        if batch.record_count():
            future = await self.producer.send_batch(batch, self.topic, partition=partition)
            self.delivered.append(future)

    async def send_all(self) -> None:
        for partition in list(self.open):
            await self.send(partition)


async def _send(
    settings: Any, rendered: Rendered, values: mmap.mmap, lead_s: float, stop: Any
) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from stream.kafka import client_options

    meta = rendered.meta
    seconds, frame_s = int(meta["seconds"]), float(meta["frame_s"])
    bounds = second_bounds(rendered.second, seconds)
    offsets, lengths = rendered.offset.tolist(), rendered.length.tolist()
    all_clocks, clock_bounds = rendered.clocks.tolist(), rendered.clock_bounds.tolist()
    # Each message's clock offsets: one int (a frame or an enrolment) or a gateway's list.
    clocks = [
        all_clocks[lo] if hi - lo == 1 else all_clocks[lo:hi] for lo, hi in pairwise(clock_bounds)
    ]
    keys = [key.encode() for key in meta["keys"]]
    key_index = rendered.key.tolist()
    producer = AIOKafkaProducer(
        **client_options(settings.kafka, "aiokafka"),
        client_id="vitalstream-bench-load",
        acks=1,  # a load generator: the broker's leader having it is enough
        compression_type=COMPRESSION,
        max_batch_size=BATCH_BYTES,
        max_request_size=REQUEST_BYTES,
    )
    await producer.start()
    try:
        frames_partition = partitions_of(
            meta["keys"], await producer.partitions_for(settings.topics.frames)
        )
        enrolments_partition = partitions_of(
            meta["keys"], await producer.partitions_for(settings.topics.enrolments)
        )
        cpu_began = _cpu_s()
        start, shift = plan_start(int(meta["render_start"]), time.time(), lead_s)

        async def publish(batches: _Batches, lo: int, hi: int, partition: list[int]) -> None:
            for i in range(lo, hi):
                value = shift_clock(values[offsets[i] : offsets[i] + lengths[i]], clocks[i], shift)
                k = key_index[i]
                await batches.add(partition[k], keys[k], value)
            await batches.send_all()

        enrolled = _Batches(producer, settings.topics.enrolments)
        await publish(enrolled, 0, int(bounds[0]), enrolments_partition)
        await asyncio.gather(*enrolled.delivered)  # every device enrolled before its frames
        frames = _Batches(producer, settings.topics.frames)
        behind_s, last = 0.0, -1
        first_due = start + SEND_AFTER_PERIODS * frame_s
        async for k, behind in paced(first_due, seconds, frame_s):
            if stop is not None and stop():
                break
            behind_s, last = max(behind_s, behind), k
            await publish(frames, int(bounds[k]), int(bounds[k + 1]), frames_partition)
        outcomes = await asyncio.gather(*frames.delivered, return_exceptions=True)
        cpu_s = _cpu_s() - cpu_began
    finally:
        await producer.stop()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    sent = int(bounds[last + 1] - bounds[0]) if last >= 0 else 0
    return {
        "devices": meta["devices"],
        "frames": meta["frames"],
        "samples": meta["samples"],
        "messages_rendered": meta["messages"],
        "messages_sent": sent,
        "enrolments_sent": int(bounds[0]),
        "batches": len(outcomes),
        "errors": len(failed),
        "error": type(failed[0]).__name__ if failed else None,
        "start": start,
        "shift_s": shift,
        "behind_s_max": round(behind_s, 3),
        "cpu_s": round(cpu_s, 3),
        "us_per_message": round(1e6 * cpu_s / max(sent, 1), 2),
        "render_s": meta["render_s"],
        "render_cpu_s": meta["render_cpu_s"],
    }


def send(
    settings: Any,
    directory: Path,
    *,
    lead_s: float = LEAD_S,
    stop: Any = None,
) -> dict[str, Any]:
    """Publish a rendered run at 1x: the enrolments at once, then second ``k``'s messages
    (dated from ``start + k``; ``start`` from :func:`plan_start`) at the end of that second,
    ``start + k + frame_s``, each re-dated by the shift.
    Returns the sender's summary, its own CPU included."""
    rendered = load(directory)
    with (
        (directory / VALUES_FILE).open("rb") as file,
        mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as values,
    ):
        return asyncio.run(_send(settings, rendered, values, lead_s, stop))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stream.tools.bench.load send DIR [--out PATH]``: send a rendered run to
    the topics of the settings in the environment; the summary goes to ``--out`` (JSON) and
    stdout. SIGTERM stops it early (it still flushes)."""
    from producers.publisher import stop_on_signals
    from stream.config import load_settings

    parser = argparse.ArgumentParser(prog="stream.tools.bench.load")
    parser.add_argument("command", choices=["send"])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with stop_on_signals() as stop:
        summary = send(load_settings(), args.directory, stop=stop.is_set)
    text = orjson.dumps(summary)
    if args.out is not None:
        args.out.write_bytes(text)
    sys.stdout.buffer.write(text + b"\n")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
