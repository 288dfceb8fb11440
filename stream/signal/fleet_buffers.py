"""All devices' ring buffers as arrays: a round of frames written, and its windows cut, in a
few calls. Pure numpy and numba.

Owns :class:`FleetBuffers`, :class:`Blocks` (one signal's blocks of a round, flat) and
:class:`WindowReads` (a batch's windows with the arrays they are views of). The
semantics are :class:`stream.signal.buffers.DeviceBuffers`' exactly — clock snap, gaps
NaN-filled, overlaps and duplicates overwriting, late frames filling, a rate change or a
gap longer than the ring restarting it, vitals last-wins per trend slot, stale latest
vitals, the clock rings, the lateness skip — with the devices as rows instead of objects:

- each waveform at each rate is one ``(slots, capacity, width)`` array (a device whose
  rate changes moves to the new rate's array and starts over, as its ring would), each
  vital one ``(slots, history, 1)`` array;
- each ring's ``end`` and ``start`` and each device's last window end are per-slot arrays;
- the loops over devices are :mod:`stream.signal.kernels.rings`.

A device is written at most once per :meth:`FleetBuffers.write` (a batch's k-th frames of
its devices form round k); its windows then come out of :meth:`FleetBuffers.due` and
:meth:`FleetBuffers.windows`, all devices' at once, as :class:`SignalWindow` views of one
gathered array per signal. The fleet is a read-only mapping of the devices it holds to
their slots. Example::

    >>> fleet = FleetBuffers(window_s=10.0, hop_s=1.0)
    >>> ecg = Blocks.of([0], [128.0], [np.zeros(128 * 12)])
    >>> fleet.write(["dev-1"], np.array([1000.0]), {"ecg": ecg})
    >>> which, ends = fleet.due(fleet.slots_of(["dev-1"]))
    >>> which.tolist(), ends.tolist()
    ([0, 0, 0], [1010.0, 1011.0, 1012.0])
    >>> fleet.windows(fleet.slots_of(["dev-1"]), ends[-1:])[0].ecg.shape
    (1280,)
    >>> dict(fleet), fleet.drop("dev-1"), len(fleet)
    ({'dev-1': 0}, None, 0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain, repeat
from typing import NamedTuple

import numpy as np

from stream.records import VITALS, WAVEFORMS
from stream.signal.buffers import CLOCK_SNAP_S
from stream.signal.kernels import rings
from stream.signal.window import NAN, SignalWindow

# Rows are allocated for this many devices at first, then doubled as devices arrive.
_INITIAL_SLOTS = 64
_WIDTH = {"ecg": 1, "ppg": 1, "acc": 3}  # samples per instant (the accelerometer's x, y, z)


class WindowReads(NamedTuple):
    """Windows read from the buffers (:meth:`FleetBuffers.read`) with the arrays their
    waveforms and trends are views of, for readers of a whole batch at once: ``grids``
    maps a waveform every window holds at one rate to the ``(window, sample)`` array
    (``(window, sample, 3)`` for the accelerometer) whose row ``j`` is
    ``windows[j]``'s; ``histories[v, j]`` is ``windows[j].trends[VITALS[v]]``, or all
    NaN where that window has no such trend."""

    windows: list[SignalWindow]
    grids: dict[str, np.ndarray]
    histories: np.ndarray


class Blocks(NamedTuple):
    """One signal's blocks of a round: block ``i`` belongs to the round's device
    ``members[i]``, runs at ``fs[i]`` Hz and is ``values[offsets[i] : offsets[i] +
    lengths[i]]`` (``(n,)``, or ``(n, 3)`` for the accelerometer). ``values`` holds the
    blocks' samples one after the other, as :meth:`of` and :meth:`from_lists` build it."""

    members: np.ndarray
    fs: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    values: np.ndarray

    @classmethod
    def of(
        cls, members: Sequence[int], fs: Sequence[float], samples: Sequence[np.ndarray]
    ) -> Blocks:
        """From one array (or list) of samples per block."""
        arrays = [np.asarray(s, dtype=float) for s in samples]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        width = arrays[0].shape[1] if arrays and arrays[0].ndim == 2 else 0
        values = (
            np.concatenate(arrays) if arrays else np.zeros((0, width) if width else 0)
        ).astype(float, copy=False)
        return cls(
            np.asarray(members, dtype=np.int64),
            np.asarray(fs, dtype=float),
            lengths,
            np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64),
            values,
        )

    @classmethod
    def from_lists(
        cls,
        members: Sequence[int],
        fs: Sequence[float],
        samples: Sequence[Sequence[float]] | Sequence[Sequence[Sequence[float]]],
        triples: bool = False,
    ) -> Blocks:
        """From the frames' sample lists (of ``[x, y, z]`` triples if ``triples``), all
        converted in one call (one call per frame cost more than the rest of the round).

        >>> Blocks.from_lists([0, 2], [25.0, 25.0], [[(0, 0, 1)], [(1, 0, 0), (0, 1, 0)]],
        ...                   triples=True).values.tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        """
        lengths = np.array([len(s) for s in samples], dtype=np.int64)
        total = int(lengths.sum())
        if samples and isinstance(samples[0], np.ndarray):  # already arrays: no iteration
            values = np.concatenate(samples).astype(float, copy=False)
            values = values.reshape(-1, 3) if triples else values.reshape(-1)
        elif triples:
            flat = chain.from_iterable(chain.from_iterable(samples))
            values = np.fromiter(flat, float, 3 * total).reshape(-1, 3)
        else:
            values = np.fromiter(chain.from_iterable(samples), float, total)
        offsets = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        return cls(
            np.asarray(members, dtype=np.int64), np.asarray(fs, dtype=float), lengths, offsets,
            values,
        )  # fmt: skip

    def split(self) -> list[np.ndarray]:
        """Every block's samples (views), in order."""
        lengths = self.lengths
        if len(lengths) and (lengths == lengths[0]).all():  # the usual case: one frame length
            return list(self.values.reshape(len(lengths), lengths[0], *self.values.shape[1:]))
        ends = (self.offsets + lengths).tolist()
        return [self.values[a:b] for a, b in zip(self.offsets.tolist(), ends, strict=True)]


