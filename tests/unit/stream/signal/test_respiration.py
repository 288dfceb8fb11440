"""stream.signal.respiration: ECG-derived respiration of synthetic breathing, and the device's
own rate first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.signal.respiration import respiration_rate
from tests.unit.stream.signal.synthetic import regular_beats, synthetic_ecg


@pytest.mark.parametrize("breaths_per_min", [10.0, 15.0, 24.0])
def test_ecg_derived_respiration(breaths_per_min: float) -> None:
    fs, duration = 128.0, 10.0
    beats = regular_beats(80.0, duration)
    amplitude = 1.0 + 0.15 * np.sin(2 * np.pi * breaths_per_min / 60.0 * beats)
    ecg = synthetic_ecg(beats, fs, duration, amplitude)
    assert respiration_rate(ecg, fs) == pytest.approx(breaths_per_min, abs=3.0)


def test_device_respiration_rate_wins() -> None:
    ecg = synthetic_ecg(regular_beats(80.0, 10.0), 128.0, 10.0)
    assert respiration_rate(ecg, 128.0, device_rate=17.0) == 17.0
    assert math.isnan(respiration_rate(None, 128.0))
