"""The benchmark report's figures: the PNGs in docs/bench/ that docs/benchmarks.md shows.

Owns drawing the suites' results with matplotlib (the ``bench`` extra, imported only
when drawing): e2e throughput, latency and lag, where the cores go in the headroom suite,
model latency, the InfluxDB sink's write rate and the worker's profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream.tools.bench.report_sections import HEADROOM_PARTS
from stream.tools.plotting import pyplot


def write_figures(
    suites: Mapping[str, Mapping[str, Any] | None],
    profile: Mapping[str, list[tuple[str, float]]] | None,
    out: Path,
) -> list[Path]:
    """Draw every figure the measured suites (and the profile) allow into ``out``."""
    plt = pyplot()
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if e2e := suites.get("e2e"):
        sweeps: dict[int, list[dict[str, Any]]] = {}
        for r in sorted(e2e["results"], key=lambda r: r["devices"]):
            sweeps.setdefault(r.get("workers", 1), []).append(r)

        def label(count: int) -> str:
            return f"{count} worker{'s' if count > 1 else ''}"

        everything = sorted({r["devices"] for r in e2e["results"]})
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(everything, everything, "k:", label="needed (1 frame/device/s)")
        for count, results in sweeps.items():
            n = [r["devices"] for r in results]
            ax.plot(n, [r["consumed_frames_per_s"] for r in results], "o-",
                    label=f"consumed, {label(count)}")  # fmt: skip
        knee = e2e["summary"]["max_devices_realtime"]
        if knee:
            ax.axvline(knee, color="grey", alpha=0.4, label=f"knee: {knee} devices")
        ax.set(xlabel="devices", ylabel="frames/s", title="Throughput vs fleet size")
        ax.legend()
        save(fig, "e2e_throughput.png")
        fig, ax = plt.subplots(figsize=(6, 4))
        for (count, results), marker in zip(sweeps.items(), "os^v", strict=False):
            n = [r["devices"] for r in results]
            for q, style in (("p50", ":"), ("p95", "--"), ("p99", "-")):
                ax.plot(n, [r["alert_latency_received_s"][q] for r in results], style,
                        marker=marker, label=f"{q}, {label(count)}")  # fmt: skip
        ax.axhline(3, color="red", alpha=0.4, label="goal: p99 < 3 s")
        ax.set(xlabel="devices", ylabel="s beyond designed delay", title="Alert latency")
        ax.legend(fontsize=7)
        save(fig, "e2e_latency.png")
        fig, ax = plt.subplots(figsize=(6, 4))
        for count, results in sweeps.items():
            for r in results:
                series = r["lag_series"]
                ax.plot([p[0] for p in series], [p[1] for p in series],
                        label=f"{r['devices']} ({label(count)})")  # fmt: skip
        ax.set(xlabel="s since simulator start", ylabel="lag (frames)", title="Consumer lag")
        ax.legend(title="devices", fontsize=7)
        save(fig, "e2e_lag.png")
    if headroom := suites.get("headroom"):
        rows = sorted(headroom["results"], key=lambda r: r["devices"])
        fig, ax = plt.subplots(figsize=(8, 1.8 + 0.5 * len(rows)))
        bars = [f"{r['devices']:,} devices" for r in rows]
        left = [0.0] * len(rows)
        for name, part in (*HEADROOM_PARTS, (None, "left")):
            widths = [
                r["cores_left"] if name is None else r["cpu_percent"].get(name, 0.0) / 100
                for r in rows
            ]
            ax.barh(
                bars, widths, left=left, label=part, color="lightgrey" if name is None else None
            )
            left = [a + b for a, b in zip(left, widths, strict=True)]
        cores = max(r["cores"] for r in rows)
        ax.axvline(cores, color="k", linestyle=":", label=f"{cores} cores")
        ax.set(xlabel="cores", xlim=(0, max(cores, *left) * 1.05),
               title="Where the cores go when the data only flows through")  # fmt: skip
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        save(fig, "headroom_cpu.png")
    if model := suites.get("model"):
        fig, ax = plt.subplots(figsize=(6, 4))
        keys = sorted({(r["model"], r["runtime"], r["threads"]) for r in model["results"]})
        for key in keys:
            rows = sorted(
                (r for r in model["results"] if (r["model"], r["runtime"], r["threads"]) == key),
                key=lambda r: r["batch"],
            )
            style = "-" if key[1] == "onnxruntime" else "--"
            ax.plot([r["batch"] for r in rows], [r["ms_per_window"] for r in rows], style,
                    marker="o", label=f"{key[0]} {key[1]} {key[2]}t")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="batch", ylabel="ms per window",
               title="Model latency per window")  # fmt: skip
        ax.legend(fontsize=7)
        save(fig, "model_latency.png")
    if influx := suites.get("influx"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for gz in (True, False):
            rows = [r for r in influx["results"] if r["gzip"] is gz]
            ax.plot([r["batch_lines"] for r in rows], [r["points_per_s"] for r in rows], "o-",
                    label=f"gzip {'on' if gz else 'off'}")  # fmt: skip
        ax.set(xscale="log", xlabel="lines per batch", ylabel="points/s",
               title="InfluxSink write rate")  # fmt: skip
        ax.legend()
        save(fig, "influx.png")
    if profile and profile.get("total"):
        fig, ax = plt.subplots(figsize=(7, 5))
        names = [name for name, _ in profile["total"]][::-1]
        ax.barh(names, [100 * share for _, share in profile["total"]][::-1])
        ax.set(xlabel="% of samples on stack", title="Worker profile: VitalStream functions")
        ax.tick_params(axis="y", labelsize=7)
        save(fig, "profile_top.png")
    if failover := suites.get("failover"):
        results = failover["results"]
        kills = [r["kill"] for r in results]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.38
        ax.bar([k - width / 2 for k in kills], [r["failover_s"] for r in results], width,
               label="failover (kill → all partitions committed)")  # fmt: skip
        ax.bar([k + width / 2 for k in kills], [r["rejoin_s"] for r in results], width,
               label="rejoin (restart → all committed)")  # fmt: skip
        steady = failover["summary"].get("steady_commit_lag_s")
        if steady is not None:
            ax.axhline(steady, color="k", linestyle=":", label="steady commit lag")
        ax.set_xlabel("kill")
        ax.set_ylabel("seconds")
        ax.set_xticks(kills)
        ax.set_title("worker SIGKILLed under load: time until processed again")
        ax.legend(fontsize=8)
        save(fig, "failover.png")
    return written
