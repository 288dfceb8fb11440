"""A device roaming between gateways on the real broker: its frames come in gateway
batches keyed by gateway, so on the gateway's partition, and move partition mid-run.

One worker owns both partitions; the tachycardia raised through gateway 1 is resolved
through gateway 2 under the same alert id, no device goes silent, the device's snapshot
ends on the new partition with a tombstone on the old one, and the group's device
directory says where it is. (Moves between workers: tests/unit/stream/worker/test_moves.py.)
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from producers.fleet import Fleet
from producers.scenario import Scenario
from stream.config import Settings
from stream.kafka import client_options, directory_topic, snapshot_topic
from stream.records import Alert, gateway_batch_json
from tests.integration.harness import WorkerProcess, alerts_of, consume, worker_env

pytestmark = pytest.mark.integration

GATEWAY_1, GATEWAY_2 = 0, 1  # the partitions each gateway's batches go to
MOVE_AT_S = 40  # the tachycardia (20..60 s) is open by then
DURATION_S = 100
SPEED = 4.0  # frame seconds per wall second


def ward_fleet(start: float) -> Fleet:
    scenario = Scenario.model_validate(
        {
            "name": "roaming",
            "ward": "ward-roam",
            "patients": [
                {
                    "id": "MRN-ROAM",
                    "events": [{"event": "tachycardia", "start": 20, "end": 60, "severity": 0.8}],
                },
                {"id": "MRN-STAY"},
            ],
        }
    )
    return Fleet(scenario, 2, seed=3, start=start, faults=False)


def newest_by_partition(settings: Settings, topic: str) -> dict[int, dict[str, bytes | None]]:
    """What each partition of a compacted topic holds now: the newest value per key."""
    consumer = KafkaConsumer(enable_auto_commit=False, **client_options(settings.kafka))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: dict[int, dict[str, bytes | None]] = defaultdict(dict)
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    found[tp.partition][record.key.decode()] = record.value
        return found
    finally:
        consumer.close()


def test_a_device_moving_between_gateways_keeps_its_open_alert(isolated_settings, tmp_path: Path):
    settings = isolated_settings
    env = worker_env(
        settings,
        VITALSTREAM_STREAM__SIGNAL_LOSS_S="20",
        VITALSTREAM_STREAM__CHECKPOINT_S="1",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", tmp_path / "state")
    worker.start()
    worker.wait_ready()
    # Frames in the past: a fast replay never runs ahead of the worker's clock.
    start = float(int(time.time()) - 900)
    fleet = ward_fleet(start)
    roaming, staying = fleet.device_ids
    producer = KafkaProducer(acks="all", **client_options(settings.kafka))
    try:
        for device_id, payload in fleet.enrolments():
            producer.send(settings.topics.enrolments, key=device_id.encode(), value=payload)
        producer.flush()
        for second in range(DURATION_S):
            tick = fleet.tick()
            by_gateway: dict[int, list[bytes]] = defaultdict(list)
            for device_id, payload in tick.messages:
                moved = device_id == roaming and second >= MOVE_AT_S
                by_gateway[GATEWAY_2 if moved else GATEWAY_1].append(payload)
            for partition, payloads in sorted(by_gateway.items()):
                gateway = f"gw-roam-{partition + 1}"
                producer.send(
                    settings.topics.frames,
                    key=gateway.encode(),
                    value=gateway_batch_json(gateway, payloads),
                    partition=partition,
                )
            producer.flush()
            time.sleep(1.0 / SPEED)
    finally:
        producer.close()

    def resolved(values: list[bytes]) -> bool:
        return any(a.event == "resolved" and a.device_id == roaming for a in alerts_of(values))

    try:
        alerts = alerts_of(consume(settings, settings.topics.alerts, resolved, timeout_s=60))
        time.sleep(3)  # a checkpoint or two after the last frames
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    ours = [a for a in alerts if a.device_id == roaming]
    triggered = {a.alert_id for a in ours if a.event == "triggered"}
    assert len(triggered) == 1, f"{ours}\n{log[-3000:]}"
    [alert_id] = triggered
    opened = next(a for a in ours if a.event == "triggered")
    assert opened.kind == "tachycardia" and opened.t_event < start + MOVE_AT_S
    assert {a.alert_id for a in ours if a.event == "resolved"} == {alert_id}
    assert next(a for a in ours if a.event == "resolved").t_event > start + MOVE_AT_S
    silent = [a for a in alerts if a.kind == "device_silent"]
    assert not silent, silent
    assert all(isinstance(a, Alert) and a.ward == "ward-roam" for a in alerts)
    # The device's state lives where its frames come in now, and nowhere else.
    state = newest_by_partition(settings, snapshot_topic(settings))
    assert state[GATEWAY_2].get(roaming) is not None
    assert orjson.loads(state[GATEWAY_2][roaming])["tracker"]
    assert roaming in state[GATEWAY_1] and state[GATEWAY_1][roaming] is None  # tombstone
    assert state[GATEWAY_1].get(staying) is not None
    directory = {
        device: orjson.loads(value)
        for entries in newest_by_partition(settings, directory_topic(settings)).values()
        for device, value in entries.items()
        if value is not None
    }
    assert directory[roaming]["partition"] == GATEWAY_2
    assert directory[staying]["partition"] == GATEWAY_1
