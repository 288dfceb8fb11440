"""The benchmark report's Markdown: one section per suite, the profile and the change log.

Owns the text of docs/benchmarks.md: the tables and sentences each suite's JSON turns
into (:func:`render_markdown`), pure functions of the loaded results. Which suites there
are (:data:`SUITES`, :data:`DERIVED`) is decided here; the figures the sections point to
are drawn by :mod:`stream.tools.bench.report_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from stream.tools.bench import stats
from stream.tools.bench.stats import frames_per_cpu_s

SUITES = ("e2e", "ceiling", "model", "influx", "producer")
# Built on the suites above (e2e's worker cost, the ceilings): rendered when measured,
# not named among the missing when not.
DERIVED = ("headroom", "failover")
# Where the machine's cores go in the headroom suite, in the figure's order.
HEADROOM_PARTS = (("simulator", "simulator"), ("kafka", "Kafka"), ("influxd", "influxd"),
                  ("passthrough", "pass-through"))  # fmt: skip


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine_line(data: Mapping[str, Any]) -> str:
    m, v = data.get("machine", {}), data.get("versions", {})
    return (
        f"_Measured {data.get('measured_at', '?')} on {m.get('cpu', '?')}, {m.get('cores')} "
        f"cores, {m.get('ram_gib')} GiB, load average {m.get('load_avg_1m')}; Python "
        f"{v.get('python')}, faust {v.get('faust-streaming')}, aiokafka {v.get('aiokafka')}, "
        f"kafka-python {v.get('kafka-python')}, onnxruntime {v.get('onnxruntime')}, numpy "
        f"{v.get('numpy')}, Kafka {v.get('kafka')}, InfluxDB {v.get('influxdb')}._"
    )


def _verdict(result: Mapping[str, Any]) -> str:
    if result["realtime"]:
        return "yes"
    if not result["producer_realtime"]:
        return "producer-bound"
    return "alerts late" if result.get("worker_keeps_up") else "no"


def _e2e(data: Mapping[str, Any]) -> str:
    rows = [
        [
            r["devices"], r.get("workers", 1), r["produced_frames_per_s"],
            r["consumed_frames_per_s"], r["consumed_samples_per_s"], r["lag_frames_end"],
            r["lag_slope_frames_per_s"], r["alert_latency_received_s"]["p50"],
            r["alert_latency_received_s"]["p95"], r["alert_latency_received_s"]["p99"],
            r.get("alert_detection_s", {}).get("p99"), r.get("alert_delivery_s", {}).get("p99"),
            f"{r['labels_alerted']}/{r['labels']}",
            r["cpu_percent"].get("workers", r["cpu_percent"].get("worker")), frames_per_cpu_s(r),
            # The load generator: the pre-rendered run's sender, or the live simulator.
            r["cpu_percent"].get("load", r["cpu_percent"].get("simulator")),
            r["cpu_percent"].get("kafka"),
            r["cpu_percent"].get("influxd"), r["peak_rss_mib"].get("worker"), r.get("load_avg_1m"),
            _verdict(r),
        ]
        for r in sorted(data["results"], key=lambda r: (r.get("workers", 1), r["devices"]))
    ]  # fmt: skip
    s = data["summary"]
    headers = [
        "devices", "workers", "produced fr/s", "consumed fr/s", "samples/s", "lag end (frames)",
        "lag trend (fr/s)", "alert p50 s", "p95 s", "p99 s", "detection p99 s",
        "delivery p99 s", "alerted", "workers' CPU %",
        "fr per worker CPU-s", "load gen. CPU %", "Kafka CPU %", "influxd CPU %",
        "worker RSS MiB", "load", "real time",
    ]  # fmt: skip
    return "\n\n".join(
        [
            "## End to end (`vitalstream bench e2e`)",
            _machine_line(data),
            "A fleet size holds real time when the workers keep up (lag bounded) *and* "
            f"alert in time (p99 ≤ {stats.LATENCY_GOAL_S:g} s beyond each rule's designed "
            "delay): past that, a fleet is kept up with but alerted late. "
            f"Largest fleet that holds real time: **{s['max_devices_realtime']} devices** "
            f"with {s.get('workers', 1)} worker process(es) "
            f"(first failing: {_fmt(s.get('first_failing_devices'))}, limited by "
            f"{_fmt(s.get('limited_by'))}); p99 alert latency there "
            f"{_fmt(s.get('p99_alert_latency_s'), 2)} s; {s['seconds_per_size']:g} s measured "
            f"per size after {s['warmup_s']:g} s warm-up. Load: "
            + (
                "the fleet rendered ahead of time and sent at 1x by a cheap sender"
                if s.get("load") == "prerendered"
                else "the live simulator (`vitalstream simulate`, rendering as it sends)"
            )
            + ".",
            table(headers, rows),
            "Alert latency is the time from a labelled event's onset to the receipt of its "
            "`triggered` alert from the alerts topic, minus the rule's designed delay (its "
            "onset delay; for a fall also the inactivity it waits out). The bench's events "
            "have abrupt onsets, so the latency includes detection (heart-rate alarms follow "
            "within two beats) and everything after it: frame batching, windowing, scoring, "
            "Kafka and the subscriber.",
            "![throughput](bench/e2e_throughput.png) ![latency](bench/e2e_latency.png)",
            "![lag](bench/e2e_lag.png)",
        ]
    )


def _ceiling(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    rows = [[r["name"], r["unit"], r["rate"]] for r in data["results"]]
    ratios = [
        "- in-memory pipeline / Kafka consume ceiling: "
        f"{_fmt(s.get('pipeline_offline_vs_kafka'), 3)}",
        f"- end-to-end pipeline (at the knee) / Kafka ceiling: {_fmt(s.get('ceiling_ratio'), 3)}",
        f"- end-to-end pipeline / InfluxDB ceiling ({_fmt(s.get('lines_per_frame'), 2)} "
        f"points per frame → {_fmt(s.get('influx_ceiling_frames_per_s'))} frames/s): "
        f"{_fmt(s.get('e2e_vs_influx'), 3)}",
    ]
    return "\n\n".join(
        [
            "## Ceilings (`vitalstream bench ceiling`)",
            _machine_line(data),
            f"{_fmt(s['frames'])} simulator frames (quiet ward, no faults) on one topic.",
            table(["measurement", "unit", "rate"], rows),
            "\n".join(ratios),
        ]
    )


def _headroom(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    rows = [
        [
            r["devices"], r["produced_frames_per_s"], r["consumed_frames_per_s"],
            r["lag_frames_end"], r["lag_slope_frames_per_s"],
            *(r["cpu_percent"].get(name) for name, _ in HEADROOM_PARTS),
            r["total_cpu_percent"], r["cores"], _fmt(r["cores_left"], 2),
            r["budget_us_per_frame"], r.get("passthrough_us_per_frame"),
            _fmt(r.get("lines_per_frame"), 2), _verdict(r),
        ]
        for r in sorted(data["results"], key=lambda r: r["devices"])
    ]  # fmt: skip
    headers = [
        "devices", "produced fr/s", "consumed fr/s", "lag end (frames)", "lag trend (fr/s)",
        *(f"{label} CPU %" for _, label in HEADROOM_PARTS), "total CPU %", "cores",
        "cores left", "budget µs/frame", "pass-through µs/frame", "lines/frame", "real time",
    ]  # fmt: skip
    worker = s.get("e2e_worker_us_per_frame")
    comparison = " No e2e result to compare the worker with."
    if worker is not None:
        comparison = (
            f" The worker measured end to end uses {_fmt(worker)} µs of CPU per frame (at the "
            f"e2e knee: {_fmt(s.get('e2e_knee_devices'))} devices, "
            f"{_fmt(s.get('e2e_knee_workers'))} worker process(es))"
        )
        needed, beyond = s.get("speedup_needed"), _fmt(s.get("analysis_speedup_needed"), 2)
        if needed is None:
            comparison += ": nothing is left for it."
        elif needed > 1:
            comparison += (
                f": to fit, it would have to be **{_fmt(needed, 2)}× faster** ({beyond}× for "
                "its work beyond the pass-through)."
            )
        else:
            comparison += (
                f": it fits, using **{_fmt(needed, 2)}× the budget** ({beyond}× for its work "
                "beyond the pass-through)."
            )
    elsewhere = s.get("budget_us_per_frame_devices_elsewhere")
    if elsewhere is not None:
        comparison += (
            f" Without the simulator's share (real wearables are not on this machine) "
            f"{_fmt(s.get('cores_left_devices_elsewhere'), 2)} cores would be left, "
            f"{_fmt(elsewhere)} µs per frame"
            + (
                f": the worker would still have to be "
                f"{_fmt(s.get('speedup_needed_devices_elsewhere'), 2)}× faster."
                if (s.get("speedup_needed_devices_elsewhere") or 0) > 1
                else "."
            )
        )
    decode = s.get("pydantic_decode_us_per_frame")
    if decode is not None:
        comparison += f" Validating a frame with pydantic alone costs {_fmt(decode)} µs (ceiling)."
    return "\n\n".join(
        [
            "## Headroom (`vitalstream bench headroom`)",
            _machine_line(data),
            "How much CPU is left for the worker's analysis when the whole fleet's data only "
            "flows through: the real simulator (one frame per device per second) and a "
            "pass-through consumer that does what any worker must do per frame and nothing "
            "else (aiokafka consume in the worker's group, `orjson.loads`, the pipeline's "
            "InfluxDB lines through `InfluxSink`, offsets committed once written), with Kafka "
            "and InfluxDB on the same machine. 100 % CPU is one core; the budget is the cores "
            "left per consumed frame.",
            f"At **{_fmt(s['devices'])} devices** ({_fmt(s['consumed_frames_per_s'])} frames/s "
            f"consumed; the pass-through keeps up: {_fmt(s.get('passthrough_keeps_up'))}) "
            f"these processes use {_fmt(s['total_cpu_percent'])} % of {s['cores']} cores, leaving "
            f"{_fmt(s['cores_left'], 2)} cores: **{_fmt(s['budget_us_per_frame'])} µs of CPU per "
            "frame** for validation, windows, features, models and rules."
            + (
                ""
                if s.get("passthrough_keeps_up")
                else " The data flow alone did not keep up: the budget is per frame consumed, "
                "an upper bound (at the full rate it would take more of the machine)."
            )
            + comparison,
            f"{s['seconds_per_size']:g} s measured per size after {s['warmup_s']:g} s warm-up.",
            table(headers, rows),
            "![headroom](bench/headroom_cpu.png)",
        ]
    )


def _model(data: Mapping[str, Any]) -> str:
    rows = [
        [
            r["model"],
            r["runtime"],
            r["threads"],
            r["batch"],
            f"{r['ms_per_window']:.3f}",
            f"{r['ms_per_call']:.3f}",
        ]
        for r in data["results"]
        if r["batch"] in (1, 8, 32, 256)
    ]
    s = data["summary"]
    speedups = ", ".join(f"{k} {v:.1f}×" for k, v in s["onnx_speedup_batch1_by_model"].items())
    return "\n\n".join(
        [
            "## Models (`vitalstream bench model`)",
            _machine_line(data),
            f"onnxruntime over PyTorch at batch 1, one thread: {speedups}. "
            "All batch sizes are in `docs/bench/model.json`.",
            table(["model", "runtime", "threads", "batch", "ms/window", "ms/call"], rows),
            "![model latency](bench/model_latency.png)",
        ]
    )


def _influx(data: Mapping[str, Any]) -> str:
    rows = [[r["batch_lines"], r["gzip"], r["points_per_s"]] for r in data["results"]]
    s = data["summary"]
    return "\n\n".join(
        [
            "## InfluxDB sink (`vitalstream bench influx`)",
            _machine_line(data),
            f"`InfluxSink`, {_fmt(s['lines_per_case'])} feature lines per case. "
            f"Best {_fmt(s['best_points_per_s'])} points/s at {s['best_batch_lines']} lines "
            f"(gzip {_fmt(s['best_gzip'])}); the configured default does "
            f"{_fmt(s.get('configured_points_per_s'))} points/s.",
            table(["batch lines", "gzip", "points/s"], rows),
            "![influx](bench/influx.png)",
        ]
    )


def _producer(data: Mapping[str, Any]) -> str:
    rows = [
        [r["devices"], r["frames_per_s"], r["samples_per_s"], r["tick_ms"],
         *(_fmt(r.get(key), 2) for key in ("render_share", "cpu_per_s", "paced_worst_lag_s",
                                           "paced_cpu_per_s")),
         r["realtime"]]
        for r in data["results"]
    ]  # fmt: skip
    headers = ["devices", "frames/s", "samples/s", "tick ms", "render share", "CPU/s",
               "paced worst lag s", "paced CPU/s", "real time"]  # fmt: skip
    s = data["summary"]
    return "\n\n".join(
        [
            "## Producer (`vitalstream bench producer`)",
            _machine_line(data),
            f"One simulator process: real time up to {_fmt(s.get('max_realtime_devices'))} "
            f"devices (goal {_fmt(s.get('goal_devices'))}); flat out it turns out frames for "
            f"an estimated {_fmt(s.get('estimated_capacity_devices'))} devices.",
            "Each size runs flat out (frames/s, samples/s, tick ms, render share: the share of "
            "wall time spent rendering and encoding frames, the rest is kafka-python's send; "
            "CPU: process CPU seconds per wall second, all threads) and then paced at real time as "
            "`vitalstream simulate` runs (worst lag: the latest start of a period). "
            "A size holds real time when flat out it makes at least one frame per device per "
            "second and the paced run sent every frame, none failed and no period started a "
            "period late.",
            table(headers, rows),
        ]
    )


def _profile(top: Mapping[str, list[tuple[str, float]]], devices: int | None) -> str:
    at = f" at {devices} devices" if devices else ""
    rows = [
        [name, f"{share:.1%}", total_name, f"{total_share:.1%}"]
        for (name, share), (total_name, total_share) in zip(top["self"], top["total"], strict=False)
    ]
    return "\n\n".join(
        [
            f"## Where the worker's time goes (py-spy{at})",
            "Sampled with `py-spy record --format raw` during the e2e measurement "
            "(collapsed stacks in `docs/bench/profile.txt`). *Self*: the function itself was "
            "running; *total*: it was on the stack.",
            table(["self", "share", "total", "share"], rows),
            "![profile](bench/profile_top.png)",
        ]
    )


def _changes(changes: list[dict[str, Any]]) -> str:
    rows = [[c["change"], c["metric"], c["before"], c["after"], c.get("note", "")] for c in changes]
    return "\n\n".join(
        [
            "## What each performance change bought",
            "Measured one after another on the same machine (see the load column of each "
            "suite: the machine is shared, so differences under ~10 % are noise).",
            table(["change", "metric", "before", "after", "note"], rows),
        ]
    )


def _failover(data: Mapping[str, Any]) -> str:
    s = data["summary"]
    rows = [[r["kill"], r["victim"], r["at_s"], r["failover_s"], r["rejoin_s"], r["stalled"]]
            for r in data["results"]]  # fmt: skip
    return "\n\n".join(
        [
            "## Failover (`vitalstream bench failover`)",
            _machine_line(data),
            f"{s['workers']} workers in one group, {s['devices']} devices at 1x"
            f"{', a CPU hog beside them' if s.get('hog') else ''}; {s['kills']} SIGKILLs at "
            "random moments. Failover: from the kill until the group has committed, on every "
            "partition, past what had been published 1.5 s after it (a frame sent after the "
            "kill processed everywhere: the session timeout, the rebalance, the snapshot load "
            "and the replay included); rejoin: the same after the killed worker is restarted "
            "and takes its share back. The same measure with no fault (steady): "
            f"{_fmt(s.get('steady_commit_lag_s'))} s.",
            f"Max failover {_fmt(s.get('max_failover_s'))} s (median "
            f"{_fmt(s.get('median_failover_s'))} s), max rejoin {_fmt(s.get('max_rejoin_s'))} s, "
            f"stalled kills {s.get('stalled_kills')}; lost points {s.get('lost_points')} of "
            f"{s.get('points_expected')}, lost alerts {s.get('lost_alerts')}"
            f"{_not_due(s)}, duplicated alerts "
            f"{s.get('duplicated_alerts')} (replayed copies with the same id: "
            f"{s.get('alert_replays')}).",
            table(["kill", "worker", "at s", "failover s", "rejoin s", "stalled"], rows),
            "![failover](bench/failover.png)",
        ]
    )


def _not_due(summary: Mapping[str, Any]) -> str:
    """The labels a run ended too soon for (``alerts_not_due``), when there are any.

    >>> _not_due({"alerts_not_due": 1}), _not_due({})
    (' (1 more not due: silent for less than signal_loss_s when the load ended)', '')
    """
    count = summary.get("alerts_not_due") or 0
    if not count:
        return ""
    return f" ({count} more not due: silent for less than signal_loss_s when the load ended)"


def render_markdown(
    suites: Mapping[str, Mapping[str, Any] | None],
    profile: Mapping[str, list[tuple[str, float]]] | None = None,
    changes: list[dict[str, Any]] | None = None,
) -> str:
    """docs/benchmarks.md from whatever suites have results (missing ones are named, but
    not a missing :data:`DERIVED` one; ``headroom`` follows the ceilings)."""
    parts = [
        "# VitalStream benchmarks",
        "Reproduce with `vitalstream bench SUITE --json docs/bench/SUITE.json` for SUITE in "
        + ", ".join(f"`{s}`" for s in (*SUITES, *DERIVED))
        + ", then `vitalstream bench report`. Every figure below is regenerated from the "
        "JSON files in `docs/bench/`.",
    ]
    renderers = {"e2e": _e2e, "ceiling": _ceiling, "model": _model, "influx": _influx,
                 "producer": _producer}  # fmt: skip
    missing = []
    for name in SUITES:
        data = suites.get(name)
        if data:
            parts.append(renderers[name](data))
        else:
            missing.append(name)
        if name == "ceiling" and (headroom := suites.get("headroom")):
            parts.append(_headroom(headroom))
    if failover := suites.get("failover"):
        parts.append(_failover(failover))
    if profile and profile.get("self"):
        e2e = suites.get("e2e") or {}
        parts.append(_profile(profile, (e2e.get("summary") or {}).get("profiled_devices")))
    if changes:
        parts.append(_changes(changes))
    if missing:
        parts.append("Not measured yet: " + ", ".join(f"`{m}`" for m in missing) + ".")
    return "\n\n".join(parts) + "\n"
