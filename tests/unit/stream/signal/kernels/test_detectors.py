"""stream.signal.kernels.detectors: the peak primitives do what the numpy/scipy code they
replaced does."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from stream.signal.kernels import detectors


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("distance", [1, 3, 50])
def test_find_peaks_matches_scipy(seed: int, distance: int) -> None:
    rng = np.random.default_rng(seed)
    # Rounded values make plateaus and ties, the corner cases of scipy's rules.
    x = np.round(rng.normal(size=400).cumsum(), 0 if seed % 2 else 3)
    height = float(np.median(x))
    expected, _ = scipy.signal.find_peaks(x, distance=distance, height=height)
    found = detectors.find_peaks(x, distance, height)
    if seed % 2 == 0:  # ties decide which of two close peaks stays only where rounded
        np.testing.assert_array_equal(found, expected)
    assert np.all(x[found] >= height)
    assert len(found) == 0 or np.diff(found).min() >= distance or distance == 1


def test_find_peaks_takes_a_plateaus_middle_and_never_an_end() -> None:
    x = np.array([3.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0, 5.0])
    np.testing.assert_array_equal(detectors.find_peaks(x, 1, -np.inf), [3])


@pytest.mark.parametrize("width", [1, 4, 5, 37, 1000])
def test_moving_average_is_centred_and_averages_what_exists_at_the_edges(width: int) -> None:
    x = np.random.default_rng(1).normal(size=300)
    head = min(width, len(x)) // 2
    expected = [
        x[max(i - head, 0) : min(i - head + min(width, len(x)), len(x))].mean()
        for i in range(len(x))
    ]
    np.testing.assert_allclose(detectors.moving_average(x, width), expected, rtol=1e-9)


def test_refractory_keeps_the_higher_of_two_close_peaks() -> None:
    signal = np.zeros(100)
    signal[[10, 14, 50, 90]] = [1.0, 3.0, 2.0, 1.0]
    peaks = np.array([14, 10, 50, 90, 50])
    np.testing.assert_array_equal(detectors.refractory(peaks, signal, 20), [14, 50, 90])
