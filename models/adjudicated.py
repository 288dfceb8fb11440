"""Adjudicated alerts: what clinicians said of each alarm, with the window features it had.

Training data for ``vitalstream train alarm-actionability``. An acknowledgement carries a
verdict (``actionable``, ``not_actionable``, ``artefact``); the alert service writes it to
the ``adjudications`` measurement. One training row is one acknowledged alarm with a
verdict, joined by ``alert_id`` to the alarm's ``triggered`` point in ``alerts`` (its
device and time), and by (device, time) to the window features the worker wrote at that
same time (the ``features`` and ``quality`` measurements: the worker writes an alert and
the features of the window that raised it at the window's end). :func:`join` does that,
and counts what it leaves out:

- ``never_acknowledged``: alarms nobody acknowledged (their verdict is unknown; counting
  them as anything would be a guess), and ``no_verdict``: acknowledged without one;
- ``trigger_not_found``: a verdict whose alarm was raised before the range read;
- ``no_window_features``: an alarm no window raised (``device_silent`` comes from the
  silence timer, with no features): the shadow model does not score those either.

Two sources give the same rows: :func:`read_influx` (``--from-influx``) and
:func:`simulate` (a simulated week in memory: the burden simulation's runs,
:mod:`stream.tools.burden.simulate`, each scenario and seed through the worker's own
pipeline, the scripted adjudicator, the alert service's book, which refuses to acknowledge
an alarm already resolved; here the window features are kept too). :func:`simulate_into`
writes such a week into an InfluxDB bucket, features included, as production writes it.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from stream.config import Settings
from stream.scoring.actionability import ACTIONABLE, alert_rows

# The measurements the simulation keeps from the worker's output: the burden report's
# (vitals, alerts) and the window features the actionability model learns from.
KEPT_MEASUREMENTS = ("vitals", "alerts", "features", "quality")
FEATURE_MEASUREMENTS = ("features", "quality")
# An acknowledgement comes at most this long after its alarm (the adjudicator's cap is
# 1 h; a real ward's late acknowledgements fall inside this too).
TRIGGER_LOOKBACK_S = 2 * 3600.0
# Features are read for this many alarms per Flux query (a union of point reads).
FEATURE_QUERY_BATCH = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: float) -> int:
    """Epoch seconds to integer microseconds: the key alerts and features meet on (the
    worker writes both at the window's end, rounded to the microsecond).

    >>> to_us(1_700_000_000.25)
    1700000000250000
    """
    return round(t * 1_000_000)


def datetime_us(value: datetime) -> int:
    """An InfluxDB record's time as integer microseconds, exactly (no float on the way)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


class VerdictRow(NamedTuple):
    """One acknowledgement (an ``adjudications`` point)."""

    alert_id: str
    t: float
    ward: str
    patient: str
    kind: str
    priority: str
    verdict: str  # actionable | not_actionable | artefact | none


class TriggerRow(NamedTuple):
    """One alarm's ``triggered`` event (an ``alerts`` point); ``t_us`` its time."""

    alert_id: str
    t_us: int
    ward: str
    patient: str
    device: str
    kind: str
    priority: str


# (device, time in µs) -> the window's features (both measurements' fields; missing = absent)
FeatureIndex = dict[tuple[str, int], dict[str, float]]


@dataclass
class AdjudicatedAlerts:
    """Acknowledged alarms with a verdict and their window features, one per row."""

    alert_ids: list[str]
    patients: list[str]
    kinds: list[str]
    priorities: list[str]
    verdicts: list[str]
    features: list[dict[str, float]]
    left_out: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.alert_ids)

    @property
    def y(self) -> np.ndarray:
        """1 for ``actionable``, 0 for ``not_actionable`` and ``artefact``."""
        return np.asarray([v == ACTIONABLE for v in self.verdicts], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.asarray(self.patients)

    def x(self, channels: Sequence[str]) -> np.ndarray:
        """Model input rows ``[alerts, channels]`` (``actionability.alert_rows``)."""
        return alert_rows(
            channels, list(zip(self.features, self.kinds, self.priorities, strict=True))
        )

    def subset(self, index: Iterable[int]) -> AdjudicatedAlerts:
        rows = list(index)
        return AdjudicatedAlerts(
            [self.alert_ids[i] for i in rows],
            [self.patients[i] for i in rows],
            [self.kinds[i] for i in rows],
            [self.priorities[i] for i in rows],
            [self.verdicts[i] for i in rows],
            [self.features[i] for i in rows],
            dict(self.left_out),
        )

    def sha256(self) -> str:
        """Identifies exactly this data in the model card (order included)."""
        digest = hashlib.sha256()
        for i in range(len(self)):
            values = sorted(self.features[i].items())
            digest.update(
                repr((self.alert_ids[i], self.patients[i], self.kinds[i], self.priorities[i],
                      self.verdicts[i], values)).encode()
            )  # fmt: skip
        return digest.hexdigest()

    def describe(self) -> str:
        counts = Counter(self.verdicts)
        shares = ", ".join(f"{name} {counts[name]}" for name in sorted(counts))
        return (
            f"{len(self)} acknowledged alarms with a verdict from "
            f"{len(set(self.patients))} patients ({shares})"
        )


def join(
    verdicts: Iterable[VerdictRow], triggers: Iterable[TriggerRow], features: FeatureIndex
) -> AdjudicatedAlerts:
    """Training rows from acknowledgements, alarms and window features (see module doc).

    An alarm acknowledged more than once counts with its latest verdict. Rows come in
    the alarms' time order.

    >>> t = TriggerRow("a1", 10_000_000, "w", "p1", "d1", "tachycardia", "medium")
    >>> v = VerdictRow("a1", 200.0, "w", "p1", "tachycardia", "medium", "artefact")
    >>> rows = join([v], [t, t._replace(alert_id="a2")], {("d1", 10_000_000): {"motion": 1.0}})
    >>> rows.verdicts, rows.features, rows.left_out["never_acknowledged"]
    (['artefact'], [{'motion': 1.0}], 1)
    """
    latest: dict[str, VerdictRow] = {}
    for row in sorted(verdicts, key=lambda r: r.t):
        latest[row.alert_id] = row
    alarms: dict[str, TriggerRow] = {}
    for trigger in sorted(triggers, key=lambda r: r.t_us):
        alarms.setdefault(trigger.alert_id, trigger)
    left_out: Counter[str] = Counter()
    left_out["never_acknowledged"] = sum(alert_id not in latest for alert_id in alarms)
    chosen: list[tuple[TriggerRow, VerdictRow, dict[str, float]]] = []
    for alert_id, verdict in latest.items():
        trigger = alarms.get(alert_id)
        if verdict.verdict not in ("actionable", "not_actionable", "artefact"):
            left_out["no_verdict"] += 1
        elif trigger is None:
            left_out["trigger_not_found"] += 1
        elif (window := features.get((trigger.device, trigger.t_us))) is None:
            left_out["no_window_features"] += 1
        else:
            # Missing is absent, as in InfluxDB (which keeps no non-finite field).
            finite = {k: float(v) for k, v in window.items() if math.isfinite(v)}
            chosen.append((trigger, verdict, finite))
    chosen.sort(key=lambda item: (item[0].t_us, item[0].alert_id))
    return AdjudicatedAlerts(
        alert_ids=[t.alert_id for t, _, _ in chosen],
        patients=[t.patient for t, _, _ in chosen],
        kinds=[t.kind for t, _, _ in chosen],
        priorities=[t.priority for t, _, _ in chosen],
        verdicts=[v.verdict for _, v, _ in chosen],
        features=[w for _, _, w in chosen],
        left_out={key: int(value) for key, value in sorted(left_out.items())},
    )


def concatenate(parts: Sequence[AdjudicatedAlerts]) -> AdjudicatedAlerts:
    """Rows of several sources (runs) one after the other; left-out counts added."""
    left_out: Counter[str] = Counter()
    out = AdjudicatedAlerts([], [], [], [], [], [])
    for part in parts:
        out.alert_ids += part.alert_ids
        out.patients += part.patients
        out.kinds += part.kinds
        out.priorities += part.priorities
        out.verdicts += part.verdicts
        out.features += part.features
        left_out.update(part.left_out)
    out.left_out = dict(sorted(left_out.items()))
    return out


# -- InfluxDB --------------------------------------------------------------------------


def _verdicts_flux(bucket: str, start: str) -> str:
    from stream.tools.burden.influx import flux_string

    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {start})\n"
        '  |> filter(fn: (r) => r._measurement == "adjudications" and r._field == "alert_id")\n'
        '  |> keep(columns: ["_time", "_value", "ward", "patient", "kind", "priority", '
        '"verdict"])\n'
        "  |> group()"
    )


