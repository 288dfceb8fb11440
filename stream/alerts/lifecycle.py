"""The alert lifecycle: which conditions become alert events, and when.

One :class:`AlertTracker` per device (so per patient wearing it) turns the conditions
:func:`stream.alerts.rules.evaluate` sees in each window into :class:`stream.records.Alert`
events, fighting alarm fatigue the ways IEC 60601-1-8 and practice (Tidepool's
care-partner alerts) describe:

- **onset delay**: a condition must persist ``onset_s`` before the alert is
  ``triggered`` (one window without it, or two in a row only inside the hysteresis band,
  restart the wait, unless the kind tolerates a gap: an absence of at most
  ``onset_gap_s`` lets the wait go on from where it began; see :data:`ONSET_BAND_GAP_S`);
  a sustain-only condition marked ``begins_onset`` (AF called by the rhythm model before
  the beats confirm it; a good resting ECG's heart rate past a limit that the other
  sources' vote set aside) begins the wait, which only a confirmed condition completes;
  for the kinds in :data:`HELD_BY_BEGINNING` it also holds the wait while it lasts, so
  the confirmation completes it at once if it began ``onset_s`` ago;
- **repeat**: while it stays active the alert is ``repeated`` every ``repeat_s``, and at
  once when its priority rises;
- **resolution with hysteresis**: ``resolved`` once the condition has been absent for
  ``resolve_s``. Rules report a value that is back inside its limit but not past the
  hysteresis margin as a *sustain-only* condition, which keeps the alert active;
- **de-duplication**: one active alert per kind; within a family (e.g. heart rate:
  tachycardia, bradycardia; rhythm: ventricular_run over af; signal: sensor_detached
  over poor_signal) only the highest-priority alert sounds: active lower ones wait
  silently, pending lower ones start their onset delay only once no longer outranked;
- **stable ids**: ``alert_id`` is a UUID5 of patient pseudonym, kind and onset second, so
  replaying the same frames after a crash gives the same ids.

Timings per kind come from ``RuleSettings.timing``. The state is small and JSON-ready
(:meth:`AlertTracker.to_dict` / :meth:`AlertTracker.from_dict`) so the worker keeps it in
a Faust table; windows at or before the last one processed are ignored, so a restarted
worker replaying frames does not fire an alert twice.

Example::

    tracker = AlertTracker(settings.rules)
    if not tracker.seen(t):
        judged = evaluate(
            ctx, t, features, scores, obs, settings.rules, fall=tracker.fall, ecg=tracker.ecg
        )
        alerts = tracker.update(ctx, t, judged.conditions, window=(t - 10, t))
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from stream.alerts.conditions import DEVICE_SILENT, Category, Condition, family_of
from stream.alerts.fall import FallDetector
from stream.alerts.trust import EcgHistory
from stream.config import RuleSettings
from stream.records import PRIORITY_RANK, Alert, AlertEvent, AlertKind, PatientContext, Priority

STATE_VERSION = 1
# While an alert waits out its onset delay, one window whose value is back inside the
# hysteresis band (a sustain-only condition: within 5 bpm of a heart-rate limit, say) does
# not start the wait again; it does not count towards it either, and a second such window
# in a row does. The heart-rate alarms read the rate over the last two beat intervals of
# beats decided up to 0.3 s after their R peak (stream.signal.beat_stream.DECISION_DELAY_S):
# a rate climbing through the limit reads 120.0, 119.1, 121.9 bpm in three windows where
# the beats of each whole window gave 120.0, 120.0, 124.9 (default ward, seed 5), because
# the beat that lifts it is counted one window later. Restarting the 2 s wait there costs
# 2 s on an alarm IEC 60601-2-27 (201.7.9.2.9.101 b) 6)) wants within 10 s of the change;
# a rate that falls past the band, or stays in it, still starts the wait again.
ONSET_BAND_GAP_S = 1.0
_ALERT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://vitalstream.dev/alerts")


def alert_id(patient: str, kind: str, t_onset: float) -> str:
    """Deterministic id of the alert of ``kind`` for ``patient`` that began at ``t_onset``."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, f"{patient}|{kind}|{math.floor(t_onset)}"))


@dataclass
class _Track:
    """One kind's episode: pending (waiting out the onset delay) or active."""

    kind: AlertKind
    category: Category
    priority: Priority
    source: str
    message: str
    values: dict[str, float]
    t_onset: float
    last_present: float
    active: bool = False
    alert_id: str = ""
    last_emitted: float | None = None

    def observe(self, condition: Condition, t: float) -> None:
        self.category = condition.category
        self.source = condition.source
        self.message = condition.message
        self.values = dict(condition.values)
        self.last_present = t
        if not self.active:
            self.priority = condition.priority