class FleetBuffers(Mapping[str, int]):
    """Every device's waveform rings, vitals history and window schedule, as arrays."""

    def __init__(
        self,
        window_s: float = 10.0,
        hop_s: float = 1.0,
        lateness_s: float = 5.0,
        history_s: float = 600.0,
        trend_fs: float = 1.0,
        snap_s: float = CLOCK_SNAP_S,
        vitals_stale_s: float = 60.0,
    ) -> None:
        self.window_s = window_s
        self.hop_s = hop_s
        self.lateness_s = lateness_s
        self.history_s = history_s
        self.trend_fs = trend_fs
        self.snap_s = snap_s
        self.vitals_stale_s = vitals_stale_s
        self._slots: dict[str, int] = {}
        self._free: list[int] = []
        self._size = _INITIAL_SLOTS
        signals = len(WAVEFORMS) + len(VITALS)
        # Per (signal, slot): absolute index one past the newest sample and of the first
        # one held (-1: no ring), and the ring's rate (the vitals' is trend_fs).
        self._end = np.full((signals, self._size), -1, dtype=np.int64)
        self._start = np.full((signals, self._size), -1, dtype=np.int64)
        self._fs = np.full((signals, self._size), np.nan)
        self._fs[len(WAVEFORMS) :] = trend_fs
        self._last_emitted = np.full(self._size, -np.inf)
        # The waveforms' samples by (signal, rate), the vitals' history by vital.
        self._waveforms: dict[tuple[int, float], np.ndarray] = {}
        self._history = max(int(np.ceil(history_s * trend_fs)), 1)
        self._vitals = [np.full((self._size, self._history, 1), np.nan) for _ in VITALS]
        # The schedule yields at most this many ends per device per call (lateness bounds it).
        self._most_ends = int(np.floor(lateness_s / hop_s + 1e-6)) + 2

    # -- the devices -------------------------------------------------------------------

    def __getitem__(self, device_id: str) -> int:
        return self._slots[device_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def slots_of(self, devices: Sequence[str]) -> np.ndarray:
        """The devices' slots, a new device getting a free one (its rings empty)."""
        slots = self._slots
        out = np.empty(len(devices), dtype=np.int64)
        for i, device_id in enumerate(devices):
            slot = slots.get(device_id)
            if slot is None:
                slot = slots[device_id] = self._free.pop() if self._free else len(slots)
                if slot >= self._size:
                    self._grow(slot + 1)
            out[i] = slot
        return out

    def resume(self, device_id: str, last_end: float) -> None:
        """A device restored from a snapshot: its windows ending at or before ``last_end``
        were handed out by the worker that had it, so none of them is due again; the
        next are cut once its rings (empty until written) hold a window.

        >>> fleet = FleetBuffers(window_s=10.0, hop_s=1.0)
        >>> fleet.resume("dev-1", 1011.0)
        >>> ecg = Blocks.of([0], [128.0], [np.zeros(128 * 12)])
        >>> fleet.write(["dev-1"], np.array([1000.0]), {"ecg": ecg})
        >>> fleet.due(fleet.slots_of(["dev-1"]))[1].tolist()
        [1012.0]
        """
        slot = self.slots_of([device_id])[0]
        self._last_emitted[slot] = max(self._last_emitted[slot], last_end)

    def ring_ends(self, devices: Sequence[str]) -> dict[str, dict[str, list[float]]]:
        """Each of ``devices``' waveform rings as ``{name: [fs, end]}`` (``end``: the
        absolute sample index one past its newest sample), for :meth:`align`; devices
        not held, or without a waveform ring, are left out.

        >>> fleet = FleetBuffers()
        >>> ecg = Blocks.of([0], [128.0], [np.zeros(128)])
        >>> fleet.write(["dev-1"], np.array([1000.0]), {"ecg": ecg})
        >>> fleet.ring_ends(["dev-1", "dev-2"])
        {'dev-1': {'ecg': [128.0, 128128]}}
        """
        found: dict[str, dict[str, list[float]]] = {}
        held = [(d, self._slots[d]) for d in devices if d in self._slots]
        if not held:
            return found
        slots = np.array([slot for _, slot in held], dtype=np.int64)
        ends = self._end[: len(WAVEFORMS), slots].T.tolist()
        rates = self._fs[: len(WAVEFORMS), slots].T.tolist()
        for (device_id, _), device_ends, device_rates in zip(held, ends, rates, strict=True):
            rings = {
                WAVEFORMS[k]: [fs, end]
                for k, (fs, end) in enumerate(zip(device_rates, device_ends, strict=True))
                if end >= 0
            }
            if rings:
                found[device_id] = rings
        return found

    def align(self, device_id: str, rings: Mapping[str, Sequence[float]]) -> int:
        """Shift a refilled device's waveform rings onto the sample grid they had
        (``rings``, :meth:`ring_ends` of the worker that had it, taken where the refill
        ends): a ring started afresh takes its first frame's own clock, which a device's
        jitter may put a sample or so off the grid its samples had been snapped to since
        it began, and every window would then end that much off. Only rings at that rate
        whose end is within twice the clock snap of it move (each is within one of the
        frames' own clocks). Returns the rings moved.

        >>> fleet = FleetBuffers()
        >>> ecg = Blocks.of([0], [128.0], [np.arange(1280.0)])
        >>> fleet.write(["dev-1"], np.array([1000.0 - 1 / 128]), {"ecg": ecg})
        >>> fleet.align("dev-1", {"ecg": [128.0, 129280]}), fleet.ring_ends(["dev-1"])
        (1, {'dev-1': {'ecg': [128.0, 129280]}})
        """
        slot = self._slots.get(device_id)
        if slot is None:
            return 0
        moved = 0
        for name, (fs, wanted) in rings.items():
            signal = WAVEFORMS.index(name) if name in WAVEFORMS else -1
            if signal < 0 or self._fs[signal, slot] != fs or self._end[signal, slot] < 0:
                continue
            shift = int(wanted) - int(self._end[signal, slot])
            if shift == 0 or abs(shift) > 2 * self.snap_s * fs:
                continue
            data = self._samples(signal, fs)
            data[slot] = np.roll(data[slot], shift, axis=0)
            self._end[signal, slot] += shift
            self._start[signal, slot] += shift
            moved += 1
        return moved

    def drop(self, device_id: str) -> None:
        """Forget a device's samples and schedule (no-op for an unknown device)."""
        slot = self._slots.pop(device_id, None)
        if slot is None:
            return
        self._end[:, slot] = -1
        self._start[:, slot] = -1
        self._fs[: len(WAVEFORMS), slot] = np.nan
        self._last_emitted[slot] = -np.inf
        self._free.append(slot)

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * self._size)
        extra = size - self._size

        def wider(array: np.ndarray, fill: float, axis: int) -> np.ndarray:
            shape = list(array.shape)
            shape[axis] = extra
            return np.concatenate([array, np.full(shape, fill, dtype=array.dtype)], axis=axis)

        self._end = wider(self._end, -1, 1)
        self._start = wider(self._start, -1, 1)
        fs = wider(self._fs, np.nan, 1)
        fs[len(WAVEFORMS) :] = self.trend_fs
        self._fs = fs
        self._last_emitted = wider(self._last_emitted, -np.inf, 0)
        self._vitals = [wider(v, np.nan, 0) for v in self._vitals]
        self._waveforms = {key: wider(data, np.nan, 0) for key, data in self._waveforms.items()}
        self._size = size

    def _samples(self, signal: int, fs: float) -> np.ndarray:
        data = self._waveforms.get((signal, fs))
        if data is None:
            capacity = max(int(np.ceil((self.window_s + self.lateness_s) * fs)), 1)
            width = _WIDTH[WAVEFORMS[signal]]
            data = self._waveforms[(signal, fs)] = np.full((self._size, capacity, width), np.nan)
        return data

    # -- writing -----------------------------------------------------------------------

    def write(self, devices: Sequence[str], t0: np.ndarray, blocks: Mapping[str, Blocks]) -> None:
        """One round: ``devices`` (each at most once) with their frames' start times, and
        each signal's blocks of them (``DeviceBuffers.append`` of every block)."""
        slots = self.slots_of(devices)
        for name, signal_blocks in blocks.items():
            keep = signal_blocks.lengths > 0
            if not keep.all():  # an empty block changes nothing, not even the rate
                signal_blocks = signal_blocks._replace(
                    members=signal_blocks.members[keep],
                    fs=signal_blocks.fs[keep],
                    lengths=signal_blocks.lengths[keep],
                    offsets=signal_blocks.offsets[keep],
                )
            if len(signal_blocks.members) == 0:
                continue
            if name in VITALS:
                self._write_vital(VITALS.index(name), slots, t0, signal_blocks)
            elif name in WAVEFORMS:
                self._write_waveform(WAVEFORMS.index(name), slots, t0, signal_blocks)
            else:
                raise ValueError(f"unknown signal {name!r}")

    def _write_waveform(
        self, signal: int, slots: np.ndarray, t0: np.ndarray, blocks: Blocks
    ) -> None:
        rows = slots[blocks.members]
        fs = blocks.fs.astype(float)
        changed = self._fs[signal, rows] != fs  # a new ring (NaN: none yet) or a new rate
        if changed.any():
            self._fs[signal, rows[changed]] = fs[changed]
            self._end[signal, rows[changed]] = -1
            self._start[signal, rows[changed]] = -1
        first = np.round(t0[blocks.members] * fs).astype(np.int64)
        values = np.ascontiguousarray(blocks.values.reshape(len(blocks.values), -1))
        rates = np.unique(fs)
        for rate in rates.tolist():
            at = np.flatnonzero(fs == rate) if len(rates) > 1 else slice(None)
            rings.write_blocks(
                self._samples(signal, rate),
                self._end[signal],
                self._start[signal],
                rows[at],
                first[at],
                blocks.offsets[at],
                blocks.lengths[at],
                values,
                self.snap_s * fs[at],
            )

    def _write_vital(self, vital: int, slots: np.ndarray, t0: np.ndarray, blocks: Blocks) -> None:
        starts = t0[blocks.members]
        if (blocks.lengths == 1).all():
            # The common case (1 Hz vitals, 1 s frames): one trend slot per block.
            times = starts
        else:
            nth = np.arange(len(blocks.values)) - np.repeat(blocks.offsets, blocks.lengths)
            times = np.repeat(starts, blocks.lengths) + nth / np.repeat(blocks.fs, blocks.lengths)
        indices = np.round(times * self.trend_fs).astype(np.int64)
        signal = len(WAVEFORMS) + vital
        rings.scatter_blocks(
            self._vitals[vital],
            self._end[signal],
            self._start[signal],
            slots[blocks.members],
            blocks.offsets,
            blocks.lengths,
            indices,
            blocks.values.reshape(-1).astype(float, copy=False),
        )

    # -- the window schedule -----------------------------------------------------------

    def due(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window ends now due (``DeviceBuffers.due_ends``) of each of ``slots``,
        marked handed out: ``(which, ends)``, ``ends[j]`` of ``slots[which[j]]``, each
        device's oldest first, devices in the order given."""
        out = np.empty((len(slots), self._most_ends))
        counts = np.zeros(len(slots), dtype=np.int64)
        rings.due_ends(
            self._end, self._start, self._fs, len(WAVEFORMS), np.asarray(slots, np.int64),
            self._last_emitted, self.window_s, self.hop_s, self.lateness_s, out, counts,
        )  # fmt: skip
        which = np.repeat(np.arange(len(slots)), counts)
        return which, out[np.arange(self._most_ends) < counts[:, None]]

    # -- reading -----------------------------------------------------------------------

    def windows(self, slots: np.ndarray, ends: np.ndarray) -> list[SignalWindow]:
        """``DeviceBuffers.window(ends[j])`` of each ``slots[j]``: the waveforms as views of
        one gathered array per signal and rate, the trends of one per batch."""
        return self.read(slots, ends).windows

    def read(
        self, slots: np.ndarray, ends: np.ndarray, waveforms: Sequence[str] = WAVEFORMS
    ) -> WindowReads:
        """:meth:`windows`, with the arrays they are views of (:class:`WindowReads`).
        ``waveforms``: the waveforms to read (the others are left as a window without
        them has them: ``None``, rate nan), for a reader that has no use for some."""
        count = len(slots)
        if count == 0:
            return WindowReads([], {}, np.zeros((len(VITALS), 0, self._history)))
        slots = np.asarray(slots, dtype=np.int64)
        t_end = np.asarray(ends, dtype=float)
        t_start = t_end - self.window_s
        # Each SignalWindow field as a list over the windows (SignalWindow's defaults where
        # a device has no such ring), the arrays as views of one gather per signal and rate.
        columns: list[list] = []
        grids: dict[str, np.ndarray] = {}
        for signal in range(len(WAVEFORMS)):
            arrays: list[np.ndarray | None] = [None] * count
            rates: list[float] = [NAN] * count
            fs = self._fs[signal, slots]
            held = ~np.isnan(fs)
            if held.any() and WAVEFORMS[signal] in waveforms:
                distinct = np.unique(fs[held])
                for rate in distinct.tolist():
                    at = np.flatnonzero(fs == rate) if len(distinct) > 1 or not held.all() else None
                    rows = slots if at is None else slots[at]
                    data = self._samples(signal, rate)
                    out = np.empty((len(rows), round(self.window_s * rate), data.shape[2]))
                    first = t_start if at is None else t_start[at]
                    rings.read_blocks(
                        data, self._end[signal], self._start[signal], rows,
                        np.round(first * rate).astype(np.int64), out,
                    )  # fmt: skip
                    grid = out[:, :, 0] if data.shape[2] == 1 else out
                    views = list(grid)
                    if at is None:
                        arrays, rates = views, [rate] * count
                        grids[WAVEFORMS[signal]] = grid
                    else:
                        for j, view in zip(at.tolist(), views, strict=True):
                            arrays[j], rates[j] = view, rate
            columns += [arrays, rates]
        histories, latest, held = self._trends(slots, t_end)
        latest[~held] = NAN
        columns += latest.tolist()
        views_by_vital = [list(histories[v]) for v in range(len(VITALS))]
        if held.all():  # the usual case: every vital of every device
            trends = [
                dict(zip(VITALS, views, strict=True)) for views in zip(*views_by_vital, strict=True)
            ]
        else:
            trends = [
                {VITALS[v]: views_by_vital[v][j] for v in np.flatnonzero(held[:, j]).tolist()}
                for j in range(count)
            ]
        # Positional, in SignalWindow's field order (t_start, t_end, ecg, ecg_fs, ppg,
        # ppg_fs, acc, acc_fs, then the vitals in VITALS order, trends, trend_fs).
        windows = list(
            map(
                SignalWindow,
                t_start.tolist(),
                t_end.tolist(),
                *columns,
                trends,
                repeat(self.trend_fs, count),
            )
        )
        histories[~held] = NAN  # a vital not held has no history (the windows' trends lack it)
        return WindowReads(windows, grids, histories)

    def _trends(
        self, slots: np.ndarray, t_end: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each window's vitals history (``DeviceBuffers.history``: ``(vital, window,
        history_s * trend_fs)``), latest values (``(vital, window)``; garbage where not
        held) and which vitals are held (``(vital, window)``)."""
        count = len(slots)
        histories = np.empty((len(VITALS), count, self._history))
        last = np.floor(t_end * self.trend_fs).astype(np.int64) + 1
        held = self._end[len(WAVEFORMS) :, slots] >= 0
        for vital in range(len(VITALS)):
            if held[vital].any():
                signal = len(WAVEFORMS) + vital
                rings.read_blocks(
                    self._vitals[vital], self._end[signal], self._start[signal], slots,
                    last - self._history, histories[vital, :, :, np.newaxis],
                )  # fmt: skip
        latest = np.empty((len(VITALS), count))
        recent = max(int(self.vitals_stale_s * self.trend_fs), 1)
        rings.latest_values(histories, recent, latest)
        return histories, latest, held


def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache) on a two-device round with
    every signal, so that the first real batch does not wait for the compiler."""
    fleet = FleetBuffers(window_s=2.0, hop_s=1.0, lateness_s=1.0)
    seconds = 3
    blocks = {
        name: Blocks.of(
            [0, 1],
            [10.0, 10.0],
            [np.zeros((10 * seconds, 3) if name == "acc" else 10 * seconds)] * 2,
        )
        for name in WAVEFORMS
    }
    blocks |= {name: Blocks.of([0, 1], [1.0, 1.0], [np.ones(seconds)] * 2) for name in VITALS}
    slots = fleet.slots_of(["a", "b"])
    fleet.write(["a", "b"], np.array([100.0, 100.5]), blocks)
    which, ends = fleet.due(slots)
    fleet.windows(slots[which], ends)
    assert math.isfinite(float(ends[-1]))
