"""Producer throughput: how many devices one process keeps at real time.

Owns ``run``, wired by the lead as ``vitalstream bench producer``. Each fleet size renders,
serializes and publishes flat out to the real broker (scenario ``quiet_ward`` plus
generated patients, faults off) for a few seconds of wall time; a size is sustained at
real time when one process turns out at least one frame per device per second.
"""

from __future__ import annotations

import time
import uuid

from rich.progress import Progress

from producers.fleet import Fleet
from producers.publisher import Publisher, ensure_topics
from producers.scenario import load_scenario
from stream.config import Settings


def _one_size(settings: Settings, devices: int, seconds: float, topic: str) -> dict:
    scenario = load_scenario("quiet_ward")
    fleet = Fleet(scenario, devices, seed=devices, start=time.time(), faults=False)
    frames = samples = ticks = 0
    render_s = 0.0
    with Publisher(settings) as publisher:
        began = time.perf_counter()
        while time.perf_counter() - began < seconds or ticks == 0:
            t = time.perf_counter()
            tick = fleet.tick()
            render_s += time.perf_counter() - t
            for device_id, payload in tick.messages:
                publisher.send(topic, device_id, payload)
            frames += tick.frames
            samples += tick.samples
            ticks += 1
        publisher.flush()
        elapsed = time.perf_counter() - began
        errors = publisher.errors
    frames_per_s = frames / elapsed
    return {
        "devices": devices,
        "frames": frames,
        "samples": samples,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames_per_s, 1),
        "samples_per_s": round(samples / elapsed, 1),
        "tick_ms": round(1000 * elapsed / ticks, 1),
        "render_share": round(render_s / elapsed, 3),
        "errors": errors,
        "realtime": frames_per_s >= devices and errors == 0,
    }


def run(settings: Settings, devices: list[int], seconds: float) -> dict:
    """Frames/s and samples/s for each fleet size, and the largest real-time size."""
    topic = f"bench.producer.{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic])
    results = []
    with Progress(transient=True) as progress:
        task = progress.add_task("producer bench", total=len(devices))
        for n in sorted(devices):
            results.append(_one_size(settings, n, seconds, topic))
            progress.advance(task)
    sustained = [r["devices"] for r in results if r["realtime"]]
    best = max(results, key=lambda r: r["frames_per_s"])
    return {
        "topic": topic,
        "results": results,
        "max_realtime_devices": max(sustained) if sustained else 0,
        # A fleet this size would fill one process's measured peak rate exactly.
        "estimated_capacity_devices": int(best["frames_per_s"]),
        "goal_devices": 5000,
    }
