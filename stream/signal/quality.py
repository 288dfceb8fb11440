"""Signal-quality indices (SQI) of one window's ECG and PPG, and their fault flags.

Owns :func:`ecg_quality` and :func:`ppg_quality` (``sqi`` 0..1 and the 0/1 flags of
:data:`QUALITY_KEYS`), their forms on an already prepared signal (:func:`ecg_quality_from`,
:func:`ppg_quality_from`, which the batch analysis calls), the spectral band powers they
read (:func:`band_powers`) and the thresholds of a flat, saturated or detached sensor.
The loops are compiled in :mod:`stream.signal.kernels.stats` (the second beat detector in
:mod:`stream.signal.kernels.detectors`). Example::

    >>> ppg_quality(np.full(640, 3.0), 64.0)
    {'sqi': 0.0, 'flat': 1.0, 'saturated': 0.0, 'lead_off': 1.0, 'motion': 0.0}
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stream.signal.beat_stream import DECISION_DELAY_S
from stream.signal.beats import ECG_FLAT_MV, PPG_BAND, detect_r_peaks, ecg_filtered, elgendi
from stream.signal.filters import bandpass, fill_missing
from stream.signal.kernels import detectors, stats
from stream.signal.window import NAN

QUALITY_KEYS = ("sqi", "flat", "saturated", "lead_off", "motion")
SATURATED_FRACTION = 0.01  # share of samples pinned at the extremes that means clipping
PINNED_FRACTION = 0.3  # share pinned at the rails that means the electrode/sensor is off
# A sensor that comes off shows first at the end of a window: once its last second is
# gone (an ECG within ECG_FLAT_MV; a PPG whose last second varies less than PPG_DROPOUT of
# the window's standard deviation, e.g. the photodiode seeing only ambient light), the
# sensor is off *now*, though most of the window is still signal. Left to the whole-window
# flags it would take most of a window to show, and meanwhile the missing beats read as a
# heart slowing to a stop. A pulse wave's last second varies about as much as its window
# (even at 40 bpm, diastole is a falling curve); ambient light on the photodiode ~0.07 of it.
SIGNAL_LOST_S = 1.0
PPG_DROPOUT = 0.15
# A loose electrode loses contact for a moment (0.15-1.2 s, MIT-BIH NST "em" artefact) and
# shows a stretch flat within ECG_FLAT_MV, or pinned at a rail, in the middle of a live
# ECG. The beats around it are the pop of the electrode recharging and the beat it hid, so
# the window's rhythm cannot be read: it counts as artefact, as a monitor's "cannot
# analyze". An attached electrode's quiet stretch between beats is shorter: on real
# recordings the longest stretch within 0.02 mV in any 10 s window is 0.05 s (MIT-BIH 208,
# 360 Hz), 0.18 s (pyphysio's ECG) and 0.20 s (systole's Task1 ECG, at 250 Hz); the lost
# tail of features._LOST_TAIL_MIN_S draws the same line at 0.25 s.
CONTACT_LOSS_S = 0.25


@lru_cache(maxsize=256)
def _band_edges(n: int, fs: float, bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    return np.searchsorted(np.fft.rfftfreq(n, 1.0 / fs), np.asarray(bands, dtype=float))


def band_powers(x: np.ndarray, fs: float, bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Spectral power in each ``(low, high)`` Hz band (one FFT, cumulative sums), along the
    last axis (a 2-D ``x`` gives one row of band powers per window)."""
    spectrum = np.fft.rfft(x - x.mean(axis=-1, keepdims=True))
    power = spectrum.real**2 + spectrum.imag**2
    cumulative = np.concatenate((np.zeros_like(power[..., :1]), np.cumsum(power, axis=-1)), -1)
    edges = _band_edges(x.shape[-1], float(fs), bands)
    return cumulative[..., edges[:, 1]] - cumulative[..., edges[:, 0]]


ECG_BANDS = ((5.0, 15.0), (5.0, 40.0), (0.0, 1.0), (0.0, 40.0))  # QRS, wide, baseline, total


