"""Gateways, partitions and moves: a device's frames come in on its gateway's partition,
which changes when the device roams to another gateway. Its state and alert lifecycle
go with it, whichever worker owns the new partition; enrolments reach every worker.

The workers run against in-memory stand-ins for the topics (one shared log per topic,
with partitions), the snapshot reader and the two followers (tests/integration run the
real broker).
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from types import SimpleNamespace

import orjson
import pytest

from producers.fleet import Fleet
from stream.config import load_settings
from stream.records import Alert, gateway_batch_json
from stream.worker import snapshots
from stream.worker.app import Worker
from stream.worker.ingest import RawRecord
from stream.worker.pipeline import Pipeline
from tests.unit.stream.worker.test_app import _Sink
from tests.unit.stream.worker.test_pipeline import KEY, START, ward

PARTITIONS = 4
GATEWAY_1, GATEWAY_2 = 0, 1  # the partitions the two gateways' batches come in on
SIGNAL_LOSS_S = 20.0


@pytest.fixture(scope="module")
def settings():
    settings = load_settings(pseudonym_key=KEY.decode(), stream={"signal_loss_s": SIGNAL_LOSS_S})
    # A checkpoint after every batch: what a worker publishes is at most a batch old.
    stream = settings.stream.model_copy(update={"checkpoint_s": 1e-6})
    return settings.model_copy(update={"stream": stream})


class Broker:
    """Every topic's records, in order, with the partition each went to."""

    def __init__(self) -> None:
        self.log: dict[str, list[tuple[bytes, bytes | None, int]]] = defaultdict(list)
        self.sequence: list[tuple[str, bytes, bytes | None, int]] = []  # all topics, in order

    def topic(self, name: str) -> Topic:
        return Topic(self, name)

    def newest(self, name: str, partition: int) -> dict[str, bytes | None]:
        """What a compacted topic's partition holds: the newest value per key."""
        return {k.decode(): v for k, v, p in self.log[name] if p == partition}


class Topic:
    """A Faust topic's ``send``: keyed records go to their key's hash partition unless
    the sender names one."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.broker, self.name = broker, name

    async def send(self, key: bytes, value: bytes | None, partition: int | None = None):
        if partition is None:
            partition = zlib.crc32(key) % PARTITIONS
        self.broker.log[self.name].append((key, value, partition))
        self.broker.sequence.append((self.name, key, value, partition))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Reader:
    """``PartitionReader.read_each`` over the broker's snapshot log; ``calls`` the
    partitions of each read, as the worker asked for them."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.calls: list[list[int]] = []

    async def read_each(
        self, partitions, topic: str | None = None
    ) -> dict[int, dict[str, bytes | None]]:
        wanted = sorted(set(partitions))
        self.calls.append(wanted)
        return {p: self.broker.newest(topic or "snapshots", p) for p in wanted}


class Cluster:
    """Workers on one broker; each follows the directory as a ``TopicFollower`` would."""

    def __init__(self, settings, names: list[str]) -> None:
        self.broker = Broker()
        self.workers: dict[str, Worker] = {}
        self.followed: dict[str, int] = {}
        for name in names:
            topics = {
                t: self.broker.topic(t) for t in ("alerts", "deadletter", "snapshots", "directory")
            }
            pipeline = Pipeline(settings, scorer=None, worker=name)
            worker = Worker(settings, pipeline, _Sink(), None, topics)
            worker.reader = Reader(self.broker)
            worker.enrolments.ready.set()
            worker.directory_follower.ready.set()
            self.workers[name] = worker
            self.followed[name] = 0

    async def follow(self) -> None:
        """Every worker reads the directory records it has not read yet."""
        log = self.broker.log["directory"]
        for name, worker in self.workers.items():
            for key, value, partition in log[self.followed[name] :]:
                await worker.on_directory(
                    SimpleNamespace(key=key, value=value, partition=partition)
                )
            self.followed[name] = len(log)

    async def enrol(self, fleet: Fleet) -> None:
        """The fleet's enrolments, each on its own key's partition, followed by all."""
        for offset, (device_id, payload) in enumerate(fleet.enrolments()):
            partition = zlib.crc32(device_id.encode()) % PARTITIONS
            record = SimpleNamespace(
                key=device_id.encode(), value=payload, partition=partition, offset=offset
            )
            for worker in self.workers.values():
                await worker.on_enrolment(record)

    def alerts(self) -> list[Alert]:
        return [Alert.from_json(v) for _, v, _ in self.broker.log["alerts"]]


