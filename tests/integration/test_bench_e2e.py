"""The e2e suite on the real services with its pre-rendered load: a small fleet rendered
ahead of time is sent at 1x to two `vitalstream worker` processes sharing eight
partitions; every rendered frame reaches the topic, every labelled event is alerted, and
the CPU budget names each process."""

from __future__ import annotations

import math

import pytest

from stream.tools.bench import e2e

pytestmark = pytest.mark.integration

DEVICES, SECONDS, WARMUP_S, PARTITIONS, WORKERS = 20, 25.0, 5.0, 8, 2
CLOCK_SLACK_S = 0.1


def test_a_prerendered_fleet_is_delivered_and_alerted(services) -> None:
    results, summary = e2e.run(
        services, [DEVICES], SECONDS, WARMUP_S, workers=(WORKERS,), partitions=PARTITIONS
    )
    (result,) = results
    sent = result["load_summary"]

    # Every rendered message was sent and is on the frames topic, none failed.
    assert result["load"] == e2e.PRERENDERED and result["partitions"] == PARTITIONS
    assert sent["errors"] == 0
    assert sent["messages_sent"] == sent["messages_rendered"] == result["frames_on_topic"]
    assert sent["enrolments_sent"] == DEVICES
    # A frame per device per second, less the few the simulated network loses.
    periods = math.ceil(WARMUP_S + SECONDS)
    assert 0.9 * DEVICES * periods <= sent["frames"] <= DEVICES * periods
    assert sent["cpu_s"] > 0 and sent["us_per_message"] > 0

    # Re-dated to live time: the labelled events' alerts came, later than their onset.
    assert result["labels"] == len(e2e.LATENCY_EVENTS) * e2e.LABELS_PER_KIND
    assert result["labels_alerted"] == result["labels"]
    # A frame is sent once its period is over, so no alert arrives before the frame time
    # of the window that raised it (give or take the simulated clock jitter).
    assert all(
        x["received_s"] >= x["frame_time_s"] - CLOCK_SLACK_S for x in result["latency_by_label"]
    )
    assert result["producer_realtime"]

    # The CPU budget: both workers, the load generator, and the services this project runs.
    cpu = result["cpu_percent"]
    assert cpu["worker"] > 0 and cpu["worker-2"] > 0
    budget = result["cpu_budget"]
    assert budget["workers"] == pytest.approx(cpu["worker"] + cpu["worker-2"], abs=0.2)
    assert budget["load"] == cpu["load"] >= 0
    assert budget["total"] >= budget["workers"] + budget["load"]
    assert summary["load"] == e2e.PRERENDERED and summary["workers"] == WORKERS
    assert summary["by_devices"][str(DEVICES)]["cpu_budget"] == budget
