"""The alarm-burden figures of a time window, from the rows InfluxDB holds. Pure.

Definitions (the report prints them):

- an **alarm** is an alert's ``triggered`` event in the window (measurement ``alerts``,
  tag ``event=triggered``), counted once per ``alert_id``;
- **patient-time** is counted in steps of :data:`STEP_S` seconds (aligned to the epoch):
  a step in which InfluxDB holds at least one ``vitals`` sample of the patient (any
  field) is a step the patient was monitored. Summed over the distinct patients
  (pseudonyms) seen in the window, in days, that is the **patient-days**: ten patients
  monitored for ten minutes each are 100 patient-minutes, not ten patient-days. A step cut
  by a monitoring stretch's ends counts whole (at most one step too many per stretch);
  time a device sent nothing (a silent device) is not monitored time. A ward's
  patient-days are those of its patients; kinds and priorities share the whole window's;
- an alarm is **acknowledged** when ``adjudications`` holds an acknowledgement of its
  ``alert_id`` (acknowledgements of alarms raised before the window are left out);
- **time to acknowledge** is the adjudication's ``latency_s``: from the alarm's first
  publication to its acknowledgement (median and 90th centile, linear interpolation);
- **verdict shares** are of the acknowledged alarms: ``actionable``, ``not_actionable``,
  ``artefact``, and ``none`` for acknowledgements without a verdict.

>>> alarms = [AlarmRow("a1", 10.0, "A", "p1", "tachycardia", "high"),
...           AlarmRow("a2", 20.0, "A", "p1", "fever", "low")]
>>> acks = [AdjudicationRow("a1", 70.0, "A", "p1", "tachycardia", "high", "actionable",
...                         60.0, 0, "nurse-1")]
>>> result = burden(alarms, acks, {("A", "p1"): 43200.0}, start=0.0, stop=86400.0)
>>> result["summary"]["alarms"], result["summary"]["per_patient_day"]
(2, 4.0)
>>> result["summary"]["share_acknowledged"], result["summary"]["verdict_shares"]["actionable"]
(0.5, 1.0)
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from stream.records import PRIORITY_RANK, VERDICTS
from stream.sinks.measurements import NO_VERDICT

# Patient-time resolution: 10 s keeps the error at a stay's ends to 10 s (1.7 % of a
# 10-minute simulated stay; a minute would be 10-20 %) while a week of a 30-bed ward is
# ~13 million counted steps for InfluxDB, a few seconds of Flux.
STEP_S = 10
DAY_S = 86400.0
VERDICT_KEYS: tuple[str, ...] = (*VERDICTS, NO_VERDICT)
_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)(s|m|h|d|w)")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class AlarmRow(NamedTuple):
    """An alarm: an alert's ``triggered`` event (``t``: its time, epoch seconds)."""

    alert_id: str
    t: float
    ward: str
    patient: str
    kind: str
    priority: str


class AdjudicationRow(NamedTuple):
    """An acknowledgement (measurement ``adjudications``) at ``t``, epoch seconds."""

    alert_id: str
    t: float
    ward: str
    patient: str
    kind: str
    priority: str
    verdict: str
    latency_s: float | None
    escalation_level: int
    by: str


