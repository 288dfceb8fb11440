"""Grafana's substitutions as stream.tools.dashboards reproduces them (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stream.tools.dashboards import (
    TimeRange,
    format_value,
    go_duration,
    load_dashboards,
    panel_queries,
    parse_duration,
    substitute_macros,
    substitute_variables,
    window_period,
)

STOP = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (10, "10s"),
        (60, "1m0s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (0.2, "200ms"),
        (86400, "24h0m0s"),
    ],
)
def test_go_duration_matches_go(seconds, text):
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("span_s", "max_points", "minimum", "expected"),
    [
        (3600, 1000, 1.0, 5.0),  # 3.6 s raw -> Grafana rounds to 5 s
        (3600, 1000, 10.0, 10.0),  # the datasource's timeInterval is a floor
        (86400, 1000, 10.0, 60.0),  # 86.4 s raw -> 1 m
        (7 * 86400, 1000, 10.0, 600.0),  # 604.8 s raw -> 10 m
        (300, 1000, 0.0, 0.2),  # 0.3 s raw -> 200 ms
    ],
)
def test_window_period_rounds_like_grafana(span_s, max_points, minimum, expected):
    time_range = TimeRange(STOP - timedelta(seconds=span_s), STOP)
    assert window_period(time_range, max_points, minimum) == expected


def test_macros_become_literals():
    flux = (
        "from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart, stop: v.timeRangeStop)"
        " |> aggregateWindow(every: v.windowPeriod, fn: mean) // v.bucket v.organization"
    )
    text = substitute_macros(flux, TimeRange(STOP - timedelta(hours=1), STOP), "b1", "o1", 60)
    assert text == (
        'from(bucket: "b1") |> range(start: 2026-03-01T11:00:00.000000Z, '
        'stop: 2026-03-01T12:00:00.000000Z) |> aggregateWindow(every: 1m0s, fn: mean) // "b1" "o1"'
    )


def test_variables_in_every_syntax_and_unknown_ones_left_alone():
    values = {"ward": "ward-a", "patient": "p-1.2"}
    text = 'r.ward == "$ward" and r.patient =~ /^${patient:regex}$/ and [[ward]] $other ${x}'
    assert substitute_variables(text, values) == (
        r'r.ward == "ward-a" and r.patient =~ /^p-1\.2$/ and ward-a $other ${x}'
    )


def test_formats():
    assert format_value("a/b(c)", "regex") == r"a\/b\(c\)"
    assert format_value('a"b', "json") == '"a\\"b"'
    assert format_value("x", "doublequote") == '"x"'
    with pytest.raises(ValueError, match="not supported"):
        format_value("x", "lucene")


def test_parse_duration():
    assert parse_duration("10s") == 10 and parse_duration("1m") == 60
    assert parse_duration("500ms") == 0.5 and parse_duration("2h") == 7200
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_shipped_dashboards_load_with_their_queries():
    dashboards = load_dashboards()
    queries = [q for d in dashboards.values() for q in panel_queries(d)]
    assert len(queries) >= 30
    assert all("v.timeRangeStart" in q.flux for q in queries)
