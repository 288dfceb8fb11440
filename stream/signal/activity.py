"""Accelerometer features of one window: how much the wearer moves, impacts, stillness, posture.

Owns :func:`activity_features` and the thresholds that read movement: stillness after a
fall (:data:`STILL_SPAN_S`, :data:`STILL_STD_G`, also used by the fall rule) and the
activity above which the wearer counts as moving (:data:`MOTION_ACTIVITY_G`). The loop is
:func:`stream.signal.kernels.stats.activity`. Example (upright and still for 4 s at 25 Hz)::

    >>> activity_features(np.tile([0.0, 0.0, 1.0], (100, 1)), 25.0)
    {'activity_g': 0.0, 'impact_g': 1.0, 'still': 1.0, 'posture_change_deg': 0.0}
"""

from __future__ import annotations

import math

import numpy as np

from stream.signal.kernels import stats
from stream.signal.window import NAN

STILL_SPAN_S = 3.0  # trailing span judged for stillness (post-impact inactivity for falls)
STILL_STD_G = 0.05
MOTION_ACTIVITY_G = 0.15  # magnitude std above which the wearer is moving


def activity_features(acc: np.ndarray, fs: float) -> dict[str, float]:
    """Accelerometer features of an ``(n, 3)`` window in g.

    ``activity_g`` std of the magnitude; ``impact_g`` its maximum; ``still`` 1.0 when the
    magnitude's std over the trailing 3 s is below 0.05 g (after a fall: inactivity);
    ``posture_change_deg`` the angle between the mean gravity direction of the first and
    last 2 s (lying down after standing ≈ 90°).
    """
    acc = np.ascontiguousarray(np.asarray(acc, dtype=float).reshape(-1, 3))
    spread, impact, trailing, cosine = stats.activity(
        acc, max(int(STILL_SPAN_S * fs), 2), max(int(2.0 * fs), 1)
    ).tolist()
    if math.isnan(spread):
        return dict.fromkeys(("activity_g", "impact_g", "still", "posture_change_deg"), NAN)
    return {
        "activity_g": spread,
        "impact_g": impact,
        "still": float(trailing < STILL_STD_G),
        "posture_change_deg": math.degrees(math.acos(min(max(cosine, -1.0), 1.0))),
    }
