"""The scripted adjudicator: verdicts from the labels, response delays from the policy."""

from __future__ import annotations

import numpy as np
import pytest

from stream.tools.adjudicator import (
    AckPolicy,
    Alarm,
    KindTiming,
    Label,
    Timings,
    adjudicate,
    response_delay,
    verdict_of,
)

TIMINGS = Timings({"tachycardia": KindTiming(2.0, 15.0)}, KindTiming(5.0, 15.0))


def alarm(kind: str, onset: float, device: str = "d1", category: str = "physiological") -> Alarm:
    return Alarm(f"{kind}-{onset}", device, kind, "medium", category, onset, onset + 2.0)


def technical(kind: str, onset: float) -> Alarm:
    return alarm(kind, onset, category="technical")


@pytest.mark.parametrize(
    ("labels", "raised", "expected"),
    [
        # A clinical event's own alarm, even while the patient walks.
        ([("tachycardia", 100, 300), ("walking", 0, 600)], alarm("tachycardia", 120), "actionable"),
        # NEWS2 from a fever: explained, so actionable.
        ([("fever", 100, 500)], alarm("news2", 400), "actionable"),
        # A technical event's alert: someone must re-attach the sensor.
        ([("sensor_detached", 50, 90)], technical("sensor_detached", 52), "actionable"),
        # Poor signal while walking is explained by the artefact label.
        ([("walking", 0, 600)], technical("poor_signal", 200), "artefact"),
        # A heart-rate alarm from motion: inside an artefact period.
        ([("running", 100, 200)], alarm("tachycardia", 150), "artefact"),
        # ... up to the alarm kind's resolve delay after the period.
        ([("running", 100, 200)], alarm("tachycardia", 214), "artefact"),
        ([("running", 100, 200)], alarm("tachycardia", 216), "not_actionable"),
        # Benign ectopy explains nothing: an AF alarm there is not actionable.
        ([("bigeminy", 0, 600)], alarm("af", 300), "not_actionable"),
        # No label at all.
        ([], alarm("desaturation", 10), "not_actionable"),
    ],
)  # fmt: skip
def test_verdicts_follow_the_labels(labels, raised: Alarm, expected: str) -> None:
    verdict, _ = verdict_of(raised, [Label("d1", e, s, t) for e, s, t in labels], TIMINGS)
    assert verdict == expected


def test_another_devices_labels_decide_nothing() -> None:
    labels = [Label("d2", "tachycardia", 0, 600), Label("d2", "walking", 0, 600)]
    assert verdict_of(alarm("tachycardia", 100), labels, TIMINGS) == ("not_actionable", None)


def test_response_delays_follow_the_policy() -> None:
    rng = np.random.default_rng(7)
    policy = AckPolicy(median_s={"high": 60.0, "low": 600.0}, never={"low": 0.25})
    high = [response_delay("high", policy, rng) for _ in range(4000)]
    low = [response_delay("low", policy, rng) for _ in range(4000)]
    assert None not in high
    assert np.median(high) == pytest.approx(60.0, rel=0.08)
    never = sum(d is None for d in low) / len(low)
    assert never == pytest.approx(0.25, abs=0.03)
    answered = [d for d in low if d is not None]
    assert max(answered) <= policy.max_s  # longer ones count as never
    assert np.median(answered) == pytest.approx(600.0, rel=0.1)


def test_adjudication_is_reproducible_and_keeps_the_alarm_order() -> None:
    alarms = [alarm("tachycardia", 120), alarm("af", 300), alarm("poor_signal", 50)]
    labels = [Label("d1", "tachycardia", 100, 200)]
    first = adjudicate(alarms, labels, TIMINGS, np.random.default_rng(3))
    again = adjudicate(alarms, labels, TIMINGS, np.random.default_rng(3))
    assert first == again
    assert [a.alert_id for a in first] == [a.alert_id for a in alarms]
    assert [a.verdict for a in first] == ["actionable", "not_actionable", "not_actionable"]
    assert first[0].reason == "tachycardia (clinical)" and first[1].reason == "no label"
    assert {a.by for a in first} <= set(AckPolicy().nurses)
