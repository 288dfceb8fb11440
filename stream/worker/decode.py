"""Decode: a batch of frame records (bytes) to columns and refusals.

Owns turning the values of a batch of Kafka records — plain frames and gateway batches —
into a :class:`~stream.signal.frames.FrameBatch` of the good frames and a
:class:`Rejection` (with its one-line reason) for every refused one, and the wording of
those reasons.

Two decoders with one contract:

- :func:`decode_records_reference` validates every frame with pydantic
  (:func:`decode_frame`, the schema in :mod:`stream.records`), then converts the models
  to columns. It is the definition of what is accepted, with which values, and why
  anything else is refused.
- :func:`decode_records`, the worker's, reads each frame's header and blocks with msgspec
  structs that mirror the schema (``v``, the device id's pattern, ``seq`` and ``t0``
  bounds, each signal's unit, rate range, no unknown field) keeping every block's
  ``samples`` as raw JSON text, then reads all the batch's samples at once into float64
  arrays with a compiled kernel (:mod:`stream.signal.kernels.json_numbers`: exact
  conversion, plausible ranges, lengths). Anything it does not settle — a number it does
  not read exactly, a sample out of range, observations, a frame too long or too far
  ahead, anything msgspec refuses — goes through the reference for that frame alone, so
  the accepted frames, their values (bit for bit) and every reason are the reference's.
  Tests check the two against each other (tests/unit/stream/worker/test_decode.py).

Nothing here raises on input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

import msgspec
import numpy as np
import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from stream.config import Settings
from stream.records import (
    DEVICE_ID_PATTERN,
    MAX_GATEWAY_FRAMES,
    SCHEMA_VERSION,
    SIGNALS,
    Enrolment,
    Frame,
)
from stream.signal.fleet_buffers import Blocks
from stream.signal.frames import FrameBatch, Position
from stream.signal.kernels.json_numbers import parse_blocks

_MAX_REASON = 200
# The schema's bound on a block's samples (stream.records._signal_block).
MAX_SAMPLES = 20_000
_R = TypeVar("_R", Frame, Enrolment)

_GATEWAY_ID = re.compile(DEVICE_ID_PATTERN)
_GATEWAY_KEY = b'"gateway_id"'


class RawRecord(NamedTuple):
    """One Kafka record as the worker receives it."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


# -- reasons -----------------------------------------------------------------------------


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


# -- the reference decode ----------------------------------------------------------------


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
    if _GATEWAY_KEY not in value:
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


# What became of one frame of a record: a fast-decoded frame (its index among them), a
# frame the reference accepted, or a refusal (reason, payload, gateway id, frame index).
_Fast = int
_Refused = tuple[str, bytes | None, str | None, int | None]
_Outcome = _Fast | Frame | _Refused


def _reference_record(record: RawRecord, settings: Settings, now: float) -> list[_Outcome]:
    """What the reference makes of every frame of one record."""
    value = record.value
    gateway = gateway_frames(value, settings) if value is not None else None
    if isinstance(gateway, str):
        return [(gateway, value, None, None)]
    if gateway is None:
        return [_reference_frame(value, settings, now, None, None)]
    gateway_id, frames = gateway
    return [
        _reference_frame(payload, settings, now, gateway_id, index)
        for index, payload in enumerate(frames)
    ]


def _reference_frame(
    payload: bytes | None,
    settings: Settings,
    now: float,
    gateway_id: str | None,
    frame_index: int | None,
) -> Frame | _Refused:
    decoded = decode_frame(payload, settings, now)
    return (decoded, payload, gateway_id, frame_index) if isinstance(decoded, str) else decoded


