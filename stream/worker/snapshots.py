"""Per-device state snapshots in a compacted topic: what survives a restart or a partition move.

Owns the durable form of each device's small state (its pseudonymized enrolment context,
its alert-tracker state, when it was last heard from, its ECG beat detector's state:
filter and integration history, levels, held candidates, recent beats, a few KB that
change with every frame; its streaming models' state: each GRU's hidden state and conv
context by model@version, float32, under 1 KB; its window schedule: the end of its newest
window whose output is durable, and where each waveform ring ended at the checkpoint), the
snapshot topic's name, and reading a partition's snapshots back, and the frames before a
resume point that a restored device's ring buffers refill from (:meth:`PartitionReader.
read_before`, see ``stream.replay_margin_s``). It replaces Faust's changelog tables, whose recovery
could hang a worker that took over a killed one's partitions for minutes (issue 21):
nothing here waits on a recovery phase, a fetcher or a stream buffer.

- One record per device, keyed by the device id, written explicitly to the partition
  number its frames come in on (a gateway batch's partition is its gateway's, not the
  device's key hash; the snapshot topic has as many partitions as the frames topic:
  checked when read). A device whose frames move to another partition leaves a
  tombstone on the old one, so that partition's next owner does not restore it.
- Written by the worker at each checkpoint (every ``stream.checkpoint_s``), after the
  alerts and points of the batches it covers are durable and before their records may be
  committed (:mod:`stream.worker.app`); the topic is compacted, so reading a partition
  from the start gives the newest snapshot of each of its devices.
- Read lazily: the first records of partitions this worker has not loaded wait for those
  partitions' snapshots, read together (:meth:`PartitionReader.read_each`: a read costs
  round trips, not records), so no frame is processed on empty state.
- Reference data every worker follows whole, whatever partitions it owns
  (:class:`TopicFollower`: every partition from the beginning, no group): the compacted
  enrolments topic (a device's enrolment is on the partition of its own key, its frames on
  its gateway's) and the group's device directory (:class:`DirectoryEntry`: which
  partition each device's frames come in on now, so a worker seeing a device arrive from
  another partition restores it from that partition's snapshot). Frames wait until both
  followers have read what their topics held when the worker started, so none is
  processed "unenrolled" because of ordering.

Alert snapshots: an alert id is made once, when a batch triggers the alert (a UUID5 of
the onset second, :mod:`stream.alerts.lifecycle`), and a replay after a crash makes the
same id only if it reaches the same onset. It need not: a worker restored from the last
checkpoint without its rings refilled (or a device that moved partitions) has empty ring
buffers, so its first windows come ``window_s`` later and a condition under way is seen
to begin later (CI's two-worker fault test once saw a tachycardia raised twice under two
ids, the owner killed a second after the trigger); refilled, what no snapshot holds (the
vitals' trend history) may still tip a window the other way. So
before a batch's alerts are published, each device that triggers one gets a snapshot of
the tracker state that batch reached (the rest of it as the last checkpoint left it)
with an *outbox*: the alerts about to be published. The outbox goes before the alerts,
broker-acknowledged: a worker that dies before the alerts are acknowledged leaves them
in it, and the device's next owner re-publishes them (same ids, same bytes; consumers
dedupe on ``alert_id``); one that dies after leaves them published, and the restored
tracker, having judged the windows up to that batch, raises none of them again. The next
checkpoint's snapshot, taken once the alerts are acknowledged, carries no outbox.

Pure encode/decode plus the aiokafka reader; the store is :mod:`stream.worker.state`'s.

>>> from stream.worker.state import StateStore
>>> store = StateStore(trackers={"dev-1": {"last_t": 5.0}}, last_seen={"dev-1": 6.0})
>>> value = encode(store, "dev-1")
>>> restored = StateStore()
>>> apply(restored, "dev-1", value)
>>> restored.trackers["dev-1"], restored.last_seen["dev-1"], "dev-1" in restored.contexts
({'last_t': 5.0}, 6.0, False)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from stream.config import Settings
from stream.kafka import client_options, snapshot_topic
from stream.worker.state import StateStore

log = logging.getLogger(__name__)

FORMAT = 1
READ_TIMEOUT_S = 60.0
# How long the broker may hold a reader's fetch that finds no record (aiokafka's default
# is 500 ms). A read stops at end offsets it knows, so waiting for records to come is of
# no use; but the fetch sent on reaching the end is still held when the next read starts,
# and that read's offset requests queue behind it on the same connection: measured, each
# read of an empty partition took 0.5-1 s at the default.
READ_FETCH_WAIT_MS = 10
# How long one getmany waits for fetched records; it returns as soon as any arrive.
READ_POLL_MS = 500
# The most records a refill reads per partition (read_before): a minute of a partition
# carrying 1,000 devices a message each, more than a 15 s margin holds; a bound on what a
# producer that stamped its records oddly could make a takeover read.
REFILL_MAX_RECORDS = 60_000
FOLLOW_POLL_MS = 500


def encode(
    store: StateStore,
    device_id: str,
    tracker: dict[str, Any] | None = None,
    outbox: Iterable[bytes] = (),
) -> bytes:
    """The device's snapshot: all it has in ``store`` (missing parts as null).

    ``tracker`` and ``outbox``: an alert snapshot (see "Alert snapshots" above), the
    tracker state a batch reached in place of the store's, and the alerts (JSON) that
    batch is about to publish.
    """
    context = store.contexts.get(device_id)
    detector = store.detectors.get(device_id)
    pulses = store.pulse_detectors.get(device_id)
    models = store.models.get(device_id)
    return orjson.dumps(
        {
            "format": FORMAT,
            "context": orjson.Fragment(context) if context is not None else None,
            "tracker": tracker if tracker is not None else store.trackers.get(device_id),
            "last_seen": store.last_seen.get(device_id),
            "windowed": store.windowed.get(device_id),
            "rings": store.rings.get(device_id),
            "ecg_detector": base64.b64encode(detector).decode() if detector else None,
            "ppg_detector": base64.b64encode(pulses).decode() if pulses else None,
            "model_state": orjson.Fragment(models) if models else None,
            "outbox": [alert.decode() for alert in outbox] or None,
        }
    )


def apply(store: StateStore, device_id: str, value: bytes | None) -> None:
    """Put a snapshot back into ``store`` (a tombstone, ``None``, removes the device)."""
    for part in (store.contexts, store.trackers, store.last_seen, store.detectors,
                 store.pulse_detectors, store.models, store.outbox,
                 store.windowed, store.rings):  # fmt: skip
        part.pop(device_id, None)
    if value is None:
        return
    snapshot = orjson.loads(value)
    if snapshot.get("format") != FORMAT:
        raise ValueError(f"snapshot format {snapshot.get('format')!r}, expected {FORMAT}")
    if snapshot["context"] is not None:
        store.contexts[device_id] = orjson.dumps(snapshot["context"])
    if snapshot["tracker"] is not None:
        store.trackers[device_id] = snapshot["tracker"]
    if snapshot["last_seen"] is not None:
        store.last_seen[device_id] = float(snapshot["last_seen"])
    if snapshot.get("ecg_detector"):  # absent from snapshots written before it existed
        store.detectors[device_id] = base64.b64decode(snapshot["ecg_detector"])
    if snapshot.get("ppg_detector"):  # likewise
        store.pulse_detectors[device_id] = base64.b64decode(snapshot["ppg_detector"])
    if snapshot.get("model_state"):  # likewise
        store.models[device_id] = orjson.dumps(snapshot["model_state"])
    if snapshot.get("windowed") is not None:  # absent from snapshots written before it
        store.windowed[device_id] = float(snapshot["windowed"])
    if snapshot.get("rings"):  # likewise
        store.rings[device_id] = snapshot["rings"]
    if snapshot.get("outbox"):  # an alert snapshot's (absent from the others)
        store.outbox[device_id] = [alert.encode() for alert in snapshot["outbox"]]


@dataclass(frozen=True)
class DirectoryEntry:
    """Where a device's frames come in now: its partition, the worker that first processed
    them there, and when (wall time). Written when a worker first processes a device on a
    partition (a new device, or a move); the newest entry of a device is the truth.

    >>> entry = DirectoryEntry(partition=3, worker="host-12", t=1700000000.0)
    >>> DirectoryEntry.decode(entry.encode()) == entry
    True
    """

    partition: int
    worker: str
    t: float

    def encode(self) -> bytes:
        return orjson.dumps({"partition": self.partition, "worker": self.worker, "t": self.t})

    @classmethod
    def decode(cls, value: bytes) -> DirectoryEntry:
        raw = orjson.loads(value)
        return cls(partition=int(raw["partition"]), worker=str(raw["worker"]), t=float(raw["t"]))


class PartitionReader:
    """Reads whole partitions of the worker's keyed topics (group-less aiokafka consumer)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = snapshot_topic(settings)
        self._consumer: Any = None

    async def _started(self) -> Any:
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                group_id=None,
                enable_auto_commit=False,
                # Reads stop at end offsets taken before they start: no long poll for
                # records to come (see READ_FETCH_WAIT_MS). A position the log no longer
                # holds restarts at its beginning, never at its end (which would skip
                # snapshots).
                fetch_max_wait_ms=READ_FETCH_WAIT_MS,
                auto_offset_reset="earliest",
                **client_options(self.settings.kafka, "aiokafka"),
            )
            await consumer.start()
            frames = await _partition_count(consumer, self.settings.topics.frames)
            count = await _partition_count(consumer, self.topic)
            if count != frames:
                await consumer.stop()
                raise RuntimeError(
                    f"{self.topic} has {count} partitions and {self.settings.topics.frames} "
                    f"{frames}: a device's state must live in its frames' partition number"
                )
            self._consumer = consumer
        return self._consumer

    async def read_each(
        self, partitions: Iterable[int], topic: str | None = None
    ) -> dict[int, dict[str, bytes | None]]:
        """Per partition, the newest value per key in these partitions of ``topic`` (the
        snapshot topic by default), read together up to their end offsets as they stood
        when called; ``None`` for a deleted key, ``{}`` for a partition with no record.

        Round trips, not records, are what a read of a few snapshots costs: one
        ListOffsets for the beginnings and one for the ends of all the partitions, then
        fetches from those positions (set locally, no offset reset) of the partitions
        holding records only; none at all when every partition is empty."""
        from aiokafka import TopicPartition

        consumer = await self._started()
        tps = [TopicPartition(topic or self.topic, p) for p in sorted(set(partitions))]
        found: dict[int, dict[str, bytes | None]] = {tp.partition: {} for tp in tps}
        if not tps:
            return found
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        waiting = {tp for tp in tps if ends[tp] > starts[tp]}
        if not waiting:
            return found

        def keep(tp: Any, messages: list[Any]) -> None:
            values = found[tp.partition]
            for message in messages:
                if message.key is not None:
                    values[message.key.decode()] = message.value

        await _read_ranges(consumer, {tp: starts[tp] for tp in waiting}, ends, keep)
        return found

    async def read_before(
        self, topic: str, resume_at: dict[int, tuple[int, float]], span_s: float
    ) -> dict[int, list[Any]]:
        """Per partition ``p`` of ``resume_at`` (``p -> (offset, timestamp_s)``: where a
        worker resumes reading ``topic``, and that record's Kafka timestamp), the records
        before ``offset`` published from ``span_s`` before that timestamp on, at most
        :data:`REFILL_MAX_RECORDS` of them (the newest): the frames a restored device's
        ring buffers refill from (:meth:`~stream.worker.pipeline.Pipeline.refill`); none
        where nothing is held before ``offset`` (a partition read from its start)."""
        from aiokafka import TopicPartition

        consumer = await self._started()
        tps = {p: TopicPartition(topic, p) for p in sorted(resume_at)}
        found: dict[int, list[Any]] = {p: [] for p in tps}
        if not tps:
            return found
        beginnings = await consumer.beginning_offsets(list(tps.values()))
        times = await consumer.offsets_for_times(
            {tp: max(int((resume_at[p][1] - span_s) * 1000), 0) for p, tp in tps.items()}
        )
        starts: dict[Any, int] = {}
        stops: dict[Any, int] = {}
        for p, tp in tps.items():
            stop = resume_at[p][0]
            at = times.get(tp)
            published = at.offset if at is not None else stop  # none that late: none
            start = max(published, beginnings[tp], stop - REFILL_MAX_RECORDS)
            if start < stop:
                starts[tp], stops[tp] = start, stop
        if not stops:
            return found

        def keep(tp: Any, messages: list[Any]) -> None:
            found[tp.partition].extend(m for m in messages if m.offset < stops[tp])

        await _read_ranges(consumer, starts, stops, keep)
        return found

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


