"""The Faust app: topics, tables and thin agents around :class:`stream.worker.pipeline.Pipeline`.

Owns only the glue. Everything a batch does is in ``stream/pipeline.py``; here:

- ``process_frames``: ``stream.take_events(batch_size, within=batch_within_s)`` →
  ``pipeline.process`` → alerts and dead letters published *and acknowledged by the
  broker* → lines written durably (to InfluxDB, or while it is down to the sink's fsync'd
  local spool, drained back by a timer; the sink blocks only when the spool is full)
  → alert-tracker state saved to its table → only then does the loop ask for the next
  batch, which is when Faust acks this one's offsets. Offsets are therefore committed
  only for data that is durable. A batch that cannot be made durable (the spool's disk
  fails, a bug) is *withheld* — never acked, so no commit passes it — and the worker
  stops with an error; its restart (by the supervisor: systemd, compose) replays it.
  Frames the reorder buffer holds back are in no output yet: their records, and every
  later record of their partition, stay unacked until the output that finally carries
  them is durable (:class:`AckGate`).
- ``track_enrolments``: enrolments → pseudonymized contexts (a table; raw ids stay in ingest).
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
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from stream.config import Settings
from stream.kafka import client_options
from stream.records import ModelRollout
from stream.scoring.scorer import Scorer
from stream.sinks.influx import InfluxSink, pipeline_line
from stream.worker.ingest import Position, RawRecord
from stream.worker.metrics import WorkerMetrics
from stream.worker.pipeline import Output, Pipeline, StateStore

log = logging.getLogger(__name__)

TICK_S = 1.0
SPOOL_DRAIN_S = 2.0


class _DeviceKeyed(MutableMapping[str, Any]):
    """A Faust table keyed by raw device-id bytes, seen as a mapping keyed by ``str``."""

    def __init__(self, table: MutableMapping[bytes, Any]) -> None:
        self.table = table

    def __getitem__(self, device_id: str) -> Any:
        return self.table[device_id.encode()]

    def __setitem__(self, device_id: str, value: Any) -> None:
        self.table[device_id.encode()] = value

    def __delitem__(self, device_id: str) -> None:
        del self.table[device_id.encode()]

    def __contains__(self, device_id: object) -> bool:
        return isinstance(device_id, str) and device_id.encode() in self.table

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.table)

    def __len__(self) -> int:
        return len(self.table)


class Runtime:
    """What the agents share: the pipeline, the sink and the metrics of this worker."""

    def __init__(self, settings: Settings, pipeline: Pipeline, sink: InfluxSink) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.sink = sink
        self.metrics = WorkerMetrics(pipeline.worker)
        self.metrics.record_models(pipeline.versions())
        self.topics: dict[str, faust.TopicT] = {}
        self.gate = AckGate()

    async def deliver(self, output: Output) -> None:
        """Publish alerts and dead letters (broker-acknowledged), then write durably."""
        sent = []
        alerts, deadletters = self.topics["alerts"], self.topics["deadletter"]
        for alert in output.alerts:
            sent.append(await alerts.send(key=alert.patient.encode(), value=alert.to_json()))
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
        self.gate.release(output.unheld)

    async def handle(self, batch: Sequence[faust.EventT]) -> None:
        """One batch of frames, from records to durable alerts, points and state."""
        events = {(e.message.partition, e.message.offset): e for e in batch}
        records = [
            RawRecord(e.message.key, e.message.value, *position) for position, e in events.items()
        ]
        output = self.pipeline.process(records)
        self.gate.hold(events, output.held)
        self.record(output)
        await self.deliver(output)

    def record(self, output: Output) -> None:
        m = output.metrics
        if m:
            self.metrics.record_batch(
                m["frames"], m["windows"], m["duplicates"], m["deadletter_reasons"],
                m["alerts"], m["batch_s"], m["scoring_s"], m["newest_frame_t"],
            )  # fmt: skip
        for alert in output.alerts:
            log.info(
                "alert %s %s %s (%s) ward=%s",
                alert.event, alert.kind, alert.priority, alert.alert_id, alert.ward,
            )  # fmt: skip


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


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def stream_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic a worker reads or writes, with its configs (for ``ensure_topics``)."""
    topics = settings.topics
    return {
        topics.frames: {},
        topics.enrolments: {"cleanup.policy": "compact"},
        topics.alerts: {},
        topics.deadletter: {},
        topics.control: {},
    }


