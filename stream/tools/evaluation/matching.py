"""Which alarm explains which labelled event, and the matching of one run.

Owns the evaluation's definition of a *true* and a *false* alarm:

- :data:`EXPLAINS`: for every labelled event kind of the simulator
  (:data:`producers.scenario.EVENT_KINDS`), the alert kinds it explains, with the reason;
- :func:`explains`: an alarm (an alert's ``triggered`` event; ``repeated`` and
  ``resolved`` are the lifecycle of the same alarm) is explained by a label of the *same
  device* when its kind is in ``EXPLAINS[label.event]`` and its onset lies in
  ``[label.start, label.end + resolve_s]`` (``resolve_s`` of the alarm's kind: an alert
  whose condition began as the event ended is still the event's);
- :func:`match_run`: every label's outcome (detected or not, by which alarm, how late) and
  every alarm no label explains (a false alarm, with the label periods it fell in).

Pure: plain data in, plain data out; the settings' timings come in as :class:`Timings`.

>>> timings = Timings({"tachycardia": KindTiming(2.0, 15.0)}, KindTiming(5.0, 15.0))
>>> label = Label("dev-1", "tachycardia", start=60.0, end=240.0)
>>> alarm = Alarm("a1", "dev-1", "tachycardia", "medium", "physiological", 66.0, 68.0)
>>> explains(label, alarm, timings), explains(label, alarm._replace(device_id="dev-2"), timings)
(True, False)
>>> run = match_run([label], [alarm], timings)
>>> run.outcomes[0].latency_s, run.outcomes[0].beyond_delay_s, run.false_alarms
(8.0, 6.0, [])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from producers.scenario import EVENT_CATEGORY

# Alert kinds that read the vitals a clinical event moves: the partial NEWS2 aggregates
# heart rate, SpO2, respiration rate and temperature (stream/alerts/news2.py), and the
# deterioration model scores their trends (models/default/deterioration). An event that
# really moves one of these vitals makes a NEWS2 or deterioration alarm a true one.
_VITALS_AGGREGATES = frozenset({"news2", "deterioration"})
# What a wearable says when its signal is bad: technical alerts, which are the right
# answer to an artefact (the signal misleads) as long as nothing physiological is raised.
_TECHNICAL_SIGNAL = frozenset({"poor_signal", "sensor_detached"})

EXPLAINS: dict[str, frozenset[str]] = {
    # -- clinical ---------------------------------------------------------------------
    # Heart rate above the limit; NEWS2 scores HR >= 111 and the model reads the HR trend.
    "tachycardia": frozenset({"tachycardia"}) | _VITALS_AGGREGATES,
    # Heart rate below the limit; NEWS2 scores HR <= 50 and the model reads the HR trend.
    "bradycardia": frozenset({"bradycardia"}) | _VITALS_AGGREGATES,
    # AF conducts fast (the simulator's ventricular rate runs ~15 % above the sinus rate):
    # a tachycardia alarm and the NEWS2 heart-rate score are true. New-onset AF with a
    # fast response is itself a recognised sign of deterioration (sepsis, heart failure)
    # and moves the HR trend the deterioration model reads. Not bradycardia: AF does not
    # slow the rate.
    "af": frozenset({"af", "tachycardia"}) | _VITALS_AGGREGATES,
    # A ventricular run is a rate of 140-200 bpm (producers/physiology.ventricular_rate):
    # tachycardia is true, and so is a NEWS2 heart-rate score from it. Not deterioration:
    # a run of seconds is no trend, and a trend model raising on it over-reacts.
    "ventricular_run": frozenset({"ventricular_run", "tachycardia", "news2"}),
    # SpO2 below the limit; NEWS2 scores SpO2 and the model reads its trend. The
    # simulator couples no heart-rate rise to hypoxaemia, so tachycardia is not explained.
    "desaturation": frozenset({"desaturation"}) | _VITALS_AGGREGATES,
    # Respiration rate above the limit; NEWS2 scores it and the model reads its trend.
    "tachypnoea": frozenset({"tachypnoea"}) | _VITALS_AGGREGATES,
    # Temperature above the limit; NEWS2 scores it, the model reads it, and fever raises
    # the heart rate (~10 bpm per degree, producers/physiology), so tachycardia is true.
    # Not tachypnoea: the simulator does not raise the breathing rate with fever.
    "fever": frozenset({"fever", "tachycardia"}) | _VITALS_AGGREGATES,
    # Impact then lying still: only the fall alarm. Lying still changes no vital sign.
    "fall": frozenset({"fall"}),
    # -- technical --------------------------------------------------------------------
    # A detached sensor: its own alert, or poor signal (what the signal looks like while
    # the electrode comes off). Never a heart-rate or rhythm alarm: a flat or noisy line
    # is not the patient.
    "sensor_detached": _TECHNICAL_SIGNAL,
    # Nothing arrives: only the silence alert.
    "device_silent": frozenset({"device_silent"}),
    # -- artefacts: the signal misleads; technical alerts only --------------------------
    # Motion corrupts ECG and PPG (poor signal); a sensor shaken off its skin contact may
    # read as detached. No physiological alarm is true here: the evaluation wants the
    # worker to distrust the signal, not to alarm on it.
    "walking": _TECHNICAL_SIGNAL,
    "running": _TECHNICAL_SIGNAL,
    # A loose electrode is a partly detached sensor: poor signal or detached.
    "loose_electrode": _TECHNICAL_SIGNAL,
    # Low perfusion flattens the PPG: poor signal (detached if the pulse vanishes).
    "low_perfusion": _TECHNICAL_SIGNAL,
    # Noise on the sensors: poor signal, or detached when it swamps the waveform.
    "sensor_noise": _TECHNICAL_SIGNAL,
    # -- confounds: real physiology that is not an alarm condition ----------------------
    # Isolated premature beats and bigeminy are benign and the signal is good: no alert
    # of any kind is explained (a pulse deficit read as bradycardia, ectopy read as AF or
    # a ventricular run, a technical alert on a clean signal: all false).
    "premature_beats": frozenset(),
    "bigeminy": frozenset(),
}
# The categories whose labels are recall targets (each should raise its own alert).
TARGET_CATEGORIES = ("clinical", "technical")


def category_of(event: str) -> str:
    """The label category of an event kind (``EVENT_CATEGORY``; unknown kinds: clinical)."""
    return EVENT_CATEGORY.get(event, "clinical")


def explained_by(event: str) -> frozenset[str]:
    """The alert kinds an event explains; kinds not in :data:`EXPLAINS` (added to the
    simulator since) fall back on their category: artefacts explain technical signal
    alerts, confounds nothing, clinical and technical events the alert of their name."""
    if event in EXPLAINS:
        return EXPLAINS[event]
    category = category_of(event)
    if category == "artefact":
        return _TECHNICAL_SIGNAL
    if category == "confound":
        return frozenset()
    return frozenset({event})


class KindTiming(NamedTuple):
    """An alert kind's designed delay (how long its condition must last before it fires,
    silence timeout included) and its resolve delay, seconds."""

    designed_delay_s: float
    resolve_s: float


@dataclass(frozen=True)
class Timings:
    """Per alert kind timings, with the default for kinds not named."""

    kinds: Mapping[str, KindTiming]
    default: KindTiming

    def of(self, kind: str) -> KindTiming:
        return self.kinds.get(kind, self.default)


class Label(NamedTuple):
    """One ground-truth event on one device (epoch seconds).

    ``crossed``: for an event whose alarm is a vital sign's limit (:data:`LIMIT_EVENTS`),
    when the patient's *true* value first crossed that limit within the event (``None``:
    it never did, or the event has no such limit). A fever that comes on over minutes
    cannot raise its alarm before the temperature reaches the limit.
    """

    device_id: str
    event: str
    start: float
    end: float
    severity: float = 0.0
    crossed: float | None = None

    @property
    def alarmable_from(self) -> float:
        """When the event's alarm could first be due: its start, or for a gradual change
        the moment the true value crossed the alarm limit."""
        return self.start if self.crossed is None else max(self.start, self.crossed)

    @property
    def category(self) -> str:
        return category_of(self.event)

    @classmethod
    def from_fleet(cls, data: Mapping[str, Any]) -> Label:
        """From :meth:`producers.fleet.Fleet.labels`' dicts (extra keys ignored)."""
        return cls(
            str(data["device_id"]),
            str(data["event"]),
            float(data["start"]),
            float(data["end"]),
            float(data.get("severity", 0.0)),
        )