def _assemble(
    records: Sequence[RawRecord], outcomes: list[list[_Outcome]], fast: FrameBatch | None
) -> Decoded:
    """The batch in record order: fast rows (``fast``, its rows in order) interleaved
    with the reference's frames, and the refusals with their place."""
    rejected: list[Rejection] = []
    slow: list[Frame] = []
    slow_positions: list[Position] = []
    order: list[int] = []  # each row: a fast row, or -1 - its index among the slow frames
    for index, record in enumerate(outcomes):
        position = (records[index].partition, records[index].offset)
        for outcome in record:
            if isinstance(outcome, int):
                order.append(outcome)
            elif isinstance(outcome, Frame):
                order.append(-1 - len(slow))
                slow.append(outcome)
                slow_positions.append(position)
            else:
                reason, payload, gateway_id, frame_index = outcome
                rejected.append(
                    Rejection(index, reason, payload, len(order), gateway_id, frame_index)
                )
    fast_rows = len(fast) if fast is not None else 0
    if not slow:
        return Decoded(fast if fast is not None else FrameBatch.empty(), rejected)
    slow_batch = FrameBatch.from_frames(slow, slow_positions)
    if fast is None or not fast_rows:
        return Decoded(slow_batch, rejected)
    both = FrameBatch.concat([fast, slow_batch])
    return Decoded(both.take([row if row >= 0 else fast_rows - 1 - row for row in order]), rejected)


def decode_records_reference(
    records: Sequence[RawRecord], settings: Settings, now: float
) -> Decoded:
    """Every frame of a batch of records, validated one by one (each frame through
    :func:`decode_frame`), as columns."""
    outcomes = [_reference_record(record, settings, now) for record in records]
    return _assemble(records, outcomes, None)


# -- the fast decode ---------------------------------------------------------------------

# The device id's pattern, anchored as pydantic-core's regex anchors it: Python's `$`
# also matches before a final newline, `\Z` only at the very end.
_ID_PATTERN = r"\A" + DEVICE_ID_PATTERN.removeprefix("^").removesuffix("$") + r"\Z"
_DeviceId = Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)]
_SIGNAL_NAMES = tuple(SIGNALS)


def _wire_block(name: str) -> type[msgspec.Struct]:
    """One signal's block as msgspec reads it: unit, rate range, samples left as text."""
    spec = SIGNALS[name]
    return msgspec.defstruct(
        f"{name.capitalize()}Wire",
        [
            ("fs", Annotated[float, msgspec.Meta(ge=spec.fs_min, le=spec.fs_max)]),
            ("unit", Literal[spec.unit]),  # type: ignore[valid-type]
            ("samples", msgspec.Raw),
        ],
        forbid_unknown_fields=True,
    )


_SignalsWire = msgspec.defstruct(
    "SignalsWire",
    [(name, _wire_block(name) | None, None) for name in _SIGNAL_NAMES],  # type: ignore[misc]
    forbid_unknown_fields=True,
)


class _FrameWire(msgspec.Struct, forbid_unknown_fields=True):
    """A frame's header as msgspec reads it (strict: a JSON ``true`` is no 1)."""

    device_id: _DeviceId
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    t0: Annotated[float, msgspec.Meta(gt=0)]
    signals: _SignalsWire  # type: ignore[valid-type]
    v: Literal[1] = SCHEMA_VERSION
    observations: Any = None  # present (rare): the reference validates the frame


class _GatewayWire(msgspec.Struct, forbid_unknown_fields=True):
    gateway_id: _DeviceId
    frames: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_GATEWAY_FRAMES)]
    v: Literal[1] = SCHEMA_VERSION


_FRAME = msgspec.json.Decoder(_FrameWire)
_GATEWAY = msgspec.json.Decoder(_GatewayWire)
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError, ValueError)
_LOWEST = np.array([SIGNALS[name].lowest for name in _SIGNAL_NAMES])
_HIGHEST = np.array([SIGNALS[name].highest for name in _SIGNAL_NAMES])
_TRIPLES = np.array([name == "acc" for name in _SIGNAL_NAMES])
_SIGNALS = attrgetter("signals")
_BLOCK_GETTERS = [attrgetter(name) for name in _SIGNAL_NAMES]
_SAMPLES, _FS = attrgetter("samples"), attrgetter("fs")
_T0, _SEQ, _DEVICE_ID = attrgetter("t0"), attrgetter("seq"), attrgetter("device_id")


# A frame the fast path left to the reference: (record, its frame, its text, gateway id).
_Undecided = tuple[int, int, bytes | msgspec.Raw, str | None]


