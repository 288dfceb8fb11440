"""The window features read from each device's carried signal state, not from its samples.

Owns :class:`SignalState`: every device's ECG beat stream
(:class:`~stream.signal.beat_stream.EcgBeatStream`), PPG pulse stream
(:class:`~stream.signal.pulse_stream.PpgPulseStream`) and per-frame statistics
(:class:`~stream.signal.frame_stats.FrameStats`), all advanced once per frame (one compiled
call per signal for a batch's devices), and :meth:`SignalState.analyze`, which gives due
windows the features of :data:`~stream.signal.window.FEATURE_NAMES` from that state:

- rates and RR features from the decided beats and pulses, all windows in one
  :func:`~stream.signal.kernels.rhythm_batch.rhythm_batch` call;
- the quality indices of :mod:`stream.signal.quality` (same thresholds and combination)
  from the frames' statistics: kSQI from the QRS band's moments, pSQI and basSQI from the
  causal band energies, bSQI from the beat stream against the streaming second detector,
  the PPG template correlation from each pulse's correlation with the running template;
- activity from the accelerometer frames' sums (exactly as the window function).

What reads differently from the window analysis (:mod:`stream.signal.features`, which
``vitalstream analyze`` of a single window and the tests of the window functions keep):
filters are causal (one pass, state carried) instead of zero-phase; band powers are band
energies; the PPG template is a running one; pinned samples are counted per frame. The
windows' vitals, their trends and, for devices that send no respiration rate, the
ECG-derived respiration still come from the window (:class:`SignalWindow`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat

import numpy as np

from stream.records import VITALS
from stream.signal.activity import MOTION_ACTIVITY_G, STILL_SPAN_S, STILL_STD_G
from stream.signal.beat_stream import DECISION_DELAY_S, EcgBeatStream
from stream.signal.beats import ECG_BAND, ECG_FLAT_MV
from stream.signal.features import _LOST_TAIL_MIN_S, GAP_MARGIN_S, JOLT_G
from stream.signal.filters import bandpass, fill_missing
from stream.signal.fleet_buffers import WindowReads
from stream.signal.frame_stats import FrameStats
from stream.signal.kernels import frame_stats as fk
from stream.signal.kernels import rhythm_batch as rk
from stream.signal.kernels import window_reads
from stream.signal.pulse_stream import DECISION_DELAY_S as PULSE_DECISION_DELAY_S
from stream.signal.pulse_stream import GAP_MARGIN_S as PULSE_GAP_MARGIN_S
from stream.signal.pulse_stream import PpgPulseStream
from stream.signal.quality import (
    CONTACT_LOSS_S,
    PINNED_FRACTION,
    PPG_DROPOUT,
    SATURATED_FRACTION,
    SIGNAL_LOST_S,
)
from stream.signal.respiration import edr_rate
from stream.signal.rhythm import RR_KEYS, in_longest_run
from stream.signal.signal_frames import FrameTuple, SignalFrames
from stream.signal.trends import trend_slope, trend_slopes
from stream.signal.window import FEATURE_NAMES, NAN, SignalWindow, WindowAnalysis

# bSQI's tolerance: two detectors' marks of one beat within 150 ms (Li, Mark & Clifford
# 2008), as stream.signal.quality.ecg_quality_from.
AGREEMENT_S = 0.15
POSTURE_EDGE_S = 2.0  # activity_features' first and last 2 s


def _unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


class SignalState:
    """Every device's carried signal state; :meth:`push` each round of frames, then
    :meth:`analyze` the windows they made due."""

    def __init__(self) -> None:
        self.beats = EcgBeatStream()
        self.pulses = PpgPulseStream()
        self.frames = FrameStats()

    def push(
        self,
        ecg: SignalFrames | Sequence[FrameTuple],
        ppg: SignalFrames | Sequence[FrameTuple],
        acc: SignalFrames | Sequence[FrameTuple],
    ) -> None:
        """One round of frames, ``(device, t0, fs, samples)`` per signal, each device at
        most once per signal (a batch's k-th frames of its devices)."""
        if len(ecg):
            ecg = SignalFrames.of(ecg)
            self.beats.push(ecg)
        if len(ppg):
            ppg = SignalFrames.of(ppg)
            self.pulses.push(ppg)
        self.push_statistics(ecg, ppg, acc)

    def push_statistics(
        self,
        ecg: SignalFrames | Sequence[FrameTuple],
        ppg: SignalFrames | Sequence[FrameTuple],
        acc: SignalFrames | Sequence[FrameTuple],
    ) -> None:
        """The per-frame statistics the windows read, which are not durable; alone (not
        through :meth:`push`) for frames a restored device's beat and pulse detectors
        already hold (their snapshot's), when its rings are refilled."""
        if len(ecg):
            self.frames.push_ecg(SignalFrames.of(ecg))
        if len(ppg):
            self.frames.push_ppg(SignalFrames.of(ppg))
        if len(acc):
            self.frames.push_acc(acc)

    def forget(self, device: str) -> None:
        self.beats.forget(device)
        self.pulses.forget(device)
        self.frames.forget(device)

    def analyze(
        self, due: Sequence[tuple[str, SignalWindow]], reads: WindowReads | None = None
    ) -> list[WindowAnalysis]:
        """The features of each ``(device, window)`` (windows ending at the device's
        newest frame, as the worker cuts them), from the state: columns of all windows at
        once, per-window Python only where a window has a gap or needs the ECG-derived
        respiration. ``reads``: the arrays the windows are views of, when the caller read
        them so (:meth:`FleetBuffers.read <stream.signal.fleet_buffers.FleetBuffers.read>`),
        which spares gathering them again."""
        n = len(due)
        if not n:
            return []
        devices = [device for device, _ in due]
        windows = [window for _, window in due]
        t_start = np.array([w.t_start for w in windows])
        t_end = np.array([w.t_end for w in windows])
        table = _Table(n)
        grids = reads.grids if reads is not None else {}
        ecg = self._ecg(devices, windows, t_start, t_end, table, grids.get("ecg"))
        pulses = self._ppg(devices, windows, t_start, t_end, table, grids.get("ppg"))
        acc_stats = self.frames.acc_windows(devices, t_start, t_end, STILL_SPAN_S, POSTURE_EDGE_S)
        _activity(acc_stats, table)
        (ecg_at, ecg_lengths, ecg_owners), (ppg_at, ppg_lengths, ppg_owners) = (
            ecg.packed(),
            pulses.packed(),
        )
        if len(ecg_owners) or len(ppg_owners):
            offsets = np.zeros(len(ecg_owners) + len(ppg_owners) + 1, dtype=np.int64)
            np.cumsum(np.concatenate((ecg_lengths, ppg_lengths)), out=offsets[1:])
            rows = rk.rhythm_batch(
                np.concatenate((ecg_at, ppg_at)).astype(np.float64), offsets,
                np.concatenate((ecg.fs[ecg_owners], pulses.fs[ppg_owners])),
                np.concatenate((ecg.ends[ecg_owners], pulses.ends[ppg_owners])),
            )  # fmt: skip
            _rates(rows[: len(ecg_owners)], ecg_owners, _ECG_RATES, table)
            _rates(rows[len(ecg_owners) :], ppg_owners, _PPG_RATES, table)
        motion = table.motion_feature()
        if motion is not None:
            table.values[:, _F["motion"]] = motion
        for i, rate in ecg.edr.items():
            table.values[i, _F["resp_rate"]] = rate
        _vitals_columns(windows, table.values, None if reads is None else reads.histories)
        features = table.values.tolist()
        r_peaks = ecg.all_peaks()
        beats_s = ecg.all_seconds(t_start)
        pulses_s = pulses.all_seconds(t_start)
        # map and zip: the per-window loop in C (a dict and a tuple per window, every second).
        dicts = map(dict, map(zip, repeat(FEATURE_NAMES), features))
        analyses = list(map(WindowAnalysis, dicts, beats_s, pulses_s, r_peaks))
        return analyses

    # -- ECG --------------------------------------------------------------------------------

    def _ecg(
        self,
        devices: list[str],
        windows: list[SignalWindow],
        t_start: np.ndarray,
        t_end: np.ndarray,
        table: _Table,
        grid: np.ndarray | None,
    ) -> _Counted:
        n = len(windows)
        st = self.frames.ecg_windows(devices, t_start, t_end)
        present, fs, samples, valid = _signal(
            windows, "ecg", st[:, fk.W_SAMPLES], st[:, fk.W_PRESENT], grid
        )
        span = st[:, fk.W_SPAN]
        with np.errstate(invalid="ignore"):
            usable = present & (valid >= 0.2) & (samples >= fs) & (span >= ECG_FLAT_MV)
            silent = present & ((valid == 0.0) | (samples < fs))
            live = present & ~silent
            pinned = st[:, fk.W_PINNED]
            flat = span < ECG_FLAT_MV
            saturated = ~flat & (pinned > SATURATED_FRACTION)
            tail_flat = st[:, fk.W_TAIL_FLAT]
            lost = tail_flat >= SIGNAL_LOST_S * fs
            lead_off = flat | (pinned > PINNED_FRACTION) | lost
        col = table.values
        col[silent, _F["ecg_sqi"]] = 0.0
        col[silent, _F["ecg_saturated"]] = 0.0
        table.motion(silent, 0.0)
        col[live, _F["ecg_flat"]] = flat[live]
        col[live, _F["ecg_saturated"]] = saturated[live]
        col[live, _F["ecg_lead_off"]] = lead_off[live]
        off = live & lead_off
        col[off, _F["ecg_sqi"]] = 0.0
        table.motion(off, 0.0)
        judged = live & ~lead_off
        slots = self.beats.live_slots(devices)
        times, _, offsets = self.beats.window_times(np.where(usable, slots, -1), t_start, t_end)
        counts = np.diff(offsets)
        peaks = np.rint((times - np.repeat(t_start, counts)) * np.repeat(fs, counts))
        peaks = peaks.astype(np.int64)
        if judged.any():
            # bSQI where both detectors have decided (Python min: a nan bound is skipped).
            second, second_offsets, decided = self.frames.second_detector_windows(
                devices, t_start, t_end
            )
            ends = t_end.copy()
            for bound in (decided, self.beats.decided_until_many(slots)):
                with np.errstate(invalid="ignore"):
                    ends = np.where(bound < ends, bound, ends)
            all_times, _, all_offsets = self.beats.window_times(slots, t_start, t_end)
            b_sqi = window_reads.agreement_batch(
                all_times, all_offsets, second, second_offsets, ends, AGREEMENT_S
            )
            k_sqi, p_sqi, bas_sqi = st[:, fk.W_KURTOSIS], st[:, fk.W_P_SQI], st[:, fk.W_BAS_SQI]
            score = _python_min(
                b_sqi, _unit((k_sqi - 3.0) / 2.0), _unit((p_sqi - 0.3) / 0.2), _unit(bas_sqi / 0.2)
            )
            col[judged, _F["ecg_sqi"]] = _unit(valid * score)[judged]
            with np.errstate(invalid="ignore"):
                contact_lost = (valid == 1.0) & (st[:, fk.W_LONGEST_FLAT] >= CONTACT_LOSS_S * fs)
                artefact = (k_sqi < 4.0) | (b_sqi < 0.7) | (bas_sqi < 0.1) | contact_lost
            table.motion(judged, artefact.astype(float))
        # The wait since the last beat counts to where the beats are decided and the signal
        # is still there (not over a lost tail, nor with gaps).
        with np.errstate(invalid="ignore"):
            tail = np.where(tail_flat >= _LOST_TAIL_MIN_S * fs, tail_flat, 0.0)
        ends_at = np.where(
            valid == 1.0, samples - np.maximum(tail, np.rint(DECISION_DELAY_S * fs)) - 1.0, NAN
        )
        counted = _Counted(n, peaks, offsets, fs, ends_at, present)
        for i in np.flatnonzero(judged & (valid < 1.0)).tolist():
            window = windows[i]
            if window.ecg is not None:
                kept = counted.peaks_of(i)
                margin = int(GAP_MARGIN_S * fs[i])
                counted.count(i, kept[in_longest_run(np.isfinite(window.ecg), kept, margin)])
        counted.count_all(judged)  # the others count every beat
        # The ECG-derived respiration, for windows whose device sends no rate.
        resp_sent = np.array([math.isfinite(w.resp) for w in windows])
        for i in np.flatnonzero(judged & ~resp_sent).tolist():
            kept = counted.kept(i)
            if len(kept) >= 6 and (kept[-1] - kept[0]) / fs[i] >= 6.0:
                raw, _ = fill_missing(windows[i].ecg)
                filtered = bandpass(raw, fs[i], *ECG_BAND)
                counted.edr[i] = edr_rate(filtered[kept], kept / fs[i])
        return counted

    # -- PPG --------------------------------------------------------------------------------

    def _ppg(
        self,
        devices: list[str],
        windows: list[SignalWindow],
        t_start: np.ndarray,
        t_end: np.ndarray,
        table: _Table,
        grid: np.ndarray | None,
    ) -> _Counted:
        n = len(windows)
        st = self.frames.ppg_windows(devices, t_start, t_end, SIGNAL_LOST_S)
        present, fs, samples, valid = _signal(
            windows, "ppg", st[:, fk.G_SAMPLES], st[:, fk.G_PRESENT], grid
        )
        span = st[:, fk.G_SPAN]
        with np.errstate(invalid="ignore"):
            silent = present & ((valid == 0.0) | (samples < fs))
            live = present & ~silent
            usable = live & (valid >= 0.2) & (span > 0)
            pinned = st[:, fk.G_PINNED]
            flat = (span == 0) | (st[:, fk.G_REPEATED] > 0.9)
            saturated = ~flat & (pinned > SATURATED_FRACTION)
            tail = np.maximum(np.trunc(SIGNAL_LOST_S * fs), 2.0)
            lost = (samples > 2 * tail) & (st[:, fk.G_TAIL_STD] < PPG_DROPOUT * st[:, fk.G_STD])
            lead_off = flat | (pinned > PINNED_FRACTION) | lost
        col = table.values
        col[silent, _F["ppg_sqi"]] = 0.0
        table.motion(silent, 0.0)
        slots = self.pulses.live_slots(devices)
        times, columns, offsets = self.pulses.window_times(
            np.where(usable, slots, -1), t_start, t_end
        )
        counts = np.diff(offsets)
        pulses = np.rint((times - np.repeat(t_start, counts)) * np.repeat(fs, counts))
        pulses = pulses.astype(np.int64)
        few = live & (lead_off | (counts < 3))
        col[few, _F["ppg_sqi"]] = 0.0
        table.motion(few, (~lead_off).astype(float))
        good = live & ~few
        if good.any():
            correlations = self.pulses.correlations_at(np.repeat(slots, counts), columns)
            correlation = window_reads.finite_means(correlations, offsets)
            band_share = st[:, fk.G_BAND_SHARE]
            score = 0.7 * _unit((correlation - 0.65) / 0.25) + 0.3 * _unit((band_share - 0.3) / 0.5)
            sqi = _unit(valid * score * np.where(saturated, 0.5, 1.0))
            col[good, _F["ppg_sqi"]] = sqi[good]
            table.motion(good, (correlation < 0.8).astype(float))
        # As for the ECG: the wait counts to where pulses are decided.
        lost_tail = np.where(lost, tail, 0.0)
        ends_at = np.where(
            valid == 1.0,
            samples - np.maximum(lost_tail, np.rint(PULSE_DECISION_DELAY_S * fs)) - 1.0,
            NAN,
        )
        counted = _Counted(n, pulses, offsets, fs, ends_at, present)
        counting = live & ~lead_off
        for i in np.flatnonzero(counting & (valid < 1.0)).tolist():
            window = windows[i]
            if window.ppg is not None:
                kept = counted.peaks_of(i)
                margin = int(PULSE_GAP_MARGIN_S * fs[i])
                counted.count(i, kept[in_longest_run(np.isfinite(window.ppg), kept, margin)])
        counted.count_all(counting)
        return counted


# Feature columns by name, and the rate columns each kind of sequence fills.
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}
_ECG_RATES = (
    ("ecg_hr_bpm", rk.HEART_RATE),
    ("ecg_hr_recent_bpm", rk.RECENT_HEART_RATE),
    *((key, rk.RR_COLUMNS[key]) for key in RR_KEYS),
)
_PPG_RATES = (
    ("ppg_hr_bpm", rk.HEART_RATE),
    ("ppg_hr_recent_bpm", rk.RECENT_HEART_RATE),
    ("ppg_run_rate_bpm", rk.PULSE_RUN_RATE),
)


