"""A simulated week of alarms and their acknowledgements, written as production writes them.

Owns the simulated week behind ``vitalstream alerts simulate-week``:

1. **Alarms**: each run is one shipped scenario at one seed through the worker's own
   in-memory pipeline, driven the way ``vitalstream evaluate`` drives it
   (:func:`stream.tools.evaluation.runner.run_one`: enrolments, one batch of frames per
   second with ``now`` = frame time + 1 s, a timer tick after each). Each run has its own
   pseudonym key, so its patients are new patients.
2. **Adjudication**: every alarm gets the scripted adjudicator's verdict and response
   delay (:func:`stream.tools.adjudicator.adjudicate`, the run's labels as ground truth).
3. **Acknowledgement**: the alarms' events go through the alert service's own
   :class:`~stream.subscriptions.book.AlertBook` in time order, with its escalation run
   every second (``escalation_after_s`` of the settings) and each acknowledgement
   attempted at publication + delay. The book refuses an alarm already resolved (the
   API's 409), so short alarms often go unacknowledged, as they do on a ward.
4. **Lines**: the worker's ``vitals`` and ``alerts`` lines, and what the alert service's
   audit writes for the lifecycle events (:func:`stream.subscriptions.audit.audit_lines`:
   ``alerts`` points and ``adjudications``).

Runs are laid end to end in time (run ``i`` starts ``i × spacing`` after the week's
start, ``spacing`` = the week / the number of runs), so the patient-time simulated is
runs × devices × seconds, whatever the spacing: a week of *patient*-time needs runs ×
devices × seconds = 604,800 s (e.g. 6 scenarios × 17 seeds × 10 devices × 600 s).
"""

from __future__ import annotations

import heapq
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import Settings, load_settings
from stream.records import Alert
from stream.subscriptions.audit import audit_lines
from stream.subscriptions.book import MAX_ESCALATION_LEVEL, AckError, AlertBook
from stream.tools.adjudicator import AckPolicy, Adjudication, adjudicate
from stream.tools.evaluation.matching import Label, triggered_alarms

WEEK_S = 7 * 86400.0
PSEUDONYM_KEY = "alarm-burden-simulation"
DEFAULT_SECONDS = 600
DEFAULT_DEVICES = 10
# Lines of these measurements are kept from the pipeline's output: the report reads
# alarms and patient-minutes; features, quality and scores are not needed.
KEPT_MEASUREMENTS = ("vitals", "alerts")


@dataclass(frozen=True)
class SimRunSpec:
    """One run of the week: a scenario at a seed, from ``start`` (epoch seconds)."""

    index: int
    scenario: str
    seed: int
    devices: int
    seconds: int
    start: float


