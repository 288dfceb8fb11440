"""The domain types of the signal analysis: one device's window and what its analysis found.

Owns :class:`SignalWindow` (a device's signals over ``[t_start, t_end)``),
:class:`WindowAnalysis` (features plus beat and pulse times), :data:`FEATURE_NAMES` (the
fixed feature vector the stream worker, ``vitalstream analyze`` and model training all
compute) and :data:`NAN`, the value of every feature that cannot be computed. Example::

    >>> window = SignalWindow(t_start=0.0, t_end=10.0, spo2=97.0)
    >>> window.spo2, window.ecg is None, bool(np.isnan(window.hr))
    (97.0, True, True)
    >>> len(FEATURE_NAMES), FEATURE_NAMES[:2]
    (31, ('ecg_hr_bpm', 'ppg_hr_bpm'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

# The feature vector, in this fixed order (models are trained on it; append, never reorder).
#   ecg_hr_bpm, ppg_hr_bpm   displayed heart / pulse rate: averaged recent intervals (bpm)
#   rr_mean_s .. ectopic_fraction   RR features of the ECG beats (see rr_features)
#   resp_rate                breaths/min (device value, else ECG-derived)
#   spo2, temp, hr_device, battery   latest device-reported values (%, °C, bpm, %)
#   spo2_slope, temp_slope   least-squares trend over the window's vitals history, per minute
#   activity_g, impact_g, still, posture_change_deg   accelerometer (see activity_features)
#   ecg_sqi, ppg_sqi         signal quality 0..1; ecg_lead_off, ecg_flat, ecg_saturated flags
#   motion                   1 if the ECG or PPG shows motion artefact or the wearer is moving
#   ecg_hr_recent_bpm, ppg_hr_recent_bpm   rate over the last two beat intervals (bpm)
#   rr_irregularity_lag2     irregularity between every other interval: small when regularly
#                            irregular (bigeminy), as high as rr_irregularity in AF
#   run_rate_bpm             the fastest rate five consecutive ECG beat intervals all reach
#   ppg_run_rate_bpm         the fastest rate three consecutive PPG pulse intervals all reach
#   af_irregularity          rr_irregularity without premature beats and their pauses
FEATURE_NAMES: tuple[str, ...] = (
    "ecg_hr_bpm",
    "ppg_hr_bpm",
    "rr_mean_s",
    "rr_cv",
    "rmssd_ms",
    "pnn50",
    "rr_irregularity",
    "ectopic_fraction",
    "resp_rate",
    "spo2",
    "spo2_slope",
    "temp",
    "temp_slope",
    "hr_device",
    "activity_g",
    "impact_g",
    "still",
    "ecg_sqi",
    "ppg_sqi",
    "ecg_lead_off",
    "ecg_flat",
    "ecg_saturated",
    "motion",
    "battery",
    "posture_change_deg",
    "ecg_hr_recent_bpm",
    "ppg_hr_recent_bpm",
    "rr_irregularity_lag2",
    "run_rate_bpm",
    "ppg_run_rate_bpm",
    "af_irregularity",
)

NAN = float("nan")


@dataclass(frozen=True, slots=True)
class SignalWindow:
    """One device's signals over ``[t_start, t_end)`` (epoch seconds).

    Waveform arrays start at ``t_start`` and may hold NaN where samples are missing; ``acc``
    is ``(n, 3)`` in g. Vitals are the latest device-reported values (nan if none).
    ``trends`` maps a vital name to its history at ``trend_fs`` Hz ending at ``t_end``
    (oldest first, NaN where missing), used for slopes and the deterioration model.
    """

    t_start: float
    t_end: float
    ecg: np.ndarray | None = None
    ecg_fs: float = NAN
    ppg: np.ndarray | None = None
    ppg_fs: float = NAN
    acc: np.ndarray | None = None
    acc_fs: float = NAN
    hr: float = NAN
    spo2: float = NAN
    resp: float = NAN
    temp: float = NAN
    battery: float = NAN
    trends: Mapping[str, np.ndarray] = field(default_factory=dict)
    trend_fs: float = 1.0


class WindowAnalysis(NamedTuple):
    """Features of one window plus the detected beat and pulse times (epoch seconds).
    A named tuple: the worker makes one per window, every second, and a frozen
    dataclass cost twice as much to make.

    ``r_peaks`` is exactly :func:`stream.signal.beats.detect_r_peaks` of the window's ECG
    (sample indices, before gaps and lead-off are taken into account; ``None`` without
    ECG), so the model inputs need not detect the same beats again.
    """

    features: dict[str, float]
    beats_s: np.ndarray
    pulses_s: np.ndarray
    r_peaks: np.ndarray | None = None
