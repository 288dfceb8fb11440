"""What a running suite samples and what one fleet size's samples come to.

Owns the measuring shared by the e2e and headroom suites: every ``SAMPLE_S`` the frames
topic's end offsets and the consumer group's committed offsets (:class:`OffsetProbe`, Kafka
admin) and the CPU time and RSS of the watched processes (:class:`Processes`, psutil) make
one :class:`Sample` (:func:`take_sample`); :func:`summarize_size` turns a size's samples
after the warm-up into its rates, lag and trend, real-time verdicts, CPU and alert latency
percentiles.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psutil

from stream.config import Settings
from stream.tools.bench import stats

log = logging.getLogger(__name__)

SAMPLE_S = 2.0


@dataclass
class Sample:
    t: float
    produced: int
    committed: int
    cpu_s: dict[str, float]
    rss: dict[str, float]


class OffsetProbe:
    """End offsets of the frames topic and the worker group's committed offsets."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

        from stream.kafka import client_options

        self.group = settings.stream.app_id
        self.admin = KafkaAdminClient(
            client_id="vitalstream-bench", **client_options(settings.kafka)
        )
        self.consumer = KafkaConsumer(**client_options(settings.kafka))
        topic = settings.topics.frames
        partitions = self.consumer.partitions_for_topic(topic) or set()
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]

    def read(self) -> tuple[int, int]:
        ends = self.consumer.end_offsets(self.partitions)
        committed = self._committed()
        done = sum(max(committed[tp].offset, 0) for tp in self.partitions if tp in committed)
        return sum(ends.values()), done

    def _committed(self) -> dict[Any, Any]:
        # kafka-python 3 renamed list_consumer_group_offsets and keys the answer by group.
        if hasattr(self.admin, "list_group_offsets"):
            return self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        return self.admin.list_consumer_group_offsets(self.group)

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


@dataclass
class Processes:
    procs: dict[str, psutil.Process] = field(default_factory=dict)
    peak_rss: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def cpu_and_rss(self) -> tuple[dict[str, float], dict[str, float]]:
        cpu, rss = {}, {}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                cpu[name] = times.user + times.system
                rss[name] = proc.memory_info().rss / 2**20
                self.peak_rss[name] = max(self.peak_rss[name], rss[name])
        return cpu, rss


def service_processes(settings: Settings) -> dict[str, psutil.Process]:
    """The local broker and influxd, when this project started them (they share the CPUs)."""
    from stream.services import influxdb, kafka

    found = {}
    pids = {"kafka": kafka.running_pid(settings), "influxd": influxdb.running_pid(settings)}
    for name, pid in pids.items():
        if pid is not None:
            with contextlib.suppress(psutil.Error):
                found[name] = psutil.Process(pid)
    return found


def _reopen(probe: OffsetProbe, settings: Settings) -> OffsetProbe:
    with contextlib.suppress(Exception):
        probe.close()
    try:
        return OffsetProbe(settings)
    except Exception:
        return probe  # still down: try again at the next sample


def take_sample(
    probe: OffsetProbe, settings: Settings, watched: Processes
) -> tuple[OffsetProbe, Sample | None]:
    """Offsets, CPU times and RSS now; a broker hiccup costs this sample, not the run (the
    probe is reopened, or kept to retry at the next sample)."""
    try:
        produced, committed = probe.read()
    except Exception as exc:
        log.warning("offset probe failed: %s", type(exc).__name__)
        return _reopen(probe, settings), None
    cpu, rss = watched.cpu_and_rss()
    return probe, Sample(time.time(), produced, committed, cpu, rss)


def _window(samples: list[Sample], began: float, warmup_s: float) -> list[Sample]:
    return [s for s in samples if s.t >= began + warmup_s] or samples[-2:]


def summarize_size(
    devices: int,
    samples: list[Sample],
    began: float,
    warmup_s: float,
    samples_per_frame: float,
    latencies: list[dict[str, Any]],
    peak_rss: dict[str, float],
    frames_per_message: float = 1.0,
) -> dict[str, Any]:
    """One fleet size's figures. Offsets count messages; ``frames_per_message`` (a gateway
    batch carries several devices' frames: the load's frames over its messages) turns
    them into frames, which the verdicts and rates are in."""
    measured = _window(samples, began, warmup_s)
    times = [s.t for s in measured]
    produced = frames_per_message * stats.rate(times, [s.produced for s in measured])
    consumed = frames_per_message * stats.rate(times, [s.committed for s in measured])
    lags = [round(frames_per_message * (s.produced - s.committed)) for s in measured]
    lag_slope = stats.slope(times, lags)
    matched = [x for x in latencies if x["matched"]]
    received = stats.percentiles([x["received_s"] for x in matched])
    # A label never alerted is as late as can be.
    p99 = received["p99"] if len(matched) == len(latencies) else float("inf")
    verdict = stats.holds_realtime(
        devices, produced, consumed, lag_slope, lags[-1], p99 if latencies else None
    )
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    cpu = {
        name: round(100 * (measured[-1].cpu_s[name] - measured[0].cpu_s[name]) / span, 1)
        for name in measured[-1].cpu_s
        if name in measured[0].cpu_s and span > 0
    }
    workers_cpu = [v for k, v in cpu.items() if k.startswith("worker")]
    if workers_cpu:
        cpu["workers"] = round(sum(workers_cpu), 1)
    return {
        "devices": devices,
        "measured_s": round(span, 1),
        "produced_frames_per_s": round(produced, 1),
        "consumed_frames_per_s": round(consumed, 1),
        "consumed_samples_per_s": round(consumed * samples_per_frame),
        "lag_frames_end": lags[-1],
        "lag_frames_max": max(lags),
        "lag_slope_frames_per_s": round(lag_slope, 2),
        "lag_series": [
            [round(s.t - began, 1), round(frames_per_message * (s.produced - s.committed))]
            for s in samples
        ],
        "producer_realtime": verdict["producer"],
        "worker_realtime": verdict["consumer"],
        "worker_keeps_up": verdict["keeps_up"],
        "realtime": verdict["realtime"],
        "alert_latency_emitted_s": stats.percentiles([x["emitted_s"] for x in matched]),
        "alert_latency_received_s": received,
        **{f"alert_{k}": v for k, v in stats.latency_parts(latencies).items()},
        # Per label: detection in frame time (the window that fired, past the designed
        # delay) and the whole latency; the difference is delivery.
        "latency_by_label": [
            {
                "event": x["event"],
                "frame_time_s": round(x["frame_time_s"], 2) if x["matched"] else None,
                "received_s": round(x["received_s"], 2) if x["matched"] else None,
            }
            for x in latencies
        ],
        "labels": len(latencies),
        "labels_alerted": len(matched),
        "cpu_percent": cpu,
        "peak_rss_mib": {k: round(v, 1) for k, v in peak_rss.items()},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