def parse_when(text: str, now: float) -> float:
    """A window bound: ``now``, a duration before now (``-7d``, ``-12h``, ``-90m``,
    ``-30s``, ``-2w``) or an ISO 8601 time (UTC unless it names a zone); epoch seconds.

    >>> parse_when("-7d", 1_000_000.0), parse_when("now", 5.0)
    (395200.0, 5.0)
    >>> parse_when("2026-05-04T12:00:00Z", 0.0)
    1777896000.0
    """
    text = text.strip()
    if text == "now":
        return now
    match = _RELATIVE.fullmatch(text)
    if match:
        return now - float(match[1]) * _UNIT_S[match[2]]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use now, -7d, -12h, -30m or an ISO 8601 time)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(t: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second.

    >>> iso(0.0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _centiles(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    data = np.asarray(values, float)
    return {
        "n": len(values),
        "median": _r(np.percentile(data, 50)),
        "p90": _r(np.percentile(data, 90)),
    }


def _group(
    alarms: Sequence[AlarmRow], acknowledged: Mapping[str, AdjudicationRow], days: float
) -> dict[str, Any]:
    """One row of figures for a set of alarms (a kind, a priority, a ward, or all)."""
    acks = [acknowledged[a.alert_id] for a in alarms if a.alert_id in acknowledged]
    verdicts = Counter(ack.verdict for ack in acks)
    latencies = [ack.latency_s for ack in acks if ack.latency_s is not None]
    n = len(alarms)
    return {
        "alarms": n,
        "per_patient_day": _r(n / days) if days > 0 else None,
        "acknowledged": len(acks),
        "share_acknowledged": _r(len(acks) / n) if n else None,
        "escalated_before_ack": sum(ack.escalation_level > 0 for ack in acks),
        "time_to_ack_s": _centiles(latencies),
        "verdicts": {v: verdicts.get(v, 0) for v in VERDICT_KEYS},
        "verdict_shares": {
            v: (_r(verdicts.get(v, 0) / len(acks)) if acks else None) for v in VERDICT_KEYS
        },
    }


def first_alarms(rows: Iterable[AlarmRow]) -> list[AlarmRow]:
    """One row per ``alert_id`` (the earliest), in time order: a replayed ``triggered``
    event is the same alarm."""
    first: dict[str, AlarmRow] = {}
    for row in sorted(rows, key=lambda r: (r.t, r.alert_id)):
        first.setdefault(row.alert_id, row)
    return list(first.values())


def burden(
    alarm_rows: Iterable[AlarmRow],
    adjudication_rows: Iterable[AdjudicationRow],
    patient_seconds: Mapping[tuple[str, str], float],
    *,
    start: float,
    stop: float,
    ward: str | None = None,
) -> dict[str, Any]:
    """The report's figures as one JSON-ready dict.

    ``patient_seconds``: (ward, patient) → monitored seconds in the window.
    """
    alarms = first_alarms(alarm_rows)
    adjudications = list(adjudication_rows)
    known = {a.alert_id for a in alarms}
    acknowledged: dict[str, AdjudicationRow] = {}
    for row in sorted(adjudications, key=lambda r: r.t):
        if row.alert_id in known:
            acknowledged.setdefault(row.alert_id, row)  # the first acknowledgement counts
    seconds_by_ward: dict[str, float] = defaultdict(float)
    for (ward_name, _patient), seconds in patient_seconds.items():
        seconds_by_ward[ward_name] += seconds
    total_seconds = sum(seconds_by_ward.values())
    days = total_seconds / DAY_S

    def grouped(key: str, order: Sequence[str] | None = None) -> list[dict[str, Any]]:
        groups: dict[str, list[AlarmRow]] = defaultdict(list)
        for alarm in alarms:
            groups[getattr(alarm, key)].append(alarm)
        names = [n for n in order if n in groups] if order else sorted(groups)
        rows = []
        for name in names:
            group_days = seconds_by_ward[name] / DAY_S if key == "ward" else days
            rows.append({key: name, **_group(groups[name], acknowledged, group_days)})
        if key == "kind":  # the heaviest burden first
            rows.sort(key=lambda row: (-row["alarms"], row["kind"]))
        return rows

    latencies: dict[str, list[float]] = defaultdict(list)
    priority_of = {a.alert_id: a.priority for a in alarms}
    for ack in acknowledged.values():
        if ack.latency_s is not None:  # grouped as the alarm was raised, like by_priority
            latencies[priority_of[ack.alert_id]].append(round(ack.latency_s, 1))
    priorities = sorted(PRIORITY_RANK, key=lambda p: -PRIORITY_RANK[p])
    return {
        "window": {"start": iso(start), "stop": iso(stop), "seconds": round(stop - start, 3)},
        "ward": ward,
        "patients": len({patient for _ward, patient in patient_seconds}),
        "patient_hours": _r(total_seconds / 3600.0),
        "patient_days": _r(days, 4),
        "summary": _group(alarms, acknowledged, days),
        "by_kind": grouped("kind"),
        "by_priority": grouped("priority", priorities),
        "by_ward": grouped("ward"),
        "ack_latencies_s": {p: sorted(latencies[p]) for p in priorities if latencies[p]},
        # Acknowledgements in the window of alarms raised before it: left out, counted.
        "adjudications_outside_window": sum(row.alert_id not in known for row in adjudications),
    }
