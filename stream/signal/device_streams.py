"""Per-device causal detector state in slot-indexed arrays, advanced by frames.

Owns :class:`DeviceStreams`, the storage and clock rules the ECG beat stream
(:class:`stream.signal.beat_stream.EcgBeatStream`) and the PPG pulse stream
(:class:`stream.signal.pulse_stream.PpgPulseStream`) share: a device's state lives in one
slot of arrays that grow as devices come (a detector names its arrays), a frame's samples
continue the device's stream by the worker's buffers' clock rules (snap within
:data:`~stream.signal.buffers.CLOCK_SNAP_S`, bridge a gap with missing samples, start a new
stream past the detector's ``MAX_BRIDGE_S`` or at another rate, skip samples already held),
and a device is forgotten, listed, exported and restored by slot (a batch's devices are
exported at once: :meth:`DeviceStreams._pack`). What the state means, its compiled loop and
its export layout stay with each detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import scipy.signal
from numba import njit

from stream.signal.buffers import CLOCK_SNAP_S
from stream.signal.kernels import window_reads
from stream.signal.signal_frames import FrameTuple, SignalFrames


@lru_cache(maxsize=32)
def band_pass_design(low: float, high: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order sections of a causal 2nd-order Butterworth band-pass (``high`` capped
    at 0.45 ``fs``) and their unit-step initial state."""
    sos = scipy.signal.butter(2, (low, min(high, 0.45 * fs)), btype="bandpass", fs=fs, output="sos")
    return sos, scipy.signal.sosfilt_zi(sos)


class Run(NamedTuple):
    """One part of every device's export record: device ``d``'s values are
    ``source[row[d] + (first[d] + e) % ring]`` for ``e < count[d]`` (``source`` a state
    array flattened, its slot rows ``ring`` or more apart; a ring of recent samples wraps,
    a plain row starts at ``first`` 0)."""

    source: np.ndarray
    row: np.ndarray
    first: np.ndarray | int
    count: np.ndarray | int
    ring: int


@njit(cache=True)
def _gather_runs(
    record: np.ndarray,
    at: np.ndarray,
    source: np.ndarray,
    row: np.ndarray,
    first: np.ndarray,
    count: np.ndarray,
    ring: int,
) -> None:
    """Copy each device's run (see :class:`Run`) to ``record[at[d]:]`` as float64."""
    for d in range(at.shape[0]):
        start, base, position = at[d], row[d], first[d] % ring
        for e in range(count[d]):
            record[start + e] = source[base + position]
            position += 1
            if position == ring:  # cheaper than a modulo per sample
                position = 0