def _triggers_flux(bucket: str, start: float, stop: float) -> str:
    from stream.tools.burden.influx import flux_string, flux_time

    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {flux_time(start)}, stop: {flux_time(stop)})\n"
        '  |> filter(fn: (r) => r._measurement == "alerts" and r._field == "alert_id" '
        'and r.event == "triggered")\n'
        '  |> keep(columns: ["_time", "_value", "ward", "patient", "device", "kind", '
        '"priority"])\n'
        "  |> group()"
    )


def _features_flux(bucket: str, points: Sequence[tuple[str, int]]) -> str:
    """One query for the feature points of many alarms: a union of point reads, each
    ``range`` a microsecond wide (pushed down to storage)."""
    from stream.tools.burden.influx import flux_string

    measurements = " or ".join(f'r._measurement == "{m}"' for m in FEATURE_MEASUREMENTS)
    sources = []
    for i, (device, t_us) in enumerate(points):
        start = _EPOCH + timedelta(microseconds=t_us)
        stop = start + timedelta(microseconds=1)
        sources.append(
            f"t{i} = from(bucket: {flux_string(bucket)})\n"
            f"  |> range(start: {start.isoformat().replace('+00:00', 'Z')}, "
            f"stop: {stop.isoformat().replace('+00:00', 'Z')})\n"
            f"  |> filter(fn: (r) => ({measurements}) and r.device == {flux_string(device)})\n"
            '  |> keep(columns: ["_time", "device", "_field", "_value"])\n'
        )
    names = ", ".join(f"t{i}" for i in range(len(points)))
    return "\n".join(sources) + f"\nunion(tables: [{names}]) |> group()"


