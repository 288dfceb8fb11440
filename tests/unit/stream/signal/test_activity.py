"""stream.signal.activity on synthetic accelerometer recordings: sitting, walking, a fall,
lying down."""

from __future__ import annotations

import numpy as np
import pytest

from stream.signal.activity import activity_features
from tests.unit.stream.signal.synthetic import LYING, UPRIGHT, acc_segments


@pytest.mark.parametrize(
    ("name", "segments", "impact", "still", "posture"),
    [
        ("sitting", [(10, UPRIGHT, 0.0)], False, 1.0, False),
        ("walking", [(10, UPRIGHT, 0.3)], False, 0.0, False),
        ("fall", [(4, UPRIGHT, 0.3), (0.08, np.array([3.0, 2.5, 1.5]), 0.0), (5.92, LYING, 0.0)],
         True, 1.0, True),
        ("lying down gently", [(5, UPRIGHT, 0.0), (5, LYING, 0.0)], False, 1.0, True),
    ],
)  # fmt: skip
def test_activity_features(
    name: str, segments: list, impact: bool, still: float, posture: bool
) -> None:
    fs = 25.0
    features = activity_features(acc_segments(fs, segments), fs)
    assert (features["impact_g"] >= 3.5) is impact, name
    assert features["still"] == still, name
    assert (features["posture_change_deg"] > 60) is posture, name
    assert (features["activity_g"] > 0.15) is (name in ("walking", "fall")), name