class DeviceStreams:
    """Slot-indexed state of a fleet of devices' causal detectors (see the module doc).

    Every detector has ``_fst`` (its float state columns, ``KERNEL.F_COLUMNS`` of them,
    the rate at ``KERNEL.F_FS``), ``_ist`` (its integer columns, ``KERNEL.I_COLUMNS``, the
    sample count at ``KERNEL.I_N``), ``_sos`` and ``_zi`` (the two biquads of its band-pass,
    :mod:`stream.signal.kernels.stream_common`'s) and ``_origin`` (epoch time of sample 0).
    A detector names its compiled kernel module (:attr:`KERNEL`), its other arrays
    (:meth:`_arrays`) and those a new stream clears (:attr:`_CLEARED`), its rate limit and
    band (:attr:`BAND`), how a new stream's columns start (:meth:`_configure`) and how chunks
    run (:meth:`_advance`)."""

    KIND = ""  # the signal's name in errors
    BAND = (0.0, 0.0)  # Hz: the detector's band-pass
    KERNEL: Any = None  # the compiled kernel module: its column and size constants
    MAX_FS = math.inf
    MAX_BRIDGE_S = 10.0
    DECISION_DELAY_S = 0.0
    _CLEARED: tuple[str, ...] = ()
    # Whether a device's earlier frames in a batch are advanced before a frame of the same
    # batch restarts its stream (else they are advanced after the restart, with it).
    _RESTART_SPLITS_BATCH = True

    _fst: np.ndarray
    _ist: np.ndarray
    _sos: np.ndarray
    _zi: np.ndarray
    _origin: np.ndarray

    def __init__(self, capacity: int = 64) -> None:
        self._slots: dict[str, int] = {}
        self._known: set[str] = set()  # devices whose slot holds a started stream
        self._free: list[int] = []
        self._allocate(capacity)

    # -- what a detector says --------------------------------------------------------------

    def _arrays(self, capacity: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Name -> (shape, dtype) of the detector's own slot-indexed arrays (beyond the
        common ones) at ``capacity`` slots."""
        raise NotImplementedError

    def _configure(self, f: np.ndarray, i: np.ndarray, fs: float) -> None:
        """Set a new stream's float and integer columns (cleared, the rate set)."""
        raise NotImplementedError

    def _advance(
        self, samples: np.ndarray, bounds: np.ndarray, slots: np.ndarray, first: int
    ) -> Any:
        """Run the kernel over the chunks ``samples[bounds[j] : bounds[j + 1]]``, one per
        slot in ``slots``, which are the batch's rows from ``first`` on; returns the batch
        of what was decided."""
        raise NotImplementedError

    def _join(self, parts: list[Any]) -> Any:
        """One batch of ``parts`` (more than one), in order."""
        raise NotImplementedError

    # -- storage ---------------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        old = getattr(self, "_fst", None)
        size = 0 if old is None else old.shape[0]
        arrays = {
            "_fst": ((capacity, self.KERNEL.F_COLUMNS), np.float64),
            "_ist": ((capacity, self.KERNEL.I_COLUMNS), np.int64),
            **self._arrays(capacity),
            "_sos": ((capacity, 2, 6), np.float64),
            "_zi": ((capacity, 2, 2), np.float64),
            "_origin": ((capacity,), np.float64),
        }
        for name, (shape, dtype) in arrays.items():
            grown = np.zeros(shape, dtype=dtype)
            if old is not None:
                grown[:size] = getattr(self, name)
            setattr(self, name, grown)
        self._free.extend(range(capacity - 1, size - 1, -1))
        # Each slot's rate, origin and sample count where push reads them (the kernel's
        # columns hold them too, but only as of the last advance).
        for mirror, fill, dtype in (
            ("_rate", math.nan, np.float64), ("_origin_s", 0.0, np.float64), ("_count", 0, np.int64)
        ):  # fmt: skip
            values = np.full(capacity, fill, dtype=dtype)
            if old is not None:
                values[:size] = getattr(self, mirror)
            setattr(self, mirror, values)

    def _slot(self, device: str) -> int:
        slot = self._slots.get(device)
        if slot is None:
            if not self._free:
                self._allocate(2 * self._fst.shape[0])
            slot = self._slots[device] = self._free.pop()
        return slot

    def _live(self, device: str) -> int | None:
        """The device's slot if it holds a started stream, else ``None``."""
        slot = self._slots.get(device)
        return None if slot is None or device not in self._known else slot

    def _start(self, slot: int, fs: float, t0: float) -> None:
        """A new stream in ``slot`` at rate ``fs`` whose sample 0 is at ``t0``."""
        if not 0 < fs <= self.MAX_FS:
            raise ValueError(f"{self.KIND} rate {fs} Hz outside (0, {self.MAX_FS}]")
        sos, zi = band_pass_design(*self.BAND, float(fs))
        for name in ("_fst", "_ist", *self._CLEARED):
            getattr(self, name)[slot] = 0
        self._sos[slot], self._zi[slot] = sos, zi
        self._origin[slot] = round(t0 * fs) / fs
        self._rate[slot], self._origin_s[slot], self._count[slot] = fs, float(self._origin[slot]), 0
        self._fst[slot, self.KERNEL.F_FS] = fs
        self._configure(self._fst[slot], self._ist[slot], fs)

    # -- the stream ------------------------------------------------------------------------

    def _push(self, frames: SignalFrames | Sequence[FrameTuple]) -> Any:
        """Advance each ``(device, t0, fs, samples)`` by the clock rules (the detectors'
        ``push`` says them) and return the batch of what was decided."""
        packed = SignalFrames.of(frames)
        if not len(packed):
            return self._advance(packed.values, packed.bounds, np.zeros(0, np.int64), 0)
        slots = self._continuing(packed)
        if slots is not None:  # every frame continues its device's stream: one call
            self._count[slots] += packed.lengths
            return self._advance(packed.values, packed.bounds, slots, 0)
        return self._push_each(packed.tuples())

    def _continuing(self, frames: SignalFrames) -> np.ndarray | None:
        """The frames' slots when each frame is the next of a started stream at its rate
        (within the clock snap) and no device comes twice, else None (frame by frame)."""
        slots = self.live_slots(frames.devices)
        if (slots < 0).any() or len(np.unique(slots)) != len(slots):
            return None
        fs = frames.fs
        if (self._rate[slots] != fs).any():
            return None
        expected = self._origin_s[slots] + self._count[slots] / fs
        # Python's round and numpy's agree (half to even), as push's per-frame rule.
        offset = np.round((frames.t0 - expected) * fs)
        return slots if (np.abs(offset) <= CLOCK_SNAP_S * fs).all() else None

    def _push_each(self, frames: Sequence[FrameTuple]) -> Any:
        """:meth:`_push` frame by frame: restarts, gaps bridged, samples already seen."""
        # Plain Python per frame (a numpy scalar costs more than the arithmetic here).
        rates, origins, counts = (a.tolist() for a in (self._rate, self._origin_s, self._count))
        snap, bridge = CLOCK_SNAP_S, self.MAX_BRIDGE_S
        parts: list[Any] = []
        first = 0  # the batch's row where the frames gathered for the kernel begin
        slots: list[int] = []
        chunks: list[np.ndarray] = []
        for row, (device, t0, fs, samples) in enumerate(frames):
            slot = self._slots.get(device)
            chunk = np.asarray(samples, dtype=np.float64)
            fresh = slot is None or device not in self._known
            restart = fresh or rates[slot] != fs
            if not restart:
                expected = origins[slot] + counts[slot] / fs
                offset = round((t0 - expected) * fs)
                if abs(offset) <= snap * fs:
                    pass
                elif offset > bridge * fs:
                    restart = True
                elif offset > 0:
                    chunk = np.concatenate((np.full(offset, np.nan), chunk))
                else:
                    chunk = chunk[-offset:]  # already seen
            if restart:
                slot = self._slot(device)
                if len(rates) <= slot:  # the slots grew
                    rates, origins, counts = (
                        a.tolist() for a in (self._rate, self._origin_s, self._count)
                    )
                if not fresh and slot in slots and self._RESTART_SPLITS_BATCH:
                    # The device's earlier frames in this batch belong to the stream this
                    # one replaces: they are advanced (and their output timed) first.
                    parts.append(self._advance(*self._gather(slots, chunks), first))
                    first, slots, chunks = row, [], []
                self._start(slot, fs, t0)
                rates[slot], origins[slot] = fs, float(self._origin[slot])
                counts[slot] = 0
                self._known.add(device)
            counts[slot] += len(chunk)
            self._count[slot] = counts[slot]
            slots.append(slot)
            chunks.append(chunk)
        parts.append(self._advance(*self._gather(slots, chunks), first))
        return parts[0] if len(parts) == 1 else self._join(parts)

    @staticmethod
    def _gather(slots: list[int], chunks: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The kernel's inputs: (all samples, each chunk's bounds in them, the slots)."""
        bounds = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum([len(chunk) for chunk in chunks], out=bounds[1:])
        samples_all = np.concatenate(chunks) if chunks else np.zeros(0)
        return samples_all, bounds, np.array(slots, dtype=np.int64)

    def live_slots(self, devices: Sequence[str]) -> np.ndarray:
        """Each device's slot if it holds a started stream, else -1 (for the batch reads)."""
        slots, known = self._slots, self._known
        return np.array([slots[d] if d in known else -1 for d in devices], dtype=np.int64)

    def _recent_ring(self) -> np.ndarray:
        """The slot-indexed ring of recent output positions (the detector's)."""
        raise NotImplementedError

    def window_times(
        self, slots: np.ndarray, t_start: np.ndarray, t_end: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(epoch times, ring columns, offsets) of the recent output of each window's slot
        (:meth:`live_slots`) within ``[t_start, t_end)``, packed, oldest first: the batch
        form of the detector's per-device window reads, equal to them bit for bit."""
        k = self.KERNEL
        return window_reads.ring_times(
            self._recent_ring(), self._ist[:, k.I_COUNTED], self._origin, self._fst[:, k.F_FS],
            slots, np.asarray(t_start, dtype=np.float64), np.asarray(t_end, dtype=np.float64),
        )  # fmt: skip

    def decided_until_many(self, slots: np.ndarray) -> np.ndarray:
        """:meth:`decided_until` of each slot (nan for -1)."""
        k = self.KERNEL
        safe = np.maximum(slots, 0)
        decided = (
            self._origin[safe] + self._ist[safe, k.I_N] / self._fst[safe, k.F_FS]
            - self.DECISION_DELAY_S
        )  # fmt: skip
        return np.where(slots >= 0, decided, math.nan)

    def decided_until(self, device: str) -> float:
        """Epoch time up to which the device's output is decided (the end of its samples
        less the detector's ``DECISION_DELAY_S``)."""
        slot = self._live(device)
        if slot is None:
            return math.nan
        fs = self._fst[slot, self.KERNEL.F_FS]
        n = self._ist[slot, self.KERNEL.I_N]
        return float(self._origin[slot] + n / fs - self.DECISION_DELAY_S)

    # -- moving a device -------------------------------------------------------------------

    def forget(self, device: str) -> None:
        """Drop a device's state (its partition moved away)."""
        slot = self._slots.pop(device, None)
        if slot is not None:
            self._known.discard(device)
            self._free.append(slot)

    def devices(self) -> list[str]:
        return sorted(self._known)

    def _live_slots(self, devices: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The ``devices`` that hold a started stream, in the given order, and their slots."""
        known = [d for d in devices if d in self._known and d in self._slots]
        return known, np.array([self._slots[d] for d in known], dtype=np.int64)

    def _headers(
        self, slots: np.ndarray, a: np.ndarray, b: np.ndarray, export_format: int
    ) -> np.ndarray:
        """:meth:`_header` of many slots, ``[slots, 4]`` float64."""
        formats = np.full(len(slots), float(export_format))
        return np.column_stack((formats, a, b, self._origin[slots]))

    def _header(self, slot: int, a: int, b: int, export_format: int) -> np.ndarray:
        """An export's first four values: the format, two counts, the origin."""
        return np.array([export_format, a, b, self._origin[slot]])

    @staticmethod
    def _pack(devices: Sequence[str], runs: Sequence[Run]) -> dict[str, bytes]:
        """Each device's export record: ``runs`` in record order, every device's values
        of a run copied by one compiled loop into one float64 array, one ``tobytes``, then
        a slice of bytes per device (:meth:`export` builds the same record one device at a
        time; numpy's index arithmetic per element cost more than the copy).

        >>> table = np.arange(8.0)  # two slots of a 4-sample ring
        >>> a_b = np.array([0, 1])
        >>> packed = DeviceStreams._pack(["a", "b"], [
        ...     Run(table, 4 * a_b, np.array([3, 0]), np.array([2, 1]), 4),
        ...     Run(np.array([9.0, 8.0]), a_b, 0, 1, 1)])
        >>> {device: np.frombuffer(blob).tolist() for device, blob in packed.items()}
        {'a': [3.0, 0.0, 9.0], 'b': [4.0, 8.0]}
        """
        n = len(devices)
        counts = np.empty((len(runs), n), dtype=np.int64)
        for count, run in zip(counts, runs, strict=True):
            count[:] = run.count  # a number (every device's) or one per device
        sizes = counts.sum(axis=0)
        ends = np.cumsum(sizes)
        record = np.empty(int(ends[-1]) if n else 0, dtype=np.float64)
        at = ends - sizes  # where each device's next run goes
        first = np.empty(n, dtype=np.int64)
        for run, count in zip(runs, counts, strict=True):
            first[:] = run.first
            _gather_runs(record, at, run.source, run.row, first, count, run.ring)
            at += count
        data = record.tobytes()
        width = record.itemsize
        return {
            device: data[width * (end - size) : width * end]
            for device, end, size in zip(devices, ends.tolist(), sizes.tolist(), strict=True)
        }

    @staticmethod
    def _open(blob: bytes, sizes: Sequence[int]) -> list[np.ndarray]:
        """An export's parts after its header, of ``sizes`` (the caller's, from the
        header's counts: :meth:`_counts`); a record of another length is truncated."""
        record = np.frombuffer(blob, dtype=np.float64)
        if len(record) != 4 + sum(sizes):
            raise ValueError("truncated detector state")
        return np.split(record[4:], np.cumsum(sizes)[:-1])

    @staticmethod
    def _counts(blob: bytes, export_format: int) -> tuple[int, int]:
        """An export's two counts, once its format is ``export_format``."""
        record = np.frombuffer(blob, dtype=np.float64)
        if int(record[0]) != export_format:
            raise ValueError(f"detector state format {record[0]}, expected {export_format}")
        return int(record[1]), int(record[2])

    def _resume(self, device: str, blob: bytes, fst: np.ndarray, ist: np.ndarray) -> int:
        """Start the device's slot again with an export's origin and state columns; returns
        the slot (the caller fills the rest, then the device is known)."""
        origin = float(np.frombuffer(blob, dtype=np.float64)[3])
        slot = self._slot(device)
        self._start(slot, float(fst[self.KERNEL.F_FS]), 0.0)
        self._origin[slot] = origin
        self._fst[slot] = fst
        self._ist[slot] = ist.astype(np.int64)
        self._origin_s[slot], self._count[slot] = origin, int(self._ist[slot, self.KERNEL.I_N])
        return slot