def read_influx(
    client: Any, bucket: str, org: str, since: str, *, now: float | None = None
) -> AdjudicatedAlerts:
    """Adjudicated alarms of ``bucket`` acknowledged in the relative range ``since``
    (e.g. ``-30d``), joined as :func:`join` does."""
    from models.influx import RANGE_PATTERN

    if not RANGE_PATTERN.match(since):
        raise ValueError(f"range must be a relative Flux duration such as -30d, got {since!r}")
    query = client.query_api()

    def records(flux: str) -> list[dict[str, Any]]:
        return [r.values for table in query.query(flux, org=org) for r in table.records]

    verdicts = [
        VerdictRow(
            str(r["_value"]), r["_time"].timestamp(), r["ward"], r["patient"], r["kind"],
            r["priority"], r.get("verdict") or "none",
        )
        for r in records(_verdicts_flux(bucket, since))
    ]  # fmt: skip
    if not verdicts:
        return join([], [], {})
    stop = (time.time() if now is None else now) + 1.0
    start = min(v.t for v in verdicts) - TRIGGER_LOOKBACK_S
    triggers = [
        TriggerRow(
            str(r["_value"]), datetime_us(r["_time"]), r["ward"], r["patient"], r["device"],
            r["kind"], r["priority"],
        )
        for r in records(_triggers_flux(bucket, start, max(stop, start + 1.0)))
    ]  # fmt: skip
    wanted = {v.alert_id for v in verdicts}
    points = sorted({(t.device, t.t_us) for t in triggers if t.alert_id in wanted})
    features: FeatureIndex = {}
    for i in range(0, len(points), FEATURE_QUERY_BATCH):
        for r in records(_features_flux(bucket, points[i : i + FEATURE_QUERY_BATCH])):
            key = (r["device"], datetime_us(r["_time"]))
            features.setdefault(key, {})[str(r["_field"])] = float(r["_value"])
    return join(verdicts, triggers, features)


def read_settings_influx(settings: Settings, since: str, bucket: str | None = None):
    """:func:`read_influx` on the configured server (``bucket``: default the stream's)."""
    from stream.tools.burden.influx import influx_client

    with influx_client(settings) as client:
        return read_influx(client, bucket or settings.influx.bucket, settings.influx.org, since)


# -- the simulated week ----------------------------------------------------------------


