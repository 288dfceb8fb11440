"""Beat and pulse detection: where the heart beats in one window's ECG or PPG.

Owns the window-level detector API. The rate and rhythm of the beats found are computed
in :mod:`stream.signal.rhythm`.

- ECG: :func:`detect_r_peaks` is the causal Pan–Tompkins (1985) detector of
  :mod:`stream.signal.beat_stream` run over the window from a fresh state (it learns its
  levels over the window's first 2 s, as the zero-phase window detector it replaced did).
  The worker does not call it: its devices' detectors run on across frames, and a window
  takes the beats they decided; training, ``vitalstream analyze`` of single windows and the
  quality index's checks do, so every caller counts beats with one detector. Tests
  validate it against NeuroKit2 and sleepecg on MIT-BIH record 208.
- PPG: :func:`detect_pulses` is Elgendi et al. (2013, PLoS One 8:e76585): 0.5–8 Hz bandpass,
  two moving averages (111 ms peak, 667 ms beat) and blocks of interest.

Example (a pulse a second, peaking at 0.25 s, sampled at 100 Hz)::

    >>> t = np.arange(1000) / 100.0
    >>> detect_pulses(np.sin(2 * np.pi * t) ** 21, 100.0)
    array([ 25, 125, 225, 325, 425, 525, 625, 725, 825, 925])
"""

from __future__ import annotations

import numpy as np

from stream.signal.beat_stream import ECG_BAND, REFRACTORY_S, EcgBeatStream
from stream.signal.filters import bandpass, fill_missing
from stream.signal.kernels import detectors, stats

__all__ = ["ECG_BAND", "ECG_FLAT_MV", "PPG_BAND", "REFRACTORY_S", "detect_pulses", "detect_r_peaks"]

ECG_FLAT_MV = 0.02  # peak-to-peak below this is no ECG at all (baseline noise alone is larger)
PPG_BAND = (0.5, 8.0)  # Hz: the pulse wave and its harmonics (Elgendi)


# ---------------------------------------------------------------------------------------
# ECG beats


def ecg_filtered(ecg: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The ECG with gaps filled, its QRS-band filtered copy (zero-phase: the quality
    indices' spectra and the R-peak amplitudes of respiration) and the share present."""
    raw, valid = fill_missing(ecg)
    filtered = bandpass(raw, fs, *ECG_BAND) if len(raw) > 12 else np.zeros_like(raw)
    return raw, filtered, valid


def detect_r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the R peaks the causal detector decides within this window, from
    a fresh state (NaN gaps hold no beats; see :mod:`stream.signal.beat_stream`)."""
    ecg = np.asarray(ecg, dtype=float)
    present = ecg[np.isfinite(ecg)]
    if len(ecg) < fs or len(present) < 0.2 * len(ecg) or stats.span(present) < ECG_FLAT_MV:
        return np.zeros(0, dtype=np.int64)
    return EcgBeatStream(capacity=1).push([("window", 0.0, float(fs), ecg)]).samples


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
