"""stream.signal.features: the whole feature vector of synthetic windows with known answers,
and the batched analysis equal to one window at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.signal.beats import detect_r_peaks
from stream.signal.features import analyze_window, analyze_windows, window_features
from stream.signal.quality import ecg_quality, ppg_quality
from stream.signal.window import FEATURE_NAMES, SignalWindow
from tests.unit.stream.signal.synthetic import UPRIGHT, acc_segments, regular_beats, synthetic_ecg


def test_window_features_all_signals() -> None:
    fs_ecg, fs_ppg, fs_acc = 128.0, 64.0, 25.0
    t_ppg = np.arange(640) / fs_ppg
    history = 95.0 - 0.5 * np.arange(600) / 60.0  # SpO2 falling 0.5 %/min
    window = SignalWindow(
        t_start=1000.0,
        t_end=1010.0,
        ecg=synthetic_ecg(regular_beats(72, 10.0), fs_ecg, 10.0),
        ecg_fs=fs_ecg,
        ppg=np.sin(2 * np.pi * 1.2 * t_ppg) ** 21,
        ppg_fs=fs_ppg,
        acc=acc_segments(fs_acc, [(10, UPRIGHT, 0.0)]),
        acc_fs=fs_acc,
        hr=71.0,
        spo2=93.0,
        temp=37.2,
        battery=80.0,
        trends={"spo2": history, "temp": np.full(600, np.nan)},
    )
    analysis = analyze_window(window)
    features = analysis.features
    assert tuple(features) == FEATURE_NAMES
    assert features["ecg_hr_bpm"] == pytest.approx(72, abs=1.5)
    assert features["ppg_hr_bpm"] == pytest.approx(72, abs=1.5)
    assert features["spo2_slope"] == pytest.approx(-0.5, abs=1e-6)
    assert math.isnan(features["temp_slope"])
    assert (features["spo2"], features["hr_device"], features["battery"]) == (93.0, 71.0, 80.0)
    assert features["still"] == 1.0 and features["motion"] == 0.0
    assert features["ecg_sqi"] > 0.9 and features["ecg_lead_off"] == 0.0
    beats_s = analysis.beats_s
    assert np.all((beats_s >= 1000.0) & (beats_s < 1010.0))
    assert np.allclose(beats_s, 1000.0 + regular_beats(72, 10.0), atol=0.02)
    assert np.all(np.diff(analysis.pulses_s) > 0.7)


def test_rr_intervals_never_span_a_gap() -> None:
    fs = 128.0
    ecg = synthetic_ecg(regular_beats(60.0, 10.0), fs, 10.0)
    ecg[int(2.5 * fs) : int(3.8 * fs)] = np.nan  # drops the beat at 3.4 s
    features = window_features(SignalWindow(t_start=0.0, t_end=10.0, ecg=ecg, ecg_fs=fs))
    assert features["ecg_hr_bpm"] == pytest.approx(60.0, abs=1.0)
    assert features["rr_mean_s"] == pytest.approx(1.0, abs=0.02)  # no 2 s "interval"
    assert features["ectopic_fraction"] == 0.0


def test_window_features_missing_signals_are_nan() -> None:
    features = window_features(SignalWindow(t_start=0.0, t_end=10.0, resp=18.0))
    assert tuple(features) == FEATURE_NAMES
    assert features["resp_rate"] == 18.0
    finite = {k for k, v in features.items() if np.isfinite(v)}
    assert finite == {"resp_rate"}


def test_window_features_lead_off_hides_rate() -> None:
    features = window_features(
        SignalWindow(t_start=0.0, t_end=10.0, ecg=np.zeros(1280), ecg_fs=128.0)
    )
    assert features["ecg_lead_off"] == 1.0 and features["ecg_flat"] == 1.0
    assert features["ecg_sqi"] == 0.0
    assert math.isnan(features["ecg_hr_bpm"])


def _mixed_windows(record_208: np.ndarray) -> list[SignalWindow]:
    """Windows of several lengths and rates, with gaps, flat and missing signals."""
    rng = np.random.default_rng(9)
    t_ppg = np.arange(640) / 64.0
    windows = []
    for k in range(6):
        ecg = synthetic_ecg(regular_beats(55 + 10 * k, 10.0), 128.0, 10.0)
        ppg = np.sin(2 * np.pi * (0.9 + 0.1 * k) * t_ppg) ** 21 + rng.normal(0, 0.05 * k, 640)
        if k == 2:
            ecg[300:420] = np.nan
            ppg[100:150] = np.nan
        if k == 4:
            ecg[:] = 0.1  # flat: lead off
        windows.append(SignalWindow(k, k + 10.0, ecg=ecg, ecg_fs=128.0, ppg=ppg, ppg_fs=64.0))
    for start in (0, 20_000, 60_000):  # a second rate and length: real arrhythmic ECG
        windows.append(SignalWindow(0.0, 10.0, ecg=record_208[start : start + 3600], ecg_fs=360.0))
    windows.append(SignalWindow(0.0, 0.5, ecg=rng.normal(size=64), ecg_fs=128.0))  # short
    windows.append(SignalWindow(0.0, 10.0, ecg=np.full(1280, np.nan), ecg_fs=128.0))
    windows.append(SignalWindow(0.0, 10.0, spo2=96.0))
    return windows


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_batched_analysis_equals_each_window_on_its_own(record_208: np.ndarray) -> None:
    windows = _mixed_windows(record_208)
    batched = analyze_windows(windows)
    assert len(batched) == len(windows)
    for window, together in zip(windows, batched, strict=True):
        alone = analyze_window(window)
        assert tuple(together.features) == FEATURE_NAMES
        assert all(_same(together.features[k], alone.features[k]) for k in FEATURE_NAMES)
        np.testing.assert_array_equal(together.beats_s, alone.beats_s)
        np.testing.assert_array_equal(together.pulses_s, alone.pulses_s)
        if window.ecg is None:
            assert together.r_peaks is None
            continue
        # The 1-D detectors and quality indices (their own filters and spectra) agree exactly.
        np.testing.assert_array_equal(together.r_peaks, detect_r_peaks(window.ecg, window.ecg_fs))
        quality = ecg_quality(window.ecg, window.ecg_fs)
        assert _same(together.features["ecg_sqi"], quality["sqi"])
        if window.ppg is not None:
            assert _same(together.features["ppg_sqi"], ppg_quality(window.ppg, 64.0)["sqi"])
    assert any(len(a.beats_s) > 5 for a in batched)  # the case is not trivially empty


def test_a_signal_lost_at_the_end_is_not_a_heart_slowing_down() -> None:
    """The recent rate counts the wait since the last beat (a heart that slows shows
    before its next beat), but not a wait in which the ECG carries no signal: 0.8 s of a
    railed electrode at the end of a 70 bpm window is no evidence of bradycardia."""
    fs = 128.0
    ecg = synthetic_ecg(regular_beats(70, 10.0), fs, 10.0)
    clean = analyze_window(SignalWindow(t_start=0.0, t_end=10.0, ecg=ecg, ecg_fs=fs)).features
    lost = ecg.copy()
    lost[-int(0.8 * fs) :] = 5.0  # railed: within 0.02 mV
    features = analyze_window(SignalWindow(t_start=0.0, t_end=10.0, ecg=lost, ecg_fs=fs)).features
    assert features["ecg_lead_off"] == 0.0  # not yet a second of it
    assert features["ecg_hr_recent_bpm"] >= 0.9 * clean["ecg_hr_recent_bpm"]
