"""Per-frame statistics of each device's ECG, PPG and accelerometer, and windows read from them.

Owns :class:`FrameStats`: for every ECG, PPG and accelerometer frame of a device, once, a
*slot* of running sums and extremes (the compiled loops are
:mod:`stream.signal.kernels.frame_stats`), kept in a ring of the last
:data:`~stream.signal.kernels.frame_stats.SLOTS` frames. A window's statistics are then
combined from the slots of the frames inside it, without reading its samples
again. All devices of a batch are summarized in one compiled call per signal, and all due
windows combined in one more.

- **ECG**: samples present, extremes and the samples pinned at them (each frame counts
  them within its own span's tolerance: exact at a rail, within a percent otherwise), the
  first four power sums of the QRS band (kurtosis), the energies of the quality bands
  (:data:`ECG_QUALITY_BANDS`: QRS, wide, baseline, total; the band-power indices of Li,
  Mark & Clifford 2008), the longest flat stretch and the one still running at the end
  (a lost contact, a lost tail). The band filters are causal 2nd-order Butterworth
  band-passes whose state is carried across frames; a window's band energies therefore
  stand for its band powers (Parseval) rather than equal an FFT's bins.
- **PPG**: samples present, extremes and pinned samples, repeated samples, the sums of the
  samples and their squares (the spread of the window and of its last second, for a
  sensor that came off), and the energies of the pulse band and the total.
- **Accelerometer**: rows present, the sums of the magnitude and its square, its maximum
  and the sums of each axis, which give :func:`stream.signal.activity.activity_features`'
  four values exactly when frames are whole seconds (the trailing and edge spans are
  counted in whole frames).

A window covers the frames whose middle falls within it (device clocks jitter by up to
the buffers' 20 ms snap, far less than half a frame), so its span is whole frames: exact
for the worker's windows (they end at frame ends, and frames are a second), approximate by
up to half a frame otherwise. Like the raw-sample rings this replaces, the slots are not durable: a
worker that takes a device over fills them again within a window.

Example (two seconds of a still, upright wearer at 25 Hz, then its window)::

    >>> stats = FrameStats()
    >>> upright = np.tile([0.0, 0.0, 1.0], (25, 1))
    >>> stats.push_acc([("dev-1", 0.0, 25.0, upright), ("dev-2", 0.0, 25.0, 2 * upright)])
    >>> stats.push_acc([("dev-1", 1.0, 25.0, upright)])
    >>> window = stats.acc_windows(["dev-1"], np.array([0.0]), np.array([2.0]))
    >>> window[0].tolist()
    [0.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import scipy.signal

from stream.signal.beats import ECG_BAND, ECG_FLAT_MV
from stream.signal.kernels import frame_stats as k
from stream.signal.kernels import window_reads
from stream.signal.signal_frames import FrameTuple, SignalFrames

# The ECG quality bands (Hz), as stream.signal.quality.ECG_BANDS: QRS (also the kurtosis
# signal), wide QRS, baseline wander and the total. A 10 s window's FFT has no power below
# its 0.1 Hz resolution once the mean is removed; the causal filters' 0.1 Hz low edge does
# the same.
ECG_QUALITY_BANDS = (ECG_BAND, (5.0, 40.0), (0.1, 1.0), (0.1, 40.0))
# The PPG quality bands (stream.signal.quality.ppg_bands): the pulse band and everything
# but DC (the window FFT's resolution, as for the ECG).
PPG_PULSE_BAND = (0.5, 5.0)
PPG_TOTAL_LOW_HZ = 0.1
_ROWS_START = 64  # rows allocated at first; doubled as devices arrive
# The second detector (bSQI): peaks at least 0.3 s apart (simple_beats' distance in
# stream.signal.quality), its level halving in 2 s so that one large artefact hides the
# beats after it for a moment (as it raised the window detector's percentile).
SIMPLE_DISTANCE_S = 0.3
SIMPLE_HALF_LIFE_S = 2.0


@lru_cache(maxsize=16)
def _design(fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order sections (bands x 2 x 6) of the quality bands at ``fs``, and each
    band's state for a unit step (bands x 4)."""
    sos = np.empty((k.BANDS, 2, 6))
    zi = np.empty((k.BANDS, 4))
    for b, (low, high) in enumerate(ECG_QUALITY_BANDS):
        design = scipy.signal.butter(
            2, (low, min(high, 0.45 * fs)), btype="bandpass", fs=fs, output="sos"
        )
        sos[b] = design
        zi[b] = scipy.signal.sosfilt_zi(design).ravel()
    return sos, zi


