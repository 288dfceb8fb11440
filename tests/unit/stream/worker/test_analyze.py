"""Offline analysis: a recording through the worker's own windows, features and rules."""

from __future__ import annotations

import numpy as np
import pytest

from stream.config import load_settings
from stream.worker.analyze import analyze_recording, recording_windows


@pytest.fixture(scope="module")
def settings():
    return load_settings(pseudonym_key="analyze-test-key")


def test_analyze_recording_cuts_windows_like_the_worker(settings):
    fs = 128.0
    t = np.arange(int(30 * fs)) / fs
    beats = (t % 0.75) < 0.02  # 80 bpm of spikes
    ecg = np.where(beats, 1.5, 0.0) + 0.01 * np.sin(2 * np.pi * 0.3 * t)
    windows = recording_windows(ecg, "ecg", fs, 10.0, 1.0)
    assert len(windows) == 21 and windows[0].t_end == 10.0
    results = analyze_recording(settings, None, ecg, "ecg", fs)
    rates = [r.features["ecg_hr_bpm"] for r in results]
    assert np.nanmedian(rates) == pytest.approx(80, abs=3)
    for result in results:
        assert all(result.t_start <= b < result.t_end for b in result.beats_s)
        assert 11 <= len(result.beats_s) <= 15  # 80 bpm over 10 s


def test_streaming_models_carry_their_state_along_the_recording(settings):
    """analyze scores a recording as the worker scores a device: the streaming models go
    on from window to window (one hop fed each), they do not start cold every window."""
    from stream.scoring.scorer import Scorer

    fs = 128.0
    t = np.arange(int(20 * fs)) / fs
    ecg = np.where((t % 0.75) < 0.02, 1.5, 0.0) + 0.01 * np.sin(2 * np.pi * 0.3 * t)
    scorer = Scorer.from_registry(settings)
    streaming = [m for m in scorer.live.values() if m.card.streaming is not None]
    assert {m.card.name for m in streaming} == {"rhythm", "deterioration"}
    results = analyze_recording(settings, scorer, ecg, "ecg", fs)
    assert len(results) == 11 and results[-1].t_end == 20.0
    for model in streaming:
        # Rhythm fed every hop up to the last window; deterioration at its cold start
        # (10 s) and when the 20 s step boundary passed.
        state = scorer.states.get("offline", model.ref)
        assert state is not None and state.t == 20.0, model.ref
    assert all({"rhythm", "deterioration"} <= {s.model for s in r.scores} for r in results)
