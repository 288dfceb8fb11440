"""Per-device ring buffers of samples and the sliding windows cut from them. Pure numpy.

Owns :class:`DeviceBuffers`: one preallocated ring per waveform (``ecg``, ``ppg``, ``acc``)
holding ``window_s + lateness_s`` seconds, and one per vital (``hr``, ``spo2``, ``resp``,
``temp``, ``battery``) holding ``history_s`` seconds at ``trend_fs`` (1 Hz) for slopes and
the deterioration model. Windows come out as :class:`stream.signal.window.SignalWindow`;
the signal names are :data:`stream.records.WAVEFORMS` and :data:`stream.records.VITALS`.
The worker holds all its devices' rings as arrays instead
(:class:`stream.signal.fleet_buffers.FleetBuffers`, these semantics exactly): this class
is its reference, checked against it on randomized frame sequences.

Time is absolute: a ring maps sample ``k`` of its signal to ``k / fs`` epoch seconds, so
frames are placed by their ``t0`` whatever order they arrive in:

- a gap between frames is NaN-filled (and features see the missing share);
- an overlap or a duplicate overwrites the same slots (idempotent for replays), and a late
  frame within ``lateness_s`` fills the gap it left;
- device clocks jitter, so a frame starting within ``snap_s`` of where the signal's last
  frame ended is taken as contiguous rather than leaving a one-sample hole;
- a change of sampling rate restarts that signal's ring.

Windows end where the data ends: on each append, the newest window ends at the newest
sample and older due ones a whole number of hops before it, so a frame's samples are
analysed as soon as it arrives (ends aligned to a clock grid instead would hold back up to
a hop of every frame that straddles it). Ends are frame ends, hence deterministic: a replay
of the same frames cuts the same windows. Example::

    >>> buffers = DeviceBuffers(window_s=10.0, hop_s=1.0)
    >>> buffers.append("ecg", 1000.0, 128.0, np.zeros(128 * 12))
    >>> buffers.due_ends()
    array([1010., 1011., 1012.])
    >>> buffers.window(1012.0).ecg.shape
    (1280,)
"""

from __future__ import annotations

import math

import numpy as np

from stream.records import VITALS, WAVEFORMS
from stream.signal.window import NAN, SignalWindow

# Device clocks jitter by a few ms from frame to frame: a frame starting this close to where
# its signal's last frame ended continues it (the ECG beat detectors follow the same rule).
CLOCK_SNAP_S = 0.02