@dataclass
class SimulatedRun:
    """One run's adjudicated alarms (rows for :func:`join`) and, when asked, its lines."""

    scenario: str
    seed: int
    devices: int
    seconds: int
    verdicts: list[VerdictRow]
    triggers: list[TriggerRow]
    features: FeatureIndex
    outcomes: dict[str, int]
    lines: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    # The scripted verdict of *every* alarm, acknowledged or not (at its triggered time):
    # what a retrospective review of all alarms would say, for comparison only.
    reviewed: list[VerdictRow] = field(default_factory=list)


def _recording_pipeline(settings: Settings) -> Any:
    """The worker's pipeline, also remembering the features of each window that raised an
    alarm (the same dict the worker writes as that window's features)."""
    from stream.scoring.scorer import Scorer
    from stream.worker.pipeline import Pipeline

    class Recording(Pipeline):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.at_alarms: FeatureIndex = {}

        def evaluate_window(self, context, window, features, scores):  # type: ignore[override]
            alerts, lines = super().evaluate_window(context, window, features, scores)
            if any(a.event == "triggered" for a in alerts):
                self.at_alarms[(context.device_id, to_us(window.t_end))] = dict(features)
            return alerts, lines

    return Recording(settings, Scorer.from_registry(settings), worker="actionability-sim")


def simulate_run(spec: Any, keep_lines: bool = False, policy: Any = None) -> SimulatedRun:
    """One run of the week (a :class:`stream.tools.burden.simulate.SimRunSpec`): driven
    as the burden simulation drives it, adjudicated and acknowledged the same way."""
    from producers.fleet import Fleet
    from producers.scenario import load_scenario
    from stream.subscriptions.audit import audit_lines
    from stream.tools.adjudicator import adjudicate
    from stream.tools.burden.simulate import acknowledge_through_book, run_settings
    from stream.tools.evaluation.matching import Label, triggered_alarms
    from stream.tools.evaluation.runner import drive, timings_from_settings

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitalstream-actionability-") as tmp:
        settings = run_settings(spec, Path(tmp) / "registry")
        pipeline = _recording_pipeline(settings)
    fleet = Fleet(
        load_scenario(spec.scenario), spec.devices, seed=spec.seed, start=spec.start,
        faults=True,
    )  # fmt: skip
    events: list[Any] = []
    lines: list[str] = []

    def take(output: Any) -> None:
        pipeline.save(output)
        events.extend(output.alerts)
        if keep_lines:
            lines.extend(t for t in output.lines if t.split(",", 1)[0] in KEPT_MEASUREMENTS)

    drive(pipeline, fleet, spec.seconds, spec.start, take)
    labels = [Label.from_fleet(label) for label in fleet.labels(spec.seconds)]
    alarms, _ = triggered_alarms(events)
    rng = np.random.default_rng([spec.seed, spec.index])
    adjudications = adjudicate(alarms, labels, timings_from_settings(settings), rng, policy)
    lifecycle, outcomes = acknowledge_through_book(
        events, adjudications, settings.alerts_api.escalation_after_s
    )
    verdicts = []
    for alert, triggered_at in lifecycle:
        if keep_lines:
            lines += audit_lines(alert, triggered_at)
        if alert.event == "acknowledged":
            verdicts.append(
                VerdictRow(
                    alert.alert_id, alert.t_event, alert.ward, alert.patient, alert.kind,
                    alert.priority, alert.verdict or "none",
                )
            )  # fmt: skip
    triggers = [
        TriggerRow(a.alert_id, to_us(a.t_event), a.ward, a.patient, a.device_id, a.kind, a.priority)
        for a in events
        if a.event == "triggered"
    ]
    first = {t.alert_id: t for t in reversed(triggers)}
    reviewed = [
        VerdictRow(j.alert_id, t.t_us / 1e6, t.ward, t.patient, t.kind, t.priority, str(j.verdict))
        for j in adjudications
        if (t := first.get(j.alert_id)) is not None
    ]
    return SimulatedRun(
        scenario=spec.scenario,
        seed=spec.seed,
        devices=spec.devices,
        seconds=spec.seconds,
        verdicts=verdicts,
        triggers=triggers,
        features=pipeline.at_alarms,
        outcomes={"alarms": len(alarms), **{k: int(v) for k, v in outcomes.items()}},
        lines=lines,
        wall_s=time.perf_counter() - began,
        reviewed=reviewed,
    )


# Scenarios of the simulated week: the shipped ones in which the system raises alarms
# (quiet_ward and arrhythmia_confounds raise none at the shipped settings: they would
# cost a third of the CPU and add no verdict).
SCENARIOS = ("default", "artefacts", "noisy_ambulatory", "deteriorating_patient")


