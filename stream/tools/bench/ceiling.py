"""Ceiling suite: the best this machine does without the pipeline, on the same data.

Owns four measurements over one topic of real simulator frames (``quiet_ward``, no faults):

- ``kafka_consume``: a plain aiokafka consume-and-decode loop (``orjson.loads`` per frame),
  the best a Python consumer does;
- ``pydantic_decode``: ``Frame.model_validate_json`` per frame, in memory (ingest's cost);
- ``pipeline_offline``: :meth:`stream.worker.pipeline.Pipeline.process` over the same records in
  batches of ``stream.batch_size``, in memory with the shipped models (no Kafka, no
  InfluxDB): the worker's compute ceiling;
- ``influx_raw``: line protocol POSTed with httpx in 5,000-line gzip batches.

The pipeline's end-to-end rate (from the e2e suite's JSON when given) is reported as a
ratio of each.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from typing import Any

import httpx
import orjson
from rich.progress import Progress

from producers.fleet import Fleet
from producers.publisher import Publisher, ensure_topics
from producers.scenario import load_scenario
from stream.config import Settings
from stream.tools.bench.common import discard, isolated
from stream.tools.bench.influx import sample_lines
from stream.worker.ingest import RawRecord

INFLUX_BATCH = 5000


def _frames(devices: int, seconds: int) -> list[tuple[str, bytes]]:
    fleet = Fleet(load_scenario("quiet_ward"), devices, seed=3, start=time.time() - seconds,
                  faults=False)  # fmt: skip
    return [message for _ in range(seconds) for message in fleet.tick().messages]


def _publish(settings: Settings, topic: str, frames: list[tuple[str, bytes]]) -> None:
    with Publisher(settings) as publisher:
        for device_id, payload in frames:
            publisher.send(topic, device_id, payload)


async def _consume(settings: Settings, topic: str, total: int) -> float:
    from aiokafka import AIOKafkaConsumer

    from stream.kafka import client_options

    consumer = AIOKafkaConsumer(
        topic,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 2**20,
        fetch_max_bytes=64 * 2**20,
        **client_options(settings.kafka, "aiokafka"),
    )
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += sum(len(r) for r in batches.values())
        return seen / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()


def _pydantic_rate(frames: list[tuple[str, bytes]]) -> float:
    from stream.records import Frame

    started = time.perf_counter()
    for _, payload in frames:
        Frame.model_validate_json(payload)
    return len(frames) / (time.perf_counter() - started)


def _pipeline_rate(settings: Settings, frames: list[tuple[str, bytes]]) -> dict[str, float]:
    from stream.scoring.scorer import Scorer
    from stream.worker.pipeline import Pipeline

    pipeline = Pipeline(settings, Scorer.from_registry(settings))
    records = [RawRecord(k.encode(), v, 0, i) for i, (k, v) in enumerate(frames)]
    size = settings.stream.batch_size
    windows = lines = 0
    started = time.perf_counter()
    for i in range(0, len(records), size):
        output = pipeline.process(records[i : i + size])
        windows += output.metrics.windows
        lines += len(output.lines)
    elapsed = time.perf_counter() - started
    return {
        "frames_per_s": len(records) / elapsed,
        "windows_per_s": windows / elapsed,
        "lines_per_frame": lines / len(records),
    }


def _influx_rate(settings: Settings, lines: int) -> float:
    from stream.services import influxdb

    influxdb.ensure_bucket(settings, settings.influx.bucket)
    influx = settings.influx
    text = sample_lines(lines)
    headers = {"Authorization": f"Token {settings.influx_token}", "Content-Encoding": "gzip"}
    params = {"org": influx.org, "bucket": influx.bucket, "precision": "ns"}
    with httpx.Client(timeout=influx.timeout_s) as client:
        started = time.perf_counter()
        for i in range(0, lines, INFLUX_BATCH):
            body = gzip.compress("\n".join(text[i : i + INFLUX_BATCH]).encode(), compresslevel=1)
            client.post(
                influx.url.rstrip("/") + "/api/v2/write", params=params, headers=headers,
                content=body,
            ).raise_for_status()  # fmt: skip
        return lines / (time.perf_counter() - started)


def run(
    settings: Settings,
    devices: int = 1000,
    seconds: int = 20,
    influx_lines: int = 200_000,
    e2e: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ceilings, and the pipeline's rates as a share of them."""
    bench = isolated(settings, "ceiling")
    topic = bench.topics.frames
    results: list[dict[str, Any]] = []
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("ceiling", total=5)
            frames = _frames(devices, seconds)
            ensure_topics(bench, [topic])
            _publish(bench, topic, frames)
            progress.advance(task)
            kafka = asyncio.run(_consume(bench, topic, len(frames)))
            results.append({"name": "kafka_consume", "unit": "frames/s", "rate": kafka})
            progress.advance(task)
            results.append(
                {"name": "pydantic_decode", "unit": "frames/s", "rate": _pydantic_rate(frames)}
            )
            progress.advance(task)
            offline = _pipeline_rate(settings, frames)
            results.append(
                {"name": "pipeline_offline", "unit": "frames/s", "rate": offline["frames_per_s"],
                 "windows_per_s": offline["windows_per_s"]}
            )  # fmt: skip
            progress.advance(task)
            influx = _influx_rate(bench, influx_lines)
            results.append({"name": "influx_raw", "unit": "points/s", "rate": influx})
            progress.advance(task)
    finally:
        discard(bench)
    for result in results:
        result["rate"] = round(result["rate"], 1)
    e2e_rate = (e2e or {}).get("summary", {}).get("frames_per_s_at_knee")
    lines_per_frame = offline["lines_per_frame"]
    summary: dict[str, Any] = {
        "frames": len(frames),
        "kafka_consume_frames_per_s": round(kafka, 1),
        "pipeline_offline_frames_per_s": round(offline["frames_per_s"], 1),
        "influx_raw_points_per_s": round(influx, 1),
        "lines_per_frame": round(lines_per_frame, 2),
        "pipeline_offline_vs_kafka": round(offline["frames_per_s"] / kafka, 4),
        # Each frame becomes about this many points; the InfluxDB ceiling in frames/s.
        "influx_ceiling_frames_per_s": round(influx / lines_per_frame, 1),
        "pipeline_e2e_frames_per_s": e2e_rate,
    }
    if e2e_rate:
        summary["ceiling_ratio"] = round(e2e_rate / kafka, 4)
        summary["e2e_vs_influx"] = round(e2e_rate / summary["influx_ceiling_frames_per_s"], 4)
    return results, summary
