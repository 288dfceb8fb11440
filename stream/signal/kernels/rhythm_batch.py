"""Rhythm features of many beat sequences in one compiled call.

Owns :func:`rhythm_batch` (and its kernel :func:`rhythm_features`): for each of N beat
sequences, what :mod:`stream.signal.rhythm`'s per-window functions give,
:func:`~stream.signal.rhythm.heart_rate`,
:func:`~stream.signal.rhythm.recent_heart_rate`,
:func:`~stream.signal.rhythm.rr_features` (the nine ``RR_KEYS``) and
:func:`~stream.signal.rhythm.pulse_run_rate`, step for step, without their per-window
Python and numpy overhead. rhythm.py owns the algorithms, their meaning and their
constants; this module owns the loop.

Layout (CSR): the beat positions of all sequences in one flat float64 array, sequence
``i`` being ``positions[offsets[i]:offsets[i + 1]]`` (ascending); ``fs[i]`` says how many
position units make a second: 1.0 for beat times in seconds, the sampling rate for sample
indices. ``ends[i]`` is the position of the window's last sample (``length - 1`` samples
for a window of ``length`` samples, or its time), from which
:func:`~stream.signal.rhythm.recent_heart_rate` counts the wait for a beat still due;
nan counts no wait (``length=None``). The result is an ``(N, N_COLUMNS)`` float64 array,
columns in :data:`COLUMNS` order (indices :data:`HEART_RATE`, :data:`RECENT_HEART_RATE`,
:data:`RR_COLUMNS` by key, :data:`PULSE_RUN_RATE`).

Sample indices with their rate give rhythm.py's floats exactly (the same operations on the
same integers). Times in seconds give the same values up to rounding, except where an
interval sits exactly on a threshold (pnn50's 50 ms, the 80 % and 110 % of the median of
the ectopy rules; exactly the 8 s rate span, or a wait exactly the last interval, which
rhythm.py compares in whole samples): rhythm.py decides such a tie on whole samples or on
the rounding of ``samples / fs``, which times no longer carry. Times must be relative to
the window (not epoch seconds, whose float64 spacing, 0.2 µs, would show in the
intervals). Where rhythm.py divides by zero (repeated beat times) and raises, the kernel
gives inf or nan.
Example: two windows at 100 Hz, a regular 60 bpm one and bigeminy (0.5 s, 1.0 s)::

    >>> bigeminy = np.cumsum([0, 50, 100, 50, 100, 50, 100, 50, 100])
    >>> positions, offsets = pack([np.arange(0, 1000, 100), bigeminy])
    >>> rows = rhythm_batch(positions, offsets, fs=100.0)
    >>> rows[:, HEART_RATE].round(1).tolist()
    [60.0, 80.0]
    >>> rows[:, RR_COLUMNS["rr_irregularity_lag2"]].tolist()
    [0.0, 0.0]
    >>> rows[:, RR_COLUMNS["af_irregularity"]].tolist()  # bigeminy: every interval ectopy's
    [0.0, nan]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from stream.signal.rhythm import (
    PULSE_RUN_INTERVALS,
    RATE_INTERVALS,
    RATE_SPAN_S,
    RR_KEYS,
    RUN_INTERVALS,
)

_INT = np.int64

# Column order of the result: the displayed and the recent heart rate, rr_features' keys
# in RR_KEYS order, the pulse run rate.
COLUMNS: tuple[str, ...] = ("heart_rate", "recent_heart_rate", *RR_KEYS, "pulse_run_rate")
HEART_RATE = 0
RECENT_HEART_RATE = 1
RR_FIRST = 2
RR_COLUMNS: dict[str, int] = {key: RR_FIRST + k for k, key in enumerate(RR_KEYS)}
PULSE_RUN_RATE = RR_FIRST + len(RR_KEYS)
N_COLUMNS = len(COLUMNS)

# The thresholds of rr_features, written there as literals (rhythm.py is their source; the
# equality tests fail if the two part): a premature interval is shorter than 80 % of the
# median, the ectopic fraction's pause longer than 110 % of it, the ectopy filter's pause
# at least the median; pnn50 counts successive differences over 50 ms.
PREMATURE_FRACTION = 0.8
PAUSE_FRACTION = 1.1
PNN50_S = 0.05

# The rr_features keys the kernel computes, in RR_KEYS order. numba freezes the column
# indices below into the compiled code, and its cache notices a change to this file only:
# a change to rhythm.py's RR_KEYS must fail here, not fill stale columns.
_KERNEL_RR_KEYS = (
    "rr_mean_s",
    "rr_cv",
    "rmssd_ms",
    "pnn50",
    "rr_irregularity",
    "ectopic_fraction",
    "rr_irregularity_lag2",
    "run_rate_bpm",
    "af_irregularity",
)
if RR_KEYS != _KERNEL_RR_KEYS:
    raise RuntimeError("stream.signal.rhythm.RR_KEYS changed: update the rhythm_batch kernel")
_RR_MEAN = RR_COLUMNS["rr_mean_s"]
_RR_CV = RR_COLUMNS["rr_cv"]
_RMSSD = RR_COLUMNS["rmssd_ms"]
_PNN50 = RR_COLUMNS["pnn50"]
_IRREGULARITY = RR_COLUMNS["rr_irregularity"]
_ECTOPIC = RR_COLUMNS["ectopic_fraction"]
_IRREGULARITY_LAG2 = RR_COLUMNS["rr_irregularity_lag2"]
_RUN_RATE = RR_COLUMNS["run_rate_bpm"]
_AF_IRREGULARITY = RR_COLUMNS["af_irregularity"]


def pack(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The flat float64 positions and int64 offsets of ``sequences`` (CSR layout)."""
    offsets = np.zeros(len(sequences) + 1, dtype=_INT)
    np.cumsum([len(s) for s in sequences], out=offsets[1:])
    positions = (
        np.concatenate(sequences).astype(np.float64, copy=False) if len(sequences) else np.zeros(0)
    )
    return positions, offsets


