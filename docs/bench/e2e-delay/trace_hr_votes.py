"""Print, window by window, the three heart-rate estimates the alarm vote sees for chosen
devices of the ``bench e2e`` scenario, and the conditions each window raised.

A diagnostic for the e2e bench's heart-rate latency (README.md here), run in memory the
way ``vitalstream evaluate`` drives the pipeline (:func:`stream.tools.evaluation.runner.drive`):

    python docs/bench/e2e-delay/trace_hr_votes.py DEVICES WARMUP_S dev-0001,dev-0002

``DEVICES`` and ``WARMUP_S`` as given to ``bench e2e`` (the fleet's physiology depends on
its size, the events' starts on the warm-up). It wraps ``stream.alerts.rules.evaluate``
to record what it was given; nothing else changes. ``~`` marks a sustain-only condition.
"""

from __future__ import annotations

import math
import sys
import tempfile
from typing import Any

import stream.alerts.rules as rules
from producers.fleet import Fleet
from producers.scenario import Scenario
from stream.scoring.scorer import Scorer
from stream.tools.bench.e2e import bench_scenario
from stream.tools.evaluation import runner
from stream.worker.pipeline import Pipeline

MEASURED_S = 60  # the scenario's measured span; the trace stops 15 s before its end


def main(devices: int, warmup_s: float, watched: set[str]) -> None:
    seen: list[tuple[str, float, dict[str, float], Any]] = []
    evaluate = rules.evaluate

    def recording(ctx: Any, t: float, features: Any, *args: Any, **kwargs: Any) -> Any:
        judgement = evaluate(ctx, t, features, *args, **kwargs)
        if ctx.device_id in watched:
            seen.append((ctx.device_id, t - runner.START, dict(features), judgement))
        return judgement

    rules.evaluate = recording  # the pipeline calls it as rules.evaluate
    with tempfile.TemporaryDirectory() as tmp:
        settings = runner.evaluation_settings(tmp + "/registry")
        pipeline = Pipeline(settings, Scorer.from_registry(settings), worker="trace")
    scenario = Scenario.model_validate(bench_scenario(warmup_s, MEASURED_S))
    fleet = Fleet(scenario, devices, seed=1, start=runner.START, faults=True)
    alerts: list[Any] = []

    def take(output: Any) -> None:
        pipeline.save(output)
        alerts.extend(output.alerts)

    seconds = int(warmup_s + MEASURED_S - 15)
    runner.drive(pipeline, fleet, seconds, runner.START, take)
    labels = {label["device_id"]: label for label in fleet.labels(seconds)}
    for device in sorted(watched):
        label = labels.get(device, {})
        start = label.get("start", math.nan) - runner.START
        print(f"{device}: {label.get('event')} from t = {start:g} s")
        for device_id, t, f, (conditions, _) in seen:
            if device_id != device or t < start:
                continue
            raised = [c.kind + ("~" if c.sustain_only else "") for c in conditions]
            print(
                f"  t={t:5.1f} ecg={f.get('ecg_hr_recent_bpm', math.nan):6.1f} "
                f"ppg={f.get('ppg_hr_recent_bpm', math.nan):6.1f} "
                f"device={f.get('hr_device', math.nan):6.1f} ecg_sqi={f.get('ecg_sqi', 0):.2f} "
                f"ppg_sqi={f.get('ppg_sqi', 0):.2f} motion={f.get('motion', 0):.0f} {raised}"
            )
        triggered = [
            (a.kind, round(a.t_event - runner.START, 1))
            for a in alerts
            if a.device_id == device and a.event == "triggered"
        ]
        print(f"  triggered: {triggered}")


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), set(sys.argv[3].split(",")))
