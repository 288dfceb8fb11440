"""The feature vector of windows: every module of :mod:`stream.signal` applied to each window.

Owns the batch analysis: :func:`analyze_windows` analyses many windows at once (the
worker's due windows of a batch): the filters and spectra of windows of one length and rate
run as one 2-D call (:func:`group_by_length`), with results identical to one by one.
:func:`analyze_window` returns a :class:`~stream.signal.window.WindowAnalysis` holding the
features (keys :data:`~stream.signal.window.FEATURE_NAMES`) *and* the beat / pulse times in
epoch seconds (``beats_s``, ``pulses_s``); :func:`window_features` is its ``features``
alone. The stream worker, ``vitalstream analyze`` and model training all compute features
with exactly this code. :func:`warm_up` compiles the kernels before a worker consumes.

Example::

    >>> window = SignalWindow(t_start=0.0, t_end=10.0, spo2=97.0)
    >>> features = window_features(window)
    >>> tuple(features) == FEATURE_NAMES, features["spo2"], bool(np.isnan(features["ecg_hr_bpm"]))
    (True, 97.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from stream.signal.activity import MOTION_ACTIVITY_G, activity_features
from stream.signal.beat_stream import DECISION_DELAY_S
from stream.signal.beats import ECG_BAND, ECG_FLAT_MV, PPG_BAND, detect_r_peaks, elgendi
from stream.signal.filters import bandpass, fill_missing
from stream.signal.kernels import beat_series, stats
from stream.signal.quality import (
    ECG_BANDS,
    band_powers,
    ecg_lost_tail,
    ecg_quality_from,
    ppg_bands,
    ppg_lost_tail,
    ppg_quality_from,
)
from stream.signal.respiration import edr_rate
from stream.signal.rhythm import (
    heart_rate,
    in_longest_run,
    pulse_run_rate,
    recent_heart_rate,
    rr_features,
)
from stream.signal.trends import trend_slope
from stream.signal.window import FEATURE_NAMES, NAN, SignalWindow, WindowAnalysis


@dataclass(frozen=True, slots=True)
class _Waveform:
    """One window's ECG or PPG ready for analysis: gaps filled (``raw``), bandpassed, the
    share of samples present and the quality indices' band powers."""

    raw: np.ndarray
    filtered: np.ndarray
    valid: float
    powers: np.ndarray


def group_by_length(
    arrays: Sequence[np.ndarray | None], rates: Sequence[float]
) -> dict[tuple[int, float], list[int]]:
    """Indices of the present (non-empty) arrays grouped by ``(length, rate)``: each group
    stacks into one 2-D array, because for windows of a few thousand samples numpy's
    per-call overhead, not the arithmetic, is the cost.

    >>> group_by_length([np.zeros(4), None, np.zeros(4), np.zeros(2)], [2.0, 2.0, 2.0, 2.0])
    {(4, 2.0): [0, 2], (2, 2.0): [3]}
    """
    groups: dict[tuple[int, float], list[int]] = {}
    for i, (values, rate) in enumerate(zip(arrays, rates, strict=True)):
        if values is not None and len(values) > 0 and math.isfinite(rate):
            groups.setdefault((len(values), float(rate)), []).append(i)
    return groups


def _prepare(
    windows: Sequence[SignalWindow],
    signal: str,
    band: tuple[float, float],
    bands: Callable[[float], tuple[tuple[float, float], ...]],
) -> list[_Waveform | None]:
    """Each window's ``signal`` (``"ecg"``/``"ppg"``) prepared; windows of one length and rate
    are filtered and transformed as rows of one 2-D array, because for 10 s windows numpy
    and scipy's per-call overhead, not the arithmetic, is the cost (rows come out exactly
    as one by one)."""
    prepared: list[_Waveform | None] = [None] * len(windows)
    signals = [getattr(window, signal) for window in windows]
    rates = [getattr(window, f"{signal}_fs") for window in windows]
    for (n, fs), rows in group_by_length(signals, rates).items():
        raw = np.stack([np.asarray(signals[i], dtype=float) for i in rows])
        valid = [1.0] * len(rows)
        for r in np.flatnonzero(~np.isfinite(raw).all(axis=1)).tolist():
            raw[r], valid[r] = fill_missing(raw[r])
        # Contiguous rows: the compiled kernels run fastest on them.
        filtered = np.ascontiguousarray(bandpass(raw, fs, *band)) if n > 12 else np.zeros_like(raw)
        powers = band_powers(raw, fs, bands(fs))
        for r, i in enumerate(rows):
            prepared[i] = _Waveform(raw[r], filtered[r], valid[r], powers[r])
    return prepared


