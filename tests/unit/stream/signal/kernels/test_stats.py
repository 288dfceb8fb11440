"""stream.signal.kernels.stats: the statistics kernels do what the numpy code they replaced
does."""

from __future__ import annotations

import numpy as np
import pytest

from stream.signal.kernels import stats


def test_kurtosis_of_gaussian_noise_is_three_and_of_a_constant_zero() -> None:
    noise = np.random.default_rng(2).normal(size=200_000)
    assert stats.kurtosis(noise) == pytest.approx(3.0, abs=0.05)
    assert stats.kurtosis(np.ones(50)) == 0.0


def test_agreement_counts_matches_within_tolerance() -> None:
    a = np.array([100, 300, 500])
    b = np.array([103, 330, 500, 700])
    # 100~103 and 500 match; 300 vs 330 is outside 10 samples: 2 / (3 + 4 - 2).
    assert stats.agreement(a, b, 10) == pytest.approx(2 / 5)
    assert stats.agreement(a, np.zeros(0, dtype=np.int64), 10) == 0.0


def test_span_and_repeated_fraction() -> None:
    x = np.array([1.0, 1.0, 3.0, 3.0, 3.0, -2.0])
    assert stats.span(x) == 5.0
    assert stats.repeated_fraction(x) == pytest.approx(3 / 5)
