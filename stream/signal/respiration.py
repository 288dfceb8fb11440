"""Respiration rate of one window: the device's own value, else ECG-derived respiration.

Owns :func:`respiration_rate` and the EDR band. The device-reported rate, when the device
sends one, is usually impedance pneumography, better than anything derivable from 10 s of
ECG; otherwise ECG-derived respiration (EDR) from R-peak amplitude modulation — coarse (a
10 s window holds two to four breaths) and nan when fewer than 6 beats. The spectral loop
is :func:`stream.signal.kernels.beat_series.edr_rate`. Example::

    >>> respiration_rate(None, 250.0, device_rate=16.0)
    16.0
    >>> respiration_rate(None, 250.0)
    nan
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stream.signal.beats import detect_r_peaks, ecg_filtered
from stream.signal.kernels import beat_series
from stream.signal.window import NAN

EDR_BAND = (0.1, 0.75)  # Hz: 6-45 breaths/min


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
    _, filtered, _ = ecg_filtered(ecg, fs)
    if peaks is None:
        peaks = detect_r_peaks(ecg, fs)
    if len(peaks) < 6 or (peaks[-1] - peaks[0]) / fs < 6.0:
        return NAN
    return edr_rate(filtered[peaks], peaks / fs)


def edr_rate(amplitudes: np.ndarray, times: np.ndarray) -> float:
    """Breaths per minute from R-peak ``amplitudes`` (filtered ECG) at beat ``times`` (s)."""
    return beat_series.edr_rate(
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
