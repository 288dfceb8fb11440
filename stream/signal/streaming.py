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

import numpy as np

from stream.signal.activity import MOTION_ACTIVITY_G, STILL_SPAN_S, STILL_STD_G
from stream.signal.beat_stream import DECISION_DELAY_S, EcgBeatStream
from stream.signal.beats import ECG_BAND, ECG_FLAT_MV
from stream.signal.features import _LOST_TAIL_MIN_S, GAP_MARGIN_S, JOLT_G
from stream.signal.filters import bandpass, fill_missing
from stream.signal.frame_stats import FrameStats
from stream.signal.kernels import frame_stats as fk
from stream.signal.kernels import rhythm_batch as rk
from stream.signal.kernels import stats
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
from stream.signal.trends import trend_slope
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
        ecg: Sequence[tuple[str, float, float, np.ndarray]],
        ppg: Sequence[tuple[str, float, float, np.ndarray]],
        acc: Sequence[tuple[str, float, float, np.ndarray]],
    ) -> None:
        """One round of frames, ``(device, t0, fs, samples)`` per signal, each device at
        most once per signal (a batch's k-th frames of its devices)."""
        if ecg:
            self.beats.push(ecg)
            self.frames.push_ecg(ecg)
        if ppg:
            self.pulses.push(ppg)
            self.frames.push_ppg(ppg)
        if acc:
            self.frames.push_acc(acc)

    def forget(self, device: str) -> None:
        self.beats.forget(device)
        self.pulses.forget(device)
        self.frames.forget(device)

    def analyze(self, due: Sequence[tuple[str, SignalWindow]]) -> list[WindowAnalysis]:
        """The features of each ``(device, window)`` (windows ending at the device's
        newest frame, as the worker cuts them), from the state."""
        if not due:
            return []
        devices = [device for device, _ in due]
        t_start = np.array([w.t_start for _, w in due])
        t_end = np.array([w.t_end for _, w in due])
        ecg_stats = self.frames.ecg_windows(devices, t_start, t_end)
        ppg_stats = self.frames.ppg_windows(devices, t_start, t_end, SIGNAL_LOST_S)
        acc_stats = self.frames.acc_windows(devices, t_start, t_end, STILL_SPAN_S, POSTURE_EDGE_S)
        features = [dict.fromkeys(FEATURE_NAMES, NAN) for _ in due]
        # Beat and pulse sequences for the one rhythm call: (window, kind) → row.
        sequences: list[np.ndarray] = []
        rates: list[float] = []
        ends: list[float] = []
        owners: list[tuple[int, str]] = []
        beats_s: list[np.ndarray] = [np.zeros(0)] * len(due)
        pulses_s: list[np.ndarray] = [np.zeros(0)] * len(due)
        r_peaks: list[np.ndarray | None] = [None] * len(due)
        motion: list[list[float]] = [[] for _ in due]
        for i, (device, window) in enumerate(due):
            f = features[i]
            if window.ecg is not None and len(window.ecg) > 0:
                peaks = self._ecg(device, window, ecg_stats[i], f, motion[i])
                r_peaks[i] = peaks.all_peaks
                if peaks.counted is not None:
                    sequences.append(peaks.counted)
                    rates.append(window.ecg_fs)
                    ends.append(peaks.end)
                    owners.append((i, "ecg"))
                    beats_s[i] = window.t_start + peaks.counted / window.ecg_fs
            if window.ppg is not None and len(window.ppg) > 0:
                pulses = self._ppg(device, window, ppg_stats[i], f, motion[i])
                if pulses is not None:
                    sequences.append(pulses.counted)
                    rates.append(window.ppg_fs)
                    ends.append(pulses.end)
                    owners.append((i, "ppg"))
                    pulses_s[i] = window.t_start + pulses.counted / window.ppg_fs
            _activity(acc_stats[i], f, motion[i])
            if motion[i]:
                f["motion"] = float(max(motion[i]))
            _vitals(window, f)
        if sequences:
            positions, offsets = rk.pack(sequences)
            rows = rk.rhythm_batch(positions, offsets, np.array(rates), np.array(ends))
            for (i, kind), row in zip(owners, rows, strict=True):
                _rates(kind, row, features[i])
        return [
            WindowAnalysis(features=f, beats_s=b, pulses_s=p, r_peaks=r)
            for f, b, p, r in zip(features, beats_s, pulses_s, r_peaks, strict=True)
        ]

    # -- ECG --------------------------------------------------------------------------------

    def _ecg(
        self,
        device: str,
        window: SignalWindow,
        st: np.ndarray,
        f: dict[str, float],
        motion: list[float],
    ) -> _Counted:
        fs = window.ecg_fs
        samples, valid = _coverage(st[fk.W_SAMPLES], st[fk.W_PRESENT], window.ecg)
        span = st[fk.W_SPAN]
        usable = valid >= 0.2 and samples >= fs and math.isfinite(span) and span >= ECG_FLAT_MV
        peaks = (
            self.beats.window_beats(device, window.t_start, window.t_end, fs)
            if usable
            else np.zeros(0, dtype=np.int64)
        )
        counted = _Counted(all_peaks=peaks, counted=None, end=NAN)
        if valid == 0.0 or samples < fs:
            f.update(ecg_sqi=0.0, ecg_flat=NAN, ecg_lead_off=NAN, ecg_saturated=0.0)
            motion.append(0.0)
            return counted
        pinned = st[fk.W_PINNED]
        flat = bool(span < ECG_FLAT_MV)
        saturated = not flat and pinned > SATURATED_FRACTION
        lost = st[fk.W_TAIL_FLAT] >= SIGNAL_LOST_S * fs
        lead_off = flat or pinned > PINNED_FRACTION or lost
        f.update(ecg_flat=float(flat), ecg_saturated=float(saturated), ecg_lead_off=float(lead_off))
        if lead_off:
            f["ecg_sqi"] = 0.0
            motion.append(0.0)
            return counted
        contact_lost = valid == 1.0 and st[fk.W_LONGEST_FLAT] >= CONTACT_LOSS_S * fs
        b_sqi = self._agreement(device, window)
        k_sqi = st[fk.W_KURTOSIS]
        p_sqi = st[fk.W_P_SQI]
        bas_sqi = st[fk.W_BAS_SQI]
        score = min(
            b_sqi,
            _unit((k_sqi - 3.0) / 2.0),
            _unit((p_sqi - 0.3) / 0.2),
            _unit(bas_sqi / 0.2),
        )
        f["ecg_sqi"] = _unit(valid * score)
        motion.append(float(k_sqi < 4.0 or b_sqi < 0.7 or bas_sqi < 0.1 or contact_lost))
        if valid < 1.0 and window.ecg is not None:
            margin = int(GAP_MARGIN_S * fs)
            peaks = peaks[in_longest_run(np.isfinite(window.ecg), peaks, margin)]
        # The wait since the last beat counts to where the beats are decided and the signal
        # is still there (not over a lost tail, nor with gaps).
        end = NAN
        if valid == 1.0:
            tail = st[fk.W_TAIL_FLAT] if st[fk.W_TAIL_FLAT] >= _LOST_TAIL_MIN_S * fs else 0.0
            length = samples - max(tail, round(DECISION_DELAY_S * fs))
            end = length - 1.0
        if (
            len(peaks) >= 6
            and (peaks[-1] - peaks[0]) / fs >= 6.0
            and not math.isfinite(window.resp)
        ):
            raw, _ = fill_missing(window.ecg)
            filtered = bandpass(raw, fs, *ECG_BAND)
            f["resp_rate"] = edr_rate(filtered[peaks], peaks / fs)
        return _Counted(all_peaks=counted.all_peaks, counted=peaks, end=end)

    def _agreement(self, device: str, window: SignalWindow) -> float:
        """bSQI: the beat stream's beats against the second detector's peaks, where both
        have decided."""
        beats = self.beats.recent_beats(device)
        peaks, decided = self.frames.second_detector(device)
        end = min(window.t_end, decided, self.beats.decided_until(device))
        a = beats[(beats >= window.t_start) & (beats < end)]
        b = peaks[(peaks >= window.t_start) & (peaks < end)]
        return float(stats.agreement(a, b, AGREEMENT_S))

    # -- PPG --------------------------------------------------------------------------------

    def _ppg(
        self,
        device: str,
        window: SignalWindow,
        st: np.ndarray,
        f: dict[str, float],
        motion: list[float],
    ) -> _Counted | None:
        fs = window.ppg_fs
        samples, valid = _coverage(st[fk.G_SAMPLES], st[fk.G_PRESENT], window.ppg)
        if valid == 0.0 or samples < fs:
            f["ppg_sqi"] = 0.0
            motion.append(0.0)
            return None
        span = st[fk.G_SPAN]
        usable = valid >= 0.2 and span > 0
        pulses = (
            self.pulses.window_pulses(device, window.t_start, window.t_end, fs)
            if usable
            else np.zeros(0, dtype=np.int64)
        )
        pinned = st[fk.G_PINNED]
        flat = bool(span == 0 or st[fk.G_REPEATED] > 0.9)
        saturated = not flat and pinned > SATURATED_FRACTION
        tail = max(int(SIGNAL_LOST_S * fs), 2)
        lost = samples > 2 * tail and st[fk.G_TAIL_STD] < PPG_DROPOUT * st[fk.G_STD]
        lead_off = flat or pinned > PINNED_FRACTION or lost
        if lead_off or len(pulses) < 3:
            f["ppg_sqi"] = 0.0
            motion.append(float(not lead_off))
            if lead_off:
                return None
        else:
            correlations = self.pulses.window_correlations(device, window.t_start, window.t_end)
            finite = correlations[np.isfinite(correlations)]
            correlation = float(np.mean(finite)) if len(finite) else 0.0
            band_share = st[fk.G_BAND_SHARE]
            score = 0.7 * _unit((correlation - 0.65) / 0.25) + 0.3 * _unit((band_share - 0.3) / 0.5)
            f["ppg_sqi"] = _unit(valid * score * (0.5 if saturated else 1.0))
            motion.append(float(correlation < 0.8))
        if valid < 1.0 and window.ppg is not None:
            margin = int(PULSE_GAP_MARGIN_S * fs)
            pulses = pulses[in_longest_run(np.isfinite(window.ppg), pulses, margin)]
        end = NAN
        if valid == 1.0:
            # As for the ECG: the wait counts to where pulses are decided.
            lost_tail = tail if lost else 0
            end = samples - max(lost_tail, round(PULSE_DECISION_DELAY_S * fs)) - 1.0
        return _Counted(all_peaks=pulses, counted=pulses, end=end)


