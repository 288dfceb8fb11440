"""The local services and their health checks against the real Kafka and InfluxDB."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from rich.console import Console

from stream.config import Settings
from stream.kafka import client_options
from stream.services import influxdb, kafka, stack
from stream.services.health import find_bucket, flux_string

pytestmark = pytest.mark.integration

VITALSTREAM = str(Path(sys.executable).with_name("vitalstream"))


def run_cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI against `settings`' services, with extra VITALSTREAM_* overrides."""
    environment = {
        **os.environ,
        "VITALSTREAM_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "VITALSTREAM_INFLUX__URL": settings.influx.url,
        **env,
    }
    return subprocess.run(
        [VITALSTREAM, *args], env=environment, capture_output=True, text=True, timeout=120
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_message_round_trips_through_a_fresh_topic(isolated_settings: Settings) -> None:
    config = client_options(isolated_settings.kafka)
    topic = isolated_settings.topics.frames
    producer = KafkaProducer(acks="all", **config)
    sent = producer.send(topic, key=b"device-1", value=b"hello vitals").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", **config)
    received = []
    deadline = time.monotonic() + 20
    while not received and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received += [(record.key, record.value, record.partition) for record in records]
    consumer.close()
    assert received == [(b"device-1", b"hello vitals", sent.partition)]


def test_isolated_settings_create_their_own_topics_and_bucket(
    isolated_settings: Settings,
    services: Settings,
    kafka_admin: KafkaAdminClient,
    influx_client: InfluxDBClient,
) -> None:
    topics = isolated_settings.topics.model_dump()
    assert set(topics.values()).isdisjoint(services.topics.model_dump().values())
    described = {
        entry["name"]: entry for entry in kafka_admin.describe_topics(list(topics.values()))
    }
    assert set(described) == set(topics.values())
    for entry in described.values():
        assert len(entry["partitions"]) == services.kafka.partitions
    bucket = isolated_settings.influx.bucket
    assert bucket != services.influx.bucket
    found = find_bucket(influx_client, bucket, services.influx.org)
    assert found is not None and found.name == bucket


def test_point_written_is_read_back_with_flux(
    isolated_settings: Settings, influx_client: InfluxDBClient
) -> None:
    influx = isolated_settings.influx
    point = Point("vitals").tag("device", "d1").field("hr", 72.5).field("spo2", 97.0)
    influx_client.write_api(write_options=SYNCHRONOUS).write(influx.bucket, influx.org, point)
    tables = influx_client.query_api().query(
        f"from(bucket: {flux_string(influx.bucket)}) |> range(start: -10m)"
        ' |> filter(fn: (r) => r._measurement == "vitals" and r.device == "d1")',
        org=influx.org,
    )
    values = {
        record.get_field(): record.get_value() for table in tables for record in table.records
    }
    assert values == {"hr": 72.5, "spo2": 97.0}


def test_status_json_reports_both_services_up(services: Settings) -> None:
    result = run_cli(services, "services", "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kafka"]["ok"] is True
    assert report["kafka"]["bootstrap"] == f"127.0.0.1:{services.services.kafka_port}"
    assert report["influxdb"]["ok"] is True
    assert report["influxdb"]["url"] == f"http://127.0.0.1:{services.services.influxdb_port}"
    assert report["influxdb"]["version"] == services.services.influxdb_version


def test_check_passes_against_the_running_services(services: Settings) -> None:
    result = run_cli(services, "services", "check")
    assert result.returncode == 0, result.stderr
    assert "kafka" in result.stdout and "influxdb" in result.stdout


def test_check_names_an_unreachable_broker_in_one_line(services: Settings) -> None:
    port = free_port()
    result = run_cli(
        services, "services", "check", VITALSTREAM_KAFKA__BOOTSTRAP=f"127.0.0.1:{port}"
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: cannot reach Kafka at 127.0.0.1:{port}: connection refused"
    )


def test_check_names_a_rejected_influx_token_in_one_line(services: Settings) -> None:
    result = run_cli(services, "services", "check", VITALSTREAM_INFLUX__TOKEN="not-the-token")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: InfluxDB at {services.influx.url} rejected the token (401)"
    )


def test_check_names_an_unknown_bucket_in_one_line(services: Settings) -> None:
    result = run_cli(services, "services", "check", VITALSTREAM_INFLUX__BUCKET="no-such-bucket")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: bucket 'no-such-bucket' not found in org '{services.influx.org}'"
    )


def _kill_and_restore(services: Settings, name: str, pid: int | None) -> None:
    assert pid is not None, f"{name} was not started by `vitalstream services up`"
    os.kill(pid, signal.SIGKILL)
    try:
        result = run_cli(services, "services", "status", "--json")
        report = json.loads(result.stdout)
        assert result.returncode == 1
        assert report[name]["ok"] is False
        other = "influxdb" if name == "kafka" else "kafka"
        assert report[other]["ok"] is True
    finally:
        # Leave the shared services healthy for every other test, whatever happened above.
        began = time.monotonic()
        stack.up(services, Console(stderr=True))
    assert time.monotonic() - began < services.services.start_timeout_s
    assert json.loads(run_cli(services, "services", "status", "--json").stdout)[name]["ok"] is True


@pytest.mark.slow
def test_killed_broker_is_reported_down_and_restored(services: Settings) -> None:
    _kill_and_restore(services, "kafka", kafka.running_pid(services))


@pytest.mark.slow
def test_killed_influxd_is_reported_down_and_restored(services: Settings) -> None:
    _kill_and_restore(services, "influxdb", influxdb.running_pid(services))
