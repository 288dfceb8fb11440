"""docker-compose.yml and the Dockerfile agree with the settings they configure."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from stream.config import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("worker", "simulator", "alerts")
SUBSTITUTION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with compose's ${VAR:-default} resolved to the default."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: SUBSTITUTION.sub(lambda m: m.group(2) or "", str(v)) for key, v in env.items()}


def host_port(service: dict[str, Any], container_port: int) -> int:
    for mapping in service.get("ports", []):
        host, _, container = str(mapping).rpartition(":")
        if int(container) == container_port:
            return int(host)
    raise AssertionError(f"container port {container_port} is not published")


def setting_at(settings: Settings, variable: str) -> Any:
    """The Settings value a VITALSTREAM_* variable sets; fails if no such field exists."""
    node: Any = settings
    for part in variable.removeprefix("VITALSTREAM_").lower().split("__"):
        assert isinstance(node, BaseModel) and part in type(node).model_fields, (
            f"{variable} does not name a Settings field"
        )
        node = getattr(node, part)
    return node


def test_all_services_are_defined(compose: dict[str, Any]) -> None:
    assert {"kafka", "influxdb", "grafana", *APP_SERVICES} <= set(compose["services"])
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:3.9")
    assert compose["services"]["influxdb"]["image"].startswith("influxdb:2.7")


def test_every_vitalstream_variable_is_a_real_setting(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    seen = 0
    for name, service in compose["services"].items():
        env = {k: v for k, v in environment(service).items() if k.startswith("VITALSTREAM_")}
        for key in [k for k in os.environ if k.startswith("VITALSTREAM_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        for key, value in env.items():
            actual = setting_at(settings, key)
            if isinstance(actual, SecretStr):
                actual = actual.get_secret_value()
            assert str(actual) == value, f"{name}: {key}={value!r} was read as {actual!r}"
            seen += 1
    assert seen >= 3 * len(APP_SERVICES)


def test_app_services_reach_kafka_and_influxdb_inside_the_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka_env = environment(services["kafka"])
    influx_env = environment(services["influxdb"])
    for name in APP_SERVICES:
        env = environment(services[name])
        assert f"INTERNAL://{env['VITALSTREAM_KAFKA__BOOTSTRAP']}" in (
            kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        )
        assert urlparse(env["VITALSTREAM_INFLUX__URL"]).hostname == "influxdb"
        assert env["VITALSTREAM_INFLUX__ORG"] == influx_env["DOCKER_INFLUXDB_INIT_ORG"]
        assert env["VITALSTREAM_INFLUX__BUCKET"] == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
        assert env["VITALSTREAM_INFLUX__TOKEN"] == influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
        assert services[name]["command"][0] == "vitalstream"
        assert "build" in services[name]


def test_published_ports_match_the_settings_defaults(compose: dict[str, Any]) -> None:
    defaults = Settings()
    services = compose["services"]
    kafka_port = int(defaults.kafka.bootstrap.rpartition(":")[2])
    assert host_port(services["kafka"], kafka_port) == kafka_port == defaults.services.kafka_port
    assert f"EXTERNAL://localhost:{kafka_port}" in (
        environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    influx_port = urlparse(defaults.influx.url).port
    assert host_port(services["influxdb"], 8086) == influx_port == defaults.services.influxdb_port
    alerts_port = int(environment(services["alerts"])["VITALSTREAM_ALERTS_API__PORT"])
    assert host_port(services["alerts"], alerts_port) == defaults.alerts_api.port


def test_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # Fixed names or host ports would make `--scale worker=N` collide.
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker["command"] == ["vitalstream", "worker"]


def test_grafana_mounts_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    mounts = [str(volume).split(":")[:2] for volume in compose["services"]["grafana"]["volumes"]]
    assert ["./grafana/provisioning", "/etc/grafana/provisioning"] in mounts
    assert ["./grafana/dashboards", "/var/lib/grafana/dashboards"] in mounts


def test_dockerfile_installs_the_packages_the_wheel_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    for package in ("stream", "producers", "models"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_the_cluster_override_runs_three_replicating_brokers_the_apps_all_reach(
    compose: dict[str, Any],
) -> None:
    cluster = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    services = cluster["services"]
    brokers = ["kafka", "kafka-2", "kafka-3"]
    assert set(brokers) <= set(services)
    envs = {name: environment(services[name]) for name in brokers}
    assert sorted(env["KAFKA_NODE_ID"] for env in envs.values()) == ["1", "2", "3"]
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}
    assert voters == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}
    for env in envs.values():
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    for app in APP_SERVICES:
        bootstrap = environment(services[app])["VITALSTREAM_KAFKA__BOOTSTRAP"]
        assert bootstrap == "kafka:29092,kafka-2:29092,kafka-3:29092"
        assert app in compose["services"]