def gateway_event(gateway: str, payloads: list[bytes], partition: int, offset: int):
    message = SimpleNamespace(
        key=gateway.encode(),
        value=gateway_batch_json(gateway, payloads),
        partition=partition,
        offset=offset,
        topic="frames",
    )
    return SimpleNamespace(message=message)


class Ward:
    """A ward's fleet through two gateways: ``route`` says which gateway relays each
    device at a second; each gateway's batch goes to the worker owning its partition."""

    def __init__(self, cluster: Cluster, fleet: Fleet, owners: dict[int, str]) -> None:
        self.cluster, self.fleet, self.owners = cluster, fleet, owners
        self.offsets: dict[int, int] = defaultdict(int)

    async def run(self, seconds: int, route) -> None:
        for _ in range(seconds):
            tick = self.fleet.tick()
            now = tick.t + 1.0
            by_partition: dict[int, list[bytes]] = defaultdict(list)
            for device_id, payload in tick.messages:
                by_partition[route(device_id, tick.t - START)].append(payload)
            for partition, payloads in sorted(by_partition.items()):
                gateway = f"gw-{partition + 1}"
                event = gateway_event(gateway, payloads, partition, self.offsets[partition])
                self.offsets[partition] += 1
                await self.cluster.workers[self.owners[partition]].handle([event], now=now)
                await self.cluster.follow()
            for worker in self.cluster.workers.values():
                await worker.check_devices_at(now)
            await self.cluster.follow()


async def test_snapshots_go_to_the_partition_of_the_devices_frames(settings):
    """A device keyed ``dev-0001`` but relayed by a gateway on partition 1: its snapshot is
    on partition 1 of the snapshot topic, where restoring partition 1 finds it, whatever
    partition its own key hashes to."""
    cluster = Cluster(settings, ["a"])
    fleet = ward(faults=False)
    await cluster.enrol(fleet)
    await Ward(cluster, fleet, {GATEWAY_2: "a"}).run(3, lambda device, t: GATEWAY_2)
    sent = cluster.broker.log["snapshots"]
    assert {k.decode() for k, _, _ in sent} == set(fleet.device_ids)
    assert {p for _, _, p in sent} == {GATEWAY_2}
    # The stand-in's default partition is the key's hash: one device at least lands
    # elsewhere by key, so the explicit partition is what put it here.
    assert {zlib.crc32(d.encode()) % PARTITIONS for d in fleet.device_ids} != {GATEWAY_2}
    restored = Pipeline(settings, scorer=None)
    restored.restore(GATEWAY_2, cluster.broker.newest("snapshots", GATEWAY_2))
    assert set(restored.devices_in({GATEWAY_2})) == set(fleet.device_ids)


