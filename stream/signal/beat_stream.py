"""The ECG beat stream: a causal Pan–Tompkins detector per device, carried across frames.

Owns :class:`EcgBeatStream`: every device's detector state (band-pass state, derivative
and integration history, signal and noise levels, held candidates for search-back, the
recent beats) in arrays indexed by a slot, advanced by each frame's new samples once, all
devices of a batch in one compiled call (:func:`stream.signal.kernels.ecg_stream.advance`).
A stream cut into frames of any length yields exactly the beats of the whole stream, and a
device's state exports to bytes and restores elsewhere (a worker restart, a partition move)
with the same beats after it. The slot table, the frames' clock rules and the moving of a
device are :class:`stream.signal.device_streams.DeviceStreams`'s, which it shares with the
PPG pulse stream.

The detector is Pan and Tompkins' (1985) in its original causal form: a 5–15 Hz
2nd-order Butterworth band-pass (one pass, not zero-phase), the five-point derivative,
squaring, a 150 ms moving integration, candidates at least 200 ms apart, adaptive
thresholds learned over the first 2 s, the T-wave rule (within 360 ms of a beat and less
than half its slope) and search-back at 166 % of the recent RR (down to 1/8 of the
thresholds, as :mod:`stream.signal.beats` argues). A QRS under
:data:`~stream.signal.features.QRS_MIN_MV` peak to peak is not counted (IEC 60601-2-27:
≤ 0.15 mV is no beat), nor is a beat within 0.5 s of a gap.

**Decision delay.** A beat is decided once its integration peak has outlived the 200 ms
refractory period: the R peak plus the band-pass lag (10-110 ms), the derivative
(2 samples) and half the integration (75 ms), plus 200 ms, so about 0.3 s after the R
peak. A beat in the last 0.3 s of a frame is therefore emitted with the next frame
(:data:`DECISION_DELAY_S`); a beat recovered by search-back is emitted when the next
candidate shows it was missed (up to 166 % of an RR later). Beat times are the band-pass
R peak moved back by the group delay. Rates read from the stream are therefore at most
this late; the wait since the last beat (the fast bradycardia path) must count from the
last *decided* sample, not the frame's end, which :meth:`EcgBeatStream.decided_until`
gives.

Example (a 1 mV QRS every 0.8 s from 0.4 s, 75 bpm, at 250 Hz, in one-second frames;
the last beat, at 11.6 s, is decided 0.28 s later, within the last frame)::

    >>> fs = 250.0
    >>> t = np.arange(int(12 * fs)) / fs
    >>> ecg = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.01**2))
    >>> stream = EcgBeatStream()
    >>> beats = [stream.push([("dev-1", s, fs, ecg[int(s * fs) : int((s + 1) * fs)])])
    ...          for s in range(12)]
    >>> times = np.concatenate([b.times for b in beats])
    >>> np.round(times[:3], 3).tolist(), np.round(times[-1], 3), len(times)
    ([0.4, 1.2, 2.0], np.float64(11.6), 15)
    >>> float(60.0 / np.mean(np.diff(stream.recent_beats("dev-1"))))
    75.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream.signal.device_streams import DeviceStreams, Run
from stream.signal.kernels import ecg_stream as k
from stream.signal.signal_frames import FrameTuple, SignalFrames

ECG_BAND = (5.0, 15.0)  # Hz: the QRS complex (Pan–Tompkins)
# Physiological limit: beats closer than the refractory period are one beat (300 bpm max).
REFRACTORY_S = 0.2
# Search-back admits a missed beat's peak above 1/8 of the thresholds. Pan and Tompkins use
# 1/2; 1/8 still recovers the beats an artefact-inflated level hid on MIT-BIH 208, while
# the P waves in the long gaps of a sudden bradycardia stay out (1/32 took them for beats
# and doubled the rate).
SEARCH_BACK = 8

# QRS smaller than this peak to peak are not beats (the window analysis' rule, see
# stream.signal.features.QRS_MIN_MV: IEC 60601-2-27 counts 0.5-5 mV, not <= 0.15 mV).
QRS_MIN_MV = 0.25
QRS_HALF_S = 0.06
GAP_MARGIN_S = 0.5  # beats this close to a gap are filter ringing as often as beats
LEARN_S = 2.0  # the levels are learned over the first 2 s (Pan–Tompkins)
RELEARN_GAP_S = 2.0  # after a gap this long the signal may have changed: learn again
# A frame later than its device's stream by more than this is a new stream; a shorter gap
# is bridged with missing samples (the detector holds its state through it).
MAX_BRIDGE_S = 10.0
# The causal band-pass peaks up to ~110 ms after a wide (120 ms) QRS's R peak: the R peak
# is the raw sample furthest from the median within this span before the band-pass peak.
R_BACK_S = 0.13
MAX_FS = 500.0  # the ring of recent samples holds 1 s at this rate
# Samples of history a restored detector needs (beyond the integration width): the
# refractory wait, the integration lag, the R-peak search and the QRS amplitude span.
_LOOKBACK_S = REFRACTORY_S + 0.075 + 0.075 + R_BACK_S + QRS_HALF_S
DECISION_DELAY_S = 0.3  # R peak to decision (see the module doc)
EXPORT_FORMAT = 1  # the layout of EcgBeatStream.export


@dataclass(frozen=True, slots=True)
class BeatBatch:
    """The beats one :meth:`EcgBeatStream.push` counted: row of the pushed batch, epoch
    time (s) and the device's absolute sample index, in order of decision per device."""

    rows: np.ndarray
    times: np.ndarray
    samples: np.ndarray