def rhythm_batch(
    positions: np.ndarray,
    offsets: np.ndarray,
    fs: np.ndarray | float = 1.0,
    ends: np.ndarray | None = None,
) -> np.ndarray:
    """Rhythm features of each sequence ``positions[offsets[i]:offsets[i + 1]]`` (see the
    module): an ``(N, N_COLUMNS)`` array in :data:`COLUMNS` order. ``fs``: position units
    per second, one for all or one per sequence (1.0: times in seconds); ``ends``: each
    window's last sample position, nan (or ``None`` for all) to count no wait."""
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    offsets = np.ascontiguousarray(offsets, dtype=_INT)
    count = len(offsets) - 1
    if count < 0 or (count and (offsets[0] < 0 or offsets[-1] > len(positions))):
        raise ValueError("offsets must start at or after 0 and end within positions")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must not decrease")
    rates = np.broadcast_to(np.asarray(fs, dtype=np.float64), (count,))
    waits = (
        np.full(count, np.nan)
        if ends is None
        else np.ascontiguousarray(ends, dtype=np.float64).reshape(count)
    )
    # rhythm.py's constants go in as arguments, read at each call: numba freezes a global
    # into the compiled code and its cache notices a change to this file only, so a
    # constant changed in rhythm.py would otherwise keep its old value here.
    return rhythm_features(
        positions,
        offsets,
        np.ascontiguousarray(rates),
        waits,
        RATE_SPAN_S,
        RATE_INTERVALS,
        RUN_INTERVALS,
        PULSE_RUN_INTERVALS,
    )


@njit(cache=True)
def _median(values: np.ndarray, n: int) -> float:
    """Median of ``values[:n]`` (n ≥ 1), sorting them in place: a dozen values, where an
    insertion sort costs less than np.median's copy and partition."""
    for i in range(1, n):
        v = values[i]
        j = i - 1
        while j >= 0 and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v
    mid = n // 2
    return values[mid] if n % 2 else 0.5 * (values[mid - 1] + values[mid])


@njit(cache=True)
def _run_rate(rr: np.ndarray, n: int, intervals: int) -> float:
    """60 over the longest of ``intervals`` consecutive of ``rr[:n]``, where that is
    shortest; nan with fewer than ``intervals``."""
    if n < intervals:
        return np.nan
    shortest = np.inf
    for i in range(n - intervals + 1):
        longest = rr[i]
        for j in range(i + 1, i + intervals):
            longest = max(longest, rr[j])
        shortest = min(shortest, longest)
    return 60.0 / shortest


