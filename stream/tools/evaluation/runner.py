"""Scenarios × seeds through the worker's own code, in memory, in worker processes.

Owns running the evaluation: for each (scenario, seed) a :class:`producers.fleet.Fleet`
feeds a fresh :class:`stream.worker.pipeline.Pipeline` with the shipped models exactly the
way the worker does (enrolments; one batch per second of frames with ``now`` = frame time
+ 1 s; a timer tick after each; the tracker state saved once the output is "durable"),
and the run's alarms and ground-truth labels come back as a :class:`~.metrics.Run`. Runs
are independent tasks of a process pool; a run depends on its (scenario, seed, devices,
seconds, faults) only, so results are the same whatever the pool does.

Settings are :func:`stream.config.load_settings` with a fixed pseudonym key and, unless a
models directory is given, an empty registry (the shipped defaults in ``models/default``):
thresholds and timings are the worker's defaults, or whatever ``VITALSTREAM_...``
variables override them (child processes inherit the environment).
"""

from __future__ import annotations

import math
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producers.scenario import load_scenario, shipped_scenarios
from stream.config import Settings, load_settings
from stream.records import ALERT_KINDS
from stream.tools.evaluation.matching import (
    LIMIT_EVENTS,
    KindTiming,
    Label,
    Timings,
    first_crossing,
    triggered_alarms,
)
from stream.tools.evaluation.metrics import Run

START = 1_700_000_000.0  # epoch of every run's second 0 (fixed: runs are reproducible)
PSEUDONYM_KEY = "alarm-quality-evaluation"
DEFAULT_SECONDS = 600
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class RunSpec:
    """One task: a scenario (shipped name or YAML path) at one seed."""

    scenario: str
    seed: int
    devices: int
    seconds: int
    faults: bool = True


def scenario_names(choice: str) -> list[str]:
    """``all`` → every shipped scenario; otherwise the one named (checked now, so a typo
    fails before any run starts)."""
    if choice == "all":
        return shipped_scenarios()
    load_scenario(choice)  # raises ScenarioError naming the problem
    return [choice]


def plan(
    scenarios: Sequence[str],
    seeds: int,
    *,
    seed_start: int = 0,
    devices: int | None = None,
    seconds: int = DEFAULT_SECONDS,
    faults: bool = True,
) -> list[RunSpec]:
    """Every (scenario, seed) task. A scenario runs on ``devices`` devices but never fewer
    than the patients it lists (extra devices are the simulator's quiet patients)."""
    if seeds < 1 or seconds < 1:
        raise ValueError("need at least one seed and one second")
    specs = []
    for name in scenarios:
        listed = len(load_scenario(name).patients)
        count = max(devices or 0, listed, 1)
        specs += [
            RunSpec(name, seed, count, seconds, faults)
            for seed in range(seed_start, seed_start + seeds)
        ]
    return specs


def evaluation_settings(models_dir: str | Path) -> Settings:
    """The worker's settings for an in-memory run (models from ``models_dir``; an empty or
    missing directory means the shipped defaults)."""
    return load_settings(pseudonym_key=PSEUDONYM_KEY, models={"directory": str(models_dir)})


def timings_from_settings(settings: Settings) -> Timings:
    """Each alert kind's designed delay (onset delay, a fall's inactivity wait, and for
    ``device_silent`` the silence timeout it first waits out) and resolve delay."""
    rules = settings.rules

    def timing(kind: str) -> KindTiming:
        silence = settings.stream.signal_loss_s if kind == "device_silent" else 0.0
        return KindTiming(rules.designed_delay_s(kind) + silence, rules.timing_of(kind).resolve_s)

    default = rules.default_timing
    return Timings(
        {kind: timing(kind) for kind in sorted(set(ALERT_KINDS) | set(rules.timing))},
        KindTiming(default.onset_s, default.resolve_s),
    )


def limit_crossings(
    labels: Sequence[Label],
    device_ids: Sequence[str],
    times: Sequence[float],
    truth: Sequence[Mapping[str, Any]],
    settings: Settings,
) -> list[Label]:
    """``labels`` with ``crossed`` set for the events of :data:`LIMIT_EVENTS`: when the
    device's true vital (``truth[i][vital][device]`` at ``times[i]``) first reached the
    worker's alarm limit within the event. The temperature limit applies to the skin
    reading the way the rules read it (``skin_temp_offset_c`` added)."""
    rules = settings.rules
    column = {device_id: i for i, device_id in enumerate(device_ids)}
    out = []
    for label in labels:
        spec = LIMIT_EVENTS.get(label.event)
        if spec is not None and label.device_id in column:
            vital, rising, limit_name = spec
            limit = float(getattr(rules, limit_name))
            if vital == "temp":
                limit -= rules.skin_temp_offset_c
            row = column[label.device_id]
            values = [float(state[vital][row]) if vital in state else math.nan for state in truth]
            crossed = first_crossing(times, values, limit, rising, label.start, label.end)
            label = label._replace(crossed=crossed)
        out.append(label)
    return out


