"""The Faust app: topics and thin agents around :class:`~stream.worker.pipeline.Pipeline`.

Owns only the glue. Everything a batch does is in :mod:`stream.worker.pipeline`; the commit
rules are :mod:`stream.worker.delivery`. The agents, timers and tasks are methods of one
:class:`Worker` (importable and testable without a running app); :func:`create_app`
registers them on a Faust app:

- ``process_frames``: ``stream.take_events(batch_size, within=batch_within_s)`` →
  ``pipeline.process`` → (a device triggering an alert: its alert snapshot, the tracker
  state and the alerts in an outbox, see :mod:`stream.worker.snapshots`) → alerts and
  dead letters published *and acknowledged by the broker* → lines written durably (to
  InfluxDB, or while it is down to the sink's fsync'd local spool, drained back by a
  timer; the sink blocks only when the spool is full) → every ``stream.checkpoint_s``, a
  checkpoint: the snapshots of the devices whose state changed published
  (broker-acknowledged) to the compacted snapshot topic (:mod:`stream.worker.snapshots`)
  → only then are the records of the batches it covers marked durable in the
  :class:`~stream.worker.delivery.CommitLedger`, which alone decides what the consumer
  commits (:func:`~stream.worker.delivery.guard_commits`): each partition up to its
  first record not durable yet. A batch that cannot be made durable (the spool's disk
  fails, a bug) stays open in the ledger and the worker stops with an error; its restart
  (by the supervisor: systemd, compose) replays it. Frames the reorder buffer holds back
  are in no output yet: their records stay open until the output that finally carries
  them is durable.
- ``track_enrolments``: the dead letters of malformed enrolments, published once (by the
  worker whose group owns the enrolment's partition, committed like frames). The
  enrolments themselves are reference data every worker needs, whatever partitions it
  owns (a device's enrolment is on its own key's partition, its frames on its gateway's):
  each worker follows the whole compacted topic (``follow_enrolments``, no group) into
  pseudonymized contexts (raw ids stay in ingest).
- state: no Faust tables (their recovery could hang a surviving worker for minutes). The
  first record of a partition this worker has not loaded waits for that partition's
  snapshots, and for the enrolments and the device directory to be read up to where they
  stood when the worker started; a partition lost in a rebalance is forgotten (ledger,
  devices, order state), one kept across a rebalance keeps its in-memory state (nobody
  else processed it).
- moves: a device's frames come in on its gateway's partition, which changes when it
  roams to another gateway. The group's compacted device directory (``follow_directory``,
  read whole by every worker) says where each device's frames come in now. A device
  arriving from a partition another worker owns is restored from its snapshot there
  before its frames are processed (:meth:`Worker.adopt`); the worker it left forgets it
  (no silence alert, no snapshot) and tombstones its old snapshot. A move between two
  partitions of one worker keeps the state in memory; the next checkpoint moves the
  snapshot. See "Gateways, partitions and moves" in ``docs/architecture.md``.
- rollouts: every worker reads the whole control topic with its own group-less consumer
  (a consumer group would give each rollout to one worker only) and hot-swaps models.
- timers: reorder-buffer release and ``device_silent`` checks every second; worker
  metrics to the ``pipeline`` measurement every ``stream.metrics_every_s``.

Faust's web server is off (``web_enabled=False``, and its ``/table`` views off as well):
its table views would serve patient state over HTTP. Prometheus metrics are served by
prometheus-client on 127.0.0.1 instead. Workers scale by partitions (one consumer group
per ``stream.app_id``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer

from stream.config import Settings
from stream.kafka import client_options, directory_topic, snapshot_topic
from stream.records import ModelRollout
from stream.scoring.scorer import Scorer
from stream.sinks.influx import InfluxSink
from stream.sinks.measurements import pipeline_line
from stream.worker import snapshots
from stream.worker.delivery import CommitLedger, Record, guard_commits
from stream.worker.ingest import Position, RawRecord, dead_letter, decode_enrolment
from stream.worker.metrics import WorkerMetrics
from stream.worker.pipeline import Output, Pipeline

log = logging.getLogger(__name__)

TICK_S = 1.0
SPOOL_DRAIN_S = 2.0


class Worker:
    """One worker process's agents, timers and tasks, around its pipeline, sink and metrics.

    ``app`` is the Faust app whose ``crash`` stops the worker; ``topics`` the topics it
    publishes alerts and dead letters to (``{"alerts": ..., "deadletter": ...}``).
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        sink: InfluxSink,
        app: faust.App,
        topics: dict[str, faust.TopicT],
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.sink = sink
        self.app = app
        self.topics = topics
        self.metrics = WorkerMetrics(pipeline.worker)
        self.metrics.record_models(pipeline.versions())
        self.ledger = CommitLedger()
        self.reader = snapshots.PartitionReader(settings)
        self.loaded: set[int] = set()  # partitions whose devices' snapshots are in memory
        # Reference data followed whole by every worker: the enrolments (into the
        # pipeline's contexts) and the device directory (device → where its frames are).
        self.enrolments = snapshots.TopicFollower(
            settings, settings.topics.enrolments, self.on_enrolment
        )
        self.directory_follower = snapshots.TopicFollower(
            settings, directory_topic(settings), self.on_directory
        )
        self.directory: dict[str, snapshots.DirectoryEntry] = {}
        # Devices the directory moved to a partition another worker owns, with the one
        # they left here: forgotten between batches (:meth:`apply_departures`).
        self._departures: dict[str, int] = {}
        self._adopting = False  # a decoded batch waits for arrivals' snapshots
        self._loading = asyncio.Lock()
        self._revoked: set[int] = set()
        # Since the last checkpoint: records whose output is durable (committable once the
        # state they produced is), and devices whose snapshot moved.
        self._pending: list[Record] = []
        self._dirty: set[str] = set()
        self._checkpointed_at = time.monotonic()
        # One checkpoint at a time (a device's snapshots go out in the order they were
        # taken), and none from the timer while a batch is between processing and its
        # durable output (a checkpoint then would publish state ahead of that output).
        self._checkpointing = asyncio.Lock()
        self._in_batch = False
        # Devices whose alerts are on their way (deliver): the tracker state that raised
        # them and the alerts (JSON), which every snapshot of theirs carries meanwhile.
        self._outbox: dict[str, tuple[dict[str, Any] | None, list[bytes]]] = {}

    # -- the delivery of one output ------------------------------------------------------
    async def deliver(self, output: Output, records: Sequence[Record] = ()) -> None:
        """Publish alerts and dead letters (broker-acknowledged), then write durably; then
        ``records`` and the held frames this output carries wait for the next checkpoint
        (:meth:`checkpoint`), after which they may be committed. A device that triggers
        an alert gets an alert snapshot first (:meth:`save_outbox`)."""
        payloads = [alert.to_json() for alert in output.alerts]
        outbox = await self.save_outbox(output, payloads)
        sent = []
        alerts, deadletters = self.topics["alerts"], self.topics["deadletter"]
        for alert, payload in zip(output.alerts, payloads, strict=True):
            sent.append(await alerts.send(key=alert.patient.encode(), value=payload))
        for key, letter in output.deadletters:
            sent.append(await deadletters.send(key=key, value=letter.to_json()))
        if sent:
            await asyncio.gather(*sent)
        started = time.monotonic()
        written = await self.sink.write(output.lines)
        stats = self.sink.stats
        self.metrics.record_write(
            time.monotonic() - started, written, stats.write_failures, stats.backpressure
        )
        self.pipeline.save(output)
        self.release_outbox(outbox)
        self._dirty.update(output.state)
        self._dirty.update(output.enrolled)
        self._pending += records
        self._pending += self.frames_records(output.unheld)

    async def save_outbox(self, output: Output, payloads: list[bytes]) -> dict[str, list[bytes]]:
        """Alert snapshots (see :mod:`stream.worker.snapshots`): each device whose alerts
        in ``output`` trigger one, its snapshot with the tracker state ``output`` reached
        and those alerts (``payloads``) in its outbox, broker-acknowledged before any of
        them is published. Returns the alerts put in outboxes, by device."""
        triggering = {alert.device_id for alert in output.alerts if alert.event == "triggered"}
        if not triggering:
            return {}
        outbox: dict[str, list[bytes]] = {}
        for alert, payload in zip(output.alerts, payloads, strict=True):
            if alert.device_id in triggering:
                outbox.setdefault(alert.device_id, []).append(payload)
        async with self._checkpointing:  # in order with the checkpoints' snapshots
            for device, alerts in outbox.items():
                state, waiting = self._outbox.get(device, (None, []))
                self._outbox[device] = (output.state.get(device, state), waiting + alerts)
            await self.save_snapshots(set(outbox))
        return outbox

    def release_outbox(self, outbox: dict[str, list[bytes]]) -> None:
        """The alerts of a delivered output are published and its tracker state saved:
        snapshots need not carry them any more."""
        for device, alerts in outbox.items():
            entry = self._outbox.get(device)
            if entry is None:
                continue
            waiting = [alert for alert in entry[1] if alert not in alerts]
            if waiting:
                self._outbox[device] = (entry[0], waiting)
            else:
                del self._outbox[device]

    async def republish(self) -> None:
        """The alerts in the outboxes of the snapshots just restored, published again
        (broker-acknowledged) before their devices' frames are processed here."""
        restored = self.pipeline.take_restored_alerts()
        if not restored:
            return
        topic = self.topics["alerts"]
        sent = [
            await topic.send(key=str(orjson.loads(alert)["patient"]).encode(), value=alert)
            for alert in restored
        ]
        await asyncio.gather(*sent)
        log.info("%d alerts from restored snapshots' outboxes published again", len(restored))

    def checkpoint_due(self) -> bool:
        return time.monotonic() - self._checkpointed_at >= self.settings.stream.checkpoint_s

    async def checkpoint(self) -> None:
        """The devices' state as it stands, for those whose state moved, published to the
        snapshot topic (broker-acknowledged); only then are the records of the outputs
        delivered before it durable in the ledger, hence committable.

        Taken between batches (by the agent after a batch's delivery, or by the timer
        when no batch is under way), the state is that of every batch delivered. A tick's
        output still on its way may be in it too: its released frames' records stay open
        (they join the pending records only once that output is durable), so no commit
        passes them, and a replay from the commit feeds the detectors samples they already
        hold (skipped) and raises the tick's alerts again under the same ids. A failure
        leaves the records open: the worker stops and a restart replays them from the
        previous checkpoint's state."""
        async with self._checkpointing:
            moved = self.pipeline.take_moves()
            devices = self._dirty | self.pipeline.checkpoint() | set(moved)
            pending = self._pending
            self._dirty, self._pending = set(), []
            self._checkpointed_at = time.monotonic()
            await self.save_snapshots(devices)
            # A move within this worker: the snapshot on the new partition, then the
            # directory saying so, then the old one's tombstone. Stopped in between, the
            # worker finds the device's latest snapshot where the directory says.
            await self.claim(
                {d: p for d in moved if (p := self.pipeline.partition_of(d)) is not None}
            )
            await self.save_snapshots(set(), moved)
            self.ledger.durable(pending)

    async def save_snapshots(self, devices: set[str], moved: dict[str, int] | None = None) -> None:
        """The devices' snapshots, each to the partition its frames come in on now (a
        gateway's, not its own key's), and a tombstone on the partition each ``moved``
        device left, so that partition's next owner does not restore stale state."""
        topic, store = self.topics["snapshots"], self.pipeline.store
        sent = []
        for device in sorted(devices):
            partition = self.pipeline.partition_of(device)
            if partition is None:
                continue  # not processed here (or moved away): not ours to save
            tracker, outbox = self._outbox.get(device, (None, []))
            value = snapshots.encode(store, device, tracker, outbox)
            sent.append(await topic.send(key=device.encode(), value=value, partition=partition))
        for device, left in sorted((moved or {}).items()):
            sent.append(await topic.send(key=device.encode(), value=None, partition=left))
        if sent:
            await asyncio.gather(*sent)

    async def ensure_loaded(
        self, partitions: set[int], resume_at: dict[int, tuple[int, float]] | None = None
    ) -> None:
        """The devices of these partitions as their snapshots left them, before any of
        their records is processed here; ``resume_at``: where this worker resumes each
        partition (offset, Kafka timestamp), for the refill of its restored devices' ring
        buffers (:meth:`refill`)."""
        if partitions <= self.loaded:
            return
        restored: dict[int, set[str]] = {}
        # Enrolments published before these frames first, or they would be processed as
        # "unenrolled"; and the directory, or a device that moved would not be restored.
        await self.enrolments.wait_ready()
        await self.directory_follower.wait_ready()
        async with self._loading:
            # One read for all of them: each read costs round trips, not records.
            loading = await self.reader.read_each(partitions - self.loaded)
            for partition, found in sorted(loading.items()):
                # A snapshot left behind by a device the directory places elsewhere (its
                # old owner died before its tombstone): not this partition's device.
                stale = {d for d in found if self.placed_elsewhere(d, partition)}
                kept = {d: v for d, v in found.items() if d not in stale}
                self.pipeline.restore(partition, kept)
                restored[partition] = {d for d, v in kept.items() if v is not None}
                self.loaded.add(partition)
                log.info(
                    "partition %d: %d device snapshots loaded (%d of devices now elsewhere)",
                    partition, len(found) - len(stale), len(stale),
                )  # fmt: skip
            await self.republish()
            await self.refill(resume_at or {}, restored)

    async def refill(
        self, resume_at: dict[int, tuple[int, float]], restored: dict[int, set[str]]
    ) -> None:
        """The ring buffers of devices just restored, refilled from the frames of the
        ``stream.replay_margin_s`` before where this worker resumes their partitions
        (:meth:`Pipeline.refill <stream.worker.pipeline.Pipeline.refill>`): their first
        windows then come at once rather than ``window_s`` after the first frame read."""
        margin = self.settings.stream.replay_margin_s
        wanted = {p: at for p, at in resume_at.items() if restored.get(p)}
        if margin <= 0 or not wanted:
            return
        read = await self.reader.read_before(self.settings.topics.frames, wanted, margin)
        for partition, messages in sorted(read.items()):
            records = [RawRecord(m.key, m.value, m.partition, m.offset) for m in messages]
            written = self.pipeline.refill(records, restored[partition], time.time())
            log.info(
                "partition %d: %d frames of its %d restored devices refilled from the %d "
                "records before offset %d", partition, written, len(restored[partition]),
                len(records), wanted[partition][0],
            )  # fmt: skip

    def placed_elsewhere(self, device_id: str, partition: int) -> bool:
        entry = self.directory.get(device_id)
        return entry is not None and entry.partition != partition

    async def adopt(self, arrivals: dict[str, int]) -> None:
        """Devices first seen here whose directory entry names another partition (their
        frames came through another gateway before), restored from their snapshot there
        before any of their frames is processed here; their snapshot copied to the
        partition they arrived on, then the directory says they are here (on which the
        worker they left forgets them)."""
        sources: dict[int, dict[str, int]] = {}
        for device_id, partition in arrivals.items():
            entry = self.directory.get(device_id)
            if entry is not None and entry.partition != partition:
                sources.setdefault(entry.partition, {})[device_id] = partition
        if not sources:
            return
        copies = []
        async with self._loading:
            read = await self.reader.read_each(sources)
            for source, devices in sorted(sources.items()):
                found = read[source]
                for device_id, partition in sorted(devices.items()):
                    value = found.get(device_id)
                    self.pipeline.adopt(device_id, value, partition)
                    if value is not None:
                        copies.append((device_id, value, partition))
                log.info(
                    "%d devices moved here from partition %d (%d with a snapshot)",
                    len(devices), source, sum(1 for d in devices if found.get(d)),
                )  # fmt: skip
            await self.republish()
        topic = self.topics["snapshots"]
        sent = [
            await topic.send(key=device_id.encode(), value=value, partition=partition)
            for device_id, value, partition in copies
        ]
        await asyncio.gather(*sent)
        await self.claim({d: p for devices in sources.values() for d, p in devices.items()})

    async def claim(self, claims: dict[str, int]) -> None:
        """Directory entries for devices this worker processes on a partition the
        directory does not say yet (new devices, moves); broker-acknowledged."""
        topic, sent = self.topics["directory"], []
        for device_id, partition in sorted(claims.items()):
            entry = self.directory.get(device_id)
            if entry is not None and entry.partition == partition:
                continue
            entry = snapshots.DirectoryEntry(partition, self.pipeline.worker, time.time())
            self.directory[device_id] = entry
            sent.append(await topic.send(key=device_id.encode(), value=entry.encode()))
        if sent:
            await asyncio.gather(*sent)

    async def on_directory(self, record: Any) -> None:
        """A directory entry (``TopicFollower``): a device known here that it moves to a
        partition this worker does not own has left; it is forgotten between batches."""
        if record.key is None:
            return
        device_id = record.key.decode()
        if record.value is None:
            self.directory.pop(device_id, None)
            return
        try:
            entry = snapshots.DirectoryEntry.decode(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an unreadable directory entry: %s", exc)
            return
        self.directory[device_id] = entry
        here = self.pipeline.partition_of(device_id)
        if here is not None and entry.partition != here and entry.partition not in self.loaded:
            self._departures[device_id] = here

    async def apply_departures(self) -> None:
        """Forget the devices that moved to another worker's partition (no silence alert,
        no snapshot of them from here) and tombstone their snapshots on the partitions
        they left. Between batches only: a batch under way may still carry their frames."""
        departures, self._departures = self._departures, {}
        gone = {
            d: p for d, p in departures.items()
            if self.pipeline.partition_of(d) == p and self.placed_elsewhere(d, p)
            and self.directory[d].partition not in self.loaded
        }  # fmt: skip
        if not gone:
            return
        self.pipeline.forget(sorted(gone), moved=True)
        self._dirty -= set(gone)
        log.info("%d devices moved to partitions other workers own: forgotten", len(gone))
        async with self._checkpointing:  # after any snapshot of theirs under way
            await self.save_snapshots(set(), gone)

    async def on_enrolment(self, record: Any) -> None:
        """An enrolment (``TopicFollower``): the device's pseudonymized context, whichever
        worker processes its frames. Malformed ones are ``track_enrolments``' to
        dead-letter; a tombstone changes nothing (enrolments are not deleted so)."""
        if record.value is None:
            return
        self.pipeline.enrol(RawRecord(record.key, record.value, record.partition, record.offset))

    def on_revoked(self, partitions: set[int]) -> None:
        # Eager rebalancing revokes everything, then assigns; what is assigned back was
        # processed by nobody else in between, so its state is kept until then.
        self._revoked |= partitions

    def on_assigned(self, partitions: set[int]) -> None:
        lost, self._revoked = self._revoked - partitions, set()
        if not lost:
            return
        gone = self.pipeline.devices_in(lost)
        self.pipeline.forget(gone)
        for device in gone:
            self._outbox.pop(device, None)
        # Their next owner starts from the commit with the last checkpoint's snapshots: a
        # snapshot published from here now would overwrite them with nothing.
        self._dirty -= set(gone)
        self._pending = [r for r in self._pending if r[1] not in lost]
        self.loaded -= lost
        self.ledger.forget(
            (topic, p) for topic in (self.settings.topics.frames, self.settings.topics.enrolments)
            for p in lost
        )  # fmt: skip

    def frames_records(self, positions: Sequence[Position]) -> list[Record]:
        topic = self.settings.topics.frames
        return [(topic, partition, offset) for partition, offset in positions]

    async def handle(self, batch: Sequence[faust.EventT], now: float | None = None) -> None:
        """One batch of frames, from records to durable alerts, points and state
        (``now``: the wall clock, for tests and replays)."""
        records = [
            RawRecord(e.message.key, e.message.value, e.message.partition, e.message.offset)
            for e in batch
        ]
        taken = [(e.message.topic, e.message.partition, e.message.offset) for e in batch]
        self.ledger.taken(taken)
        partitions = {partition for _, partition, _ in taken}
        if not partitions <= self.loaded:
            await self.ensure_loaded(partitions, resume_points(batch))
        await self.apply_departures()
        self._in_batch = True
        try:
            ingested = self.pipeline.decode(records, now)
            self._adopting = True  # no tick between the two halves of the batch
            try:
                await self.adopt(self.pipeline.arrivals(ingested))
            finally:
                self._adopting = False
            output = self.pipeline.finish(ingested)
            held = set(self.frames_records(output.held))
            self.record(output)
            await self.deliver(output, [record for record in taken if record not in held])
            await self.claim(self.pipeline.take_claims())
        finally:
            self._in_batch = False
        if self.checkpoint_due():
            await self.checkpoint()

    def record(self, output: Output) -> None:
        if output.metrics is not None:
            self.metrics.record_batch(output.metrics)
        for alert in output.alerts:
            log.info(
                "alert %s %s %s (%s) ward=%s",
                alert.event, alert.kind, alert.priority, alert.alert_id, alert.ward,
            )  # fmt: skip

    async def stop(self, what: str, exc: Exception) -> None:
        """Stop the worker; what could not be made durable stays open in the ledger, so
        no commit passes it and its restart replays it."""
        detail = str(exc).splitlines()[0] if str(exc) else ""
        log.critical(
            "%s could not be made durable (%s: %s); stopping the worker without committing "
            "it, a restart replays it", what, type(exc).__name__, detail,
        )  # fmt: skip
        await self.app.crash(exc)
        # Park until the stopping worker cancels this task: raising instead would let Faust
        # restart the agent, which would go on processing with its commits stuck behind
        # the open batch, a stall nobody would see.
        await asyncio.Event().wait()

    # -- agents --------------------------------------------------------------------------
    async def process_frames(self, events: faust.StreamT) -> None:
        """Agent on the frames topic: batches until the worker stops."""
        stream = self.settings.stream
        async for batch in events.take_events(stream.batch_size, within=stream.batch_within_s):
            try:
                await self.handle(batch)
            except asyncio.CancelledError:
                raise  # stopped mid-batch: open in the ledger, the next owner replays it
            except Exception as exc:
                await self.stop(f"a batch of {len(batch)} frames", exc)

    async def track_enrolments(self, events: faust.StreamT) -> None:
        """Agent on the enrolments topic (in the group: each record reaches one worker):
        malformed enrolments dead-lettered once. The contexts come from the follower
        every worker runs (:meth:`follow_enrolments`)."""
        async for event in events.events():
            message = event.message
            record = RawRecord(message.key, message.value, message.partition, message.offset)
            taken = [(message.topic, message.partition, message.offset)]
            self.ledger.taken(taken)
            try:
                await self.deliver(self.enrolment_letters(record), taken)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.stop("an enrolment", exc)

    def enrolment_letters(self, record: RawRecord) -> Output:
        """The dead letter of a malformed enrolment (as :meth:`Ingest.enrol` makes it),
        without touching the contexts: the follower may be ahead of this agent, and an
        older enrolment must not replace a newer one."""
        output = Output()
        decoded = decode_enrolment(record.value, self.settings)
        if isinstance(decoded, str):
            # It carries the raw patient id: the dead letter keeps the reason and position.
            redacted = record._replace(value=b"")
            letter = dead_letter(redacted, decoded, self.settings.topics.enrolments, time.time())
            output.deadletters.append((record.key, letter))
        return output

    # -- tasks ---------------------------------------------------------------------------
    async def follow_enrolments(self) -> None:
        """Every worker reads the whole enrolments topic (no group), for as long as it runs."""
        await self.enrolments.run()

    async def follow_directory(self) -> None:
        """Every worker reads the whole device directory (no group), likewise."""
        await self.directory_follower.run()

    async def follow_rollouts(self) -> None:
        """Every worker reads the whole control topic (no group) and hot-swaps models."""
        control = self.settings.topics.control
        consumer = AIOKafkaConsumer(
            control,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            **client_options(self.settings.kafka, "aiokafka"),
        )
        await consumer.start()
        try:
            # Rollouts made before this worker started are already in the PROMOTED
            # markers it loaded: follow from the end, resolved before saying so.
            while not consumer.assignment():
                await asyncio.sleep(0.1)
            assigned = list(consumer.assignment())
            await consumer.seek_to_end(*assigned)
            for partition in assigned:
                await consumer.position(partition)
            log.info("following model rollouts on %s", control)
            async for message in consumer:
                await self.apply_rollout(message.value)
        finally:
            await consumer.stop()

    async def apply_rollout(self, value: bytes | None) -> None:
        scorer = self.pipeline.scorer
        if scorer is None or value is None:
            return
        try:
            rollout = ModelRollout.from_json(value)
        except ValueError as exc:
            log.error("ignoring a malformed rollout message: %s", str(exc).splitlines()[0])
            return
        # Loading a session takes a while: off the loop. The swap itself happens on the
        # loop, between batches, so no batch sees a half-installed model.
        model = await asyncio.to_thread(scorer.try_prepare, rollout)
        if model is not None:
            scorer.install(model, shadow=rollout.shadow)
            self.metrics.record_models(scorer.versions())

    async def serve_metrics(self) -> None:
        port = self.metrics.serve(self.settings.stream.web_port)
        log.info("Prometheus metrics on http://127.0.0.1:%d/metrics", port)

    # -- timers --------------------------------------------------------------------------
    async def check_devices(self) -> None:
        # No parameter: Faust passes the app to a timer function that takes one.
        await self.check_devices_at(None)

    async def check_devices_at(self, now: float | None) -> None:
        """Frames held past the reorder bound, and silent devices; a checkpoint when one
        is due and no batch came to make it (a quiet stream still gets committed)."""
        if self._adopting:
            return  # a decoded batch waits for its arrivals: its frames go first
        try:
            if not self._in_batch:
                await self.apply_departures()
        except Exception as exc:
            await self.stop("the tombstones of devices that moved away", exc)
        output = self.pipeline.tick(now)
        try:
            if output.alerts or output.lines or output.unheld or output.state:
                self.record(output)
                await self.deliver(output)
            idle = not self._in_batch and (self._pending or self._dirty)
            if idle and self.checkpoint_due():
                await self.checkpoint()
        except Exception as exc:
            # Released frames' records are still open in the ledger: a restart replays them.
            await self.stop("the frames and alerts of a tick", exc)

    async def drain_spool(self) -> None:
        # Batches spooled while InfluxDB was down go back as soon as it answers again.
        await self.sink.drain()

    async def report_metrics(self) -> None:
        self.metrics.devices.set(len(self.pipeline.trackers))
        text = pipeline_line(self.pipeline.worker, self.metrics.snapshot(), time.time())
        try:
            await self.sink.write([text])
        except Exception as exc:
            # Metrics are not patient data: a failed write here must not be what stops the
            # worker. The lines stay in the sink's buffer; the batch that next writes them
            # decides, and stops the worker with its own reason if they cannot be written.
            log.warning("worker metrics not written: %s: %s", type(exc).__name__, exc)


def resume_points(batch: Sequence[faust.EventT]) -> dict[int, tuple[int, float]]:
    """Each partition's first record in ``batch`` (offset, Kafka timestamp in s): where a
    worker that has not loaded that partition resumes it. Records without a timestamp
    are left out."""
    found: dict[int, tuple[int, float]] = {}
    for event in batch:
        message = event.message
        timestamp = getattr(message, "timestamp", None)
        if timestamp is None:
            continue
        first = found.get(message.partition)
        if first is None or message.offset < first[0]:
            found[message.partition] = (message.offset, float(timestamp))
    return found


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def create_app(
    settings: Settings, scorer: Scorer | None = None, datadir: Path | None = None
) -> tuple[faust.App, Worker]:
    """The Faust app of one worker process, with its :class:`Worker` registered on it."""
    stream = settings.stream
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per write is noise
    workers_dir = datadir or Path(settings.services.data_dir).parent / "workers"
    workers_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        stream.app_id,
        **client_options(settings.kafka, "faust"),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Faust's own topics (its assignor's) replicated like ours.
        topic_replication_factor=settings.kafka.replication_factor or 1,
        broker_session_timeout=stream.session_timeout_s,
        broker_heartbeat_interval=stream.heartbeat_s,
        broker_rebalance_timeout=stream.rebalance_timeout_s,
        broker_commit_interval=stream.commit_interval_s,
        web_enabled=False,
        web_tables_enabled=False,
        datadir=str(workers_dir / stream.app_id),
    )
    topics = settings.topics

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes)

    pipeline = Pipeline(
        settings,
        scorer if scorer is not None else Scorer.from_registry(settings),
        worker=worker_name(),
    )
    worker = Worker(
        settings,
        pipeline,
        InfluxSink(settings),
        app,
        {
            "alerts": topic(topics.alerts),
            "deadletter": topic(topics.deadletter),
            "snapshots": topic(snapshot_topic(settings)),
            "directory": topic(directory_topic(settings)),
        },
    )
    # Agents keep the names they always had (Faust otherwise names them by qualname).
    app.agent(topic(topics.frames), name="process_frames")(worker.process_frames)
    app.agent(topic(topics.enrolments), name="track_enrolments")(worker.track_enrolments)
    app.task(worker.follow_enrolments)
    app.task(worker.follow_directory)
    app.task(worker.follow_rollouts)
    app.task(worker.serve_metrics)
    app.timer(interval=TICK_S)(worker.check_devices)
    app.timer(interval=SPOOL_DRAIN_S)(worker.drain_spool)
    app.timer(interval=stream.metrics_every_s)(worker.report_metrics)
    # The ledger, not Faust's acks, decides every commit; partitions given away are forgotten
    # (their next owner starts from the commit; a stale open record would block it forever).
    guard_commits(app.consumer, worker.ledger)

    ours = {topics.frames, topics.enrolments}

    async def revoked(sender: object, revoked: set, **_: object) -> None:
        worker.on_revoked({tp.partition for tp in revoked if tp.topic in ours})

    async def assigned(sender: object, assigned: set, **_: object) -> None:
        worker.on_assigned({tp.partition for tp in assigned if tp.topic in ours})

    app.on_partitions_revoked.connect(revoked)
    app.on_partitions_assigned.connect(assigned)
    return app, worker
