"""The publisher's partitioner picks what kafka-python's default would (no broker)."""

from __future__ import annotations

import pytest
from kafka.partitioner.default import DefaultPartitioner

from producers.publisher import KeyHashCachingPartitioner


class _Cluster:
    """The three questions a partitioner asks of kafka-python's ClusterMetadata."""

    def __init__(self, partitions: set[int]) -> None:
        self._partitions = partitions

    def topics(self) -> set[str]:
        return {"vitals.raw"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._partitions if topic == "vitals.raw" else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


@pytest.mark.parametrize("partitions", [{0}, {0, 1, 2, 3, 4, 5}, {3, 1, 7}])
def test_keys_land_where_the_default_partitioner_puts_them(partitions: set[int]) -> None:
    cluster = _Cluster(partitions)
    cached, default = KeyHashCachingPartitioner(), DefaultPartitioner()
    keys = [f"dev-{i:04d}".encode() for i in range(300)] + [b"", b"\xff" * 9]
    for _ in range(2):  # the second round is answered from the cache
        for key in keys:
            chosen = cached.partition("vitals.raw", key, key, None, None, cluster)
            assert chosen == default.partition("vitals.raw", key, key, None, None, cluster)
    spread = {cached.partition("vitals.raw", k, k, None, None, cluster) for k in keys}
    assert spread == partitions


def test_keyless_records_still_get_a_partition() -> None:
    cluster = _Cluster({0, 1})
    chosen = KeyHashCachingPartitioner().partition("vitals.raw", None, None, b"v", b"v", cluster)
    assert chosen in {0, 1}
