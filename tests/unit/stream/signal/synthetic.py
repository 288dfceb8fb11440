"""Synthetic signals with known answers, and the recordings shipped with reference packages,
shared by the signal tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0], *parts)


def synthetic_ecg(
    beat_times: np.ndarray, fs: float, duration: float, amplitude: np.ndarray | None = None
) -> np.ndarray:
    """Sum-of-Gaussians PQRST beats (McSharry-style shapes) at the given times, in mV."""
    t = np.arange(int(duration * fs)) / fs
    amplitude = np.ones(len(beat_times)) if amplitude is None else amplitude
    waves = ((-0.2, 0.1, 0.025), (-0.03, -0.1, 0.01), (0.0, 1.2, 0.012), (0.03, -0.2, 0.01),
             (0.25, 0.3, 0.04))  # fmt: skip
    ecg = np.zeros_like(t)
    for beat, scale in zip(beat_times, amplitude, strict=True):
        for offset, height, width in waves:
            ecg += scale * height * np.exp(-(((t - beat - offset) / width) ** 2) / 2)
    rng = np.random.default_rng(1)
    return ecg + rng.normal(0.0, 0.01, len(t))


def regular_beats(bpm: float, duration: float) -> np.ndarray:
    return np.arange(0.4, duration - 0.3, 60.0 / bpm)


def acc_segments(fs: float, segments: list[tuple[float, np.ndarray, float]]) -> np.ndarray:
    """Concatenate (seconds, gravity vector, sway amplitude in g at 2 Hz) segments."""
    parts = []
    for seconds, gravity, sway in segments:
        t = np.arange(int(seconds * fs)) / fs
        part = np.tile(gravity, (len(t), 1)).astype(float)
        part[:, 2] += sway * np.sin(2 * np.pi * 2.0 * t)
        parts.append(part)
    rng = np.random.default_rng(5)
    acc = np.concatenate(parts)
    return acc + rng.normal(0, 0.005, acc.shape)


UPRIGHT, LYING = np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
