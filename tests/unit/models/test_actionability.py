"""Alarm actionability: the join of verdicts, training against baselines on held-out
patients, the suppression threshold, ONNX parity, the registry entry deployed in shadow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models import actionability as act
from models.adjudicated import TriggerRow, VerdictRow, join
from stream.config import load_settings
from stream.scoring import registry
from stream.scoring.actionability import ACTIONABLE, alert_rows
from stream.scoring.registry import ModelError
from tests.unit.models import synthetic_adjudications as synthetic

pytest.importorskip("skl2onnx")


@pytest.fixture(scope="module")
def rows():
    return synthetic.rows(synthetic.ward(patients=80, seed=1))


@pytest.fixture(scope="module")
def evaluation(rows):
    return act.evaluate(rows, folds=3, seed=7)


def test_join_keeps_acknowledged_alarms_with_a_verdict_and_counts_the_rest() -> None:
    trigger = TriggerRow("a1", 5_000_000, "w", "p1", "d1", "fall", "high")
    verdict = VerdictRow("a1", 60.0, "w", "p1", "fall", "high", "not_actionable")
    joined = join(
        [
            verdict,
            verdict._replace(t=90.0, verdict="actionable"),  # a later verdict counts
            verdict._replace(alert_id="a2", verdict="none"),  # acknowledged without one
            verdict._replace(alert_id="a3"),  # its alarm was raised before the range
            verdict._replace(alert_id="a4"),  # raised by no window (device_silent)
        ],
        [
            trigger,
            trigger._replace(alert_id="a2"),
            trigger._replace(alert_id="a4", t_us=9_000_000),
            trigger._replace(alert_id="a5"),  # nobody acknowledged it
        ],
        {("d1", 5_000_000): {"impact_g": 3.0, "spo2": math.nan}},
    )
    assert joined.alert_ids == ["a1"] and joined.verdicts == ["actionable"]
    assert joined.features == [{"impact_g": 3.0}]  # missing is absent, as in InfluxDB
    assert joined.left_out == {
        "never_acknowledged": 1, "no_verdict": 1, "no_window_features": 1,
        "trigger_not_found": 1,
    }  # fmt: skip
    assert joined.y.tolist() == [1]


def test_splits_are_patient_wise(rows, evaluation) -> None:
    patients = np.asarray(rows.patients)
    assert not set(patients[evaluation.train]) & set(patients[evaluation.test])
    assert 0.15 < len(evaluation.test) / len(rows) < 0.35
    for train, val in act.patient_folds(rows.y, rows.groups, 3, 7):
        assert not set(patients[train]) & set(patients[val])


def test_the_model_beats_the_baselines_on_held_out_patients(evaluation) -> None:
    """Every kind has actionable alarms, so kind and priority alone can suppress nothing
    at 99 % recall; the window features separate them within a kind."""
    model = evaluation.held_out["model"]
    kind = evaluation.held_out["kind + priority"]
    always = evaluation.held_out["always actionable"]
    assert model["auroc"] > 0.95 and model["auroc"] > kind["auroc"] + 0.1
    assert model["suppressed_share_of_non_actionable"] >= 0.6
    assert model["suppressed_share_of_non_actionable"] > (
        kind["suppressed_share_of_non_actionable"] + 0.4
    )
    assert model["recall"] >= 0.95  # chosen for 0.99 on training patients, applied here
    assert always["non_actionable_suppressed"] == 0 and always["recall"] == 1.0


def test_the_threshold_comes_from_training_folds_and_keeps_their_recall(rows, evaluation) -> None:
    threshold = evaluation.thresholds["model"]
    assert evaluation.held_out["model"]["threshold"] == threshold
    # Recomputing it on the held-out scores would be cheating; it is not that number.
    y_test, p_test = evaluation.y_test, evaluation.test_scores["model"]
    assert 0.0 < threshold < 1.0
    assert (
        act.at_threshold(y_test, p_test, threshold)["recall"]
        == (evaluation.held_out["model"]["recall"])
    )


def test_recall_threshold_keeps_the_target_share_of_positives() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    threshold = act.recall_threshold(y, p, 0.99)
    kept = (p >= threshold)[y == 1].mean()
    assert kept >= 0.99
    assert (p >= np.nextafter(threshold, 2))[y == 1].mean() < 0.99  # the highest such


def test_onnx_export_matches_scikit_learn(tmp_path: Path, rows, evaluation) -> None:
    x = registry.normalize(rows.x(evaluation.channels), evaluation.stats)
    diff = act.export(evaluation.model, tmp_path / "m.onnx", x)
    assert diff <= act.PARITY_TOLERANCE


def test_a_parity_failure_removes_the_file(tmp_path: Path, rows, evaluation, monkeypatch) -> None:
    x = registry.normalize(rows.x(evaluation.channels), evaluation.stats)
    original = evaluation.model.predict_proba
    monkeypatch.setattr(evaluation.model, "predict_proba", lambda v: original(v)[:, ::-1])
    with pytest.raises(act.ParityError):
        act.export(evaluation.model, tmp_path / "m.onnx", x)
    assert not (tmp_path / "m.onnx").exists()


def test_run_registers_a_shadow_only_model_that_scores_as_trained(tmp_path: Path, rows) -> None:
    settings = load_settings(models={"directory": tmp_path / "registry"})
    target = act.run(
        rows,
        settings.models.directory,
        source="synthetic",
        folds=3,
        version="1",
        report_dir=tmp_path / "docs",
    )
    model = registry.load(target)
    card = model.card
    assert card.scores_alerts and card.classes == [ACTIONABLE]
    assert card.inputs[0].shape == [-1, len(card.inputs[0].channels)]
    # The registry's own predict (the card's normalization, then ONNX) gives the trained
    # model's probabilities: the worker scores exactly what was evaluated.
    x = alert_rows(
        card.inputs[0].channels, list(zip(rows.features, rows.kinds, rows.priorities, strict=True))
    )
    stats = card.normalization["alert"]
    expected = _refit(rows, card).predict_proba(registry.normalize(x, stats))[:, 1]
    assert np.abs(model.predict(x)[ACTIONABLE] - expected).max() < 1e-5
    metrics = json.loads((target / "card.json").read_text())["metrics"]
    assert metrics["held_out_test"]["model"]["threshold"] == pytest.approx(
        card.thresholds[ACTIONABLE], abs=1e-4
    )
    for path in (target / "report.md", tmp_path / "docs" / "alarm-actionability.md"):
        assert "Held-out patients" in path.read_text()
    assert (tmp_path / "docs" / "alarm-actionability.png").read_bytes().startswith(b"\x89PNG")

    with pytest.raises(ModelError, match="shadow only"):
        registry.promote(act.NAME, "1", settings)
    rollout = registry.promote(act.NAME, "1", settings, shadow=True)
    assert rollout.shadow
    [listed] = [m for m in registry.list_models(settings) if m.name == act.NAME]
    assert listed.shadow and not listed.promoted


def _refit(rows, card):
    """The final model again (same data, same seed): scikit-learn is deterministic."""
    evaluation = act.evaluate(rows, folds=3, seed=7, channels=card.inputs[0].channels)
    return evaluation.model


def test_models_list_shows_it_in_shadow(tmp_path: Path, rows, monkeypatch) -> None:
    from typer.testing import CliRunner

    from stream.cli.main import app

    directory = tmp_path / "registry"
    monkeypatch.setenv("VITALSTREAM_MODELS__DIRECTORY", str(directory))
    act.run(rows, directory, source="synthetic", folds=2, version="7")
    runner = CliRunner()
    promoted = runner.invoke(app, ["models", "promote", act.NAME, "7", "--shadow", "--no-publish"])
    assert promoted.exit_code == 0, promoted.output
    refused = runner.invoke(app, ["models", "promote", act.NAME, "7", "--no-publish"])
    assert refused.exit_code != 0 and "shadow only" in refused.output
    listed = runner.invoke(app, ["models", "list", "--json"])
    [row] = [r for r in json.loads(listed.stdout) if r["name"] == act.NAME]
    assert row["shadow"] and not row["promoted"] and not row["in_use"]


def test_suppression_threshold_takes_the_middle_of_the_best_interval() -> None:
    y = np.array([1] * 200 + [0] * 50)
    p = np.concatenate([np.linspace(0.6, 1.0, 200), np.linspace(0.0, 0.2, 50)])
    highest = act.recall_threshold(y, p)
    threshold = act.suppression_threshold(y, p)
    assert threshold == pytest.approx((highest + p[p < highest].max()) / 2)
    # The same alarms suppressed as at the highest threshold, with a margin on both sides.
    assert np.array_equal(p < threshold, p < highest)
    assert act.at_threshold(y, p, threshold)["recall"] >= 0.99


def test_a_review_of_every_alarm_is_kept_apart_from_the_acknowledgements() -> None:
    from models.adjudicated import SimulatedRun, joined

    trigger = TriggerRow("a1", 5_000_000, "w", "p1", "d1", "tachycardia", "medium")
    run = SimulatedRun(
        "default", 0, 1, 60,
        verdicts=[],  # resolved before anyone came
        triggers=[trigger],
        features={("d1", 5_000_000): {"motion": 1.0}},
        outcomes={"alarms": 1},
        reviewed=[VerdictRow("a1", 5.0, "w", "p1", "tachycardia", "medium", "artefact")],
    )  # fmt: skip
    assert len(joined([run])) == 0 and joined([run]).left_out["never_acknowledged"] == 1
    assert joined([run], reviewed=True).verdicts == ["artefact"]


def test_a_simulated_run_keeps_the_features_the_worker_wrote_at_each_alarm() -> None:
    from models import adjudicated
    from stream.sinks.lines import to_ns

    [spec] = adjudicated.plan(["noisy_ambulatory"], 10, 120, start=1_700_000_000.0)
    run = adjudicated.simulate_run(spec, keep_lines=True)
    assert run.triggers and run.outcomes["alarms"] == len({t.alert_id for t in run.triggers})
    assert len(run.reviewed) == run.outcomes["alarms"]  # a verdict for every alarm
    written = {ln.split(" ")[0].split(",")[0] for ln in run.lines}
    assert {"vitals", "features", "quality", "alerts"} <= written
    for trigger in run.triggers:
        features = run.features[(trigger.device, trigger.t_us)]
        line = next(
            ln for ln in run.lines
            if ln.startswith("features,") and f"device={trigger.device}" in ln.split(" ")[0]
            and ln.endswith(f" {to_ns(trigger.t_us / 1e6)}")
        )  # fmt: skip
        assert "ecg_sqi=" not in line  # quality features go to their own measurement
        hr = features.get("hr_device")
        assert hr is None or not math.isfinite(hr) or f"hr_device={hr!r}" in line
