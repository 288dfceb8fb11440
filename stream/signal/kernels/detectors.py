"""Beat and pulse detection kernels: peak primitives and the detectors' sequential loops.

Owns ``scipy.signal.find_peaks``'s rules (:func:`find_peaks`), a centred moving average,
the refractory rule, Elgendi's blocks of interest (:func:`elgendi`) and the ECG quality
index's plain second detector (:func:`simple_beats`); :mod:`stream.signal.beats` says what
they mean (the ECG's Pan–Tompkins loop is :mod:`stream.signal.kernels.ecg_stream`). They
live together because each detector calls the primitives (see :mod:`stream.signal.kernels`
on numba's cache). Example::

    >>> find_peaks(np.array([0.0, 2.0, 0.0, 1.0, 0.0, 3.0, 0.0]), 3, 0.5)
    array([1, 5])
"""

from __future__ import annotations

import numpy as np
from numba import njit

_INT = np.int64


@njit(cache=True)
def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``width`` samples (edges average what exists)."""
    n = x.shape[0]
    width = min(max(width, 1), n)
    head = width // 2
    csum = np.zeros(n + 1)
    for i in range(n):
        csum[i + 1] = csum[i] + x[i]
    out = np.empty(n)
    for i in range(n):
        hi = min(i + (width - head), n)
        lo = max(i - head, 0)
        out[i] = (csum[hi] - csum[lo]) / (hi - lo)
    return out


@njit(cache=True)
def find_peaks(x: np.ndarray, distance: int, height: float) -> np.ndarray:
    """``scipy.signal.find_peaks(x, height=height, distance=distance)[0]``: local maxima
    (a plateau's middle, never the first or last sample) at least ``height`` high, the
    higher kept of any two closer than ``distance``."""
    n = x.shape[0]
    peaks = np.empty(max(n // 2, 1), dtype=_INT)
    count = 0
    i = 1
    while i < n - 1:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < n - 1 and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                middle = (i + ahead - 1) // 2
                if x[middle] >= height:
                    peaks[count] = middle
                    count += 1
                i = ahead
        i += 1
    peaks = peaks[:count]
    if count < 2 or distance <= 1:
        return peaks
    keep = np.ones(count, dtype=np.bool_)
    order = np.argsort(x[peaks])
    for rank in range(count - 1, -1, -1):
        j = order[rank]
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and peaks[j] - peaks[k] < distance:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < count and peaks[k] - peaks[j] < distance:
            keep[k] = False
            k += 1
    return peaks[keep]


@njit(cache=True)
def refractory(peaks: np.ndarray, signal: np.ndarray, distance: int) -> np.ndarray:
    """Sorted unique peaks, the higher of any two closer than ``distance`` kept."""
    peaks = np.unique(peaks)
    if peaks.shape[0] < 2 or np.min(np.diff(peaks)) >= distance:
        return peaks
    # find_peaks ignores the first and last sample, hence one zero of padding each side.
    spikes = np.zeros(signal.shape[0] + 2)
    lowest = np.min(signal[peaks])
    for p in peaks:
        spikes[p + 1] = signal[p] - lowest + 1.0
    return find_peaks(spikes, distance, -np.inf) - 1


@njit(cache=True)
def elgendi(filtered: np.ndarray, peak_width: int, beat_width: int, distance: int) -> np.ndarray:
    """Elgendi's blocks of interest (see ``stream.signal.beats``): systolic peak indices."""
    n = filtered.shape[0]
    clipped = np.empty(n)
    for i in range(n):
        clipped[i] = max(filtered[i], 0.0) ** 2
    ma_peak = moving_average(clipped, peak_width)
    ma_beat = moving_average(clipped, beat_width)
    offset = 0.02 * np.mean(clipped)
    peaks = np.empty(n // 2 + 1, dtype=_INT)
    count = 0
    start = -1
    for i in range(n + 1):
        inside = i < n and ma_peak[i] > ma_beat[i] + offset
        if inside and start < 0:
            start = i
        elif not inside and start >= 0:
            if i - start >= peak_width:
                peaks[count] = start + np.argmax(filtered[start:i])
                count += 1
            start = -1
    # Keep the larger of two peaks closer than the shortest plausible beat interval.
    return refractory(peaks[:count], filtered, distance)


@njit(cache=True)
def simple_beats(filtered: np.ndarray, distance: int) -> np.ndarray:
    """The quality index's second detector: peaks of |filtered| above 35 % of its
    99.5th percentile, at least ``distance`` apart."""
    magnitude = np.abs(filtered)
    top = magnitude.shape[0] - 1 - magnitude.shape[0] // 200
    level = np.partition(magnitude, top)[top]
    return find_peaks(magnitude, distance, 0.35 * level)
