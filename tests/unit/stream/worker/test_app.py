"""The Faust app: its agents, timers and tables are registered, nothing serves patient
state, and records are committed only at the checkpoint after their state is published."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from producers.fleet import Fleet
from producers.scenario import load_scenario
from stream.config import load_settings
from stream.records import Alert
from stream.worker.app import Worker, create_app
from stream.worker.ingest import RawRecord
from stream.worker.pipeline import Pipeline
from tests.unit.stream.worker.test_pipeline import ward

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def settings():
    return load_settings(pseudonym_key="app-test-key")


def test_the_worker_app_serves_no_table_views(settings, tmp_path):
    app, worker = create_app(settings, scorer=None, datadir=tmp_path)
    # Faust's web server (and with it the /table views that would serve patient state)
    # is off; metrics go through prometheus-client on loopback instead.
    assert app.conf.web_enabled is False
    assert app.conf.web_tables_enabled is False
    # No Faust tables: per-device state is snapshotted to a compacted topic instead, so
    # a worker taking over partitions never waits in Faust's table recovery.
    assert set(app.tables) == set()
    assert worker.pipeline.buffers == {}  # raw samples live in local rings


def test_the_agents_keep_their_names_and_the_timers_are_registered(settings, tmp_path):
    app, worker = create_app(settings, scorer=None, datadir=tmp_path)
    assert isinstance(worker, Worker)
    agents = {agent.name for agent in app.agents.values()}
    assert agents == {"process_frames", "track_enrolments"}
    topics = {next(iter(agent.channel.topics)) for agent in app.agents.values()}
    assert topics == {settings.topics.frames, settings.topics.enrolments}
    # the enrolments, directory and rollout followers, serve_metrics and the three timers
    # (devices, spool, metrics)
    assert len(app._app_tasks) == 7


async def test_the_consumer_commits_what_the_ledger_says_and_forgets_partitions_it_lost(
    settings, tmp_path
):
    app, worker = create_app(settings, scorer=None, datadir=tmp_path)
    tp = TP(settings.topics.frames, 2)
    worker.ledger.taken([(tp.topic, tp.partition, 40), (tp.topic, tp.partition, 41)])
    worker.ledger.durable([(tp.topic, tp.partition, 41)])
    assert app.consumer._new_offset(tp) == 40
    await app.on_partitions_revoked.send({tp})
    assert app.consumer._new_offset(tp) == 40  # kept, unless another worker now owns it
    await app.on_partitions_assigned.send({TP(settings.topics.frames, 0)})
    assert app.consumer._new_offset(tp) is None


class _Topic:
    """An in-memory stand-in for a Faust topic's ``send`` (the glue's bookkeeping is what
    is tested here; tests/integration run the real broker)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.partitions: list[int | None] = []

    async def send(
        self, key: bytes, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future:
        self.sent.append((key, value))
        self.partitions.append(partition)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class _Sink:
    stats = SimpleNamespace(write_failures=0, backpressure=0)

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def write(self, lines: list[str]) -> int:
        self.lines += lines
        return len(lines)


def _worker(settings, checkpoint_s: float) -> tuple[Worker, dict[str, _Topic], _Sink]:
    checkpointing = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"checkpoint_s": checkpoint_s})}
    )
    topics = {name: _Topic() for name in ("alerts", "deadletter", "snapshots", "directory")}
    sink = _Sink()
    worker = Worker(checkpointing, Pipeline(checkpointing, scorer=None), sink, None, topics)
    return worker, topics, sink


def _frames(fleet: Fleet, partition: int, first_offset: int) -> list[RawRecord]:
    tick = fleet.tick()
    return [
        RawRecord(d.encode(), p, partition, first_offset + i)
        for i, (d, p) in enumerate(tick.messages)
    ]


