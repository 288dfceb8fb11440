"""Fall detection: an impact followed by inactivity, across windows.

Pure code, and the one stateful piece of the alert rules. Who owns the state:

- one :class:`FallDetector` per device, held by that device's
  :class:`~stream.alerts.lifecycle.AlertTracker` as ``tracker.fall`` and saved and
  restored with the tracker's state (``AlertTracker.to_dict`` / ``from_dict`` call
  :meth:`FallDetector.to_dict` / :meth:`FallDetector.from_dict`), so a restarted worker
  carries an impact seen before the restart;
- the worker passes it to :func:`stream.alerts.rules.evaluate` (``fall=tracker.fall``),
  which calls :meth:`FallDetector.update` once per window and so advances it in place;
  nothing else changes it. Without it ``evaluate`` detects no falls (a fall needs more
  than one window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream.alerts.conditions import Condition, finite_values
from stream.alerts.trust import feature
from stream.config import RuleSettings
from stream.signal.activity import STILL_SPAN_S


@dataclass
class FallDetector:
    """Impact followed by inactivity, across windows (Bourke 2007: alert on an impact
    above ~3.5 g plus post-fall inactivity, not on impact alone). Small and serializable:
    it lives in the device's :class:`~stream.alerts.lifecycle.AlertTracker` state (see the
    module docstring).

    ``still`` (features: the trailing 3 s of the window barely moved) turns on a few
    seconds after the impact even while the spike is still inside the window, and dates
    the stillness from the start of those 3 s; a fall
    is confirmed once the wearer has stayed still ``fall_inactivity_s`` after an impact,
    provided the stillness began within ``fall_confirm_within_s`` of it. Moving again
    ends it.

    An impact at 10 s, then seen still from 13 s (still since 10 s, the trailing 3 s):
    after ``fall_inactivity_s`` = 5 s of stillness, a fall at 15 s.

    >>> from stream.config import RuleSettings
    >>> detector, rules = FallDetector(), RuleSettings()
    >>> detector.update(10.0, {"impact_g": 5.0, "still": 0.0}, rules) is None
    True
    >>> [detector.update(t, {"impact_g": 1.0, "still": 1.0}, rules) is None
    ...  for t in (13.0, 14.0, 15.0)]
    [True, True, False]
    >>> detector.to_dict()
    {'impact_t': 10.0, 'impact_g': 5.0, 'inactive_since': 10.0, 'fallen': True}
    """

    impact_t: float | None = None
    impact_g: float = 0.0
    inactive_since: float | None = None
    fallen: bool = False

    @property
    def idle(self) -> bool:
        """No impact being followed: :meth:`update` of a window without an impact of
        ``fall_impact_g`` then changes nothing and returns None (it only clears
        ``inactive_since``, already None), which lets the worker skip it for windows
        :mod:`stream.alerts.screen` clears.

        >>> detector = FallDetector()
        >>> detector.idle, detector.update(1.0, {"impact_g": 1.0, "still": 0.0}, RuleSettings())
        (True, None)
        >>> detector.idle
        True
        """
        return (
            self.impact_t is None
            and self.inactive_since is None
            and not self.fallen
            and self.impact_g == 0.0
        )

    def update(
        self, t: float, features: Mapping[str, float], rules: RuleSettings
    ) -> Condition | None:
        """Advance by the window ending at ``t``: a ``fall`` condition while fallen."""
        impact = feature(features, "impact_g")
        inactive = self._inactive(features, rules)
        if inactive is False:
            if self.fallen:
                self.reset()  # up and about again
            self.inactive_since = None
        if math.isfinite(impact) and impact >= rules.fall_impact_g:
            if self.impact_t is None:
                self.impact_t = t
            self.impact_g = max(self.impact_g, impact)
        if self.impact_t is None:
            return None
        if inactive is True and self.inactive_since is None:
            # ``still`` judges the window's trailing STILL_SPAN_S: the stillness began then.
            lookback = STILL_SPAN_S if math.isfinite(feature(features, "still")) else 0.0
            self.inactive_since = max(t - lookback, self.impact_t)
        if not self.fallen:
            started = self.inactive_since
            if started is None or started - self.impact_t > rules.fall_confirm_within_s:
                if t - self.impact_t > rules.fall_confirm_within_s:
                    self.reset()  # no stillness soon enough after the impact: not a fall
                return None
            if t - started < rules.fall_inactivity_s:
                return None
            self.fallen = True
        if self.inactive_since is None:
            return None
        still_s = t - self.inactive_since
        return Condition(
            kind="fall",
            category="physiological",
            priority="high",
            values=finite_values(
                impact_g=self.impact_g, still_s=still_s, limit=rules.fall_impact_g
            ),
            source="rule:fall@1",
            message=f"Fall: impact {self.impact_g:.1f} g, then still for {still_s:.0f} s",
        )

    @staticmethod
    def _inactive(features: Mapping[str, float], rules: RuleSettings) -> bool | None:
        still = feature(features, "still")
        if math.isfinite(still):
            return still >= 0.5
        activity = feature(features, "activity_g")
        if math.isfinite(activity):
            return activity <= rules.fall_inactive_activity_g
        return None

    def reset(self) -> None:
        self.impact_t, self.impact_g, self.inactive_since, self.fallen = None, 0.0, None, False

    def to_dict(self) -> dict[str, Any]:
        # Written every window into the tracker state: spelled out (0.4 µs; asdict 12 µs).
        return {
            "impact_t": self.impact_t,
            "impact_g": self.impact_g,
            "inactive_since": self.inactive_since,
            "fallen": self.fallen,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FallDetector:
        return cls(**data)
