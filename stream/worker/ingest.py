"""Ingest: the one door between untrusted bytes and the rest of the stream.

Owns decoding and validating frames and enrolments, dead-lettering everything malformed
(with a precise one-line reason), de-duplicating by ``(device, seq)``, reordering within
``settings.stream.lateness_s``, and pseudonymizing patient ids. The raw patient id never
leaves this module: downstream code sees only :class:`~stream.records.PatientContext`.

Nothing here raises on input: every bad record becomes a :class:`~stream.records.DeadLetter`.

Ordering policy (per device): a frame whose ``seq`` follows the last released one is
released at once, so in-order traffic pays no latency. A frame after a gap is held in a
small reorder buffer until the gap fills, or until the buffer spans more than
``lateness_s`` of frame time (or has waited that long on the wall clock), then released
in ``seq`` order with the gap skipped. A frame older than what was already released is
``late`` (dead-lettered); one seen before is a duplicate (dropped and counted, not
dead-lettered: producer retries make duplicates normal).

A held frame is in no output yet, so its record must not be committed: ingest reports
the position (partition, offset) of every frame it holds (``IngestResult.held``) and of
every held frame it lets go (:meth:`Ingest.take_unheld`), and the worker acks a held
record only once the output carrying its frame is durable.

Unenrolled devices: their frames are processed under an explicit ``unenrolled`` context
(ward ``unassigned``) rather than held or dropped, so time series, technical alerts and
physiological alerts still exist for a device switched on before its enrolment arrived;
the context switches as soon as the enrolment is seen.

Example::

    ingest = Ingest(settings)
    result = ingest.frames([RawRecord(b"dev-1", payload, partition=0, offset=7)], now=time.time())
    result.frames, result.deadletters
"""

from __future__ import annotations

import base64
import gc
import hashlib
import heapq
import hmac
import re
import time
from collections import Counter, deque
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stream.config import Settings
from stream.records import (
    DEVICE_ID_PATTERN,
    MAX_GATEWAY_FRAMES,
    SCHEMA_VERSION,
    SIGNALS,
    DeadLetter,
    Enrolment,
    Frame,
    PatientContext,
    Profile,
)
from stream.signal.frames import FrameBatch, Position

UNENROLLED_PATIENT = "unenrolled"
UNASSIGNED_WARD = "unassigned"
# Seqs remembered per device to tell a duplicate from a late frame; bounded so a
# long-running worker's memory does not grow with uptime.
_RECENT_SEQS = 512
_MAX_REASON = 200
_R = TypeVar("_R", Frame, Enrolment)

_GATEWAY_ID = re.compile(DEVICE_ID_PATTERN)


class RawRecord(NamedTuple):
    """One Kafka record as the worker receives it."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


def pseudonymize(patient_id: str, secret: bytes) -> str:
    """Stable, keyed pseudonym of a patient id (HMAC-SHA256, 128 bits shown).

    >>> pseudonymize("MRN-1", b"k") == pseudonymize("MRN-1", b"k")
    True
    """
    digest = hmac.new(secret, patient_id.encode(), hashlib.sha256).hexdigest()
    return "p-" + digest[:32]


def unenrolled_context(device_id: str) -> PatientContext:
    return PatientContext(
        device_id=device_id, patient=UNENROLLED_PATIENT, ward=UNASSIGNED_WARD, profile=Profile()
    )


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_REASON else flat[: _MAX_REASON - 1] + "…"


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "frame"
    # pydantic wraps model-validator messages as "Value error, ..."; keep the message only.
    message = _signal_message(first) or str(first["msg"]).removeprefix("Value error, ")
    return _one_line(f"invalid: {where}: {message}")


def _signal_message(error: ErrorDetails) -> str | None:
    """A signal's bounds said in its own terms (pydantic says only "less than or equal")."""
    loc = error["loc"]
    if len(loc) < 3 or loc[0] != "signals" or loc[1] not in SIGNALS:
        return None
    spec = SIGNALS[str(loc[1])]
    bound = error["type"] in ("greater_than_equal", "less_than_equal")
    if bound and loc[2] == "samples":
        return (
            f"{error['input']!r} is outside the plausible range "
            f"{spec.lowest:g}..{spec.highest:g} {spec.unit}"
        )
    if bound and loc[2] == "fs":
        return f"sampling rate {error['input']!r} Hz is outside {spec.fs_min:g}..{spec.fs_max:g} Hz"
    if error["type"] == "tuple_type" and loc[1] == "acc":
        return "samples must be [x, y, z] triples"
    return None