async def test_records_become_committable_only_at_the_checkpoint_after_their_snapshots(settings):
    """A delivered batch's points are written at once, but its records are committed only
    once a checkpoint has published the state they produced: a restart from the commit
    then never runs on state older than the records it skips."""
    worker, topics, sink = _worker(settings, checkpoint_s=3600.0)
    fleet = Fleet(load_scenario("default"), 2, seed=1, start=START, faults=False)
    topic = settings.topics.frames
    offset = 0
    for _ in range(3):
        records = _frames(fleet, 0, offset)
        offset += len(records)
        taken = [(topic, 0, r.offset) for r in records]
        worker.ledger.taken(taken)
        await worker.deliver(worker.pipeline.process(records, now=START + 10), taken)
    assert sink.lines  # durable at once
    assert worker.ledger.commit_offset((topic, 0)) == 0  # nothing committable yet
    assert topics["snapshots"].sent == []
    await worker.checkpoint()
    assert worker.ledger.commit_offset((topic, 0)) == offset
    snapshotted = {key.decode() for key, _ in topics["snapshots"].sent}
    assert snapshotted == set(fleet.device_ids)
    assert set(topics["snapshots"].partitions) == {0}  # their frames' partition, explicitly
    value = dict(topics["snapshots"].sent)[fleet.device_ids[0].encode()]
    assert orjson.loads(value)["ecg_detector"]  # the detectors' state, as of the checkpoint


async def test_a_lost_partition_drops_its_records_and_snapshots_waiting_for_a_checkpoint(
    settings,
):
    worker, topics, _ = _worker(settings, checkpoint_s=3600.0)
    fleet = Fleet(load_scenario("default"), 2, seed=1, start=START, faults=False)
    topic = settings.topics.frames
    records = _frames(fleet, 1, 0)
    taken = [(topic, 1, r.offset) for r in records]
    worker.ledger.taken(taken)
    await worker.deliver(worker.pipeline.process(records, now=START + 10), taken)
    worker.on_revoked({1})
    worker.on_assigned({0})
    await worker.checkpoint()
    # An empty snapshot published now would overwrite what the new owner restores from.
    assert topics["snapshots"].sent == []
    assert worker.ledger.commit_offset((topic, 1)) is None