@dataclass
class SimRun:
    """One run's outcome: its lines and what happened to its alarms."""

    spec: SimRunSpec
    lines: list[str] = field(default_factory=list)
    alarms: int = 0
    acknowledged: int = 0
    resolved_first: int = 0  # acknowledgement attempted after the alarm resolved (409)
    never: int = 0  # the adjudicator never acknowledged it
    verdicts: dict[str, int] = field(default_factory=dict)  # of the acknowledged alarms
    scripted: dict[str, int] = field(default_factory=dict)  # every alarm's scripted verdict
    escalations: int = 0
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Everything but the lines."""
        return {
            "scenario": self.spec.scenario,
            "seed": self.spec.seed,
            "devices": self.spec.devices,
            "seconds": self.spec.seconds,
            "alarms": self.alarms,
            "acknowledged": self.acknowledged,
            "resolved_first": self.resolved_first,
            "never": self.never,
            "verdicts": dict(self.verdicts),
            "scripted": dict(self.scripted),
            "escalations": self.escalations,
            "lines": len(self.lines),
            "wall_s": round(self.wall_s, 2),
        }


def plan_week(
    scenarios: Sequence[str],
    seeds: int,
    *,
    devices: int = DEFAULT_DEVICES,
    seconds: int = DEFAULT_SECONDS,
    start: float,
    span_s: float = WEEK_S,
    seed_start: int = 0,
) -> list[SimRunSpec]:
    """Every (seed, scenario) run, scenarios interleaved, spread evenly over ``span_s``.

    >>> [(r.scenario, r.seed, r.start) for r in plan_week(["a", "b"], 2, start=0.0,
    ...                                                  span_s=4000.0, seconds=600)]
    [('a', 0, 0.0), ('b', 0, 1000.0), ('a', 1, 2000.0), ('b', 1, 3000.0)]
    """
    if seeds < 1 or not scenarios or devices < 1 or seconds < 1:
        raise ValueError("need at least one scenario, seed, device and second")
    pairs = [(name, seed) for seed in range(seed_start, seed_start + seeds) for name in scenarios]
    spacing = max(float(seconds), span_s / len(pairs))
    return [
        SimRunSpec(i, name, seed, devices, seconds, start + i * spacing)
        for i, (name, seed) in enumerate(pairs)
    ]


def run_settings(spec: SimRunSpec, models_dir: str | Path) -> Settings:
    """The worker's settings for one run: a run's own pseudonym key (new patients)."""
    return load_settings(
        pseudonym_key=f"{PSEUDONYM_KEY}-{spec.index}", models={"directory": str(models_dir)}
    )


def _kept(text: str) -> bool:
    return text.split(",", 1)[0] in KEPT_MEASUREMENTS


def pipeline_run(
    spec: SimRunSpec, settings: Settings
) -> tuple[list[Alert], list[str], list[Label], Any]:
    """The run through a fresh pipeline: every alert event, the kept lines, the labels
    and the settings' timings (for the adjudicator's matching)."""
    from producers.fleet import Fleet
    from producers.scenario import load_scenario
    from stream.scoring.scorer import Scorer
    from stream.tools.evaluation.runner import drive, timings_from_settings
    from stream.worker.pipeline import Pipeline

    scorer = Scorer.from_registry(settings)
    pipeline = Pipeline(settings, scorer, worker="burden-simulation")
    fleet = Fleet(
        load_scenario(spec.scenario), spec.devices, seed=spec.seed, start=spec.start,
        faults=True,
    )  # fmt: skip
    alerts: list[Alert] = []
    lines: list[str] = []

    def take(output: Any) -> None:
        pipeline.save(output)
        alerts.extend(output.alerts)
        lines.extend(text for text in output.lines if _kept(text))

    drive(pipeline, fleet, spec.seconds, spec.start, take)
    labels = [Label.from_fleet(label) for label in fleet.labels(spec.seconds)]
    return alerts, lines, labels, timings_from_settings(settings)


def acknowledge_through_book(
    events: Sequence[Alert],
    adjudications: Sequence[Adjudication],
    escalation_after_s: float,
    tick_s: float = 1.0,
) -> tuple[list[tuple[Alert, float | None]], Counter[str]]:
    """The alarms' lifecycle as the alert service would have it: every worker event, the
    escalations the book raises (checked every ``tick_s``) and the acknowledgements it
    accepts, in time order, each with the alarm's first publication time (for the audit).

    Outcomes: ``acknowledged``, ``resolved_first`` (the book refused: already resolved),
    ``never``.
    """
    book = AlertBook()
    published = {}
    for event in events:
        if event.event == "triggered":
            published.setdefault(event.alert_id, event.emitted_at or event.t_event)
    # (time, order, kind, payload): worker events before acknowledgements at equal times.
    queue: list[tuple[float, int, int, Any]] = []
    for i, event in enumerate(events):
        queue.append((event.emitted_at or event.t_event, i, 0, event))
    outcomes: Counter[str] = Counter()
    for j, adjudication in enumerate(adjudications):
        if adjudication.delay_s is None or adjudication.alert_id not in published:
            outcomes["never"] += 1
            continue
        at = published[adjudication.alert_id] + adjudication.delay_s
        queue.append((at, len(events) + j, 1, adjudication))
    heapq.heapify(queue)
    out: list[tuple[Alert, float | None]] = []
    if not queue:
        return out, outcomes
    # Escalation ticks from the first event until every open alarm could have escalated
    # to the last level after the last thing that happens.
    tick = math.floor(queue[0][0])
    last = max(item[0] for item in queue) + (MAX_ESCALATION_LEVEL + 1) * escalation_after_s
    while queue or tick <= last:
        if queue and queue[0][0] <= tick:
            at, _, kind, payload = heapq.heappop(queue)
            if kind == 0:
                book.apply(payload)
                out.append((payload, book.triggered_at(payload.alert_id)))
                continue
            try:
                _, acknowledged = book.acknowledge(
                    payload.alert_id, by=payload.by, note="", now=at, verdict=payload.verdict
                )
            except AckError:
                outcomes["resolved_first"] += 1
                continue
            outcomes["acknowledged"] += 1
            out.append((acknowledged, book.triggered_at(payload.alert_id)))
            continue
        for escalated in book.due_escalations(tick, escalation_after_s):
            out.append((escalated, book.triggered_at(escalated.alert_id)))
        tick += tick_s
    return out, outcomes


def simulate_run(
    spec: SimRunSpec, policy: AckPolicy | None = None, models_dir: str | None = None
) -> SimRun:
    """One run: pipeline, adjudication, the book's lifecycle, and the lines to write."""
    import time

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitalstream-burden-") as tmp:
        settings = run_settings(spec, models_dir or Path(tmp) / "registry")
        events, lines, labels, timings = pipeline_run(spec, settings)
    alarms, _ = triggered_alarms(events)
    rng = np.random.default_rng([spec.seed, spec.index])
    adjudications = adjudicate(alarms, labels, timings, rng, policy)
    lifecycle, outcomes = acknowledge_through_book(
        events, adjudications, settings.alerts_api.escalation_after_s
    )
    for alert, triggered_at in lifecycle:
        lines += audit_lines(alert, triggered_at)
    # The worker raises no acknowledged or escalated events: these are the book's.
    book_events = [a for a, _ in lifecycle if a.event in ("acknowledged", "escalated")]
    acknowledged = [a for a in book_events if a.event == "acknowledged"]
    return SimRun(
        spec=spec,
        lines=lines,
        alarms=len(alarms),
        acknowledged=outcomes["acknowledged"],
        resolved_first=outcomes["resolved_first"],
        never=outcomes["never"],
        verdicts=dict(Counter(str(a.verdict) for a in acknowledged)),
        scripted=dict(Counter(a.verdict for a in adjudications)),
        escalations=sum(a.event == "escalated" for a in book_events),
        wall_s=time.perf_counter() - began,
    )


