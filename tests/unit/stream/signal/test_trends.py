"""stream.signal.trends: the slope of a vitals history, per minute, once it has enough points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.signal.trends import SLOPE_MIN_POINTS, trend_slope


def test_trend_slope_is_per_minute_and_skips_missing_points() -> None:
    history = 37.0 + 0.1 * np.arange(300) / 60.0  # temperature rising 0.1 °C/min at 1 Hz
    history[50:80] = np.nan
    assert trend_slope(history, 1.0) == pytest.approx(0.1, abs=1e-9)
    assert trend_slope(history[::2], 0.5) == pytest.approx(0.1, abs=1e-9)


def test_trend_slope_needs_enough_points() -> None:
    assert math.isnan(trend_slope(None, 1.0))
    assert math.isnan(trend_slope(np.arange(SLOPE_MIN_POINTS - 1.0), 1.0))
    assert trend_slope(np.arange(float(SLOPE_MIN_POINTS)), 1.0) == pytest.approx(60.0)
