"""Beat-series kernels: values at beat times put on a regular grid.

Owns :func:`edr_rate` (R-peak amplitudes interpolated at 4 Hz and their breathing frequency,
for :mod:`stream.signal.respiration`) and :func:`held_rr` (each beat's RR interval held at the
model input rate, for :mod:`stream.scoring.inputs`). Neither calls another kernel. Example::

    >>> rr, drr = held_rr(np.array([0, 100, 250]), np.zeros(300, dtype=bool), 100.0, 2.0, 6)
    >>> rr.tolist(), drr.tolist()
    ([nan, nan, 1.0, 1.0, 1.0, 1.5], [nan, nan, nan, nan, nan, 0.5])
"""

from __future__ import annotations

import numpy as np
from numba import njit

_INT = np.int64


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
