"""One waveform's frames of a round, packed: what the carried signal state advances on.

Owns :class:`SignalFrames`: frame ``i`` is device ``devices[i]``'s block of one waveform,
starting at ``t0[i]`` (epoch s), sampled at ``fs[i]`` Hz, its samples
``values[bounds[i] : bounds[i + 1]]`` (``(n,)``, or ``(n, 3)`` for the accelerometer).
The worker builds it from a batch's :class:`~stream.signal.fleet_buffers.Blocks` without
copying the samples (:meth:`SignalFrames.from_blocks`), so the beat and pulse streams and
the per-frame statistics read one array per signal instead of splitting it into a
Python object per frame and gathering it again. :meth:`SignalFrames.of` takes the
``(device, t0, fs, samples)`` tuples the detectors' callers outside the worker pass
(``analyze``, training, tests); :meth:`SignalFrames.tuples` gives them back for the
rare paths that look at frames one by one (a restart, a gap, a new device). Pure numpy.

>>> frames = SignalFrames.of([("a", 0.0, 2.0, np.array([1.0, 2.0])), ("b", 0.5, 2.0, [3.0])])
>>> frames.devices, frames.bounds.tolist(), frames.values.tolist(), frames.lengths.tolist()
(['a', 'b'], [0, 2, 3], [1.0, 2.0, 3.0], [2, 1])
>>> [(d, t0, fs, s.tolist()) for d, t0, fs, s in frames.tuples()]
[('a', 0.0, 2.0, [1.0, 2.0]), ('b', 0.5, 2.0, [3.0])]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from stream.signal.fleet_buffers import Blocks

FrameTuple = tuple[str, float, float, np.ndarray]


@dataclass(frozen=True, slots=True)
class SignalFrames:
    """One waveform's frames, packed (see the module doc)."""

    devices: list[str]
    t0: np.ndarray  # float64, one per frame
    fs: np.ndarray  # float64, one per frame
    bounds: np.ndarray  # int64, len(devices) + 1
    values: np.ndarray  # float64, the frames' samples one after the other

    def __len__(self) -> int:
        return len(self.devices)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)

    @classmethod
    def of(cls, frames: SignalFrames | Sequence[FrameTuple]) -> SignalFrames:
        """From ``(device, t0, fs, samples)`` tuples (a :class:`SignalFrames` as is)."""
        if isinstance(frames, SignalFrames):
            return frames
        chunks = [np.asarray(samples, dtype=np.float64) for *_, samples in frames]
        bounds = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum([len(chunk) for chunk in chunks], out=bounds[1:])
        width = chunks[0].shape[1:] if chunks else ()
        return cls(
            [device for device, *_ in frames],
            np.array([t0 for _, t0, _, _ in frames], dtype=np.float64),
            np.array([fs for _, _, fs, _ in frames], dtype=np.float64),
            bounds,
            np.concatenate(chunks) if chunks else np.zeros((0, *width)),
        )

    @classmethod
    def from_blocks(cls, blocks: Blocks, device_ids: Sequence[str], t0: np.ndarray) -> SignalFrames:
        """A batch's blocks of one signal (:class:`~stream.signal.fleet_buffers.Blocks`:
        ``members``, ``fs``, ``lengths``, ``offsets``, ``values``) with the batch's devices
        and start times; the samples are shared, not copied, when the blocks lie one after
        the other (as every builder of blocks lays them).

        >>> from stream.signal.fleet_buffers import Blocks
        >>> b = Blocks.of([1], [4.0], [np.array([1.0, 2.0])])
        >>> f = SignalFrames.from_blocks(b, ["a", "b"], np.array([10.0, 11.0]))
        >>> f.devices, f.t0.tolist(), f.values is b.values
        (['b'], [11.0], True)
        """
        members, lengths, offsets = blocks.members, blocks.lengths, blocks.offsets
        values = blocks.values
        bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        if not np.array_equal(offsets, bounds[:-1]):  # blocks not back to back: gather them
            source = np.repeat(offsets - bounds[:-1], lengths) + np.arange(bounds[-1])
            values = values[source]
        return cls(
            [device_ids[i] for i in members.tolist()],
            t0[members],
            np.asarray(blocks.fs, dtype=np.float64),
            bounds,
            np.asarray(values, dtype=np.float64),
        )

    def tuples(self) -> list[FrameTuple]:
        """``(device, t0, fs, samples)`` per frame (the samples are views)."""
        bounds = self.bounds.tolist()
        return [
            (device, t0, fs, self.values[bounds[i] : bounds[i + 1]])
            for i, (device, t0, fs) in enumerate(
                zip(self.devices, self.t0.tolist(), self.fs.tolist(), strict=True)
            )
        ]

    def where(self, mask: np.ndarray) -> SignalFrames:
        """The frames where ``mask`` holds (their samples gathered)."""
        if mask.all():
            return self
        picked = np.flatnonzero(mask)
        lengths = self.lengths[picked]
        bounds = np.zeros(len(picked) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        source = np.repeat(self.bounds[picked] - bounds[:-1], lengths) + np.arange(bounds[-1])
        return SignalFrames(
            [self.devices[i] for i in picked.tolist()],
            self.t0[picked],
            self.fs[picked],
            bounds,
            self.values[source],
        )
