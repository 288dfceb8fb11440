"""stream.signal.kernels.window_reads: the batch reads of many windows equal the per-device
reads they replace, bit for bit (beats, pulses, their correlations, the second detector's
peaks, bSQI), on a small ward of synthetic devices at different rates and heart rates,
some unknown, read by windows that straddle the rings' ends."""

from __future__ import annotations

import numpy as np
import pytest

from stream.signal.kernels import stats
from stream.signal.kernels.window_reads import _numpy_sum, agreement_batch, finite_means
from stream.signal.streaming import AGREEMENT_S, SignalState
from tests.unit.stream.signal.synthetic import regular_beats, synthetic_ecg

T0 = 1_700_000_000.0
SECONDS = 25


def _ward() -> tuple[SignalState, list[str]]:
    """Four devices fed 1 s frames: ECG at 250 or 128 Hz, PPG at 64 or 100 Hz."""
    state = SignalState()
    devices = []
    rates = ((250.0, 64.0, 62), (128.0, 100.0, 95), (250.0, 100.0, 130), (128.0, 64.0, 48))
    for d, (ecg_fs, ppg_fs, bpm) in enumerate(rates):
        device = f"dev-{d}"
        devices.append(device)
        ecg = synthetic_ecg(regular_beats(bpm, SECONDS), SECONDS, ecg_fs)
        t = np.arange(int(SECONDS * ppg_fs)) / ppg_fs
        ppg = np.sin(2 * np.pi * bpm / 60.0 * t) + 0.3 * np.sin(4 * np.pi * bpm / 60.0 * t + 0.8)
        for second in range(SECONDS):
            e = ecg[int(second * ecg_fs) : int((second + 1) * ecg_fs)]
            p = ppg[int(second * ppg_fs) : int((second + 1) * ppg_fs)]
            state.push([(device, T0 + second, ecg_fs, e)], [(device, T0 + second, ppg_fs, p)], [])
    return state, devices


@pytest.fixture(scope="module")
def ward() -> tuple[SignalState, list[str]]:
    return _ward()


def _windows(devices: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    names = [*devices, "unknown"] * 6
    t_end = T0 + rng.uniform(5.0, SECONDS + 2.0, size=len(names))
    return names, t_end - 10.0, t_end


def test_beats_and_pulses_read_in_batch_equal_the_per_device_reads(ward) -> None:
    state, devices = ward
    names, t_start, t_end = _windows(devices)
    for stream in (state.beats, state.pulses):
        slots = stream.live_slots(names)
        times, columns, offsets = stream.window_times(slots, t_start, t_end)
        assert offsets[-1] > 0
        for w, device in enumerate(names):
            recent = stream.recent_samples(device)[0]
            expected = recent[(recent >= t_start[w]) & (recent < t_end[w])]
            np.testing.assert_array_equal(times[offsets[w] : offsets[w + 1]], expected)
    slots = state.pulses.live_slots(names)
    times, columns, offsets = state.pulses.window_times(slots, t_start, t_end)
    counts = np.diff(offsets)
    correlations = state.pulses.correlations_at(np.repeat(slots, counts), columns)
    for w, device in enumerate(names):
        expected = state.pulses.window_correlations(device, t_start[w], t_end[w])
        np.testing.assert_array_equal(correlations[offsets[w] : offsets[w + 1]], expected)


def test_second_detector_and_agreement_in_batch_equal_the_per_device_reads(ward) -> None:
    state, devices = ward
    names, t_start, t_end = _windows(devices)
    peaks, peak_offsets, decided = state.frames.second_detector_windows(names, t_start, t_end)
    slots = state.beats.live_slots(names)
    beat_decided = state.beats.decided_until_many(slots)
    for w, device in enumerate(names):
        ring, until = state.frames.second_detector(device)
        inside = ring[(ring >= t_start[w]) & (ring < t_end[w])]
        np.testing.assert_array_equal(peaks[peak_offsets[w] : peak_offsets[w + 1]], inside)
        np.testing.assert_array_equal(decided[w], until)  # nan for the unknown device
        np.testing.assert_array_equal(beat_decided[w], state.beats.decided_until(device))
    times, _, offsets = state.beats.window_times(slots, t_start, t_end)
    ends = np.minimum(t_end, np.nan_to_num(decided, nan=np.inf)) - 0.4
    got = agreement_batch(times, offsets, peaks, peak_offsets, ends, AGREEMENT_S)
    for w, device in enumerate(names):
        beats = state.beats.recent_beats(device)
        ring, _ = state.frames.second_detector(device)
        a = beats[(beats >= t_start[w]) & (beats < ends[w])]
        b = ring[(ring >= t_start[w]) & (ring < ends[w])]
        assert got[w] == stats.agreement(a, b, AGREEMENT_S)
    assert np.all((got >= 0.0) & (got <= 1.0)) and np.count_nonzero(got > 0.8) >= 2


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 64, 100, 128])
def test_numpy_sum_and_finite_means_match_numpy_to_the_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=n) * 10.0 ** rng.uniform(-4, 4, size=n)
    assert _numpy_sum(x) == np.sum(x)
    with_nan = x.copy()
    with_nan[::5] = np.nan
    offsets = np.array([0, n // 2, n])
    means = finite_means(with_nan, offsets)
    for g in range(2):
        group = with_nan[offsets[g] : offsets[g + 1]]
        finite = group[np.isfinite(group)]
        assert means[g] == (float(np.mean(finite)) if len(finite) else 0.0)
