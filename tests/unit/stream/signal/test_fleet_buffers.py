"""stream.signal.fleet_buffers: the fleet's rounds cut exactly the windows of per-device
:class:`DeviceBuffers` (the reference) on randomized frame sequences: gaps, overlaps,
jitter within and beyond the clock snap, duplicates, late frames, rate changes, long and
short frames, vitals-only devices, devices without some signals, catch-up batches with
several frames per device, devices dropped and their slots reused."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from stream.records import VITALS, WAVEFORMS
from stream.signal.buffers import CLOCK_SNAP_S, DeviceBuffers
from stream.signal.fleet_buffers import Blocks, FleetBuffers
from stream.signal.window import SignalWindow

T0 = 1_700_000_000.0
RATES = {"ecg": (128.0, 250.0), "ppg": (64.0, 50.0), "acc": (25.0, 12.5)}


@dataclass
class Frame:
    device: str
    t0: float
    signals: dict[str, tuple[float, np.ndarray]]  # name → (fs, samples)


def random_device(rng: np.random.Generator, device: str, steps: int) -> list[Frame]:
    """One device's frames in arrival order: mostly 1 s and contiguous, with every kind of
    irregularity the buffers handle."""
    waveforms = [n for n in WAVEFORMS if rng.random() < 0.8] if rng.random() < 0.85 else []
    vitals = [n for n in VITALS if rng.random() < 0.7]
    if not waveforms and not vitals:
        vitals = ["spo2"]
    rates = {n: float(rng.choice(RATES[n])) for n in waveforms}
    temp_fs = 0.1 if rng.random() < 0.3 else 1.0  # several seconds per temperature sample
    frames: list[Frame] = []
    t = T0 + rng.uniform(0.0, 1.0)
    for _ in range(steps):
        event = rng.random()
        duration = 1.0
        if event < 0.05 and frames:
            frames.append(frames[-1])  # a duplicate
            continue
        if event < 0.10:
            t += rng.uniform(0.5, 30.0)  # a gap (beyond the ring sometimes)
        elif event < 0.14:
            t -= rng.uniform(0.1, 8.0)  # an overlap, or a late frame filling a gap
        elif event < 0.18:
            duration = float(rng.integers(2, 12))  # a catch-up frame
        elif event < 0.21:
            duration = 0.5
        elif event < 0.24 and waveforms:
            name = str(rng.choice(waveforms))
            rates[name] = float(rng.choice(RATES[name]))  # a rate change
        jitter = 0.0
        if rng.random() < 0.4:
            jitter = rng.uniform(-0.009, 0.009)  # within the snap
        elif rng.random() < 0.1:
            jitter = rng.choice([-1.0, 1.0]) * rng.uniform(CLOCK_SNAP_S, 0.2)  # beyond it
        t0 = t + jitter
        signals: dict[str, tuple[float, np.ndarray]] = {}
        for name in waveforms:
            if rng.random() < 0.08:
                continue  # a sensor missing from this frame
            n = round(duration * rates[name])
            shape = (n, 3) if name == "acc" else (n,)
            samples = rng.normal(size=shape)
            samples[rng.random(n) < 0.02] = np.nan  # device-side dropouts
            signals[name] = (rates[name], samples)
        for name in vitals:
            if rng.random() < 0.1:
                continue
            fs = temp_fs if name == "temp" else 1.0
            n = max(round(duration * fs), 1)
            if rng.random() < 0.02:
                n = 0  # an empty block changes nothing
            signals[name] = (fs, rng.uniform(30.0, 100.0, n))
        if not signals:
            signals["hr"] = (1.0, np.array([70.0]))
        frames.append(Frame(device, t0, signals))
        t += duration
    return frames


def assert_same_window(got: SignalWindow, expected: SignalWindow) -> None:
    assert (got.t_start, got.t_end, got.trend_fs) == (
        expected.t_start,
        expected.t_end,
        expected.trend_fs,
    )
    for name in WAVEFORMS:
        a, b = getattr(got, name), getattr(expected, name)
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)
            assert getattr(got, f"{name}_fs") == getattr(expected, f"{name}_fs")
    for name in VITALS:
        a, b = getattr(got, name), getattr(expected, name)
        assert a == b or (math.isnan(a) and math.isnan(b)), name
    assert got.trends.keys() == expected.trends.keys()
    for name, history in expected.trends.items():
        np.testing.assert_array_equal(got.trends[name], history, err_msg=name)


def fleet_round(fleet: FleetBuffers, frames: list[Frame]) -> list[tuple[str, SignalWindow]]:
    devices = [f.device for f in frames]
    names = {name for f in frames for name in f.signals}
    blocks = {}
    for name in sorted(names):
        members = [i for i, f in enumerate(frames) if name in f.signals]
        blocks[name] = Blocks.of(
            members,
            [frames[i].signals[name][0] for i in members],
            [frames[i].signals[name][1] for i in members],
        )
    fleet.write(devices, np.array([f.t0 for f in frames]), blocks)
    slots = fleet.slots_of(devices)
    which, ends = fleet.due(slots)
    windows = fleet.windows(slots[which], ends)
    return [(devices[i], w) for i, w in zip(which.tolist(), windows, strict=True)]


def reference_round(
    buffers: dict[str, DeviceBuffers], frames: list[Frame]
) -> list[tuple[str, SignalWindow]]:
    out = []
    for frame in frames:
        device = buffers.setdefault(frame.device, DeviceBuffers())
        for name, (fs, samples) in frame.signals.items():
            device.append(name, frame.t0, fs, samples)
        out += [(frame.device, device.window(float(end))) for end in device.due_ends()]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_rounds_cut_the_windows_of_device_buffers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    streams = {f"dev-{k}": random_device(rng, f"dev-{k}", 120) for k in range(24)}
    fleet, reference = FleetBuffers(), {}
    windows = Counter[str]()
    kinds = Counter[str]()
    while any(streams.values()):
        # One batch: each device 0 to 3 frames, its k-th frame in round k.
        batch = []
        for frames in streams.values():
            take = int(rng.choice([0, 1, 1, 1, 1, 2, 3]))
            batch += [frames.pop(0) for _ in range(min(take, len(frames)))]
        rng.shuffle(batch)
        rounds: list[list[Frame]] = []
        seen = Counter[str]()
        for frame in batch:
            k = seen[frame.device]
            seen[frame.device] += 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(frame)
        kinds["multi-round batches"] += len(rounds) > 1
        for frames in rounds:
            got = fleet_round(fleet, frames)
            expected = reference_round(reference, frames)
            assert [(d, w.t_end) for d, w in got] == [(d, w.t_end) for d, w in expected]
            for (_, a), (_, b) in zip(got, expected, strict=True):
                assert_same_window(a, b)
                windows["with gaps" if np.isnan(b.ecg if b.ecg is not None else 0).any()
                        else "whole"] += 1  # fmt: skip
        if rng.random() < 0.05:  # a device falls silent (or moves away) and comes back
            device = str(rng.choice(list(streams)))
            fleet.drop(device)
            reference.pop(device, None)
            assert device not in fleet
    assert set(fleet) == set(reference)
    # The sequences did exercise what they are for.
    assert windows["with gaps"] > 0 and windows["whole"] > 100 and kinds["multi-round batches"]


def test_the_fleet_is_a_mapping_of_devices_to_slots_and_reuses_dropped_slots() -> None:
    fleet = FleetBuffers()
    assert fleet == {} and not fleet
    slots = fleet.slots_of(["a", "b", "c"])
    assert slots.tolist() == [0, 1, 2] and fleet == {"a": 0, "b": 1, "c": 2}
    fleet.drop("b")
    fleet.drop("unknown")
    assert fleet.slots_of(["d"]).tolist() == [1] and len(fleet) == 3


def test_a_dropped_device_starts_over_in_its_reused_slot() -> None:
    fleet = FleetBuffers(window_s=10.0, hop_s=1.0)
    ecg = Blocks.of([0], [128.0], [np.ones(128 * 12)])
    fleet.write(["a"], np.array([T0]), {"ecg": ecg})
    assert len(fleet.due(fleet.slots_of(["a"]))[1]) == 3
    fleet.drop("a")
    fleet.write(["b"], np.array([T0 + 12.0]), {"ecg": Blocks.of([0], [128.0], [np.ones(128)])})
    slots = fleet.slots_of(["b"])
    assert slots.tolist() == [0] and len(fleet.due(slots)[1]) == 0  # no window of a's data
    window = fleet.windows(slots, np.array([T0 + 13.0]))[0]
    assert np.isnan(window.ecg[:-128]).all() and not window.trends


def test_many_devices_grow_the_arrays_without_losing_samples() -> None:
    fleet = FleetBuffers(window_s=10.0, hop_s=1.0)
    devices = [f"dev-{k}" for k in range(300)]  # more than the first allocation
    for second in range(11):
        samples = [np.full(128, k + second / 100.0) for k in range(len(devices))]
        fleet.write(
            devices,
            np.full(len(devices), T0 + second),
            {"ecg": Blocks.of(range(len(devices)), [128.0] * len(devices), samples)},
        )
    slots = fleet.slots_of(devices)
    which, ends = fleet.due(slots)
    assert np.array_equal(which, np.repeat(np.arange(300), 2))
    windows = fleet.windows(slots[which], ends)
    assert windows[-1].ecg[0] == 299.01 and windows[-1].ecg[-1] == 299.1


def test_unknown_signal_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        FleetBuffers().write(["a"], np.array([T0]), {"eeg": Blocks.of([0], [100.0], [[1.0]])})


@pytest.mark.parametrize("triples", [False, True])
def test_blocks_from_the_frames_lists_or_arrays_equal_blocks_of_arrays(triples: bool) -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(n, 3) if triples else n) for n in (5, 1, 7)]
    expected = Blocks.of([0, 2, 3], [25.0, 25.0, 50.0], arrays)
    as_lists = [[tuple(row) for row in a] if triples else a.tolist() for a in arrays]
    for samples in (as_lists, arrays):
        got = Blocks.from_lists([0, 2, 3], [25.0, 25.0, 50.0], samples, triples=triples)
        for field in Blocks._fields:
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        assert [s.tolist() for s in got.split()] == [a.tolist() for a in arrays]


def test_reads_hold_the_arrays_the_windows_are_views_of() -> None:
    """read(): a waveform every window holds at one rate comes as one grid whose rows are
    the windows' arrays; a vital a device never sent has an all-NaN history row."""
    fleet = FleetBuffers(window_s=10.0, hop_s=1.0)
    devices = ["a", "b", "c"]
    rng = np.random.default_rng(5)
    for second in range(11):
        ecg = [rng.normal(size=128) for _ in devices]
        if second == 4:
            ecg[1][:40] = np.nan  # a gap inside b's window
        ppg = [rng.normal(size=64) for _ in devices[:2]]  # c sends no PPG
        blocks = {
            "ecg": Blocks.of([0, 1, 2], [128.0] * 3, ecg),
            "ppg": Blocks.of([0, 1], [64.0, 64.0], ppg),
            "spo2": Blocks.of([0, 1], [1.0, 1.0], [[97.0], [95.0]]),  # c sends no SpO2
        }
        fleet.write(devices, np.full(3, T0 + second), blocks)
    slots = fleet.slots_of(devices)
    which, ends = fleet.due(slots)
    reads = fleet.read(slots[which], ends)
    assert set(reads.grids) == {"ecg"}  # PPG is not every window's
    for row, window in enumerate(reads.windows):
        np.testing.assert_array_equal(reads.grids["ecg"][row], window.ecg)
        for v, vital in enumerate(VITALS):
            history = reads.histories[v, row]
            if vital in window.trends:
                np.testing.assert_array_equal(history, window.trends[vital])
            else:
                assert np.isnan(history).all()
    assert "spo2" not in reads.windows[-1].trends and "spo2" in reads.windows[0].trends
