"""The quiet-window screen changes nothing the worker hands out, on simulated wards.

Labelled scenarios of the simulator (faults on, several seeds, per-patient overrides,
other SpO2 scales, NEWS2 off, manual observations) drive a :class:`Pipeline` the way the
worker does (:func:`stream.tools.evaluation.runner.drive`), twice: with the screen in
verification mode (``Pipeline.verify_screen``: every window it clears is also judged in
full on a copy of its tracker, which must raise nothing and reach the same state and
NEWS2, or the run fails with :class:`~stream.alerts.screen.ScreenMismatch`), and with the
screen off (every window judged in full, as before the screen). Everything the two hand
out (alerts, lines, tracker states, dead letters, held frames, counts) must be identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import stream.worker.pipeline as pipeline_module
from producers.fleet import Fleet
from producers.scenario import Scenario, load_scenario
from stream.alerts.screen import Screen
from stream.config import load_settings
from stream.records import Observations, Profile
from stream.scoring.scorer import Scorer
from stream.tools.evaluation.runner import START, drive
from stream.worker.pipeline import Pipeline

DEVICES = 10
SECONDS = 200
_TIMING_METRICS = frozenset({"batch_s", "scoring_s"})
# Per-patient profiles of the default scenario's patients, by patient id.
PROFILES = {
    "patient-001": Profile(thresholds={"tachycardia_bpm": 90.0}),  # tachycardia from 60 s
    "patient-002": Profile(thresholds={"bradycardia_bpm": 55.0, "hr_hysteresis_bpm": 1.0}),
    "patient-005": Profile(spo2_scale=2),  # desaturation from 60 s
    "patient-006": Profile(news2=False),  # fever from 30 s
    "patient-009": Profile(thresholds={"low_battery_pct": 70.0, "fever_c": 37.0}),
}
# Manual observations sent for a device at a second: (second, device index, observations).
OBSERVED = [
    (20, 2, Observations(on_oxygen=True, systolic_bp=100.0, consciousness="A")),
    (40, 7, Observations(core_temp=38.6)),  # fever from the core temperature
    (60, 9, Observations(on_oxygen=False, consciousness="V", core_temp=36.9)),
]


def with_profiles(scenario: Scenario) -> Scenario:
    patients = [
        p.model_copy(update={"profile": PROFILES.get(p.id, p.profile)}) for p in scenario.patients
    ]
    return scenario.model_copy(update={"patients": patients})


CASES = [
    pytest.param(with_profiles(load_scenario("default")), 3, id="default-profiles-3"),
    pytest.param(with_profiles(load_scenario("default")), 11, id="default-profiles-11"),
    pytest.param(load_scenario("arrhythmia_confounds"), 5, id="arrhythmia_confounds-5"),
    pytest.param(load_scenario("artefacts"), 7, id="artefacts-7"),
    pytest.param(load_scenario("noisy_ambulatory"), 2, id="noisy_ambulatory-2"),
]


def _record(output: Any) -> bytes:
    counts = asdict(output.metrics) if output.metrics is not None else {}
    return orjson.dumps(
        {
            "alerts": [orjson.loads(a.to_json()) for a in output.alerts],
            "lines": output.lines,
            "deadletters": [orjson.loads(d.to_json()) for _, d in output.deadletters],
            "state": output.state,
            "held": [list(p) for p in output.held],
            "unheld": [list(p) for p in output.unheld],
            "metrics": {k: v for k, v in counts.items() if k not in _TIMING_METRICS},
        },
        option=orjson.OPT_SORT_KEYS,
    )


@contextmanager
def screen_off() -> Iterator[None]:
    """The pipeline with a screen that clears nothing: every window judged in full."""
    real = pipeline_module.screen

    def nothing_quiet(*args: Any, **kwargs: Any) -> Screen:
        found = real(*args, **kwargs)
        return replace(found, quiet=np.zeros_like(found.quiet))

    pipeline_module.screen = nothing_quiet
    try:
        yield
    finally:
        pipeline_module.screen = real


def run(scenario: Scenario, seed: int, tmp: Path, verify: bool) -> tuple[list[bytes], int, int]:
    """The run's outputs, and how many windows it had and the screen cleared."""
    settings = load_settings(
        pseudonym_key="screen-equivalence", models={"directory": str(tmp / "registry")}
    )
    pipeline = Pipeline(settings, Scorer.from_registry(settings), worker="screen")
    pipeline.verify_screen = verify
    fleet = Fleet(scenario, DEVICES, seed=seed, start=START, faults=True)
    outputs: list[bytes] = []
    seconds = iter(range(SECONDS))
    counted = [0, 0]
    real_quiet = pipeline._quiet_windows

    def quiet_windows(*args: Any) -> dict[int, bool]:
        judged = real_quiet(*args)
        counted[1] += len(judged)
        return judged

    pipeline._quiet_windows = quiet_windows  # type: ignore[method-assign]

    def take(output: Any) -> None:
        pipeline.save(output)
        counted[0] += output.metrics.windows if output.metrics is not None else 0
        outputs.append(_record(output))

    def observe(_tick: Any) -> None:
        second = next(seconds)
        for at, device, observations in OBSERVED:
            if second == at:
                pipeline.observations[fleet.device_ids[device]] = observations

    drive(pipeline, fleet, SECONDS, START, take, observe)
    return outputs, counted[0], counted[1]


@pytest.mark.parametrize(("scenario", "seed"), CASES)
def test_screened_run_hands_out_what_the_full_rules_do(
    scenario: Scenario, seed: int, tmp_path: Path
) -> None:
    screened, windows, cleared = run(scenario, seed, tmp_path, verify=True)
    with screen_off():
        full, _, none_cleared = run(scenario, seed, tmp_path, verify=False)
    assert len(screened) == len(full)
    for index, (got, want) in enumerate(zip(screened, full, strict=True)):
        if got != want:
            got_record, want_record = orjson.loads(got), orjson.loads(want)
            differing = sorted(k for k in want_record if got_record[k] != want_record[k])
            pytest.fail(f"call {index} differs in {differing}")
    # Not vacuous: the screen cleared many windows (these wards are busier than most:
    # every patient has events) and the others raised alerts; with it off, none.
    assert none_cleared == 0
    assert windows > DEVICES * (SECONDS - 20) and cleared > windows // 4, (windows, cleared)
    assert sum(len(orjson.loads(r)["alerts"]) for r in full) > 0
