"""Rate and rhythm of detected beats: heart rate, recent rate and RR-interval features.

Owns :func:`heart_rate` (the monitor's displayed rate: averaged recent intervals),
:func:`median_heart_rate`, :func:`recent_heart_rate` (the last two intervals, for
threshold alarms), :func:`rr_features` (HRV, AF irregularity, ectopics) and
:func:`pulse_run_rate` (does the pulse keep pace with a run?) and :func:`in_longest_run`
(no RR interval spans a gap). Beats are sample indices, as
:mod:`stream.signal.beats` finds them. Example (beats at 100 Hz)::

    >>> heart_rate(np.array([0, 100, 200, 300]), 100.0)
    60.0
    >>> recent_heart_rate(np.array([0, 100, 200, 250, 300]), 100.0)
    120.0
    >>> rr_features(np.array([0, 100]), 100.0)["rr_mean_s"]
    1.0
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from stream.signal.window import NAN

# Beat intervals of a ventricular run alarm: six consecutive fast beats, five intervals
# between them. A run is >= 3 ventricular beats (AHA/ACC/HRS 2017, non-sustained VT), but
# monitors raise their high-priority V-Tach alarm on longer ones: "V-Tach PVCs" is
# configurable from 3 beats and set to 6 in Mindray's documented example (BeneVision N1 /
# ePM operator's manuals, "Setting Thresholds for PVC-Related Alarms"). Three intervals
# were faked by electrode pops between two sinus beats; five are not.
RUN_INTERVALS = 5
# Pulse intervals that show the pulse keeping pace with a run: three, so that a real run
# shows on the PPG (which lags the ECG by the pulse transit time) as soon as on the ECG.
PULSE_RUN_INTERVALS = 3

RR_KEYS = (
    "rr_mean_s",
    "rr_cv",
    "rmssd_ms",
    "pnn50",
    "rr_irregularity",
    "ectopic_fraction",
    "rr_irregularity_lag2",
    "run_rate_bpm",
    "af_irregularity",
)


def _median(values: list[float]) -> float:
    # A few dozen Python floats: sorting them beats np.median's call overhead.
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


# The displayed heart rate averages the most recent intervals within this span, at most
# RATE_INTERVALS of them: a step from 80 to 40 bpm fills 8 s with four new intervals, and
# reads 40 within the 10 s IEC 60601-2-27 allows (201.7.9.2.9.101 b) 6); AAMI EC13 4.1.2.1 f).
RATE_SPAN_S = 8.0
RATE_INTERVALS = 12


def median_heart_rate(peaks: np.ndarray, fs: float) -> float:
    """Beats per minute from the median beat interval; nan with fewer than 2 beats. Robust
    to a stray beat, but not a heart rate under irregular rhythms: in bigeminy it reads
    one of the two alternating intervals (120 or 60 for a heart beating 80 times a
    minute), so it serves only as a robust reference (``rr_irregularity``'s scale)."""
    if len(peaks) < 2:
        return NAN
    # A dozen beats: Python arithmetic beats numpy's per-call overhead.
    return float(60.0 * fs / _median([b - a for a, b in itertools.pairwise(peaks.tolist())]))


def heart_rate(peaks: np.ndarray, fs: float) -> float:
    """The heart rate a cardiac monitor displays: beats per minute over the most recent
    beat intervals, averaged (intervals summed, not a median); nan with fewer than 2 beats.

    The intervals are the last ones within ``RATE_SPAN_S`` (at most ``RATE_INTERVALS``,
    at least one), taken in an even number when there are two or more, so that an
    alternating rhythm (ventricular bigeminy: short, long, short, long) averages to the
    beats per minute it really has, as IEC 60601-2-27 / AAMI EC13's irregular-rhythm test
    cases require. A step in rate reaches the display as the new intervals fill the span.

    >>> bigeminy = np.cumsum([0, 50, 100, 50, 100, 50, 100, 50, 100, 50])  # 100 Hz
    >>> round(heart_rate(bigeminy, 100.0)), round(median_heart_rate(bigeminy, 100.0))
    (80, 120)
    >>> heart_rate(np.array([0, 150]), 100.0)  # one interval of 1.5 s
    40.0
    """
    if len(peaks) < 2:
        return NAN
    beats = peaks.tolist()
    span_limit = RATE_SPAN_S * fs
    last = beats[-1]
    count = 1
    # Walk back while the intervals still fit the span and the cap.
    while (
        count < RATE_INTERVALS and count < len(beats) - 1 and last - beats[-2 - count] <= span_limit
    ):
        count += 1
    if count >= 2 and count % 2:
        count -= 1
    return float(60.0 * fs * count / (last - beats[-1 - count]))


def recent_heart_rate(peaks: np.ndarray, fs: float, length: int | None = None) -> float:
    """Beats per minute over the last two beat intervals; nan with fewer than 3 beats.

    The window median (:func:`heart_rate`) is robust but takes half a window to follow a
    step change; this follows within two beats, which is what threshold alarms need (the
    rules' onset delay, not a long average, is what keeps one odd beat from alarming).
    Two intervals rather than one: a premature beat and its compensatory pause average out.
    With ``length`` (the window's samples, all present) a beat still awaited counts too:
    once the wait since the last beat exceeds the last interval, the rate is at most what
    the last interval and that wait give, so a heart that slows shows before its next beat.
    """
    if len(peaks) < 3:
        return NAN
    last, previous, before = (int(p) for p in peaks[-1:-4:-1])
    span = last - before
    if length is not None:
        waiting = length - 1 - last
        if waiting > last - previous:
            span = max(span, last - previous + waiting)
    return float(120.0 * fs / span)


def rr_features(peaks: np.ndarray, fs: float) -> dict[str, float]:
    """RR-interval features of a beat sequence (nan where too few beats).

    - ``rr_mean_s``, ``rr_cv`` (std / mean), ``rmssd_ms``, ``pnn50`` (share of successive
      differences > 50 ms): classic HRV measures.
    - ``rr_irregularity``: median |ΔRR| / median RR. Robust to isolated ectopics (two large
      differences among many), high for the irregularly irregular rhythm of AF; sinus rhythm
      stays near 0.02, AF typically 0.1–0.3. Needs 4 beats.
    - ``ectopic_fraction``: share of beats whose RR is > 20 % shorter than the window's median
      and followed by a longer-than-median pause (premature beat + compensatory pause).
    - ``rr_irregularity_lag2``: median |RR[i] − RR[i−2]| / median RR. AF is *irregularly*
      irregular: every other interval differs as much as successive ones do. Bigeminy is
      *regularly* irregular (short, long, short, long): successive intervals differ a lot,
      every other one hardly at all. Needs 5 beats.
    - ``af_irregularity``: ``rr_irregularity`` over the successive differences that do not
      touch a premature beat's intervals (an interval < 80 % of the median followed by one
      at least the median: the premature beat and its pause, compensatory or not). AF
      detectors keep ectopy from passing for AF by filtering ectopic beats out before
      measuring RR irregularity (Petrėnas et al. 2015, Comput Biol Med 65:184). Frequent
      premature beats leave their regular sinus intervals (near 0), bigeminy nothing
      (nan). In AF the pattern is chance: it stays irregular, if less so (the largest
      differences go), so the rules use it to *rule out* AF, not to call it. Needs 3
      differences left.
    - ``run_rate_bpm``: the fastest rate that ``RUN_INTERVALS`` (5) consecutive intervals all
      reach (60 over the longest of them, where that is shortest). Every interval of a
      ventricular run is short. A premature beat is followed by its compensatory pause, and
      bigeminy alternates them, so any five of their intervals hold a long one; an
      electrode pop splits one interval in two. Needs 6 beats.

    >>> bigeminy = np.cumsum([0, 50, 90, 50, 90, 50, 90, 50, 90])  # 100 Hz: 0.5 s, 0.9 s ...
    >>> f = rr_features(bigeminy, 100.0)
    >>> round(f["rr_irregularity"], 2), round(f["rr_irregularity_lag2"], 2)
    (0.57, 0.0)
    >>> round(f["run_rate_bpm"])
    67
    >>> math.isnan(f["af_irregularity"])  # every interval is a premature beat's or its pause
    True
    >>> premature = np.cumsum([0, 80, 81, 79, 48, 112, 80, 80, 81, 79, 50, 110, 80])
    >>> f = rr_features(premature, 100.0)
    >>> round(f["rr_irregularity"], 2), round(f["af_irregularity"], 2)
    (0.36, 0.01)
    >>> run = np.cumsum([0, 80, 80, 40, 40, 40, 40, 40, 80])  # six beats at 150 bpm
    >>> round(rr_features(run, 100.0)["run_rate_bpm"])
    150
    >>> round(rr_features(run[:-2], 100.0)["run_rate_bpm"])  # five of them: no run yet
    75
    """
    features = dict.fromkeys(RR_KEYS, NAN)
    if len(peaks) < 3:
        if len(peaks) == 2:
            features["rr_mean_s"] = float((peaks[1] - peaks[0]) / fs)
        return features
    # A window holds a dozen beats: plain Python floats cost less than numpy calls here.
    rr = [(b - a) / fs for a, b in itertools.pairwise(peaks.tolist())]
    successive = [b - a for a, b in itertools.pairwise(rr)]
    reference = _median(rr)
    mean = sum(rr) / len(rr)
    features["rr_mean_s"] = mean
    features["rr_cv"] = math.sqrt(sum((x - mean) ** 2 for x in rr) / len(rr)) / mean
    features["rmssd_ms"] = 1000.0 * math.sqrt(sum(d * d for d in successive) / len(successive))
    features["pnn50"] = sum(abs(d) > 0.05 for d in successive) / len(successive)
    if len(rr) >= 3:
        features["rr_irregularity"] = _median([abs(d) for d in successive]) / reference
    premature = sum(a < 0.8 * reference and b > 1.1 * reference for a, b in itertools.pairwise(rr))
    features["ectopic_fraction"] = premature / (len(rr) - 1)
    if len(rr) >= 4:
        every_other = [abs(rr[i] - rr[i - 2]) for i in range(2, len(rr))]
        features["rr_irregularity_lag2"] = _median(every_other) / reference
    features["run_rate_bpm"] = _run_rate(rr, RUN_INTERVALS)
    features["af_irregularity"] = _ectopy_filtered_irregularity(rr, reference)
    return features


def _ectopy_filtered_irregularity(rr: list[float], reference: float) -> float:
    ectopic = [False] * len(rr)
    for i in range(len(rr) - 1):
        if rr[i] < 0.8 * reference and rr[i + 1] >= reference:
            ectopic[i] = ectopic[i + 1] = True
    kept = [
        abs(rr[i + 1] - rr[i]) for i in range(len(rr) - 1) if not (ectopic[i] or ectopic[i + 1])
    ]
    return _median(kept) / reference if len(kept) >= 3 else NAN


def _run_rate(rr: list[float], intervals: int) -> float:
    """60 over the longest of ``intervals`` consecutive intervals, where that is shortest."""
    if len(rr) < intervals:
        return NAN
    return 60.0 / min(max(rr[i : i + intervals]) for i in range(len(rr) - intervals + 1))


def pulse_run_rate(pulses: np.ndarray, fs: float) -> float:
    """The fastest rate that ``PULSE_RUN_INTERVALS`` (3) consecutive pulse intervals all
    reach; nan with fewer pulses. A ventricular run that moves blood shows as a run of
    fast pulses; a "run" the ECG shows while the pulse keeps its pace is artefact.

    >>> pulse_run_rate(np.array([0, 80, 160, 240, 320]), 100.0)  # 75 per minute
    75.0
    """
    rr = [(b - a) / fs for a, b in itertools.pairwise(pulses.tolist())]
    return _run_rate(rr, PULSE_RUN_INTERVALS)


def in_longest_run(present: np.ndarray, peaks: np.ndarray, margin: int = 0) -> np.ndarray:
    """Mask of the peaks inside the longest gap-free stretch: an RR interval spanning a
    gap is not an interval at all. Peaks within ``margin`` samples of a gap are left out
    too: the filter rings where the bridged gap meets the signal, and a "beat" there gave
    a walking patient a 130 bpm rate from one dropped frame.

    >>> present = np.array([True] * 10 + [False] * 3 + [True] * 20)
    >>> in_longest_run(present, np.array([2, 14, 20, 31]), margin=2).tolist()
    [False, False, True, True]
    """
    edges = np.flatnonzero(np.diff(np.concatenate(([0], present.astype(np.int8), [0]))))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) == 0:
        return np.zeros(len(peaks), dtype=bool)
    longest = int(np.argmax(ends - starts))
    start, end = int(starts[longest]), int(ends[longest])
    start += margin if start > 0 else 0  # a gap before the stretch, not the window start
    end -= margin if end < len(present) else 0
    return (peaks >= start) & (peaks < end)
