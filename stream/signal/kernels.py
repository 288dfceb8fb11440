"""Compiled inner loops of the per-window signal analysis (numba), no Faust.

:mod:`stream.signal.features` owns the algorithms and their meaning; this module owns their
sample- and candidate-level loops, compiled with numba. A 10 s window is a few thousand
samples and a few dozen beat candidates: as numpy calls, the per-call overhead (some
hundred calls a window) was most of the worker's time; compiled, a window's beats and
quality indices cost tens of microseconds. Each kernel is the numpy code it replaced,
step for step (``scipy.signal.find_peaks``'s plateau and distance rules included), so
features are unchanged up to floating-point summation order.

Kernels are compiled on first use and cached beside this file (``cache=True``); a worker
compiles them before it consumes (:func:`stream.signal.features.warm_up`).
"""

from __future__ import annotations

import math

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
    """Pan–Tompkins after the bandpass (see ``stream.signal.features``): R-peak indices.

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
        # Search back (see stream.signal.features._pan_tompkins for why 1/search_back).
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
    """Elgendi's blocks of interest (see ``stream.signal.features``): systolic peak indices."""
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
def pinned_fraction(x: np.ndarray) -> float:
    """Share of samples sitting at the window's extremes (clipping at an ADC rail)."""
    lo, hi = np.min(x), np.max(x)
    tolerance = 1e-3 * (hi - lo)
    pinned = 0
    for v in x:
        if v >= hi - tolerance:
            pinned += 1
        if v <= lo + tolerance:
            pinned += 1
    return pinned / x.shape[0]


@njit(cache=True)
def kurtosis(x: np.ndarray) -> float:
    """Pearson kurtosis (3 for Gaussian noise), 0 for a constant."""
    n = x.shape[0]
    mean = np.sum(x) / n
    second = 0.0
    fourth = 0.0
    for v in x:
        squared = (v - mean) * (v - mean)
        second += squared
        fourth += squared * squared
    variance = second / n
    return fourth / n / variance**2 if variance > 0 else 0.0


