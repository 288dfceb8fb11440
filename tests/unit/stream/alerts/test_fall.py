"""Falls: an impact, then inactivity soon after it, across windows; the detector's state
survives the tracker's serialization."""

from __future__ import annotations

from stream.alerts.fall import FallDetector
from stream.signal.activity import STILL_SPAN_S
from tests.unit.stream.alerts.harness import (
    RULES,
    conditions_of,
    fall_sequence,
    quiet_features,
    run,
)


def fall_times(sequence: list, detector: FallDetector | None = None) -> list[float]:
    detector = detector or FallDetector()
    return [
        t for t, features in sequence
        if conditions_of("fall", run(features, t=t, fall=detector))
    ]  # fmt: skip


def test_fall_needs_impact_then_inactivity() -> None:
    times = fall_times(fall_sequence(RULES.fall_impact_g, still_from=13))
    # The still flag judges the trailing STILL_SPAN_S: stillness seen at 13 began at 10
    # (never before the impact, first seen at 10).
    assert times[0] == max(13 - STILL_SPAN_S, 10) + RULES.fall_inactivity_s
    assert times == [float(t) for t in range(int(times[0]), 60)]


def test_impact_below_threshold_is_not_a_fall() -> None:
    assert fall_times(fall_sequence(RULES.fall_impact_g - 0.01, still_from=13)) == []


def test_impact_followed_by_movement_is_not_a_fall() -> None:
    assert fall_times(fall_sequence(5.0, still_from=100)) == []


def test_stillness_long_after_impact_is_not_a_fall() -> None:
    # Seen still at ``late``: still since late - STILL_SPAN_S, past the confirmation span.
    late = 10 + RULES.fall_confirm_within_s + STILL_SPAN_S + 1
    assert fall_times(fall_sequence(5.0, still_from=late)) == []


def test_getting_up_ends_the_fall() -> None:
    times = fall_times(fall_sequence(5.0, still_from=13, moving_after=30))
    assert times and max(times) == 29


def test_stillness_without_any_impact_is_not_a_fall() -> None:
    sequence = [(float(t), quiet_features(still=1.0)) for t in range(60)]
    assert fall_times(sequence) == []


def test_fall_detector_state_survives_serialization() -> None:
    sequence = fall_sequence(5.0, still_from=13)
    detector = FallDetector()
    first = fall_times(sequence[:15], detector)
    restored = FallDetector.from_dict(detector.to_dict())
    assert first + fall_times(sequence[15:], restored) == fall_times(sequence)


def test_without_a_detector_evaluate_sees_no_fall() -> None:
    # evaluate only advances the detector it is given: a fall needs more than one window.
    assert not any(
        conditions_of("fall", run(features, t=t)) for t, features in fall_sequence(5.0, 13)
    )