class Alarm(NamedTuple):
    """One alarm: the ``triggered`` event of an alert (epoch seconds)."""

    alert_id: str
    device_id: str
    kind: str
    priority: str
    category: str  # physiological | technical
    t_onset: float  # when its condition began
    t_event: float  # when it was raised
    source: str = ""
    message: str = ""


def triggered_alarms(alerts: Iterable[Any]) -> tuple[list[Alarm], int]:
    """The alarms among :class:`stream.records.Alert` events: ``triggered`` ones, once per
    ``alert_id`` (subscribers de-duplicate on it), and how many repeats were dropped."""
    alarms: list[Alarm] = []
    seen: set[str] = set()
    repeats = 0
    for alert in alerts:
        if alert.event != "triggered":
            continue
        if alert.alert_id in seen:
            repeats += 1
            continue
        seen.add(alert.alert_id)
        alarms.append(
            Alarm(
                alert.alert_id,
                alert.device_id,
                alert.kind,
                alert.priority,
                alert.category,
                float(alert.t_onset),
                float(alert.t_event),
                alert.source,
                alert.message,
            )
        )
    return alarms, repeats


# Events whose own alarm is a vital sign crossing a limit, and which may come on gradually
# (the simulator moves vitals towards their targets with physiological time constants):
# event -> (true vital of producers.fleet.Fleet.true_vitals, rising?, RuleSettings limit).
# Latency beyond the designed delay counts from the crossing, as alarm-delay tests do:
# IEC 60601-2-27 times a heart-rate alarm from the change that crosses its limit.
LIMIT_EVENTS: dict[str, tuple[str, bool, str]] = {
    "tachycardia": ("hr", True, "tachycardia_bpm"),
    "bradycardia": ("hr", False, "bradycardia_bpm"),
    "desaturation": ("spo2", False, "desaturation_pct"),
    "tachypnoea": ("resp", True, "tachypnoea_rpm"),
    "fever": ("temp", True, "fever_c"),
}