def _diagnose(value: bytes, exc: ValidationError) -> str:
    """Name what is wrong with a record pydantic refused: syntax, version, or a field."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as json_error:
        return _one_line(f"bad json: {json_error}")
    if not isinstance(parsed, dict):
        return f"bad json: expected an object, got {type(parsed).__name__}"
    version = parsed.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return _one_line(
            f"unknown schema version: v={version!r}, this worker reads v={SCHEMA_VERSION}"
        )
    return _validation_reason(exc)


def _parse(model: type[_R], value: bytes | None, limit: int) -> _R | str:
    """The validated record, or the reason it is refused. The good path parses once."""
    if value is None:
        return "empty: record has no value"
    if len(value) > limit:
        return f"oversized: {len(value)} bytes > max_frame_bytes {limit}"
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        return _diagnose(value, exc)
    except (ValueError, RecursionError) as exc:  # pathological nesting or encodings
        return _one_line(f"bad json: {type(exc).__name__}: {exc}")


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after, if it was on).

    Decoding a batch allocates some sixty tracked objects per frame (models, their dicts
    and field sets, sample lists, acc tuples), none of them in a cycle, and all alive until
    the batch is through. Left on, the collector runs a young collection every dozen
    frames, promotes the batch's frames it finds alive, and so brings on full collections
    of the worker's whole heap. Paused, the batch costs one young collection after it.

    >>> was_on = gc.isenabled()
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled() == was_on
    True
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def decode_frame(value: bytes | None, settings: Settings, now: float) -> Frame | str:
    """A validated frame, or the reason it is refused (never raises on input)."""
    stream = settings.stream
    frame = _parse(Frame, value, stream.max_frame_bytes)
    if isinstance(frame, str):
        return frame
    ahead = frame.t0 - now
    if ahead > stream.max_future_skew_s:
        return (
            f"future: t0 is {ahead:.0f} s ahead of the worker clock "
            f"(max {stream.max_future_skew_s:g} s)"
        )
    span = frame.duration()
    if span > stream.max_frame_seconds:
        return (
            f"too long: frame covers {span:.1f} s > max_frame_seconds {stream.max_frame_seconds:g}"
        )
    return frame


class Rejection(NamedTuple):
    """A frame refused at decode: which record it came in, why, and the refused bytes
    (the record's, or for a frame inside a gateway batch that frame's alone, with the
    gateway and the frame's index). ``before_row``: how many good frames of the batch
    were decoded before it (dead letters keep the records' order)."""

    record: int
    reason: str
    payload: bytes | None
    before_row: int
    gateway_id: str | None = None
    frame_index: int | None = None


class Decoded(NamedTuple):
    """A batch of records decoded: the good frames as columns (record order, a gateway
    batch's frames in their order) and the refused ones."""

    batch: FrameBatch
    rejected: list[Rejection]


def gateway_frames(value: bytes, settings: Settings) -> tuple[str, list[bytes]] | str | None:
    """A gateway batch's id and its frames (each as JSON bytes, to be validated alone);
    None when ``value`` is not a gateway batch (a plain frame, or not an object); the
    reason when it is one that cannot be read."""
    if b'"gateway_id"' not in value:
        return None
    limit = settings.stream.max_frame_bytes * MAX_GATEWAY_FRAMES
    if len(value) > limit:
        return f"oversized: {len(value)} bytes > {limit} for a gateway batch"
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as json_error:
        return _one_line(f"bad json: {json_error}")
    if not isinstance(parsed, dict) or "gateway_id" not in parsed:
        return None
    version = parsed.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return _one_line(
            f"unknown schema version: v={version!r}, this worker reads v={SCHEMA_VERSION}"
        )
    gateway_id, frames = parsed["gateway_id"], parsed.get("frames")
    if not isinstance(gateway_id, str) or not _GATEWAY_ID.fullmatch(gateway_id):
        return _one_line(f"invalid: gateway_id: {gateway_id!r} is not a valid id")
    if not isinstance(frames, list) or not 1 <= len(frames) <= MAX_GATEWAY_FRAMES:
        return f"invalid: frames: a gateway batch carries 1..{MAX_GATEWAY_FRAMES} frames"
    extra = set(parsed) - {"v", "gateway_id", "frames"}
    if extra:
        return _one_line(f"invalid: {sorted(extra)[0]}: Extra inputs are not permitted")
    return gateway_id, [orjson.dumps(frame) for frame in frames]


def decode_records(records: Sequence[RawRecord], settings: Settings, now: float) -> Decoded:
    """Every frame of a batch of records, validated one by one (the reference decode:
    each frame through :func:`decode_frame`), as columns."""
    good: list[Frame] = []
    positions: list[Position] = []
    rejected: list[Rejection] = []
    for index, record in enumerate(records):
        position = (record.partition, record.offset)
        value = record.value
        gateway = gateway_frames(value, settings) if value is not None else None
        if isinstance(gateway, str):
            rejected.append(Rejection(index, gateway, value, len(good)))
            continue
        inner = [(None, value)] if gateway is None else list(enumerate(gateway[1]))
        for frame_index, payload in inner:
            decoded = decode_frame(payload, settings, now)
            if isinstance(decoded, str):
                gateway_id = gateway[0] if gateway is not None else None
                rejected.append(
                    Rejection(index, decoded, payload, len(good), gateway_id, frame_index)
                )
            else:
                good.append(decoded)
                positions.append(position)
    return Decoded(FrameBatch.from_frames(good, positions), rejected)


def decode_enrolment(value: bytes | None, settings: Settings) -> Enrolment | str:
    return _parse(Enrolment, value, settings.stream.max_frame_bytes)


def dead_letter(
    record: RawRecord,
    reason: str,
    topic: str,
    now: float,
    payload: bytes | None = None,
    gateway_id: str | None = None,
    frame_index: int | None = None,
) -> DeadLetter:
    """The dead letter of a record (``payload`` None: the record's value), or of one frame
    of a gateway batch (``payload``: that frame, with its gateway and index)."""
    return DeadLetter(
        reason=reason,
        source_topic=topic,
        partition=record.partition,
        offset=record.offset,
        at=now,
        payload_b64=base64.b64encode(record.value if payload is None else payload).decode()
        if (record.value if payload is None else payload)
        else "",
        gateway_id=gateway_id,
        frame_index=frame_index,
    )


def reason_kind(reason: str) -> str:
    """The bounded label of a reason (``'bad json'`` of ``'bad json: ...'``), for counters."""
    return reason.split(":", 1)[0]


# A frame the reorder buffer holds: (seq, wall time held, t0, the frame alone, record).
_Held = tuple[int, float, float, FrameBatch, Position]
# A frame released by an admission: a row of the batch being admitted, or a held frame.
_Released = int | FrameBatch


@dataclass
class _DeviceOrder:
    """Reorder state of one device: last released seq, recent seqs, held frames."""

    last_seq: int
    last_t0: float
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT_SEQS))
    recent_set: set[int] = field(default_factory=set)
    held: list[_Held] = field(default_factory=list)  # a heap on seq, which is unique here

    def remember(self, seq: int) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.recent_set.discard(self.recent[0])
        self.recent.append(seq)
        self.recent_set.add(seq)

    def is_held(self, seq: int) -> bool:
        return any(item[0] == seq for item in self.held)


