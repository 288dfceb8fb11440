"""Compiled pieces the causal stream kernels share: the band-pass step, gap bookkeeping,
output growth.

Owns what :mod:`~stream.signal.kernels.ecg_stream` (the Pan–Tompkins beat loop) and
:mod:`~stream.signal.kernels.ppg_stream` (the Elgendi pulse loop) do alike per sample and
per chunk: read a device's two band-pass biquads (scipy.signal.sosfilt's transposed direct
form II, started from the unit-step state so the first sample is no step) into locals, step
them, close a gap on a finite sample, and grow an output array between chunks. The per-sample
ones take and return scalars and tuples only (LLVM inlines them; an array argument would
cost each call its reference counting), so the loops run as fast as with the code written
out: the band-pass and its state are tuples of floats (locals, not memory).

numba's cache notices a change to its caller's file only, not to this one: a change here
must be followed by touching both stream kernels' files (or clearing their caches).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sections(sos: np.ndarray, sos_zi: np.ndarray, d: int) -> tuple[float, ...]:
    """Device ``d``'s band-pass as locals: its two biquads' coefficients (b0, b1, b2, a1,
    a2 of each; a0 is 1), then their unit-step initial state (2 values each)."""
    return (
        sos[d, 0, 0],
        sos[d, 0, 1],
        sos[d, 0, 2],
        sos[d, 0, 4],
        sos[d, 0, 5],
        sos[d, 1, 0],
        sos[d, 1, 1],
        sos[d, 1, 2],
        sos[d, 1, 4],
        sos[d, 1, 5],
        sos_zi[d, 0, 0],
        sos_zi[d, 0, 1],
        sos_zi[d, 1, 0],
        sos_zi[d, 1, 1],
    )


@njit(cache=True)
def load_state(fst: np.ndarray, d: int, column: int) -> tuple[float, float, float, float]:
    """Device ``d``'s biquad state, four values from ``column`` of its float state."""
    return fst[d, column], fst[d, column + 1], fst[d, column + 2], fst[d, column + 3]


@njit(cache=True)
def store_state(fst: np.ndarray, d: int, column: int, z: tuple[float, float, float, float]) -> None:
    """Write :func:`load_state`'s values back."""
    fst[d, column], fst[d, column + 1], fst[d, column + 2], fst[d, column + 3] = z


@njit(cache=True)
def band_pass(
    x: float, z: tuple[float, ...], started: int, bp: tuple[float, ...]
) -> tuple[float, tuple[float, ...], int]:
    """One sample through the two biquads: (output, new state, 1: the filter started).
    Before the first sample (``started`` 0) the state is the unit-step state scaled by
    ``x``: the filter starts as if that sample had always been there (no step). Scalars
    only: an array argument would cost each sample its reference counting."""
    z0, z1, z2, z3 = z
    if started == 0:
        z0, z1, z2, z3 = bp[10] * x, bp[11] * x, bp[12] * x, bp[13] * x
    out = bp[0] * x + z0
    z0 = bp[1] * x - bp[3] * out + z1
    z1 = bp[2] * x - bp[4] * out
    y = bp[5] * out + z2
    z2 = bp[6] * out - bp[8] * y + z3
    z3 = bp[7] * out - bp[9] * y
    return y, (z0, z1, z2, z3), 1


@njit(cache=True)
def gap_sample(hold: float, n: int, gap_start: int) -> tuple[float, int]:
    """A missing sample at ``n`` once the stream started: (the held sample it stands for,
    where the gap began)."""
    return hold, n if gap_start < 0 else gap_start


@njit(cache=True)
def gap_closed(n: int, gap_start: int, gap_end: int) -> tuple[int, int, int]:
    """A finite sample at ``n``: (length of the gap it ends, -1 for none; the gap start,
    -1 now; the last gap's end)."""
    if gap_start >= 0:
        return n - gap_start, -1, n
    return -1, gap_start, gap_end


@njit(cache=True)
def grown(values: np.ndarray, count: int, size: int) -> np.ndarray:
    """``values[:count]`` in a new array of ``size`` (between chunks, never in a sample
    loop: an array that may be replaced there costs the loop its speed, numba's reference
    counting)."""
    out = np.empty(size, dtype=values.dtype)
    out[:count] = values[:count]
    return out