# Kinds whose pending onset wait a ``begins_onset`` condition holds for as long as it lasts
# (otherwise it only begins it, and the kind's gap tolerance ends it). Heart rate: after a
# step the ECG's two-beat rate crosses first and the PPG and the device's averaged reading
# confirm it seconds later; the wait counts from the ECG's crossing. Not AF: holding its
# wait through the rhythm model's unconfirmed calls raised 24 false AF alarms in
# arrhythmia_confounds (evaluate, 6 scenarios x 20 seeds x 600 s), against none.
HELD_BY_BEGINNING: frozenset[str] = frozenset({"tachycardia", "bradycardia"})


def _rank(priority: str) -> int:
    return PRIORITY_RANK[priority]


def strongest_per_kind(conditions: Iterable[Condition]) -> dict[AlertKind, Condition]:
    """One condition per kind: a real breach beats sustain-only, then higher priority,
    then the first reported (rules before models, as :func:`evaluate` orders them)."""
    strongest: dict[AlertKind, Condition] = {}
    for condition in conditions:
        held = strongest.get(condition.kind)
        if held is None or _strength(condition) > _strength(held):
            strongest[condition.kind] = condition
    return strongest


def _strength(condition: Condition) -> tuple[bool, int]:
    return (not condition.sustain_only, _rank(condition.priority))


