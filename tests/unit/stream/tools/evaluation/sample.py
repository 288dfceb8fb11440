"""Hand-made labels and alarms for the evaluation's tests (times: seconds from ``T0``)."""

from __future__ import annotations

from stream.tools.evaluation.matching import Alarm, KindTiming, Label, Timings

T0 = 1_700_000_000.0
TIMINGS = Timings(
    {
        "tachycardia": KindTiming(2.0, 15.0),
        "fall": KindTiming(5.0, 15.0),
        "device_silent": KindTiming(300.0, 0.0),
    },
    KindTiming(5.0, 15.0),
)


def alarm(
    device: str, kind: str, onset: float, priority: str = "medium", category: str = "physiological"
) -> Alarm:
    return Alarm(f"{device}-{kind}-{onset}", device, kind, priority, category, T0 + onset,
                 T0 + onset + 2.0, "rule", f"{kind} at {onset}")  # fmt: skip


def label(device: str, event: str, start: float, end: float) -> Label:
    return Label(device, event, T0 + start, T0 + end)
