"""The headroom suite on the real services: a small fleet's frames flow from
`vitalstream simulate` through the pass-through process into the test's InfluxDB bucket,
with every produced frame committed, and the CPU figures come out within the machine."""

from __future__ import annotations

import pytest

from stream.tools.bench import headroom
from tests.integration.harness import influx_rows, written_vitals

pytestmark = pytest.mark.integration

DEVICES = 20


def test_a_small_fleet_flows_through_and_leaves_headroom(
    isolated_settings, influx_client, tmp_path
) -> None:
    settings = isolated_settings
    results, summary = headroom.run(
        settings, [DEVICES], seconds=6.0, warmup_s=3.0, bench_dir=tmp_path, isolate=False
    )
    (result,) = results
    assert result["frames_consumed"] > 0 and result["consumed_frames_per_s"] > 0
    assert result["frames_produced_total"] >= result["frames_consumed"] > 0
    assert result["lag_after_drain"] == 0  # every produced frame committed by the end
    assert result["undecodable_frames"] == 0 and result["write_failures"] == 0
    assert result["lines_written"] > 0
    assert result["lines_per_frame"] == pytest.approx(4.0, abs=0.5)

    # The points are in the bucket: one vitals instant per frame (a duplicated frame
    # overwrites its own points), and a window's features for every device.
    points = written_vitals(settings, influx_client)
    assert 0.9 * result["frames_consumed"] <= len(points) <= result["frames_consumed"]
    assert len({device for device, _ in points}) == DEVICES
    features = influx_rows(
        settings,
        influx_client,
        '|> filter(fn: (r) => r._measurement == "features" and r._field == "spo2")',
    )
    assert {row.values["device"] for row in features} == {device for device, _ in points}

    assert {"passthrough", "simulator"} <= set(result["cpu_percent"])
    assert 0.0 <= result["cores_left"] <= result["cores"]
    assert result["total_cpu_percent"] > 0
    assert result["budget_us_per_frame"] > 0
    assert summary["devices"] == DEVICES
    assert summary["cores_left"] == result["cores_left"]
    assert summary["e2e_worker_us_per_frame"] is None  # no e2e.json in this bench dir