class _Table:
    """The batch's feature columns (nan until set) and each window's motion votes."""

    def __init__(self, n: int) -> None:
        self.values = np.full((n, len(FEATURE_NAMES)), NAN)
        self._motion = np.full(n, NAN)  # the largest vote so far; nan: none

    def motion(self, rows: np.ndarray, votes: np.ndarray | float) -> None:
        """Votes (0/1) of the ``rows`` (a mask) for motion; a window's feature is their
        largest."""
        if not rows.any():
            return
        vote = votes[rows] if isinstance(votes, np.ndarray) else votes
        self._motion[rows] = np.fmax(self._motion[rows], vote)

    def motion_feature(self) -> np.ndarray | None:
        return self._motion if np.isfinite(self._motion).any() else None


class _Counted:
    """A batch's detected beats (or pulses) per window, packed: ``all_peaks`` (window
    sample indices, before gaps are taken into account), which windows count them for
    rates (every one of a window's, or those :meth:`count` kept) and the last sample each
    window's wait counts to (``ends``)."""

    def __init__(
        self,
        n: int,
        peaks: np.ndarray,
        offsets: np.ndarray,
        fs: np.ndarray,
        ends: np.ndarray,
        present: np.ndarray,
    ) -> None:
        self._peaks = peaks
        self._offsets = offsets
        self._counts = np.diff(offsets)
        self.fs = fs
        self.ends = ends
        self._present = present
        self._counting = np.zeros(n, dtype=bool)
        self._kept: dict[int, np.ndarray] = {}  # windows that count some of their peaks
        self.edr: dict[int, float] = {}  # ECG-derived respiration of windows that read one

    def all_peaks(self) -> list[np.ndarray | None]:
        """Each window's peaks (a view), None for a window without the waveform."""
        peaks, bounds = self._peaks, self._offsets.tolist()
        return [
            peaks[bounds[i] : bounds[i + 1]] if here else None
            for i, here in enumerate(self._present.tolist())
        ]

    def peaks_of(self, i: int) -> np.ndarray:
        return self._peaks[self._offsets[i] : self._offsets[i + 1]]

    def count(self, i: int, kept: np.ndarray) -> None:
        """Window ``i`` counts ``kept`` (some of its peaks)."""
        self._counting[i] = True
        self._kept[int(i)] = kept

    def count_all(self, windows: np.ndarray) -> None:
        """The ``windows`` (a mask) not counting yet count every peak they have."""
        self._counting |= windows

    def kept(self, i: int) -> np.ndarray:
        """What window ``i`` counts (if it counts)."""
        kept = self._kept.get(i)
        return self.peaks_of(i) if kept is None else kept

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counted positions, packed; how many each window has; the windows), for the
        windows that count, in window order."""
        owners = np.flatnonzero(self._counting)
        if not self._kept:  # every counting window counts all its peaks: one selection
            lengths = self._counts[owners]
            return self._peaks[np.repeat(self._counting, self._counts)], lengths, owners
        kept = [self.kept(i) for i in owners.tolist()]
        lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
        return np.concatenate(kept) if kept else np.zeros(0, np.int64), lengths, owners

    def seconds(self, i: int, t_start: float) -> np.ndarray:
        """Window ``i``'s counted beats (or pulses) in epoch seconds (:meth:`all_seconds`
        of one window)."""
        if not self._counting[i]:
            return np.zeros(0)
        return t_start + self.kept(i) / self.fs[i]

    def all_seconds(self, t_start: np.ndarray) -> list[np.ndarray]:
        """:meth:`seconds` of every window (``t_start`` of each), the same values from one
        array: views of it, an empty array for a window that counts none."""
        found = [_NO_SECONDS] * len(t_start)
        positions, lengths, owners = self.packed()
        if not len(owners):
            return found
        # The same two operations per element as seconds(): kept / fs, then t_start + that.
        ratio = positions / np.repeat(self.fs[owners], lengths)
        flat = np.repeat(t_start[owners], lengths) + ratio
        ends = np.cumsum(lengths).tolist()
        start = 0
        for owner, end in zip(owners.tolist(), ends, strict=True):
            found[owner] = flat[start:end]
            start = end
        return found


# The beat times of a window without counted beats (empty: every such window shares it).
_NO_SECONDS = np.zeros(0)


def _signal(
    windows: list[SignalWindow],
    name: str,
    arrived: np.ndarray,
    present_share: np.ndarray,
    grid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whether each window has the waveform ``name``, its rate, and :func:`_coverages`
    (from ``grid``, the windows' arrays as rows of one, when given)."""
    present = np.array([(x := getattr(w, name)) is not None and len(x) > 0 for w in windows])
    fs = np.array([getattr(w, f"{name}_fs") for w in windows])
    return (present, fs, *_coverages(arrived, present_share, windows, name, grid))


