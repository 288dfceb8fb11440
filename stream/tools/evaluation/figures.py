"""The alarm-quality report's figures, PNGs beside its Markdown.

Owns drawing an evaluation's result (:func:`stream.tools.evaluation.metrics.evaluate`
plus its description) with matplotlib, imported only when drawing
(:mod:`stream.tools.plotting`): false alarms per patient-hour by scenario and alert kind,
and the detection latency of every detected label per event kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream.tools.plotting import pyplot


def false_alarms_figure(
    result: Mapping[str, Any], path: Path, before: Mapping[str, Any] | None = None
) -> Path:
    """Stacked bars: false alarms per patient-hour of each scenario, by alert kind (and
    the earlier evaluation's totals as markers when comparing)."""
    plt = pyplot()
    scenarios = list(result["scenarios"])
    per_kind: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(scenarios))
    for group in result["false_alarm_groups"]:
        per_kind[group["kind"]][scenarios.index(group["scenario"])] += group["per_patient_hour"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(scenarios) + 2), 4.2))
    bottom = [0.0] * len(scenarios)
    for kind, heights in sorted(per_kind.items()):
        ax.bar(scenarios, heights, bottom=bottom, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    if before is not None:
        earlier = before["summary"]["false_alarms_per_patient_hour"]["by_scenario"]
        xs = [i for i, name in enumerate(scenarios) if name in earlier]
        ax.plot(xs, [earlier[scenarios[i]] for i in xs], "kx", markersize=9, label="before")
    ax.axhline(1.0, color="grey", linestyle=":", label="1 per patient-hour")
    ax.set(ylabel="false alarms per patient-hour", title="False alarms by scenario and kind")
    ax.tick_params(axis="x", labelrotation=20)
    if per_kind or before is not None:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_figure(result: Mapping[str, Any], path: Path) -> Path:
    """Every detected label's latency per event kind (box and points), with the designed
    delay of the event's own alert marked."""
    plt = pyplot()
    latencies: dict[str, list[float]] = defaultdict(list)
    delays: dict[str, float] = {}
    for row in result["labels"]:
        if row["scorable"] and row["detected"]:
            latencies[row["event"]].append(row["latency_s"])
            delays[row["event"]] = row["designed_delay_s"]
    kinds = sorted(latencies)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(kinds) + 2), 4.2))
    if kinds:
        ax.boxplot([latencies[k] for k in kinds], showfliers=False)
        for i, kind in enumerate(kinds, start=1):
            values = latencies[kind]
            jitter = [i + 0.15 * ((j % 5) - 2) / 2 for j in range(len(values))]
            ax.plot(jitter, values, ".", alpha=0.5, color="tab:blue")
            ax.plot([i - 0.35, i + 0.35], [delays[kind]] * 2, "r-", linewidth=1)
        ax.set_xticks(range(1, len(kinds) + 1), kinds, rotation=25)
        ax.plot([], [], "r-", label="designed delay")
        ax.legend(fontsize="small")
    ax.set(ylabel="seconds from the event's start", title="Detection latency by event kind")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
