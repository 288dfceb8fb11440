"""`vitalstream bench SUITE`: reproducible benchmarks, side by side with the ceilings.

Owns the :func:`bench` command (registered on the CLI root by :mod:`stream.cli.main`).
Suites:

- ``e2e``: a live fleet's load (pre-rendered, or the simulator) + worker processes, fleet
  size swept, real-time knee and CPU budget (stream.tools.bench.e2e);
- ``ceiling``: plain aiokafka consume, pydantic decode, in-memory pipeline, raw InfluxDB
  writes (stream.tools.bench.ceiling);
- ``headroom``: simulator + a pass-through consumer (decode, InfluxDB writes, commits; no
  analysis) at 5,000 devices: the CPU left per frame for the worker's analysis
  (stream.tools.bench.headroom);
- ``model``: onnxruntime vs PyTorch per-window latency (stream.tools.bench.model);
- ``influx``: InfluxSink points/s by batch size and gzip (stream.tools.bench.influx);
- ``producer``: simulator throughput (stream.tools.bench.producer);
- ``analysis``: the stream core in memory, CPU µs per device-second by stage
  (stream.tools.bench.analysis);
- ``failover``: workers SIGKILLed under load, time until their partitions are processed
  again, lost points and alerts (stream.tools.bench.failover);
- ``throughput``: workers (one group; ``--workers 1,2`` measures each count) drain a
  preloaded backlog of N devices x S seconds, device-seconds per worker CPU-second and
  per wall-second (stream.tools.bench.throughput);
- ``report``: docs/benchmarks.md and docs/bench/*.png from the JSON results.

``--json PATH`` writes ``{"suite", "machine", "versions", "results", "summary"}``; the
report reads ``docs/bench/<suite>.json``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from producers.gateways import MAX_PER_MESSAGE

SUITES = (
    "e2e", "ceiling", "headroom", "model", "influx", "producer", "analysis", "failover",
    "throughput", "report",
)  # fmt: skip
# The sweep stops at the first size the worker cannot hold (see stream.tools.bench.e2e.run).
DEFAULT_DEVICES = "50,100,150,250,500,1000,2000,3000,5000"
# The fleet VitalStream is sized for: 5,000 devices flowing through this machine.
HEADROOM_DEVICES = "5000"
# The analysis target is stated per device-second at 1,000 devices (one worker's share).
ANALYSIS_DEVICES = "1000"
# Failover runs under the demo load (`vitalstream demo`'s 10 devices).
FAILOVER_DEVICES = "10"
# Throughput: a backlog one worker drains in a couple of minutes on a 2-core machine.
THROUGHPUT_DEVICES = "200"
BENCH_DIR = Path("docs/bench")
REPORT_PATH = Path("docs/benchmarks.md")


def _counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter("takes comma-separated integers") from None
    if not counts or counts[0] < 1:
        raise typer.BadParameter("needs positive counts")
    return counts


def bench(
    suite: str = typer.Argument(
        ...,
        help="e2e | ceiling | headroom | model | influx | producer | analysis | failover | "
        "throughput | report",
    ),
    json_path: Path | None = typer.Option(  # noqa: B008 - typer declares options this way
        None, "--json", help="write the results as JSON here"
    ),
    devices: str | None = typer.Option(
        None,
        "--devices",
        help=f"fleet sizes (e2e, headroom, producer, analysis), comma-separated (default "
        f"{DEFAULT_DEVICES}; for headroom {HEADROOM_DEVICES}, for analysis {ANALYSIS_DEVICES}, "
        f"for failover {FAILOVER_DEVICES}, for throughput {THROUGHPUT_DEVICES})",
    ),
    seconds: float = typer.Option(
        60.0, "--seconds", min=1, help="measured seconds per size (throughput: preloaded)"
    ),
    warmup: float = typer.Option(
        20.0, "--warmup", min=0, help="e2e, headroom, analysis: warm-up seconds per size"
    ),
    repeat: int = typer.Option(
        1, "--repeat", min=1, help="analysis: runs per fleet size; failover: worker kills"
    ),
    profile_at: int | None = typer.Option(
        None, "--profile-at", help="e2e: py-spy the worker at this fleet size"
    ),
    bench_dir: Path = typer.Option(  # noqa: B008
        BENCH_DIR, "--bench-dir", help="where the report reads JSON and writes PNGs"
    ),
    workers: str = typer.Option(
        "1",
        "--workers",
        help="e2e: worker processes sharing the partitions, one sweep per comma-separated "
        "count; throughput: one drain per comma-separated count (same backlog, fresh topics); "
        "failover: workers in the group (at least 2)",
    ),
    hog: bool = typer.Option(True, "--hog/--no-hog", help="failover: a busy process beside"),
    per_message: int = typer.Option(
        1,
        "--per-message",
        min=1,
        max=MAX_PER_MESSAGE,
        help="throughput, e2e: devices' frames per Kafka message (K > 1: gateway batches of "
        "K consecutive devices keyed by gateway, as vitalstream simulate --per-message K)",
    ),
    load: str = typer.Option(
        "prerendered",
        "--load",
        help="e2e: the fleet's load, 'prerendered' (rendered ahead, sent at 1x by a cheap "
        "sender) or 'simulate' (the live simulator, which renders as it sends)",
    ),
    partitions: int | None = typer.Option(
        None,
        "--partitions",
        min=1,
        help="e2e, throughput: partitions of the run's topics (default: the configured "
        "kafka.partitions; a worker beyond the partition count idles)",
    ),
    stop_at_knee: bool = typer.Option(
        True,
        "--stop-at-knee/--all-sizes",
        help="e2e: end a sweep at the first size the workers cannot hold, or measure all",
    ),
) -> None:
    """Run a benchmark suite and print its summary (and write JSON with --json)."""
    import json

    from stream.tools.bench import suites
    from stream.tools.bench.common import envelope, write_json

    if suite not in SUITES:
        raise typer.BadParameter(f"suite must be one of {', '.join(SUITES)}")
    if suite == "report":
        from stream.tools.bench.report import write_report

        for path in write_report(bench_dir, REPORT_PATH if bench_dir == BENCH_DIR else
                                 bench_dir / "benchmarks.md"):  # fmt: skip
            typer.echo(f"wrote {path}")
        return
    from stream.config import load_settings

    if devices is None:
        devices = {
            "headroom": HEADROOM_DEVICES, "analysis": ANALYSIS_DEVICES,
            "failover": FAILOVER_DEVICES, "throughput": THROUGHPUT_DEVICES,
        }.get(suite, DEFAULT_DEVICES)  # fmt: skip
    options = {
        "devices": _counts(devices), "seconds": seconds, "warmup": warmup,
        "profile_at": profile_at, "bench_dir": bench_dir, "workers": _counts(workers),
        "repeat": repeat, "hog": hog, "per_message": per_message, "load": load,
        "partitions": partitions, "stop_at_knee": stop_at_knee,
    }  # fmt: skip
    if suite == "e2e" and load not in ("prerendered", "simulate"):
        raise typer.BadParameter("takes 'prerendered' or 'simulate'", param_hint="--load")
    if suite == "throughput" and len(options["devices"]) != 1:
        raise typer.BadParameter("throughput measures one fleet size: --devices N")
    results, summary = suites.run_suite(suite, options)
    data = envelope(suite, load_settings(), results, summary)
    if json_path is not None:
        write_json(json_path, data)
    typer.echo(json.dumps(summary, indent=2, default=str))
