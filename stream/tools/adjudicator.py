"""The scripted adjudicator: a clinician's verdict on a simulated alarm, from the labels.

Owns two decisions a simulated nurse makes about each alarm (an alert's ``triggered``
event, :class:`stream.tools.evaluation.matching.Alarm`) of a labelled simulation:

- :func:`verdict_of` — **what** it was, from the simulator's ground truth, with the
  evaluation's own definition of which labelled event explains which alarm
  (:func:`stream.tools.evaluation.matching.explains`):

  1. explained by a *clinical* or *technical* label (a recall target: a deteriorating
     patient, a detached sensor, a silent device) → ``actionable``: someone has to act,
     at the bedside or on the device;
  2. else explained by an *artefact* label (poor signal while walking), or raised while an
     artefact period runs on the same device (a physiological alarm from motion) →
     ``artefact``;
  3. else → ``not_actionable`` (confounds such as benign ectopy, and alarms no label
     explains).

- :func:`response_delay` — **when**, if ever, it is acknowledged: a response delay after
  the alarm's publication, drawn from :class:`AckPolicy` (log-normal around a median per
  priority, some alarms never acknowledged), from a generator the caller seeds.

:func:`adjudicate` does both for a run's alarms. Pure (plain data and a numpy generator;
no I/O): the burden simulation (:mod:`stream.tools.burden.simulate`) applies the
delays to the alert service's own book, which refuses to acknowledge an alarm that has
already resolved, and retraining from verdicts can call :func:`verdict_of` alone.

>>> timings = Timings({}, KindTiming(5.0, 15.0))
>>> labels = [Label("d1", "tachycardia", 100.0, 300.0), Label("d2", "walking", 0.0, 600.0)]
>>> alarm = Alarm("a1", "d1", "tachycardia", "high", "physiological", 110.0, 112.0)
>>> verdict, label = verdict_of(alarm, labels, timings)
>>> verdict, label.event
('actionable', 'tachycardia')
>>> verdict_of(alarm._replace(device_id="d2"), labels, timings)[0]
'artefact'
>>> verdict_of(alarm._replace(device_id="d3"), labels, timings)
('not_actionable', None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.records import Verdict
from stream.tools.evaluation.matching import (
    TARGET_CATEGORIES,
    Alarm,
    KindTiming,
    Label,
    Timings,
    covers,
    explains,
)

__all__ = [
    "AckPolicy",
    "Adjudication",
    "Alarm",
    "KindTiming",
    "Label",
    "Timings",
    "adjudicate",
    "response_delay",
    "verdict_of",
]

# Median nurse response times to physiologic monitor alarms, from video of 551 hours of
# ward care: 10.4 min adjusted median overall, 3.5 min with a 1:1 nursing assignment
# (Bonafide CP et al. Video analysis of factors associated with response time to
# physiologic monitor alarms in a children's hospital. JAMA Pediatr 2017;171(6):524-531,
# doi:10.1001/jamapediatrics.2016.5123). The simulation takes the shorter one for high
# priority alarms (escalated, hard to ignore) and the overall one for the others: a
# choice, not a measurement of this system.
MEDIAN_RESPONSE_S: Mapping[str, float] = {"high": 3.5 * 60, "medium": 10.4 * 60, "low": 10.4 * 60}
# Spread of the log-normal response time (the geometric standard deviation's log): with
# 0.8 the 90th centile is 2.8 times the median. Assumed; the study reports medians only.
RESPONSE_SIGMA = 0.8
# Share of alarms no one ever acknowledges (silenced at the bedside, or lost in a busy
# shift) whatever their duration: assumed, high priority ones are always answered.
NEVER_ACKNOWLEDGED: Mapping[str, float] = {"high": 0.0, "medium": 0.1, "low": 0.2}
# Beyond this an acknowledgement counts as never made (a shift hands over).
MAX_RESPONSE_S = 3600.0
NURSES = ("sim-nurse-1", "sim-nurse-2", "sim-nurse-3", "sim-nurse-4")


@dataclass(frozen=True)
class AckPolicy:
    """When the simulated nurses acknowledge: response medians per priority (seconds), the
    log-normal spread, the share never acknowledged per priority, the cap, who."""

    median_s: Mapping[str, float] = field(default_factory=lambda: dict(MEDIAN_RESPONSE_S))
    sigma: float = RESPONSE_SIGMA
    never: Mapping[str, float] = field(default_factory=lambda: dict(NEVER_ACKNOWLEDGED))
    max_s: float = MAX_RESPONSE_S
    nurses: tuple[str, ...] = NURSES


@dataclass(frozen=True)
class Adjudication:
    """One alarm's scripted outcome: the verdict (and the label behind it), who would
    acknowledge it and how long after its publication (``None``: never)."""

    alert_id: str
    verdict: Verdict
    label: Label | None
    delay_s: float | None
    by: str

    @property
    def reason(self) -> str:
        """Why this verdict, in words (``"tachycardia (clinical)"``, ``"no label"``)."""
        if self.label is None:
            return "no label"
        return f"{self.label.event} ({self.label.category})"


def verdict_of(
    alarm: Alarm, labels: Sequence[Label], timings: Timings
) -> tuple[Verdict, Label | None]:
    """The alarm's verdict and the label that decided it (rules in the module docstring)."""
    mine = [label for label in labels if label.device_id == alarm.device_id]
    for label in mine:
        if label.category in TARGET_CATEGORIES and explains(label, alarm, timings):
            return "actionable", label
    for label in mine:
        if label.category == "artefact" and (
            explains(label, alarm, timings) or covers(label, alarm, timings)
        ):
            return "artefact", label
    return "not_actionable", None


def response_delay(priority: str, policy: AckPolicy, rng: np.random.Generator) -> float | None:
    """Seconds from publication to acknowledgement, or ``None`` for never.

    >>> policy = AckPolicy(never={"low": 1.0})
    >>> response_delay("low", policy, np.random.default_rng(0)) is None
    True
    >>> delays = [response_delay("high", AckPolicy(sigma=0.0), np.random.default_rng(s))
    ...           for s in range(3)]
    >>> delays
    [210.0, 210.0, 210.0]
    """
    if rng.random() < policy.never.get(priority, 0.0):
        return None
    median = policy.median_s.get(priority, max(policy.median_s.values()))
    delay = float(median * np.exp(policy.sigma * rng.standard_normal()))
    return None if delay > policy.max_s else round(delay, 3)


def adjudicate(
    alarms: Sequence[Alarm],
    labels: Sequence[Label],
    timings: Timings,
    rng: np.random.Generator,
    policy: AckPolicy | None = None,
) -> list[Adjudication]:
    """Every alarm's verdict, acknowledging nurse and response delay, in ``alarms`` order.

    The generator is drawn from in that order, so the same alarms, labels and seed give
    the same adjudications.
    """
    policy = policy or AckPolicy()
    out = []
    for alarm in alarms:
        verdict, label = verdict_of(alarm, labels, timings)
        delay = response_delay(alarm.priority, policy, rng)
        by = policy.nurses[int(rng.integers(len(policy.nurses)))]
        out.append(Adjudication(alarm.alert_id, verdict, label, delay, by))
    return out
