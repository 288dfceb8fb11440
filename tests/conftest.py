"""Shared fixtures: the real local Kafka and InfluxDB, and per-test isolated settings.

`services` brings both up once per session (reusing running ones) and fails the run with
the reason if they cannot start: integration tests are never skipped. `isolated_settings`
gives each test its own topics, Faust app id and InfluxDB bucket on those services.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest
from influxdb_client import InfluxDBClient
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from rich.console import Console

from stream.config import Settings, load_settings
from stream.kafka import client_options
from stream.services import influxdb, stack
from stream.services.errors import ServiceError
from stream.services.health import find_bucket
from stream.signal.features import warm_up


@pytest.fixture(scope="session")
def services() -> Settings:
    """Settings pointing at the running local Kafka and InfluxDB (started if needed)."""
    settings = load_settings()
    try:
        stack.up(settings, Console(stderr=True))
    except ServiceError as exc:
        tail = f"\n{exc.log_tail}" if exc.log_tail else ""
        pytest.fail(f"local services could not start: {exc}{tail}", pytrace=False)
    # Worker subprocesses load the compiled signal kernels from numba's cache; compiling
    # them once here keeps several workers from compiling at once on a fresh checkout.
    warm_up()
    return stack.local_settings(settings)


@pytest.fixture(scope="session")
def kafka_admin(services: Settings) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(client_id="vitalstream-tests", **client_options(services.kafka))
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def influx_client(services: Settings) -> Iterator[InfluxDBClient]:
    influx = services.influx
    with InfluxDBClient(url=influx.url, token=services.influx_token, org=influx.org) as client:
        yield client


def create_topics(admin: KafkaAdminClient, names: list[str], partitions: int) -> None:
    """Create topics and wait until the broker reports their metadata.

    Some tests restart the shared broker; the next test may find it still electing its
    controller, so creation is retried (already-created topics count as done) for a while.
    """
    deadline = time.monotonic() + 90
    while True:
        try:
            existing = set(admin.list_topics())
            missing = [name for name in names if name not in existing]
            if missing:
                admin.create_topics(
                    [NewTopic(name, partitions, 1) for name in missing], wait_for_metadata=True
                )
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@contextlib.contextmanager
def isolated(
    services: Settings, kafka_admin: KafkaAdminClient, influx_client: InfluxDBClient
) -> Iterator[Settings]:
    """A copy of `services` with fresh topics (created), app id and bucket (created),
    dropped on the way out. A test needing two isolated runs takes a second one here."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    topics = {field: f"{tag}.{name}" for field, name in services.topics.model_dump().items()}
    create_topics(kafka_admin, list(topics.values()), services.kafka.partitions)
    influxdb.ensure_bucket(services, tag)
    settings = services.model_copy(
        update={
            "topics": services.topics.model_copy(update=topics),
            "influx": services.influx.model_copy(update={"bucket": tag}),
            # Faust derives consumer groups and changelog topics from the app id.
            "stream": services.stream.model_copy(update={"app_id": f"vitalstream-{tag}"}),
        }
    )
    try:
        yield settings
    finally:
        with contextlib.suppress(Exception):
            # The worker group's own topics (snapshots, Faust's assignor) too.
            group = [t for t in kafka_admin.list_topics() if t.startswith(settings.stream.app_id)]
            kafka_admin.delete_topics([*topics.values(), *group])
        with contextlib.suppress(Exception):
            bucket = find_bucket(influx_client, tag, services.influx.org)
            if bucket is not None:
                influx_client.buckets_api().delete_bucket(bucket)


@pytest.fixture
def isolated_settings(
    services: Settings, kafka_admin: KafkaAdminClient, influx_client: InfluxDBClient
) -> Iterator[Settings]:
    """A copy of `services` with fresh topics (created), app id and bucket (created)."""
    with isolated(services, kafka_admin, influx_client) as settings:
        yield settings
