"""stream.signal.rhythm: heart rate, recent rate and RR features on beat sequences with known
answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.signal.beats import detect_r_peaks
from stream.signal.rhythm import heart_rate, median_heart_rate, recent_heart_rate, rr_features
from tests.unit.stream.signal.synthetic import regular_beats, synthetic_ecg


def test_heart_rate_needs_two_beats() -> None:
    assert math.isnan(heart_rate(np.array([10]), 128.0))
    assert heart_rate(np.array([0, 128]), 128.0) == pytest.approx(60.0)


def _rr_from(intervals: np.ndarray, fs: float = 1000.0) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(np.round(intervals * fs)))).astype(int)


def test_rr_irregularity_separates_af_from_sinus() -> None:
    rng = np.random.default_rng(7)
    sinus = 0.8 + 0.02 * np.sin(np.arange(30) / 3)  # respiratory sinus arrhythmia
    af = rng.uniform(0.4, 1.1, 30)  # irregularly irregular
    sinus_f = rr_features(_rr_from(sinus), 1000.0)
    af_f = rr_features(_rr_from(af), 1000.0)
    assert sinus_f["rr_irregularity"] < 0.05
    assert af_f["rr_irregularity"] > 0.15
    assert af_f["rr_irregularity"] > 5 * sinus_f["rr_irregularity"]
    assert af_f["rmssd_ms"] > 100 > sinus_f["rmssd_ms"]
    assert af_f["pnn50"] > 0.5 > sinus_f["pnn50"]


def test_isolated_ectopics_raise_ectopic_fraction_not_irregularity() -> None:
    intervals = np.full(20, 0.8)
    for i in (4, 11, 16):  # premature beat then full compensatory pause
        intervals[i], intervals[i + 1] = 0.5, 1.1
    features = rr_features(_rr_from(intervals), 1000.0)
    assert features["ectopic_fraction"] == pytest.approx(3 / 19)
    assert features["rr_irregularity"] < 0.05
    assert rr_features(_rr_from(np.full(20, 0.8)), 1000.0)["ectopic_fraction"] == 0.0


@pytest.mark.parametrize(
    ("beats", "finite"),
    [(0, set()), (2, {"rr_mean_s"}), (4, {"rr_mean_s", "rr_cv", "rmssd_ms", "pnn50"})],
)
def test_rr_features_need_enough_beats(beats: int, finite: set[str]) -> None:
    features = rr_features(np.arange(beats) * 100, 100.0)
    assert {k for k, v in features.items() if np.isfinite(v)} >= finite
    if beats < 3:
        assert {k for k, v in features.items() if np.isfinite(v)} == finite


def test_ecg_features_on_af_like_synthetic_ecg() -> None:
    fs = 128.0
    rng = np.random.default_rng(3)
    af_beats = np.cumsum(np.concatenate(([0.4], rng.uniform(0.45, 1.0, 20))))
    af_beats = af_beats[af_beats < 9.7]
    af = rr_features(detect_r_peaks(synthetic_ecg(af_beats, fs, 10.0), fs), fs)
    sinus = rr_features(detect_r_peaks(synthetic_ecg(regular_beats(75, 10.0), fs, 10.0), fs), fs)
    assert af["rr_irregularity"] > 0.1 > 0.03 > sinus["rr_irregularity"]


def test_recent_heart_rate_follows_a_step_within_two_beats() -> None:
    fs = 250.0
    slow = np.arange(0, 6, 0.8)  # 75 bpm
    fast = slow[-1] + np.cumsum([0.4, 0.4, 0.4])  # then 150 bpm
    peaks = np.round(np.concatenate([slow, fast]) * fs).astype(np.int64)
    assert median_heart_rate(peaks, fs) == pytest.approx(75, abs=0.1)  # the median lags
    # The displayed rate averages the last 8 s: all 10 intervals, 3 of them at 150 bpm.
    assert heart_rate(peaks, fs) == pytest.approx(60 * 10 / (7 * 0.8 + 3 * 0.4), abs=0.1)
    assert recent_heart_rate(peaks[:-1], fs) == pytest.approx(150, abs=0.1)
    assert recent_heart_rate(peaks[:-2], fs) == pytest.approx(100, abs=0.1)  # one beat in
    assert math.isnan(recent_heart_rate(peaks[:2], fs))


def test_recent_heart_rate_averages_out_a_premature_beat_and_its_pause() -> None:
    fs = 250.0
    beats = [0.0, 0.8, 1.6, 2.4, 2.8, 4.0]  # premature at 2.8, compensatory pause to 4.0
    assert recent_heart_rate(np.round(np.array(beats) * fs).astype(np.int64), fs) == (
        pytest.approx(75, abs=0.1)
    )


def test_a_beat_still_awaited_lowers_the_recent_rate_before_it_comes() -> None:
    fs = 250.0
    peaks = np.round(np.arange(0, 8.5, 0.8) * fs).astype(np.int64)  # 75 bpm up to 8.0 s
    on_time = int(8.7 * fs)  # the next beat is not due before 8.8 s
    assert recent_heart_rate(peaks, fs, on_time) == pytest.approx(75, abs=0.1)
    # 2 s without a beat: the rate is at most 2 beats over 0.8 s + 2 s.
    stopped = int(10.0 * fs) + 1
    assert recent_heart_rate(peaks, fs, stopped) == pytest.approx(120 / 2.8, abs=0.1)
