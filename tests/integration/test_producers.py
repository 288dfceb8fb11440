"""Producers against the real broker: a fleet's frames and a replay arrive intact."""

from __future__ import annotations

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
from stream.records import Enrolment, Frame

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
