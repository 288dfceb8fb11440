"""Line protocol: escapes, field types, series keys, deterministic timestamps."""

from __future__ import annotations

from stream.sinks.lines import line, to_ns


def test_line_escapes_tags_and_types_fields():
    text = line(
        "alerts",
        {"ward": "ward 7,east", "device": "d=1"},
        {"alert_id": 'a"b', "count": 3, "active": True, "value": 1.5},
        2.0,
    )
    assert text == (
        r"alerts,device=d\=1,ward=ward\ 7\,east "
        r'alert_id="a\"b",count=3i,active=true,value=1.5 2000000000'
    )


def test_line_drops_non_finite_fields_and_empty_lines():
    text = line("features", {}, {"hr": float("nan"), "sqi": 0.9}, 1.0)
    assert text == "features sqi=0.9 1000000000"
    assert line("features", {}, {"hr": float("nan"), "x": None}, 1.0) is None


def test_line_is_the_same_whatever_the_tag_order_and_skips_empty_tags():
    # Series keys are cached per (measurement, tags): order and empties must not leak in.
    fields = {"hr": 72.0, "flag": False, "n": 2}
    first = line("vitals", {"ward": "w", "device": "d", "patient": ""}, fields, 1.0)
    second = line("vitals", {"device": "d", "patient": "", "ward": "w"}, fields, 1.0)
    assert first == second == "vitals,device=d,ward=w hr=72.0,flag=false,n=2i 1000000000"
    assert line("quality", {"ward": "w", "device": "d"}, {"sqi": 1.0}, 1.0) == (
        "quality,device=d,ward=w sqi=1.0 1000000000"
    )


def test_timestamps_are_deterministic_at_microsecond_resolution():
    assert to_ns(1_795_535_491.1) == to_ns(1_795_535_491.0 + 0.1)
    assert to_ns(1.000001) == 1_000_001_000
