"""Loose electrode, low perfusion and sensor noise (artefacts): one sensor misleads while
the patient, and everything the other sensors and the device report, stays the same.

Each test renders the same seed with and without the artefact: the artefact kinds draw
from their own random stream, so the rest of the body is byte-identical and what differs
is the artefact alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from producers.artefacts import perfusion_factor, sensor_noise_gain
from producers.physiology import Conditions, Physiology
from producers.waveforms import ECG_FS, LEAD_OFF_RAIL_MV, PPG_FS

SECONDS = 180


def _pair(kind: str, severity: float, seconds: int = SECONDS) -> tuple[dict, dict, Conditions]:
    """Two devices (baselines 72 and 64) rendered clean, then with ``kind`` on device 0."""

    def run(cond: Conditions) -> dict[str, np.ndarray]:
        body = Physiology(2, np.random.default_rng(11))
        chunks = [body.step(cond) for _ in range(seconds)]
        out = {
            name: np.concatenate([getattr(c, name) for c in chunks], axis=1)
            for name in ("ecg", "ppg", "acc", "hr", "spo2", "resp", "temp")
        }
        out["true_spo2"] = body.spo2_now
        return out

    cond = Conditions.quiet(2)
    cond.hr[:] = [72, 64]
    clean = run(cond)
    getattr(cond, kind)[0] = severity
    return clean, run(cond), cond


def _truthful_except(clean: dict, degraded: dict, changed: set[str]) -> None:
    for name in ("ecg", "ppg", "acc", "hr", "spo2", "resp", "temp"):
        same = np.array_equal(clean[name][0], degraded[name][0])
        assert same != (name in changed), name
        assert np.array_equal(clean[name][1], degraded[name][1]), f"{name} of the other device"


@pytest.fixture(scope="module")
def loose() -> tuple[dict, dict, Conditions]:
    return _pair("loose_electrode", 1.0, seconds=300)


def test_loose_electrode_changes_the_ecg_only(loose) -> None:
    clean, degraded, _ = loose
    _truthful_except(clean, degraded, {"ecg"})


def test_loose_electrode_pops_wanders_and_briefly_loses_contact(loose) -> None:
    clean, degraded, _ = loose
    ecg, reference = degraded["ecg"][0], clean["ecg"][0]
    # Pops: jumps between samples that a clean ECG never makes (QRS slopes stay < 0.8 mV).
    assert np.abs(np.diff(reference)).max() < 0.8
    jumps = np.abs(np.diff(ecg)) > 1.2
    assert jumps.sum() > 30
    assert np.abs(ecg).max() <= LEAD_OFF_RAIL_MV + 0.01  # the amplifier's rails bound it
    # Baseline wander of about a millivolt (1 s medians), far beyond the clean one's.
    medians = np.median(ecg.reshape(-1, ECG_FS), axis=1)
    assert medians.std() > 0.5
    assert medians.std() > 3 * np.median(reference.reshape(-1, ECG_FS), axis=1).std()
    # Contact losses: flat or railed stretches, each brief (a lead-off is longer).
    still = np.abs(np.diff(ecg)) < 0.01
    edges = np.flatnonzero(np.diff(np.concatenate(([0], still.astype(int), [0]))))
    runs = (edges[1::2] - edges[::2]) / ECG_FS
    long_enough = runs >= 0.1
    losses = runs[long_enough]
    assert losses.size >= 3
    assert losses.max() <= 1.25
    # No 10 s window is as pinned or flat as a lead-off (30 % of it).
    stuck = np.zeros(ecg.size)
    for begin, end in zip(edges[::2][long_enough], edges[1::2][long_enough], strict=True):
        stuck[begin : end + 1] = 1
    assert stuck.reshape(-1, 10 * ECG_FS).mean(axis=1).max() < 0.3


def test_low_perfusion_weakens_the_ppg_and_jitters_spo2_only() -> None:
    clean, degraded, _ = _pair("low_perfusion", 1.0)
    _truthful_except(clean, degraded, {"ppg", "spo2"})

    def pulse_amplitude(ppg: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(ppg - ppg.mean()))
        freqs = np.fft.rfftfreq(ppg.size, 1 / PPG_FS)
        return float(spectrum[(freqs > 0.9) & (freqs < 1.5)].max())  # the 72 bpm pulse

    ratio = pulse_amplitude(degraded["ppg"][0]) / pulse_amplitude(clean["ppg"][0])
    assert 0.08 <= ratio <= 0.14 and perfusion_factor(np.array(1.0)) == pytest.approx(0.10)
    # Relatively much noisier: what is left after the clean pulse, scaled down, is removed.
    residual = degraded["ppg"][0] - 0.10 * clean["ppg"][0]
    noise = np.diff(residual).std() / np.diff(0.10 * clean["ppg"][0]).std()
    assert noise > 0.3
    # The patient is not desaturated; the oximeter's reading wanders and may dip briefly.
    assert degraded["true_spo2"][0] == clean["true_spo2"][0]
    spo2 = degraded["spo2"][0, 20:]
    assert spo2.mean() == pytest.approx(97, abs=1.0)
    assert spo2.std() > 2 * clean["spo2"][0, 20:].std()
    assert 1.0 < spo2.std() < 2.5 and spo2.min() >= 90
    lows = spo2 <= 94
    assert 0 < lows.mean() < 0.15  # brief dips, not a desaturation


def test_light_low_perfusion_keeps_a_quarter_of_the_pulse() -> None:
    assert perfusion_factor(np.array([0.0, 0.01, 0.5, 1.0])) == pytest.approx(
        [1.0, 0.2485, 0.175, 0.10]
    )


def test_sensor_noise_multiplies_the_noise_on_a_stable_patient() -> None:
    clean, degraded, _ = _pair("sensor_noise", 1.0, seconds=30)
    _truthful_except(clean, degraded, {"ecg", "ppg"})
    gain = float(sensor_noise_gain(np.array(1.0)))
    assert 3.0 <= gain <= 6.0
    # Same draws, scaled: the difference is (gain - 1) x the clean run's sensor noise.
    extra_ecg = (degraded["ecg"][0] - clean["ecg"][0]).std()
    extra_ppg = (degraded["ppg"][0] - clean["ppg"][0]).std()
    assert extra_ecg == pytest.approx((gain - 1) * 0.012, rel=0.05)  # mV
    assert extra_ppg == pytest.approx((gain - 1) * 0.01, rel=0.05)