def ppg_bands(fs: float) -> tuple[tuple[float, float], ...]:
    """The PPG quality index's bands at rate ``fs``: the pulse band and the total."""
    return ((0.5, 5.0), (0.0, fs / 2))  # pulse band, total


def _unit(value: float) -> float:
    """Clamp a scalar to 0..1 (np.clip costs more than the arithmetic it guards)."""
    return min(max(float(value), 0.0), 1.0)


def _quality(sqi: float, flat: bool, saturated: bool, lead_off: bool, motion: bool) -> dict:
    return {
        "sqi": _unit(sqi),
        "flat": float(flat),
        "saturated": float(saturated),
        "lead_off": float(lead_off),
        "motion": float(motion),
    }


def ecg_lost_tail(raw: np.ndarray, fs: float) -> int:
    """Trailing samples of an ECG that carry no signal: flat within :data:`ECG_FLAT_MV`
    (an attached electrode, even on a heart at standstill, shows more baseline noise)."""
    return int(stats.flat_tail(raw, ECG_FLAT_MV))


def ppg_lost_tail(raw: np.ndarray, fs: float) -> int:
    """The last :data:`SIGNAL_LOST_S` of a PPG (its length in samples) when no pulse
    reaches the sensor any more (it came off, or sees only ambient light), else 0."""
    tail = max(int(SIGNAL_LOST_S * fs), 2)
    if len(raw) <= 2 * tail:
        return 0
    return tail if np.std(raw[-tail:]) < PPG_DROPOUT * np.std(raw) else 0


def ecg_quality_from(
    raw: np.ndarray,
    filtered: np.ndarray,
    valid: float,
    peaks: np.ndarray,
    fs: float,
    powers: np.ndarray | None = None,
) -> dict[str, float]:
    """:func:`ecg_quality` of an ECG already prepared: gaps filled (``raw``), bandpassed
    (``filtered``), the share ``valid`` of samples present, its R ``peaks`` and, when
    already computed, its :data:`ECG_BANDS` ``powers``."""
    if valid == 0.0 or len(raw) < fs:
        return _quality(0.0, False, False, False, False) | {"flat": NAN, "lead_off": NAN}
    pinned = stats.pinned_fraction(raw)
    flat = bool(stats.span(raw) < ECG_FLAT_MV)
    saturated = not flat and pinned > SATURATED_FRACTION
    lost = ecg_lost_tail(raw, fs) >= SIGNAL_LOST_S * fs
    lead_off = flat or pinned > PINNED_FRACTION or lost
    if lead_off:
        return _quality(0.0, flat, saturated, lead_off, False)
    # Judged where every sample is present: a bridged gap is a straight line, not a contact
    # loss (gaps lower ``valid`` instead).
    contact_lost = valid == 1.0 and stats.has_flat_run(raw, ECG_FLAT_MV, round(CONTACT_LOSS_S * fs))
    # Li, Mark & Clifford (2008) indices: pSQI (QRS band share), basSQI (baseline wander),
    # kSQI (kurtosis: ECG is spiky, noise is Gaussian) and bSQI (two detectors agree).
    qrs, wide, baseline, total = band_powers(raw, fs, ECG_BANDS) if powers is None else powers
    p_sqi = qrs / wide if wide > 0 else 0.0
    bas_sqi = 1.0 - baseline / total if total > 0 else 0.0
    k_sqi = stats.kurtosis(filtered)
    # bSQI: the beats agree with a plain peak detector's (matched / all distinct beats),
    # compared where both have decided: the causal beat detector decides a beat
    # DECISION_DELAY_S after it, so the window's last beat may still be pending there.
    simple = detectors.simple_beats(filtered, max(int(0.3 * fs), 1))
    decided = len(filtered) - round(DECISION_DELAY_S * fs)
    b_sqi = stats.agreement(peaks[peaks < decided], simple[simple < decided], round(0.15 * fs))
    k_score = _unit((k_sqi - 3.0) / 2.0)  # Gaussian noise 3, clean ECG > 5
    p_score = _unit((p_sqi - 0.3) / 0.2)  # white noise ≈ 0.3, ECG 0.5-0.8
    bas_score = _unit(bas_sqi / 0.2)  # only gross wander costs quality
    # The weakest index decides: one failed view of the signal is enough to distrust it.
    score = min(b_sqi, k_score, p_score, bas_score)
    motion = k_sqi < 4.0 or b_sqi < 0.7 or bas_sqi < 0.1 or contact_lost
    return _quality(valid * score, flat, saturated, lead_off, motion)