def analyze_windows(
    windows: Sequence[SignalWindow], ecg_beats: Sequence[np.ndarray | None] | None = None
) -> list[WindowAnalysis]:
    """:func:`analyze_window` of each window, the filters and spectra of all of them done
    together (the worker analyses every due window of a batch in one call).

    ``ecg_beats``: per window, the R peaks (window sample indices) that the device's
    detector, running on across frames (:class:`~stream.signal.beat_stream.EcgBeatStream`),
    decided by the window's end; ``None`` (or a ``None`` entry) runs the same detector over
    the window alone (:func:`~stream.signal.beats.detect_r_peaks`)."""
    ecg = _prepare(windows, "ecg", ECG_BAND, lambda _: ECG_BANDS)
    ppg = _prepare(windows, "ppg", PPG_BAND, ppg_bands)
    beats = ecg_beats if ecg_beats is not None else [None] * len(windows)
    return [_analyze(*prepared) for prepared in zip(windows, ecg, ppg, beats, strict=True)]


def analyze_window(window: SignalWindow, ecg_beats: np.ndarray | None = None) -> WindowAnalysis:
    """All features of one window (keys :data:`FEATURE_NAMES`) and its beat/pulse times."""
    return analyze_windows([window], [ecg_beats])[0]


# An acceleration peak this large shakes the electrodes and the optics: the window's beat
# rates are motion artefact as much as heartbeats (2 g is past any step while walking, and
# below the 3.5 g fall impact of Bourke 2007, so the artefacts of a fall are covered).
JOLT_G = 2.0
# Beats this close to a gap are the band-pass ringing where the bridged gap meets the
# signal as often as they are beats (a dropped frame gave a spurious beat 0.26 s before
# its gap, and a walking patient a 130 bpm rate).
GAP_MARGIN_S = 0.5
# A lost tail shorter than this is the quiet stretch between beats, not a lost signal.
_LOST_TAIL_MIN_S = 0.25
# A QRS smaller than this (peak to peak within QRS_HALF_S of the R peak) is not counted as
# a beat. IEC 60601-2-27 (201.12.1.101.1.2) wants QRS of 0.5-5 mV counted and ones of
# 0.15 mV or less not (noise, P waves, an asystole's baseline must not show as a rate).
QRS_MIN_MV = 0.25
QRS_HALF_S = 0.06


