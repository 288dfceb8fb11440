"""The PPG pulse stream: a causal Elgendi detector per device, carried across frames.

Owns :class:`PpgPulseStream`: every device's detector state (band-pass state, the two
moving averages of the squared wave, the open block of interest, the pulse waiting out
the refractory span, a running pulse template, the recent pulses with their height and
template correlation) in arrays indexed by a slot, advanced by each frame's new samples
once, all devices of a batch in one compiled call
(:func:`stream.signal.kernels.ppg_stream.advance`). A stream cut into frames of any length
yields exactly the pulses of the whole stream, and a device's state exports to bytes and
restores elsewhere (a worker restart, a partition move) with the same pulses after it. The
slot table, the frames' clock rules and the moving of a device are
:class:`stream.signal.device_streams.DeviceStreams`'s, which it shares with the ECG beat
stream.

The detector is Elgendi et al.'s (2013, PLoS One 8:e76585), the window detector of
:func:`stream.signal.beats.elgendi` made causal: the same 0.5–8 Hz 2nd-order Butterworth
band-pass (:data:`~stream.signal.beats.PPG_BAND`) run forward only, with its state carried;
the squared positive wave's 111 ms and 667 ms moving averages, each centred on the sample
it judges, so a sample is judged once the 667 ms average around it is complete; a block of
interest (peak average above the beat average plus 2 % of the mean squared wave) at least
111 ms long holds a pulse at its highest band-passed sample; of two pulses closer than the
refractory span the larger is kept. The window's mean of the squared wave over 10 s
becomes a running mean over :data:`OFFSET_SPAN_S`. A pulse's time is its **systolic
peak**: the highest raw sample within 100 ms before the band-pass peak (the causal
band-pass peaks 10–30 ms after the raw top, measured on HeartPy's recordings; NeuroKit2's
and HeartPy's zero-phase detectors mark the raw top).

The refractory span is the window detector's 300 ms at first and then half the median of
the last 8 pulse intervals, at most :data:`REFRACTORY_MAX_S`. Run forward only, the
band-pass turns a late diastolic wave or a dicrotic rebound into a lobe of its own, 0.35–0.7 s
after the systolic peak (the zero-phase filter does not); at 300 ms those became pulses
(on HeartPy's noisy data2.csv, PPV against NeuroKit2 0.93 instead of 0.97). Two escapes
let it follow an abrupt rate step (see the kernel's SIMILAR_HEIGHT and SMALL_SHARE):
a candidate inside the span but 300 ms or more after the waiting pulse counts as a pulse of
its own when both match the template and have similar heights (a rise past the span would
otherwise lock the stream at half the rate), and a pulse under a quarter of the last
counted pulse's height within 1.5 median intervals after it is not counted (the small
bumps between slow pulses, beyond the 0.5 s cap).

Per pulse, what the PPG quality index needs, so a window need not be re-read: the pulse's
height (its band-passed top above the foot before it, in the signal's units) and its
correlation with a running template of the recent pulses (Li & Clifford 2012, Physiol.
Meas. 33:1491: clean pulses look alike, artefacts do not). The template is the band-passed
±300 ms around the band-pass peak (the window index's span), each pulse at unit energy,
averaged over the first 8 pulses and then exponentially (see
:mod:`stream.signal.kernels.ppg_stream`); a pulse is correlated with the template *before*
it joins, so unlike the window index (where each pulse is part of its own average) a lone
odd pulse does not pull its own score up. The first pulse of a stream has no template
(correlation NaN).

**Decision delay.** A sample is judged half the beat average's width (0.33 s) after it
arrives (the beat average around it must be complete); a pulse is decided once the
refractory span after its band-pass peak is judged and no block that could hold a larger
pulse within it is open: refractory span + 0.33 s after the band-pass peak, which is
10–30 ms after the systolic peak. So ≈ 0.65 s after the systolic peak at 120 bpm and above
(span 0.3 s; the first three pulses of a stream too), ≈ 0.85 s at 60 bpm and below
(span 0.5 s); :data:`DECISION_DELAY_S` (0.93 s)
bounds it with the whole 100 ms search span. A block still open at that point (a long
artefact) holds the decision until it closes: on HeartPy's recordings 99 % of pulses are
decided within 0.93 s, all within 0.96 s. A pulse in the last ~0.9 s of a frame is
therefore emitted with a later frame, and :meth:`PpgPulseStream.decided_until` says up to
where a device's pulses are final.

Gaps: a missing sample (NaN) holds the last one, so the filter decays instead of ringing;
a gap of :data:`RESET_GAP_S` or more restarts the filter at the next sample; pulses within
:data:`GAP_MARGIN_S` after a gap (or the stream's start) are not counted, nor those decided
during a gap.

Example (a pulse a second, peaking at 0.5 s, at 100 Hz, in one-second frames; the pulse
at 0.5 s is within the start margin, the one at 11.5 s is decided 0.84 s later, after the
last frame)::

    >>> fs = 100.0
    >>> ppg = np.sin(np.pi * np.arange(int(12 * fs)) / fs) ** 20
    >>> stream = PpgPulseStream()
    >>> batches = [stream.push([("dev-1", s, fs, ppg[int(s * fs) : int((s + 1) * fs)])])
    ...            for s in range(12)]
    >>> times = np.concatenate([b.times for b in batches])
    >>> np.round(times[:3], 2).tolist(), len(times)
    ([1.5, 2.5, 3.5], 10)
    >>> correlations = stream.window_correlations("dev-1", 0.0, 12.0)
    >>> bool(np.isnan(correlations[0])), bool(np.all(correlations[1:] > 0.999))
    (True, True)
    >>> np.round(np.concatenate([b.decided - b.times for b in batches]), 2).tolist()
    [0.64, 0.64, 0.64, 0.84, 0.84, 0.84, 0.84, 0.84, 0.84, 0.84]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream.signal.beats import PPG_BAND
from stream.signal.device_streams import DeviceStreams, Run
from stream.signal.kernels import ppg_stream as k
from stream.signal.signal_frames import FrameTuple, SignalFrames

# Elgendi et al. 2013 (the best of their parameter search): W1 = 111 ms (a systolic peak's
# width), W2 = 667 ms (a beat's), β = 0.02 (BEAT_OFFSET in the kernel).
PEAK_WINDOW_S = 0.111
BEAT_WINDOW_S = 0.667
# Of two pulses closer than the refractory span the larger is kept: 300 ms (200 bpm; the
# window detector's rule and NeuroKit2's `mindelay`) at first, then half the median recent
# interval (kernel: REFRACTORY_SHARE), at most 500 ms: a true pulse falls inside it only
# when an interval halves from one beat to the next (see the module doc for why it grows).
REFRACTORY_S = 0.3
REFRACTORY_MAX_S = 0.5
TEMPLATE_HALF_S = 0.3  # the template spans ±300 ms (the window quality index's span)
R_BACK_S = 0.1  # the systolic peak is sought this far before the band-pass peak
# Elgendi's offset is 2 % of the mean squared wave over the analysed signal (a 10 s window
# here): a running mean over the same span.
OFFSET_SPAN_S = 10.0
# After a gap (or the start) the beat average still sees the gap for 0.67 s and the
# band-pass settles: pulses this close after it are not counted.
GAP_MARGIN_S = 0.75
# A gap this long restarts the filter at the next sample rather than feed it a step from
# the held sample (after lost contact the baseline is rarely where it was). Either way the
# margin keeps the transient out: on data3.csv, 40 gaps each of 0.05, 0.1, 0.2, 0.4, 0.8
# and 1.5 s, each ending in a baseline step of 3 SD, gave at most one false pulse per 40 in
# the 3 s after them (held or restarted alike) and none elsewhere.
RESET_GAP_S = 0.25
# A frame later than its device's stream by more than this is a new stream; a shorter gap
# is bridged with missing samples.
MAX_BRIDGE_S = 10.0
MAX_FS = 256.0  # the ring of recent samples holds 2 s at this rate
# Systolic peak to decision (see the module doc): the longest refractory span + half the
# beat average + the band-pass peak's lag behind the systolic peak (at most R_BACK_S).
DECISION_DELAY_S = REFRACTORY_MAX_S + BEAT_WINDOW_S / 2 + R_BACK_S
# The layout of PpgPulseStream.export. 2: with the second template (format 1 never left a
# release: the pulse state went into snapshots with format 2).
EXPORT_FORMAT = 2


@dataclass(frozen=True, slots=True)
class PulseBatch:
    """The pulses one :meth:`PpgPulseStream.push` counted, in order of decision per
    device: row of the pushed batch, epoch time (s) of the systolic peak, the device's
    absolute sample index, height (band-passed, the signal's units), correlation with the
    template (NaN for a stream's first pulse) and epoch time when it was decided."""

    rows: np.ndarray
    times: np.ndarray
    samples: np.ndarray
    amplitudes: np.ndarray
    correlations: np.ndarray
    decided: np.ndarray


_FIELDS = ("rows", "times", "samples", "amplitudes", "correlations", "decided")


class PpgPulseStream(DeviceStreams):
    """Causal pulse detection for a fleet of devices (see the module doc)."""

    # The window band-pass's design (stream.signal.filters.bandpass), run forward only.
    KIND, KERNEL, BAND = "PPG", k, PPG_BAND
    MAX_FS, MAX_BRIDGE_S, DECISION_DELAY_S = MAX_FS, MAX_BRIDGE_S, DECISION_DELAY_S
    _CLEARED = ("_rings", "_template", "_recent", "_features")

    # -- storage ---------------------------------------------------------------------------

    def _arrays(self, capacity: int) -> dict[str, tuple[tuple[int, ...], type]]:
        return {
            "_rings": ((capacity, k.RINGS, k.RING), np.float64),
            "_template": ((capacity, k.TEMPLATES), np.float64),
            "_recent": ((capacity, k.RECENT), np.int64),
            "_features": ((capacity, k.RECENT, k.P_COLUMNS), np.float64),
        }

    def _configure(self, f: np.ndarray, i: np.ndarray, fs: float) -> None:
        f[k.F_OFFSET_W] = 1.0 / max(OFFSET_SPAN_S * fs, 1.0)
        beat = max(round(BEAT_WINDOW_S * fs), 1)
        i[k.I_W_PEAK] = max(round(PEAK_WINDOW_S * fs), 1)
        i[k.I_W_BEAT] = beat
        i[k.I_H_PEAK] = i[k.I_W_PEAK] // 2
        i[k.I_LAG] = beat - beat // 2 - 1
        i[k.I_DIST] = i[k.I_REFRACTORY] = max(int(REFRACTORY_S * fs), 1)
        i[k.I_DIST_MAX] = max(int(REFRACTORY_MAX_S * fs), 1)
        i[k.I_HALF] = int(TEMPLATE_HALF_S * fs)
        i[k.I_R_BACK] = round(R_BACK_S * fs)
        i[k.I_MARGIN] = int(GAP_MARGIN_S * fs)
        i[k.I_RESET_GAP] = max(int(RESET_GAP_S * fs), 1)
        i[k.I_B_START] = i[k.I_B_ARG] = i[k.I_P_POS] = i[k.I_GAP_START] = -1

    # -- the stream ------------------------------------------------------------------------

    def push(self, frames: SignalFrames | Sequence[FrameTuple]) -> PulseBatch:
        """Advance each ``(device, t0, fs, samples)`` (NaN = missing) and return the pulses
        decided. A device's frames must come in time order (the worker's reorder buffer
        does that). Sample ``k`` of a stream is at ``origin + k / fs``, its origin on the
        ``1 / fs`` grid the worker's buffers use; a frame starting within
        :data:`~stream.signal.buffers.CLOCK_SNAP_S` of where the stream ended continues it
        (device clocks jitter), one after a gap bridges it with missing samples, one more
        than :data:`MAX_BRIDGE_S` late or at another rate starts a new stream, and samples
        the stream already holds are skipped."""
        return self._push(frames)

    def _advance(
        self, samples_all: np.ndarray, bounds: np.ndarray, slots_a: np.ndarray, first: int
    ) -> PulseBatch:
        """Run the kernel over the chunks of ``samples_all`` (``bounds``), one per slot in
        ``slots_a``, which are the batch's rows from ``first`` on."""
        rows, positions, amplitudes, correlations, decided = k.advance(
            samples_all, bounds, slots_a, self._sos, self._zi, self._fst, self._ist,
            self._rings, self._template, self._recent, self._features,
        )  # fmt: skip
        pulse_slots = slots_a[rows]
        origin, rate = self._origin[pulse_slots], self._fst[pulse_slots, k.F_FS]
        return PulseBatch(
            rows=rows + first,
            times=origin + positions / rate,
            samples=positions,
            amplitudes=amplitudes,
            correlations=correlations,
            decided=origin + (decided + 1) / rate,
        )

    def _join(self, parts: list[PulseBatch]) -> PulseBatch:
        return PulseBatch(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in _FIELDS)
        )

    def recent_pulses(self, device: str) -> np.ndarray:
        """Epoch times (s) of the device's recent counted pulses (at most
        :data:`~stream.signal.kernels.ppg_stream.RECENT`), oldest first. Pulses on both
        sides of a gap are kept: an interval spanning the gap is the reader's to leave out."""
        return self.recent_samples(device)[0]

    def recent_samples(self, device: str) -> tuple[np.ndarray, float, float]:
        """(epoch times of the recent pulses, the stream's origin, its rate); the pulses'
        absolute sample indices are ``(times - origin) * fs``."""
        times, _, _ = self.recent_features(device)
        slot = self._live(device)
        if slot is None:
            return times, 0.0, math.nan
        return times, float(self._origin[slot]), float(self._fst[slot, k.F_FS])

    def recent_features(self, device: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(epoch times, heights, template correlations) of the device's recent pulses,
        oldest first."""
        slot = self._live(device)
        if slot is None:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        counted = int(self._ist[slot, k.I_COUNTED])
        held = min(counted, k.RECENT)
        order = np.arange(counted - held, counted) % k.RECENT
        times = self._origin[slot] + self._recent[slot, order] / self._fst[slot, k.F_FS]
        features = self._features[slot, order]
        return times, features[:, k.P_AMP], features[:, k.P_CORR]

    def _window(self, device: str, t_start: float, t_end: float) -> np.ndarray:
        times, amplitudes, correlations = self.recent_features(device)
        inside = (times >= t_start) & (times < t_end)
        return np.stack((times[inside], amplitudes[inside], correlations[inside]))

    def window_pulses(self, device: str, t_start: float, t_end: float, fs: float) -> np.ndarray:
        """The device's recent pulses within ``[t_start, t_end)`` as sample indices of a
        window starting at ``t_start`` sampled at ``fs``.

        >>> PpgPulseStream().window_pulses("unknown", 0.0, 10.0, 100.0)
        array([], dtype=int64)
        """
        times = self._window(device, t_start, t_end)[0]
        return np.round((times - t_start) * fs).astype(np.int64)

    def window_correlations(self, device: str, t_start: float, t_end: float) -> np.ndarray:
        """Template correlations of the device's pulses within ``[t_start, t_end)`` (the
        window's PPG quality reads their mean where the window index computed
        :func:`stream.signal.kernels.stats.template_correlation`)."""
        return self._window(device, t_start, t_end)[2]

    def window_amplitudes(self, device: str, t_start: float, t_end: float) -> np.ndarray:
        """Heights of the device's pulses within ``[t_start, t_end)``."""
        return self._window(device, t_start, t_end)[1]

    def _recent_ring(self) -> np.ndarray:
        return self._recent

    def correlations_at(self, slots: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Template correlations of the pulses :meth:`window_times` read (per pulse: its
        window's slot and its ring column)."""
        return self._features[slots, columns, k.P_CORR]

    def decided_until(self, device: str) -> float:
        """Epoch time up to which the device's pulses are decided (the end of its samples
        less :data:`DECISION_DELAY_S`): a wait since the last pulse counts to here."""
        return super().decided_until(device)

    def in_gap(self, device: str) -> bool:
        """Whether the device's last sample was missing."""
        slot = self._live(device)
        return slot is not None and self._ist[slot, k.I_GAP_START] >= 0

    # -- moving a device -------------------------------------------------------------------

    def _keep(self, slot: int) -> int:
        """Samples of the rings a restored detector reads: the beat average's span, the
        peak average's trailing edge, and the template span around every sample that may
        still become a pulse (the waiting pulse, the open block, the samples not judged)."""
        ist = self._ist[slot]
        n = int(ist[k.I_N])
        lag, half = int(ist[k.I_LAG]), int(ist[k.I_HALF])
        oldest = n - lag
        for position in (int(ist[k.I_P_POS]), int(ist[k.I_B_START])):
            if position >= 0:
                oldest = min(oldest, position)
        needed = max(
            int(ist[k.I_W_BEAT]) + 1,
            lag + int(ist[k.I_H_PEAK]) + 2,
            n - oldest + half + int(ist[k.I_R_BACK]) + 1,
        )
        return min(n, k.RING, needed)

    def export(self, device: str) -> bytes | None:
        """The device's detector state as bytes (about 5 KB at 100 Hz), or ``None`` if
        unknown: a flat float64 record (:data:`EXPORT_FORMAT`, then the counts, the origin,
        the state columns, the recent rings, the two templates and the recent pulses)."""
        slot = self._live(device)
        if slot is None:
            return None
        ist = self._ist[slot]
        n = int(ist[k.I_N])
        keep = self._keep(slot)
        positions = np.arange(n - keep, n) % k.RING
        width = 2 * int(ist[k.I_HALF]) + 1
        parts = (
            self._header(slot, keep, width, EXPORT_FORMAT),
            self._fst[slot],
            ist,
            self._rings[slot][:, positions].ravel(),
            self._template[slot, :width],
            self._template[slot, k.TEMPLATE : k.TEMPLATE + width],
            self._recent[slot],
            self._features[slot].ravel(),
        )
        return np.concatenate(parts, dtype=np.float64).tobytes()

    def export_many(self, devices: Sequence[str]) -> dict[str, bytes]:
        """:meth:`export` of every known device among ``devices`` (the unknown are left
        out), byte for byte, in the given order: each state array gathered for all of them
        at once and the records cut from one buffer, because per device the indexing cost
        more than the bytes (the worker exports every device it advanced, every batch)."""
        known, slots = self._live_slots(devices)
        ist = self._ist[slots]
        n, lag, half = ist[:, k.I_N], ist[:, k.I_LAG], ist[:, k.I_HALF]
        oldest = n - lag
        for column in (k.I_P_POS, k.I_B_START):
            position = ist[:, column]
            oldest = np.where(position >= 0, np.minimum(oldest, position), oldest)
        needed = np.maximum(
            np.maximum(ist[:, k.I_W_BEAT] + 1, lag + ist[:, k.I_H_PEAK] + 2),
            n - oldest + half + ist[:, k.I_R_BACK] + 1,
        )
        keep = np.minimum(np.minimum(n, k.RING), needed)  # _keep's, for every slot
        width = 2 * half + 1
        header = self._headers(slots, keep, width, EXPORT_FORMAT)
        every = np.arange(len(known))
        rings, templates = k.RINGS * k.RING, k.TEMPLATES
        features = k.RECENT * k.P_COLUMNS
        runs = [
            Run(header.ravel(), 4 * every, 0, 4, 4),
            Run(self._fst.ravel(), slots * k.F_COLUMNS, 0, k.F_COLUMNS, k.F_COLUMNS),
            Run(self._ist.ravel(), slots * k.I_COLUMNS, 0, k.I_COLUMNS, k.I_COLUMNS),
            *(Run(self._rings.ravel(), slots * rings + r * k.RING, n - keep, keep, k.RING)
              for r in range(k.RINGS)),
            Run(self._template.ravel(), slots * templates, 0, width, templates),
            Run(self._template.ravel(), slots * templates + k.TEMPLATE, 0, width, templates),
            Run(self._recent.ravel(), slots * k.RECENT, 0, k.RECENT, k.RECENT),
            Run(self._features.ravel(), slots * features, 0, features, features),
        ]  # fmt: skip
        return self._pack(known, runs)

    def restore(self, device: str, blob: bytes) -> None:
        """Continue a device from :meth:`export`'s bytes (every integer in them is below
        2**53, so exact in float64)."""
        keep, width = self._counts(blob, EXPORT_FORMAT)
        sizes = (k.F_COLUMNS, k.I_COLUMNS, k.RINGS * keep, width, width, k.RECENT,
                 k.RECENT * k.P_COLUMNS)  # fmt: skip
        fst, ist, rings, template, other, recent, features = self._open(blob, sizes)
        slot = self._resume(device, blob, fst, ist)
        n = self._count[slot]
        positions = np.arange(n - keep, n) % k.RING
        self._rings[slot][:, positions] = rings.reshape(k.RINGS, keep)
        self._template[slot, :width] = template
        self._template[slot, k.TEMPLATE : k.TEMPLATE + width] = other
        self._recent[slot] = recent.astype(np.int64)
        self._features[slot] = features.reshape(k.RECENT, k.P_COLUMNS)
        self._known.add(device)
