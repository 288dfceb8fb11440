"""Trends of the device-reported vitals: the least-squares slope of a vital's history.

Owns :func:`trend_slope` and :func:`trend_slopes` (the ``spo2_slope`` and ``temp_slope``
features) and the number of points a slope needs. The loop is
:func:`stream.signal.kernels.stats.trend_slope`.
Example (SpO2 falling 1 % a minute, sampled at 1 Hz)::

    >>> round(trend_slope(97.0 - np.arange(120) / 60.0, 1.0), 6)
    -1.0
    >>> trend_slope(np.full(600, np.nan), 1.0)
    nan
"""

from __future__ import annotations

import numpy as np

from stream.signal.kernels import stats
from stream.signal.window import NAN

SLOPE_MIN_POINTS = 30  # trend points needed before a slope means anything


def trend_slope(history: np.ndarray | None, fs: float) -> float:
    """Least-squares slope of a vitals history, per minute (nan with < 30 finite points)."""
    if history is None:
        return NAN
    values = np.ascontiguousarray(history, dtype=float)
    return stats.trend_slope(values, float(fs), SLOPE_MIN_POINTS)


def trend_slopes(histories: np.ndarray, fs: float) -> np.ndarray:
    """:func:`trend_slope` of each row of ``histories`` (``(rows, samples)``), in one call.

    >>> trend_slopes(np.stack([97.0 - np.arange(120) / 60.0, np.full(120, np.nan)]), 1.0)
    array([-1., nan])
    """
    values = np.ascontiguousarray(histories, dtype=float)
    return stats.trend_slopes(values, float(fs), SLOPE_MIN_POINTS)