class _FastFrames:
    """The frames msgspec read, as growing columns, and their blocks by signal."""

    def __init__(self) -> None:
        self.frames: list[_FrameWire] = []
        self.positions: list[Position] = []
        self.where: list[_Undecided] = []  # where each frame came from

    def add(self, value: bytes | msgspec.Raw, position: Position, where: _Undecided) -> bool:
        """Read one frame; False when it is for the reference to decide."""
        try:
            frame = _FRAME.decode(value)
        except _DECODE_ERRORS:
            return False
        if frame.observations is not None:
            return False
        self.frames.append(frame)
        self.positions.append(position)
        self.where.append(where)
        return True

    def __len__(self) -> int:
        return len(self.frames)

    def _by_signal(self) -> tuple[list[msgspec.Raw], list[float], list[int], list[int]]:
        """Every block's samples text, rate and row, signal after signal; and how many
        blocks each signal has."""
        raws: list[msgspec.Raw] = []
        fs: list[float] = []
        rows: list[int] = []
        per_signal: list[int] = []
        everyone = range(len(self.frames))
        signals = list(map(_SIGNALS, self.frames))
        for block_of in _BLOCK_GETTERS:
            column = list(map(block_of, signals))
            if None in column:
                present = [row for row, block in enumerate(column) if block is not None]
                column = [column[row] for row in present]
                rows += present
            else:
                rows += everyone
            raws += map(_SAMPLES, column)
            fs += map(_FS, column)
            per_signal.append(len(column))
        return raws, fs, rows, per_signal

    def settle(self, settings: Settings, now: float) -> tuple[FrameBatch, np.ndarray]:
        """The frames whose samples the kernel read and whose span and time pass, as
        columns, and for every frame its row there (-1: for the reference)."""
        count = len(self)
        raws, fs_list, rows, per_signal = self._by_signal()
        lengths = np.fromiter(map(len, raws), np.int64, len(raws))
        ends = np.cumsum(lengths)
        signal_of_block = np.repeat(np.arange(len(_SIGNAL_NAMES)), per_signal)
        values, first, counts, flagged = parse_blocks(
            np.frombuffer(b"".join(raws), np.uint8),
            ends - lengths,
            ends,
            _TRIPLES[signal_of_block],
            _LOWEST[signal_of_block],
            _HIGHEST[signal_of_block],
            MAX_SAMPLES,
        )
        owners = np.array(rows, dtype=np.int64)
        fs = np.array(fs_list, dtype=float)
        # A frame with no block at all is the reference's to refuse ("carries no signal").
        good = np.bincount(owners, minlength=count) > 0
        good[owners[flagged]] = False
        # The frame's span: its longest block (one block per signal: no two at one row).
        span = np.zeros(count)
        spans = counts / fs
        bounds = np.concatenate(([0], np.cumsum(per_signal)))
        for k in range(len(_SIGNAL_NAMES)):
            owned = owners[bounds[k] : bounds[k + 1]]
            span[owned] = np.maximum(span[owned], spans[bounds[k] : bounds[k + 1]])
        stream = settings.stream
        t0 = np.fromiter(map(_T0, self.frames), float, count)
        good &= (t0 - now <= stream.max_future_skew_s) & (span <= stream.max_frame_seconds)
        row_of = np.cumsum(good) - 1
        row_of[~good] = -1
        kept = np.flatnonzero(good)
        blocks: dict[str, Blocks] = {}
        for k, name in enumerate(_SIGNAL_NAMES):
            lo, hi = bounds[k], bounds[k + 1]
            keep = good[owners[lo:hi]]
            if not keep.any():
                continue
            lengths_k = counts[lo:hi][keep]
            offsets = np.zeros(len(lengths_k), dtype=np.int64)
            np.cumsum(lengths_k[:-1], out=offsets[1:])
            signal_values = values[first[lo] : first[hi]]
            if not keep.all():
                signal_values = signal_values[np.repeat(keep, np.diff(first[lo : hi + 1]))]
            else:
                signal_values = signal_values.copy()
            blocks[name] = Blocks(
                row_of[owners[lo:hi][keep]],
                fs[lo:hi][keep],
                lengths_k,
                offsets,
                signal_values.reshape(-1, 3) if _TRIPLES[k] else signal_values,
            )
        kept_t0 = t0[kept]
        frames = self.frames if len(kept) == count else [self.frames[r] for r in kept.tolist()]
        batch = FrameBatch(
            list(map(_DEVICE_ID, frames)),
            np.fromiter(map(_SEQ, frames), np.int64, len(frames)),
            kept_t0,
            kept_t0 + span[kept],
            self.positions if len(kept) == count else [self.positions[r] for r in kept.tolist()],
            blocks,
        )
        return batch, row_of


