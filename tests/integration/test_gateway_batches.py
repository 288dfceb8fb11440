"""Gateway batches through a real `vitalstream worker` on the real services.

- The same simulated ward published one frame per message (keyed by device) and in
  gateway batches of 10 devices (keyed by gateway), each to its own fresh topics and bucket
  with its own worker: both buckets hold exactly the ward's vitals points, with the same
  values.
- A gateway batch with one corrupt frame: exactly that frame is dead-lettered (its
  gateway, its index in the batch, the reason, its bytes, the batch's offset); the batch's
  other frames, and the frames around it, are all written.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from producers.fleet import Fleet
from producers.gateways import gateway_of, messages_of
from producers.scenario import load_scenario
from stream.config import Settings
from stream.kafka import client_options
from stream.records import VITALS, DeadLetter, Frame, gateway_batch_json
from stream.sinks.lines import to_ns
from tests.conftest import isolated
from tests.integration.harness import (
    Simulation,
    WorkerProcess,
    consume,
    influx_rows,
    worker_env,
    written_vitals,
)

pytestmark = pytest.mark.integration

DEVICES, DURATION_S, PER_MESSAGE = 23, 40, 10  # gateways of 10, 10 and 3 devices
WRITE_TIMEOUT_S = 150.0
_VITAL_FIELDS = " or ".join(f'r._field == "{name}"' for name in VITALS)
VITAL_VALUES_FLUX = (
    f'|> filter(fn: (r) => r._measurement == "vitals" and ({_VITAL_FIELDS})) '
    '|> keep(columns: ["device", "_time", "_field", "_value"])'
)


@pytest.fixture
def per_device_settings(services, kafka_admin, influx_client) -> Iterator[Settings]:
    """A second isolated run beside ``isolated_settings``: its own topics, group, bucket."""
    with isolated(services, kafka_admin, influx_client) as settings:
        yield settings


def vital_values(settings: Settings, influx_client: Any) -> dict[tuple[str, int, str], float]:
    """Every vitals field in the bucket: (device, time in µs, field) -> value."""
    rows = influx_rows(settings, influx_client, VITAL_VALUES_FLUX)
    return {
        (r.values["device"], round(r.get_time().timestamp() * 1e6), r.get_field()): r.get_value()
        for r in rows
    }


def frame_points(frame: Frame) -> set[tuple[str, int]]:
    """The (device, µs) vitals points one frame writes (the sink's own rounding)."""
    return {
        (frame.device_id, to_ns(frame.t0 + i / block.fs) // 1000)
        for name in VITALS
        if (block := getattr(frame.signals, name)) is not None
        for i in range(len(block.samples))
    }


def wait_written(
    settings: Settings, influx_client: Any, points: set, worker: WorkerProcess
) -> set[tuple[str, int]]:
    """Poll the bucket until it holds ``points`` (or the timeout); what it holds."""
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    written: set[tuple[str, int]] = set()
    while time.monotonic() < deadline:
        written = written_vitals(settings, influx_client)
        if points <= written:
            return written
        assert worker.proc is not None and worker.proc.poll() is None, "worker exited"
        time.sleep(2)
    worker.dump_stacks()
    return written


def frames_keys(settings: Settings) -> set[str]:
    """The keys of every record on the frames topic."""
    consumer = KafkaConsumer(
        settings.topics.frames,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        **client_options(settings.kafka),
    )
    try:
        return {record.key.decode() for record in consumer}
    finally:
        consumer.close()


def test_the_same_ward_per_device_or_in_gateway_batches_writes_the_same_vitals(
    per_device_settings, isolated_settings, influx_client, tmp_path: Path
) -> None:
    start = float(int(time.time()) - 900)  # in the past: a fast run is never ahead
    runs = {1: per_device_settings, PER_MESSAGE: isolated_settings}
    simulations = {
        k: Simulation(Path("default"), DEVICES, DURATION_S, start, seed=4, per_message=k)
        for k in runs
    }
    _labels, points, frames = simulations[1].expected()
    assert frames == DEVICES * DURATION_S
    workers: dict[int, WorkerProcess] = {}
    try:
        for k, settings in runs.items():
            log, state = tmp_path / f"worker-{k}.log", tmp_path / f"state-{k}"
            workers[k] = WorkerProcess(worker_env(settings), log, state)
            workers[k].start()
        for k, settings in runs.items():
            workers[k].wait_ready()
            done = subprocess.run(
                simulations[k].argv(0, tmp_path / f"labels-{k}.jsonl"),
                env=worker_env(settings), capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]
            summary = orjson.loads(done.stdout.splitlines()[-1])
            assert summary["frames"] == frames and summary["errors"] == 0
            # One message per device-second, or one per gateway-second (3 gateways).
            assert summary["messages"] == (frames if k == 1 else 3 * DURATION_S)
        written = {k: wait_written(runs[k], influx_client, points, workers[k]) for k in runs}
    finally:
        for worker in workers.values():
            worker.stop()
    for k in runs:
        missing = points - written[k]
        assert written[k] == points, f"--per-message {k}: {len(missing)} of {len(points)} missing"
    # What was on the wire: keyed by device, then by gateway.
    device_ids = Fleet(load_scenario("default"), DEVICES, seed=4, start=start).device_ids
    assert frames_keys(runs[1]) == set(device_ids)
    assert frames_keys(runs[PER_MESSAGE]) == {"gw-0001", "gw-0002", "gw-0003"}
    values = {k: vital_values(runs[k], influx_client) for k in runs}
    assert values[1] and values[1] == values[PER_MESSAGE]
    for k in runs:
        assert consume(runs[k], runs[k].topics.deadletter, bool, 2) == [], f"--per-message {k}"


CORRUPT_PERIOD, CORRUPT_INDEX, GATEWAY_DEVICES, PERIODS = 2, 2, 5, 8


def test_one_corrupt_frame_of_a_gateway_batch_is_dead_lettered_alone(
    isolated_settings, influx_client, tmp_path: Path
) -> None:
    settings = isolated_settings
    fleet = Fleet(
        load_scenario("quiet_ward"), GATEWAY_DEVICES, seed=2, start=time.time() - 120,
        faults=False,
    )  # fmt: skip
    gateways = gateway_of(fleet.device_ids, GATEWAY_DEVICES)  # one gateway: gw-0001
    good: list[Frame] = []
    corrupt, carried = b"", []
    batches: list[tuple[str, bytes]] = []
    for period in range(PERIODS):
        frames = fleet.tick().messages
        assert len(frames) == GATEWAY_DEVICES
        if period == CORRUPT_PERIOD:
            decoded = orjson.loads(frames[CORRUPT_INDEX][1])
            decoded["signals"]["spo2"]["samples"] = [120.0]  # impossible: the range is 0..100
            corrupt = orjson.dumps(decoded)
            frames[CORRUPT_INDEX] = (frames[CORRUPT_INDEX][0], corrupt)
            carried = [v for _, v in frames]
        good += [Frame.from_json(v) for _, v in frames if v != corrupt]
        batches += messages_of(frames, gateways)
    assert len(batches) == PERIODS and {key for key, _ in batches} == {"gw-0001"}
    # The batch as the producers frame it: the period's frames, the corrupt one among them.
    assert batches[CORRUPT_PERIOD] == ("gw-0001", gateway_batch_json("gw-0001", carried))
    assert carried[CORRUPT_INDEX] == corrupt

    producer = KafkaProducer(**client_options(settings.kafka))
    for device_id, enrolment in fleet.enrolments():
        producer.send(settings.topics.enrolments, key=device_id.encode(), value=enrolment)
    offsets = [
        producer.send(settings.topics.frames, key=key.encode(), value=value).get(timeout=30)
        for key, value in batches
    ]
    producer.flush()
    producer.close()

    worker = WorkerProcess(worker_env(settings), tmp_path / "worker.log", tmp_path / "state")
    worker.start()
    try:
        worker.wait_ready()
        expected = set().union(*(frame_points(frame) for frame in good))
        written = wait_written(settings, influx_client, expected, worker)
        consume(settings, settings.topics.deadletter, bool, 30)
        # Every good frame is written: any other dead letter was published by now.
        letters = consume(settings, settings.topics.deadletter, timeout_s=3)
    finally:
        worker.stop()
    missing = expected - written
    assert missing == set(), f"{len(missing)} of {len(expected)} points of good frames missing"
    # The corrupt frame's own second is not written (the device's others are).
    bad = orjson.loads(corrupt)
    assert not {
        p for p in written if p[0] == bad["device_id"] and abs(p[1] / 1e6 - bad["t0"]) < 0.5
    }

    (letter,) = (DeadLetter.from_json(v) for v in letters)
    assert letter.gateway_id == "gw-0001" and letter.frame_index == CORRUPT_INDEX
    assert letter.reason.startswith("invalid: signals.spo2.samples"), letter.reason
    assert "120.0 is outside the plausible range 0..100 %" in letter.reason, letter.reason
    assert orjson.loads(base64.b64decode(letter.payload_b64)) == orjson.loads(corrupt)
    record = offsets[CORRUPT_PERIOD]
    assert (letter.source_topic, letter.partition, letter.offset) == (
        settings.topics.frames, record.partition, record.offset,
    )  # fmt: skip