class EcgBeatStream(DeviceStreams):
    """Causal beat detection for a fleet of devices (see the module doc)."""

    KIND, KERNEL, BAND = "ECG", k, ECG_BAND
    MAX_FS, MAX_BRIDGE_S, DECISION_DELAY_S = MAX_FS, MAX_BRIDGE_S, DECISION_DELAY_S
    _CLEARED = ("_filt", "_slopes", "_squares", "_raw", "_held", "_history")

    # -- storage ---------------------------------------------------------------------------

    def _arrays(self, capacity: int) -> dict[str, tuple[tuple[int, ...], type]]:
        return {
            "_filt": ((capacity, k.RING), np.float64),
            "_slopes": ((capacity, k.RING), np.float64),
            "_squares": ((capacity, k.RING), np.float64),
            "_raw": ((capacity, k.RING), np.float64),
            "_held": ((capacity, k.HELD, k.H_COLUMNS), np.float64),
            "_history": ((capacity, k.HISTORY + k.RECENT), np.int64),
        }

    def _configure(self, f: np.ndarray, i: np.ndarray, fs: float) -> None:
        f[k.F_OVERDUE] = np.inf
        width = round(0.15 * fs)
        i[k.I_WIDTH] = width
        i[k.I_HALF] = max(round(0.075 * fs), 1)
        i[k.I_REFRACTORY] = max(int(REFRACTORY_S * fs), 1)
        i[k.I_T_WAVE] = int(0.36 * fs)
        i[k.I_LAG] = width - 1 - width // 2 + 2
        i[k.I_R_BACK] = round(R_BACK_S * fs)
        i[k.I_QRS_HALF] = max(int(QRS_HALF_S * fs), 1)
        i[k.I_MARGIN] = int(GAP_MARGIN_S * fs)
        i[k.I_LEARN] = int(LEARN_S * fs)
        i[k.I_RELEARN_GAP] = int(RELEARN_GAP_S * fs)
        i[k.I_LEARNING] = 1
        i[k.I_LEARN_END] = i[k.I_LEARN]
        i[k.I_PEND_POS] = i[k.I_LAST_CENTRE] = i[k.I_LAST_R] = i[k.I_GAP_START] = -1
        i[k.I_GAP_END] = -(2**40)

    # -- the stream ------------------------------------------------------------------------

    def push(self, frames: SignalFrames | Sequence[FrameTuple]) -> BeatBatch:
        """Advance each ``(device, t0, fs, samples)`` (mV, NaN = missing) and return the
        beats decided. A device's frames must come in time order (the worker's reorder
        buffer does that). Sample ``k`` of a stream is at ``origin + k / fs``, its origin on
        the ``1 / fs`` grid the worker's buffers use; a frame starting within
        :data:`~stream.signal.buffers.CLOCK_SNAP_S` of where the stream ended continues it
        (device clocks jitter), one after a gap bridges it with missing samples, one more
        than :data:`MAX_BRIDGE_S` late or at another rate starts a new stream, and samples
        the stream already holds are skipped."""
        return self._push(frames)

    def _join(self, parts: list[BeatBatch]) -> BeatBatch:
        return BeatBatch(
            rows=np.concatenate([part.rows for part in parts]),
            times=np.concatenate([part.times for part in parts]),
            samples=np.concatenate([part.samples for part in parts]),
        )

    def _advance(
        self, samples_all: np.ndarray, bounds: np.ndarray, slots_a: np.ndarray, first: int
    ) -> BeatBatch:
        """Run the kernel over the chunks of ``samples_all`` (``bounds``), one per slot in
        ``slots_a``, which are the batch's rows from ``first`` on."""
        rows, positions = k.advance(
            samples_all, bounds, slots_a, self._sos, self._zi, self._fst, self._ist,
            self._filt, self._slopes, self._squares, self._raw, self._held, self._history,
            float(SEARCH_BACK), QRS_MIN_MV,
        )  # fmt: skip
        beat_slots = slots_a[rows]
        times = self._origin[beat_slots] + positions / self._fst[beat_slots, k.F_FS]
        return BeatBatch(rows=rows + first, times=times, samples=positions)

    def recent_beats(self, device: str) -> np.ndarray:
        """Epoch times (s) of the device's recent counted beats (at most
        :data:`~stream.signal.kernels.ecg_stream.RECENT`), oldest first. Beats on both
        sides of a gap are kept: an interval spanning the gap is the reader's to leave out
        (the window features keep the longest gap-free run for rates)."""
        return self.recent_samples(device)[0]

    def recent_samples(self, device: str) -> tuple[np.ndarray, float, float]:
        """(epoch times of the recent beats, the stream's origin, its rate); the beats'
        absolute sample indices are ``(times - origin) * fs``."""
        slot = self._live(device)
        if slot is None:
            return np.zeros(0), 0.0, math.nan
        counted = int(self._ist[slot, k.I_COUNTED])
        ring = self._history[slot, k.HISTORY :]
        held = min(counted, k.RECENT)
        order = (np.arange(counted - held, counted) % k.RECENT) if held else np.zeros(0, int)
        fs = float(self._fst[slot, k.F_FS])
        origin = float(self._origin[slot])
        return origin + ring[order] / fs, origin, fs

    def window_beats(self, device: str, t_start: float, t_end: float, fs: float) -> np.ndarray:
        """The device's recent beats within ``[t_start, t_end)`` as sample indices of a
        window starting at ``t_start`` sampled at ``fs``.

        >>> stream = EcgBeatStream()
        >>> stream.window_beats("unknown", 0.0, 10.0, 250.0)
        array([], dtype=int64)
        """
        times = self.recent_beats(device)
        inside = times[(times >= t_start) & (times < t_end)]
        return np.round((inside - t_start) * fs).astype(np.int64)

    def _recent_ring(self) -> np.ndarray:
        return self._history[:, k.HISTORY :]

    def decided_until(self, device: str) -> float:
        """Epoch time up to which the device's beats are decided (the end of its samples
        less the decision delay): the fast bradycardia path's wait counts to here."""
        return super().decided_until(device)

    def in_gap(self, device: str) -> bool:
        """Whether the device's last sample was missing."""
        slot = self._live(device)
        return slot is not None and self._ist[slot, k.I_GAP_START] >= 0

    # -- moving a device -------------------------------------------------------------------

    def export(self, device: str) -> bytes | None:
        """The device's detector state as bytes (about 3 KB at 128 Hz, 5 KB at 250 Hz), or
        ``None`` if unknown: a flat float64 record (:data:`EXPORT_FORMAT`, then the
        counts, the origin, the state columns, the recent rings, the held candidates and
        the beat history), cheap to build once per frame."""
        slot = self._live(device)
        if slot is None:
            return None
        ist = self._ist[slot]
        fs = self._fst[slot, k.F_FS]
        n = int(ist[k.I_N])
        keep = min(n, k.RING, max(int(ist[k.I_WIDTH]), math.ceil(_LOOKBACK_S * fs)) + 8)
        positions = np.arange(n - keep, n) % k.RING
        held = int(ist[k.I_HELD])
        parts = (
            self._header(slot, keep, held, EXPORT_FORMAT),
            self._fst[slot],
            ist,
            self._filt[slot, positions],
            self._slopes[slot, positions],
            self._squares[slot, positions],
            self._raw[slot, positions],
            self._held[slot, :held].ravel(),
            self._history[slot],
        )
        return np.concatenate(parts, dtype=np.float64).tobytes()

    def export_many(self, devices: Sequence[str]) -> dict[str, bytes]:
        """:meth:`export` of every known device among ``devices`` (the unknown are left
        out), byte for byte, in the given order: each state array gathered for all of them
        at once and the records cut from one buffer, because per device the indexing cost
        more than the bytes (the worker exports every device it advanced, every batch)."""
        known, slots = self._live_slots(devices)
        ist = self._ist[slots]
        fs = self._fst[slots, k.F_FS]
        n = ist[:, k.I_N]
        lookback = np.maximum(ist[:, k.I_WIDTH], np.ceil(_LOOKBACK_S * fs).astype(np.int64))
        keep = np.minimum(np.minimum(n, k.RING), lookback + 8)
        held = ist[:, k.I_HELD]
        header = self._headers(slots, keep, held, EXPORT_FORMAT)
        every = np.arange(len(known))
        history = k.HISTORY + k.RECENT
        runs = [
            Run(header.ravel(), 4 * every, 0, 4, 4),
            Run(self._fst.ravel(), slots * k.F_COLUMNS, 0, k.F_COLUMNS, k.F_COLUMNS),
            Run(self._ist.ravel(), slots * k.I_COLUMNS, 0, k.I_COLUMNS, k.I_COLUMNS),
            *(Run(getattr(self, name).ravel(), slots * k.RING, n - keep, keep, k.RING)
              for name in ("_filt", "_slopes", "_squares", "_raw")),
            Run(self._held.ravel(), slots * k.HELD * k.H_COLUMNS, 0, held * k.H_COLUMNS,
                k.HELD * k.H_COLUMNS),
            Run(self._history.ravel(), slots * history, 0, history, history),
        ]  # fmt: skip
        return self._pack(known, runs)

    def restore(self, device: str, blob: bytes) -> None:
        """Continue a device from :meth:`export`'s bytes (every integer in them is below
        2**53, so exact in float64)."""
        keep, held = self._counts(blob, EXPORT_FORMAT)
        sizes = (k.F_COLUMNS, k.I_COLUMNS, keep, keep, keep, keep,
                 held * k.H_COLUMNS, k.HISTORY + k.RECENT)  # fmt: skip
        fst, ist, filt, slopes, squares, raw, held_rows, history = self._open(blob, sizes)
        slot = self._resume(device, blob, fst, ist)
        n = self._count[slot]
        positions = np.arange(n - keep, n) % k.RING
        for name, values in (("_filt", filt), ("_slopes", slopes), ("_squares", squares),
                             ("_raw", raw)):  # fmt: skip
            getattr(self, name)[slot, positions] = values
        self._held[slot, :held] = held_rows.reshape(held, k.H_COLUMNS)
        self._history[slot] = history.astype(np.int64)
        self._known.add(device)
