"""stream.signal.kernels.beat_series: EDR finds the breathing frequency of R-peak amplitudes."""

from __future__ import annotations

import numpy as np
import pytest

from stream.signal.kernels import beat_series


def test_edr_rate_finds_the_breathing_frequency() -> None:
    times = np.arange(0.0, 10.0, 0.8)
    amplitudes = 1.0 + 0.1 * np.sin(2 * np.pi * 0.3 * times)  # 18 breaths/min
    turns = 2 * np.pi * np.arange(512) / 512
    twiddles = (np.cos(turns), np.sin(turns))
    assert beat_series.edr_rate(amplitudes, times, *twiddles, 0.1, 0.75) == pytest.approx(
        18, abs=0.5
    )
    assert np.isnan(beat_series.edr_rate(np.ones(len(times)), times, *twiddles, 0.1, 0.75))
