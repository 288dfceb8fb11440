"""How VitalStream talks to Kafka: the one builder of client options, the topics it needs,
and their creation (:func:`ensure_topics`).

Three client libraries talk to the same cluster: kafka-python (producers, admin, tests,
tools), aiokafka (the alert service, the worker's rollout follower, benchmarks) and
Faust (the worker, over aiokafka). They name most options alike but differ in two:
kafka-python takes TLS as file paths where aiokafka takes an ``SSLContext``, and Faust
takes ``broker`` URLs and a credentials object. :func:`client_options` hides that, so a
security setting (SASL/SCRAM, TLS) added to :class:`stream.config.KafkaSettings` reaches
every client at once.

>>> from stream.config import KafkaSettings, Settings
>>> options = client_options(KafkaSettings(bootstrap="k1:9092, k2:9092"))
>>> options["bootstrap_servers"], options["security_protocol"]
(['k1:9092', 'k2:9092'], 'PLAINTEXT')
>>> client_options(KafkaSettings(bootstrap="k1:9092"), "faust")
{'broker': ['kafka://k1:9092'], 'broker_credentials': None}
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, Literal

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream.config import KafkaSettings, Settings

Client = Literal["kafka-python", "aiokafka", "faust"]


def snapshot_topic(settings: Settings) -> str:
    """The worker group's per-device snapshot topic (:mod:`stream.worker.snapshots`),
    named after its app id as Faust names a group's own topics."""
    return f"{settings.stream.app_id}-device-state"


def directory_topic(settings: Settings) -> str:
    """The worker group's device directory (:mod:`stream.worker.snapshots`): which
    partition each device's frames come in on now. The group's own, like the snapshot
    topic: another group reading the same frames keeps its own directory."""
    return f"{settings.stream.app_id}-device-directory"


def stream_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic a worker reads or writes, with its configs (for ``ensure_topics``)."""
    topics = settings.topics
    return {
        topics.frames: {},
        topics.enrolments: {"cleanup.policy": "compact"},
        topics.alerts: {},
        topics.deadletter: {},
        topics.control: {},
        snapshot_topic(settings): {"cleanup.policy": "compact"},
        directory_topic(settings): {"cleanup.policy": "compact"},
    }


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min in-sync replicas) for a cluster of ``brokers``: 3 copies and
    2 in sync where there are 3 brokers or more, so with ``acks=all`` one broker can go
    down without losing a write or refusing one.

    >>> replication_for(1), replication_for(3), replication_for(5)
    ((1, 1), (3, 2), (3, 2))
    """
    factor = min(brokers, 3)
    return factor, max(1, factor - 1)


def replication(settings: Settings, admin: KafkaAdminClient | None = None) -> int:
    """The replication factor for topics VitalStream creates: the configured one, else
    the cluster's broker count up to 3."""
    if settings.kafka.replication_factor is not None:
        return settings.kafka.replication_factor
    own = admin is None
    if admin is None:
        admin = KafkaAdminClient(client_id="vitalstream-admin", **client_options(settings.kafka))
    try:
        brokers = len(admin.describe_cluster()["brokers"])
    finally:
        if own:
            admin.close()
    return replication_for(max(brokers, 1))[0]


def ensure_topics(
    settings: Settings,
    topics: Mapping[str, Mapping[str, str]] | list[str],
    partitions: int | None = None,
    replication_factor: int | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns those created. Safe to repeat.

    ``topics`` maps a name to topic configs (e.g. ``{"cleanup.policy": "compact"}``).
    Replicated topics (factor 3) get ``min.insync.replicas=2`` unless they say otherwise.
    """
    wanted = {name: {} for name in topics} if isinstance(topics, list) else dict(topics)
    admin = KafkaAdminClient(client_id="vitalstream-admin", **client_options(settings.kafka))
    try:
        missing = [name for name in wanted if name not in set(admin.list_topics())]
        created: list[str] = []
        factor = replication_factor or (replication(settings, admin) if missing else 1)
        for name in missing:
            configs = dict(wanted[name])
            if factor >= 3:
                configs.setdefault("min.insync.replicas", str(replication_for(factor)[1]))
            new = NewTopic(
                name,
                num_partitions=partitions or settings.kafka.partitions,
                replication_factor=factor,
                topic_configs=configs,
            )
            try:
                admin.create_topics([new])
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another producer won the race: that is the state we wanted
        return created
    finally:
        admin.close()


def client_options(kafka: KafkaSettings, client: Client = "kafka-python") -> dict[str, Any]:
    """Keyword arguments that connect ``client`` to the configured cluster, auth included.

    kafka-python and aiokafka: pass them to any consumer, producer or admin client
    (``KafkaProducer(**client_options(kafka), acks="all")``). Faust: pass them to
    ``faust.App`` (``broker`` and ``broker_credentials``).
    """
    bootstrap = [address.strip() for address in kafka.bootstrap.split(",") if address.strip()]
    if client == "faust":
        return {
            "broker": [f"kafka://{address}" for address in bootstrap],
            "broker_credentials": _faust_credentials(kafka),
        }
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
    }
    if kafka.sasl_mechanism is not None:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            options["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if client == "kafka-python":
        for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(kafka, option)
            if path is not None:
                options[option] = str(path)
    else:
        context = _ssl_context(kafka)
        if context is not None:
            options["ssl_context"] = context
    return options


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context aiokafka and Faust need (``None`` without TLS)."""
    if "SSL" not in kafka.security_protocol:
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile is not None:
        context.load_cert_chain(kafka.ssl_certfile, kafka.ssl_keyfile)
    return context


def _faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust's credentials object for the security protocol (``None`` for plaintext)."""
    context = _ssl_context(kafka)
    if kafka.sasl_mechanism is None and context is None:
        return None
    import faust  # only the worker runs Faust; everything else stays light

    if kafka.sasl_mechanism is not None:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism,  # the enum value, e.g. "SCRAM-SHA-512"
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
