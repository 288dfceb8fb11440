"""How long a worker waits for its partitions' snapshots before its first batch.

Owns one measurement on the real broker: a fresh snapshot topic (and frames topic, which
:class:`~stream.worker.snapshots.PartitionReader` checks it against) of ``--partitions``
partitions, a few keyed records and a tombstone in some partitions, the others empty;
then, with one started reader, ``--rounds`` times each of

- ``per-partition``: one read per partition, in turn (how ``Worker.ensure_loaded`` read
  them before it read them together);
- ``together``: one ``read_each`` of all of them (where the reader has none, one
  ``read`` of all of them merged).

Every read's result is checked against what was produced (newest value per key, ``None``
for a tombstone, ``{}`` for an empty partition). The topics are deleted afterwards.

    python -m stream.tools.bench.snapshot_read --partitions 8 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from stream.config import Settings, load_settings
from stream.kafka import client_options, snapshot_topic
from stream.worker.snapshots import PartitionReader

Expected = dict[int, dict[str, bytes | None]]
CLOSE_TIMEOUT_S = 5.0


def fresh_settings(settings: Settings) -> Settings:
    """``settings`` with a frames topic and app id (hence snapshot topic) of their own."""
    tag = f"snapbench{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={
            "topics": settings.topics.model_copy(update={"frames": f"{tag}.frames"}),
            "stream": settings.stream.model_copy(update={"app_id": f"vitalstream-{tag}"}),
        }
    )


def fill(settings: Settings, partitions: int) -> Expected:
    """Every third partition gets three devices written twice (the second value is the
    newest) and, on all but the first such partition, one device's tombstone; the rest
    stay empty. What each partition then holds."""
    producer = KafkaProducer(**client_options(settings.kafka), acks="all")
    topic = snapshot_topic(settings)
    expected: Expected = {p: {} for p in range(partitions)}
    for p in range(0, partitions, 3):
        for round_ in range(2):
            for device in range(3):
                key, value = f"dev-{p}-{device}", f'{{"p":{p},"round":{round_}}}'.encode()
                producer.send(topic, key=key.encode(), value=value, partition=p)
                expected[p][key] = value
        if p:
            producer.send(topic, key=f"dev-{p}-0".encode(), value=None, partition=p)
            expected[p][f"dev-{p}-0"] = None
    producer.flush()
    producer.close()
    return expected


async def measure(settings: Settings, expected: Expected, rounds: int) -> dict[str, Any]:
    reader = PartitionReader(settings)
    started = time.monotonic()
    await reader._started()
    figures: dict[str, Any] = {"start_s": time.monotonic() - started}
    partitions = sorted(expected)
    together = getattr(reader, "read_each", None)
    per_partition: list[float] = []
    all_at_once: list[float] = []
    try:
        for _ in range(rounds):
            started = time.monotonic()
            for p in partitions:
                if together is not None:
                    found = (await together([p]))[p]
                else:  # the reader before read_each
                    found = await reader.read([p])
                assert found == expected[p], (p, found, expected[p])
            per_partition.append(time.monotonic() - started)
            started = time.monotonic()
            if together is not None:
                found_each = await together(partitions)
                all_at_once.append(time.monotonic() - started)
                assert found_each == expected, (found_each, expected)
            else:  # one read of all, merged (no keys are shared across partitions here)
                merged = await reader.read(partitions)
                all_at_once.append(time.monotonic() - started)
                assert merged == {k: v for p in partitions for k, v in expected[p].items()}
    finally:
        # Before read_each, the reader's consumer could hang in stop (aiokafka's fetcher
        # swallows the cancel if it comes during an assignment change).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.close(), CLOSE_TIMEOUT_S)
    figures["per_partition_s"] = per_partition
    figures["together_s"] = all_at_once
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = fresh_settings(load_settings())
    topics = [settings.topics.frames, snapshot_topic(settings)]
    admin = KafkaAdminClient(**client_options(settings.kafka))
    admin.create_topics([NewTopic(t, args.partitions, 1) for t in topics])
    try:
        expected = fill(settings, args.partitions)
        figures = asyncio.run(measure(settings, expected, args.rounds))
    finally:
        admin.delete_topics(topics)
        admin.close()
    print(f"partitions {args.partitions}, reader start {figures['start_s']:.3f} s")
    for name in ("per_partition_s", "together_s"):
        values = figures[name]
        if values:
            shown = " ".join(f"{v:.3f}" for v in values)
            print(f"{name}: median {statistics.median(values):.3f} s ({shown})")


if __name__ == "__main__":
    main()