def large_enough(raw: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray:
    """Mask of the R peaks whose QRS is at least ``QRS_MIN_MV`` peak to peak in the raw ECG
    (a missing sample near a peak keeps it: gaps are judged elsewhere).

    >>> ecg = np.zeros(1000)
    >>> ecg[[100, 500]] = [1.0, 0.1]
    >>> large_enough(ecg, np.array([100, 500]), 250.0).tolist()
    [True, False]
    """
    if len(peaks) == 0:
        return np.zeros(0, dtype=bool)
    half = max(int(QRS_HALF_S * fs), 1)
    starts = np.clip(peaks - half, 0, len(raw) - 1)
    ends = np.clip(peaks + half + 1, 1, len(raw))
    # Peaks are a refractory period (200 ms) apart: the spans do not overlap.
    bounds = np.ravel(np.column_stack((starts, ends)))
    if bounds[-1] >= len(raw):
        bounds = bounds[:-1]
    highs = np.maximum.reduceat(raw, bounds)[::2]
    lows = np.minimum.reduceat(raw, bounds)[::2]
    return ~(highs - lows < QRS_MIN_MV)


def _signal_length(
    raw: np.ndarray, lost_tail: int, fs: float, valid: float, undecided_s: float = 0.0
) -> int | None:
    """Samples up to which a window still shows its signal and its beats are decided, for
    the recent rate's wait since the last beat (``None`` with gaps: no wait is counted
    then). A tail that lost its signal is no evidence that the heart slowed, nor is the
    ``undecided_s`` tail whose beats the detector has not decided yet."""
    if valid < 1.0:
        return None
    lost = lost_tail if lost_tail >= _LOST_TAIL_MIN_S * fs else 0
    return len(raw) - max(lost, round(undecided_s * fs))


def _analyze(
    window: SignalWindow,
    ecg: _Waveform | None,
    ppg: _Waveform | None,
    ecg_beats: np.ndarray | None,
) -> WindowAnalysis:
    features = dict.fromkeys(FEATURE_NAMES, NAN)
    beats_s = pulses_s = np.zeros(0)
    r_peaks = None
    motion_flags: list[float] = []

    if ecg is not None:
        fs = window.ecg_fs
        raw, filtered, valid = ecg.raw, ecg.filtered, ecg.valid
        usable = valid >= 0.2 and len(raw) >= fs and stats.span(raw) >= ECG_FLAT_MV
        if not usable:
            peaks = np.zeros(0, dtype=np.int64)
        elif ecg_beats is not None:
            peaks = np.asarray(ecg_beats, dtype=np.int64)
        else:
            peaks = detect_r_peaks(window.ecg, fs)
        r_peaks = peaks
        quality = ecg_quality_from(raw, filtered, valid, peaks, fs, ecg.powers)
        features["ecg_sqi"] = quality["sqi"]
        features["ecg_lead_off"] = quality["lead_off"]
        features["ecg_flat"] = quality["flat"]
        features["ecg_saturated"] = quality["saturated"]
        motion_flags.append(quality["motion"])
        if quality["lead_off"] != 1.0:
            peaks = peaks[large_enough(raw, peaks, fs)]
            if valid < 1.0:
                margin = int(GAP_MARGIN_S * fs)
                peaks = peaks[in_longest_run(np.isfinite(window.ecg), peaks, margin)]
            features["ecg_hr_bpm"] = heart_rate(peaks, fs)
            features["ecg_hr_recent_bpm"] = recent_heart_rate(
                peaks,
                fs,
                _signal_length(raw, ecg_lost_tail(raw, fs), fs, valid, DECISION_DELAY_S),
            )
            features.update(rr_features(peaks, fs))
            if len(peaks) >= 6 and (peaks[-1] - peaks[0]) / fs >= 6.0:
                features["resp_rate"] = edr_rate(filtered[peaks], peaks / fs)
            beats_s = window.t_start + peaks / fs
    if math.isfinite(window.resp):
        features["resp_rate"] = float(window.resp)

    if ppg is not None:
        fs = window.ppg_fs
        raw, filtered, valid = ppg.raw, ppg.filtered, ppg.valid
        usable = valid >= 0.2 and len(raw) >= fs and stats.span(raw) > 0
        pulses = elgendi(filtered, fs) if usable else np.zeros(0, dtype=np.int64)
        quality = ppg_quality_from(raw, filtered, valid, pulses, fs, ppg.powers)
        features["ppg_sqi"] = quality["sqi"]
        motion_flags.append(quality["motion"])
        if quality["lead_off"] != 1.0:
            features["ppg_hr_bpm"] = heart_rate(pulses, fs)
            features["ppg_hr_recent_bpm"] = recent_heart_rate(
                pulses, fs, _signal_length(raw, ppg_lost_tail(raw, fs), fs, valid)
            )
            features["ppg_run_rate_bpm"] = pulse_run_rate(pulses, fs)
            pulses_s = window.t_start + pulses / fs

    if window.acc is not None and len(window.acc) > 0:
        activity = activity_features(window.acc, window.acc_fs)
        features.update(activity)
        if math.isfinite(activity["activity_g"]):
            moving = activity["activity_g"] > MOTION_ACTIVITY_G
            # A jolt (a fall, a knock) moves the electrodes: its window's beats are suspect.
            jolted = math.isfinite(activity["impact_g"]) and activity["impact_g"] >= JOLT_G
            motion_flags.append(float(moving or jolted))

    if motion_flags:
        features["motion"] = float(max(motion_flags))
    features["spo2"] = float(window.spo2)
    features["temp"] = float(window.temp)
    features["hr_device"] = float(window.hr)
    features["battery"] = float(window.battery)
    features["spo2_slope"] = trend_slope(window.trends.get("spo2"), window.trend_fs)
    features["temp_slope"] = trend_slope(window.trends.get("temp"), window.trend_fs)
    return WindowAnalysis(features=features, beats_s=beats_s, pulses_s=pulses_s, r_peaks=r_peaks)


@lru_cache(maxsize=1)
def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache) by analysing one synthetic
    window of every signal, so that the first real batch does not wait for the compiler."""
    t = np.arange(2500) / 250.0
    ecg = np.exp(-(((t % 0.8) - 0.4) ** 2) / 2e-4) + 0.01 * np.sin(7 * t)
    pulse = np.sin(2 * np.pi * 1.25 * np.arange(1000) / 100.0)
    acc = np.column_stack((np.zeros(500), np.zeros(500), np.ones(500)))
    window = SignalWindow(0.0, 10.0, ecg, 250.0, pulse, 100.0, acc, 50.0)
    peaks = analyze_window(window).r_peaks
    beat_series.held_rr(peaks, np.zeros(len(ecg), dtype=bool), 250.0, 64.0, 640)  # model inputs


def window_features(window: SignalWindow) -> dict[str, float]:
    """Every feature of one window, keys exactly :data:`FEATURE_NAMES` (missing → nan)."""
    return analyze_window(window).features
