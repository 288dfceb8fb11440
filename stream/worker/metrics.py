"""Worker metrics: Prometheus on loopback, and the same numbers as InfluxDB ``pipeline`` points.

Owns the counters and gauges a worker keeps about itself (frames, dead letters by reason,
alerts by kind, batch / scoring / write latency, write failures, backpressure, model
versions, how far behind real time the frames are) and :meth:`WorkerMetrics.snapshot`,
the rates written every ``stream.metrics_every_s`` to the ``pipeline`` measurement.

Each worker has its own :class:`prometheus_client.CollectorRegistry` (no module-level
state), served by :meth:`WorkerMetrics.serve` on 127.0.0.1 only: the numbers carry no
patient data, but nothing about a clinical system should listen on every interface.
Labels are bounded (reason kinds, alert kinds, priorities, model names), never ids.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from stream.worker.pipeline import BatchMetrics

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class _Totals:
    """Plain running totals, for rates between two snapshots."""

    frames: int = 0
    deadletters: int = 0
    duplicates: int = 0
    alerts: int = 0
    windows: int = 0
    lines: int = 0
    write_failures: int = 0
    alerts_by_kind: Counter[str] = field(default_factory=Counter)


class WorkerMetrics:
    """One worker's metrics, exported to Prometheus and summarized for InfluxDB."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = PromCounter("vitalstream_frames", "frames accepted", registry=r)
        self.deadletters = PromCounter(
            "vitalstream_deadletters", "records dead-lettered", ["reason"], registry=r
        )
        self.duplicates = PromCounter("vitalstream_duplicates", "duplicate frames", registry=r)
        self.alerts = PromCounter(
            "vitalstream_alerts", "alert events", ["kind", "priority", "event"], registry=r
        )
        self.windows = PromCounter("vitalstream_windows", "windows analysed", registry=r)
        self.batch_seconds = Histogram(
            "vitalstream_batch_seconds", "pipeline time per batch", buckets=_LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.scoring_seconds = Histogram(
            "vitalstream_scoring_seconds", "ONNX time per batch", buckets=_LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.write_seconds = Histogram(
            "vitalstream_influx_write_seconds", "durable InfluxDB write per batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.write_failures = PromCounter(
            "vitalstream_influx_write_failures", "failed InfluxDB write attempts", registry=r
        )
        self.backpressure = Gauge(
            "vitalstream_influx_backpressure", "1 while InfluxDB is unavailable", registry=r
        )
        self.frame_delay = Gauge(
            "vitalstream_frame_delay_seconds", "wall clock minus newest frame time", registry=r
        )
        self.devices = Gauge("vitalstream_devices", "devices with live buffers", registry=r)
        self.model_version = Gauge(
            "vitalstream_model_info", "1 for each model version in use", ["model", "version"],
            registry=r,
        )  # fmt: skip
        self._totals = _Totals()
        self._last = _Totals()
        self._last_at = time.monotonic()
        self._last_scoring_s = 0.0
        self._last_write_s = 0.0
        self._last_batch_s = 0.0
        self._versions: dict[str, str] = {}
        self.port: int | None = None

    # -- recording ----------------------------------------------------------------------
    def record_batch(self, batch: BatchMetrics) -> None:
        frames, windows, duplicates = batch.frames, batch.windows, batch.duplicates
        batch_s, scoring_s, newest_frame_t = batch.batch_s, batch.scoring_s, batch.newest_frame_t
        t = self._totals
        t.frames += frames
        t.windows += windows
        t.duplicates += duplicates
        self.frames.inc(frames)
        self.windows.inc(windows)
        self.duplicates.inc(duplicates)
        for reason, count in batch.deadletter_reasons.items():
            self.deadletters.labels(reason).inc(count)
            t.deadletters += count
        for kind, priority, event in batch.alerts:
            self.alerts.labels(kind, priority, event).inc()
            t.alerts += 1
            t.alerts_by_kind[kind] += 1
        self.batch_seconds.observe(batch_s)
        self._last_batch_s = batch_s
        if scoring_s:
            self.scoring_seconds.observe(scoring_s)
            self._last_scoring_s = scoring_s
        if newest_frame_t is not None:
            self.frame_delay.set(max(time.time() - newest_frame_t, 0.0))

    def record_write(self, seconds: float, lines: int, failures: int, backpressure: bool) -> None:
        self.write_seconds.observe(seconds)
        self._last_write_s = seconds
        self._totals.lines += lines
        new_failures = failures - self._totals.write_failures
        if new_failures > 0:
            self.write_failures.inc(new_failures)
        self._totals.write_failures = failures
        self.backpressure.set(1 if backpressure else 0)

    def record_models(self, versions: Mapping[str, str]) -> None:
        for model, version in self._versions.items():
            if versions.get(model) != version:
                self.model_version.remove(model, version)
        for model, version in versions.items():
            self.model_version.labels(model, version).set(1)
        self._versions = dict(versions)

    # -- export -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, float | int | str]:
        """Rates since the previous snapshot plus current gauges, for ``pipeline`` points."""
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-9)
        t, last = self._totals, self._last
        snap: dict[str, float | int | str] = {
            "frames_per_s": (t.frames - last.frames) / elapsed,
            "windows_per_s": (t.windows - last.windows) / elapsed,
            "deadletters": t.deadletters - last.deadletters,
            "duplicates": t.duplicates - last.duplicates,
            "alerts": t.alerts - last.alerts,
            "lines_written": t.lines - last.lines,
            "write_failures": t.write_failures - last.write_failures,
            "frame_delay_s": self.frame_delay._value.get(),
            "batch_s": self._last_batch_s,
            "scoring_s": self._last_scoring_s,
            "write_s": self._last_write_s,
            "backpressure": int(self.backpressure._value.get()),
        }
        for kind, count in t.alerts_by_kind.items():
            snap[f"alerts_{kind}"] = count - last.alerts_by_kind.get(kind, 0)
        for model, version in self._versions.items():
            snap[f"model_{model}"] = version
        self._last = _Totals(
            t.frames, t.deadletters, t.duplicates, t.alerts, t.windows, t.lines,
            t.write_failures, Counter(t.alerts_by_kind),
        )  # fmt: skip
        self._last_at = now
        return snap

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` on 127.0.0.1; a busy port falls back to a free one."""
        try:
            server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError:
            server, _ = start_http_server(0, addr="127.0.0.1", registry=self.registry)
            log.warning("metrics port %d busy; serving on %d", port, server.server_port)
        self.port = server.server_port
        return self.port
