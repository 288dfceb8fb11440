"""The start rule of simulate and replay: a fast run is dated in the past so that no frame
is ahead of the wall clock when sent; an explicit start that the worker would refuse is
refused before anything is sent."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from producers.timebase import (
    StartError,
    choose_start,
    default_start,
    describe_start,
    max_lead_s,
)
from stream.cli.main import app

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("speed", "duration", "expected"),
    [(1.0, 600, NOW), (0.5, 600, NOW), (5.0, 600, NOW - 480), (2.0, 60, NOW - 30),
     (0.0, 600, NOW - 600), (0.0, 30, NOW - 30), (10.0, 0, NOW)],
)  # fmt: skip
def test_default_start(speed: float, duration: float, expected: float) -> None:
    assert default_start(NOW, duration, speed) == pytest.approx(expected)


def _send_times(now: float, duration: float, speed: float, frame_s: float) -> list[float]:
    """When the pacing sends each frame at the earliest (speed 0: all at once)."""
    periods = math.ceil(duration / frame_s)
    return [now + (k * frame_s / speed if speed > 0 else 0.0) for k in range(periods)]


@pytest.mark.parametrize("speed", [0.0, 0.25, 1.0, 1.5, 5.0, 100.0])
@pytest.mark.parametrize(("duration", "frame_s"), [(60, 1.0), (3600, 1.0), (600, 5.0), (7, 2.0)])
def test_default_start_never_runs_ahead_of_the_clock(
    speed: float, duration: float, frame_s: float
) -> None:
    start = choose_start(None, now=NOW, duration_s=duration, speed=speed, max_future_s=120,
                         frame_s=frame_s)  # fmt: skip
    sent = _send_times(NOW, duration, speed, frame_s)
    dated = [start + k * frame_s for k in range(len(sent))]
    assert all(t0 <= wall for t0, wall in zip(dated, sent, strict=True))
    lead = max(t0 - wall for t0, wall in zip(dated, sent, strict=True))
    assert max_lead_s(start, NOW, duration, speed, frame_s) == pytest.approx(lead)
    if speed == 0 or speed > 1:  # as fast as it can be: the last frame is nearly "now"
        assert lead > -2 * frame_s


def test_an_explicit_start_is_kept_within_the_workers_bound() -> None:
    past = NOW - 3600
    assert choose_start(past, now=NOW, duration_s=600, speed=10, max_future_s=120) == past
    # Real time from now: never ahead; a little in the future is what clock skew is.
    assert choose_start(NOW + 60, now=NOW, duration_s=600, speed=1, max_future_s=120) == NOW + 60
    # 10x for 100 s from now: the last frame is 89 s ahead when sent, inside 120 s.
    assert choose_start(NOW, now=NOW, duration_s=100, speed=10, max_future_s=120) == NOW


@pytest.mark.parametrize(
    ("start", "speed", "duration"),
    [(NOW, 5.0, 600), (NOW, 0.0, 300), (NOW + 200, 1.0, 60), (NOW - 100, 2.0, 600)],
)
def test_a_start_that_runs_too_far_ahead_is_refused(
    start: float, speed: float, duration: float
) -> None:
    with pytest.raises(StartError) as info:
        choose_start(start, now=NOW, duration_s=duration, speed=speed, max_future_s=120)
    message = str(info.value)
    assert "\n" not in message
    assert "120 s" in message and "--start" in message
    # The start it proposes is accepted.
    latest = float(message.split("start at or before ")[1].split(",")[0])
    assert choose_start(latest, now=NOW, duration_s=duration, speed=speed, max_future_s=120)


def test_describe_start_names_the_time_and_how_far_back() -> None:
    line = describe_start(NOW - 480, NOW)
    assert "2027-01-15T07:52:00+00:00" in line and "480 s before now" in line
    assert describe_start(NOW, NOW).endswith("now)")


def test_cli_refuses_a_future_start_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_kafka(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("must refuse before touching Kafka")

    monkeypatch.setattr("producers.publisher.ensure_topics", no_kafka)
    monkeypatch.setattr("producers.publisher.Publisher", no_kafka)
    runner = CliRunner()
    far = ["--start", "9999999999", "--speed", "5"]
    result = runner.invoke(app, ["simulate", "--duration", "600", *far])
    assert result.exit_code == 2
    assert "would date frames up to" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["replay", "mitbih-208", "--device-id", "rec-1", *far])
    assert result.exit_code == 2
    assert "would date frames up to" in result.output