async def test_a_worker_reads_the_partitions_it_has_not_loaded_in_one_read(settings):
    """Worker A's devices leave snapshots on partitions 0 and 2, plus a stale copy on 3
    of a device the directory places on 2 (its old owner died before its tombstone). A
    worker given partitions 0 and 1, then all four, reads each time only those it has not
    loaded, all in one read, and restores each partition with its own snapshots."""
    cluster = Cluster(settings, ["a", "c"])
    fleet = ward(faults=False)
    first, second = fleet.device_ids
    await cluster.enrol(fleet)
    await Ward(cluster, fleet, {0: "a", 2: "a"}).run(3, lambda d, t: 0 if d == first else 2)
    stale = cluster.broker.newest("snapshots", 2)[second]
    await cluster.broker.topic("snapshots").send(second.encode(), stale, partition=3)
    c = cluster.workers["c"]
    await c.ensure_loaded({0, 1})
    await c.ensure_loaded({0, 1})  # loaded: no read
    await c.ensure_loaded({0, 1, 2, 3})
    assert c.reader.calls == [[0, 1], [2, 3]]
    assert c.loaded == {0, 1, 2, 3}
    assert c.pipeline.devices_in({0}) == [first] and c.pipeline.devices_in({2}) == [second]
    assert c.pipeline.devices_in({1, 3}) == []  # empty, and the stale copy left out
    for device, partition in ((first, 0), (second, 2)):
        saved = cluster.broker.newest("snapshots", partition)[device]
        assert orjson.loads(saved)["ecg_detector"]  # state to restore, not an empty one
        assert snapshots.encode(c.pipeline.store, device) == saved


async def test_devices_arriving_from_several_partitions_are_read_in_one_read(settings):
    """Two devices leave A's partitions 0 and 2 for B's partition 1 in the same second:
    B reads its own partition when its first batch comes, then both sources together,
    and restores each device from its own source's snapshot (which it copies to its new
    partition as read)."""
    cluster = Cluster(settings, ["a", "b"])
    fleet = ward(faults=False)
    first, second = fleet.device_ids
    await cluster.enrol(fleet)
    ward_ = Ward(cluster, fleet, {0: "a", 1: "b", 2: "a"})

    def route(d: str, t: float) -> int:
        return GATEWAY_2 if t >= 10.0 else (0 if d == first else 2)

    await ward_.run(10, route)
    b = cluster.workers["b"]
    left = {
        first: cluster.broker.newest("snapshots", 0)[first],
        second: cluster.broker.newest("snapshots", 2)[second],
    }
    assert all(left.values())
    await ward_.run(1, route)
    assert b.reader.calls == [[1], [0, 2]]
    assert b.pipeline.partition_of(first) == 1 and b.pipeline.partition_of(second) == 1
    # Each device's snapshot from its own source, copied to partition 1 as found there.
    on_new = [(k.decode(), v) for k, v, p in cluster.broker.log["snapshots"] if p == 1]
    assert [next(v for k, v in on_new if k == d) for d in left] == list(left.values())


async def test_enrolments_are_followed_whatever_partitions_the_worker_owns(settings):
    """The worker owns only the gateway's partition; the enrolments sit on their devices'
    own partitions: the frames are still processed under the enrolled contexts."""
    cluster = Cluster(settings, ["a"])
    fleet = ward(faults=False)
    owned = {GATEWAY_2}
    enrolled_on = {zlib.crc32(d.encode()) % PARTITIONS for d in fleet.device_ids}
    assert enrolled_on - owned  # at least one enrolment on a partition the worker lacks
    await cluster.enrol(fleet)
    await Ward(cluster, fleet, {GATEWAY_2: "a"}).run(3, lambda device, t: GATEWAY_2)
    worker = cluster.workers["a"]
    contexts = [worker.pipeline.ingest.context(d) for d in fleet.device_ids]
    assert {c.ward for c in contexts} == {"ward-u"}
    assert all(c.patient.startswith("p-") and c.patient != "unenrolled" for c in contexts)
    lines = worker.sink.lines
    assert lines and not [line for line in lines if "unassigned" in line]


async def test_frames_wait_until_the_followers_have_read_the_enrolments(settings):
    cluster = Cluster(settings, ["a"])
    worker = cluster.workers["a"]
    worker.enrolments.ready.clear()
    fleet = ward(faults=False)
    tick = fleet.tick()
    event = gateway_event("gw-2", [p for _, p in tick.messages], GATEWAY_2, 0)
    handled = asyncio.ensure_future(worker.handle([event], now=tick.t + 1.0))
    await asyncio.sleep(0.05)
    assert not handled.done() and not worker.sink.lines  # waiting for the follower
    await cluster.enrol(fleet)
    worker.enrolments.ready.set()
    await asyncio.wait_for(handled, 10)
    assert worker.sink.lines and not [x for x in worker.sink.lines if "unassigned" in x]


