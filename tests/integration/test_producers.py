"""Producers against the real broker: a fleet's frames and a replay arrive intact, and a
run faster than real time never sends a frame dated ahead of the clock."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict

import numpy as np
import pytest
from kafka import KafkaConsumer

from producers.fleet import Fleet, run_fleet
from producers.publisher import Publisher, ensure_topics, producer_topics
from producers.recordings import frames, load_recording, resample, to_device_rate
from producers.scenario import load_scenario
from stream.config import Settings
from stream.kafka import client_options
from stream.records import Enrolment, Frame, GatewayBatch
from tests.integration.harness import cli, worker_env

pytestmark = pytest.mark.integration


def _consume(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **client_options(settings.kafka),
    )
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def test_fleet_frames_arrive_complete_and_in_order(isolated_settings: Settings) -> None:
    settings = isolated_settings
    assert ensure_topics(settings, producer_topics(settings)) == []  # fixture made them
    fleet = Fleet(load_scenario("default"), 10, seed=5, start=time.time(), faults=False)
    sent: dict[str, list[int]] = defaultdict(list)
    with Publisher(settings) as publisher:
        stats = run_fleet(
            fleet,
            publisher.send,
            frames_topic=settings.topics.frames,
            enrolments_topic=settings.topics.enrolments,
            duration_s=12,
            speed=0,
            on_tick=lambda tick: [sent[d].append(s) for d, s in tick.sent_seq],
        )
        publisher.flush()
        assert publisher.errors == 0
    records = _consume(settings, settings.topics.frames, stats.messages)
    assert len(records) == stats.messages == stats.frames
    received: dict[str, list[int]] = defaultdict(list)
    for record in records:
        frame = Frame.from_json(record.value)
        assert record.key.decode() == frame.device_id
        received[frame.device_id].append(frame.seq)
    assert received == sent  # per partition order keeps each device's frames in order
    enrolments = _consume(settings, settings.topics.enrolments, 10)
    assert sorted(Enrolment.from_json(r.value).device_id for r in enrolments) == fleet.device_ids


def test_labels_match_what_was_produced(isolated_settings: Settings) -> None:
    settings = isolated_settings
    start = time.time()
    fleet = Fleet(load_scenario("default"), 10, seed=6, start=start, faults=False)
    with Publisher(settings) as publisher:
        stats = run_fleet(
            fleet, publisher.send, frames_topic=settings.topics.frames,
            enrolments_topic=settings.topics.enrolments, duration_s=130, speed=0,
        )  # fmt: skip
    records = _consume(settings, settings.topics.frames, stats.messages)
    by_device: dict[str, list[Frame]] = defaultdict(list)
    for record in records:
        frame = Frame.from_json(record.value)
        by_device[frame.device_id].append(frame)
    for label in fleet.labels(130):
        inside = [
            f for f in by_device[label["device_id"]] if label["start"] + 20 <= f.t0 < label["end"]
        ]
        if label["event"] == "tachycardia" and inside:
            assert np.mean([f.signals.hr.samples[0] for f in inside]) > 130
        if label["event"] == "sensor_detached":
            assert inside and all(f.signals.spo2 is None for f in inside)
        if label["event"] == "fever" and inside:
            assert inside[-1].signals.temp.samples[0] > 38.0


def test_replay_of_record_208_decodes_to_the_original(isolated_settings: Settings) -> None:
    settings = isolated_settings
    recording = load_recording("mitbih-208")
    samples, fs = to_device_rate(recording)
    payloads = list(frames("replay-208", "ecg", samples, fs, start=time.time()))
    with Publisher(settings) as publisher:
        for payload in payloads:
            publisher.send(settings.topics.frames, "replay-208", payload)
    records = _consume(settings, settings.topics.frames, len(payloads), timeout_s=60)
    decoded = sorted((Frame.from_json(r.value) for r in records), key=lambda f: f.seq)
    assert len(decoded) == len(payloads)
    back = resample(np.concatenate([f.signals.ecg.samples for f in decoded]), fs, 360)
    n = min(len(back), len(recording.samples))
    inner = slice(360, n - 360)
    assert np.corrcoef(back[inner], recording.samples[inner])[0, 1] > 0.995


def _frames_in(value: bytes) -> list[Frame]:
    """The frames a record carries: a gateway batch's, or the record's own frame."""
    if b'"gateway_id"' in value:
        return list(GatewayBatch.from_json(value).frames)
    return [Frame.from_json(value)]


def _never_ahead(records: list, begun: float, ended: float) -> list[Frame]:
    """Each frame's t0 is no later than the moment it was sent (the record's create time,
    stamped by the producer at send) and than the test's own clock."""
    frames_seen = []
    for record in records:
        sent = record.timestamp / 1000.0
        assert begun - 1.0 <= sent <= ended + 1.0  # the producer's clock is this one
        for frame in _frames_in(record.value):
            assert frame.t0 <= sent, f"{frame.device_id} seq {frame.seq} dated ahead"
            assert frame.t0 <= ended
            frames_seen.append(frame)
    return frames_seen


def test_fast_simulation_and_replay_are_dated_in_the_past(isolated_settings: Settings) -> None:
    settings = isolated_settings
    env = worker_env(settings)
    begun = time.time()
    sim = subprocess.run(
        cli("simulate", "--scenario", "artefacts", "--devices", "4", "--duration", "60",
            "--speed", "0", "--no-faults", "--json"),
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    replayed = subprocess.run(
        cli("replay", "mitbih-208", "--device-id", "replay-fast", "--speed", "0", "--json"),
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    ended = time.time()
    assert "simulate: frames dated from" in sim.stderr and "s before now" in sim.stderr
    assert "replay: frames dated from" in replayed.stderr
    # Both by default in gateway batches: the simulator's 4 devices share one gateway (60
    # messages of 4 frames), the replay's one device has its own (300 one-frame batches:
    # record 208 is 5 minutes).
    expected = 60 + 300
    records = _consume(settings, settings.topics.frames, expected, timeout_s=60)
    assert len(records) == expected
    assert {record.key for record in records} == {b"gw-0001"}
    frames_seen = _never_ahead(records, begun, ended)
    assert len(frames_seen) == 4 * 60 + 300
    simulated = [f for f in frames_seen if f.device_id != "replay-fast"]
    # Dated over the minute before the run: the last frame a frame period before "now".
    assert min(f.t0 for f in simulated) >= begun - 62
    assert max(f.t0 for f in simulated) <= ended - 0.9
    replay = sorted(f.t0 for f in frames_seen if f.device_id == "replay-fast")
    assert replay[0] >= begun - 302 and replay[-1] <= ended - 0.9
