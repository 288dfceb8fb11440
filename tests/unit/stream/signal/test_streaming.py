"""stream.signal.streaming: window features read from the carried state against the window
analysis that reads every sample (stream.signal.features), on signals with known answers:
a clean wearer, a dropped frame, a detached electrode, a loose one, a still and a moving
accelerometer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stream.signal.buffers import DeviceBuffers
from stream.signal.features import analyze_window
from stream.signal.streaming import SignalState
from tests.unit.stream.signal.synthetic import regular_beats, synthetic_ecg

ECG_FS, PPG_FS, ACC_FS = 250.0, 64.0, 25.0
SECONDS = 30
T0 = 1_700_000_000.0


def _ppg(bpm: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * PPG_FS)) / PPG_FS
    phase = 2 * np.pi * bpm / 60.0 * t
    rng = np.random.default_rng(4)
    return np.sin(phase) + 0.3 * np.sin(2 * phase + 0.8) + 0.01 * rng.standard_normal(len(t))


def _acc(seconds: float, sway_g: float) -> np.ndarray:
    t = np.arange(int(seconds * ACC_FS)) / ACC_FS
    acc = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    acc[:, 2] += sway_g * np.sin(2 * np.pi * 2.0 * t)  # along gravity: the magnitude sways
    return acc


def _run(
    ecg: np.ndarray, ppg: np.ndarray, acc: np.ndarray, drop: set[int] = frozenset()
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Both analyses of every window of one device fed in 1 s frames (``drop``: seconds
    whose frames never arrive): (streaming, window) features per window."""
    state, buffers = SignalState(), DeviceBuffers(window_s=10.0, hop_s=1.0)
    streaming, windowed = [], []
    for second in range(SECONDS):
        if second in drop:
            continue
        t0 = T0 + second
        frames = {
            "ecg": (ECG_FS, ecg[int(second * ECG_FS) : int((second + 1) * ECG_FS)]),
            "ppg": (PPG_FS, ppg[int(second * PPG_FS) : int((second + 1) * PPG_FS)]),
            "acc": (ACC_FS, acc[int(second * ACC_FS) : int((second + 1) * ACC_FS)]),
        }
        state.push(*([("dev", t0, fs, x)] for fs, x in frames.values()))
        for name, (fs, x) in frames.items():
            buffers.append(name, t0, fs, x)
        for end in buffers.due_ends():
            window = buffers.window(float(end))
            streaming.append(state.analyze([("dev", window)])[0].features)
            beats = state.beats.window_beats("dev", window.t_start, window.t_end, ECG_FS)
            windowed.append(analyze_window(window, beats).features)
    return streaming, windowed


def test_a_clean_wearer_reads_as_the_window_analysis() -> None:
    ecg = synthetic_ecg(regular_beats(72, SECONDS), ECG_FS, SECONDS)
    streaming, windowed = _run(ecg, _ppg(72, SECONDS), _acc(SECONDS, 0.0))
    assert len(streaming) == SECONDS - 9
    for new, old in zip(streaming[2:], windowed[2:], strict=True):  # beats learnt in 2 s
        assert new["ecg_hr_bpm"] == pytest.approx(old["ecg_hr_bpm"], abs=0.5)
        assert new["ecg_hr_bpm"] == pytest.approx(72.0, abs=1.0)
        assert new["ppg_hr_bpm"] == pytest.approx(72.0, abs=1.5)
        assert new["ppg_hr_recent_bpm"] == pytest.approx(72.0, abs=3.0)
        assert new["ecg_sqi"] > 0.9 and new["ppg_sqi"] > 0.8
        assert new["motion"] == old["motion"] == 0.0
        assert new["ecg_lead_off"] == new["ecg_flat"] == new["ecg_saturated"] == 0.0
        for key in ("activity_g", "impact_g", "still", "posture_change_deg"):
            assert new[key] == pytest.approx(old[key], abs=1e-9)


