"""Walking and running (artefacts): step cadence in the accelerometer, motion artefact
locked to it on ECG and PPG, a heart-rate and breathing rise that stays below the alarm
limits, and nothing that looks like a fall."""

from __future__ import annotations

import numpy as np
import pytest

from producers.gait import EXERCISE_HR_CAP, RUNNING_CADENCE_HZ, WALKING_CADENCE_HZ
from producers.physiology import Conditions, Physiology
from producers.waveforms import ACC_FS, PPG_FS


def _run(cond: Conditions, seconds: int, seed: int = 7) -> dict[str, np.ndarray]:
    body = Physiology(len(cond.hr), np.random.default_rng(seed))
    chunks = [body.step(cond) for _ in range(seconds)]
    return {
        name: np.concatenate([getattr(c, name) for c in chunks], axis=1)
        for name in ("ecg", "ppg", "acc", "hr", "resp", "spo2")
    }


@pytest.fixture(scope="module")
def exercise() -> tuple[Conditions, dict[str, np.ndarray]]:
    cond = Conditions.quiet(6)
    cond.hr[:] = [70, 70, 70, 70, 85, 62]
    cond.walking[1] = 0.1
    cond.walking[2] = 1.0
    cond.running[3] = 0.2
    cond.running[4] = 1.0  # a high baseline: the cap must hold
    cond.running[5] = 1.0
    return cond, _run(cond, 240)


def _dominant_hz(x: np.ndarray, fs: float, lo: float = 0.8, hi: float = 5.0) -> float:
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    band = (freqs > lo) & (freqs < hi)
    return float(freqs[band][np.argmax(spectrum[band])])


def test_step_cadence_shows_in_the_accelerometer(exercise) -> None:
    _, signals = exercise
    vertical = signals["acc"][:, 60 * ACC_FS :, 2]
    for device in (1, 2):
        assert WALKING_CADENCE_HZ[0] - 0.06 <= _dominant_hz(vertical[device], ACC_FS)
        assert _dominant_hz(vertical[device], ACC_FS) <= WALKING_CADENCE_HZ[1] + 0.06
    for device in (3, 4, 5):
        assert RUNNING_CADENCE_HZ[0] - 0.06 <= _dominant_hz(vertical[device], ACC_FS)
        assert _dominant_hz(vertical[device], ACC_FS) <= RUNNING_CADENCE_HZ[1] + 0.06
    assert _dominant_hz(vertical[2], ACC_FS) > _dominant_hz(vertical[1], ACC_FS)  # brisker
    magnitude = np.linalg.norm(signals["acc"], axis=-1)
    spread = magnitude.std(axis=1)
    assert spread[0] < 0.05  # in bed
    assert 0.15 < spread[1] < spread[2] < 0.4  # walking: a few tenths of a g
    assert spread[3] > 1.6 * spread[2] and spread[5] > 2 * spread[2]  # running bounces harder
    # The whole bounce averages to gravity: still upright, not lying down.
    assert np.all(np.abs(signals["acc"][:, :, 2].mean(axis=1) - 0.99) < 0.05)


