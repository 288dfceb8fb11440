"""Running one benchmark suite by name, as ``vitalstream bench SUITE`` asks.

Owns :func:`run_suite`: the real services are checked first (for the suites that use
them), then the suite's module runs with the command's options; the e2e summary also gets
its :func:`ceiling_ratio` (knee over the plain-consumer ceiling, from ``ceiling.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def ceiling_ratio(e2e_summary: dict[str, Any], bench_dir: Path) -> float | None:
    """Frames/s at the knee over the plain-consumer ceiling (from ``ceiling.json``)."""
    from stream.tools.bench.common import read_json

    ceiling = read_json(bench_dir / "ceiling.json")
    kafka = (ceiling or {}).get("summary", {}).get("kafka_consume_frames_per_s")
    at_knee = e2e_summary.get("frames_per_s_at_knee")
    return round(at_knee / kafka, 5) if kafka and at_knee else None


def run_suite(suite: str, options: dict[str, Any]) -> tuple[list[dict], dict[str, Any]]:
    """``(results, summary)`` of one suite (any but ``report``); ``options`` are the
    command's: ``devices``, ``seconds``, ``warmup``, ``profile_at``, ``bench_dir``, ``workers``,
    ``per_message``, ``partitions`` (e2e, throughput) and, for e2e, ``load`` and
    ``stop_at_knee``."""
    from stream.config import load_settings
    from stream.services import health

    settings = load_settings()
    if suite in ("e2e", "ceiling", "headroom", "influx", "producer", "failover", "throughput"):
        health.check_kafka(settings)
        health.check_influx(settings)
    if suite == "e2e":
        from stream.tools.bench import e2e

        profile_at = options["profile_at"]
        results, summary = e2e.run(
            settings, options["devices"], options["seconds"], options["warmup"],
            profile_at=profile_at, profile_path=options["bench_dir"] / "profile.txt",
            workers=options["workers"], load=options.get("load", e2e.PRERENDERED),
            partitions=options.get("partitions"),
            stop_at_knee=options.get("stop_at_knee", True),
            per_message=options.get("per_message", 1),
        )  # fmt: skip
        summary["profiled_devices"] = profile_at
        summary["per_message"] = options.get("per_message", 1)
        summary["ceiling_ratio"] = ceiling_ratio(summary, options["bench_dir"])
        return results, summary
    if suite == "ceiling":
        from stream.tools.bench import ceiling
        from stream.tools.bench.common import read_json

        e2e_json = read_json(options["bench_dir"] / "e2e.json")
        return ceiling.run(settings, e2e=e2e_json)
    if suite == "headroom":
        from stream.tools.bench import headroom

        return headroom.run(
            settings, options["devices"], options["seconds"], options["warmup"],
            bench_dir=options["bench_dir"],
        )  # fmt: skip
    if suite == "analysis":
        from stream.tools.bench import analysis

        return analysis.run(
            options["devices"], options["seconds"], options["warmup"], options.get("repeat", 1)
        )
    if suite == "failover":
        from stream.tools.bench import failover

        return failover.run(
            settings, options["devices"][0], options["repeat"],
            workers=max(options["workers"][0], 2), hog=options.get("hog", True),
        )  # fmt: skip
    if suite == "throughput":
        from stream.tools.bench import throughput

        if len(options["devices"]) != 1:
            raise ValueError("throughput measures one fleet size: give --devices N")
        return throughput.run(
            settings, options["devices"][0], int(options["seconds"]), options["per_message"],
            workers=options.get("workers", (1,)), partitions=options.get("partitions"),
        )  # fmt: skip
    if suite == "model":
        from stream.tools.bench import model

        return model.run(settings)
    if suite == "influx":
        from stream.tools.bench import influx

        return influx.run(settings)
    from stream.tools.bench import producer as producer_bench

    summary = producer_bench.run(settings, options["devices"], options["seconds"])
    return summary.pop("results"), summary