def test_a_dropped_frame_is_a_gap_not_a_slower_heart() -> None:
    """A frame that never arrives leaves no statistics behind: the window's share of
    samples present is still counted against its span, and no interval spans the gap."""
    ecg = synthetic_ecg(regular_beats(72, SECONDS), ECG_FS, SECONDS)
    streaming, _ = _run(ecg, _ppg(72, SECONDS), _acc(SECONDS, 0.0), drop={15})
    holding = streaming[15 - 9 : 15 + 1]  # the windows ending 16 s .. 25 s hold the gap
    for features in holding:
        assert features["ecg_sqi"] <= 0.91  # 90 % of the samples present
        assert features["ecg_hr_bpm"] == pytest.approx(72.0, abs=1.5)
        assert features["ppg_hr_bpm"] == pytest.approx(72.0, abs=2.0)


@pytest.mark.parametrize("level", [0.0, 5.0])
def test_an_electrode_that_came_off_is_lead_off_and_a_loose_one_is_artefact(
    level: float,
) -> None:
    ecg = synthetic_ecg(regular_beats(72, SECONDS), ECG_FS, SECONDS)
    rng = np.random.default_rng(2)
    loose = ecg.copy()
    moment = slice(int(12.3 * ECG_FS), int(12.9 * ECG_FS))  # 0.6 s of lost contact
    loose[moment] = level + 0.002 * rng.standard_normal(moment.stop - moment.start)
    off = ecg.copy()
    off[int(20 * ECG_FS) :] = level + 0.002 * rng.standard_normal(len(off) - int(20 * ECG_FS))
    ppg, acc = _ppg(72, SECONDS), _acc(SECONDS, 0.0)
    loose_windows, _ = _run(loose, ppg, acc)
    off_windows, _ = _run(off, ppg, acc)
    assert [f["motion"] for f in loose_windows[4:13]] == [1.0] * 9  # ending 14 .. 22 s
    assert loose_windows[-1]["motion"] == 0.0
    assert off_windows[-1]["ecg_lead_off"] == 1.0 and off_windows[-1]["ecg_sqi"] == 0.0
    assert math.isnan(off_windows[-1]["ecg_hr_bpm"])


def test_a_moving_wearer_is_motion() -> None:
    ecg = synthetic_ecg(regular_beats(72, SECONDS), ECG_FS, SECONDS)
    streaming, windowed = _run(ecg, _ppg(72, SECONDS), _acc(SECONDS, 0.4))
    assert all(f["motion"] == 1.0 for f in streaming)
    assert [f["activity_g"] for f in streaming] == pytest.approx(
        [f["activity_g"] for f in windowed], abs=1e-9
    )


