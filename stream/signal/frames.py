"""A batch of decoded frames as columns: what ingest hands the stream core.

Owns :class:`FrameBatch`: the frames of a batch (many devices, maybe several frames of
one device) with their headers as arrays and each signal's samples as one
:class:`~stream.signal.fleet_buffers.Blocks` (every block of that signal, one after the
other, in one array). The stream core writes rings, pushes detectors and formats vitals
lines from it without a Python object per frame or per sample; a
:class:`~stream.records.Frame` is built back (:meth:`FrameBatch.frame`) only where one
frame is looked at alone (raw waveform lines, tests).

Rows are frames, in the order ingest released them. Each signal's blocks name their rows
in ``members`` (ascending: a signal's blocks are in row order). Pure numpy; imports no
I/O.

>>> from stream.records import Frame
>>> frame = Frame.model_validate({"device_id": "d1", "seq": 4, "t0": 100.0, "signals": {
...     "hr": {"fs": 1, "unit": "bpm", "samples": [70]},
...     "acc": {"fs": 2, "unit": "g", "samples": [[0, 0, 1], [0, 0.5, 1]]}}})
>>> batch = FrameBatch.from_frames([frame, frame.model_copy(update={"seq": 5})], [(0, 7), (0, 8)])
>>> len(batch), batch.seq.tolist(), batch.ends.tolist(), batch.blocks["acc"].members.tolist()
(2, [4, 5], [101.0, 101.0], [0, 1])
>>> batch.blocks["acc"].values.shape
(4, 3)
>>> batch.take([1]).frame(0) == frame.model_copy(update={"seq": 5})
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.records import BLOCK_TYPES, SIGNALS, Frame, Observations, Signals
from stream.signal.fleet_buffers import Blocks

Position = tuple[int, int]  # (partition, offset) of the Kafka record a frame came in


def take_blocks(blocks: Blocks, rows: np.ndarray, count: int) -> Blocks | None:
    """The blocks of the batch rows ``rows`` (in that order), renumbered as rows
    ``0..len(rows)-1`` of a batch of ``count`` rows; None when none of them has one.

    >>> b = Blocks.of([0, 2], [1.0, 1.0], [np.array([1.0, 2.0]), np.array([3.0])])
    >>> taken = take_blocks(b, np.array([2, 1, 0]), 3)
    >>> taken.members.tolist(), taken.values.tolist()
    ([0, 2], [3.0, 1.0, 2.0])
    """
    index_of_row = np.full(count, -1, dtype=np.int64)
    index_of_row[blocks.members] = np.arange(len(blocks.members))
    picked = index_of_row[rows]
    members = np.flatnonzero(picked >= 0)
    if not len(members):
        return None
    which = picked[members]
    lengths = blocks.lengths[which]
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    total = int(lengths.sum())
    # Each taken sample's index in the old values: its block's old start plus its place.
    source = np.repeat(blocks.offsets[which] - offsets, lengths) + np.arange(total)
    return Blocks(members, blocks.fs[which], lengths, offsets, blocks.values[source])


def concat_blocks(parts: Sequence[tuple[Blocks | None, int]]) -> Blocks | None:
    """Blocks of batches laid end to end: ``(blocks, rows of that batch)`` in order."""
    present = []
    base = 0
    for blocks, rows in parts:
        if blocks is not None:
            present.append((blocks, base))
        base += rows
    if not present:
        return None
    if len(present) == 1 and present[0][1] == 0:
        return present[0][0]
    lengths = np.concatenate([b.lengths for b, _ in present])
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    return Blocks(
        np.concatenate([b.members + shift for b, shift in present]),
        np.concatenate([b.fs for b, _ in present]),
        lengths,
        offsets,
        np.concatenate([b.values for b, _ in present]),
    )


@dataclass(frozen=True)
class FrameBatch:
    """Frames as columns: row ``i`` is device ``device_ids[i]``'s frame ``seq[i]``,
    starting at ``t0[i]`` and ending at ``ends[i]`` (``t0`` plus its longest signal's
    span, :meth:`Frame.duration <stream.records.Frame.duration>`), read from the record
    at ``positions[i]``. ``blocks`` maps each signal some row carries to its blocks;
    ``observations`` the rows that carry manual observations (rare) to them."""

    device_ids: list[str]
    seq: np.ndarray
    t0: np.ndarray
    ends: np.ndarray
    positions: list[Position]
    blocks: Mapping[str, Blocks]
    observations: Mapping[int, Observations] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.device_ids)

    @classmethod
    def empty(cls) -> FrameBatch:
        return cls([], np.zeros(0, np.int64), np.zeros(0), np.zeros(0), [], {})

    @classmethod
    def from_frames(cls, frames: Sequence[Frame], positions: Sequence[Position]) -> FrameBatch:
        """The reference conversion: validated frame models to columns."""
        if not frames:
            return cls.empty()
        blocks: dict[str, Blocks] = {}
        for name in SIGNALS:
            of_frames = [getattr(frame.signals, name) for frame in frames]
            members = [i for i, block in enumerate(of_frames) if block is not None]
            if members:
                blocks[name] = Blocks.from_lists(
                    members,
                    [of_frames[i].fs for i in members],
                    [of_frames[i].samples for i in members],
                    triples=name == "acc",
                )
        t0 = np.array([frame.t0 for frame in frames], dtype=float)
        return cls(
            [frame.device_id for frame in frames],
            np.array([frame.seq for frame in frames], dtype=np.int64),
            t0,
            t0 + np.array([frame.duration() for frame in frames], dtype=float),
            list(positions),
            blocks,
            {i: f.observations for i, f in enumerate(frames) if f.observations is not None},
        )

    def take(self, rows: Sequence[int] | np.ndarray) -> FrameBatch:
        """The rows ``rows``, in that order, as a batch of their own."""
        picked = np.asarray(rows, dtype=np.int64)
        listed = picked.tolist()
        if listed == list(range(len(self))):
            return self
        blocks = {}
        for name, signal_blocks in self.blocks.items():
            taken = take_blocks(signal_blocks, picked, len(self))
            if taken is not None:
                blocks[name] = taken
        new_row = {row: i for i, row in enumerate(listed)}
        return FrameBatch(
            [self.device_ids[row] for row in listed],
            self.seq[picked],
            self.t0[picked],
            self.ends[picked],
            [self.positions[row] for row in listed],
            blocks,
            {new_row[row]: obs for row, obs in self.observations.items() if row in new_row},
        )

    @classmethod
    def concat(cls, batches: Sequence[FrameBatch]) -> FrameBatch:
        """Batches laid end to end, rows in order."""
        batches = [batch for batch in batches if len(batch)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        blocks = {}
        for name in SIGNALS:
            joined = concat_blocks([(b.blocks.get(name), len(b)) for b in batches])
            if joined is not None:
                blocks[name] = joined
        observations: dict[int, Observations] = {}
        base = 0
        for batch in batches:
            observations.update({base + row: obs for row, obs in batch.observations.items()})
            base += len(batch)
        return cls(
            [device for batch in batches for device in batch.device_ids],
            np.concatenate([batch.seq for batch in batches]),
            np.concatenate([batch.t0 for batch in batches]),
            np.concatenate([batch.ends for batch in batches]),
            [position for batch in batches for position in batch.positions],
            blocks,
            observations,
        )

    def frame(self, row: int) -> Frame:
        """Row ``row`` as the frame model it was decoded from (samples as floats, the
        accelerometer's as ``(x, y, z)`` tuples). Built without validating again: the
        values were validated when they were decoded."""
        signals = {}
        for name, blocks in self.blocks.items():
            found = int(np.searchsorted(blocks.members, row))
            if found < len(blocks.members) and blocks.members[found] == row:
                start = int(blocks.offsets[found])
                values = blocks.values[start : start + int(blocks.lengths[found])].tolist()
                signals[name] = BLOCK_TYPES[name].model_construct(
                    fs=float(blocks.fs[found]),
                    unit=SIGNALS[name].unit,
                    samples=list(map(tuple, values)) if name == "acc" else values,
                )
        return Frame.model_construct(
            device_id=self.device_ids[row],
            seq=int(self.seq[row]),
            t0=float(self.t0[row]),
            signals=Signals.model_construct(**signals),
            observations=self.observations.get(row),
        )

    def frames(self) -> list[Frame]:
        return [self.frame(row) for row in range(len(self))]
