"""The Faust app: topics, tables and thin agents around :class:`~stream.worker.pipeline.Pipeline`.

Owns only the glue. Everything a batch does is in :mod:`stream.worker.pipeline`; the commit
rules are :mod:`stream.worker.delivery`. The agents, timers and tasks are methods of one
:class:`Worker` (importable and testable without a running app); :func:`create_app`
registers them on a Faust app:

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
  them is durable (:class:`~stream.worker.delivery.AckGate`).
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
from collections.abc import Sequence
from pathlib import Path

import faust
from aiokafka import AIOKafkaConsumer

from stream.config import Settings
from stream.kafka import client_options
from stream.records import ModelRollout
from stream.scoring.scorer import Scorer
from stream.sinks.influx import InfluxSink
from stream.sinks.measurements import pipeline_line
from stream.worker.delivery import AckGate, withhold
from stream.worker.ingest import RawRecord
from stream.worker.metrics import WorkerMetrics
from stream.worker.pipeline import Output, Pipeline
from stream.worker.state import DeviceKeyed, StateStore

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
        self.gate = AckGate()

    # -- the delivery of one output ------------------------------------------------------
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
        if output.metrics is not None:
            self.metrics.record_batch(output.metrics)
        for alert in output.alerts:
            log.info(
                "alert %s %s %s (%s) ward=%s",
                alert.event, alert.kind, alert.priority, alert.alert_id, alert.ward,
            )  # fmt: skip

    async def stop(self, what: str, exc: Exception, records: Sequence[faust.EventT]) -> None:
        """Stop the worker without committing ``records``; its restart replays them."""
        withhold(records)
        detail = str(exc).splitlines()[0] if str(exc) else ""
        log.critical(
            "%s could not be made durable (%s: %s); stopping the worker without committing "
            "it, a restart replays it", what, type(exc).__name__, detail,
        )  # fmt: skip
        await self.app.crash(exc)
        # Park until the stopping worker cancels this task: raising instead would let Faust
        # restart an agent, which would go on acking later records, and one acked offset
        # right behind withheld ones lets a commit skip them.
        await asyncio.Event().wait()

    # -- agents --------------------------------------------------------------------------
    async def process_frames(self, events: faust.StreamT) -> None:
        """Agent on the frames topic: batches until the worker stops."""
        stream = self.settings.stream
        async for batch in events.take_events(stream.batch_size, within=stream.batch_within_s):
            try:
                await self.handle(batch)
            except asyncio.CancelledError:
                withhold(batch)  # stopped mid-batch: the next owner replays it
                raise
            except Exception as exc:
                await self.stop(f"a batch of {len(batch)} frames", exc, batch)

    async def track_enrolments(self, events: faust.StreamT) -> None:
        """Agent on the enrolments topic: each enrolment becomes a pseudonymized context."""
        async for event in events.events():
            message = event.message
            record = RawRecord(message.key, message.value, message.partition, message.offset)
            try:
                await self.deliver(self.pipeline.enrol(record))
            except asyncio.CancelledError:
                withhold([event])
                raise
            except Exception as exc:
                await self.stop("an enrolment", exc, [event])

    # -- tasks ---------------------------------------------------------------------------
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
        """Frames held past the reorder bound, and silent devices."""
        output = self.pipeline.tick()
        if output.alerts or output.lines or output.unheld:
            self.record(output)
            try:
                await self.deliver(output)
            except Exception as exc:
                # Released frames' records are still unacked (AckGate): a restart replays them.
                await self.stop("the frames and alerts of a tick", exc, [])

    async def drain_spool(self) -> None:
        # Batches spooled while InfluxDB was down go back as soon as it answers again.
        await self.sink.drain()

    async def report_metrics(self) -> None:
        self.metrics.devices.set(len(self.pipeline.trackers))
        text = pipeline_line(self.pipeline.worker, self.metrics.snapshot(), time.time())
        await self.sink.write([text])


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
        web_enabled=False,
        web_tables_enabled=False,
        datadir=str(workers_dir / stream.app_id),
    )
    topics = settings.topics

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes)

    # Table keys are the device id as raw bytes, exactly as producers key frames, so
    # use_partitioner (murmur2 on the key) puts each device's state in the changelog
    # partition its frames come from. Values: contexts as JSON bytes, the rest as JSON.
    def table(name: str, value_type: type | None) -> DeviceKeyed:
        return DeviceKeyed(
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
    worker = Worker(
        settings,
        pipeline,
        InfluxSink(settings),
        app,
        {"alerts": topic(topics.alerts), "deadletter": topic(topics.deadletter)},
    )
    # Agents keep the names they always had (Faust otherwise names them by qualname).
    app.agent(topic(topics.frames), name="process_frames")(worker.process_frames)
    app.agent(topic(topics.enrolments), name="track_enrolments")(worker.track_enrolments)
    app.task(worker.follow_rollouts)
    app.task(worker.serve_metrics)
    app.timer(interval=TICK_S)(worker.check_devices)
    app.timer(interval=SPOOL_DRAIN_S)(worker.drain_spool)
    app.timer(interval=stream.metrics_every_s)(worker.report_metrics)
    return app, worker
