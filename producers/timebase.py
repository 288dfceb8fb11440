"""When a simulated or replayed run is dated: its first frame's time, chosen so that no
frame is ahead of the wall clock when it is sent.

Owns the start rule of ``vitalstream simulate`` and ``vitalstream replay``. A run at
``speed`` x real time sends the frame of relative time ``k x frame_s`` no earlier than
``k x frame_s / speed`` after it begins (at once for speed 0, as fast as possible); a run
faster than real time dated from now would therefore run ahead of the clock, and the
worker dead-letters frames more than ``stream.max_future_skew_s`` (120 s) in the future
(:func:`stream.worker.ingest.decode_frame`). So, without an explicit start:

- speed 1 or slower: start now (frames are never ahead: they fall behind or keep pace);
- speed > 1: start ``duration x (1 - 1/speed)`` in the past;
- speed 0: start the whole ``duration`` in the past.

Then frame ``k``, sent at ``now + k x frame_s / speed`` at the earliest, is dated
``now - duration x (1 - 1/speed) + k x frame_s``: at least one frame period (scaled)
before its send time. An explicit start is kept if it stays within the worker's bound
and refused otherwise (:class:`StartError`, one line).

>>> default_start(now=1000.0, duration_s=600.0, speed=5.0)
520.0
>>> default_start(now=1000.0, duration_s=600.0, speed=0.0)
400.0
>>> default_start(now=1000.0, duration_s=600.0, speed=1.0)
1000.0
>>> round(max_lead_s(start=1000.0, now=1000.0, duration_s=600.0, speed=5.0), 1)
479.2
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


class StartError(ValueError):
    """A requested start that would put frames beyond the worker's future bound."""


def _catch_up(speed: float) -> float:
    """Seconds a frame's date gains on the wall clock per second of frames sent."""
    if speed == 0:
        return 1.0
    return max(0.0, 1.0 - 1.0 / speed)


def default_start(now: float, duration_s: float, speed: float) -> float:
    """The first frame's time when none is given (see the module docstring)."""
    return now - duration_s * _catch_up(speed)


def max_lead_s(
    start: float, now: float, duration_s: float, speed: float, frame_s: float = 1.0
) -> float:
    """The most any frame will be ahead of the wall clock when sent (negative: behind).

    Frames ``k = 0 .. ceil(duration / frame_s) - 1`` are dated ``start + k x frame_s``
    and sent no earlier than ``now + k x frame_s / speed`` (``now`` for speed 0).
    """
    if frame_s <= 0:
        raise ValueError(f"frame length must be a whole number of seconds, got {frame_s}")
    last = max(0, math.ceil(duration_s / frame_s) - 1) * frame_s
    return start - now + last * _catch_up(speed)


def choose_start(
    requested: float | None,
    *,
    now: float,
    duration_s: float,
    speed: float,
    max_future_s: float,
    frame_s: float = 1.0,
) -> float:
    """The first frame's time: ``requested`` if the worker will accept all its frames,
    else :class:`StartError`; without one, :func:`default_start`."""
    if requested is None:
        return default_start(now, duration_s, speed)
    lead = max_lead_s(requested, now, duration_s, speed, frame_s)
    if lead > max_future_s:
        latest = math.floor(requested - (lead - max_future_s))
        raise StartError(
            f"--start {requested:.3f} would date frames up to {lead:.0f} s ahead of the clock "
            f"when sent (speed {speed:g}, {duration_s:g} s); the worker refuses frames more "
            f"than {max_future_s:g} s ahead: start at or before {latest}, or omit --start"
        )
    return requested


def describe_start(start: float, now: float) -> str:
    """One line naming the chosen start, for the user."""
    stamp = datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds")
    offset = now - start
    when = (
        f"{offset:.0f} s before now"
        if offset >= 0.5
        else f"{-offset:.0f} s after now"
        if offset <= -0.5
        else "now"
    )
    return f"frames dated from {stamp} (epoch {start:.3f}, {when})"