# A normalized frame (orjson's text of it, what the reference validates of a gateway's
# frames) is at most this many times its raw text: a number token of 3 bytes or more
# becomes at most 24 (``-2.2250738585072014e-308``); integers, strings, keys and
# whitespace only shrink. A raw frame within max_frame_bytes / this is never oversized.
_MAX_NORMALIZED_GROWTH = 8


def decode_records(records: Sequence[RawRecord], settings: Settings, now: float) -> Decoded:
    """What :func:`decode_records_reference` gives, without a pydantic model per frame:
    msgspec reads the headers, one compiled call all the samples; what they leave
    undecided goes through the reference, frame by frame."""
    limit = settings.stream.max_frame_bytes
    inner_limit = limit // _MAX_NORMALIZED_GROWTH
    fast = _FastFrames()
    outcomes: list[list[_Outcome]] = []
    undecided: list[_Undecided] = []
    referred = False  # some record decoded whole by the reference
    for index, record in enumerate(records):
        value = record.value
        position = (record.partition, record.offset)
        if value is None:
            outcomes.append(_reference_record(record, settings, now))
            referred = True
        elif _GATEWAY_KEY not in value:
            outcomes.append([-1])
            where = (index, 0, value, None)
            if len(value) > limit or not fast.add(value, position, where):
                undecided.append(where)
        else:
            try:
                gateway = _GATEWAY.decode(value)
            except _DECODE_ERRORS:
                gateway = None
            if gateway is None or len(value) > limit * MAX_GATEWAY_FRAMES:
                outcomes.append(_reference_record(record, settings, now))
                referred = True
                continue
            outcomes.append([-1] * len(gateway.frames))
            for slot, inner in enumerate(gateway.frames):
                where = (index, slot, inner, gateway.gateway_id)
                if len(inner) > inner_limit or not fast.add(inner, position, where):
                    undecided.append(where)
    batch = None
    if len(fast):
        batch, row_of = fast.settle(settings, now)
        if not undecided and not referred and len(batch) == len(fast):
            return Decoded(batch, [])  # every frame decoded here, in order: nothing to place
        for where, row in zip(fast.where, row_of.tolist(), strict=True):
            if row >= 0:
                outcomes[where[0]][where[1]] = row
            else:
                undecided.append(where)
    if undecided:
        batch = _decide(records, outcomes, undecided, batch, settings, now)
    return _assemble(records, outcomes, batch)


def _decide(
    records: Sequence[RawRecord],
    outcomes: list[list[_Outcome]],
    undecided: list[_Undecided],
    batch: FrameBatch | None,
    settings: Settings,
    now: float,
) -> FrameBatch | None:
    """The reference's outcome for each undecided frame (in ``outcomes``); the fast rows
    of a record it must decode whole leave ``batch`` (returned)."""
    whole: set[int] = set()
    for index, slot, text, gateway_id in sorted(undecided, key=lambda item: item[:2]):
        if index in whole:
            continue
        if gateway_id is None:
            outcomes[index][slot] = _reference_frame(bytes(text), settings, now, None, None)
            continue
        try:  # the reference validates orjson's text of a gateway's frame
            normalized = orjson.dumps(orjson.loads(bytes(text)))
        except orjson.JSONDecodeError:  # the whole batch is bad json to the reference
            whole.add(index)
            continue
        outcomes[index][slot] = _reference_frame(normalized, settings, now, gateway_id, slot)
    if not whole:
        return batch
    dropped = set()
    for index in whole:
        dropped.update(row for row in outcomes[index] if isinstance(row, int) and row >= 0)
        outcomes[index] = _reference_record(records[index], settings, now)
    if batch is None or not dropped:
        return batch
    kept = [row for row in range(len(batch)) if row not in dropped]
    renumber = {row: new for new, row in enumerate(kept)}
    for record in outcomes:
        for slot, outcome in enumerate(record):
            if isinstance(outcome, int):
                record[slot] = renumber[outcome]
    return batch.take(kept)
