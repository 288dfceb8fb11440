"""stream.signal.filters: a batch of windows filters exactly as each window on its own."""

from __future__ import annotations

import numpy as np

from stream.signal.filters import bandpass


def test_bandpass_of_a_batch_filters_each_row_as_on_its_own() -> None:
    rows = np.random.default_rng(4).normal(size=(5, 1280))
    together = bandpass(rows, 128.0, 5.0, 15.0)
    for row, filtered in zip(rows, together, strict=True):
        np.testing.assert_array_equal(filtered, bandpass(row, 128.0, 5.0, 15.0))
