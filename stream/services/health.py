"""Real health checks for Kafka and InfluxDB, shared by every command that needs them.

`check_kafka` and `check_influx` do what the pipeline does (create a topic and round-trip
a message; write a point and read it back with Flux) and raise a `ServiceError` whose
one-line message names the actual problem: unreachable address, rejected token, missing
org or bucket.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from stream.config import KafkaSettings, Settings
from stream.kafka import client_options
from stream.services.errors import ServiceError

HEALTH_TOPIC = "vitalstream.health"
HEALTH_MEASUREMENT = "vitalstream_health"


@dataclass(frozen=True)
class KafkaHealth:
    bootstrap: str
    round_trip_ms: float


@dataclass(frozen=True)
class InfluxHealth:
    url: str
    version: str
    round_trip_ms: float


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if exc.errno is not None and exc.errno in errno.errorcode:
        return (exc.strerror or errno.errorcode[exc.errno]).lower()
    return str(exc) or type(exc).__name__


def _split_address(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return (host, int(port)) if host else (address, default_port)


def kafka_reachable(kafka: KafkaSettings, timeout_s: float = 2.0) -> None:
    """Raise a one-line ServiceError unless some bootstrap address accepts TCP."""
    reasons = []
    for address in kafka.bootstrap.split(","):
        host, port = _split_address(address, 9092)
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            reasons.append(_reason(exc))
    raise ServiceError(
        f"cannot reach Kafka at {kafka.bootstrap}: {', '.join(sorted(set(reasons)))}"
    )


def check_kafka(settings: Settings, timeout_s: float = 20.0) -> KafkaHealth:
    """Create the health topic if needed and round-trip one message through the broker."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    kafka_reachable(settings.kafka)
    config = client_options(settings.kafka)
    nonce = uuid.uuid4().hex.encode()
    started = time.monotonic()
    admin = producer = consumer = None
    try:
        admin = KafkaAdminClient(client_id="vitalstream-health", **config)
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)], wait_for_metadata=True)
        producer = KafkaProducer(client_id="vitalstream-health", acks="all", **config)
        sent = producer.send(HEALTH_TOPIC, value=nonce).get(timeout=timeout_s)
        consumer = KafkaConsumer(client_id="vitalstream-health", enable_auto_commit=False, **config)
        partition = TopicPartition(HEALTH_TOPIC, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500)
            if any(record.value == nonce for records in batches.values() for record in records):
                return KafkaHealth(settings.kafka.bootstrap, (time.monotonic() - started) * 1000)
        raise ServiceError(
            f"Kafka at {settings.kafka.bootstrap} accepted a message but did not return it "
            f"within {timeout_s:.0f} s"
        )
    except KafkaError as exc:
        raise ServiceError(
            f"Kafka at {settings.kafka.bootstrap} failed the round trip: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        for client in (consumer, producer, admin):
            if client is not None:
                client.close()


def find_bucket(client: Any, name: str, org: str) -> Any | None:
    """The bucket called name in org, or None (InfluxDB answers 404 for an unknown name)."""
    from influxdb_client.rest import ApiException

    try:
        found = client.buckets_api().find_buckets(name=name, org=org).buckets
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found[0] if found else None


def flux_string(value: str) -> str:
    """A Flux string literal (OSS 2.7 has no query parameters, so names are quoted here)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influx_version(url: str, timeout_s: float = 2.0) -> str:
    """The server version from /health; one-line ServiceError if unreachable or unhealthy."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s)
    except httpx.ConnectError as exc:
        cause = exc.__cause__ or exc.__context__
        reason = _reason(cause) if isinstance(cause, OSError) else "connection refused"
        if "refused" in str(exc).lower():
            reason = "connection refused"
        raise ServiceError(f"cannot reach InfluxDB at {url}: {reason}") from exc
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach InfluxDB at {url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ServiceError(f"InfluxDB at {url} is unhealthy (HTTP {response.status_code})")
    return str(response.json().get("version", "unknown"))


def check_influx(settings: Settings) -> InfluxHealth:
    """Check token, org and bucket, then write a point and read it back with Flux."""
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.rest import ApiException

    influx = settings.influx
    version = influx_version(influx.url)
    token = settings.influx_token
    if not token:
        raise ServiceError(
            "no InfluxDB token: set VITALSTREAM_INFLUX__TOKEN(_FILE) "
            "or run `vitalstream services up` to generate a local one"
        )
    nonce = uuid.uuid4().hex
    started = time.monotonic()
    timeout_ms = int(influx.timeout_s * 1000)
    with InfluxDBClient(url=influx.url, token=token, org=influx.org, timeout=timeout_ms) as client:
        try:
            orgs = client.organizations_api().find_organizations(org=influx.org)
        except ApiException as exc:
            if exc.status == 401:
                raise ServiceError(f"InfluxDB at {influx.url} rejected the token (401)") from exc
            if exc.status == 404:
                raise ServiceError(f"org '{influx.org}' not found at {influx.url}") from exc
            raise ServiceError(
                f"InfluxDB at {influx.url} answered {exc.status}: {exc.reason}"
            ) from exc
        if not orgs:
            raise ServiceError(f"org '{influx.org}' not found at {influx.url}")
        if find_bucket(client, influx.bucket, influx.org) is None:
            raise ServiceError(f"bucket '{influx.bucket}' not found in org '{influx.org}'")
        try:
            point = Point(HEALTH_MEASUREMENT).tag("check", nonce).field("ok", 1)
            client.write_api(write_options=SYNCHRONOUS).write(influx.bucket, influx.org, point)
            tables = client.query_api().query(
                f"from(bucket: {flux_string(influx.bucket)}) |> range(start: -5m)"
                f' |> filter(fn: (r) => r._measurement == "{HEALTH_MEASUREMENT}"'
                f' and r.check == "{nonce}")'
            )
        except ApiException as exc:
            raise ServiceError(
                f"InfluxDB at {influx.url} failed the write/read round trip "
                f"({exc.status}: {exc.reason})"
            ) from exc
    if not any(record.get_value() == 1 for table in tables for record in table.records):
        raise ServiceError(
            f"InfluxDB at {influx.url} accepted a point but the query did not return it"
        )
    return InfluxHealth(influx.url, version, (time.monotonic() - started) * 1000)
