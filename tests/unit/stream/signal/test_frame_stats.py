"""stream.signal.frame_stats: windows combined from per-frame slots against the window
functions that read every sample (activity exactly, ECG extremes and pinned samples exactly,
band energies against the FFT band powers), frames of any length, devices pushed together."""

from __future__ import annotations

import numpy as np
import pytest

from stream.signal.activity import STILL_SPAN_S
from stream.signal.beat_stream import EcgBeatStream
from stream.signal.beats import ECG_FLAT_MV
from stream.signal.filters import bandpass
from stream.signal.frame_stats import ECG_QUALITY_BANDS, FrameStats
from stream.signal.kernels import frame_stats as k
from stream.signal.kernels import stats
from stream.signal.quality import CONTACT_LOSS_S, ECG_BANDS, band_powers, ppg_bands

WINDOW_S = 10.0


def _windows(n: int, fs: float, every_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    ends = 1000.0 + np.arange(WINDOW_S, n / fs + 1e-9, every_s)
    return ends - WINDOW_S, ends


def _run(
    frame_stats: FrameStats, device: str, signal: np.ndarray, fs: float, frame_s: float,
    every_s: float = 1.0, acc: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Push ``signal`` in frames of ``frame_s``, reading each window as soon as its last
    frame is in (the worker's order: the ring keeps only the last frames)."""
    starts, ends = _windows(len(signal), fs, every_s)
    out = np.full((len(ends), k.V_COLUMNS if acc else k.W_COLUMNS), np.nan)
    step = round(frame_s * fs)
    for first in range(0, len(signal), step):
        frame = [(device, 1000.0 + first / fs, fs, signal[first : first + step])]
        (frame_stats.push_acc if acc else frame_stats.push_ecg)(frame)
        end = 1000.0 + min(first + step, len(signal)) / fs
        due = np.flatnonzero(np.abs(ends - end) < 1e-6)
        if len(due):
            read = frame_stats.acc_windows if acc else frame_stats.ecg_windows
            out[due] = read([device] * len(due), starts[due], ends[due])
    return starts, ends, out


def test_the_accelerometer_window_is_activity_features_exactly() -> None:
    fs = 25.0
    rng = np.random.default_rng(5)
    acc = np.cumsum(rng.normal(0, 0.05, (int(40 * fs), 3)), axis=0) + np.array([0.0, 0.0, 1.0])
    acc[300:310] = np.nan  # a dropped stretch
    starts, ends, combined = _run(FrameStats(), "dev-1", acc, fs, 1.0, acc=True)
    for w, (start, end) in enumerate(zip(starts, ends, strict=True)):
        window = acc[int((start - 1000.0) * fs) : int((end - 1000.0) * fs)]
        present = window[np.isfinite(window).all(axis=1)]
        # stats.activity counts the trailing and edge spans in samples present; the slots
        # in whole frames: the same here except where the dropped stretch falls in them.
        expected = stats.activity(
            np.ascontiguousarray(window), int(STILL_SPAN_S * fs), int(2.0 * fs)
        )
        if len(present) == len(window):
            np.testing.assert_allclose(combined[w], expected, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(combined[w, :2], expected[:2], rtol=1e-9, atol=1e-12)


def test_ecg_extremes_and_pinned_samples_are_the_windows(record_208: np.ndarray) -> None:
    fs = 360.0
    ecg = np.clip(record_208[: int(60 * fs)], None, 1.2)  # clipped: pinned at a rail
    starts, _, combined = _run(FrameStats(), "dev-1", ecg, fs, 1.0)
    for w, start in enumerate(starts):
        first = round((start - 1000.0) * fs)
        window = ecg[first : first + int(WINDOW_S * fs)]
        assert combined[w, k.W_SAMPLES] == len(window)
        assert combined[w, k.W_SPAN] == pytest.approx(stats.span(window))
        assert combined[w, k.W_PINNED] == pytest.approx(stats.pinned_fraction(window))


def test_band_energies_stand_for_the_fft_band_powers(record_208: np.ndarray) -> None:
    """The causal filters' energies against the window FFT's band powers and the
    zero-phase band-pass's kurtosis: same ranking of real ECG above noise and wander."""
    fs = 360.0
    rng = np.random.default_rng(2)
    ecg = record_208[: int(60 * fs)]
    cases = {
        "ecg": ecg,
        "noise": rng.normal(0, 0.3, len(ecg)),
        "wander": ecg + 3 * np.sin(2 * np.pi * 0.3 * np.arange(len(ecg)) / fs),
    }
    found = {}
    for name, signal in cases.items():
        _, _, combined = _run(FrameStats(), name, signal, fs, 1.0, 5.0)
        window = signal[-int(WINDOW_S * fs) :]
        qrs, wide, baseline, total = band_powers(window, fs, ECG_BANDS)
        fft = (qrs / wide, 1 - baseline / total)
        kurtosis = stats.kurtosis(bandpass(window, fs, *ECG_QUALITY_BANDS[0]))
        last = combined[-1]
        found[name] = last
        assert last[k.W_P_SQI] == pytest.approx(fft[0], abs=0.15), name
        assert last[k.W_BAS_SQI] == pytest.approx(fft[1], abs=0.15), name
        assert last[k.W_KURTOSIS] == pytest.approx(kurtosis, rel=0.35), name
    assert found["ecg"][k.W_KURTOSIS] > 5.0 > 3.5 > found["noise"][k.W_KURTOSIS]
    assert found["wander"][k.W_BAS_SQI] < 0.1 < found["ecg"][k.W_BAS_SQI]


@pytest.mark.parametrize("frame_s", [0.5, 2.0])
def test_frames_of_any_length_give_the_same_sums(record_208: np.ndarray, frame_s: float) -> None:
    fs = 360.0
    ecg = record_208[: int(40 * fs)]
    _, _, a = _run(FrameStats(), "dev-1", ecg, fs, 1.0, 2.0)
    _, _, b = _run(FrameStats(), "dev-1", ecg, fs, frame_s, 2.0)
    sums = [k.W_PRESENT, k.W_SPAN, k.W_KURTOSIS, k.W_P_SQI, k.W_BAS_SQI, k.W_SAMPLES]
    np.testing.assert_allclose(a[:, sums], b[:, sums], rtol=1e-9)


def test_devices_pushed_together_are_summarized_as_alone(record_208: np.ndarray) -> None:
    fs = 360.0
    ecg = record_208[: int(20 * fs)]
    together, alone = FrameStats(), FrameStats()
    for second in range(20):
        chunk = ecg[int(second * fs) : int((second + 1) * fs)]
        together.push_ecg(
            [("a", 1000.0 + second, fs, chunk), ("b", 1000.0 + second, fs, chunk[::-1] * 2)]
        )
        alone.push_ecg([("a", 1000.0 + second, fs, chunk)])
        start, end = np.array([second - 9.0]) + 1000.0, np.array([second + 1.0]) + 1000.0
        np.testing.assert_array_equal(
            together.ecg_windows(["a"], start, end), alone.ecg_windows(["a"], start, end)
        )


def test_a_lost_contact_shows_as_a_flat_stretch_and_real_ecg_never_does(
    record_208: np.ndarray,
) -> None:
    fs = 360.0
    ecg = record_208[: int(30 * fs)].copy()
    starts, _, real = _run(FrameStats(), "real", ecg, fs, 1.0)
    assert real[:, k.W_LONGEST_FLAT].max() < CONTACT_LOSS_S * fs
    lost = slice(int(14.6 * fs), int(15.1 * fs))  # 0.5 s across a frame boundary
    ecg[lost] = 0.002 * np.random.default_rng(1).standard_normal(lost.stop - lost.start)
    _, ends, loose = _run(FrameStats(), "loose", ecg, fs, 1.0)
    holding = (starts < 1014.6) & (ends > 1015.1)
    assert (loose[holding, k.W_LONGEST_FLAT] >= CONTACT_LOSS_S * fs).all()
    assert (loose[~holding & (starts > 1015.2), k.W_LONGEST_FLAT] < CONTACT_LOSS_S * fs).all()
    assert ECG_FLAT_MV > 0.002 * 6  # the stretch's noise stays within the flat band


def test_the_second_detector_agrees_with_the_beat_stream_on_real_ecg_only(
    record_208: np.ndarray,
) -> None:
    """bSQI's two detectors: on MIT-BIH 208 the second detector's peaks match the beat
    stream's beats (150 ms); on Gaussian noise they do not."""
    fs = 360.0
    noise = np.random.default_rng(3).normal(0, 0.3, int(60 * fs))
    agreement = {}
    for name, signal in {"ecg": record_208[: int(60 * fs)], "noise": noise}.items():
        frame_stats, beat_stream = FrameStats(), EcgBeatStream()
        for second in range(60):
            chunk = signal[int(second * fs) : int((second + 1) * fs)]
            frame_stats.push_ecg([(name, 1000.0 + second, fs, chunk)])
            beat_stream.push([(name, 1000.0 + second, fs, chunk)])
        peaks, decided = frame_stats.second_detector(name)
        beats = beat_stream.recent_beats(name)
        start = max(peaks[0], beats[0]) + 1.0
        end = min(decided, beat_stream.decided_until(name))
        a, b = (x[(x >= start) & (x <= end)] for x in (beats, peaks))
        agreement[name] = stats.agreement(a, b, 0.15)
    assert agreement["ecg"] > 0.95
    assert agreement["noise"] < 0.7


def test_ppg_statistics_are_the_windows() -> None:
    """Extremes, repeated samples, the spread of the window and of its last second exactly
    as the window functions; pinned samples within 0.01, the pulse band's share near the
    FFT's."""
    fs = 64.0
    t = np.arange(int(40 * fs)) / fs
    rng = np.random.default_rng(8)
    ppg = np.sin(2 * np.pi * 1.2 * t) ** 21 + 0.05 * np.sin(2 * np.pi * 0.25 * t)
    ppg += 0.01 * rng.standard_normal(len(t))
    ppg[int(25 * fs) :] = np.clip(ppg[int(25 * fs) :], None, 0.5)  # clipped from 25 s
    ppg[int(33 * fs) :] = np.round(ppg[int(33 * fs) :], 1)  # a coarse, repeating sensor
    frame_stats = FrameStats()
    starts, ends = _windows(len(ppg), fs)
    for second in range(40):
        frame = ppg[int(second * fs) : int((second + 1) * fs)]
        frame_stats.push_ppg([("dev-1", 1000.0 + second, fs, frame)])
        due = np.flatnonzero(np.abs(ends - (1001.0 + second)) < 1e-6)
        if not len(due):
            continue
        got = frame_stats.ppg_windows(["dev-1"], starts[due], ends[due], 1.0)[0]
        window = ppg[int((second - 9) * fs) : int((second + 1) * fs)]
        assert got[k.G_SPAN] == pytest.approx(stats.span(window))
        # A frame counts the samples near its extremes within its own span's tolerance,
        # narrower than the window's: a noisy minimum loses a few.
        assert got[k.G_PINNED] == pytest.approx(stats.pinned_fraction(window), abs=0.01)
        assert got[k.G_REPEATED] == pytest.approx(stats.repeated_fraction(window))
        assert got[k.G_STD] == pytest.approx(np.std(window))
        assert got[k.G_TAIL_STD] == pytest.approx(np.std(window[-int(fs) :]))
        in_band, total = band_powers(window, fs, ppg_bands(fs))
        assert got[k.G_BAND_SHARE] == pytest.approx(in_band / total, abs=0.15)
