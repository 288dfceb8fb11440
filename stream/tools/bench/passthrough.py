"""The headroom suite's pass-through consumer: what any worker must do per frame, nothing else.

Owns the pass-through process (:func:`passthrough`, started by
:mod:`stream.tools.bench.headroom`): consume the frames topic with aiokafka in the
worker's consumer group (``stream.app_id``, whose committed offsets
:class:`~stream.tools.bench.sampling.OffsetProbe` reads), ``orjson.loads`` each frame,
write the InfluxDB lines the pipeline writes per frame (:class:`FrameLines`: the frame's
``vitals_lines`` and one window's ``feature_lines``, about four lines) through the real
:class:`~stream.sinks.influx.InfluxSink`, and commit the offsets once the write is durable.
No validation, windows, features, models or rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import orjson

from stream.config import Settings
from stream.records import VITALS, Frame
from stream.sinks.influx import InfluxSink
from stream.sinks.measurements import feature_lines, patient_tags, vitals_lines
from stream.tools.bench.e2e import bench_scenario
from stream.worker.ingest import pseudonymize

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

# A resting adult's window features: the values only give the feature lines their real
# shape (every name, full-precision floats); flags stay 0/1 as the pipeline writes them.
PLAUSIBLE_FEATURES: dict[str, float] = {
    "ecg_hr_bpm": 72.0, "ppg_hr_bpm": 72.0, "rr_mean_s": 0.83, "rr_cv": 0.04,
    "rmssd_ms": 35.0, "pnn50": 0.12, "rr_irregularity": 0.05, "ectopic_fraction": 0.01,
    "resp_rate": 16.0, "spo2": 97.0, "spo2_slope": 0.01, "temp": 36.8, "temp_slope": 0.001,
    "hr_device": 72.0, "activity_g": 0.02, "impact_g": 1.0, "still": 1.0, "ecg_sqi": 0.95,
    "ppg_sqi": 0.9, "ecg_lead_off": 0.0, "ecg_flat": 0.0, "ecg_saturated": 0.0, "motion": 0.0,
    "battery": 80.0, "posture_change_deg": 2.0, "ecg_hr_recent_bpm": 72.0,
    "ppg_hr_recent_bpm": 72.0,
}  # fmt: skip


FLAG_FEATURES = frozenset({"still", "ecg_lead_off", "ecg_flat", "ecg_saturated", "motion"})


class _Block(NamedTuple):
    fs: float
    samples: list[float]


class FrameView:
    """What :func:`~stream.sinks.influx.vitals_lines` reads of a frame (``t0``, each vital's
    ``fs`` and ``samples``) over the ``orjson.loads`` dict, without pydantic."""

    __slots__ = ("device_id", "signals", "t0")

    def __init__(self, decoded: Mapping[str, Any]) -> None:
        self.device_id: str = decoded["device_id"]
        self.t0: float = decoded["t0"]
        signals = decoded["signals"]
        blocks = {name: signals.get(name) for name in VITALS}
        self.signals = SimpleNamespace(
            **{name: _Block(b["fs"], b["samples"]) if b else None for name, b in blocks.items()}
        )


def feature_template() -> dict[str, float]:
    """A value for every name of ``stream.signal.features.FEATURE_NAMES``. Built in the parent:
    the pass-through process never imports the feature code (scipy, numba)."""
    from stream.signal.window import FEATURE_NAMES

    return {name: PLAUSIBLE_FEATURES.get(name, 0.5) for name in FEATURE_NAMES}


class FrameLines:
    """The InfluxDB lines the pipeline writes for one frame: its ``vitals`` and the
    ``feature_lines`` of the window it completes (``features``: see :func:`feature_template`)."""

    def __init__(
        self, ward: str, hop_s: float, features: Mapping[str, float], seed: int = 1
    ) -> None:
        self.ward = ward
        self.hop_s = hop_s
        self.rng = random.Random(seed)
        self.base = dict(features)
        self._tags: dict[str, dict[str, str]] = {}

    def tags(self, device_id: str) -> dict[str, str]:
        # One pseudonym per device, remembered, as the worker keeps each device's context.
        found = self._tags.get(device_id)
        if found is None:
            patient = pseudonymize(f"bench-{device_id}", b"headroom")
            found = self._tags[device_id] = patient_tags(self.ward, patient, device_id)
        return found

    def features(self) -> dict[str, float]:
        """Every feature, measured values varied by ±1 % (real features are not constants:
        their full-precision text is what InfluxDB parses and compresses)."""
        jitter = self.rng.random
        return {
            name: value if name in FLAG_FEATURES else value * (0.99 + 0.02 * jitter())
            for name, value in self.base.items()
        }

    def of(self, decoded: Mapping[str, Any]) -> list[str]:
        frame = FrameView(decoded)
        tags = self.tags(frame.device_id)
        lines = vitals_lines(cast(Frame, frame), tags)
        return lines + feature_lines(self.features(), tags, frame.t0 + self.hop_s)


@dataclass
class Flowed:
    """What the pass-through did, reported when it stops."""

    frames: int = 0
    undecodable: int = 0
    lines: int = 0
    batches: int = 0
    write_failures: int = 0


async def _take(consumer: AIOKafkaConsumer, size: int, within_s: float) -> list[ConsumerRecord]:
    """Up to ``size`` records, waiting at most ``within_s`` (Faust's ``take_events``)."""
    batch: list[ConsumerRecord] = []
    deadline = time.monotonic() + within_s
    while len(batch) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        found = await consumer.getmany(
            timeout_ms=max(int(left * 1000), 1), max_records=size - len(batch)
        )
        for records in found.values():
            batch += records
    return batch


async def _pass_through(
    settings: Settings, features: Mapping[str, float], stop: Event, ready: Event
) -> Flowed:
    from aiokafka import AIOKafkaConsumer

    from stream.kafka import client_options

    stream = settings.stream
    consumer = AIOKafkaConsumer(
        settings.topics.frames,
        group_id=stream.app_id,  # the worker's group: OffsetProbe reads its commits
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_options(settings.kafka, "aiokafka"),
    )
    sink = InfluxSink(settings)
    builder = FrameLines(bench_scenario(0, 0)["ward"], stream.hop_s, features)
    flowed = Flowed()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await _take(consumer, stream.batch_size, stream.batch_within_s)
            if not ready.is_set() and consumer.assignment():
                ready.set()
            if not batch:
                continue
            lines: list[str] = []
            for record in batch:
                try:
                    lines += builder.of(orjson.loads(record.value))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    flowed.undecodable += 1
            flowed.lines += await sink.write(lines)
            await consumer.commit()  # only now: the batch's lines are durable
            flowed.frames += len(batch)
            flowed.batches += 1
    finally:
        flowed.write_failures = sink.stats.write_failures
        await consumer.stop()
        await sink.close()
        if sink.spool is not None:
            with contextlib.suppress(OSError):
                sink.spool.directory.rmdir()  # nothing was spooled: leave no litter
    return flowed


def passthrough(
    settings: Settings, features: Mapping[str, float], stop: Event, ready: Event, out: Queue
) -> None:
    """Entry point of the pass-through process: sets ``ready`` once it has its partitions,
    runs until ``stop``, then puts its :class:`Flowed` counts (as a dict, or
    ``{"error": ...}``) on ``out``."""
    try:
        out.put(asdict(asyncio.run(_pass_through(settings, features, stop, ready))))
    except BaseException as exc:
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise
