"""The alarm-quality figures over many runs, as one JSON-ready dict.

Owns what the evaluation measures (the definitions of true and false are
:mod:`.matching`'s):

- per clinical and technical event kind: recall (labels with at least one explaining
  alarm / scorable labels), detection latency (the first explaining alarm's ``t_event``
  minus the label's start: median, p95, max) and the latency beyond the designed delay of
  the alert kind that matched;
- false alarms (alarms no label explains) per patient-hour, overall, per scenario and per
  alert kind and priority; the alarm burden (every alarm per patient-hour); the
  physiological/technical split; false alarms inside artefact or confound periods vs
  outside; and the list of every false alarm, so a developer can go and look.

A patient-hour is one device for one hour: ``devices × seconds / 3600`` summed over runs.
Times in the lists are seconds from the run's start. Pure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.tools.evaluation.matching import (
    Alarm,
    Label,
    LabelOutcome,
    RunMatch,
    Timings,
    match_run,
)

PRIORITIES = ("high", "medium", "low")


@dataclass(frozen=True)
class Run:
    """One scenario at one seed through the pipeline: its labels and alarms."""

    scenario: str
    seed: int
    devices: int
    seconds: int
    start: float  # epoch of the simulation's second 0
    labels: list[Label]
    alarms: list[Alarm]
    duplicate_triggers: int = 0  # 'triggered' events repeated under an alert id seen
    wall_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def patient_hours(self) -> float:
        return self.devices * self.seconds / 3600.0


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _per_hour(count: int, hours: float) -> float:
    return round(count / hours, 4) if hours > 0 else 0.0


def distribution(values: Iterable[float]) -> dict[str, float | int | None]:
    """Count, median, p95 and max of some seconds (None for none).

    >>> distribution([1.0, 2.0, 3.0, 10.0])
    {'n': 4, 'median': 2.5, 'p95': 8.95, 'max': 10.0}
    >>> distribution([])
    {'n': 0, 'median': None, 'p95': None, 'max': None}
    """
    data = np.asarray(list(values), float)
    if not len(data):
        return {"n": 0, "median": None, "p95": None, "max": None}
    return {
        "n": len(data),
        "median": _r(np.median(data)),
        "p95": _r(np.percentile(data, 95)),
        "max": _r(data.max()),
    }


def _label_row(run: Run, outcome: LabelOutcome) -> dict[str, Any]:
    label, first = outcome.label, outcome.first
    return {
        "scenario": run.scenario, "seed": run.seed, "device_id": label.device_id,
        "event": label.event, "category": label.category,
        "start_s": _r(label.start - run.start, 1), "end_s": _r(label.end - run.start, 1),
        "alarmable_s": _r(label.alarmable_from - run.start, 1),
        "target": outcome.target, "scorable": outcome.scorable,
        "designed_delay_s": outcome.designed_delay_s, "detected": outcome.detected,
        "detected_by": None if first is None else first.kind,
        "latency_s": _r(outcome.latency_s, 2), "beyond_delay_s": _r(outcome.beyond_delay_s, 2),
        "alarms": len(outcome.matches),
        "own_alert": any(a.kind == label.event for a in outcome.matches),
    }  # fmt: skip


def _false_row(run: Run, alarm: Alarm, periods: Sequence[Label]) -> dict[str, Any]:
    return {
        "scenario": run.scenario, "seed": run.seed, "device_id": alarm.device_id,
        "kind": alarm.kind, "priority": alarm.priority, "category": alarm.category,
        "onset_s": _r(alarm.t_onset - run.start, 2), "raised_s": _r(alarm.t_event - run.start, 2),
        "source": alarm.source, "message": alarm.message,
        "periods": [
            {"event": p.event, "category": p.category,
             "start_s": _r(p.start - run.start, 1), "end_s": _r(p.end - run.start, 1)}
            for p in periods
        ],
    }  # fmt: skip


def _kind_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [r for r in rows if r["scorable"]]
    detected = [r for r in scored if r["detected"]]
    return {
        "category": rows[0]["category"],
        "labels": len(rows),
        "scorable": len(scored),
        "detected": len(detected),
        "recall": _r(len(detected) / len(scored), 4) if scored else None,
        "own_alert": sum(r["own_alert"] for r in scored),  # raised the alert of its name
        "latency_s": distribution(r["latency_s"] for r in detected),
        "beyond_delay_s": distribution(r["beyond_delay_s"] for r in detected),
        "detected_by": dict(Counter(r["detected_by"] for r in detected).most_common()),
    }


def _alarm_figures(
    alarms: list[dict[str, Any]], false: list[dict[str, Any]], hours: float
) -> dict[str, Any]:
    split = {
        category: {
            "alarms": sum(a["category"] == category for a in alarms),
            "false_alarms": sum(f["category"] == category for f in false),
            "burden_per_patient_hour": _per_hour(
                sum(a["category"] == category for a in alarms), hours
            ),
            "false_per_patient_hour": _per_hour(
                sum(f["category"] == category for f in false), hours
            ),
        }
        for category in ("physiological", "technical")
    }
    inside = sum(1 for f in false if any(p["category"] in ("artefact", "confound")
                                         for p in f["periods"]))  # fmt: skip
    return {
        "patient_hours": round(hours, 4),
        "alarms": len(alarms),
        "alarm_burden_per_patient_hour": _per_hour(len(alarms), hours),
        "false_alarms": len(false),
        "false_alarms_per_patient_hour": _per_hour(len(false), hours),
        "false_high_priority": sum(f["priority"] == "high" for f in false),
        "by_category": split,
        "false_in_artefact_or_confound": inside,
        "false_outside_artefact_or_confound": len(false) - inside,
    }


def _by_kind_priority(false: list[dict[str, Any]], hours: float) -> list[dict[str, Any]]:
    counts = Counter((f["kind"], f["priority"], f["category"]) for f in false)
    return [
        {"kind": kind, "priority": priority, "category": category, "count": n,
         "per_patient_hour": _per_hour(n, hours)}
        for (kind, priority, category), n in sorted(
            counts.items(), key=lambda item: (-item[1], item[0])
        )
    ]  # fmt: skip


def _groups(false: list[dict[str, Any]], hours: dict[str, float]) -> list[dict[str, Any]]:
    counts = Counter((f["scenario"], f["kind"], f["priority"]) for f in false)
    return [
        {"scenario": scenario, "kind": kind, "priority": priority, "count": n,
         "per_patient_hour": _per_hour(n, hours[scenario])}
        for (scenario, kind, priority), n in sorted(
            counts.items(), key=lambda item: (item[0][0], -item[1], item[0][1:])
        )
    ]  # fmt: skip


def _recall_by_kind(kinds: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {kind: k["recall"] for kind, k in kinds.items() if k["recall"] is not None}


def evaluate(runs: Sequence[Run], timings: Timings) -> dict[str, Any]:
    """Every figure of the evaluation over ``runs`` (``summary`` first; the per-scenario,
    per-kind and per-alarm detail after it)."""
    matched: list[tuple[Run, RunMatch]] = [
        (run, match_run(run.labels, run.alarms, timings)) for run in runs
    ]
    label_rows = [_label_row(run, o) for run, m in matched for o in m.outcomes]
    false_rows = [_false_row(run, f.alarm, f.periods) for run, m in matched for f in m.false_alarms]
    alarm_rows = [
        {"scenario": run.scenario, "category": a.category, "kind": a.kind, "priority": a.priority}
        for run, m in matched
        for a in m.alarms
    ]
    hours: dict[str, float] = defaultdict(float)
    for run in runs:
        hours[run.scenario] += run.patient_hours
    total_hours = sum(hours.values())

    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in label_rows:
        if row["target"]:
            by_event[row["event"]].append(row)
    kinds = {event: _kind_figures(rows) for event, rows in sorted(by_event.items())}

    scenarios: dict[str, dict[str, Any]] = {}
    for name in sorted(hours):
        mine = [run for run in runs if run.scenario == name]
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in label_rows:
            if row["scenario"] == name and row["target"]:
                events[row["event"]].append(row)
        scenarios[name] = {
            "runs": len(mine),
            "seeds": sorted(run.seed for run in mine),
            "devices": mine[0].devices,
            "seconds": mine[0].seconds,
            **_alarm_figures(
                [a for a in alarm_rows if a["scenario"] == name],
                [f for f in false_rows if f["scenario"] == name],
                hours[name],
            ),
            "recall_by_kind": _recall_by_kind(
                {event: _kind_figures(rows) for event, rows in sorted(events.items())}
            ),
        }

    overall = _alarm_figures(alarm_rows, false_rows, total_hours)
    recall = _recall_by_kind(kinds)
    lowest = min(recall.items(), key=lambda item: (item[1], item[0]), default=(None, None))
    summary = {
        "runs": len(runs),
        "patient_hours": overall["patient_hours"],
        "alarms": overall["alarms"],
        "alarm_burden_per_patient_hour": {
            "overall": overall["alarm_burden_per_patient_hour"],
            "by_scenario": {n: s["alarm_burden_per_patient_hour"] for n, s in scenarios.items()},
        },
        "false_alarms": overall["false_alarms"],
        "false_alarms_per_patient_hour": {
            "overall": overall["false_alarms_per_patient_hour"],
            "by_scenario": {n: s["false_alarms_per_patient_hour"] for n, s in scenarios.items()},
        },
        "false_high_priority": overall["false_high_priority"],
        "recall_by_kind": recall,
        "recall_min": lowest[1],
        "recall_min_kind": lowest[0],
        "p95_latency_s": {k: f["latency_s"]["p95"] for k, f in kinds.items()},
        "p95_latency_beyond_delay_s": {k: f["beyond_delay_s"]["p95"] for k, f in kinds.items()},
        "by_category": overall["by_category"],
        "false_in_artefact_or_confound": overall["false_in_artefact_or_confound"],
        "false_outside_artefact_or_confound": overall["false_outside_artefact_or_confound"],
        "labels_unscorable": sum(r["target"] and not r["scorable"] for r in label_rows),
        "duplicate_triggers": sum(run.duplicate_triggers for run in runs),
    }
    return {
        "summary": summary,
        "scenarios": scenarios,
        "kinds": kinds,
        "false_by_kind_priority": _by_kind_priority(false_rows, total_hours),
        "false_alarm_groups": _groups(false_rows, hours),
        "false_alarms": false_rows,
        "labels": label_rows,
    }