@lru_cache(maxsize=16)
def _design_ppg(fs: float) -> tuple[np.ndarray, np.ndarray]:
    sos = np.empty((k.PPG_BANDS, 2, 6))
    zi = np.empty((k.PPG_BANDS, 4))
    for b, (low, high) in enumerate((PPG_PULSE_BAND, (PPG_TOTAL_LOW_HZ, 0.45 * fs))):
        design = scipy.signal.butter(
            2, (low, min(high, 0.45 * fs)), btype="bandpass", fs=fs, output="sos"
        )
        sos[b] = design
        zi[b] = scipy.signal.sosfilt_zi(design).ravel()
    return sos, zi


class _Ring:
    """Slots of one signal for every device: rows indexed by device."""

    def __init__(self, columns: int, state_columns: int = 0) -> None:
        self.rows: dict[str, int] = {}
        self.free: list[int] = []
        self.fs = np.full(_ROWS_START, np.nan)
        self.slots = np.zeros((_ROWS_START, k.SLOTS, columns))
        self.heads = np.zeros(_ROWS_START, dtype=np.int64)
        self.state = np.zeros((_ROWS_START, max(state_columns, 1)))
        self.peaks = np.zeros((_ROWS_START, k.PEAKS))
        self.peak_heads = np.zeros(_ROWS_START, dtype=np.int64)

    def row(self, device: str, fs: float) -> int:
        """The device's row, (re)started when new or when its rate changed."""
        row = self.rows.get(device)
        if row is None:
            row = self.free.pop() if self.free else len(self.rows)
            if row >= len(self.fs):
                self._grow()
            self.rows[device] = row
            self._reset(row, fs)
        elif self.fs[row] != fs:
            self._reset(row, fs)
        return row

    def _reset(self, row: int, fs: float) -> None:
        self.fs[row] = fs
        self.slots[row] = 0.0
        self.heads[row] = 0
        self.state[row] = 0.0
        self.peak_heads[row] = 0

    def _grow(self) -> None:
        size = 2 * len(self.fs)
        self.fs = np.concatenate((self.fs, np.full(size - len(self.fs), np.nan)))
        self.slots = np.concatenate((self.slots, np.zeros_like(self.slots)))
        self.heads = np.concatenate((self.heads, np.zeros_like(self.heads)))
        self.state = np.concatenate((self.state, np.zeros_like(self.state)))
        self.peaks = np.concatenate((self.peaks, np.zeros_like(self.peaks)))
        self.peak_heads = np.concatenate((self.peak_heads, np.zeros_like(self.peak_heads)))

    def forget(self, device: str) -> None:
        row = self.rows.pop(device, None)
        if row is not None:
            self.free.append(row)

    def lookup(self, devices: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``devices`` (-1 unknown) and whether each is known."""
        rows = np.array([self.rows.get(d, -1) for d in devices], dtype=np.int64)
        return rows, rows >= 0


def _by_rate(frames: SignalFrames) -> list[tuple[float, SignalFrames]]:
    """Frames grouped by rate: a rate's filters are designed once and its devices run in
    one call (a fleet of one rate, the usual case, is one group without a copy)."""
    rates = np.unique(frames.fs)
    if len(rates) == 1:
        return [(float(rates[0]), frames)]
    return [(float(fs), frames.where(frames.fs == fs)) for fs in rates]


def _packed(
    ring: _Ring, frames: SignalFrames
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kernels' inputs: (samples, bounds, ring rows, frame starts, frame ends)."""
    rows_of = ring.rows
    found = [rows_of.get(device, -1) for device in frames.devices]
    rows = np.array(found, dtype=np.int64)
    # New devices, or a device whose rate changed, (re)start their rows one by one.
    stale = (rows < 0) | (ring.fs[np.maximum(rows, 0)] != frames.fs)
    for i in np.flatnonzero(stale).tolist():
        rows[i] = ring.row(frames.devices[i], float(frames.fs[i]))
    t1 = frames.t0 + frames.lengths / frames.fs
    return frames.values, frames.bounds, rows, frames.t0, t1


def _windows(
    ring: _Ring,
    combine: Callable[..., np.ndarray],
    columns: int,
    devices: Sequence[str],
    t_start: np.ndarray,
    t_end: np.ndarray,
    *extra: float,
) -> np.ndarray:
    """``combine`` (a ``combine_*`` kernel) of each device's window; NaN rows for devices
    the ring does not know."""
    rows, known = ring.lookup(devices)
    out = np.full((len(devices), columns), np.nan)
    if known.any():
        starts = np.asarray(t_start, dtype=float)[known]
        ends = np.asarray(t_end, dtype=float)[known]
        out[known] = combine(ring.slots, ring.heads, rows[known], starts, ends, *extra)
    return out


class FrameStats:
    """Every device's per-frame ECG and accelerometer slots (see the module doc)."""

    def __init__(self) -> None:
        self._ecg = _Ring(k.E_COLUMNS, k.S_COLUMNS)
        self._acc = _Ring(k.A_COLUMNS)
        self._ppg = _Ring(k.P_COLUMNS, k.Q_COLUMNS)

    def push_ecg(self, frames: SignalFrames | Sequence[FrameTuple]) -> None:
        """Summarize each ``(device, t0, fs, samples)`` ECG frame (mV, NaN = missing);
        devices of one rate are summarized in one call."""
        for fs, group in _by_rate(SignalFrames.of(frames)):
            samples, bounds, rows, t0, t1 = _packed(self._ecg, group)
            sos, zi = _design(fs)
            k.advance_ecg(
                samples, bounds, rows, t0, t1, sos, zi, ECG_FLAT_MV, SIMPLE_DISTANCE_S,
                0.5 ** (1.0 / (SIMPLE_HALF_LIFE_S * fs)), self._ecg.state, self._ecg.slots,
                self._ecg.heads, self._ecg.peaks, self._ecg.peak_heads,
            )  # fmt: skip

    def push_ppg(self, frames: SignalFrames | Sequence[FrameTuple]) -> None:
        """Summarize each ``(device, t0, fs, samples)`` PPG frame (NaN = missing)."""
        for fs, group in _by_rate(SignalFrames.of(frames)):
            samples, bounds, rows, t0, t1 = _packed(self._ppg, group)
            sos, zi = _design_ppg(fs)
            k.advance_ppg(
                samples, bounds, rows, t0, t1, sos, zi, self._ppg.state, self._ppg.slots,
                self._ppg.heads,
            )  # fmt: skip

    def push_acc(self, frames: SignalFrames | Sequence[FrameTuple]) -> None:
        """Summarize each ``(device, t0, fs, samples)`` accelerometer frame (``(n, 3)`` g)."""
        if not len(frames):
            return
        samples, bounds, rows, t0, t1 = _packed(self._acc, SignalFrames.of(frames))
        k.advance_acc(samples, bounds, rows, t0, t1, self._acc.slots, self._acc.heads)

    def ecg_windows(
        self, devices: Sequence[str], t_start: np.ndarray, t_end: np.ndarray
    ) -> np.ndarray:
        """Each window's ECG statistics, columns ``W_*`` of
        :mod:`stream.signal.kernels.frame_stats` (NaN rows for devices without ECG)."""
        return _windows(self._ecg, k.combine_ecg, k.W_COLUMNS, devices, t_start, t_end)

    def ppg_windows(
        self, devices: Sequence[str], t_start: np.ndarray, t_end: np.ndarray, tail_s: float
    ) -> np.ndarray:
        """Each window's PPG statistics, columns ``G_*`` (the tail's spread over the frames
        of the trailing ``tail_s``; NaN rows for devices without PPG)."""
        return _windows(self._ppg, k.combine_ppg, k.G_COLUMNS, devices, t_start, t_end, tail_s)

    def acc_windows(
        self,
        devices: Sequence[str],
        t_start: np.ndarray,
        t_end: np.ndarray,
        trailing_s: float = 3.0,
        edge_s: float = 2.0,
    ) -> np.ndarray:
        """Each window's accelerometer summary, columns ``V_*`` (magnitude std, maximum,
        trailing std, cosine of the posture change; NaN without accelerometer)."""
        return _windows(
            self._acc, k.combine_acc, k.V_COLUMNS, devices, t_start, t_end, trailing_s, edge_s
        )

    def second_detector(self, device: str) -> tuple[np.ndarray, float]:
        """The second QRS detector's recent peaks (epoch s, oldest first) and the time up
        to which it has decided (nan when the device has no ECG)."""
        row = self._ecg.rows.get(device)
        if row is None:
            return np.zeros(0), float("nan")
        count = int(self._ecg.peak_heads[row])
        held = min(count, k.PEAKS)
        order = np.arange(count - held, count) % k.PEAKS
        return self._ecg.peaks[row, order], float(self._ecg.state[row, k.S_DECIDED])

    def second_detector_windows(
        self, devices: Sequence[str], t_start: np.ndarray, t_end: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`second_detector` of many windows at once: the peaks within each window
        ``[t_start, t_end)`` packed (times, offsets), and each device's decided time."""
        rows, known = self._ecg.lookup(devices)
        # Epoch times already: origin 0 and rate 1 leave them as they are.
        size = len(self._ecg.fs)
        times, _, offsets = window_reads.ring_times(
            self._ecg.peaks, self._ecg.peak_heads, np.zeros(size), np.ones(size), rows,
            t_start, t_end,
        )  # fmt: skip
        decided = np.where(known, self._ecg.state[np.maximum(rows, 0), k.S_DECIDED], np.nan)
        return times, offsets, decided

    def forget(self, device: str) -> None:
        self._ecg.forget(device)
        self._acc.forget(device)
        self._ppg.forget(device)
