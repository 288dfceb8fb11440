"""The commit rules of the worker: which offsets it may commit, and when.

Owns :class:`CommitLedger`, the one authority on what this worker commits, and
:func:`guard_commits`, which makes a Faust consumer ask it. A record is *taken* when a
batch (or enrolment) reaches the agent and *durable* once the output carrying it is: its
alerts and dead letters acknowledged by the broker, its points in InfluxDB or the sink's
fsync'd spool, the state it reached saved. A partition is committed up to its first taken
record that is not durable yet, never past it. That covers, with one rule:

- frames the reorder buffer holds: in no output yet, they stay open until the output that
  finally carries them (a later batch's, or a tick's) is durable;
- a batch that cannot be made durable: it stays open for good, and the worker stops;
  its next owner replays it;
- records Faust acks on its own: on a rebalance or a stop it acks the messages it skips,
  and its gap check misses one unacked offset right at the committed position (it commits
  102 over acked ``[101]`` with 100 committed, see the unit tests), so a single record a
  failing batch left behind could be committed past. Faust's acks no longer decide.

Pure bookkeeping: :class:`CommitLedger` imports nothing from Faust. ``docs/architecture.md``
states the contract this enforces.

>>> ledger = CommitLedger()
>>> ledger.taken([("frames", 0, 10), ("frames", 0, 11), ("frames", 0, 12)])
>>> ledger.durable([("frames", 0, 10), ("frames", 0, 12)])  # 11 is held for a gap
>>> ledger.commit_offset(("frames", 0))  # the next owner starts reading at 11
11
>>> ledger.durable([("frames", 0, 11)])
>>> ledger.commit_offset(("frames", 0))
13
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

Partition = tuple[str, int]  # (topic, partition); Faust's TP is this named tuple
Record = tuple[str, int, int]  # (topic, partition, offset)


class CommitLedger:
    """Per partition: the records taken and not yet durable, and how far it is durable."""

    def __init__(self) -> None:
        self._open: dict[Partition, set[int]] = {}
        self._durable_to: dict[Partition, int] = {}  # one past the highest durable offset

    def taken(self, records: Iterable[Record]) -> None:
        """Records the agent has received; open until :meth:`durable` says otherwise."""
        for topic, partition, offset in records:
            self._open.setdefault((topic, partition), set()).add(offset)

    def durable(self, records: Iterable[Record]) -> None:
        """Records whose output is durable (or that produce none: duplicates, dead letters)."""
        for topic, partition, offset in records:
            key = (topic, partition)
            still_open = self._open.get(key)
            if still_open is not None:
                still_open.discard(offset)
                if not still_open:
                    del self._open[key]
            if offset + 1 > self._durable_to.get(key, 0):
                self._durable_to[key] = offset + 1

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions this worker no longer owns: their next owner starts from the commit."""
        for key in partitions:
            self._open.pop(tuple(key), None)  # type: ignore[call-overload]
            self._durable_to.pop(tuple(key), None)  # type: ignore[call-overload]

    def commit_offset(self, partition: Partition) -> int | None:
        """The offset to commit (the next one to read), or None when nothing is durable.

        Every record taken below the first open one is durable; the first open one is
        where a restart must begin.
        """
        still_open = self._open.get(partition)
        if still_open:
            return min(still_open)
        return self._durable_to.get(partition)

    def partitions(self) -> set[Partition]:
        return set(self._open) | set(self._durable_to)

    def open_records(self) -> int:
        """Records taken whose output is not durable yet (held frames, batches in flight)."""
        return sum(len(offsets) for offsets in self._open.values())


def guard_commits(consumer: Any, ledger: CommitLedger) -> None:
    """Make a Faust consumer commit what ``ledger`` says, whatever it has acked.

    Faust commits every ``broker_commit_interval``, on a rebalance and on stop, each time
    from its own list of acked offsets; both hooks it asks are replaced here. Its acked
    lists are emptied on every commit so they do not grow, since they no longer decide.
    The agents must report every record of the consumer's acking topics to the ledger.
    Tested against the pinned faust-streaming in ``tests/unit/stream/worker``.
    """

    def pending(topics: Any = None) -> Iterator[Any]:
        known = ledger.partitions()
        for tp in consumer.assignment():
            if tp in known and (topics is None or tp in topics or tp.topic in topics):
                yield tp

    def new_offset(tp: Any) -> int | None:
        for bookkeeping in (consumer._acked, consumer._acked_index):
            if tp in bookkeeping:
                bookkeeping[tp].clear()
        consumer._gap.pop(tp, None)
        return ledger.commit_offset(tp)

    consumer._filter_tps_with_pending_acks = pending
    consumer._new_offset = new_offset