# error_model="numpy": where rhythm.py raises ZeroDivisionError (repeated beat times), a
# batch must not fail for one bad sequence; the division gives inf or nan instead.
@njit(cache=True, error_model="numpy")
def rhythm_features(
    positions: np.ndarray,
    offsets: np.ndarray,
    fs: np.ndarray,
    ends: np.ndarray,
    rate_span_s: float,
    rate_intervals: int,
    run_intervals: int,
    pulse_run_intervals: int,
) -> np.ndarray:
    """The kernel of :func:`rhythm_batch`, rhythm.py's constants passed in (its
    ``RATE_SPAN_S``, ``RATE_INTERVALS``, ``RUN_INTERVALS``, ``PULSE_RUN_INTERVALS``)."""
    count = offsets.shape[0] - 1
    out = np.full((count, N_COLUMNS), np.nan)
    longest = 0
    for i in range(count):
        longest = max(longest, offsets[i + 1] - offsets[i])
    # Scratch for one sequence's intervals, their differences and a median's sorting.
    rr = np.empty(max(longest, 1))
    successive = np.empty(max(longest, 1))
    scratch = np.empty(max(longest, 1))
    flagged = np.zeros(max(longest, 1), dtype=np.bool_)
    for i in range(count):
        first = offsets[i]
        m = offsets[i + 1] - first
        f = fs[i]
        row = out[i]
        if m < 2:
            rr_count = 0
        else:
            # heart_rate: the last intervals within the span, at most rate_intervals, an
            # even number of them when two or more.
            last = positions[first + m - 1]
            span_limit = rate_span_s * f
            taken = 1
            while (
                taken < rate_intervals
                and taken < m - 1
                and last - positions[first + m - 2 - taken] <= span_limit
            ):
                taken += 1
            if taken >= 2 and taken % 2:
                taken -= 1
            row[HEART_RATE] = 60.0 * f * taken / (last - positions[first + m - 1 - taken])
            rr_count = m - 1
            for j in range(rr_count):
                rr[j] = (positions[first + j + 1] - positions[first + j]) / f
        if m >= 3:
            # recent_heart_rate: the last two intervals, or the last and the wait since.
            last = positions[first + m - 1]
            previous = positions[first + m - 2]
            span = last - positions[first + m - 3]
            end = ends[i]
            if not math.isnan(end):
                waiting = end - last
                if waiting > last - previous:
                    span = max(span, last - previous + waiting)
            row[RECENT_HEART_RATE] = 120.0 * f / span
        row[PULSE_RUN_RATE] = _run_rate(rr, rr_count, pulse_run_intervals)
        if m == 2:
            row[_RR_MEAN] = rr[0]
        if m < 3:
            continue
        # rr_features, its sums in its order (left to right) for the same rounding.
        for j in range(rr_count - 1):
            successive[j] = rr[j + 1] - rr[j]
        n_successive = rr_count - 1
        scratch[:rr_count] = rr[:rr_count]
        reference = _median(scratch, rr_count)
        total = 0.0
        for j in range(rr_count):
            total += rr[j]
        mean = total / rr_count
        row[_RR_MEAN] = mean
        spread = 0.0
        for j in range(rr_count):
            spread += (rr[j] - mean) ** 2
        row[_RR_CV] = math.sqrt(spread / rr_count) / mean
        squares = 0.0
        over = 0
        for j in range(n_successive):
            squares += successive[j] * successive[j]
            if abs(successive[j]) > PNN50_S:
                over += 1
        row[_RMSSD] = 1000.0 * math.sqrt(squares / n_successive)
        row[_PNN50] = over / n_successive
        if rr_count >= 3:
            for j in range(n_successive):
                scratch[j] = abs(successive[j])
            row[_IRREGULARITY] = _median(scratch, n_successive) / reference
        premature = 0
        for j in range(n_successive):
            if rr[j] < PREMATURE_FRACTION * reference and rr[j + 1] > PAUSE_FRACTION * reference:
                premature += 1
        row[_ECTOPIC] = premature / n_successive
        if rr_count >= 4:
            for j in range(2, rr_count):
                scratch[j - 2] = abs(rr[j] - rr[j - 2])
            row[_IRREGULARITY_LAG2] = _median(scratch, rr_count - 2) / reference
        row[_RUN_RATE] = _run_rate(rr, rr_count, run_intervals)
        # af_irregularity: successive differences not touching a premature beat's
        # interval or its pause.
        flagged[:rr_count] = False
        for j in range(n_successive):
            if rr[j] < PREMATURE_FRACTION * reference and rr[j + 1] >= reference:
                flagged[j] = True
                flagged[j + 1] = True
        kept = 0
        for j in range(n_successive):
            if not (flagged[j] or flagged[j + 1]):
                scratch[kept] = abs(successive[j])
                kept += 1
        if kept >= 3:
            row[_AF_IRREGULARITY] = _median(scratch, kept) / reference
    return out
