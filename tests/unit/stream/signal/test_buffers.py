"""stream.signal.buffers: ring buffers place samples by time through gaps, overlaps, duplicates,
reordering and wrap-around; windows are hop-aligned; vitals keep a trend history."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.signal.buffers import DeviceBuffers
from stream.signal.features import window_features
from stream.signal.window import SignalWindow

FS = 128.0
T0 = 1_700_000_000.0  # a realistic epoch: index arithmetic must stay exact at this size


def ramp(start_s: float, seconds: float, fs: float = FS) -> np.ndarray:
    """Samples whose value is their own time offset: where they land shows in the window."""
    return start_s + np.arange(round(seconds * fs)) / fs


def feed(buffers: DeviceBuffers, starts: list[float], seconds: float = 1.0) -> None:
    for start in starts:
        buffers.append("ecg", T0 + start, FS, ramp(start, seconds))


def test_contiguous_frames_make_an_exact_window() -> None:
    buffers = DeviceBuffers(window_s=10.0, lateness_s=5.0)
    feed(buffers, [float(s) for s in range(12)])
    window = buffers.window(T0 + 12.0)
    assert isinstance(window, SignalWindow)
    assert window.ecg_fs == FS and window.t_start == T0 + 2.0
    np.testing.assert_allclose(window.ecg, ramp(2.0, 10.0))


def test_ring_wraps_around_many_times() -> None:
    buffers = DeviceBuffers(window_s=10.0, lateness_s=5.0)
    feed(buffers, [float(s) for s in range(200)])
    np.testing.assert_allclose(buffers.window(T0 + 200.0).ecg, ramp(190.0, 10.0))
    np.testing.assert_allclose(buffers.window(T0 + 195.5, 3.0).ecg, ramp(192.5, 3.0))


@pytest.mark.parametrize(
    ("name", "starts", "missing"),
    [
        ("gap", [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11], (3.0, 4.0)),
        ("late frame fills its gap", [0, 1, 2, 4, 5, 6, 3, 7, 8, 9, 10, 11], None),
        ("duplicates", [0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 11, 11], None),
        ("reordered", [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10], None),
        ("overlap", [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9, 10, 11], None),
    ],
)
def test_gaps_overlaps_duplicates_and_reordering(
    name: str, starts: list[float], missing: tuple[float, float] | None
) -> None:
    buffers = DeviceBuffers(window_s=12.0, lateness_s=5.0)
    feed(buffers, starts)
    got = buffers.window(T0 + 12.0).ecg
    expected = ramp(0.0, 12.0)
    if missing is not None:
        lo, hi = (round(x * FS) for x in missing)
        expected[lo:hi] = np.nan
    np.testing.assert_allclose(got, expected, err_msg=name)


def test_clock_jitter_is_snapped_to_contiguous() -> None:
    buffers = DeviceBuffers(window_s=10.0)
    rng = np.random.default_rng(0)
    for start in range(11):
        jitter = rng.uniform(-0.009, 0.009)  # ±9 ms of device clock wobble
        buffers.append("ecg", T0 + start + jitter, FS, np.ones(128))
    window = buffers.window(T0 + 11.0)
    assert np.isfinite(window.ecg[:-3]).all()  # no one-sample holes


def test_gap_longer_than_the_ring_restarts_it() -> None:
    buffers = DeviceBuffers(window_s=10.0, lateness_s=5.0)
    feed(buffers, [0.0, 1.0])
    feed(buffers, [100.0])
    window = buffers.window(T0 + 101.0)
    assert np.isnan(window.ecg[:-128]).all()
    np.testing.assert_allclose(window.ecg[-128:], ramp(100.0, 1.0))
    assert not buffers.due()  # a whole window of new data is needed first


def test_frames_older_than_the_ring_are_ignored() -> None:
    buffers = DeviceBuffers(window_s=10.0, lateness_s=5.0)
    feed(buffers, [float(s) for s in range(30)])
    buffers.append("ecg", T0 + 2.0, FS, np.full(128, 99.0))
    np.testing.assert_allclose(buffers.window(T0 + 30.0).ecg, ramp(20.0, 10.0))


def test_sampling_rate_change_restarts_the_signal() -> None:
    buffers = DeviceBuffers(window_s=10.0)
    feed(buffers, [0.0, 1.0])
    buffers.append("ecg", T0 + 2.0, 256.0, np.ones(256))
    window = buffers.window(T0 + 3.0, 1.0)
    assert window.ecg_fs == 256.0
    np.testing.assert_allclose(window.ecg, np.ones(256))


def test_windows_end_with_the_newest_frame_and_are_handed_out_once() -> None:
    buffers = DeviceBuffers(window_s=10.0, hop_s=1.0, lateness_s=5.0)
    feed(buffers, [s + 0.25 for s in range(9)])  # frames start a quarter second in
    assert not buffers.due()  # less than a window of data
    assert buffers.next_end() == T0 + 10.25
    feed(buffers, [9.25, 10.25, 11.25])
    assert buffers.due()
    # The newest window ends with the newest sample, not at a clock second before it.
    np.testing.assert_array_equal(buffers.due_ends(), [T0 + 10.25, T0 + 11.25, T0 + 12.25])
    assert not buffers.due() and len(buffers.due_ends()) == 0
    assert buffers.next_end() == T0 + 13.25
    feed(buffers, [12.25])
    np.testing.assert_array_equal(buffers.due_ends(), [T0 + 13.25])


def test_jittered_frames_give_one_window_each() -> None:
    buffers = DeviceBuffers(window_s=10.0, hop_s=1.0, lateness_s=5.0)
    starts = [s + 0.01 * (-1) ** s for s in range(10)]  # clocks jitter by 10 ms
    feed(buffers, starts)
    handed = list(buffers.due_ends())
    for start in [10.01, 10.99, 12.01]:
        feed(buffers, [start])
        handed += list(buffers.due_ends())
    assert len(handed) == 4
    assert np.all(np.diff(handed) > 0.9)


def test_windows_hold_every_signals_last_sample_though_their_grids_differ() -> None:
    # A frame start between sample instants rounds onto each signal's own grid: the
    # waveforms then end a fraction of a sample apart.
    buffers = DeviceBuffers(window_s=10.0, lateness_s=5.0)
    for second in range(12):
        t0 = T0 + second + 0.0071
        buffers.append("ecg", t0, 128.0, np.zeros(128))
        buffers.append("ppg", t0, 50.0, np.zeros(50))
        buffers.append("acc", t0, 25.0, np.zeros((25, 3)))
    for end in buffers.due_ends():
        window = buffers.window(float(end))
        for samples in (window.ecg, window.ppg, window.acc):
            assert np.isfinite(samples).all()


def test_a_stopped_signal_does_not_hold_windows_back() -> None:
    buffers = DeviceBuffers(window_s=10.0, lateness_s=5.0)
    for second in range(30):
        buffers.append("ecg", T0 + second, FS, np.zeros(128))
        if second < 12:  # the PPG sensor stops
            buffers.append("ppg", T0 + second, 50.0, np.zeros(50))
    assert buffers.due_ends()[-1] == pytest.approx(T0 + 30.0)


def test_after_a_silence_windows_catch_up_to_the_present() -> None:
    buffers = DeviceBuffers(window_s=10.0, hop_s=1.0, lateness_s=5.0)
    feed(buffers, [float(s) for s in range(11)])
    assert buffers.due_ends()[-1] == T0 + 11.0
    buffers.append("ecg", T0 + 11.0, FS, ramp(11.0, 10.0))  # one 10 s frame
    ends = buffers.due_ends()
    np.testing.assert_array_equal(ends, T0 + np.arange(16.0, 22.0))  # lateness bounds it


def test_accelerometer_keeps_its_three_axes() -> None:
    buffers = DeviceBuffers(window_s=10.0)
    acc = np.tile([0.0, 0.0, 1.0], (25 * 10, 1))
    acc[:, 0] = np.arange(len(acc))
    buffers.append("acc", T0, 25.0, acc)
    window = buffers.window(T0 + 10.0)
    assert window.acc is not None and window.acc.shape == (250, 3)
    np.testing.assert_allclose(window.acc, acc)
    assert window.acc_fs == 25.0 and window.ecg is None


def test_vitals_history_latest_value_and_staleness() -> None:
    buffers = DeviceBuffers(window_s=10.0, history_s=600.0, vitals_stale_s=60.0)
    for second in range(0, 300):
        buffers.append("spo2", T0 + second, 1.0, [96.0 - second / 60.0])
    buffers.append("temp", T0, 0.1, np.full(30, 37.0))  # one value per 10 s
    buffers.append("resp", T0, 1.0, [16.0])  # then silent
    feed(buffers, [float(s) for s in range(290, 300)])
    window = buffers.window(T0 + 299.0)
    assert window.spo2 == pytest.approx(96.0 - 299 / 60.0)
    assert window.temp == 37.0
    assert math.isnan(window.resp)  # 5 minutes old: stale
    assert math.isnan(window.hr)  # never sent
    spo2 = window.trends["spo2"]
    assert len(spo2) == 600 and np.isnan(spo2[:300]).all()
    assert np.isfinite(window.trends["temp"]).sum() == 30
    features = window_features(window)
    assert features["spo2_slope"] == pytest.approx(-1.0, abs=1e-6)
    assert features["temp_slope"] == pytest.approx(0.0, abs=1e-9)


def test_a_vitals_only_device_still_gets_windows() -> None:
    buffers = DeviceBuffers(window_s=10.0, hop_s=1.0)
    buffers.append("spo2", T0, 1.0, np.full(12, 95.0))
    np.testing.assert_array_equal(buffers.due_ends(), [T0 + 10.0, T0 + 11.0, T0 + 12.0])
    window = buffers.window(T0 + 12.0)
    assert window.spo2 == 95.0 and window.ecg is None


def test_vitals_history_keeps_only_history_s() -> None:
    buffers = DeviceBuffers(history_s=60.0)
    buffers.append("hr", T0, 1.0, np.arange(200.0))
    trend = buffers.history(T0 + 199.0)["hr"]
    np.testing.assert_allclose(trend, np.arange(140.0, 200.0))


def test_unknown_signal_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        DeviceBuffers().append("eeg", T0, 100.0, np.zeros(10))
