"""Hand-made runs for the evaluation's metric and report tests."""

from __future__ import annotations

import pytest

from stream.tools.evaluation.metrics import Run, evaluate
from tests.unit.stream.tools.evaluation.sample import T0, TIMINGS, alarm, label


@pytest.fixture
def runs() -> list[Run]:
    """Two scenarios: ``ward`` (2 runs of 2 devices × 900 s = 1 patient-hour) with two
    tachycardia labels of which one is detected, a fall detected, a false high-priority
    bradycardia and a false poor-signal alarm; ``gym`` (1 device × 3600 s = 1 patient-hour)
    with a walking artefact, during which one poor-signal alarm (explained) and one
    tachycardia (false) are raised."""
    ward = [
        Run("ward", 0, 2, 900, T0,
            [label("dev-1", "tachycardia", 60, 240), label("dev-2", "tachycardia", 60, 240)],
            [alarm("dev-1", "tachycardia", 66), alarm("dev-1", "bradycardia", 500, "high"),
             alarm("dev-2", "poor_signal", 700, "low", "technical")]),
        Run("ward", 1, 2, 900, T0, [label("dev-1", "fall", 100, 200)],
            [alarm("dev-1", "fall", 103, "high")]),
    ]  # fmt: skip
    gym = Run("gym", 0, 1, 3600, T0, [label("dev-1", "walking", 0, 600)],
              [alarm("dev-1", "poor_signal", 40, "low", "technical"),
               alarm("dev-1", "tachycardia", 50, "low")])  # fmt: skip
    return [*ward, gym]


@pytest.fixture
def result(runs: list[Run]) -> dict:
    """The evaluation of :func:`runs`, with a description as the runner writes it."""
    description = {
        "scenarios": {"ward": {"devices": 2, "seconds": 900}, "gym": {"devices": 1,
                      "seconds": 3600}},
        "seeds": [0, 1], "faults": True, "workers": 1, "wall_s": 1.0, "run_wall_s": 1.0,
        "models": {"rhythm": "1.1.0"}, "signal_loss_s": 300.0, "timings": {},
    }  # fmt: skip
    return {"evaluation": description, **evaluate(runs, TIMINGS)}