def test_all_windows_beat_times_at_once_are_each_windows() -> None:
    """_Counted.all_seconds (one array for the batch) against seconds (one window)."""
    from stream.signal.streaming import _Counted

    rng = np.random.default_rng(11)
    for _ in range(50):
        n = int(rng.integers(0, 12))
        counts = rng.integers(0, 20, n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        peaks = rng.integers(0, 2500, int(offsets[-1])).astype(np.int64)
        fs = rng.choice([64.0, 250.0, 128.5], n)
        t_start = T0 + rng.uniform(0, 1e4, n)
        counted = _Counted(n, peaks, offsets, fs, np.full(n, np.nan), np.ones(n, bool))
        for i in rng.permutation(n)[: int(rng.integers(0, n + 1))]:
            peaks_of = counted.peaks_of(int(i))
            counted.count(int(i), peaks_of[rng.random(len(peaks_of)) < 0.7])
        together = counted.all_seconds(t_start)
        assert len(together) == n
        for i in range(n):
            np.testing.assert_array_equal(together[i], counted.seconds(i, float(t_start[i])))


def test_all_windows_vitals_at_once_are_each_windows() -> None:
    """_vitals_columns (columns of the batch) against _vitals (one window's dict)."""
    from stream.signal.streaming import _F, _vitals, _vitals_columns
    from stream.signal.window import FEATURE_NAMES, SignalWindow

    rng = np.random.default_rng(12)

    def vital(low: float, high: float) -> float:
        return float(rng.uniform(low, high)) if rng.random() < 0.8 else math.nan

    def history() -> np.ndarray:
        values = 97.0 + np.cumsum(rng.normal(0, 0.1, 600))
        values[rng.random(600) < rng.uniform(0, 1)] = np.nan  # some too sparse for a slope
        return values

    windows = [
        SignalWindow(
            t_start=T0 + k,
            t_end=T0 + k + 10.0,
            resp=vital(8, 30),
            spo2=vital(85, 100),
            temp=vital(35, 40),
            hr=vital(40, 160),
            battery=vital(0, 100),
            trends={name: history() for name in ("spo2", "temp") if rng.random() < 0.8},
        )
        for k in range(60)
    ]
    values = rng.normal(size=(len(windows), len(FEATURE_NAMES)))
    expected = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in values.tolist()]
    for window, f in zip(windows, expected, strict=True):
        _vitals(window, f)
    _vitals_columns(windows, values)
    got = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in values.tolist()]
    assert np.isfinite(values[:, _F["spo2_slope"]]).any()  # the slopes are not all nan
    np.testing.assert_array_equal(
        np.array([list(g.values()) for g in got]), np.array([list(e.values()) for e in expected])
    )


def test_coverages_and_slopes_from_the_reads_equal_those_of_the_windows() -> None:
    """The batch forms (a grid for the coverages, the histories for the slopes) against
    the per-window ones, on windows with gaps and with missing vitals."""
    from stream.signal.fleet_buffers import Blocks, FleetBuffers
    from stream.signal.streaming import _coverages, _vitals_columns
    from stream.signal.window import FEATURE_NAMES

    fleet = FleetBuffers(window_s=10.0, hop_s=1.0)
    devices = [f"d{k}" for k in range(6)]
    rng = np.random.default_rng(11)
    t0 = 1_700_000_000.0
    for second in range(80):
        ecg = [rng.normal(size=128) for _ in devices]
        ecg[second % 6][: 10 * (second % 5)] = np.nan
        sent = [k for k in range(6) if k != 3 and (second % 7 or k != 1)]
        spo2 = [[95.0 - 0.05 * second + rng.normal(0, 0.2)] for _ in sent]
        temp = [[36.5 + 0.01 * second] for _ in sent]
        fleet.write(
            devices,
            np.full(len(devices), t0 + second),
            {
                "ecg": Blocks.of(range(6), [128.0] * 6, ecg),
                "spo2": Blocks.of(sent, [1.0] * len(sent), spo2),
                "temp": Blocks.of(sent, [1.0] * len(sent), temp),
            },
        )
    slots = fleet.slots_of(devices)
    which, ends = fleet.due(slots)
    reads = fleet.read(slots[which], ends)
    windows = reads.windows
    arrived = np.full(len(windows), 1280.0)
    share = np.full(len(windows), 1.0)
    by_window = _coverages(arrived, share, windows, "ecg")
    by_grid = _coverages(arrived, share, windows, "ecg", reads.grids["ecg"])
    np.testing.assert_array_equal(by_window[0], by_grid[0])
    np.testing.assert_array_equal(by_window[1], by_grid[1])
    assert (by_grid[1] < 1.0).any()
    one, other = (np.full((len(windows), len(FEATURE_NAMES)), np.nan) for _ in range(2))
    _vitals_columns(windows, one)
    _vitals_columns(windows, other, reads.histories)
    np.testing.assert_array_equal(one, other)
    slopes = one[:, FEATURE_NAMES.index("spo2_slope")]
    assert np.isfinite(slopes).any() and np.isnan(slopes).any()  # device 3 sends none
