"""Offline analysis: a recording through exactly the worker's code (``vitalstream analyze``).

Owns cutting a recording into the windows the worker's buffers would cut, and running
each through the worker's features, scoring, rules and alert lifecycle
(:meth:`Pipeline.evaluate_window`), one :class:`WindowResult` per window, with every
live model's scores (streaming models carry their state from window to window). As in
the worker, the recording goes hop by hop through one device's carried signal state
(:class:`~stream.signal.streaming.SignalState`: beat and pulse detectors, per-frame
statistics), and each window reads its features from that state as it stands at the
window's end.

>>> import numpy as np
>>> windows = recording_windows(np.zeros(3000), "ecg", 100.0, window_s=10.0, hop_s=5.0)
>>> [(w.t_start, w.t_end) for w in windows]
[(0.0, 10.0), (5.0, 15.0), (10.0, 20.0), (15.0, 25.0), (20.0, 30.0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.config import Settings
from stream.records import Alert, PatientContext, Profile
from stream.scoring.scorer import Score, Scorer
from stream.signal.streaming import SignalState
from stream.signal.window import SignalWindow
from stream.worker.pipeline import Pipeline


@dataclass(frozen=True)
class WindowResult:
    """One analysed window: what ``vitalstream analyze`` prints per window."""

    device_id: str
    t_start: float
    t_end: float
    features: dict[str, float]
    beats_s: list[float]
    scores: list[Score]
    alerts: list[Alert]


OFFLINE_CONTEXT = PatientContext(
    device_id="offline", patient="offline", ward="offline", profile=Profile()
)


def recording_windows(
    samples: np.ndarray, signal: str, fs: float, window_s: float, hop_s: float
) -> list[SignalWindow]:
    """Sliding windows over one recording (time 0 = first sample), as the worker's buffers
    would cut them: ``window_s`` long, one every ``hop_s``, the first once a window is full."""
    span, hop = round(window_s * fs), max(round(hop_s * fs), 1)
    windows = []
    for end in range(span, len(samples) + 1, hop):
        chunk = samples[end - span : end]
        windows.append(
            SignalWindow(
                t_start=(end - span) / fs,
                t_end=end / fs,
                **{signal: chunk, f"{signal}_fs": fs},
            )
        )
    return windows


def analyze_recording(
    settings: Settings,
    scorer: Scorer | None,
    samples: np.ndarray,
    signal: str,
    fs: float,
) -> list[WindowResult]:
    """Every window of a recording through the worker's own features, scoring, rules and
    alert lifecycle (``vitalstream analyze``)."""
    pipeline = Pipeline(settings, scorer)
    windows = recording_windows(
        samples, signal, fs, settings.stream.window_s, settings.stream.hop_s
    )
    device = OFFLINE_CONTEXT.device_id
    state, pushed, hop = SignalState(), 0, max(round(settings.stream.hop_s * fs), 1)
    analyses = []
    for window in windows:
        end = round(window.t_end * fs)
        while pushed < end:  # frames of a hop, as a wearable sends them
            upto = min(pushed + hop, end)
            frame = [(device, pushed / fs, fs, samples[pushed:upto])]
            state.push(*(frame if signal == name else [] for name in ("ecg", "ppg", "acc")))
            pushed = upto
        analyses += state.analyze([(device, window)])
    features = [a.features for a in analyses]
    # One device along the recording: streaming models carry their state window to window,
    # as in the worker, and take the beats the worker's features found.
    scores = (
        scorer.score(
            windows,
            features,
            [a.r_peaks for a in analyses],
            devices=[OFFLINE_CONTEXT.device_id] * len(windows),
        )
        if scorer is not None
        else [[] for _ in windows]
    )
    results = []
    for window, analysis, window_scores in zip(windows, analyses, scores, strict=True):
        judged, _ = pipeline.evaluate_window(
            OFFLINE_CONTEXT, window, analysis.features, window_scores
        )
        alerts = [a.model_copy(update={"emitted_at": window.t_end}) for a in judged]
        beats = analysis.pulses_s if signal == "ppg" else analysis.beats_s
        results.append(
            WindowResult(
                device_id=OFFLINE_CONTEXT.device_id,
                t_start=window.t_start,
                t_end=window.t_end,
                features=analysis.features,
                beats_s=[float(b) for b in beats],
                scores=window_scores,
                alerts=alerts,
            )
        )
    return results
