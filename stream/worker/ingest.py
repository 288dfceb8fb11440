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
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stream.config import Settings
from stream.records import (
    SCHEMA_VERSION,
    SIGNALS,
    DeadLetter,
    Enrolment,
    Frame,
    PatientContext,
    Profile,
)

UNENROLLED_PATIENT = "unenrolled"
UNASSIGNED_WARD = "unassigned"
# Seqs remembered per device to tell a duplicate from a late frame; bounded so a
# long-running worker's memory does not grow with uptime.
_RECENT_SEQS = 512
_MAX_REASON = 200
_R = TypeVar("_R", Frame, Enrolment)


Position = tuple[int, int]  # (partition, offset) of a record


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


def decode_enrolment(value: bytes | None, settings: Settings) -> Enrolment | str:
    return _parse(Enrolment, value, settings.stream.max_frame_bytes)


def dead_letter(record: RawRecord, reason: str, topic: str, now: float) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        source_topic=topic,
        partition=record.partition,
        offset=record.offset,
        at=now,
        payload_b64=base64.b64encode(record.value or b"").decode(),
    )


def reason_kind(reason: str) -> str:
    """The bounded label of a reason (``'bad json'`` of ``'bad json: ...'``), for counters."""
    return reason.split(":", 1)[0]


@dataclass
class _DeviceOrder:
    """Reorder state of one device: last released seq, recent seqs, held frames."""

    last_seq: int
    last_t0: float
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT_SEQS))
    recent_set: set[int] = field(default_factory=set)
    # (seq, wall time held, frame, record position); a heap on seq, which is unique here
    held: list[tuple[int, float, Frame, Position]] = field(default_factory=list)

    def remember(self, seq: int) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.recent_set.discard(self.recent[0])
        self.recent.append(seq)
        self.recent_set.add(seq)

    def is_held(self, seq: int) -> bool:
        return any(item[0] == seq for item in self.held)


@dataclass
class IngestResult:
    frames: list[tuple[Frame, PatientContext]] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    held: list[Position] = field(default_factory=list)  # records whose frames wait for a gap


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
    def frames(self, records: Iterable[RawRecord], now: float | None = None) -> IngestResult:
        """Decode, validate, de-duplicate and order a batch of frame records."""
        now = time.time() if now is None else now
        result = IngestResult()
        topic = self.settings.topics.frames
        released: list[Frame] = []
        with gc_paused():
            for record in records:
                decoded = decode_frame(record.value, self.settings, now)
                if isinstance(decoded, str):
                    self._reject(result, record, decoded, topic, now)
                    continue
                position = (record.partition, record.offset)
                verdict = self._admit(decoded, now, released, position)
                if verdict == "held":
                    result.held.append(position)
                elif verdict == "duplicate":
                    result.duplicates += 1
                    self.duplicates += 1
                elif verdict is not None:
                    self._reject(result, record, verdict, topic, now)
        released.extend(self.release_expired(now))
        self.accepted += len(released)
        result.frames = [(frame, self.context(frame.device_id)) for frame in released]
        return result

    def _reject(
        self, result: IngestResult, record: RawRecord, reason: str, topic: str, now: float
    ) -> None:
        self.rejected[reason_kind(reason)] += 1
        result.deadletters.append(dead_letter(record, reason, topic, now))

    def forget(self, device_id: str) -> None:
        """Drop a device's order state and held frames (its partition moved away)."""
        self._order.pop(device_id, None)

    def take_unheld(self) -> list[Position]:
        """Positions of the held frames released since the last call."""
        unheld, self._unheld = self._unheld, []
        return unheld

    def _admit(
        self, frame: Frame, now: float, released: list[Frame], position: Position
    ) -> str | None:
        """None (released), ``held``, ``duplicate``, or the reason it is refused."""
        state = self._order.get(frame.device_id)
        if state is None:
            state = _DeviceOrder(last_seq=frame.seq, last_t0=frame.t0)
            state.remember(frame.seq)
            self._order[frame.device_id] = state
            released.append(frame)
            return None
        seq = frame.seq
        if seq in state.recent_set or state.is_held(seq):
            return "duplicate"
        if seq < state.last_seq:
            if frame.t0 > state.last_t0 + self.settings.stream.lateness_s:
                # Lower seq but newer time: the device restarted its counter.
                self._order.pop(frame.device_id)
                released.extend(self._drain(state))
                return self._admit(frame, now, released, position)
            return f"late: seq {seq} arrived after seq {state.last_seq} was processed"
        if seq == state.last_seq + 1:
            self._release(state, frame, released)
            self._release_contiguous(state, released)
        else:
            heapq.heappush(state.held, (seq, now, frame, position))
            self._release_if_stale(state, now, released)
            return "held"
        return None

    def _release(self, state: _DeviceOrder, frame: Frame, released: list[Frame]) -> None:
        state.last_seq = frame.seq
        state.last_t0 = max(state.last_t0, frame.t0)
        state.remember(frame.seq)
        released.append(frame)

    def _release_contiguous(self, state: _DeviceOrder, released: list[Frame]) -> None:
        while state.held and state.held[0][0] == state.last_seq + 1:
            _, _, frame, position = heapq.heappop(state.held)
            self._unheld.append(position)
            self._release(state, frame, released)

    def _release_if_stale(self, state: _DeviceOrder, now: float, released: list[Frame]) -> None:
        lateness = self.settings.stream.lateness_s
        while state.held:
            newest_t0 = max(item[2].t0 for item in state.held)
            _, held_since, oldest, position = state.held[0]
            waited_frame_time = newest_t0 - oldest.t0 >= lateness
            waited_wall = now - held_since >= lateness
            if not (waited_frame_time or waited_wall):
                return
            heapq.heappop(state.held)
            self._unheld.append(position)
            self._release(state, oldest, released)
            self._release_contiguous(state, released)

    def _drain(self, state: _DeviceOrder) -> list[Frame]:
        drained = sorted(state.held)
        state.held.clear()
        self._unheld += [item[3] for item in drained]
        return [item[2] for item in drained]

    def release_expired(self, now: float | None = None) -> list[Frame]:
        """Frames held past ``lateness_s`` of wall time (a device went quiet after a gap)."""
        now = time.time() if now is None else now
        released: list[Frame] = []
        for state in self._order.values():
            if state.held:
                self._release_if_stale(state, now, released)
        return released

    def held_frames(self) -> int:
        return sum(len(state.held) for state in self._order.values())