def plan(
    scenarios: Sequence[str], patients: int, seconds: int, *, start: float, devices: int = 10,
    seed_start: int = 0, span_s: float = 7 * 86400.0,
) -> list[Any]:  # fmt: skip
    """Runs of ``devices`` patients each, scenarios interleaved, until ``patients``
    patients (rounded up to whole runs), spread over ``span_s`` from ``start``.

    >>> [(s.scenario, s.seed) for s in plan(["a", "b"], 30, 60, start=0.0)]
    [('a', 0), ('b', 0), ('a', 1)]
    """
    from stream.tools.burden.simulate import plan_week

    runs = max(1, -(-patients // devices))
    seeds = -(-runs // len(scenarios))
    specs = plan_week(
        scenarios, seeds, devices=devices, seconds=seconds, start=start, span_s=span_s,
        seed_start=seed_start,
    )  # fmt: skip
    return specs[:runs]


def run_all(
    specs: Sequence[Any],
    *,
    workers: int = 2,
    keep_lines: bool = False,
    on_done: Callable[[SimulatedRun], None] | None = None,
) -> list[SimulatedRun]:
    """Every run, ``workers`` at a time in spawned processes (here when 1), in ``specs``
    order; ``on_done`` sees each as it completes (to write its lines and drop them)."""
    from stream.tools.evaluation.runner import in_processes

    return in_processes(simulate_run, specs, keep_lines, workers=workers, on_done=on_done)


def joined(runs: Sequence[SimulatedRun], reviewed: bool = False) -> AdjudicatedAlerts:
    """The runs' rows, each run joined on its own (its alarms, its features); with
    ``reviewed``, every alarm with the verdict a review would give it (a comparison of
    what learning from acknowledgements misses, not what production can see)."""
    return concatenate(
        [join(r.reviewed if reviewed else r.verdicts, r.triggers, r.features) for r in runs]
    )


def describe(runs: Sequence[SimulatedRun]) -> dict[str, Any]:
    """What was simulated, for the model card and the report."""
    totals: Counter[str] = Counter()
    for run in runs:
        totals.update(run.outcomes)
    patient_s = sum(run.devices * run.seconds for run in runs)
    return {
        "runs": len(runs),
        "scenarios": sorted({run.scenario for run in runs}),
        "seeds": sorted({run.seed for run in runs}),
        "patients": sum(run.devices for run in runs),
        "patient_hours": round(patient_s / 3600.0, 1),
        "alarms": int(totals["alarms"]),
        "acknowledged": int(totals["acknowledged"]),
        "resolved_before_acknowledgement": int(totals["resolved_first"]),
        "never_acknowledged": int(totals["never"]),
        "run_wall_s": round(sum(run.wall_s for run in runs), 1),
    }


def simulate(specs: Sequence[Any], workers: int = 2, on_done: Callable | None = None):
    """A simulated week in memory: (rows, description)."""
    runs = run_all(specs, workers=workers, on_done=on_done)
    return joined(runs), describe(runs)


def simulate_into(
    client: Any,
    bucket: str,
    org: str,
    specs: Sequence[Any],
    *,
    workers: int = 2,
    on_done: Callable[[SimulatedRun], None] | None = None,
) -> dict[str, Any]:
    """Simulate and write every run's lines (vitals, features, quality, alerts,
    adjudications) into ``bucket`` as each completes; the description, with
    ``lines_written``."""
    from stream.tools.burden.influx import write_lines

    written = 0

    def done(run: SimulatedRun) -> None:
        nonlocal written
        written += write_lines(client, bucket, org, run.lines)
        run.lines = []
        if on_done is not None:
            on_done(run)

    runs = run_all(specs, workers=workers, keep_lines=True, on_done=done)
    description = describe(runs)
    description.update(lines_written=written, bucket=bucket)
    return description


def verdict_counts(rows: AdjudicatedAlerts) -> Mapping[str, Mapping[str, int]]:
    """Verdicts per alert kind, for the report."""
    out: dict[str, Counter[str]] = {}
    for kind, verdict in zip(rows.kinds, rows.verdicts, strict=True):
        out.setdefault(kind, Counter())[verdict] += 1
    return {kind: dict(counts) for kind, counts in sorted(out.items())}