class AlertTracker:
    """Alert state of one device; see the module docstring.

    ``fall`` is the device's :class:`~stream.alerts.fall.FallDetector` and ``ecg`` its
    :class:`~stream.alerts.trust.EcgHistory`: the tracker only carries them (saved and
    restored with its state); :func:`stream.alerts.rules.evaluate` advances them when
    passed as ``fall=tracker.fall, ecg=tracker.ecg``.
    """

    def __init__(self, rules: RuleSettings | None = None) -> None:
        self.rules = rules or RuleSettings()
        self.tracks: dict[str, _Track] = {}
        self.fall = FallDetector()
        self.ecg = EcgHistory()
        self.last_t: float | None = None

    def seen(self, t: float) -> bool:
        """True when a window ending at ``t`` was already processed (a replay)."""
        return self.last_t is not None and t <= self.last_t

    def idle(self) -> bool:
        """No track open and the fall detector idle: a window without any condition then
        only moves ``last_t`` (:meth:`update`) and, through ``rules.evaluate``, the ECG's
        history (``ecg``); nothing else of the state changes."""
        return not self.tracks and self.fall.idle

    def active_alerts(self) -> dict[str, str]:
        """Kind -> alert_id of every active alert."""
        return {kind: track.alert_id for kind, track in self.tracks.items() if track.active}

    def update(
        self,
        ctx: PatientContext,
        t: float,
        conditions: Iterable[Condition],
        window: tuple[float, float] | None = None,
    ) -> list[Alert]:
        """Alert events caused by one window (ending at ``t``) and its conditions.

        A window proves the device is talking, so it resolves ``device_silent`` at once.
        """
        if self.seen(t):
            return []
        self.last_t = t
        window = window or (t, t)
        conditions = list(conditions)  # read twice: strongest per kind, then begins_onset
        strongest = strongest_per_kind(c for c in conditions if c.kind != DEVICE_SILENT)
        breaching = {k: c for k, c in strongest.items() if not c.sustain_only}
        events: list[Alert] = []

        silent = self.tracks.pop(DEVICE_SILENT, None)
        if silent is not None and silent.active:
            events.append(self._event(ctx, silent, "resolved", t, window))
        for kind, track in list(self.tracks.items()):
            if kind in breaching:
                continue
            if not track.active:
                # The onset delay needs the limit crossed throughout, bar a tolerated gap;
                # one window back inside the hysteresis band is such a gap for every kind.
                tolerated = self.rules.timing_of(kind).onset_gap_s
                if kind in strongest:
                    tolerated = max(tolerated, ONSET_BAND_GAP_S)
                if t - track.last_present > tolerated:
                    del self.tracks[kind]
            elif kind in strongest:
                track.last_present = t  # inside the hysteresis band: not resolved yet
            elif t - track.last_present >= self.rules.timing_of(kind).resolve_s:
                events.append(self._event(ctx, track, "resolved", t, window))
                del self.tracks[kind]

        family_top: dict[str, int] = {}
        for kind, condition in breaching.items():
            family = family_of(kind)
            family_top[family] = max(family_top.get(family, 0), _rank(condition.priority))
        for kind, condition in breaching.items():
            track = self.tracks.get(kind)
            if track is None:
                track = self.tracks[kind] = self._start(condition, t)
            track.observe(condition, t)
            if _rank(condition.priority) < family_top[family_of(kind)]:
                # Superseded by a higher-priority alert of the same family: an active one
                # waits silently; a pending one starts its onset delay afresh afterwards.
                if not track.active:
                    del self.tracks[kind]
                continue
            events += self._advance(ctx, track, condition, t, window)
        # A sustain-only condition that may begin an onset wait (Condition.begins_onset:
        # AF called by the rhythm model before the beats confirm it, a set-aside ECG's
        # heart rate) starts a pending track, which only a condition that is not
        # sustain-only can trigger; a heart-rate one also holds it (HELD_BY_BEGINNING).
        for condition in conditions:
            kind = condition.kind
            if not condition.begins_onset:
                continue
            if kind in self.tracks:
                pending = self.tracks[kind]
                if kind in HELD_BY_BEGINNING and not pending.active and kind not in breaching:
                    pending.last_present = t
                continue
            if _rank(condition.priority) < family_top.get(family_of(kind), 0):
                continue  # outranked in its family: waits, as a breaching one would
            self.tracks[kind] = self._start(condition, t)
        return events

    def update_silence(
        self, ctx: PatientContext, now: float, condition: Condition | None
    ) -> list[Alert]:
        """Alert events for ``device_silent`` (from :func:`stream.alerts.rules.silent_devices`).

        ``now`` must be on the clock the device's windows use. ``None`` changes nothing:
        the next window resolves the alert.

        The onset is when the device became silent by definition, its last frame plus
        the timeout, not when a check noticed it: checks run between batches, and a
        worker catching up on a backlog notices late by however much it read at once.
        So the onset, and with it the alert id, is the same live, in a replay and in
        memory.
        """
        if condition is None:
            return []
        track = self.tracks.get(DEVICE_SILENT)
        if track is not None and now <= track.last_present:
            return []
        if track is None:
            values = condition.values
            became_silent = values.get("last_seen", now) + values.get("timeout_s", 0.0)
            track = self.tracks[DEVICE_SILENT] = self._start(condition, min(became_silent, now))
        track.observe(condition, now)
        return self._advance(ctx, track, condition, now, (now, now))

    def _start(self, condition: Condition, t: float) -> _Track:
        return _Track(
            kind=condition.kind,
            category=condition.category,
            priority=condition.priority,
            source=condition.source,
            message=condition.message,
            values=dict(condition.values),
            t_onset=t,
            last_present=t,
        )

    def _advance(
        self,
        ctx: PatientContext,
        track: _Track,
        condition: Condition,
        t: float,
        window: tuple[float, float],
    ) -> list[Alert]:
        timing = self.rules.timing_of(track.kind)
        if not track.active:
            if t - track.t_onset < timing.onset_s:
                return []
            track.active = True
            track.alert_id = alert_id(ctx.patient, track.kind, track.t_onset)
            return [self._event(ctx, track, "triggered", t, window, condition)]
        last_emitted = track.last_emitted if track.last_emitted is not None else track.t_onset
        escalated = _rank(condition.priority) > _rank(track.priority)
        if escalated or t - last_emitted >= timing.repeat_s:
            track.priority = condition.priority
            return [self._event(ctx, track, "repeated", t, window, condition)]
        return []

    def _event(
        self,
        ctx: PatientContext,
        track: _Track,
        event: AlertEvent,
        t: float,
        window: tuple[float, float],
        condition: Condition | None = None,
    ) -> Alert:
        track.last_emitted = t
        return Alert(
            alert_id=track.alert_id,
            event=event,
            kind=track.kind,
            category=track.category,
            priority=track.priority,
            patient=ctx.patient,
            ward=ctx.ward,
            device_id=ctx.device_id,
            t_onset=track.t_onset,
            t_event=t,
            window=window,
            values=track.values,
            source=track.source,
            message=track.message,
            explanation=condition.explanation if condition is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (a few hundred bytes per active alert)."""
        return {
            "v": STATE_VERSION,
            "last_t": self.last_t,
            "fall": self.fall.to_dict(),
            "ecg_good_since": self.ecg.good_since,
            "tracks": {kind: asdict(track) for kind, track in self.tracks.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rules: RuleSettings | None = None) -> AlertTracker:
        if data.get("v") != STATE_VERSION:
            raise ValueError(
                f"alert tracker state version {data.get('v')!r} is not {STATE_VERSION}"
            )
        tracker = cls(rules)
        tracker.last_t = data["last_t"]
        tracker.fall = FallDetector.from_dict(data["fall"])
        # Saved by an older worker without it: the ECG's history starts now.
        tracker.ecg = EcgHistory(data.get("ecg_good_since"))
        tracker.tracks = {kind: _Track(**track) for kind, track in data["tracks"].items()}
        return tracker