@njit(cache=True)
def agreement(a: np.ndarray, b: np.ndarray, tolerance: int) -> float:
    """bSQI: matched beats / all distinct beats of two detectors (1.0 = full agreement)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return 0.0
    matched = 0
    last = b.shape[0] - 1
    for p in a:
        after = np.searchsorted(b, p)
        left = b[min(max(after - 1, 0), last)]
        right = b[min(after, last)]
        if min(abs(p - left), abs(right - p)) <= tolerance:
            matched += 1
    return matched / (a.shape[0] + b.shape[0] - matched)


@njit(cache=True)
def simple_beats(filtered: np.ndarray, distance: int) -> np.ndarray:
    """The quality index's second detector: peaks of |filtered| above 35 % of its
    99.5th percentile, at least ``distance`` apart."""
    magnitude = np.abs(filtered)
    top = magnitude.shape[0] - 1 - magnitude.shape[0] // 200
    level = np.partition(magnitude, top)[top]
    return find_peaks(magnitude, distance, 0.35 * level)


@njit(cache=True)
def template_correlation(filtered: np.ndarray, pulses: np.ndarray, half: int) -> float:
    """Mean correlation of each pulse (±``half`` samples) with their average (Li &
    Clifford 2012 template matching); edges are padded with the end values."""
    n = filtered.shape[0]
    m = pulses.shape[0]
    width = 2 * half + 1
    beats = np.empty((m, width))
    for r in range(m):
        for k in range(width):
            at = min(max(pulses[r] - half + k, 0), n - 1)
            beats[r, k] = filtered[at]
        beats[r] -= np.mean(beats[r])
    template = np.empty(width)
    for k in range(width):
        template[k] = np.mean(beats[:, k])
    template_power = np.dot(template, template)
    total = 0.0
    for r in range(m):
        norm = math.sqrt(np.dot(beats[r], beats[r]) * template_power)
        total += np.dot(beats[r], template) / max(norm, 1e-12)
    return total / m


@njit(cache=True)
def activity(acc: np.ndarray, span: int, edge: int) -> np.ndarray:
    """Accelerometer summary of the finite rows of ``(n, 3)`` ``acc`` in g: magnitude std,
    its maximum, the std over the trailing ``span`` samples and the cosine between the
    mean gravity direction of the first and last ``edge`` samples (nan with < 2 rows)."""
    out = np.full(4, np.nan)
    rows = np.empty(acc.shape[0], dtype=_INT)
    count = 0
    for r in range(acc.shape[0]):
        if np.isfinite(acc[r, 0]) and np.isfinite(acc[r, 1]) and np.isfinite(acc[r, 2]):
            rows[count] = r
            count += 1
    if count < 2:
        return out
    magnitude = np.empty(count)
    for q in range(count):
        r = rows[q]
        magnitude[q] = math.sqrt(acc[r, 0] ** 2 + acc[r, 1] ** 2 + acc[r, 2] ** 2)
    first, last = np.zeros(3), np.zeros(3)
    head, tail = min(edge, count), min(edge, count)
    for q in range(head):
        first += acc[rows[q]]
    for q in range(count - tail, count):
        last += acc[rows[q]]
    first /= head
    last /= tail
    out[0] = np.std(magnitude)
    out[1] = np.max(magnitude)
    out[2] = np.std(magnitude[max(count - span, 0) :])
    norm = math.sqrt(np.dot(first, first) * np.dot(last, last))
    out[3] = np.dot(first, last) / max(norm, 1e-9)
    return out


@njit(cache=True)
def edr_rate(
    amplitudes: np.ndarray,
    times: np.ndarray,
    cosines: np.ndarray,
    sines: np.ndarray,
    low: float,
    high: float,
) -> float:
    """Breaths/min from R-peak amplitudes at beat ``times`` (s): interpolated at 4 Hz,
    linear trend removed, Hann-windowed; the strongest bin in ``[low, high]`` Hz of the
    DFT whose length is that of ``cosines``/``sines`` (cos and sin of 2πk/n, k < n; nan
    when the band holds no power)."""
    n_fft = cosines.shape[0]
    grid_fs = 4.0
    grid = np.arange(times[0], times[-1], 1.0 / grid_fs)
    series = np.interp(grid, times, amplitudes)
    centred = grid - np.mean(grid)
    slope = np.dot(centred, series) / np.dot(centred, centred)
    series = (series - np.mean(series) - centred * slope) * np.hanning(series.shape[0])
    best, best_power = -1, 0.0
    for k in range(n_fft // 2 + 1):
        freq = k * grid_fs / n_fft
        if freq < low or freq > high:
            continue
        real, imag = 0.0, 0.0
        for t in range(min(series.shape[0], n_fft)):
            at = (k * t) % n_fft  # the angles 2πkt/n repeat with period n
            real += series[t] * cosines[at]
            imag -= series[t] * sines[at]
        power = real * real + imag * imag
        if best < 0 or power > best_power:
            best, best_power = k, power
    if best < 0 or best_power == 0.0:
        return np.nan
    return 60.0 * best * grid_fs / n_fft


@njit(cache=True)
def trend_slope(values: np.ndarray, fs: float, min_points: int) -> float:
    """Least-squares slope per minute of the finite ``values`` sampled at ``fs`` Hz (nan
    with fewer than ``min_points`` finite values)."""
    count, t_sum, y_sum = 0, 0.0, 0.0
    for i in range(values.shape[0]):
        if np.isfinite(values[i]):
            count += 1
            t_sum += i / fs / 60.0
            y_sum += values[i]
    if count < min_points:
        return np.nan
    t_mean, y_mean = t_sum / count, y_sum / count
    covariance, variance = 0.0, 0.0
    for i in range(values.shape[0]):
        if np.isfinite(values[i]):
            t_centred = i / fs / 60.0 - t_mean
            covariance += t_centred * (values[i] - y_mean)
            variance += t_centred * t_centred
    return covariance / variance


@njit(cache=True)
def span(x: np.ndarray) -> float:
    """Peak-to-peak of ``x`` (``np.ptp`` without its call overhead)."""
    return np.max(x) - np.min(x)


@njit(cache=True)
def repeated_fraction(x: np.ndarray) -> float:
    """Share of successive samples that repeat the previous one exactly."""
    repeats = 0
    for i in range(1, x.shape[0]):
        if x[i] == x[i - 1]:
            repeats += 1
    return repeats / max(x.shape[0] - 1, 1)


@njit(cache=True)
def held_rr(
    peaks: np.ndarray, missing: np.ndarray, fs_in: float, fs_out: float, n_out: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each beat's RR interval (s; nan for the first and for an interval over a ``missing``
    sample) and its change from the previous RR, each held from its beat until the next
    at the ``n_out`` output samples at ``fs_out`` (nan before the first beat), float32."""
    m = peaks.shape[0]
    rr = np.full(m, np.nan)
    if m >= 2:
        gaps = np.zeros(missing.shape[0] + 1, dtype=_INT)
        for i in range(missing.shape[0]):
            gaps[i + 1] = gaps[i] + missing[i]
        for k in range(1, m):
            if gaps[peaks[k]] == gaps[peaks[k - 1]]:
                rr[k] = (peaks[k] - peaks[k - 1]) / fs_in
    drr = np.full(m, np.nan)
    for k in range(1, m):
        drr[k] = rr[k] - rr[k - 1]
    rr_held = np.full(n_out, np.nan, dtype=np.float32)
    drr_held = np.full(n_out, np.nan, dtype=np.float32)
    beat = -1
    for j in range(n_out):
        t = j / fs_out
        while beat + 1 < m and peaks[beat + 1] / fs_in <= t:
            beat += 1
        if beat >= 0:
            rr_held[j] = rr[beat]
            drr_held[j] = drr[beat]
    return rr_held, drr_held