OnRecord = Callable[[Any], Awaitable[None]]


class TopicFollower:
    """Follows every partition of a (compacted) topic from the beginning, without a
    consumer group, for the life of the worker: reference data every worker needs
    whatever partitions it owns. ``on_record`` gets each aiokafka record in order;
    :attr:`ready` is set once the follower has read up to the end offsets it found when
    it started (what the topic held then)."""

    def __init__(self, settings: Settings, topic: str, on_record: OnRecord) -> None:
        self.settings = settings
        self.topic = topic
        self.on_record = on_record
        self.ready = asyncio.Event()

    async def wait_ready(self, timeout_s: float = READ_TIMEOUT_S) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"reading {self.topic} took over {timeout_s:.0f} s") from None

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            **client_options(self.settings.kafka, "aiokafka"),
        )
        await consumer.start()
        try:
            count = await _partition_count(consumer, self.topic)
            tps = [TopicPartition(self.topic, p) for p in range(count)]
            # The end offsets before anything is assigned: once assigned, the fetcher's
            # long poll of a topic with nothing to fetch yet holds the connection that
            # the offset request would queue behind (0.5 s for an empty topic).
            ends = await consumer.end_offsets(tps)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            behind = {tp for tp in tps if ends[tp] > 0}
            if not behind:
                self.ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=FOLLOW_POLL_MS)
                for records in batches.values():
                    for record in records:
                        await self.on_record(record)
                if behind:
                    for tp in list(behind):
                        if await consumer.position(tp) >= ends[tp]:
                            behind.discard(tp)
                    if not behind:
                        log.info("%s read to the end (%d partitions)", self.topic, count)
                        self.ready.set()
        finally:
            await consumer.stop()


