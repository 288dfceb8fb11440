"""The analysis suite measures the stream core in memory, stage by stage."""

from __future__ import annotations

from stream.tools.bench import analysis
from stream.worker.pipeline import STAGES


def test_a_small_ward_is_measured_stage_by_stage() -> None:
    row = analysis.measure(devices=12, seconds=3, warmup=11)
    assert row["device_seconds"] == 12 * 3  # one frame per device-second, no faults
    assert row["windows"] >= 12 * 3  # one window per device and hop, once windows are full
    by_stage = row["us_per_device_second_by_stage"]
    assert set(by_stage) == set(STAGES)
    assert all(value > 0 for value in by_stage.values()), by_stage
    # The stages account for the pipeline's time: what is left is bookkeeping, not a
    # missing stage. (Shares of wall time, applied to CPU time: true on a loaded machine.)
    total = row["us_per_device_second"]
    assert sum(by_stage.values()) <= total * 1.05
    assert sum(by_stage.values()) >= total * 0.7, row