def drive(
    pipeline: Any,
    fleet: Any,
    seconds: int,
    start: float,
    take: Callable[[Any], None],
    on_tick: Callable[[Any], None] | None = None,
) -> None:
    """Feed ``fleet`` through ``pipeline`` for ``seconds`` the way the worker does: its
    enrolments at ``start``, then one batch of frames a second (keys spread over three
    partitions, ``now`` = frame time + 1 s) and a timer tick half a second after it.
    Every output goes to ``take``, which saves it (its state is then "durable") and keeps
    what it needs; ``on_tick`` sees each fleet tick before its batch is processed. The
    evaluation, the simulated week and the actionability training all drive runs so."""
    from stream.worker.ingest import RawRecord

    offset = 0
    for device_id, payload in fleet.enrolments():
        offset += 1
        take(pipeline.enrol(RawRecord(device_id.encode(), payload, 0, offset), now=start))
    for _ in range(seconds):
        tick = fleet.tick()
        if on_tick is not None:
            on_tick(tick)
        records = []
        for device_id, payload in tick.messages:
            offset += 1
            records.append(RawRecord(device_id.encode(), payload, offset % 3, offset))
        take(pipeline.process(records, now=tick.t + 1.0))
        take(pipeline.tick(now=tick.t + 1.5))


def run_one(spec: RunSpec, models_dir: str | None = None) -> Run:
    """One scenario at one seed through a fresh pipeline, the way the worker drives it."""
    from producers.fleet import Fleet
    from stream.scoring.scorer import Scorer
    from stream.worker.pipeline import Pipeline

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitalstream-evaluate-") as tmp:
        settings = evaluation_settings(models_dir or Path(tmp) / "registry")
        scorer = Scorer.from_registry(settings)
        pipeline = Pipeline(settings, scorer, worker="evaluate")
    fleet = Fleet(
        load_scenario(spec.scenario), spec.devices, seed=spec.seed, start=START,
        faults=spec.faults,
    )  # fmt: skip
    alerts: list[Any] = []
    truth_t: list[float] = []
    truth: list[dict[str, Any]] = []

    def take(output: Any) -> None:
        pipeline.save(output)
        alerts.extend(output.alerts)

    def sample_truth(tick: Any) -> None:
        truth_t.append(tick.t + fleet.frame_s)  # the body's state at the frame's end
        truth.append(fleet.true_vitals())

    drive(pipeline, fleet, spec.seconds, START, take, sample_truth)
    alarms, repeats = triggered_alarms(alerts)
    labels = [Label.from_fleet(label) for label in fleet.labels(spec.seconds)]
    return Run(
        scenario=spec.scenario,
        seed=spec.seed,
        devices=spec.devices,
        seconds=spec.seconds,
        start=START,
        labels=limit_crossings(labels, fleet.device_ids, truth_t, truth, settings),
        alarms=alarms,
        duplicate_triggers=repeats,
        wall_s=round(time.perf_counter() - began, 2),
        versions=scorer.versions(),
    )


def in_processes(
    task: Callable[..., Any],
    specs: Sequence[Any],
    *args: Any,
    workers: int = DEFAULT_WORKERS,
    on_done: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``task(spec, *args)`` for every spec, ``workers`` at a time in fresh (spawned)
    processes, or here when ``workers`` is 1; ``on_done`` sees each result as it completes,
    and the results come back in ``specs`` order. The evaluation, the simulated week and
    the actionability training run their runs so."""
    if workers <= 1 or len(specs) <= 1:
        results = []
        for spec in specs:
            results.append(task(spec, *args))
            if on_done is not None:
                on_done(results[-1])
        return results
    from stream.signal.features import warm_up

    warm_up()  # compile (or load) the kernels once, before the workers all want them
    done: dict[int, Any] = {}
    # Spawned, not forked: a fork of a process that already runs onnxruntime's or numba's
    # threads (a test session, say) can deadlock in the child.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(specs)), mp_context=context) as pool:
        futures = {pool.submit(task, spec, *args): i for i, spec in enumerate(specs)}
        for future in as_completed(futures):
            done[futures[future]] = result = future.result()
            if on_done is not None:
                on_done(result)
    return [done[i] for i in range(len(specs))]


def run_all(
    specs: Sequence[RunSpec],
    *,
    workers: int = DEFAULT_WORKERS,
    models_dir: str | None = None,
    on_done: Callable[[Run], None] | None = None,
) -> list[Run]:
    """Every task, ``workers`` at a time in fresh (spawned) processes, or here when
    ``workers`` is 1; the runs come back in ``specs`` order."""
    return in_processes(run_one, specs, models_dir, workers=workers, on_done=on_done)


def describe(
    specs: Sequence[RunSpec], runs: Sequence[Run], settings: Settings, wall_s: float, workers: int
) -> dict[str, Any]:
    """What was run and with which settings, for the JSON and the report's header."""
    timings = timings_from_settings(settings)
    return {
        "scenarios": {
            spec.scenario: {"devices": spec.devices, "seconds": spec.seconds} for spec in specs
        },
        "seeds": sorted({spec.seed for spec in specs}),
        "faults": all(spec.faults for spec in specs),
        "workers": workers,
        "wall_s": round(wall_s, 1),
        "run_wall_s": round(sum(run.wall_s for run in runs), 1),
        "models": runs[0].versions if runs else {},
        "signal_loss_s": settings.stream.signal_loss_s,
        "timings": {kind: t._asdict() for kind, t in timings.kinds.items()},
    }
