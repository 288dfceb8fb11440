"""The commit rules of the worker: which records Faust may count as processed, and when.

Owns the two mechanisms that keep "offsets are committed only after the data is durable"
true on top of Faust's ``take_events``, which acks a whole batch when the agent leaves it:

- :class:`AckGate`: frames the reorder buffer holds are in no output yet, so their
  records, and every later record of their partition, stay unacked until the output
  carrying them is durable.
- :func:`withhold`: a batch that could not be made durable is kept out of every commit
  this worker makes, so the next owner of its partitions replays it.

Faust types only: no I/O. ``docs/architecture.md`` states the contract these enforce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import faust

from stream.worker.ingest import Position


class AckGate:
    """Keeps a partition's records from being committed past one whose frame is held.

    ``take_events`` acks a whole batch once the agent is done with it, but a frame the
    reorder buffer holds is in no output yet. Faust commits a partition up to its first
    unacked offset, except that its gap check misses a single unacked offset right at the
    committed position (and any gap before the partition's first commit). So this gate
    never lets Faust see an acked record *after* a held one: from the first held record
    on, each record of that partition gets one extra reference, dropped in offset order
    as held frames are released and become durable.
    """

    def __init__(self) -> None:
        self._held: dict[int, set[int]] = {}  # partition → offsets of held records
        self._waiting: dict[int, dict[int, faust.EventT]] = {}  # partition → offset → event

    def hold(self, events: Mapping[Position, faust.EventT], held: Sequence[Position]) -> None:
        """Before the batch is acked: keep back its held records and all after them."""
        for partition, offset in held:
            self._held.setdefault(partition, set()).add(offset)
        first_held = {partition: min(offsets) for partition, offsets in self._held.items()}
        if not first_held:
            return
        for (partition, offset), event in events.items():
            if offset >= first_held.get(partition, offset + 1):
                event.message.incref()
                self._waiting.setdefault(partition, {})[offset] = event

    def release(self, unheld: Sequence[Position]) -> None:
        """Once the output carrying these held frames is durable: ack up to the next hold."""
        for partition, offset in unheld:
            offsets = self._held.get(partition)
            if offsets is not None:
                offsets.discard(offset)
        for partition in {partition for partition, _ in unheld}:
            offsets = self._held.get(partition)
            first_held = min(offsets) if offsets else None
            if not offsets:
                self._held.pop(partition, None)
            waiting = self._waiting.get(partition, {})
            for offset in sorted(waiting):
                if first_held is not None and offset >= first_held:
                    break
                waiting.pop(offset).ack()
            if not waiting:
                self._waiting.pop(partition, None)

    def waiting(self) -> int:
        return sum(len(events) for events in self._waiting.values())


def withhold(batch: Sequence[faust.EventT]) -> None:
    """Keep a batch's offsets out of every commit this worker makes from now on.

    Faust acks a ``take_events`` batch when the agent leaves it, by an exception too, and
    commits what was acked when an agent fails or the worker stops. A message already
    marked acked is never recorded as processed, so its partition's committed offset stays
    before it and the next worker to own the partition reads it again.
    """
    for event in batch:
        event.message.acked = True
