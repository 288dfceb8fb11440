"""The Kafka side of the producers: one kafka-python producer built from Settings.

Owns the producer's configuration (options from :func:`stream.kafka.client_options`),
delivery accounting and clean shutdown; topics are created by
:func:`stream.kafka.ensure_topics` (re-exported here). Payloads arrive here already
serialized (orjson bytes); the key is the device id, or for a gateway batch the gateway
id (:mod:`producers.gateways`), so one device's frames stay in one partition, in order.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaProducer
from kafka.cluster import ClusterMetadata
from kafka.partitioner.default import DefaultPartitioner, murmur2

from stream.config import Settings
from stream.kafka import client_options, ensure_topics

__all__ = ["KeyHashCachingPartitioner", "Publisher", "ensure_topics", "producer_topics"]

log = logging.getLogger(__name__)


def producer_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """The topics producers write, with their configs (enrolments are a compacted table)."""
    return {
        settings.topics.frames: {},
        settings.topics.enrolments: {"cleanup.policy": "compact"},
    }


class KeyHashCachingPartitioner(DefaultPartitioner):
    """kafka-python's default key -> partition choice, with each key's murmur2 remembered.

    A fleet sends every device's key once a second: hashing it anew in pure Python each
    time was a tenth of the producer's send cost. Keyless records keep the default.
    """

    def partition(
        self,
        topic: str,
        key: object,
        serialized_key: bytes | None,
        value: object,
        serialized_value: bytes | None,
        cluster: ClusterMetadata,
    ) -> int:
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        return sorted(partitions)[_positive_murmur2(bytes(serialized_key)) % len(partitions)]


@functools.lru_cache(maxsize=65_536)
def _positive_murmur2(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


class Publisher:
    """A kafka-python producer with delivery accounting; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        linger_ms: int = 20,
        batch_size: int = 512 * 1024,
        compression: str | None = "lz4",
        client_id: str = "vitalstream-producer",
    ) -> None:
        options: dict[str, Any] = {
            "client_id": client_id,
            "acks": "all",
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "compression_type": compression,
            "max_request_size": settings.stream.max_frame_bytes * 8,
            "partitioner": KeyHashCachingPartitioner(),
        }
        # Idempotence keeps retries from duplicating frames; older kafka-python lacks it.
        if "enable_idempotence" in KafkaProducer.DEFAULT_CONFIG:
            options["enable_idempotence"] = True
        self.idempotent = bool(options.get("enable_idempotence"))
        self._producer = KafkaProducer(**client_options(settings.kafka), **options)
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def _on_error(self, exc: BaseException) -> None:
        # Called on the producer's I/O thread.
        with self._lock:
            self.errors += 1
            first = self.errors == 1
            self.last_error = type(exc).__name__
        if first:
            log.warning("delivery failed: %s", type(exc).__name__)

    def send(self, topic: str, key: str, value: bytes) -> None:
        """Queue one message; failures are counted in :attr:`errors` once known."""
        try:
            future = self._producer.send(topic, key=key.encode(), value=value)
        except Exception as exc:  # e.g. buffer full past max_block_ms, message too large
            self._on_error(exc)
            return
        future.add_errback(self._on_error)
        self.sent += 1

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued, then disconnect."""
        try:
            self._producer.flush(timeout=timeout_s)
        finally:
            self._producer.close(timeout=timeout_s)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM so a loop can stop, flush and exit cleanly."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals are only delivered to the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handler(signum: int, _frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, _handler)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