async def _read_ranges(
    consumer: Any,
    starts: dict[Any, int],
    stops: dict[Any, int],
    keep: Callable[[Any, list[Any]], None],
) -> None:
    """Read each partition of ``starts`` from its start offset until its position reaches
    its stop offset, handing every fetched batch to ``keep``; all together, within
    :data:`READ_TIMEOUT_S`. The partitions are left paused, not unassigned: an empty
    assignment would refresh the metadata of every topic (which the next read's offsets
    wait for), and aiokafka's fetcher can swallow the consumer's stop if it comes while
    an assignment change is being applied (the stop then never returns)."""
    consumer.assign(sorted(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    waiting = set(starts)
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while waiting:
            if time.monotonic() > deadline:
                topic = next(iter(waiting)).topic
                raise TimeoutError(f"reading {topic} took over {READ_TIMEOUT_S:.0f} s")
            batches = await consumer.getmany(*waiting, timeout_ms=READ_POLL_MS)
            for tp, messages in batches.items():
                keep(tp, messages)
            # Every waiting partition, not only those that returned records: a batch of
            # compacted-away or control records moves the position and returns none.
            for tp in list(waiting):
                if await consumer.position(tp) >= stops[tp]:
                    waiting.discard(tp)
    finally:
        consumer.pause(*consumer.assignment())


async def _partition_count(consumer: Any, topic: str) -> int:
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return len(partitions)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} not found")