def first_crossing(
    times: Sequence[float], values: Sequence[float], limit: float, rising: bool,
    start: float, end: float,
) -> float | None:  # fmt: skip
    """The first time in ``[start, end]`` at which ``values`` reach ``limit`` (inclusive,
    as the alarm limits are); ``None`` if they never do.

    >>> first_crossing([1, 2, 3, 4], [37.5, 37.9, 38.2, 38.4], 38.1, True, 0, 10)
    3
    >>> first_crossing([1, 2, 3], [95, 93, 92], 91, False, 0, 10) is None
    True
    """
    for t, value in zip(times, values, strict=True):
        if start <= t <= end and (value >= limit if rising else value <= limit):
            return t
    return None


def covers(label: Label, alarm: Alarm, timings: Timings) -> bool:
    """Whether the alarm's onset falls in the label's period on the same device, the
    alarm kind's resolve delay after its end included (whatever the kinds)."""
    end = label.end + timings.of(alarm.kind).resolve_s
    return alarm.device_id == label.device_id and label.start <= alarm.t_onset <= end


def explains(label: Label, alarm: Alarm, timings: Timings) -> bool:
    """Whether the label explains the alarm: same device, onset in the label's period (see
    :func:`covers`) and a kind the event explains (:func:`explained_by`)."""
    return alarm.kind in explained_by(label.event) and covers(label, alarm, timings)


def designed_delay(event: str, timings: Timings) -> float:
    """How long an event must last before, by design, its alert can fire: the delay of the
    alert of its name, else the shortest among the kinds it explains (0 if none)."""
    kinds = explained_by(event)
    if event in kinds:
        return timings.of(event).designed_delay_s
    return min((timings.of(k).designed_delay_s for k in kinds), default=0.0)


@dataclass(frozen=True)
class LabelOutcome:
    """What became of one label: the alarms it explains and the first one raised."""

    label: Label
    matches: tuple[Alarm, ...]
    designed_delay_s: float  # of the event's own alert kind
    # Latency past the designed delay of the matched kind, from label.alarmable_from.
    beyond_delay_s: float | None

    @property
    def target(self) -> bool:
        """A recall target: a clinical or technical event."""
        return self.label.category in TARGET_CATEGORIES

    @property
    def scorable(self) -> bool:
        """A target that lasts, within the run, at least its alert's designed delay: one
        that cannot raise its alert by design (a 30 s silence with a 300 s timeout, an AF
        label cut to 20 s by the run's end) is reported, not counted as missed."""
        return self.target and self.label.end - self.label.start >= self.designed_delay_s

    @property
    def first(self) -> Alarm | None:
        return min(self.matches, key=lambda a: (a.t_event, a.kind), default=None)

    @property
    def detected(self) -> bool:
        return bool(self.matches)

    @property
    def latency_s(self) -> float | None:
        """When the first matching alarm was raised, after the label's start."""
        first = self.first
        return None if first is None else first.t_event - self.label.start


@dataclass(frozen=True)
class FalseAlarm:
    """An alarm no label explains, and the label periods of its device it fell in."""

    alarm: Alarm
    periods: tuple[Label, ...]

    @property
    def in_artefact_or_confound(self) -> bool:
        return any(p.category in ("artefact", "confound") for p in self.periods)


@dataclass
class RunMatch:
    """One run's labels and alarms, matched."""

    outcomes: list[LabelOutcome] = field(default_factory=list)
    false_alarms: list[FalseAlarm] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)


def match_run(labels: Sequence[Label], alarms: Sequence[Alarm], timings: Timings) -> RunMatch:
    """Match one run's alarms with its labels (one device's alarms never explain another
    device's labels)."""
    explained: set[int] = set()
    outcomes: list[LabelOutcome] = []
    for label in labels:
        hits = [i for i, alarm in enumerate(alarms) if explains(label, alarm, timings)]
        explained.update(hits)
        matches = tuple(sorted((alarms[i] for i in hits), key=lambda a: (a.t_event, a.kind)))
        beyond = None
        if matches:
            first = matches[0]
            beyond = first.t_event - label.alarmable_from - timings.of(first.kind).designed_delay_s
        outcomes.append(LabelOutcome(label, matches, designed_delay(label.event, timings), beyond))
    false_alarms = [
        FalseAlarm(alarm, tuple(label for label in labels if covers(label, alarm, timings)))
        for i, alarm in enumerate(alarms)
        if i not in explained
    ]
    return RunMatch(outcomes, false_alarms, list(alarms))