@dataclass
class IngestResult:
    """A batch's released frames (``batch``, each row's context in ``contexts``), its
    dead letters and duplicates, and the records whose frames wait for a gap (``held``:
    a record's position once per frame of it held)."""

    batch: FrameBatch = field(default_factory=FrameBatch.empty)
    contexts: list[PatientContext] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    held: list[Position] = field(default_factory=list)

    @property
    def frames(self) -> list[tuple[Frame, PatientContext]]:
        """The released frames as models, with their contexts (tests and tools)."""
        return list(zip(self.batch.frames(), self.contexts, strict=True))


def _assemble(released: list[_Released], batch: FrameBatch) -> FrameBatch:
    """The released frames in release order: runs of rows of ``batch`` and held frames."""
    if all(isinstance(item, int) for item in released):
        return batch.take(released)  # type: ignore[arg-type]
    pieces: list[FrameBatch] = []
    rows: list[int] = []
    for item in released:
        if isinstance(item, int):
            rows.append(item)
            continue
        if rows:
            pieces.append(batch.take(rows))
            rows = []
        pieces.append(item)
    if rows:
        pieces.append(batch.take(rows))
    return FrameBatch.concat(pieces)


class Ingest:
    """Stateful ingest for one worker's partitions: enrolments, order, dead letters."""

    def __init__(
        self,
        settings: Settings,
        contexts: MutableMapping[str, PatientContext] | None = None,
    ) -> None:
        """``contexts``: where enrolled devices' contexts live (the worker's durable
        store through :class:`~stream.worker.state.ContextView`; a dict by default)."""
        self.settings = settings
        self._secret: bytes | None = None
        self.contexts: MutableMapping[str, PatientContext] = {} if contexts is None else contexts
        self._order: dict[str, _DeviceOrder] = {}
        self.rejected: Counter[str] = Counter()
        self.duplicates = 0
        self.accepted = 0
        self._unheld: list[Position] = []
        # Frames held per record: a gateway batch's record may hold several devices'
        # frames, and is unheld only once the last of them is released.
        self._holding: Counter[Position] = Counter()

    # -- enrolments ---------------------------------------------------------------------
    def enrol(self, record: RawRecord, now: float | None = None) -> PatientContext | DeadLetter:
        """Pseudonymize one enrolment record into the device's context."""
        now = time.time() if now is None else now
        decoded = decode_enrolment(record.value, self.settings)
        if isinstance(decoded, str):
            self.rejected[reason_kind(decoded)] += 1
            # An enrolment carries the raw patient id: its dead letter keeps only the reason
            # and the position; the original stays in the (access-controlled) source topic.
            redacted = record._replace(value=b"")
            return dead_letter(redacted, decoded, self.settings.topics.enrolments, now)
        context = self.context_of(decoded)
        self.contexts[context.device_id] = context
        return context

    def context_of(self, enrolment: Enrolment) -> PatientContext:
        if self._secret is None:
            # Read on first use: offline analysis never enrols and needs no key.
            self._secret = self.settings.pseudonym_secret
        return PatientContext(
            device_id=enrolment.device_id,
            patient=pseudonymize(enrolment.patient_id, self._secret),
            ward=enrolment.ward,
            profile=enrolment.profile,
        )

    def context(self, device_id: str) -> PatientContext:
        return self.contexts.get(device_id) or unenrolled_context(device_id)

    # -- frames -------------------------------------------------------------------------
    def frames(self, records: Sequence[RawRecord], now: float | None = None) -> IngestResult:
        """Decode, validate, de-duplicate and order a batch of frame records."""
        now = time.time() if now is None else now
        result = IngestResult()
        topic = self.settings.topics.frames
        with gc_paused():
            decoded = decode_records(records, self.settings, now)
        batch = decoded.batch
        rejections = iter(decoded.rejected)
        rejection = next(rejections, None)
        released: list[_Released] = []
        devices, seqs, starts = batch.device_ids, batch.seq.tolist(), batch.t0.tolist()
        for row in range(len(batch) + 1):
            # Dead letters in the records' order: those decoded before this row first.
            while rejection is not None and rejection.before_row <= row:
                record = records[rejection.record]
                self._reject(result, record, rejection.reason, topic, now, rejection)
                rejection = next(rejections, None)
            if row == len(batch):
                break
            verdict = self._admit(batch, row, devices[row], seqs[row], starts[row], now, released)
            if verdict == "held":
                result.held.append(batch.positions[row])
            elif verdict == "duplicate":
                result.duplicates += 1
                self.duplicates += 1
            elif verdict is not None:
                self._reject_late(result, records, batch, row, verdict, topic, now)
        released += self._expired(now)
        result.batch = _assemble(released, batch)
        self.accepted += len(result.batch)
        context = self.context
        result.contexts = [context(device) for device in result.batch.device_ids]
        return result

    def _reject_late(
        self,
        result: IngestResult,
        records: Sequence[RawRecord],
        batch: FrameBatch,
        row: int,
        reason: str,
        topic: str,
        now: float,
    ) -> None:
        """A frame refused after decoding (late): the dead letter of its record, or of the
        frame alone when it came in a gateway batch."""
        position = batch.positions[row]
        record = next(r for r in records if (r.partition, r.offset) == position)
        gateway = gateway_frames(record.value, self.settings) if record.value else None
        if not isinstance(gateway, tuple):
            self._reject(result, record, reason, topic, now)
            return
        frame = batch.frame(row)
        index = next(
            (
                i
                for i, payload in enumerate(gateway[1])
                if Frame.model_validate_json(payload) == frame
            ),
            None,
        )
        rejection = Rejection(0, reason, frame.to_json(), row, gateway[0], index)
        self._reject(result, record, reason, topic, now, rejection)

    def _reject(
        self,
        result: IngestResult,
        record: RawRecord,
        reason: str,
        topic: str,
        now: float,
        rejection: Rejection | None = None,
    ) -> None:
        self.rejected[reason_kind(reason)] += 1
        if rejection is None or rejection.gateway_id is None:
            result.deadletters.append(dead_letter(record, reason, topic, now))
        else:
            result.deadletters.append(
                dead_letter(
                    record, reason, topic, now, rejection.payload, rejection.gateway_id,
                    rejection.frame_index,
                )
            )  # fmt: skip

    def forget(self, device_id: str) -> None:
        """Drop a device's order state and held frames (its partition moved away)."""
        state = self._order.pop(device_id, None)
        if state is not None:
            for item in state.held:
                self._unhold(item[4], report=False)

    def take_unheld(self) -> list[Position]:
        """Positions of the records whose last held frame was released since the last call."""
        unheld, self._unheld = self._unheld, []
        return unheld

    def _hold(self, state: _DeviceOrder, item: _Held) -> None:
        heapq.heappush(state.held, item)
        self._holding[item[4]] += 1

    def _unhold(self, position: Position, report: bool = True) -> None:
        self._holding[position] -= 1
        if self._holding[position] <= 0:
            del self._holding[position]
            if report:
                self._unheld.append(position)

    def _admit(
        self,
        batch: FrameBatch,
        row: int,
        device_id: str,
        seq: int,
        t0: float,
        now: float,
        released: list[_Released],
    ) -> str | None:
        """None (released), ``held``, ``duplicate``, or the reason it is refused."""
        state = self._order.get(device_id)
        if state is None:
            state = _DeviceOrder(last_seq=seq, last_t0=t0)
            state.remember(seq)
            self._order[device_id] = state
            released.append(row)
            return None
        if seq in state.recent_set or state.is_held(seq):
            return "duplicate"
        if seq < state.last_seq:
            if t0 > state.last_t0 + self.settings.stream.lateness_s:
                # Lower seq but newer time: the device restarted its counter.
                self._order.pop(device_id)
                released.extend(self._drain(state))
                return self._admit(batch, row, device_id, seq, t0, now, released)
            return f"late: seq {seq} arrived after seq {state.last_seq} was processed"
        if seq == state.last_seq + 1:
            self._release(state, seq, t0, row, released)
            self._release_contiguous(state, released)
        else:
            self._hold(state, (seq, now, t0, batch.take([row]), batch.positions[row]))
            self._release_if_stale(state, now, released)
            return "held"
        return None

    def _release(
        self, state: _DeviceOrder, seq: int, t0: float, frame: _Released, released: list[_Released]
    ) -> None:
        state.last_seq = seq
        state.last_t0 = max(state.last_t0, t0)
        state.remember(seq)
        released.append(frame)

    def _release_contiguous(self, state: _DeviceOrder, released: list[_Released]) -> None:
        while state.held and state.held[0][0] == state.last_seq + 1:
            seq, _, t0, frame, position = heapq.heappop(state.held)
            self._unhold(position)
            self._release(state, seq, t0, frame, released)

    def _release_if_stale(self, state: _DeviceOrder, now: float, released: list[_Released]) -> None:
        lateness = self.settings.stream.lateness_s
        while state.held:
            newest_t0 = max(item[2] for item in state.held)
            seq, held_since, t0, oldest, position = state.held[0]
            waited_frame_time = newest_t0 - t0 >= lateness
            waited_wall = now - held_since >= lateness
            if not (waited_frame_time or waited_wall):
                return
            heapq.heappop(state.held)
            self._unhold(position)
            self._release(state, seq, t0, oldest, released)
            self._release_contiguous(state, released)

    def _drain(self, state: _DeviceOrder) -> list[_Released]:
        drained = sorted(state.held, key=lambda item: item[0])
        state.held.clear()
        for item in drained:
            self._unhold(item[4])
        return [item[3] for item in drained]

    def _expired(self, now: float) -> list[_Released]:
        released: list[_Released] = []
        for state in self._order.values():
            if state.held:
                self._release_if_stale(state, now, released)
        return released

    def release_expired(self, now: float | None = None) -> FrameBatch:
        """Frames held past ``lateness_s`` of wall time (a device went quiet after a gap)."""
        now = time.time() if now is None else now
        return _assemble(self._expired(now), FrameBatch.empty())

    def held_frames(self) -> int:
        return sum(len(state.held) for state in self._order.values())
