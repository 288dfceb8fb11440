"""Running scenarios × seeds through the pipeline: the plan, the timings, a real short run."""

from __future__ import annotations

import numpy as np
import pytest

from producers.scenario import ScenarioError, load_scenario, shipped_scenarios
from stream.tools.evaluation.matching import Label
from stream.tools.evaluation.runner import (
    START,
    RunSpec,
    evaluation_settings,
    limit_crossings,
    plan,
    run_all,
    run_one,
    scenario_names,
    timings_from_settings,
)


def test_all_is_every_shipped_scenario_and_a_typo_fails_at_once() -> None:
    assert scenario_names("all") == shipped_scenarios()
    assert scenario_names("quiet_ward") == ["quiet_ward"]
    with pytest.raises(ScenarioError):
        scenario_names("no_such_ward")


def test_the_plan_is_every_scenario_at_every_seed_on_at_least_its_patients() -> None:
    listed = len(load_scenario("default").patients)
    specs = plan(["default", "quiet_ward"], 2, seed_start=5, seconds=120, faults=False)
    assert [(s.scenario, s.seed) for s in specs] == [
        ("default", 5), ("default", 6), ("quiet_ward", 5), ("quiet_ward", 6),
    ]  # fmt: skip
    assert specs[0] == RunSpec("default", 5, listed, 120, False)
    assert plan(["default"], 1, devices=2)[0].devices == listed  # never drops a patient
    assert plan(["default"], 1, devices=listed + 5)[0].devices == listed + 5


def test_timings_are_the_worker_settings(tmp_path) -> None:
    settings = evaluation_settings(tmp_path / "registry")
    timings = timings_from_settings(settings)
    rules = settings.rules
    assert timings.of("tachycardia").designed_delay_s == rules.timing_of("tachycardia").onset_s
    assert timings.of("fall").designed_delay_s == rules.designed_delay_s("fall")
    assert timings.of("device_silent").designed_delay_s == pytest.approx(
        rules.timing_of("device_silent").onset_s + settings.stream.signal_loss_s
    )
    assert timings.of("af").resolve_s == rules.timing_of("af").resolve_s
    assert timings.of("not_a_kind") == timings.default


def test_a_limit_event_is_alarmable_once_its_true_value_crosses_the_workers_limit(
    tmp_path,
) -> None:
    settings = evaluation_settings(tmp_path / "registry")
    settings = settings.model_copy(
        update={"rules": settings.rules.model_copy(update={"skin_temp_offset_c": 0.5})}
    )
    times = [10.0, 11.0, 12.0, 13.0, 14.0]
    temps = [37.0, 37.4, 37.7, 38.0, 38.3]  # skin: + 0.5 reaches 38.1 at 37.6
    truth = [{"temp": np.array([36.5, t]), "hr": np.array([70.0, 70.0])} for t in temps]
    labels = [
        Label("dev-2", "fever", 11.0, 14.0),
        Label("dev-1", "fever", 11.0, 14.0),  # never warm enough
        Label("dev-2", "tachycardia", 10.0, 14.0),  # the heart rate never reaches 120
        Label("dev-2", "af", 12.0, 14.0),  # no limit: from its start
    ]
    out = limit_crossings(labels, ["dev-1", "dev-2"], times, truth, settings)
    assert [label.crossed for label in out] == [12.0, None, None, None]
    assert [label.alarmable_from for label in out] == [12.0, 11.0, 10.0, 12.0]


@pytest.mark.slow
def test_a_short_run_is_the_same_for_the_same_seed_and_has_its_labels() -> None:
    spec = RunSpec("default", 3, 10, 75, True)  # tachycardia and desaturation start at 60 s
    first, second = run_all([spec, spec], workers=1)
    assert first.alarms == second.alarms
    assert first.labels == second.labels
    tachycardia = next(label for label in first.labels if label.event == "tachycardia")
    assert tachycardia._replace(crossed=None) == Label(
        "dev-0001", "tachycardia", START + 60, START + 75, 0.6
    )
    # The heart rate approaches its target with a 6 s time constant: it reaches the 120 bpm
    # limit a few seconds into the event, and the latency beyond the delay counts from there.
    assert tachycardia.crossed is not None
    assert START + 60 < tachycardia.crossed < START + 75
    fever = next(label for label in first.labels if label.event == "fever")
    assert fever.crossed is None or fever.start < fever.crossed <= fever.end
    assert first.patient_hours == pytest.approx(10 * 75 / 3600)
    assert set(first.versions) == {"deterioration", "rhythm"}  # the shipped models
    assert {a.kind for a in first.alarms} >= {"tachycardia"}
    assert all(a.alert_id for a in first.alarms)


@pytest.mark.slow
def test_runs_in_worker_processes_come_back_in_plan_order() -> None:
    specs = [RunSpec("quiet_ward", 1, 5, 20, True), RunSpec("quiet_ward", 2, 5, 20, True)]
    seen: list[int] = []
    runs = run_all(specs, workers=2, on_done=lambda run: seen.append(run.seed))
    assert [r.seed for r in runs] == [1, 2]
    assert sorted(seen) == [1, 2]
    here = run_one(specs[0])  # the same in a process as here
    assert (runs[0].alarms, runs[0].labels) == (here.alarms, here.labels)
