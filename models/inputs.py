"""How a raw ECG becomes an ECG-kind model input: the one builder training and the stream share.

Pure numpy/scipy, no torch and no Faust: ``models.dataset`` builds training windows with
:func:`ecg_channels` and ``stream.scoring`` builds live inputs with it, so a model never
sees data prepared differently from what it learnt on.

Channels a card may name for an ``ecg`` input, in any order:

- ``ecg``: the ECG resampled to the model's rate with a polyphase anti-alias filter.
  Gaps (nan) stay gaps; the card's normalization imputes them with the training mean.
- ``rr_s``: the RR interval in seconds of the latest beat, step-held until the next one.
  Beats come from :func:`stream.features.detect_r_peaks` on the *source-rate* ECG, the
  same detector the stream's RR features use, so the model sees beat timing at full
  resolution even though its ECG channel is coarse. Nan before the second beat and for
  intervals that span a gap. The stream passes the peaks its window features already
  found (``r_peaks``, the same detector's output for the same samples) instead of
  detecting them twice; training lets the builder detect them.
- ``drr_s``: the latest beat's RR minus the one before (signed, s), step-held likewise:
  near 0 in sinus rhythm, large in both directions in AF, short-then-long around an
  ectopic beat. The irregularity the stream's ``rr_irregularity`` summarizes, per beat.

Example::

    x = ecg_channels(ecg_128hz, 128.0, ["ecg", "rr_s", "drr_s"], fs_out=64.0)  # [640, 3]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.signal import firwin, resample_poly

from stream.features import detect_r_peaks

ECG_CHANNELS = ("ecg", "rr_s", "drr_s")


def same_rate(a: float, b: float) -> bool:
    """Whether two rates (or ratios) are equal within ``np.isclose``'s tolerances; scalar
    ``math.isclose`` because ``np.isclose`` builds arrays on every call."""
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-8)


def output_length(n: int, fs_in: float, fs_out: float) -> int:
    return round(n * fs_out / fs_in)


@lru_cache(maxsize=32)
def _anti_alias(up: int, down: int) -> np.ndarray:
    """The FIR ``resample_poly`` designs by default for ``up / down`` (Kaiser, beta 5),
    designed once per ratio: the design cost more than the filtering of a window."""
    widest = max(up, down)
    taps = firwin(2 * 10 * widest + 1, 1.0 / widest, window=("kaiser", 5.0))
    taps.setflags(write=False)  # shared by every call
    return taps


def resample_ecg(ecg: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """``ecg`` at ``fs_out`` (polyphase filter); samples that were missing stay nan."""
    ecg = np.asarray(ecg, dtype=np.float64)
    n_out = output_length(len(ecg), fs_in, fs_out)
    missing = ~np.isfinite(ecg)
    if missing.all():
        return np.full(n_out, np.nan, dtype=np.float32)
    if missing.any():
        # Bridge gaps linearly so the filter does not smear nan over its whole length.
        index = np.arange(len(ecg))
        ecg = ecg.copy()
        ecg[missing] = np.interp(index[missing], index[~missing], ecg[~missing])
    if same_rate(fs_in, fs_out):
        out = ecg
    else:
        ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
        # "line" padding: a flat or drifting signal has no artificial dip at the edges.
        up, down = ratio.numerator, ratio.denominator
        taps = _anti_alias(up, down)
        out = resample_poly(ecg, up, down, window=taps, padtype="line")[:n_out]
    if missing.any():
        out = out.copy()
        out[_nearest_source(n_out, len(ecg), fs_in, fs_out, missing)] = np.nan
    return out.astype(np.float32)


def _nearest_source(
    n_out: int, n_in: int, fs_in: float, fs_out: float, mask: np.ndarray
) -> np.ndarray:
    """``mask`` (per source sample) looked up at each output sample's time."""
    source = np.minimum(np.round(np.arange(n_out) * fs_in / fs_out).astype(int), n_in - 1)
    return mask[source]


def _step_held(
    peaks: np.ndarray, per_beat: np.ndarray, fs_in: float, t_out: np.ndarray
) -> np.ndarray:
    """``per_beat[k]`` belongs to beat ``peaks[k]`` and holds until the next beat."""
    out = np.full(len(t_out), np.nan, dtype=np.float32)
    latest = np.searchsorted(peaks / fs_in, t_out, side="right") - 1  # beat at or before t
    held = latest >= 0
    out[held] = per_beat[latest[held]]
    return out


def rr_series(
    ecg: np.ndarray, fs_in: float, r_peaks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """R peaks and each beat's RR interval in s (nan for the first and across gaps).

    ``r_peaks``: :func:`detect_r_peaks` of this very ``ecg`` when the caller has it already.
    """
    ecg = np.asarray(ecg, dtype=np.float64)
    peaks = detect_r_peaks(ecg, fs_in) if r_peaks is None else r_peaks
    rr = np.full(len(peaks), np.nan)
    if len(peaks) >= 2:
        rr[1:] = np.diff(peaks) / fs_in
        missing = np.concatenate([[0], np.cumsum(~np.isfinite(ecg))])
        rr[1:][missing[peaks[1:]] - missing[peaks[:-1]] > 0] = np.nan  # an interval over a gap
    return peaks, rr


def rr_channels(
    ecg: np.ndarray, fs_in: float, fs_out: float, r_peaks: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Step-held ``rr_s`` and ``drr_s`` at each output sample (see module doc)."""
    peaks, rr = rr_series(ecg, fs_in, r_peaks)
    t_out = np.arange(output_length(len(ecg), fs_in, fs_out)) / fs_out
    drr = np.full(len(rr), np.nan)
    drr[1:] = np.diff(rr)
    return {
        "rr_s": _step_held(peaks, rr, fs_in, t_out),
        "drr_s": _step_held(peaks, drr, fs_in, t_out),
    }


def ecg_channels(
    ecg: np.ndarray,
    fs_in: float,
    channels: Sequence[str],
    fs_out: float,
    r_peaks: np.ndarray | None = None,
) -> np.ndarray:
    """``[time, len(channels)]`` at ``fs_out`` from one raw ECG window at ``fs_in``.

    ``r_peaks``: :func:`detect_r_peaks` of this ``ecg`` if already known (same result,
    detected once); ``None`` detects them here.
    """
    unknown = set(channels) - set(ECG_CHANNELS)
    if unknown:
        raise ValueError(f"unknown ECG input channels {sorted(unknown)}; known: {ECG_CHANNELS}")
    built: dict[str, np.ndarray] = {}
    if "ecg" in channels:
        built["ecg"] = resample_ecg(ecg, fs_in, fs_out)
    if set(channels) & {"rr_s", "drr_s"}:
        built |= rr_channels(ecg, fs_in, fs_out, r_peaks)
    return np.stack([built[name] for name in channels], axis=1)