def ecg_quality(ecg: np.ndarray, fs: float) -> dict[str, float]:
    """ECG quality: ``sqi`` 0..1 and 0/1 flags ``flat``, ``saturated``, ``lead_off``, ``motion``.

    ``flat``: peak-to-peak < 0.02 mV (an amplifier or electrode giving nothing; asystole
    still shows baseline noise above this). ``saturated``: > 1 % of samples pinned at the
    window's extremes. ``lead_off``: flat, > 30 % pinned at a rail, or the last second
    lost (:data:`SIGNAL_LOST_S`). ``motion``: artefact — the signal lost ECG's spikiness
    (kSQI < 4), two detectors disagree (bSQI < 0.7), baseline wander holds > 90 % of the
    power, or the electrode lost contact for a moment (:data:`CONTACT_LOSS_S` flat or at a
    rail). ``sqi`` is the weakest of bSQI, kSQI, pSQI
    and basSQI (each mapped to 0..1), times the share of samples present.
    """
    raw, filtered, valid = ecg_filtered(ecg, fs)
    return ecg_quality_from(raw, filtered, valid, detect_r_peaks(ecg, fs), fs)


def ppg_quality_from(
    raw: np.ndarray,
    filtered: np.ndarray,
    valid: float,
    pulses: np.ndarray,
    fs: float,
    powers: np.ndarray | None = None,
) -> dict[str, float]:
    """:func:`ppg_quality` of a PPG already prepared (as for :func:`ecg_quality_from`, with
    its ``pulses`` and :func:`ppg_bands` ``powers``)."""
    if valid == 0.0 or len(raw) < fs:
        return _quality(0.0, False, False, False, False) | {"flat": NAN, "lead_off": NAN}
    pinned = stats.pinned_fraction(raw)
    flat = bool(stats.span(raw) == 0 or stats.repeated_fraction(raw) > 0.9)
    saturated = not flat and pinned > SATURATED_FRACTION
    lead_off = flat or pinned > PINNED_FRACTION or ppg_lost_tail(raw, fs) > 0
    if lead_off or len(pulses) < 3:
        return _quality(0.0, flat, saturated, lead_off, not lead_off)
    # Template matching (Li & Clifford 2012): clean pulses look alike, artefacts do not.
    correlation = stats.template_correlation(filtered, pulses, int(0.3 * fs))
    in_band, total = band_powers(raw, fs, ppg_bands(fs)) if powers is None else powers
    band_share = in_band / total if total > 0 else 0.0
    # Peak-aligned noise still correlates about 0.6 with its own average; clean PPG > 0.85.
    score = 0.7 * _unit((correlation - 0.65) / 0.25) + 0.3 * _unit((band_share - 0.3) / 0.5)
    motion = correlation < 0.8
    return _quality(valid * score * (0.5 if saturated else 1.0), flat, saturated, lead_off, motion)


def ppg_quality(ppg: np.ndarray, fs: float) -> dict[str, float]:
    """PPG quality: ``sqi`` 0..1 and flags as for :func:`ecg_quality`.

    ``flat``: no change (> 90 % of successive samples equal). ``lead_off`` (sensor off the
    skin): flat, > 30 % pinned, or no pulse in the last second (:data:`SIGNAL_LOST_S`).
    ``motion``: pulses no longer resemble their average (template correlation < 0.8) or
    fewer than 3 pulses were found.
    """
    raw, valid = fill_missing(ppg)
    filtered = bandpass(raw, fs, *PPG_BAND) if len(raw) > 12 else np.zeros_like(raw)
    pulses = elgendi(filtered, fs) if valid >= 0.2 and stats.span(raw) > 0 else np.zeros(0, int)
    return ppg_quality_from(raw, filtered, valid, pulses, fs)
