"""Compiled loops of :mod:`stream.signal.fleet_buffers`: many devices' rings per call.

Each ring is one row of a ``(slots, capacity, width)`` array with its ``end`` and ``start``
(absolute sample indices, ``-1``: empty) in per-slot arrays. The loops are
:class:`stream.signal.buffers._Ring`'s ``write``, ``scatter`` and ``read`` and
:class:`~stream.signal.buffers.DeviceBuffers`' window schedule and ``_latest``, step for
step (same branches, same float operations), so the fleet's windows equal the per-device
ones exactly; ``tests/unit/stream/signal/test_fleet_buffers.py`` checks that.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NO_INDEX = np.iinfo(np.int64).max


@njit(cache=True)
def _fill_nan(data: np.ndarray, row: int, first: int, last: int) -> None:
    """``_Ring._fill`` of NaN over absolute indices ``[first, last)``."""
    capacity, width = data.shape[1], data.shape[2]
    n = last - first
    if n <= 0:
        return
    if n > capacity:
        first, n = last - capacity, capacity
    # At most two contiguous runs of the ring's row, as flat slices (they compile to
    # vectorized copies; an index per sample did not).
    ring = data[row].reshape(capacity * width)
    head = first % capacity
    split = min(n, capacity - head)
    ring[head * width : (head + split) * width] = np.nan
    ring[: (n - split) * width] = np.nan


@njit(cache=True)
def _fill_values(
    data: np.ndarray, row: int, first: int, last: int, values: np.ndarray, offset: int
) -> None:
    """``_Ring._fill`` of ``values[offset : offset + last - first]`` at ``[first, last)``."""
    capacity, width = data.shape[1], data.shape[2]
    n = last - first
    if n <= 0:
        return
    if n > capacity:  # only the newest ``capacity`` samples fit
        offset += n - capacity
        first, n = last - capacity, capacity
    ring = data[row].reshape(capacity * width)
    flat = values.reshape(values.shape[0] * width)
    head = first % capacity
    split = min(n, capacity - head)
    ring[head * width : (head + split) * width] = flat[offset * width : (offset + split) * width]
    ring[: (n - split) * width] = flat[(offset + split) * width : (offset + n) * width]


@njit(cache=True)
def write_blocks(
    data: np.ndarray,
    end: np.ndarray,
    start: np.ndarray,
    rows: np.ndarray,
    first: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    values: np.ndarray,
    snap: np.ndarray,
) -> None:
    """``_Ring.write`` of block ``i`` (``values[offsets[i] : offsets[i] + lengths[i]]``,
    ``(n, width)``) at absolute index ``first[i]`` of ring ``rows[i]``, after the clock
    snap (``snap[i]`` samples, ``DeviceBuffers.append``). One block per ring per call."""
    capacity = data.shape[1]
    for i in range(len(rows)):
        row = rows[i]
        at = first[i]
        end_before = end[row]
        if end_before >= 0 and abs(at - end_before) <= snap[i]:
            at = end_before
        last = at + lengths[i]
        if end_before < 0 or at >= end_before + capacity:
            data[row, :, :] = np.nan  # first data, or a gap longer than the ring
            start[row] = at
        elif at > end_before:
            _fill_nan(data, row, end_before, at)
        if last <= end_before - capacity:
            continue  # entirely older than the ring holds
        skip = max(end_before - capacity - at, 0)
        _fill_values(data, row, at + skip, last, values, offsets[i] + skip)
        end[row] = max(end_before, last)
        start[row] = min(start[row], at + skip)


@njit(cache=True)
def scatter_blocks(
    data: np.ndarray,
    end: np.ndarray,
    start: np.ndarray,
    rows: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
) -> None:
    """``_Ring.scatter`` of block ``i`` (``values`` at ``indices`` from ``offsets[i]``,
    ``lengths[i]`` of them, in order: the last of a slot wins) into ring ``rows[i]``."""
    capacity = data.shape[1]
    for i in range(len(rows)):
        row = rows[i]
        begin = offsets[i]
        stop = begin + lengths[i]
        highest = indices[begin]
        lowest = indices[begin]
        for j in range(begin + 1, stop):
            highest = max(highest, indices[j])
            lowest = min(lowest, indices[j])
        newest = highest + 1
        end_before = end[row]
        if end_before < 0 or newest - capacity >= end_before:
            data[row, :, :] = np.nan
            start[row] = lowest
        elif newest > end_before:
            _fill_nan(data, row, end_before, newest)
        end_now = max(end_before, newest)
        end[row] = end_now
        kept_lowest = _NO_INDEX
        for j in range(begin, stop):
            if indices[j] >= end_now - capacity:
                data[row, indices[j] % capacity, 0] = values[j]
                kept_lowest = min(kept_lowest, indices[j])
        if kept_lowest != _NO_INDEX:
            start[row] = min(start[row], kept_lowest)


@njit(cache=True)
def read_blocks(
    data: np.ndarray,
    end: np.ndarray,
    start: np.ndarray,
    rows: np.ndarray,
    first: np.ndarray,
    out: np.ndarray,
) -> None:
    """``_Ring.read`` of ``[first[i], first[i] + out.shape[1])`` of ring ``rows[i]`` into
    ``out[i]``; NaN where not (or no longer) held."""
    capacity, width = data.shape[1], data.shape[2]
    length = out.shape[1]
    for i in range(len(rows)):
        row = rows[i]
        ring = data[row].reshape(capacity * width)
        window = out[i].reshape(length * width)
        lo = max(first[i], end[row] - capacity, start[row])
        hi = min(first[i] + length, end[row])
        held_from = min(max(lo - first[i], 0), length)
        held_to = max(hi - first[i], held_from)
        window[: held_from * width] = np.nan
        if held_to > held_from:  # at most two contiguous runs of the ring
            head = lo % capacity
            split = min(held_to - held_from, capacity - head)
            at = held_from * width
            window[at : at + split * width] = ring[head * width : (head + split) * width]
            rest = (held_to - held_from - split) * width
            window[at + split * width : at + split * width + rest] = ring[:rest]
        window[held_to * width :] = np.nan


@njit(cache=True)
def latest_values(histories: np.ndarray, recent: int, out: np.ndarray) -> None:
    """``DeviceBuffers._latest`` of each ``histories[v, i]`` (the newest finite value among
    the last ``recent``; NaN if none) into ``out[v, i]``."""
    for v in range(histories.shape[0]):
        for i in range(histories.shape[1]):
            values = histories[v, i]
            out[v, i] = np.nan
            for j in range(len(values) - 1, max(len(values) - recent, 0) - 1, -1):
                if np.isfinite(values[j]):
                    out[v, i] = values[j]
                    break


@njit(cache=True)
def due_ends(
    end: np.ndarray,
    start: np.ndarray,
    fs: np.ndarray,
    waveforms: int,
    slots: np.ndarray,
    last_emitted: np.ndarray,
    window_s: float,
    hop_s: float,
    lateness_s: float,
    out: np.ndarray,
    counts: np.ndarray,
) -> None:
    """``DeviceBuffers.due_ends`` of each of ``slots``: its ends into ``out[i, :counts[i]]``
    (oldest first), and ``last_emitted`` moved on.

    ``end``, ``start`` and ``fs`` are ``(signal, slot)``, the first ``waveforms`` signals the
    waveforms (``end < 0``: no ring). The clock rings are the waveforms (the vitals if the
    device has none), less any that ended more than a hop before the newest.
    """
    signals = end.shape[0]
    for i in range(len(slots)):
        slot = slots[i]
        counts[i] = 0
        lo, hi = 0, waveforms
        has_waveform = False
        for k in range(waveforms):
            if end[k, slot] >= 0:
                has_waveform = True
        if not has_waveform:
            lo, hi = waveforms, signals
        latest = -np.inf
        for k in range(lo, hi):
            if end[k, slot] >= 0:
                latest = max(latest, end[k, slot] / fs[k, slot])
        if latest == -np.inf:
            continue  # no ring at all
        newest = np.inf
        oldest = -np.inf
        for k in range(lo, hi):
            if end[k, slot] >= 0:
                t = end[k, slot] / fs[k, slot]
                if t > latest - hop_s:
                    newest = min(newest, t)
                    oldest = max(oldest, start[k, slot] / fs[k, slot])
        first = max(oldest + window_s, newest - lateness_s)
        if newest < first - 1e-9:
            continue
        hops = int(np.floor((newest - first) / hop_s + 1e-9))
        threshold = last_emitted[slot] + 0.5 * hop_s
        count = 0
        for back in range(hops, -1, -1):
            t_end = newest - hop_s * float(back)
            if t_end > threshold:
                out[i, count] = t_end
                count += 1
        counts[i] = count
        if count:
            last_emitted[slot] = out[i, count - 1]