def simulate(
    specs: Sequence[SimRunSpec],
    *,
    workers: int = 2,
    policy: AckPolicy | None = None,
    models_dir: str | None = None,
    on_done: Callable[[SimRun], None] | None = None,
) -> list[SimRun]:
    """Every run, ``workers`` at a time in spawned processes (or here when 1); ``on_done``
    sees each as it completes (to write its lines and drop them), the list comes back in
    ``specs`` order."""
    from stream.tools.evaluation.runner import in_processes

    return in_processes(simulate_run, specs, policy, models_dir, workers=workers, on_done=on_done)


def describe(specs: Sequence[SimRunSpec], runs: Sequence[SimRun], policy: AckPolicy) -> dict:
    """What was simulated (for simulation.json and the report's header)."""
    totals: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    scripted: Counter[str] = Counter()
    for run in runs:
        totals.update(
            alarms=run.alarms, acknowledged=run.acknowledged, resolved_first=run.resolved_first,
            never=run.never, escalations=run.escalations,
        )  # fmt: skip
        verdicts.update(run.verdicts)
        scripted.update(run.scripted)
    patient_s = sum(spec.devices * spec.seconds for spec in specs)
    return {
        "runs": len(specs),
        "scenarios": sorted({spec.scenario for spec in specs}),
        "seeds": sorted({spec.seed for spec in specs}),
        "devices_per_run": sorted({spec.devices for spec in specs}),
        "seconds_per_run": sorted({spec.seconds for spec in specs}),
        "patient_seconds": patient_s,
        "patient_days": round(patient_s / 86400.0, 4),
        "start": min(spec.start for spec in specs),
        "stop": round(max(spec.start + spec.seconds for spec in specs), 1),
        "policy": {
            "median_response_s": dict(policy.median_s),
            "sigma": policy.sigma,
            "never_acknowledged": dict(policy.never),
            "max_response_s": policy.max_s,
        },
        "totals": dict(totals),
        "verdicts": dict(verdicts),  # of the acknowledged alarms
        "scripted_verdicts": dict(scripted),  # of every alarm, acknowledged or not
        "run_wall_s": round(sum(run.wall_s for run in runs), 1),
    }


def simulate_into(
    client: Any,
    bucket: str,
    org: str,
    specs: Sequence[SimRunSpec],
    *,
    workers: int = 2,
    policy: AckPolicy | None = None,
    models_dir: str | None = None,
    on_done: Callable[[SimRun], None] | None = None,
) -> dict[str, Any]:
    """Simulate every run and write its lines to ``bucket`` as it completes (the lines are
    then dropped); :func:`describe` of the whole, with ``lines_written``."""
    from stream.tools.burden.influx import write_lines

    policy = policy or AckPolicy()
    written = 0

    def done(run: SimRun) -> None:
        nonlocal written
        written += write_lines(client, bucket, org, run.lines)
        run.lines = []
        if on_done is not None:
            on_done(run)

    runs = simulate(specs, workers=workers, policy=policy, models_dir=models_dir, on_done=done)
    description = describe(specs, runs, policy)
    description["lines_written"] = written
    description["bucket"] = bucket
    return description
