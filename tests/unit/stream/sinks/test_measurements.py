"""Measurement schema: records become the lines Grafana queries, at frame time."""

from __future__ import annotations

from stream.records import Frame
from stream.sinks.measurements import raw_lines, vitals_lines


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
