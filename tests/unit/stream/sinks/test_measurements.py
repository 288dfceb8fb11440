"""Measurement schema: records become the lines Grafana queries, at frame time."""

from __future__ import annotations

from stream.records import Alert, Frame
from stream.sinks.measurements import adjudication_line, raw_lines, vitals_lines


def test_vitals_lines_follow_frame_time():
    frame = Frame.model_validate(
        {
            "device_id": "d1",
            "seq": 0,
            "t0": 100.0,
            "signals": {
                "hr": {"fs": 1, "unit": "bpm", "samples": [70, 71]},
                "spo2": {"fs": 1, "unit": "%", "samples": [97, 96]},
            },
        }
    )
    assert vitals_lines(frame, {"device": "d1"}) == [
        "vitals,device=d1 hr=70.0,spo2=97.0 100000000000",
        "vitals,device=d1 hr=71.0,spo2=96.0 101000000000",
    ]
    assert raw_lines(frame, {"device": "d1"}) == []


def test_an_acknowledgement_without_verdict_or_known_trigger_is_still_an_adjudication():
    acknowledged = Alert(
        alert_id="a 1", event="acknowledged", kind="poor_signal", category="technical",
        priority="low", patient="p-1", ward="ward a", device_id="d1", t_onset=100.0,
        t_event=400.0, window=(90.0, 100.0), source="rule:sqi", acknowledged_by="nurse 7",
    )  # fmt: skip
    assert adjudication_line(acknowledged, triggered_at=None) == (
        "adjudications,kind=poor_signal,patient=p-1,priority=low,verdict=none,ward=ward\\ a "
        'alert_id="a 1",by="nurse 7",since_onset_s=300.0,escalation_level=0i 400000000000'
    )