def create_app(
    settings: Settings, scorer: Scorer | None = None, datadir: Path | None = None
) -> tuple[faust.App, Runtime]:
    """The Faust app of one worker process and its shared runtime."""
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
        web_enabled=False,
        web_tables_enabled=False,
        datadir=str(workers_dir / stream.app_id),
    )
    topics = settings.topics
    frames = app.topic(topics.frames, key_type=bytes, value_type=bytes)
    enrolments = app.topic(topics.enrolments, key_type=bytes, value_type=bytes)
    runtime_topics = {
        "alerts": app.topic(topics.alerts, key_type=bytes, value_type=bytes),
        "deadletter": app.topic(topics.deadletter, key_type=bytes, value_type=bytes),
    }

    # Table keys are the device id as raw bytes, exactly as producers key frames, so
    # use_partitioner (murmur2 on the key) puts each device's state in the changelog
    # partition its frames come from. Values: contexts as JSON bytes, the rest as JSON.
    def table(name: str, value_type: type | None) -> _DeviceKeyed:
        return _DeviceKeyed(
            app.Table(name, key_type=bytes, value_type=value_type, use_partitioner=True)
        )

    store = StateStore(
        contexts=table("contexts", bytes),
        trackers=table("alert_state", None),
        last_seen=table("last_seen", None),
    )
    pipeline = Pipeline(
        settings,
        scorer if scorer is not None else Scorer.from_registry(settings),
        store,
        worker=worker_name(),
    )
    sink = InfluxSink(settings)
    runtime = Runtime(settings, pipeline, sink)
    runtime.topics = runtime_topics

    async def stop_worker(what: str, exc: Exception, records: Sequence[faust.EventT]) -> None:
        """Stop the worker without committing ``records``; its restart replays them."""
        withhold(records)
        detail = str(exc).splitlines()[0] if str(exc) else ""
        log.critical(
            "%s could not be made durable (%s: %s); stopping the worker without committing "
            "it, a restart replays it", what, type(exc).__name__, detail,
        )  # fmt: skip
        await app.crash(exc)
        # Park until the stopping worker cancels this task: raising instead would let Faust
        # restart an agent, which would go on acking later records, and one acked offset
        # right behind withheld ones lets a commit skip them.
        await asyncio.Event().wait()

    @app.agent(frames)
    async def process_frames(events: faust.StreamT) -> None:
        async for batch in events.take_events(stream.batch_size, within=stream.batch_within_s):
            try:
                await runtime.handle(batch)
            except asyncio.CancelledError:
                withhold(batch)  # stopped mid-batch: the next owner replays it
                raise
            except Exception as exc:
                await stop_worker(f"a batch of {len(batch)} frames", exc, batch)

    @app.agent(enrolments)
    async def track_enrolments(events: faust.StreamT) -> None:
        async for event in events.events():
            message = event.message
            record = RawRecord(message.key, message.value, message.partition, message.offset)
            try:
                await runtime.deliver(runtime.pipeline.enrol(record))
            except asyncio.CancelledError:
                withhold([event])
                raise
            except Exception as exc:
                await stop_worker("an enrolment", exc, [event])

    @app.task
    async def follow_rollouts() -> None:
        consumer = AIOKafkaConsumer(
            topics.control,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            **client_options(settings.kafka, "aiokafka"),
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
            log.info("following model rollouts on %s", topics.control)
            async for message in consumer:
                await _apply_rollout(runtime, message.value)
        finally:
            await consumer.stop()

    @app.timer(interval=TICK_S)
    async def check_devices() -> None:
        output = runtime.pipeline.tick()
        if output.alerts or output.lines or output.unheld:
            runtime.record(output)
            try:
                await runtime.deliver(output)
            except Exception as exc:
                # Released frames' records are still unacked (AckGate): a restart replays them.
                await stop_worker("the frames and alerts of a tick", exc, [])

    @app.timer(interval=SPOOL_DRAIN_S)
    async def drain_spool() -> None:
        # Batches spooled while InfluxDB was down go back as soon as it answers again.
        await runtime.sink.drain()

    @app.timer(interval=stream.metrics_every_s)
    async def report_metrics() -> None:
        runtime.metrics.devices.set(len(runtime.pipeline.trackers))
        text = pipeline_line(runtime.pipeline.worker, runtime.metrics.snapshot(), time.time())
        await runtime.sink.write([text])

    @app.task
    async def serve_metrics() -> None:
        port = runtime.metrics.serve(stream.web_port)
        log.info("Prometheus metrics on http://127.0.0.1:%d/metrics", port)

    return app, runtime


async def _apply_rollout(runtime: Runtime, value: bytes | None) -> None:
    scorer = runtime.pipeline.scorer
    if scorer is None or value is None:
        return
    try:
        rollout = ModelRollout.from_json(value)
    except ValueError as exc:
        log.error("ignoring a malformed rollout message: %s", str(exc).splitlines()[0])
        return
    # Loading a session takes a while: off the loop. The swap itself happens on the loop,
    # between batches, so no batch sees a half-installed model.
    model = await asyncio.to_thread(scorer.try_prepare, rollout)
    if model is not None:
        scorer.install(model, shadow=rollout.shadow)
        runtime.metrics.record_models(scorer.versions())
