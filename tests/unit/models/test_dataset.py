"""Windows, cleaning, patient-wise folds and the real record's labels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from models import dataset
from models.influx import RANGE_PATTERN, windows_from_series


def test_rhythm_windows_have_labels_of_both_classes() -> None:
    windows = dataset.rhythm_windows(n_patients=6, seconds=120, seed=1)
    assert windows.x.shape[1:] == (640, 3) and windows.raw.shape[1] == 1280
    assert windows.channels == ("ecg", "rr_s", "drr_s")
    assert windows.y.shape == (len(windows), 2)
    assert windows.y[:, 0].any() and not windows.y[:, 0].all()
    assert len(np.unique(windows.patients)) == 6


def test_folds_never_split_a_patient() -> None:
    windows = dataset.rhythm_windows(n_patients=9, seconds=60, seed=2)
    for train, val in dataset.patient_folds(windows, 3, seed=0):
        assert not set(windows.patients[train]) & set(windows.patients[val])


def test_cleaning_drops_gaps_impossible_flat_and_duplicates() -> None:
    x = np.random.default_rng(0).normal(size=(6, 640, 1)).astype(np.float32)
    x[1, 10] = np.nan
    x[2, 5] = 50.0  # mV: no skin gives that
    x[3] = 0.0
    x[5] = x[4]
    windows = dataset.Windows(
        x, np.zeros((6, 2), np.float32), np.array(["a"] * 6), ("af", "v"), ("ecg",), 64
    )
    cleaned = dataset.clean_ecg(windows)
    assert len(cleaned) == 2
    assert cleaned.dropped == {"gap": 1, "impossible": 1, "flat": 1, "duplicate": 1}


def test_normalization_ignores_missing_values() -> None:
    x = np.array([[[1.0, np.nan]], [[3.0, 4.0]]], dtype=np.float32)
    stats = dataset.fit_normalization(x)
    assert stats.mean == [2.0, 4.0] and stats.std[1] == 1.0  # constant channel keeps std 1


def test_positive_weights_favour_the_rare_class() -> None:
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=np.float32)
    np.testing.assert_allclose(dataset.positive_weights(y), [3.0, 3.0])


def test_record_208_has_ventricular_beats() -> None:
    windows = dataset.record_208_windows()
    assert len(windows) > 50
    # Record 208 has frequent ventricular ectopy: most, not all, windows hold some.
    assert 0.5 < windows.y[:, 1].mean() < 1.0


def test_influx_series_become_labelled_windows() -> None:
    times = np.arange(0, 3600, 10.0)
    values = [[70.0, 97.0, 14.0, 37.0, 0.1]] * len(times)
    series = {"p1": list(zip(times, values, strict=True))}
    windows = windows_from_series(series, {"p1": [3000.0]}, hop=6)
    assert windows.x.shape[1:] == (60, 5)
    ends = times[59::6][: len(windows)]
    expected = (ends < 3000) & (ends + 1800 >= 3000)
    np.testing.assert_array_equal(windows.y[:, 0].astype(bool), expected)
    assert RANGE_PATTERN.match("-7d") and not RANGE_PATTERN.match('-1d) |> drop(columns: ["x"])')
