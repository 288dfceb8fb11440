"""Simulated physiology checked with an established detector (sleepecg), not with itself."""

from __future__ import annotations

import numpy as np
import pytest
import sleepecg

from producers.physiology import (
    Conditions,
    Physiology,
    target_heart_rate,
    target_resp_rate,
    target_spo2,
)
from producers.waveforms import ECG_FS


def _run(cond: Conditions, seconds: int, seed: int = 7) -> dict[str, np.ndarray]:
    body = Physiology(len(cond.hr), np.random.default_rng(seed))
    chunks = [body.step(cond) for _ in range(seconds)]
    return {
        name: np.concatenate([getattr(c, name) for c in chunks], axis=1)
        for name in ("ecg", "ppg", "acc", "hr", "spo2", "resp", "temp")
    }


@pytest.fixture(scope="module")
def rhythms() -> tuple[Conditions, dict[str, np.ndarray]]:
    cond = Conditions.quiet(4)
    cond.hr[:] = [70, 75, 65, 80]
    cond.tachycardia[1] = 0.5
    cond.bradycardia[2] = 0.6
    cond.af[3] = 0.8
    return cond, _run(cond, 90)


def _detected_rr(ecg: np.ndarray) -> np.ndarray:
    settled = ecg[30 * ECG_FS :]  # HR approaches its target over ~6 s
    beats = sleepecg.detect_heartbeats(settled, ECG_FS)
    return np.diff(beats) / ECG_FS


def test_detected_heart_rate_matches_scenario(rhythms) -> None:
    cond, signals = rhythms
    expected = target_heart_rate(
        cond.hr, cond.activity, cond.fever, cond.tachycardia, cond.bradycardia
    )
    for device in range(3):  # sinus, tachycardia, bradycardia
        hr = 60.0 / np.mean(_detected_rr(signals["ecg"][device]))
        assert hr == pytest.approx(expected[device], abs=3.0)
        reported = signals["hr"][device, 30:].mean()
        assert reported == pytest.approx(expected[device], abs=3.0)
    assert expected[1] > 130 and expected[2] < 45  # the events really are tachy / brady


def test_af_is_irregularly_irregular(rhythms) -> None:
    _, signals = rhythms

    def irregularity(rr: np.ndarray) -> float:
        return float(np.mean(np.abs(np.diff(rr))) / np.mean(rr))

    sinus = irregularity(_detected_rr(signals["ecg"][0]))
    af = irregularity(_detected_rr(signals["ecg"][3]))
    assert af > 0.12
    assert af > 4 * sinus


def test_sinus_has_respiratory_arrhythmia_not_a_metronome(rhythms) -> None:
    _, signals = rhythms
    rr = _detected_rr(signals["ecg"][0])
    assert 0.01 < np.std(rr) / np.mean(rr) < 0.1


def test_ppg_pulses_follow_the_same_beats(rhythms) -> None:
    _, signals = rhythms
    ecg_rate = 60.0 / np.mean(_detected_rr(signals["ecg"][1]))
    ppg = signals["ppg"][1, 30 * 64 :]
    spectrum = np.abs(np.fft.rfft(ppg - ppg.mean()))
    freqs = np.fft.rfftfreq(len(ppg), 1 / 64)
    band = (freqs > 0.5) & (freqs < 4)
    assert 60 * freqs[band][np.argmax(spectrum[band])] == pytest.approx(ecg_rate, abs=4)


def test_spo2_and_respiration_follow_their_events() -> None:
    cond = Conditions.quiet(2)
    body = Physiology(2, np.random.default_rng(5))
    before = [body.step(cond) for _ in range(20)]
    cond.desaturation[1] = 0.6
    cond.tachypnoea[1] = 0.8
    during = [body.step(cond) for _ in range(100)]
    spo2 = np.concatenate([c.spo2 for c in before + during], axis=1)
    resp = np.concatenate([c.resp for c in before + during], axis=1)
    late = slice(90, None)
    assert spo2[0, late].mean() == pytest.approx(97, abs=1.0)
    assert spo2[1, :20].mean() == pytest.approx(97, abs=1.0)
    assert spo2[1, late].mean() == pytest.approx(target_spo2(97, 0.6), abs=1.5)
    assert resp[1, late].mean() == pytest.approx(target_resp_rate(14, 0, 0.8), abs=1.5)
    # Saturation drifts down over tens of seconds rather than stepping.
    assert 80 < spo2[1, 25:28].mean() < 95


def test_same_seed_same_signals() -> None:
    cond = Conditions.quiet(3)
    a, b = _run(cond, 4, seed=11), _run(cond, 4, seed=11)
    c = _run(cond, 4, seed=12)
    assert np.array_equal(a["ecg"], b["ecg"]) and np.array_equal(a["acc"], b["acc"])
    assert not np.array_equal(a["ecg"], c["ecg"])


def test_frame_length_must_be_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        Physiology(1, np.random.default_rng(0), frame_s=0.5)


def test_an_abrupt_onset_is_there_at_once_and_a_gradual_one_drifts() -> None:
    cond = Conditions.quiet(2)
    body = Physiology(2, np.random.default_rng(5))
    for _ in range(20):
        body.step(cond)
    cond.tachycardia[:] = 0.8
    cond.desaturation[:] = 0.8
    cond.abrupt[1] = True
    chunk = body.step(cond)
    target_hr = target_heart_rate(72, 0, 0, 0.8, 0)
    assert body.hr_now[1] == pytest.approx(target_hr)
    assert body.hr_now[0] < target_hr - 20  # drifting, tau 6 s
    assert chunk.spo2[1].mean() == pytest.approx(target_spo2(97, 0.8), abs=1.5)
    assert chunk.spo2[0].mean() > target_spo2(97, 0.8) + 3
    # The very next beat interval is at the new rate.
    onset_beats = body.beat_t[1][body.beat_t[1] >= 20.0]
    assert np.diff(onset_beats)[:2] == pytest.approx([60 / target_hr] * 2, rel=0.12)
