"""The worker's shadow alert scoring: the same alerts with it as without it, plus one
``alert_actionability`` line per alarm a window raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.fleet import Fleet
from producers.scenario import Scenario
from stream.config import load_settings
from stream.scoring import registry
from stream.scoring.actionability import MEASUREMENT
from stream.scoring.scorer import Scorer
from stream.worker.ingest import RawRecord
from stream.worker.pipeline import Pipeline
from tests.unit.stream.scoring.test_actionability import NAME, store_alert_model

START = 1_700_000_000.0
SECONDS = 90


def ward() -> Fleet:
    scenario = Scenario.model_validate(
        {
            "name": "shadow",
            "ward": "ward-s",
            "patients": [
                {
                    "id": "MRN-TACHY",
                    "events": [{"event": "tachycardia", "start": 20, "end": 60, "severity": 0.8}],
                },
                {
                    "id": "MRN-WALK",
                    "events": [{"event": "walking", "start": 10, "end": 80, "severity": 1.0}],
                },
                {"id": "MRN-QUIET"},
            ],
        }
    )
    return Fleet(scenario, 3, seed=3, start=START, faults=True)


def run(settings) -> tuple[list, list[str]]:
    pipeline = Pipeline(settings, Scorer.from_registry(settings), worker="shadow-test")
    fleet = ward()
    alerts, lines, offset = [], [], 0
    for device_id, payload in fleet.enrolments():
        offset += 1
        pipeline.enrol(RawRecord(device_id.encode(), payload, 0, offset), now=START)
    for _ in range(SECONDS):
        tick = fleet.tick()
        records = []
        for device_id, payload in tick.messages:
            offset += 1
            records.append(RawRecord(device_id.encode(), payload, offset % 3, offset))
        for output in (
            pipeline.process(records, now=tick.t + 1.0),
            pipeline.tick(now=tick.t + 1.5),
        ):
            pipeline.save(output)
            alerts += output.alerts
            lines += output.lines
    return alerts, lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow")

    def settings(directory: Path):
        return load_settings(
            pseudonym_key="shadow-key",
            models={"directory": str(directory)},
            stream={"signal_loss_s": 20.0},
        )

    without = settings(root / "without")
    with_shadow = settings(root / "with")
    store_alert_model(with_shadow, root)
    registry.promote(NAME, "1", with_shadow, shadow=True)
    assert NAME in Scorer.from_registry(with_shadow).shadow
    return run(without), run(with_shadow)


def test_the_shadow_model_changes_no_alert(runs) -> None:
    (alerts, _), (shadow_alerts, _) = runs
    assert any(a.event == "triggered" for a in alerts)
    assert [a.model_dump() for a in shadow_alerts] == [a.model_dump() for a in alerts]


def test_it_adds_one_score_line_per_alarm_a_window_raised_and_nothing_else(runs) -> None:
    (alerts, lines), (_, shadow_lines) = runs
    scored = [ln for ln in shadow_lines if ln.startswith(f"{MEASUREMENT},")]
    assert [ln for ln in shadow_lines if not ln.startswith(f"{MEASUREMENT},")] == lines
    # Every alarm but the silence timer's (no window, no features) is scored, once, at
    # the time of its triggered point.
    windowed = [a for a in alerts if a.event == "triggered" and a.kind != "device_silent"]
    assert windowed
    assert len(scored) == len(windowed)
    for alert, text in zip(windowed, scored, strict=True):
        assert f'alert_id="{alert.alert_id}"' in text
        assert f"kind={alert.kind}," in text and f"patient={alert.patient}," in text
        assert text.endswith(f" {round(alert.t_event * 1e6) * 1000}")
        assert "model=alarm-actionability" in text and "version=1" in text
        assert "would_suppress=" in text and "threshold=0.2" in text