async def test_malformed_enrolments_are_dead_lettered_by_the_group_agent_only(settings):
    cluster = Cluster(settings, ["a"])
    worker = cluster.workers["a"]
    bad = RawRecord(b"dev-9", b'{"device_id": "dev-9", "patient_id": "MRN-SECRET"', 2, 7)
    [(key, letter)] = worker.enrolment_letters(bad).deadletters
    assert key == b"dev-9" and letter.offset == 7 and letter.payload_b64 == ""
    assert letter.reason.startswith("bad json")
    [(device_id, good)] = ward(faults=False).enrolments()[:1]
    assert worker.enrolment_letters(RawRecord(device_id.encode(), good, 2, 8)).deadletters == []
    # The follower enrols; its dead letters are the agent's to publish, not its own.
    await worker.on_enrolment(SimpleNamespace(key=b"dev-9", value=bad.value, partition=2, offset=7))
    assert cluster.broker.log["deadletter"] == []


def moving(device: str, after_s: float):
    """Gateway 1 relays every device; ``device`` goes over to gateway 2 after ``after_s``."""
    return lambda d, t: GATEWAY_2 if d == device and t >= after_s else GATEWAY_1


async def test_a_move_between_partitions_of_one_worker_moves_the_snapshot(settings):
    """State stays in memory; the next checkpoint publishes the device's snapshot on its
    new partition and a tombstone on the old one (whose next owner must not restore it)."""
    cluster = Cluster(settings, ["a"])
    fleet = ward(faults=False)
    tachy = fleet.device_ids[0]
    await cluster.enrol(fleet)
    worker = cluster.workers["a"]
    route = moving(tachy, 40.0)
    await Ward(cluster, fleet, {GATEWAY_1: "a", GATEWAY_2: "a"}).run(100, route)
    old, new = (
        cluster.broker.newest("snapshots", GATEWAY_1),
        cluster.broker.newest("snapshots", GATEWAY_2),
    )
    assert tachy in old and old[tachy] is None  # the tombstone
    assert new[tachy] is not None and orjson.loads(new[tachy])["tracker"]
    assert worker.pipeline.partition_of(tachy) == GATEWAY_2
    assert worker.directory[tachy].partition == GATEWAY_2
    # The tombstone came after the device's last snapshot on the old partition.
    on_old = [v for k, v, p in cluster.broker.log["snapshots"] if k == tachy.encode() and p == 0]
    assert on_old[-1] is None and any(v is not None for v in on_old)
    # In this order, so that a worker stopped in between finds the latest snapshot where
    # the directory says: the snapshot on the new partition, the directory entry, then
    # the tombstone on the old one.
    key = tachy.encode()
    order = [(t, p, v is None) for t, k, v, p in cluster.broker.sequence if k == key]
    first_new = order.index(("snapshots", GATEWAY_2, False))
    claimed = order.index(("directory", zlib.crc32(key) % PARTITIONS, False), first_new)
    assert order.index(("snapshots", GATEWAY_1, True)) > claimed
    # One lifecycle: triggered once, then resolved under the same id, nothing silent.
    alerts = [a for a in cluster.alerts() if a.device_id == tachy]
    triggered = [a for a in alerts if a.event == "triggered"]
    assert [a.kind for a in triggered] == ["tachycardia"]
    resolved = [a for a in alerts if a.event == "resolved" and a.kind == "tachycardia"]
    assert [a.alert_id for a in resolved] == [triggered[0].alert_id]
    assert not [a for a in alerts if a.kind == "device_silent"]


