"""The Kafka path and the in-memory path raise the same alerts on the same frames.

The alarm evaluation (``vitalstream evaluate``) and the golden tests judge the worker's
code in memory; this test is what lets their figures speak for the deployed worker. One
faulty default ward (late, duplicated and dropped frames) is rendered once; its frames
go both through an in-memory :class:`Pipeline` (driven second by second, as the
evaluation does) and, as a backlog on fresh topics, through a real ``vitalstream
worker`` subprocess on the real broker. Every alert the worker triggers must be one the
in-memory run triggered (same device and kind, onset within 1 s), and the other way
round.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from producers.fleet import Fleet
from producers.scenario import load_scenario
from stream.config import Settings
from stream.kafka import client_options
from stream.records import Alert
from stream.scoring.scorer import Scorer
from stream.worker.ingest import RawRecord
from stream.worker.pipeline import Pipeline
from tests.integration.harness import WorkerProcess, alerts_of, consume, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = 10
SECONDS = 300
SEED = 5
SIGNAL_LOSS_S = 20.0  # the silent device (patient-009, from 240 s) alerts within the run


def render(start: float) -> tuple[list[tuple[str, bytes]], list[list[tuple[str, bytes]]]]:
    """The ward's enrolments and its messages, second by second (faults included)."""
    fleet = Fleet(load_scenario("default"), DEVICES, seed=SEED, start=start, faults=True)
    enrolments = fleet.enrolments()
    seconds = [fleet.tick().messages for _ in range(SECONDS)]
    return enrolments, seconds


def in_memory(settings: Settings, start: float, enrolments: list, seconds: list) -> list[Alert]:
    pipeline = Pipeline(settings, Scorer.from_registry(settings), worker="in-memory")
    offset = 0
    for device_id, payload in enrolments:
        offset += 1
        pipeline.enrol(RawRecord(device_id.encode(), payload, 0, offset), now=start)
    alerts: list[Alert] = []
    for k, messages in enumerate(seconds):
        records = []
        for device_id, payload in messages:
            offset += 1
            records.append(RawRecord(device_id.encode(), payload, 0, offset))
        for output in (
            pipeline.process(records, now=start + k + 1.0),
            pipeline.tick(now=start + k + 1.5),
        ):
            pipeline.save(output)
            alerts += output.alerts
    return alerts


def triggered(alerts: list[Alert]) -> dict[tuple[str, str], list[float]]:
    onsets: dict[tuple[str, str], list[float]] = {}
    for alert in alerts:
        if alert.event == "triggered":
            onsets.setdefault((alert.device_id, alert.kind), []).append(alert.t_onset)
    return {key: sorted(set(values)) for key, values in onsets.items()}


def test_a_worker_on_kafka_alerts_exactly_like_the_in_memory_pipeline(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    models = tempfile.mkdtemp(dir=tmp_path)  # only the shipped default models, both paths
    settings = isolated_settings.model_copy(
        update={
            "stream": isolated_settings.stream.model_copy(update={"signal_loss_s": SIGNAL_LOSS_S}),
            "models": isolated_settings.models.model_copy(update={"directory": Path(models)}),
        }
    )
    start = time.time() - SECONDS - 120  # frames in the past: a backlog, as a replay is
    enrolments, seconds = render(start)
    expected = triggered(in_memory(settings, start, enrolments, seconds))
    assert len(expected) >= 8, expected  # the ward's events did alert in memory

    producer = KafkaProducer(**client_options(settings.kafka), acks="all", linger_ms=5)
    for device_id, payload in enrolments:
        producer.send(settings.topics.enrolments, key=device_id.encode(), value=payload)
    producer.flush()
    for messages in seconds:
        for device_id, payload in messages:
            producer.send(settings.topics.frames, key=device_id.encode(), value=payload)
    producer.flush()
    producer.close()

    env = worker_env(
        settings,
        fast_failover=False,
        VITALSTREAM_STREAM__SIGNAL_LOSS_S=str(SIGNAL_LOSS_S),
        VITALSTREAM_MODELS__DIRECTORY=models,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", tmp_path / "workers")
    worker.start()
    try:
        worker.wait_ready()

        def all_seen(values: list[bytes]) -> bool:
            return set(expected) <= set(triggered(alerts_of(values)))

        consume(settings, settings.topics.alerts, all_seen, 120)
        time.sleep(5)  # anything the worker would raise beyond them
    finally:
        assert worker.stop() == 0, worker.log_path.read_text()[-3000:]
    got = triggered(alerts_of(consume(settings, settings.topics.alerts, timeout_s=5)))

    assert set(got) == set(expected), (
        f"only through Kafka: {sorted(set(got) - set(expected))}; "
        f"only in memory: {sorted(set(expected) - set(got))}"
    )
    for key, onsets in expected.items():
        assert len(got[key]) == len(onsets), (key, got[key], onsets)
        for through_kafka, in_mem in zip(got[key], onsets, strict=True):
            assert abs(through_kafka - in_mem) <= 1.0, (key, got[key], onsets)
