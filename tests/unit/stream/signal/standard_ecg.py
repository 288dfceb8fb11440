"""Synthetic ECGs for the heart-rate test cases of IEC 60601-2-27 (201.7.9.2.9.101,
201.12.1.101) and ANSI/AAMI EC13 (4.1.2.1), built from their descriptions.

Beats are sums of Gaussian waves (P, QRS, T), as McSharry et al.'s ECGSYN draws them:
enough for a heart-rate meter, which sees QRS amplitude, width and timing, T-wave height
and polarity. A QRS of width ``w`` is a Gaussian R wave of standard deviation ``w / 6``
(±3 s.d. is the complex) with a small S wave; a ventricular beat is wide, taller, with no
P wave and a T wave opposite to its QRS. Amplitudes are in mV; times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FS = 250.0  # Hz, the simulated wearables' ECG rate


@dataclass(frozen=True)
class Beat:
    """One beat at time ``t`` (its R peak)."""

    t: float
    qrs_mv: float = 1.0
    qrs_s: float = 0.09
    t_mv: float = 0.3
    p_mv: float = 0.15
    ventricular: bool = False
    polarity: float = 1.0  # -1: an inverted QRS (bidirectional systoles)


def normal(t: float, **shape: float) -> Beat:
    return Beat(t, **shape)


def ventricular(t: float) -> Beat:
    """A premature ventricular beat: wide (140 ms), 1.5 mV, no P, discordant T."""
    return Beat(t, qrs_mv=1.5, qrs_s=0.14, t_mv=-0.4, p_mv=0.0, ventricular=True)


def beats_at(times: np.ndarray, **shape: float) -> list[Beat]:
    return [Beat(float(t), **shape) for t in times]


def times_from_intervals(intervals: list[float], start: float = 0.5) -> np.ndarray:
    """R-peak times from successive RR intervals (the first beat at ``start``)."""
    return start + np.concatenate(([0.0], np.cumsum(intervals)))


def render(
    beats: list[Beat], duration: float, fs: float = FS, noise_mv: float = 0.01
) -> np.ndarray:
    """The ECG of ``beats`` over ``duration`` seconds at ``fs``, with white noise."""
    t = np.arange(round(duration * fs)) / fs
    ecg = np.zeros_like(t)

    def wave(center: float, height: float, sd: float) -> None:
        lo, hi = np.searchsorted(t, (center - 5 * sd, center + 5 * sd))
        ecg[lo:hi] += height * np.exp(-0.5 * ((t[lo:hi] - center) / sd) ** 2)

    for beat in beats:
        sd = beat.qrs_s / 6.0
        if beat.p_mv:
            wave(beat.t - 0.16, beat.p_mv, 0.025)
        wave(beat.t, beat.polarity * beat.qrs_mv, sd)
        wave(beat.t + 2.5 * sd, -0.15 * beat.polarity * beat.qrs_mv, sd * 0.8)  # S wave
        # T wave ~300 ms after the R peak (QT of about 0.4 s at 80 bpm), wider when tall.
        wave(beat.t + 0.3, beat.t_mv, 0.05)
    rng = np.random.default_rng(7)
    return ecg + rng.normal(0.0, noise_mv, len(t))