def test_gait_is_not_a_fall(exercise) -> None:
    _, signals = exercise
    magnitude = np.linalg.norm(signals["acc"][1:], axis=-1)
    assert magnitude.max() < 3.0  # a fall detector's impact is 3.5 g
    assert magnitude.max(axis=1)[2:].min() > 1.8  # running lands at ~2-2.5 g
    # Never still: every 3 s of it moves (the stillness that confirms a fall, < 0.05 g).
    windows = magnitude[:, : magnitude.shape[1] // 75 * 75].reshape(5, -1, 75)
    assert windows.std(axis=2).min() > 0.1


def test_heart_rate_and_breathing_rise_below_the_limits(exercise) -> None:
    cond, signals = exercise
    # Means over two minutes; slow HRV moves a two-minute mean by a few bpm either way.
    settled = signals["hr"][:, 120:].mean(axis=1) - cond.hr
    assert abs(settled[0]) < 4
    assert 7 <= settled[1] <= 16 and 15 <= settled[2] <= 25  # walking: +11 and +20 bpm
    assert 22 <= settled[3] <= 32 and 30 <= settled[5] <= 40  # running: +27 and +35 bpm
    assert signals["hr"][4, 120:].mean() == pytest.approx(EXERCISE_HR_CAP, abs=5)  # capped
    assert signals["hr"].max() < 115  # below tachycardia (120) and its hysteresis margin
    resp = signals["resp"][:, 120:].mean(axis=1) - 14
    assert abs(resp[0]) < 1 and 1.5 <= resp[2] <= 4.5 and 4.5 <= resp[5] <= 8.5
    assert signals["resp"].max() < 25  # below the tachypnoea limit
    assert np.all(np.abs(signals["spo2"][:, 30:].mean(axis=1) - 97) < 1)  # no desaturation


def test_heart_rate_rises_over_tens_of_seconds_and_recovers() -> None:
    cond = Conditions.quiet(2)
    cond.activity[:] = 0.6  # an ambulatory patient's usual activity: 72 + 27 bpm
    body = Physiology(2, np.random.default_rng(3))
    hr = [body.step(cond).hr[:, 0] for _ in range(60)]
    cond.running[1] = 0.5
    cond.activity[1] = 0.0  # as the fleet does: the event sets the activity
    hr += [body.step(cond).hr[:, 0] for _ in range(120)]
    cond.running[1] = 0.0
    cond.activity[1] = 0.6
    hr += [body.step(cond).hr[:, 0] for _ in range(300)]
    track = np.array(hr)[:, 1]
    target = min(72 + 30, EXERCISE_HR_CAP)
    assert track[60:65].mean() < track[120:180].mean() - 4  # not there at once
    assert track[120:180].mean() == pytest.approx(target, abs=5)
    # Back to the usual activity's rate, from the exercise level, without overshooting it
    # (the recovery is not added on top of the usual activity's rate).
    assert track[180:240].mean() < target + 4
    assert track[180:].max() < 115
    assert track[360:].mean() == pytest.approx(72 + 0.6 * 45, abs=5)


def test_motion_artefact_is_locked_to_the_steps(exercise) -> None:
    _, signals = exercise
    ppg = signals["ppg"][:, 60 * PPG_FS :]
    for device in (2, 5):
        vertical = signals["acc"][device, 60 * ACC_FS :, 2]
        cadence = _dominant_hz(vertical, ACC_FS)
        # Real PPG algorithms lock onto this peak: a step rate of 1.7-3 Hz reads 100-180 bpm.
        assert _dominant_hz(ppg[device], PPG_FS) == pytest.approx(cadence, abs=0.05)


def test_motion_artefact_scales_with_intensity_and_motion() -> None:
    """Same seed with the scenario's motion multiplier at 1 and at 0: the difference is
    exactly the motion artefact (the body is the same), step-locked on both sensors."""

    def signals(motion: float) -> dict[str, np.ndarray]:
        cond = Conditions.quiet(3)
        cond.walking[0] = 0.5
        cond.running[1] = 1.0
        cond.motion[:] = motion
        return _run(cond, 60, seed=4)

    moving, still = signals(1.0), signals(0.0)
    assert np.array_equal(moving["hr"], still["hr"])  # the artefact is not physiology
    for name, fs in (("ecg", 128), ("ppg", PPG_FS)):
        artefact = moving[name] - still[name]
        assert np.all(artefact[2] == 0)  # resting: none
        assert 1.4 < artefact[1].std() / artefact[0].std() < 3.5  # running ~2x walking
        for device in (0, 1):
            cadence = _dominant_hz(moving["acc"][device, :, 2], ACC_FS)
            assert _dominant_hz(artefact[device], fs) == pytest.approx(cadence, abs=0.05)
    assert 0.05 < (moving["ecg"] - still["ecg"])[0].std() < 0.3  # mV: walking
