"""The worker glue's commit rules: what a worker may commit, and that Faust obeys them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from stream.worker.delivery import CommitLedger, guard_commits

FRAMES = TP("frames", 0)


def records(*offsets: int, tp: TP = FRAMES) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, offset) for offset in offsets]


def test_a_held_record_keeps_its_partition_from_being_committed_past_it():
    ledger = CommitLedger()
    ledger.taken(records(10, 11, 12) + records(5, tp=TP("frames", 1)))
    ledger.durable(records(10, 12) + records(5, tp=TP("frames", 1)))  # 11 waits for a gap
    assert ledger.commit_offset(FRAMES) == 11
    assert ledger.commit_offset(TP("frames", 1)) == 6
    ledger.taken(records(13))
    ledger.durable(records(13))
    assert ledger.commit_offset(FRAMES) == 11
    assert ledger.open_records() == 1
    ledger.durable(records(11))  # its frame is in an output that is now durable
    assert ledger.commit_offset(FRAMES) == 14
    assert ledger.open_records() == 0


def test_a_batch_that_never_became_durable_blocks_its_partitions_for_good():
    ledger = CommitLedger()
    ledger.taken(records(1, 2))
    ledger.durable(records(1, 2))
    ledger.taken(records(3))  # the failing batch: one record of this partition
    ledger.taken(records(4, 5))
    ledger.durable(records(4, 5))  # later records, durable (a tick, a skipped message)
    assert ledger.commit_offset(FRAMES) == 3


def test_nothing_durable_yet_commits_nothing_and_forgotten_partitions_start_afresh():
    ledger = CommitLedger()
    assert ledger.commit_offset(FRAMES) is None
    ledger.taken(records(7))
    ledger.forget([FRAMES])  # revoked while open: the next owner replays from the commit
    assert ledger.commit_offset(FRAMES) is None
    assert ledger.partitions() == set()


class FaustConsumer:
    """Faust's own commit arithmetic on its own bookkeeping, without a broker."""

    _new_offset = Consumer._new_offset
    _should_commit = Consumer._should_commit
    _filter_committable_offsets = Consumer._filter_committable_offsets
    _filter_tps_with_pending_acks = Consumer._filter_tps_with_pending_acks

    def __init__(self, committed: int, acked: list[int]) -> None:
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset[FRAMES] = committed
        self._acked: dict[TP, list[int]] = defaultdict(list, {FRAMES: list(acked)})
        self._acked_index: dict[TP, set[int]] = defaultdict(set, {FRAMES: set(acked)})
        self._gap: dict[TP, Any] = defaultdict(IntervalTree)

    def assignment(self) -> set[TP]:
        return {FRAMES}

    def commits(self) -> dict[TP, int]:
        return self._filter_committable_offsets(self._filter_tps_with_pending_acks())


def test_faust_alone_commits_past_a_single_unacked_record_at_the_committed_offset():
    """Why Faust's acks may not decide: offset 100 was never acked (a failing batch left
    it), 101 was (a message Faust skipped and acked while stopping); Faust commits 102."""
    assert FaustConsumer(committed=100, acked=[101]).commits() == {FRAMES: 102}
    assert FaustConsumer(committed=100, acked=[102]).commits() == {}  # two missing: caught


def test_a_guarded_consumer_commits_what_the_ledger_says():
    consumer, ledger = FaustConsumer(committed=100, acked=[101]), CommitLedger()
    guard_commits(consumer, ledger)
    ledger.taken(records(100, 101))
    ledger.durable(records(101))
    assert consumer.commits() == {}  # 100 is still open: nothing to commit beyond it
    assert consumer._acked[FRAMES] == []  # Faust's own list is emptied, not left to grow
    ledger.durable(records(100))
    assert consumer.commits() == {FRAMES: 102}