class _Ring:
    """A preallocated ring of samples indexed by absolute sample number ``round(t * fs)``."""

    def __init__(self, fs: float, seconds: float, width: int) -> None:
        self.fs = float(fs)
        self.capacity = max(int(np.ceil(seconds * fs)), 1)
        shape = (self.capacity, width) if width > 1 else (self.capacity,)
        self.data = np.full(shape, np.nan)
        self.end = -1  # absolute index one past the newest sample written; -1 = empty
        self.start = -1  # absolute index of the first sample ever written

    def write(self, first: int, values: np.ndarray) -> None:
        """Write ``values`` at absolute indices ``first, first + 1, ...``."""
        last = first + len(values)
        if self.end < 0 or first >= self.end + self.capacity:
            self.data[...] = np.nan  # first data, or a gap longer than the ring: start over
            self.start = first
        elif first > self.end:
            self._fill(self.end, first, np.nan)
        if last <= self.end - self.capacity:
            return  # entirely older than the ring holds
        skip = max(self.end - self.capacity - first, 0)
        self._fill(first + skip, last, values[skip:])
        self.end = max(self.end, last)
        self.start = min(self.start, first + skip)

    def scatter(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Write values at arbitrary absolute indices (vitals resampled onto the trend grid)."""
        newest = int(indices.max()) + 1
        if self.end < 0 or newest - self.capacity >= self.end:
            self.data[...] = np.nan
            self.start = int(indices.min())
        elif newest > self.end:
            self._fill(self.end, newest, np.nan)
        self.end = max(self.end, newest)
        keep = indices >= self.end - self.capacity
        self.data[indices[keep] % self.capacity] = values[keep]
        self.start = min(self.start, int(indices[keep].min()) if keep.any() else self.start)

    def scatter_one(self, index: int, value: float) -> None:
        """:meth:`scatter` of a single sample."""
        newest = index + 1
        if self.end < 0 or newest - self.capacity >= self.end:
            self.data[...] = np.nan
            self.start = index
        elif newest > self.end:
            self._fill(self.end, newest, np.nan)
        self.end = max(self.end, newest)
        if index >= self.end - self.capacity:
            self.data[index % self.capacity] = value
            self.start = min(self.start, index)

    def _fill(self, first: int, last: int, values: np.ndarray | float) -> None:
        # At most two contiguous slices: no per-sample work, no index arrays.
        n = last - first
        if n <= 0:
            return
        if n > self.capacity:
            values = values[-self.capacity :] if isinstance(values, np.ndarray) else values
            first, n = last - self.capacity, self.capacity
        head = first % self.capacity
        split = min(n, self.capacity - head)
        if isinstance(values, np.ndarray):
            self.data[head : head + split] = values[:split]
            self.data[: n - split] = values[split:]
        else:
            self.data[head : head + split] = values
            self.data[: n - split] = values

    def read(self, first: int, last: int) -> np.ndarray:
        """Copy of absolute indices ``[first, last)``; NaN where not (or no longer) held."""
        out = np.full((last - first, *self.data.shape[1:]), np.nan)
        lo, hi = max(first, self.end - self.capacity, self.start), min(last, self.end)
        if hi > lo:
            # At most two contiguous slices of the ring (cheaper than an index array).
            head = lo % self.capacity
            split = min(hi - lo, self.capacity - head)
            out[lo - first : lo - first + split] = self.data[head : head + split]
            out[lo - first + split : hi - first] = self.data[: hi - lo - split]
        return out


class DeviceBuffers:
    """All signals of one device: waveform rings, vitals history and the window schedule."""

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
        self._rings: dict[str, _Ring] = {}
        self._last_emitted = -np.inf  # end time of the newest window handed out

    # -- writing -----------------------------------------------------------------------

    def append(self, signal: str, t0: float, fs: float, samples: np.ndarray) -> None:
        """Add one block of ``samples`` of ``signal`` starting at epoch ``t0``, rate ``fs``."""
        values = np.asarray(samples, dtype=float)
        if values.size == 0:
            return
        if signal in VITALS:
            self._append_vital(signal, t0, fs, values.reshape(-1))
            return
        if signal not in WAVEFORMS:
            raise ValueError(f"unknown signal {signal!r}")
        width = 3 if signal == "acc" else 1
        values = values.reshape(-1, 3) if width == 3 else values.reshape(-1)
        ring = self._rings.get(signal)
        if ring is None or ring.fs != float(fs):
            ring = self._rings[signal] = _Ring(fs, self.window_s + self.lateness_s, width)
        first = round(t0 * fs)
        if ring.end >= 0 and abs(first - ring.end) <= self.snap_s * fs:
            first = ring.end
        ring.write(first, values)

    def _append_vital(self, signal: str, t0: float, fs: float, values: np.ndarray) -> None:
        ring = self._rings.get(signal)
        if ring is None:
            ring = self._rings[signal] = _Ring(self.trend_fs, self.history_s, 1)
        if len(values) == 1:
            # The common case (1 Hz vitals, 1 s frames): no index arrays for one sample.
            ring.scatter_one(round(t0 * self.trend_fs), float(values[0]))
            return
        times = t0 + np.arange(len(values)) / fs
        # Several samples in one trend slot: the last wins (vitals change slowly).
        ring.scatter(np.round(times * self.trend_fs).astype(np.int64), values)

    # -- the window schedule -------------------------------------------------------------

    def _clock_rings(self) -> list[_Ring]:
        """The rings that pace the windows: the waveforms (the vitals, for a device that
        sends only those), less any that stopped more than a hop before the newest (a
        sensor off holds nothing back)."""
        waveforms = [r for n, r in self._rings.items() if n in WAVEFORMS]
        rings = waveforms or list(self._rings.values())
        if not rings:
            return rings
        latest = max(r.end / r.fs for r in rings)
        return [r for r in rings if r.end / r.fs > latest - self.hop_s]

    @property
    def newest(self) -> float:
        """Epoch time just past the newest sample of every live signal (-inf before any).

        Each waveform has its own sample grid, so their ends differ by a fraction of a
        sample: a window ending at the latest of them would lack the others' last sample
        (a gap, which also disables the features that need a gap-free window).
        """
        return min((r.end / r.fs for r in self._clock_rings()), default=-np.inf)

    @property
    def oldest(self) -> float:
        """Epoch time from which every live signal holds samples since its ring (re)started
        (see :attr:`newest`)."""
        return max((r.start / r.fs for r in self._clock_rings()), default=np.inf)

    def _candidate_ends(self) -> np.ndarray:
        newest = self.newest
        if not np.isfinite(newest):
            return np.zeros(0)
        # Windows start once a whole window of data exists, and none older than the ring.
        first = max(self.oldest + self.window_s, newest - self.lateness_s)
        if newest < first - 1e-9:
            return np.zeros(0)
        # Whole hops back from the newest sample: the latest window ends with the data.
        hops = np.floor((newest - first) / self.hop_s + 1e-9)
        ends = newest - self.hop_s * np.arange(hops, -1.0, -1.0)
        # Half a hop apart at least: device clocks jitter a few ms from frame to frame.
        return ends[ends > self._last_emitted + 0.5 * self.hop_s]

    def due(self, hop_s: float | None = None) -> bool:
        """Whether a window end has passed that has not been handed out."""
        if hop_s is not None:
            self.hop_s = hop_s
        return len(self._candidate_ends()) > 0

    def next_end(self) -> float:
        """The earliest the next window can end (data permitting: ends follow the data)."""
        if np.isfinite(self._last_emitted):
            return float(self._last_emitted + self.hop_s)
        return float(self.oldest + self.window_s)

    def due_ends(self) -> np.ndarray:
        """Window ends now due, oldest first, and mark them handed out.

        Ends older than ``lateness_s`` behind the newest sample are skipped: after a long
        silence the stream catches up with the present instead of replaying the past.
        """
        ends = self._candidate_ends()
        if len(ends):
            self._last_emitted = float(ends[-1])
        return ends

    # -- reading -------------------------------------------------------------------------

    def window(self, t_end: float, length_s: float | None = None) -> SignalWindow:
        """The window ``[t_end - length_s, t_end)``: copies, NaN where samples are missing."""
        length_s = self.window_s if length_s is None else length_s
        t_start = t_end - length_s
        arrays: dict[str, object] = {}
        for name in WAVEFORMS:
            ring = self._rings.get(name)
            if ring is None:
                continue
            first = round(t_start * ring.fs)
            arrays[name] = ring.read(first, first + round(length_s * ring.fs))
            arrays[f"{name}_fs"] = ring.fs
        trends = self.history(t_end)
        latest = {name: self._latest(values) for name, values in trends.items()}
        return SignalWindow(
            t_start=t_start,
            t_end=t_end,
            trends=trends,
            trend_fs=self.trend_fs,
            **arrays,  # type: ignore[arg-type]
            **latest,
        )

    def history(self, t_end: float) -> dict[str, np.ndarray]:
        """Each vital's last ``history_s`` at ``trend_fs`` ending at ``t_end`` (oldest first)."""
        out: dict[str, np.ndarray] = {}
        for name in VITALS:
            ring = self._rings.get(name)
            if ring is not None:
                last = int(np.floor(t_end * self.trend_fs)) + 1
                out[name] = ring.read(last - ring.capacity, last)
        return out

    def _latest(self, values: np.ndarray) -> float:
        """Newest finite value no older than ``vitals_stale_s``; nan otherwise."""
        newest = float(values[-1])
        if math.isfinite(newest):
            return newest  # the usual case: this second's value is in
        recent = values[-max(int(self.vitals_stale_s * self.trend_fs), 1) :]
        finite = np.flatnonzero(np.isfinite(recent))
        return float(recent[finite[-1]]) if len(finite) else NAN
