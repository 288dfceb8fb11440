"""The snapshot reader on the real broker: several partitions read together, each to its
end, into the newest value per key per partition (tombstones as ``None``, empty
partitions as ``{}``), with no needless wait per partition.

A fresh snapshot topic and frames topic of 8 partitions (the reader checks that they
match); no worker, no InfluxDB.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from stream.config import Settings
from stream.kafka import client_options, snapshot_topic
from stream.worker.snapshots import PartitionReader
from tests.conftest import create_topics

pytestmark = pytest.mark.integration

PARTITIONS = 8
# Eight reads of one partition each, after the reader has started. Before the reader
# stopped the broker holding its fetches (and its offset requests queued behind them),
# they took 4.5 s on the local broker; now about 0.05 s. The bound leaves a wide margin
# for a loaded machine and still fails at the old cost.
SEQUENTIAL_READS_MAX_S = 2.0
# What each partition is sent, in order (None: a tombstone); the others get nothing.
SENT: dict[int, list[tuple[str, bytes | None]]] = {
    0: [("dev-a", b"a1"), ("dev-b", b"b1"), ("dev-a", b"a2")],
    3: [("dev-c", b"c1"), ("dev-c", None)],
    5: [("dev-d", b"d1"), ("dev-e", b"e1"), ("dev-d", None), ("dev-d", b"d3")],
}
EXPECTED: dict[int, dict[str, bytes | None]] = {p: {} for p in range(PARTITIONS)} | {
    0: {"dev-a": b"a2", "dev-b": b"b1"},
    3: {"dev-c": None},
    5: {"dev-d": b"d3", "dev-e": b"e1"},
}


@pytest.fixture
def reader_settings(services: Settings, kafka_admin: KafkaAdminClient) -> Iterator[Settings]:
    """``services`` with a frames topic and a snapshot topic of their own, 8 partitions."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    settings = services.model_copy(
        update={
            "topics": services.topics.model_copy(update={"frames": f"{tag}.frames"}),
            "stream": services.stream.model_copy(update={"app_id": f"vitalstream-{tag}"}),
        }
    )
    topics = [settings.topics.frames, snapshot_topic(settings)]
    create_topics(kafka_admin, topics, PARTITIONS)
    try:
        yield settings
    finally:
        kafka_admin.delete_topics(topics)


def send(settings: Settings, records: dict[int, list[tuple[str, bytes | None]]]) -> None:
    producer = KafkaProducer(**client_options(settings.kafka), acks="all")
    try:
        for partition, sent in records.items():
            for key, value in sent:
                topic = snapshot_topic(settings)
                producer.send(topic, key=key.encode(), value=value, partition=partition)
        producer.flush()
    finally:
        producer.close()


async def test_partitions_are_read_together_to_their_ends(reader_settings: Settings) -> None:
    send(reader_settings, SENT)
    reader = PartitionReader(reader_settings)
    try:
        assert await reader.read_each(range(PARTITIONS)) == EXPECTED
        assert await reader.read_each([]) == {}
        assert await reader.read_each([4, 3, 3]) == {3: EXPECTED[3], 4: {}}
        started = time.monotonic()
        for partition in range(PARTITIONS):
            assert await reader.read_each([partition]) == {partition: EXPECTED[partition]}
        elapsed = time.monotonic() - started
        assert elapsed < SEQUENTIAL_READS_MAX_S, f"8 reads took {elapsed:.2f} s"
        # Records sent since: the next read goes to the new end offsets, a partition that
        # was empty included.
        send(reader_settings, {4: [("dev-f", b"f1")], 0: [("dev-b", None)]})
        assert await reader.read_each([0, 4]) == {
            0: {"dev-a": b"a2", "dev-b": None},
            4: {"dev-f": b"f1"},
        }
    finally:
        # The consumer's stop must return: aiokafka can lose it to an assignment change.
        await asyncio.wait_for(reader.close(), 10)


async def test_the_frames_before_a_resume_point_are_read_back_by_their_timestamps(
    reader_settings: Settings,
) -> None:
    """``read_before``: per partition, the records published from ``span_s`` before the
    resume point's timestamp up to (not including) its offset; other partitions' records,
    older ones and the resume point's own are left out."""
    topic = reader_settings.topics.frames
    base_ms = int(time.time() * 1000) - 600_000
    producer = KafkaProducer(**client_options(reader_settings.kafka), acks="all")
    try:
        for second in range(60):  # a record a second on partitions 2 and 6, 10 min ago
            for partition in (2, 6):
                producer.send(
                    topic, key=b"gw", value=f"{partition}:{second}".encode(),
                    partition=partition, timestamp_ms=base_ms + 1000 * second,
                )  # fmt: skip
        producer.flush()
    finally:
        producer.close()
    reader = PartitionReader(reader_settings)
    try:
        # Resuming partition 2 at offset 40 (published at second 40), 15 s back: 25..39;
        # partition 6 at its start: nothing before it; partition 1: nothing at all.
        found = await reader.read_before(
            topic, {2: (40, (base_ms + 40_000) / 1000), 6: (0, base_ms / 1000), 1: (0, 0.0)}, 15.0
        )
        assert [m.value for m in found[2]] == [f"2:{s}".encode() for s in range(25, 40)]
        assert found[6] == [] and found[1] == []
        # The snapshots are read as before, with the same consumer.
        send(reader_settings, {0: [("dev-a", b"a1")]})
        assert await reader.read_each([0, 2]) == {0: {"dev-a": b"a1"}, 2: {}}
    finally:
        await asyncio.wait_for(reader.close(), 10)
