"""The throughput suite on the real services: a small preloaded backlog is drained by a real
`vitalstream worker`, every offset is committed with every vitals point already in the
test's InfluxDB bucket, and the figures are positive and consistent with each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.tools.bench import throughput
from tests.integration.harness import Simulation, written_vitals

pytestmark = pytest.mark.integration

DEVICES, SECONDS = 20, 20


def test_a_small_backlog_is_drained_and_measured(isolated_settings, influx_client) -> None:
    settings = isolated_settings
    results, summary = throughput.run(settings, DEVICES, SECONDS, isolate=False)
    (result,) = results

    # Every frame preloaded (faults off: one per device-second) and every offset committed.
    assert result["device_seconds"] == DEVICES * SECONDS
    assert result["frames"] == result["messages"] == DEVICES * SECONDS
    assert sum(result["end_offsets"].values()) == result["messages"]
    assert result["offsets_committed"] == result["messages"]
    assert result["committed_at_ready"] == 0  # the span starts before any frame is consumed
    assert result["deadletters"] == 0

    # Committed means durable: the bucket already holds every vitals point of the backlog.
    simulation = Simulation(
        Path(throughput.SCENARIO), DEVICES, SECONDS, result["frames_dated_from"], throughput.SEED
    )
    _labels, expected_points, frames = simulation.expected()
    assert frames == result["frames"]
    written = written_vitals(settings, influx_client)
    assert expected_points - written == set()

    # Positive and consistent figures.
    cpu = result["worker_cpu_s"]
    assert cpu > 0 and result["wall_s"] > 0 and result["startup_cpu_s"] > 0
    assert result["device_seconds_per_cpu_s"] == pytest.approx(
        result["device_seconds"] / cpu, rel=0.01
    )
    assert result["us_per_device_second"] == pytest.approx(
        1e6 * cpu / result["device_seconds"], rel=0.01
    )
    for service in ("kafka", "influxd"):
        assert result[f"{service}_cpu_s"] > 0
        assert result[f"{service}_us_per_device_second"] == pytest.approx(
            1e6 * result[f"{service}_cpu_s"] / result["device_seconds"], rel=0.01
        )
    assert result["worker_peak_rss_mib"] > 0
    # The series is the drain's: committed offsets never go back, the worker's CPU grows.
    series = result["committed_series"]
    assert [row[1] for row in series] == sorted(row[1] for row in series)
    assert [row[2] for row in series] == sorted(row[2] for row in series)
    assert series[-1][1] == result["messages"]
    assert summary["device_seconds_per_cpu_s"] == result["device_seconds_per_cpu_s"]
    assert summary["devices"] == DEVICES and summary["seconds"] == SECONDS


GATEWAY_DEVICES, GATEWAY_SECONDS, PER_MESSAGE = 100, 10, 50


def test_a_backlog_of_gateway_batches_is_drained_with_every_point(
    isolated_settings, influx_client
) -> None:
    """``--per-message 50``: each period's 100 frames go as 2 gateway batches; the worker
    reads them, commits every offset and the bucket holds every vitals point."""
    settings = isolated_settings
    results, summary = throughput.run(
        settings, GATEWAY_DEVICES, GATEWAY_SECONDS, PER_MESSAGE, isolate=False
    )
    (result,) = results
    assert summary["per_message"] == PER_MESSAGE
    assert result["frames"] == result["device_seconds"] == GATEWAY_DEVICES * GATEWAY_SECONDS
    assert result["messages"] == GATEWAY_SECONDS * GATEWAY_DEVICES // PER_MESSAGE
    assert result["offsets_committed"] == sum(result["end_offsets"].values()) == result["messages"]
    assert result["deadletters"] == 0

    simulation = Simulation(
        Path(throughput.SCENARIO), GATEWAY_DEVICES, GATEWAY_SECONDS, result["frames_dated_from"],
        throughput.SEED,
    )  # fmt: skip
    _labels, expected_points, frames = simulation.expected()
    assert frames == result["frames"]
    missing = expected_points - written_vitals(settings, influx_client)
    assert missing == set(), f"{len(missing)} of {len(expected_points)} vitals points missing"
