"""The simulated sensors' waveforms: accelerometer falls, lead-off and ambient light while
detached, and the windowed Gaussians the ECG is drawn with."""

from __future__ import annotations

import numpy as np

from producers.physiology import Conditions, Physiology
from producers.waveforms import ACC_FS, LEAD_OFF_RAIL_MV, _gaussians


def _run(cond: Conditions, seconds: int, seed: int = 7) -> dict[str, np.ndarray]:
    body = Physiology(len(cond.hr), np.random.default_rng(seed))
    chunks = [body.step(cond) for _ in range(seconds)]
    return {
        name: np.concatenate([getattr(c, name) for c in chunks], axis=1)
        for name in ("ecg", "ppg", "acc", "hr", "spo2", "resp", "temp")
    }


def test_fall_is_an_impact_then_lying_still() -> None:
    cond = Conditions.quiet(1)
    cond.activity[:] = 0.5
    body = Physiology(1, np.random.default_rng(3))
    walking = np.concatenate([body.step(cond).acc[0] for _ in range(5)])
    cond.fall[:] = 0.5
    cond.fall_at[:] = 0.4
    impact = body.step(cond).acc[0]
    cond.fall_at[:] = np.nan
    cond.fallen[:] = True
    lying = np.concatenate([body.step(cond).acc[0] for _ in range(5)])
    magnitude = np.linalg.norm(impact, axis=1)
    assert 3.0 <= magnitude.max() <= 6.5
    assert np.linalg.norm(walking, axis=1).std() > 0.1
    assert np.linalg.norm(lying, axis=1).std() < 0.02
    assert abs(lying[:, 2].mean()) < 0.3  # gravity no longer along the upright axis
    assert walking.shape[0] == 5 * ACC_FS


def test_detached_sensor_shows_lead_off() -> None:
    cond = Conditions.quiet(6)
    cond.detached[:] = True
    signals = _run(cond, 3)
    ecg = signals["ecg"]
    assert np.all(ecg.std(axis=1) < 0.01)
    assert set(np.round(ecg.mean(axis=1))) <= {0.0, LEAD_OFF_RAIL_MV}


def test_only_detached_sensors_lose_contact() -> None:
    cond = Conditions.quiet(6)
    cond.detached[::2] = True
    signals = _run(cond, 3)
    assert np.all(signals["ecg"][::2].std(axis=1) < 0.01)
    assert np.all(signals["ecg"][1::2].std(axis=1) > 0.1)  # QRS complexes
    assert np.all(np.abs(signals["ppg"][::2]).max(axis=1) < 0.15)  # ambient light only
    assert np.all(signals["ppg"][1::2].std(axis=1) > 0.1)  # pulses


def test_windowed_gaussians_match_the_full_sum() -> None:
    rng = np.random.default_rng(5)
    t0, fs, size = 100.0, 128.0, 128
    # Bumps before, inside, straddling and after the frame, narrow and wide.
    centre = t0 + rng.uniform(-1.0, 2.0, (20, 4))
    width = rng.uniform(0.01, 0.07, (20, 4))
    amp = rng.uniform(-1.6, 1.6, (20, 4))
    t = t0 + np.arange(size) / fs
    full = np.sum(
        amp[:, :, None] * np.exp(-0.5 * ((t - centre[:, :, None]) / width[:, :, None]) ** 2),
        axis=1,
    )
    windowed = _gaussians(t0, fs, size, centre, width, amp)
    assert windowed.shape == (20, size)
    assert np.abs(windowed - full).max() < 1e-5  # float32 and the 6-width cut-off
    assert np.abs(full).max() > 1.0  # the bumps really land in the frame
