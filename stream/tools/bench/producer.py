"""Producer throughput: how many devices one process keeps at real time.

Owns ``run``, which ``vitalstream bench producer`` calls. Each fleet size
(scenario ``quiet_ward`` plus generated patients, faults off) publishes to the real
broker twice, ``seconds`` of wall time each:

- flat out: frames/s one process turns out when nothing waits (its capacity);
- paced at real time, exactly as ``vitalstream simulate`` runs.

A size holds real time when flat out it makes at least one frame per device per second
and the paced run sent every frame, none failed and no period started a period late.

"Render share" is the share of wall time spent rendering and encoding (``Fleet.tick``),
the rest is kafka-python's send; CPU is the whole process's (all threads) per wall
second. Rendering runs on the sending thread: a render thread only fought the sends for
the GIL and cut the rate by a tenth (numpy takes the GIL back between its many calls).
"""

from __future__ import annotations

import math
import time
import uuid

from rich.progress import Progress

from producers.fleet import Fleet, run_fleet
from producers.publisher import Publisher, ensure_topics
from producers.scenario import load_scenario
from stream.config import Settings

GOAL_DEVICES = 5000
FRAME_S = 1.0


def _fleet(devices: int) -> Fleet:
    return Fleet(
        load_scenario("quiet_ward"),
        devices,
        seed=devices,
        start=time.time(),
        frame_s=FRAME_S,
        faults=False,
    )


def _flat_out(settings: Settings, devices: int, seconds: float, topic: str) -> dict:
    fleet = _fleet(devices)
    frames = samples = ticks = 0
    render_s = 0.0
    with Publisher(settings) as publisher:
        began, cpu_began = time.perf_counter(), time.process_time()
        while time.perf_counter() - began < seconds or ticks == 0:
            rendering = time.perf_counter()
            tick = fleet.tick()
            render_s += time.perf_counter() - rendering
            for device_id, payload in tick.messages:
                publisher.send(topic, device_id, payload)
            frames += tick.frames
            samples += tick.samples
            ticks += 1
        publisher.flush()
        elapsed = time.perf_counter() - began
        cpu_s = time.process_time() - cpu_began
        errors = publisher.errors
    return {
        "frames": frames,
        "samples": samples,
        "seconds": round(elapsed, 3),
        "frames_per_s": round(frames / elapsed, 1),
        "samples_per_s": round(samples / elapsed, 1),
        "tick_ms": round(1000 * elapsed / ticks, 1),
        "render_share": round(render_s / elapsed, 3),
        "cpu_per_s": round(cpu_s / elapsed, 3),
        "errors": errors,
    }


def _paced(settings: Settings, devices: int, seconds: float, topic: str) -> dict:
    fleet = _fleet(devices)
    with Publisher(settings) as publisher:
        cpu_began = time.process_time()
        stats = run_fleet(
            fleet,
            publisher.send,
            frames_topic=topic,
            enrolments_topic=f"{topic}.enrolments",
            duration_s=seconds,
            speed=1.0,
        )
        publisher.flush()
        cpu_s = time.process_time() - cpu_began
        errors = publisher.errors
    periods = math.ceil(seconds / FRAME_S)
    return {
        "paced_frames": stats.frames,
        "paced_expected_frames": devices * periods,
        "paced_worst_lag_s": round(stats.behind_s, 3),
        "paced_cpu_per_s": round(cpu_s / stats.seconds, 3),
        "paced_errors": errors,
    }


def _one_size(settings: Settings, devices: int, seconds: float, topic: str) -> dict:
    flat = _flat_out(settings, devices, seconds, topic)
    paced = _paced(settings, devices, seconds, topic)
    held = (
        flat["frames_per_s"] >= devices
        and flat["errors"] == 0
        and paced["paced_frames"] >= paced["paced_expected_frames"]
        and paced["paced_worst_lag_s"] < FRAME_S
        and paced["paced_errors"] == 0
    )
    return {"devices": devices, **flat, **paced, "realtime": held}


def run(settings: Settings, devices: list[int], seconds: float) -> dict:
    """Frames/s and samples/s for each fleet size, and the largest real-time size."""
    topic = f"bench.producer.{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic, f"{topic}.enrolments"])
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
        "goal_devices": GOAL_DEVICES,
    }
