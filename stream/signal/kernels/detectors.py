"""Beat and pulse detection kernels: peak primitives and the detectors' sequential loops.

Owns ``scipy.signal.find_peaks``'s rules (:func:`find_peaks`), a centred moving average,
the refractory rule, the Pan–Tompkins decision loop (:func:`pan_tompkins`), Elgendi's blocks
of interest (:func:`elgendi`) and the ECG quality index's plain second detector
(:func:`simple_beats`); :mod:`stream.signal.beats` says what they mean. They live together
because each detector calls the primitives (see :mod:`stream.signal.kernels` on numba's
cache). Example::

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
def _overdue(pos: np.ndarray, beats: np.ndarray, n_beats: int) -> float:
    """Position past which a beat was missed: 166 % of the recent median RR after the last."""
    if n_beats < 2:
        return np.inf
    first = max(n_beats - 9, 0)
    recent = np.sort(np.diff(pos[beats[first:n_beats]]))
    return pos[beats[n_beats - 1]] + 1.66 * recent[recent.shape[0] // 2]


@njit(cache=True)
def _add_beat(
    beats: np.ndarray, n_beats: int, candidates: np.ndarray, beat: int
) -> tuple[int, float]:
    """Append candidate ``beat``; the new beat count and when the next one is overdue."""
    beats[n_beats] = beat
    return n_beats + 1, _overdue(candidates, beats, n_beats + 1)


@njit(cache=True)
def _level(level: float, height: float, weight: float) -> float:
    """A running signal or noise level moved ``weight`` of the way to a peak's height."""
    return weight * height + (1.0 - weight) * level


@njit(cache=True)
def _median(x: np.ndarray) -> float:
    ordered = np.sort(x)
    mid = ordered.shape[0] // 2
    return ordered[mid] if ordered.shape[0] % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


@njit(cache=True)
def pan_tompkins(
    filtered: np.ndarray,
    fs: float,
    integration_width: int,
    half: int,
    refractory_samples: int,
    search_back: float,
) -> np.ndarray:
    """Pan–Tompkins after the bandpass (see ``stream.signal.beats``): R-peak indices.

    ``integration_width`` (150 ms) and ``half`` (75 ms, the R-peak search either side of
    a candidate) are in samples, rounded by the caller as Python rounds.
    """
    n = filtered.shape[0]
    # Five-point derivative, np.convolve(..., "same") with taps [1, 2, 0, -2, -1] * fs / 8.
    tap1, tap2 = fs / 8.0, 2.0 * fs / 8.0
    derivative = np.empty(n)
    for i in range(n):
        total = 0.0
        if i >= 2:
            total -= tap1 * filtered[i - 2]
        if i >= 1:
            total -= tap2 * filtered[i - 1]
        if i + 1 < n:
            total += tap2 * filtered[i + 1]
        if i + 2 < n:
            total += tap1 * filtered[i + 2]
        derivative[i] = total
    integration = moving_average(derivative * derivative, integration_width)
    candidates = find_peaks(integration, refractory_samples, -np.inf)
    m = candidates.shape[0]
    if m == 0:
        return candidates
    # Per candidate: the largest filtered deflection nearby (the R peak), its integrated
    # height and the steepest slope around it.
    r_peaks = np.empty(m, dtype=_INT)
    h_i = np.empty(m)
    h_f = np.empty(m)
    slope = np.empty(m)
    for c in range(m):
        centre = candidates[c]
        best, best_at, steepest = -np.inf, 0, 0.0
        for k in range(2 * half + 1):
            at = centre - half + k
            if 0 <= at < n:
                if filtered[at] > best:
                    best, best_at = filtered[at], k
                steepest = max(steepest, abs(derivative[at]))
        r_peaks[c] = min(max(centre + best_at - half, 0), n - 1)
        h_i[c] = integration[centre]
        h_f[c] = filtered[r_peaks[c]]
        slope[c] = steepest

    # Learning phase: the first 2 s seed the signal and noise levels of both signals.
    learn_end = min(int(2 * fs), n)
    spk_i, spk_f = -np.inf, -np.inf
    for c in range(m):
        if candidates[c] < learn_end:
            spk_i, spk_f = max(spk_i, h_i[c]), max(spk_f, h_f[c])
    if spk_i == -np.inf:
        spk_i, spk_f = np.max(h_i), np.max(h_f)
    npk_i = 0.5 * _median(h_i)
    npk_f = 0.5 * _median(np.abs(h_f))
    t_wave = int(0.36 * fs)
    beats = np.empty(m, dtype=_INT)
    n_beats = 0
    noise = np.empty(m, dtype=_INT)
    n_noise = 0
    overdue = np.inf
    for i in range(m):
        threshold_i = npk_i + 0.25 * (spk_i - npk_i)
        threshold_f = npk_f + 0.25 * (spk_f - npk_f)
        # Search back (see stream.signal.beats.pan_tompkins for why 1/search_back).
        while n_noise > 0 and candidates[i] > overdue:
            last = candidates[beats[n_beats - 1]]
            j = -1
            for q in range(n_noise):
                k = noise[q]
                if candidates[k] - last > refractory_samples and (j < 0 or h_i[k] > h_i[j]):
                    j = k
            if j < 0 or h_i[j] < threshold_i / search_back or h_f[j] < threshold_f / search_back:
                n_noise = 0
                break
            n_beats, overdue = _add_beat(beats, n_beats, candidates, j)
            spk_i, spk_f = _level(spk_i, h_i[j], 0.25), _level(spk_f, h_f[j], 0.25)
            kept = 0
            for q in range(n_noise):
                if noise[q] > j:
                    noise[kept] = noise[q]
                    kept += 1
            n_noise = kept
        is_beat = h_i[i] > threshold_i and h_f[i] > threshold_f
        if is_beat and n_beats > 0 and candidates[i] - candidates[beats[n_beats - 1]] < t_wave:
            # A T wave: close after a beat and much gentler.
            is_beat = slope[i] >= 0.5 * slope[beats[n_beats - 1]]
        if is_beat:
            n_beats, overdue = _add_beat(beats, n_beats, candidates, i)
            spk_i, spk_f = _level(spk_i, h_i[i], 0.125), _level(spk_f, h_f[i], 0.125)
            n_noise = 0
        else:
            noise[n_noise] = i
            n_noise += 1
            npk_i, npk_f = _level(npk_i, h_i[i], 0.125), _level(npk_f, max(h_f[i], 0.0), 0.125)
    # Two integration peaks may refine onto one QRS (wide ventricular beats): keep one.
    chosen = r_peaks[np.sort(beats[:n_beats])]
    return refractory(chosen, filtered, refractory_samples)


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