async def test_a_move_to_another_worker_carries_the_state_and_the_open_alert(settings):
    """Worker A owns gateway 1's partition, worker B gateway 2's. The tachycardia is
    raised through gateway 1 (by A); the device then roams to gateway 2: B restores it
    from A's snapshot and resolves the same alert (same id, no second trigger); A forgets
    it, tombstones its old snapshot, and never declares it silent."""
    cluster = Cluster(settings, ["a", "b"])
    fleet = ward(faults=False)
    tachy, quiet = fleet.device_ids
    await cluster.enrol(fleet)
    route = moving(tachy, 40.0)
    ward_ = Ward(cluster, fleet, {GATEWAY_1: "a", GATEWAY_2: "b"})
    await ward_.run(40, route)
    a, b = cluster.workers["a"], cluster.workers["b"]
    [open_alert] = [x for x in cluster.alerts() if x.event == "triggered"]
    assert open_alert.device_id == tachy and open_alert.kind == "tachycardia"
    assert a.pipeline.partition_of(tachy) == GATEWAY_1 and b.pipeline.partition_of(tachy) is None
    tracker_before = a.pipeline.tracker(tachy).to_dict()
    # The move, and the 30 s after it (more than signal_loss_s: A would have found the
    # device silent by now had it kept it).
    await ward_.run(1, route)
    assert b.pipeline.partition_of(tachy) == GATEWAY_2
    tracks = b.pipeline.tracker(tachy).to_dict()["tracks"]
    assert tracks and set(tracks) == set(tracker_before["tracks"])
    await ward_.run(int(SIGNAL_LOSS_S) + 10, route)
    assert a.pipeline.partition_of(tachy) is None  # forgotten by the worker it left
    assert tachy not in a.pipeline.store.last_seen and tachy not in a.pipeline.trackers
    assert a.pipeline.partition_of(quiet) == GATEWAY_1  # the others stay
    assert a.directory[tachy].partition == GATEWAY_2 and a.directory[tachy].worker == "b"
    assert cluster.broker.newest("snapshots", GATEWAY_1)[tachy] is None  # A's tombstone
    assert cluster.broker.newest("snapshots", GATEWAY_2)[tachy] is not None
    await ward_.run(30, route)  # the tachycardia ends at 60 s
    alerts = [x for x in cluster.alerts() if x.device_id == tachy]
    assert [x.alert_id for x in alerts if x.event == "triggered"] == [open_alert.alert_id]
    resolved = [x for x in alerts if x.event == "resolved"]
    assert [x.alert_id for x in resolved] == [open_alert.alert_id]
    assert not [x for x in cluster.alerts() if x.kind == "device_silent"]
    # B's lines carry the device from the move on; A's stop at it.
    assert any(f"device={tachy}" in line for line in b.sink.lines)
    # Every record A took on gateway 1 is committable: nothing of the device is held open.
    assert a.ledger.commit_offset(("frames", GATEWAY_1)) == ward_.offsets[GATEWAY_1]


async def test_a_device_that_moves_back_is_restored_by_its_first_worker(settings):
    """Back through gateway 1: A restores it from B's snapshot, B forgets it."""
    cluster = Cluster(settings, ["a", "b"])
    fleet = ward(faults=False)
    tachy = fleet.device_ids[0]
    await cluster.enrol(fleet)

    def route(d: str, t: float) -> int:
        return GATEWAY_2 if d == tachy and 30.0 <= t < 45.0 else GATEWAY_1

    await Ward(cluster, fleet, {GATEWAY_1: "a", GATEWAY_2: "b"}).run(80, route)
    a, b = cluster.workers["a"], cluster.workers["b"]
    assert a.pipeline.partition_of(tachy) == GATEWAY_1 and b.pipeline.partition_of(tachy) is None
    alerts = [x for x in cluster.alerts() if x.device_id == tachy]
    triggered = [x.alert_id for x in alerts if x.event == "triggered"]
    assert len(triggered) == 1
    assert [x.alert_id for x in alerts if x.event == "resolved"] == triggered
    assert not [x for x in alerts if x.kind == "device_silent"]
    assert cluster.broker.newest("snapshots", GATEWAY_2)[tachy] is None