def _coverages(
    arrived: np.ndarray,
    present_share: np.ndarray,
    windows: list[SignalWindow],
    name: str,
    grid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(samples each window spans, share of them present). A frame that never arrived
    leaves no statistics, nor does a clock gap of a few samples between two frames (which
    the beat and pulse streams bridge, not counting the beats beside it), so the share is
    that of the window's own array (the buffers NaN-fill what is missing), not of the
    frames that came. ``grid``: every window's array as its rows (one count for all)."""
    known = np.isfinite(arrived) & np.isfinite(present_share)
    samples = np.where(known, arrived, 0.0)
    valid = np.where(known, present_share, 0.0)
    if grid is not None and grid.shape[1] > 0:
        finite = np.count_nonzero(np.isfinite(grid), axis=1)
        samples[known] = grid.shape[1]
        valid[known] = (finite / grid.shape[1])[known]
        return samples, valid
    for i in np.flatnonzero(known):
        values = getattr(windows[i], name)
        if values is not None and len(values) > 0:
            samples[i] = len(values)
            valid[i] = np.count_nonzero(np.isfinite(values)) / len(values)
    return samples, valid


def _unit(value: np.ndarray) -> np.ndarray:
    """Clipped to [0, 1] (nan stays nan)."""
    return np.minimum(np.maximum(value, 0.0), 1.0)


def _python_min(first: np.ndarray, *others: np.ndarray) -> np.ndarray:
    """Python's ``min`` of each row: a later nan never wins, a leading nan stays."""
    out = first.copy()
    with np.errstate(invalid="ignore"):
        for other in others:
            out = np.where(other < out, other, out)
    return out


def _rates(
    rows: np.ndarray, owners: np.ndarray, columns: tuple[tuple[str, int], ...], table: _Table
) -> None:
    for name, column in columns:
        table.values[owners, _F[name]] = rows[:, column]


def _activity(st: np.ndarray, table: _Table) -> None:
    spread, impact, trailing, cosine = st.T
    moved = np.isfinite(spread)
    if not moved.any():
        return
    col = table.values
    col[moved, _F["activity_g"]] = spread[moved]
    col[moved, _F["impact_g"]] = impact[moved]
    with np.errstate(invalid="ignore"):
        col[moved, _F["still"]] = trailing[moved] < STILL_STD_G
        jolted = np.isfinite(impact) & (impact >= JOLT_G)
        votes = ((spread > MOTION_ACTIVITY_G) | jolted).astype(float)
    for i in np.flatnonzero(moved):
        # math, not numpy: the same acos as the window function, to the last bit.
        col[i, _F["posture_change_deg"]] = math.degrees(
            math.acos(min(max(float(cosine[i]), -1.0), 1.0))
        )
    table.motion(moved, votes)


def _vitals(window: SignalWindow, f: dict[str, float]) -> None:
    """One window's vitals and their trends into its features (:func:`_vitals_columns`
    of one window; the reference it is tested against)."""
    if math.isfinite(window.resp):
        f["resp_rate"] = float(window.resp)
    f["spo2"] = float(window.spo2)
    f["temp"] = float(window.temp)
    f["hr_device"] = float(window.hr)
    f["battery"] = float(window.battery)
    f["spo2_slope"] = trend_slope(window.trends.get("spo2"), window.trend_fs)
    f["temp_slope"] = trend_slope(window.trends.get("temp"), window.trend_fs)


# The device-reported vitals: feature column and the SignalWindow attribute it copies.
_VITAL_COLUMNS = (("spo2", "spo2"), ("temp", "temp"), ("hr_device", "hr"), ("battery", "battery"))


def _vitals_columns(
    windows: Sequence[SignalWindow], values: np.ndarray, histories: np.ndarray | None = None
) -> None:
    """:func:`_vitals` of every window, into the feature columns ``values`` (a row per
    window): the device's respiration rate where it sent one (else the column stands),
    its latest vitals, and their trends' slopes (from ``histories``, ``(vital, window,
    sample)`` as :class:`~stream.signal.fleet_buffers.WindowReads` holds them, when
    given: a trend a window lacks is all NaN there, which has no slope either)."""
    resp = np.array([w.resp for w in windows], dtype=float)
    sent = np.isfinite(resp)
    values[sent, _F["resp_rate"]] = resp[sent]
    for name, attribute in _VITAL_COLUMNS:
        values[:, _F[name]] = [float(getattr(w, attribute)) for w in windows]
    for name, vital in (("spo2_slope", "spo2"), ("temp_slope", "temp")):
        if histories is not None:
            values[:, _F[name]] = trend_slopes(histories[VITALS.index(vital)], windows[0].trend_fs)
        else:
            values[:, _F[name]] = [trend_slope(w.trends.get(vital), w.trend_fs) for w in windows]
