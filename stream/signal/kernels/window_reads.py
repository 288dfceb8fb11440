"""Compiled reads of many windows at once from the devices' carried rings.

Owns the loops :class:`stream.signal.streaming.SignalState` uses to read a batch of due
windows without a Python call per window:

- :func:`ring_times`: the times in ``[t_start, t_end)`` of each window's device's recent
  ring (the beat stream's counted beats, the pulse stream's pulses), oldest first, packed
  (CSR: window ``w``'s are ``[offsets[w], offsets[w + 1])``), with the ring column each
  came from (to gather what the ring carries beside the time); a ring of epoch times
  (the second QRS detector's peaks) reads with origin 0 and rate 1, which leave every
  time as it is;
- :func:`agreement_batch`: bSQI of each window, the first detector's times against the
  second's up to the window's decided end (:func:`stream.signal.kernels.stats.agreement`).

A ring's times are ``origin + position / fs`` exactly as the per-device reads compute them,
so a batch read equals the per-window one bit for bit (tested). Example: one device whose
ring holds positions 10, 20 and 30 at 10 Hz from origin 100 s, read by two windows::

    >>> ring = np.array([[10, 20, 30, 0]])
    >>> times, columns, offsets = ring_times(
    ...     ring, np.array([3]), np.array([100.0]), np.array([10.0]),
    ...     np.array([0, 0]), np.array([101.0, 102.5]), np.array([103.0, 110.0]))
    >>> times.tolist(), columns.tolist(), offsets.tolist()
    ([101.0, 102.0, 103.0], [0, 1, 2], [0, 2, 3])
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stream.signal.kernels.stats import agreement


@njit(cache=True)
def ring_times(
    ring: np.ndarray,
    counts: np.ndarray,
    origins: np.ndarray,
    rates: np.ndarray,
    slots: np.ndarray,
    t_start: np.ndarray,
    t_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, ring columns, offsets) of each window's ring entries in ``[t_start, t_end)``.

    ``ring[slot]`` holds sample positions in a circle of ``ring.shape[1]`` (the newest
    ``counts[slot]`` ever written end at ``counts[slot] % width``); a window whose slot is
    negative (an unknown device) reads none."""
    n = slots.shape[0]
    width = ring.shape[1]
    offsets = np.zeros(n + 1, dtype=np.int64)
    # One pass into room for every ring entry of every window (at most ``width`` each),
    # cut to what was found.
    times = np.empty(n * width, dtype=np.float64)
    columns = np.empty(n * width, dtype=np.int64)
    at = 0
    for w in range(n):
        slot = slots[w]
        if slot >= 0:
            count = counts[slot]
            for j in range(count - min(count, width), count):
                t = origins[slot] + ring[slot, j % width] / rates[slot]
                if t >= t_start[w] and t < t_end[w]:
                    times[at] = t
                    columns[at] = j % width
                    at += 1
        offsets[w + 1] = at
    times, columns = times[:at].copy(), columns[:at].copy()
    return times, columns, offsets


@njit(cache=True)
def agreement_batch(
    first: np.ndarray,
    first_offsets: np.ndarray,
    second: np.ndarray,
    second_offsets: np.ndarray,
    ends: np.ndarray,
    tolerance: float,
) -> np.ndarray:
    """Each window's agreement of the two detectors' times (sorted, packed) before its
    ``ends[w]`` (a NaN end reads none)."""
    n = ends.shape[0]
    out = np.empty(n)
    for w in range(n):
        a = first[first_offsets[w] : first_offsets[w + 1]]
        b = second[second_offsets[w] : second_offsets[w + 1]]
        out[w] = agreement(a[a < ends[w]], b[b < ends[w]], tolerance)
    return out


@njit(cache=True)
def _numpy_sum(x: np.ndarray) -> float:
    """``np.sum`` of a contiguous float64 array of at most 128 values, to the last bit:
    numpy's pairwise summation (eight running sums below its block size)."""
    n = x.shape[0]
    if n < 8:
        total = 0.0
        for i in range(n):
            total += x[i]
        return total
    r = x[:8].copy()
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            r[j] += x[i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        total += x[i]
        i += 1
    return total


@njit(cache=True)
def finite_means(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each packed group's ``np.mean`` of its finite values, bit for bit (0.0 when none;
    groups of at most 128 values, as the recent rings hold)."""
    n = offsets.shape[0] - 1
    out = np.zeros(n)
    for w in range(n):
        group = values[offsets[w] : offsets[w + 1]]
        finite = group[np.isfinite(group)]
        if finite.shape[0] > 0:
            out[w] = _numpy_sum(finite) / finite.shape[0]
    return out
