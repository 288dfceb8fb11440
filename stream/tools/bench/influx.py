"""InfluxDB suite: points/s that :class:`stream.sinks.influx.InfluxSink` writes, by batch size
and gzip.

Owns the sweep and the synthetic line protocol it writes (realistic ``features`` lines:
three tags, a dozen fields, one point per device per second) into a fresh bucket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.progress import Progress

from stream.config import Settings
from stream.tools.bench.common import discard, isolated

BATCH_LINES = (500, 1000, 2000, 5000, 10_000, 20_000)
FIELDS = ("ecg_hr_bpm", "ppg_hr_bpm", "rr_mean_s", "rr_cv", "rmssd_ms", "pnn50", "spo2",
          "temp", "resp_rate", "activity_g", "ecg_sqi", "ppg_sqi")  # fmt: skip


def sample_lines(count: int, devices: int = 1000, t0_ns: int = 1_700_000_000 * 10**9) -> list[str]:
    """``count`` feature lines: device ``i % devices`` at second ``i // devices``."""
    out = []
    for i in range(count):
        device = i % devices
        values = ",".join(f"{name}={(i * 7 + k) % 97 + 0.25}" for k, name in enumerate(FIELDS))
        t_ns = t0_ns + (i // devices) * 10**9
        out.append(f"features,device=d{device:05d},patient=p-{device:05d},ward=w {values} {t_ns}")
    return out


async def _write(settings: Settings, lines: list[str]) -> float:
    from stream.sinks.influx import InfluxSink

    sink = InfluxSink(settings)
    try:
        started = time.perf_counter()
        await sink.write(lines)
        return len(lines) / (time.perf_counter() - started)
    finally:
        await sink.close()


def run(
    settings: Settings, lines: int = 100_000, batches: tuple[int, ...] = BATCH_LINES
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from stream.services import influxdb

    bench = isolated(settings, "influx")
    influxdb.ensure_bucket(bench, bench.influx.bucket)
    results: list[dict[str, Any]] = []
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("influx sink", total=2 * len(batches))
            for gzip in (True, False):
                for batch in batches:
                    # A fresh time range per case: overwriting points costs differently.
                    offset = len(results) * 10**12
                    data = sample_lines(lines, t0_ns=1_700_000_000 * 10**9 + offset)
                    case = bench.model_copy(
                        update={
                            "influx": bench.influx.model_copy(
                                update={"batch_lines": batch, "gzip": gzip}
                            )
                        }
                    )
                    rate = asyncio.run(_write(case, data))
                    results.append(
                        {"batch_lines": batch, "gzip": gzip, "points_per_s": round(rate, 1)}
                    )
                    progress.advance(task)
    finally:
        discard(bench)
    best = max(results, key=lambda r: r["points_per_s"])
    default = next(
        (r for r in results
         if r["batch_lines"] == settings.influx.batch_lines and r["gzip"] == settings.influx.gzip),
        None,
    )  # fmt: skip
    summary = {
        "best_points_per_s": best["points_per_s"],
        "best_batch_lines": best["batch_lines"],
        "best_gzip": best["gzip"],
        "configured_points_per_s": default["points_per_s"] if default else None,
        "lines_per_case": lines,
    }
    return results, summary
