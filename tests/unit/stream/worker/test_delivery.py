"""The worker glue's commit rules: which records Faust may see as acked, and when."""

from __future__ import annotations

from dataclasses import dataclass, field

from faust.types.tuples import ConsumerMessage

from stream.worker.delivery import AckGate, withhold


@dataclass
class Consumer:
    """Records final acks the way Faust's consumer does (the offsets it may commit)."""

    acked: list[tuple[int, int]] = field(default_factory=list)

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append((message.partition, message.offset))
        return True


@dataclass
class Event:
    """A Faust event as the agent sees it: a real message, acked through the consumer."""

    message: ConsumerMessage
    consumer: Consumer

    def ack(self) -> bool:
        return self.message.ack(self.consumer)


def batch(consumer: Consumer, *positions: tuple[int, int]) -> dict[tuple[int, int], Event]:
    events = {}
    for partition, offset in positions:
        message = ConsumerMessage("frames", partition, offset, 0.0, 0, None, b"k", b"v", None)
        message.incref()  # the one stream that delivers it, as Faust's conductor does
        events[(partition, offset)] = Event(message, consumer)
    return events


def take_events_done(events: dict[tuple[int, int], Event]) -> None:
    for event in events.values():  # what take_events does when the agent asks for more
        event.ack()


def test_nothing_after_a_held_record_is_acked_until_its_frame_is_released():
    consumer, gate = Consumer(), AckGate()
    first = batch(consumer, (0, 10), (0, 11), (0, 12), (1, 5))
    gate.hold(first, held=[(0, 11)])
    take_events_done(first)
    assert consumer.acked == [(0, 10), (1, 5)]  # 11 is held, 12 comes after it
    second = batch(consumer, (0, 13), (1, 6))
    gate.hold(second, held=[])
    take_events_done(second)
    assert consumer.acked[2:] == [(1, 6)]
    assert gate.waiting() == 3
    gate.release([(0, 11)])  # its frame is in an output that is now durable
    assert consumer.acked[3:] == [(0, 11), (0, 12), (0, 13)]
    assert gate.waiting() == 0


def test_release_acks_only_up_to_the_next_held_record():
    consumer, gate = Consumer(), AckGate()
    events = batch(consumer, (0, 1), (0, 2), (0, 3), (0, 4))
    gate.hold(events, held=[(0, 2), (0, 3)])
    take_events_done(events)
    gate.release([(0, 3)])  # released out of order (the device restarted its counter)
    assert consumer.acked == [(0, 1)]
    gate.release([(0, 2)])
    assert consumer.acked == [(0, 1), (0, 2), (0, 3), (0, 4)]


def test_a_record_held_and_released_in_one_batch_is_acked_once():
    consumer, gate = Consumer(), AckGate()
    events = batch(consumer, (0, 7), (0, 8))
    gate.hold(events, held=[(0, 7)])
    gate.release([(0, 7)])  # the gap filled within the batch
    take_events_done(events)
    assert consumer.acked == [(0, 7), (0, 8)]


def test_a_withheld_batch_is_never_acked():
    consumer = Consumer()
    events = batch(consumer, (0, 1), (0, 2))
    withhold(list(events.values()))
    take_events_done(events)
    assert consumer.acked == []