def _coverage(
    arrived: float, present_share: float, window: np.ndarray | None
) -> tuple[float, float]:
    """(samples the window spans, share of them present). A frame that never arrived
    leaves no statistics, nor does a clock gap of a few samples between two frames (which
    the beat and pulse streams bridge, not counting the beats beside it), so the share is
    that of the window's own array (the buffers NaN-fill what is missing), not of the
    frames that came."""
    if not math.isfinite(arrived) or not math.isfinite(present_share):
        return 0.0, 0.0
    if window is None or len(window) == 0:
        return arrived, present_share
    span = float(len(window))
    return span, float(np.count_nonzero(np.isfinite(window))) / span


class _Counted:
    """A window's detected beats (``all_peaks``, window sample indices), those counted
    for rates (``counted``; None: none) and the last sample the wait counts to."""

    __slots__ = ("all_peaks", "counted", "end")

    def __init__(self, all_peaks: np.ndarray, counted: np.ndarray | None, end: float) -> None:
        self.all_peaks = all_peaks
        self.counted = counted
        self.end = end


def _rates(kind: str, row: np.ndarray, f: dict[str, float]) -> None:
    if kind == "ecg":
        f["ecg_hr_bpm"] = float(row[rk.HEART_RATE])
        f["ecg_hr_recent_bpm"] = float(row[rk.RECENT_HEART_RATE])
        for key in RR_KEYS:
            f[key] = float(row[rk.RR_COLUMNS[key]])
    else:
        f["ppg_hr_bpm"] = float(row[rk.HEART_RATE])
        f["ppg_hr_recent_bpm"] = float(row[rk.RECENT_HEART_RATE])
        f["ppg_run_rate_bpm"] = float(row[rk.PULSE_RUN_RATE])


def _activity(st: np.ndarray, f: dict[str, float], motion: list[float]) -> None:
    spread, impact, trailing, cosine = (float(v) for v in st)
    if math.isnan(spread):
        return
    f["activity_g"] = spread
    f["impact_g"] = impact
    f["still"] = float(trailing < STILL_STD_G)
    f["posture_change_deg"] = math.degrees(math.acos(min(max(cosine, -1.0), 1.0)))
    jolted = math.isfinite(impact) and impact >= JOLT_G
    motion.append(float(spread > MOTION_ACTIVITY_G or jolted))


def _vitals(window: SignalWindow, f: dict[str, float]) -> None:
    if math.isfinite(window.resp):
        f["resp_rate"] = float(window.resp)
    f["spo2"] = float(window.spo2)
    f["temp"] = float(window.temp)
    f["hr_device"] = float(window.hr)
    f["battery"] = float(window.battery)
    f["spo2_slope"] = trend_slope(window.trends.get("spo2"), window.trend_fs)
    f["temp_slope"] = trend_slope(window.trends.get("temp"), window.trend_fs)