class _Ordered(_Topic):
    """A fake topic that also notes, in one list shared by all, what went where when."""

    def __init__(self, name: str, log: list[tuple[str, bytes | None]]) -> None:
        super().__init__()
        self.name, self.log = name, log

    async def send(
        self, key: bytes, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future:
        self.log.append((self.name, value))
        return await super().send(key, value, partition)


def _ordered_worker(settings) -> tuple[Worker, dict[str, _Ordered], list]:
    checkpointing = settings.model_copy(
        update={"stream": settings.stream.model_copy(update={"checkpoint_s": 3600.0})}
    )
    log: list[tuple[str, bytes | None]] = []
    names = ("alerts", "deadletter", "snapshots", "directory")
    topics = {name: _Ordered(name, log) for name in names}
    worker = Worker(checkpointing, Pipeline(checkpointing, scorer=None), _Sink(), None, topics)
    return worker, topics, log


async def test_a_worker_killed_after_an_alert_and_before_its_checkpoint_is_taken_over_with_it(
    settings,
):
    """CI's two-worker fault test once counted two alert ids for one tachycardia: the
    survivor restored the checkpoint taken before the onset, and with its ring buffers
    empty saw the rate cross later, so the replay raised it again under a later onset
    second. Here the batch that triggers the alert snapshots its tracker state first, with
    the alert in an outbox; the next owner, restored from that, publishes the alert again
    (same bytes) and raises no other id replaying the frames after the last commit."""
    source = ward(faults=False)  # a tachycardia from 20 s to 60 s
    topic = settings.topics.frames
    sent: list[tuple[float, list[RawRecord]]] = []  # each second's records, as published

    def next_second() -> tuple[float, list[RawRecord]]:
        tick = source.tick()
        offset = sum(len(batch) for _, batch in sent)
        batch = [RawRecord(d.encode(), p, 0, offset + i) for i, (d, p) in enumerate(tick.messages)]
        sent.append((tick.t, batch))
        return tick.t, batch

    async def run(worker: Worker, t: float, batch: list[RawRecord]) -> list[Alert]:
        taken = [(topic, 0, r.offset) for r in batch]
        worker.ledger.taken(taken)
        output = worker.pipeline.process(batch, now=t + 1)
        await worker.deliver(output, taken)
        return output.alerts

    def enrolled(worker: Worker) -> Worker:
        for device_id, payload in source.enrolments():
            worker.pipeline.enrol(RawRecord(device_id.encode(), payload, 0, 0))
        return worker

    first, topics, log = _ordered_worker(settings)
    enrolled(first)
    triggered: list[Alert] = []
    while not triggered:
        assert len(sent) < 60, "no alert"
        triggered = [a for a in await run(first, *next_second()) if a.event == "triggered"]
        if len(sent) == 18:  # a checkpoint before the onset (20 s) ...
            await first.checkpoint()
    # ... and the worker dies right after publishing the alert, before the next one.
    (alert,) = triggered
    names = [name for name, _ in log]
    outbox_at = max(i for i, name in enumerate(names) if name == "snapshots")
    assert outbox_at < names.index("alerts")
    snapshot = orjson.loads(log[outbox_at][1])
    assert [orjson.loads(a)["alert_id"] for a in snapshot["outbox"]] == [alert.alert_id]
    assert snapshot["tracker"]["tracks"]["tachycardia"]["alert_id"] == alert.alert_id
    commit = first.ledger.commit_offset((topic, 0))
    assert commit == sum(len(batch) for _, batch in sent[:18])

    second, again, _ = _ordered_worker(settings)
    enrolled(second)
    second.pipeline.restore(0, {key.decode(): value for key, value in topics["snapshots"].sent})
    await second.republish()
    assert [value for _, value in again["alerts"].sent] == [alert.to_json()]
    replayed: list[Alert] = []
    for t, batch in list(sent):
        if batch[0].offset >= commit:
            replayed += await run(second, t, batch)
    while len(sent) < 90:  # and on, to past the episode's end
        replayed += await run(second, *next_second())
    assert {a.alert_id for a in replayed if a.kind == "tachycardia"} <= {alert.alert_id}
    assert [a.event for a in replayed if a.kind == "tachycardia"][-1:] == ["resolved"]
    assert not [a for a in replayed if a.event == "triggered"]


class _SnapshotReader:
    """``PartitionReader`` over what a previous owner left: its snapshots, and the frames
    records of partition 0 (``read_before`` notes what it was asked)."""

    def __init__(self, snapshots: dict[str, bytes], frames: list[RawRecord]) -> None:
        self.snapshots, self.frames, self.asked = snapshots, frames, []

    async def read_each(self, partitions, topic=None):
        return {p: dict(self.snapshots) if p == 0 else {} for p in partitions}

    async def read_before(self, topic, resume_at, span_s):
        self.asked.append((topic, resume_at, span_s))
        offset = resume_at[0][0]
        return {
            0: [
                SimpleNamespace(key=r.key, value=r.value, partition=0, offset=r.offset)
                for r in self.frames
                if r.offset < offset
            ]
        }


async def test_a_worker_taking_a_partition_over_refills_its_devices_rings_first(settings):
    """The first batch of a partition this worker has not loaded: its devices restored
    from their snapshots, their rings refilled from the frames before the batch's first
    record (asked for by its offset and timestamp, replay_margin_s back), so that batch's
    windows come at once: one per device, ending with its frames."""
    fleet = Fleet(load_scenario("default"), 2, seed=1, start=START, faults=False)
    topic = settings.topics.frames
    old, _, _ = _ordered_worker(settings)
    for device_id, payload in fleet.enrolments():
        old.pipeline.enrol(RawRecord(device_id.encode(), payload, 0, 0))
    sent: list[RawRecord] = []
    for _ in range(20):
        records = _frames(fleet, 0, len(sent))
        sent += records
        taken = [(topic, 0, r.offset) for r in records]
        old.ledger.taken(taken)
        await old.deliver(old.pipeline.process(records, now=START + 30), taken)
    await old.checkpoint()
    snapshots = {key.decode(): value for key, value in old.topics["snapshots"].sent}

    new, _, _ = _ordered_worker(settings)
    for device_id, payload in fleet.enrolments():
        new.pipeline.enrol(RawRecord(device_id.encode(), payload, 0, 0))
    new.reader = _SnapshotReader(snapshots, sent)
    new.enrolments.ready.set()
    new.directory_follower.ready.set()
    tick = fleet.tick()
    events = [
        SimpleNamespace(
            message=SimpleNamespace(
                key=d.encode(), value=p, partition=0, offset=len(sent) + i, topic=topic,
                timestamp=tick.t + 0.5,
            )
        )
        for i, (d, p) in enumerate(tick.messages)
    ]  # fmt: skip
    await new.handle(events, now=tick.t + 1)
    assert new.reader.asked == [(topic, {0: (len(sent), tick.t + 0.5)}, 15.0)]
    windows = [line for line in new.sink.lines if line.startswith("quality,")]
    assert sorted(int(line.rsplit(" ", 1)[1]) for line in windows) == [(tick.t + 1) * 1e9] * 2
