"""stream.signal.quality: fault flags of synthetic faults, noise ranked below real ECG
(MIT-BIH 208), PPG quality flags."""

from __future__ import annotations

import numpy as np
import pytest

from stream.signal.beats import ECG_FLAT_MV
from stream.signal.kernels.stats import has_flat_run
from stream.signal.quality import CONTACT_LOSS_S, ecg_quality, ppg_quality
from tests.unit.stream.signal.synthetic import regular_beats, synthetic_ecg


def _flags(quality: dict[str, float]) -> tuple[float, float, float]:
    return quality["flat"], quality["saturated"], quality["lead_off"]


def _quality_cases(fs: float) -> dict[str, tuple[np.ndarray, tuple[float, float, float]]]:
    clean = synthetic_ecg(regular_beats(70, 10.0), fs, 10.0)
    n = len(clean)
    return {
        "clean": (clean, (0.0, 0.0, 0.0)),
        "flat zero": (np.zeros(n), (1.0, 0.0, 1.0)),
        "flat offset": (np.full(n, 1.7), (1.0, 0.0, 1.0)),
        "clipped peaks": (np.clip(clean, None, 0.6), (0.0, 1.0, 0.0)),
        "pinned at rail": (np.where(np.arange(n) < n // 2, clean, 5.0), (0.0, 1.0, 1.0)),
    }


@pytest.mark.parametrize("fs", [128.0, 360.0])
@pytest.mark.parametrize(
    "case", ["clean", "flat zero", "flat offset", "clipped peaks", "pinned at rail"]
)
def test_ecg_quality_flags(fs: float, case: str) -> None:
    ecg, expected = _quality_cases(fs)[case]
    quality = ecg_quality(ecg, fs)
    assert _flags(quality) == expected
    assert 0.0 <= quality["sqi"] <= 1.0
    if case == "clean":
        assert quality["sqi"] > 0.9 and quality["motion"] == 0.0
    if expected[2]:
        assert quality["sqi"] == 0.0


def test_ecg_quality_ranks_noise_below_ecg(record_208: np.ndarray) -> None:
    fs = 360.0
    rng = np.random.default_rng(2)
    windows = record_208[: 30 * 3600].reshape(30, 3600)
    real = np.array([ecg_quality(w, fs)["sqi"] for w in windows])
    noise = ecg_quality(rng.normal(0, 0.3, 3600), fs)
    wander = ecg_quality(windows[15] + 3 * np.sin(2 * np.pi * 0.3 * np.arange(3600) / fs), fs)
    assert np.median(real) > 0.9
    assert np.mean([ecg_quality(w, fs)["motion"] for w in windows]) < 0.1
    assert noise["sqi"] < 0.2 and noise["motion"] == 1.0
    assert wander["sqi"] < 0.5 and wander["motion"] == 1.0


@pytest.mark.parametrize("level", [0.0, 5.0])
@pytest.mark.parametrize("lost_s", [0.3, 1.2])
def test_a_moment_of_lost_contact_is_artefact(level: float, lost_s: float) -> None:
    """A loose electrode losing contact mid-window (flat, or at a rail) hides a beat and
    its return pops like one: the rhythm of that window is artefact (motion), though the
    electrode is attached again and the window is not lead-off."""
    fs = 250.0
    ecg = synthetic_ecg(regular_beats(70, 10.0), fs, 10.0)
    lost = slice(int(4.0 * fs), int((4.0 + lost_s) * fs))
    ecg[lost] = level + 0.002 * np.random.default_rng(3).standard_normal(lost.stop - lost.start)
    quality = ecg_quality(ecg, fs)
    assert quality["motion"] == 1.0 and quality["lead_off"] == 0.0


def test_real_ecg_never_stays_flat_as_long_as_a_lost_contact(record_208: np.ndarray) -> None:
    """The line between a quiet stretch between beats and a lost contact, on a real
    recording: no 10 s window of MIT-BIH 208 stays within ECG_FLAT_MV for CONTACT_LOSS_S,
    and none is artefact for it."""
    fs = 360.0
    windows = record_208[: 30 * 3600].reshape(30, 3600)
    half = round(0.5 * CONTACT_LOSS_S * fs)
    assert not any(has_flat_run(np.ascontiguousarray(w), ECG_FLAT_MV, half) for w in windows)
    assert not any(
        ecg_quality(w, fs)["motion"] and has_flat_run(w, ECG_FLAT_MV, 2 * half) for w in windows
    )


def test_ppg_quality_flags() -> None:
    fs = 64.0
    t = np.arange(640) / fs
    pulse = np.sin(2 * np.pi * 1.2 * t) ** 21 + 0.05 * np.sin(2 * np.pi * 0.25 * t)
    rng = np.random.default_rng(4)
    assert ppg_quality(pulse, fs)["sqi"] > 0.8
    assert _flags(ppg_quality(np.full(640, 3.0), fs)) == (1.0, 0.0, 1.0)
    assert ppg_quality(np.clip(pulse, None, 0.5), fs)["saturated"] == 1.0
    noisy = ppg_quality(rng.normal(0, 1, 640), fs)
    assert noisy["sqi"] < 0.5 and noisy["motion"] == 1.0


@pytest.mark.parametrize("rail", [0.0, 5.0])
def test_an_ecg_that_lost_its_last_second_is_lead_off_now(rail: float) -> None:
    """An electrode coming off shows at the end of a window first: 1.2 s at a rail (or at
    zero) after 8.8 s of clean ECG is lead-off now, not a heart that stopped beating."""
    fs = 128.0
    ecg = synthetic_ecg(regular_beats(70, 10.0), fs, 10.0)
    ecg[-int(1.2 * fs) :] = rail + 0.002 * np.random.default_rng(0).standard_normal(int(1.2 * fs))
    quality = ecg_quality(ecg, fs)
    assert quality["lead_off"] == 1.0 and quality["sqi"] == 0.0
    still_attached = synthetic_ecg(regular_beats(70, 10.0), fs, 10.0)
    assert ecg_quality(still_attached, fs)["lead_off"] == 0.0


def test_a_ppg_whose_last_second_is_ambient_light_is_off_the_skin() -> None:
    fs = 64.0
    t = np.arange(int(10 * fs)) / fs
    noise = 0.01 * np.random.default_rng(2).standard_normal(len(t))

    def pulse_wave(hz: float) -> np.ndarray:  # a systolic peak and its dicrotic echo
        return np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(4 * np.pi * hz * t + 0.8) + noise

    pulse = pulse_wave(1.2)
    assert ppg_quality(pulse, fs)["lead_off"] == 0.0
    off = pulse.copy()
    off[-int(1.5 * fs) :] = 0.02 * np.random.default_rng(1).standard_normal(int(1.5 * fs))
    assert ppg_quality(off, fs)["lead_off"] == 1.0
    assert ppg_quality(pulse_wave(40 / 60), fs)["lead_off"] == 0.0  # 40 bpm: long diastole
