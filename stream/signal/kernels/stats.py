"""Per-window statistics kernels: quality indices, accelerometer summary and vitals trend.

Owns the loops behind :mod:`stream.signal.quality` (peak-to-peak, flat stretches, repeated and
pinned samples, kurtosis, detector agreement, pulse template correlation),
:mod:`stream.signal.activity` (:func:`activity`) and :mod:`stream.signal.trends`
(:func:`trend_slope`). None calls another kernel. Example::

    >>> x = np.array([1.0, 1.0, 3.0, 3.0, 3.0, -2.0])
    >>> float(span(x)), float(repeated_fraction(x))
    (5.0, 0.6)
    >>> int(flat_tail(np.array([0.0, 1.0, 0.30, 0.31, 0.30]), 0.1))
    3
    >>> bool(has_flat_run(np.array([0.0, 0.5, 1.0, 1.0, 1.01, 1.0, 0.2]), 0.1, 4))
    True
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_INT = np.int64


@njit(cache=True)
def span(x: np.ndarray) -> float:
    """Peak-to-peak of ``x`` (``np.ptp`` without its call overhead)."""
    return np.max(x) - np.min(x)


@njit(cache=True)
def flat_tail(x: np.ndarray, height: float) -> int:
    """How many trailing samples of ``x`` stay within a band ``height`` tall."""
    n = x.shape[0]
    if n == 0:
        return 0
    lo = hi = x[n - 1]
    i = n - 1
    while i >= 0:
        v = x[i]
        lo = min(lo, v)
        hi = max(hi, v)
        if hi - lo >= height:
            break
        i -= 1
    return n - 1 - i


@njit(cache=True)
def has_flat_run(x: np.ndarray, height: float, length: int) -> bool:
    """Whether ``x`` (finite) stays within a band ``height`` tall for ``length`` samples.

    Such a stretch holds two samples ``length // 2`` apart on the grid of multiples of
    ``length // 2``, within ``height`` of each other: only around those is the stretch
    grown (backwards, then forwards, in one band), so a live signal costs n / (length / 2)
    comparisons, not a scan of every sample.
    """
    n = x.shape[0]
    step = max(length // 2, 1)
    for j in range(0, n - step, step):
        if abs(x[j + step] - x[j]) >= height:
            continue
        lo = hi = x[j]
        first = j
        while first > 0:
            v = x[first - 1]
            if max(hi, v) - min(lo, v) >= height:
                break
            lo, hi = min(lo, v), max(hi, v)
            first -= 1
        last = j
        while last + 1 < n:
            v = x[last + 1]
            if max(hi, v) - min(lo, v) >= height:
                break
            lo, hi = min(lo, v), max(hi, v)
            last += 1
        if last - first + 1 >= length:
            return True
    return False


@njit(cache=True)
def repeated_fraction(x: np.ndarray) -> float:
    """Share of successive samples that repeat the previous one exactly."""
    repeats = 0
    for i in range(1, x.shape[0]):
        if x[i] == x[i - 1]:
            repeats += 1
    return repeats / max(x.shape[0] - 1, 1)


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
def trend_slopes(histories: np.ndarray, fs: float, min_points: int) -> np.ndarray:
    """:func:`trend_slope` of each row of ``histories`` (``(rows, samples)``), the same
    numbers, in one call."""
    out = np.empty(histories.shape[0])
    for r in range(histories.shape[0]):
        out[r] = trend_slope(histories[r], fs, min_points)
    return out
