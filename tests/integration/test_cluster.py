"""A three-broker KRaft cluster: losing the broker that leads the frames loses nothing.

The cluster runs on its own loopback ports (19092, 19094, 19096) and data directory,
beside the shared single broker every other test uses; InfluxDB is the shared one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from rich.console import Console

from stream.config import Settings
from stream.kafka import client_options, ensure_topics, snapshot_topic, stream_topics
from stream.services import influxdb, kafka, stack
from stream.tools import faults
from stream.tools.bench.failover import OffsetProbe
from tests.integration.harness import Simulation, worker_env
from tests.integration.test_faults import (
    SCENARIO,
    assert_exactly_once,
    simulating,
    stall_report,
    started_worker,
    wait_complete,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLUSTER_PORT = 19092
BROKER_DOWN_S = 10.0
UP_WITHIN_S = 60.0  # `services up --brokers 3` with the jars cached (issue 21)
STARTED: dict[str, float] = {}


@pytest.fixture(scope="module")
def cluster(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings on a fresh 3-broker cluster (the shared InfluxDB and secrets)."""
    data = tmp_path_factory.mktemp("cluster") / "services"
    shutil.copytree(services.secrets_dir, data / "secrets")
    local = services.services.model_copy(
        update={
            "kafka_brokers": 3, "kafka_port": CLUSTER_PORT,
            "kafka_controller_port": CLUSTER_PORT + 1, "data_dir": data,
        }
    )  # fmt: skip
    settings = services.model_copy(update={"services": local})
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap": kafka.bootstrap(settings)})}
    )
    try:
        began = time.monotonic()
        stack.up(settings, Console(stderr=True), only=("kafka",))
        STARTED["up_s"] = time.monotonic() - began
        yield settings
    finally:
        kafka.stop(settings)


@pytest.fixture
def on_cluster(cluster: Settings, influx_client) -> Iterator[Settings]:
    tag = f"c{int(time.time() * 1000) % 10**8}"
    settings = cluster.model_copy(
        update={
            "topics": cluster.topics.model_copy(
                update={k: f"{tag}.{v}" for k, v in cluster.topics.model_dump().items()}
            ),
            "influx": cluster.influx.model_copy(update={"bucket": tag}),
            "stream": cluster.stream.model_copy(update={"app_id": f"vitalstream-{tag}"}),
        }
    )
    ensure_topics(settings, stream_topics(settings))
    influxdb.ensure_bucket(settings, tag)
    yield settings


def leaders(settings: Settings) -> dict[int, int]:
    """Frames partition -> the node leading it."""
    admin = KafkaAdminClient(**client_options(settings.kafka))
    try:
        [topic] = admin.describe_topics([settings.topics.frames])
        return {p["partition_index"]: p["leader_id"] for p in topic["partitions"]}
    finally:
        admin.close()


def longest_stall(samples: list[tuple[float, int | None]]) -> float:
    """The longest stretch over which the group's committed offsets did not move (polls the
    broker did not answer count as no progress), from the first sample to the last.

    >>> longest_stall([(0.0, 5), (1.0, 5), (2.0, 7), (6.0, None), (7.0, 7), (8.0, 9)])
    6.0
    """
    longest, since, last = 0.0, samples[0][0], samples[0][1]
    for t, total in samples[1:]:
        if total is not None and total != last:
            longest, since, last = max(longest, t - since), t, total
    return max(longest, samples[-1][0] - since)


def test_services_status_lists_the_three_brokers(cluster):
    print(f"3-broker cluster up and healthy in {STARTED['up_s']:.1f} s")
    assert STARTED["up_s"] <= UP_WITHIN_S
    report = stack.status(cluster)
    assert report["kafka"]["ok"], report
    nodes = report["kafka"]["brokers"]
    assert [b["node"] for b in nodes] == [1, 2, 3]
    assert all(b["pid"] is not None for b in nodes), nodes
    assert len({b["address"] for b in nodes}) == 3


def test_topics_are_replicated_three_times_with_two_in_sync_required(on_cluster):
    admin = KafkaAdminClient(**client_options(on_cluster.kafka))
    try:
        names = [on_cluster.topics.frames, snapshot_topic(on_cluster)]
        deadline = time.monotonic() + 15
        described = admin.describe_topics(names)
        while any(t["error_code"] for t in described) and time.monotonic() < deadline:
            time.sleep(0.5)  # a topic just created: metadata reaches every broker shortly
            described = admin.describe_topics(names)
        for topic in described:
            assert {len(p["replica_nodes"]) for p in topic["partitions"]} == {3}, topic
            assert {len(p["isr_nodes"]) for p in topic["partitions"]} == {3}, topic
        frames = on_cluster.topics.frames
        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, frames)])
        value = result["topic"][frames]["min.insync.replicas"]
        assert (value["value"] if isinstance(value, dict) else value) == "2", value
    finally:
        admin.close()


def test_losing_the_broker_leading_the_frames_loses_nothing(
    on_cluster, influx_client, tmp_path: Path
):
    """SIGKILL the broker that leads most frames partitions mid-stream, restart it 10 s
    later: every point written, every labelled event alerted once; the longest time the
    worker group committed nothing is reported."""
    settings = on_cluster
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(SCENARIO)
    simulation = Simulation(scenario, 6, 100, float(int(time.time()) - 900))
    labels, points, _frames = simulation.expected()
    env = worker_env(settings)
    worker = started_worker(env, tmp_path)
    probe = OffsetProbe(settings)
    with simulating(simulation, env, 2, tmp_path, worker) as simulator:
        time.sleep(8)
        led = leaders(settings)
        victim = max(set(led.values()), key=list(led.values()).count)
        pid = kafka.running_pid(settings, victim)
        assert pid is not None
        struck = time.monotonic()
        faults.sigkill(pid)
        samples: list[tuple[float, int | None]] = []  # (seconds since the kill, committed)
        errors: list[str] = []
        while time.monotonic() - struck < BROKER_DOWN_S + 30:
            if (
                time.monotonic() - struck >= BROKER_DOWN_S
                and kafka.running_pid(settings, victim) is None
            ):
                kafka.start(settings, victim)
            try:
                total: int | None = sum(probe.committed().values())
            except Exception as exc:  # the group coordinator moved: ask again
                total = None
                errors.append(repr(exc)[:200])
            samples.append((time.monotonic() - struck, total))
            time.sleep(0.5)
        stack.wait_kafka(settings, started_by_us=True, node=victim)
        assert simulator.wait(timeout=180) == 0
        alerts, written = wait_complete(settings, influx_client, labels, points, 120, [worker])
    probe.close()
    longest = longest_stall(samples)
    answered = sum(1 for _, total in samples if total is not None)
    print(f"broker {victim} killed: longest time without a commit {longest:.1f} s "
          f"({answered}/{len(samples)} polls answered)")  # fmt: skip
    assert answered >= len(samples) // 2, (samples[:5], sorted(set(errors))[:5])
    lost = points - written
    assert lost == set(), f"{len(lost)} of {len(points)} points lost\n{stall_report(worker)}"
    assert_exactly_once(alerts, labels)
    assert longest < BROKER_DOWN_S + 20, f"no commit for {longest:.1f} s"
