"""The alarm-burden report's figures, PNGs beside its Markdown.

Owns drawing a :func:`stream.tools.burden.metrics.burden` result with matplotlib,
imported only when drawing (:mod:`stream.tools.plotting`):

- ``burden.png``: alarms per patient-day by kind, split by what became of them (each
  verdict, acknowledged without one, never acknowledged);
- ``verdicts.png``: the verdict shares of each kind's acknowledged alarms;
- ``time-to-ack.png``: every time to acknowledge by priority, with median and 90th
  centile.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream.tools.burden.metrics import VERDICT_KEYS
from stream.tools.plotting import pyplot

COLOURS = {
    "actionable": "tab:red",
    "not_actionable": "tab:orange",
    "artefact": "tab:grey",
    "none": "tab:blue",
    "unacknowledged": "#dddddd",
}
LABELS = {
    "actionable": "actionable",
    "not_actionable": "not actionable",
    "artefact": "artefact",
    "none": "acknowledged, no verdict",
    "unacknowledged": "never acknowledged",
}
PRIORITY_COLOURS = {"high": "tab:red", "medium": "tab:orange", "low": "tab:blue"}


def _title(result: Mapping[str, Any], what: str) -> str:
    ward = result.get("ward") or "all wards"
    return f"{what} — {ward}, {result['patient_days']:.2f} patient-days"


def burden_figure(result: Mapping[str, Any], path: Path) -> Path:
    """Horizontal bars: alarms per patient-day of each kind, stacked by outcome."""
    plt = pyplot()
    rows = [row for row in result["by_kind"] if row["per_patient_day"] is not None]
    rows = rows[::-1]  # heaviest at the top
    fig, ax = plt.subplots(figsize=(8.0, max(2.5, 0.42 * len(rows) + 1.6)))
    left = [0.0] * len(rows)
    kinds = [row["kind"] for row in rows]
    for part in (*VERDICT_KEYS, "unacknowledged"):
        widths = []
        for row in rows:
            count = (
                row["alarms"] - row["acknowledged"]
                if part == "unacknowledged"
                else row["verdicts"][part]
            )
            widths.append(row["per_patient_day"] * count / row["alarms"] if row["alarms"] else 0)
        if any(widths):
            ax.barh(kinds, widths, left=left, color=COLOURS[part], label=LABELS[part])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for i, row in enumerate(rows):
        ax.text(left[i], i, f" {row['per_patient_day']:.1f}", va="center", fontsize="small")
    ax.set(xlabel="alarms per patient-day", title=_title(result, "Alarm burden by kind"))
    if rows:
        ax.set_xlim(0, max(left) * 1.15)
        ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def verdicts_figure(result: Mapping[str, Any], path: Path) -> Path:
    """100 % bars: the verdicts of each kind's acknowledged alarms (n on the right)."""
    plt = pyplot()
    rows = [row for row in result["by_kind"] if row["acknowledged"]][::-1]
    rows.append({"kind": "all", **result["summary"]})
    fig, ax = plt.subplots(figsize=(8.0, max(2.5, 0.42 * len(rows) + 1.6)))
    left = [0.0] * len(rows)
    names = [row["kind"] for row in rows]
    for verdict in VERDICT_KEYS:
        widths = [100.0 * (row["verdict_shares"][verdict] or 0.0) for row in rows]
        if any(widths):
            ax.barh(names, widths, left=left, color=COLOURS[verdict], label=LABELS[verdict])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for i, row in enumerate(rows):
        ax.text(101, i, f"n={row['acknowledged']}", va="center", fontsize="small")
    ax.set_xlim(0, 112)
    ax.set(
        xlabel="% of acknowledged alarms",
        title=_title(result, "Verdicts by kind"),
    )
    if result["summary"]["acknowledged"]:
        ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(0.0, 1.08), ncols=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def time_to_ack_figure(result: Mapping[str, Any], path: Path) -> Path:
    """Every time to acknowledge (minutes) by priority: points, median and 90th centile."""
    plt = pyplot()
    samples: Mapping[str, list[float]] = result["ack_latencies_s"]
    priorities = [p for p in ("high", "medium", "low") if samples.get(p)]
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for i, priority in enumerate(priorities):
        minutes = [s / 60.0 for s in samples[priority]]
        jitter = [i + 0.25 * (((j * 7) % 11) / 10 - 0.5) for j in range(len(minutes))]
        colour = PRIORITY_COLOURS[priority]
        ax.plot(jitter, minutes, ".", alpha=0.45, color=colour)
        row = next(r for r in result["by_priority"] if r["priority"] == priority)
        stats = row["time_to_ack_s"]
        # The median's label on the left, the p90's on the right: close values stay legible.
        for value, style, name, x, align in (
            (stats["median"], "-", "median", i - 0.32, "right"),
            (stats["p90"], "--", "p90", i + 0.32, "left"),
        ):
            ax.plot([i - 0.3, i + 0.3], [value / 60.0] * 2, style, color="black", linewidth=1.2)
            ax.text(x, value / 60.0, f"{name} {value / 60.0:.1f}", va="center", ha=align,
                    fontsize="small")  # fmt: skip
    ax.set_xticks(range(len(priorities)), [f"{p}\n(n={len(samples[p])})" for p in priorities])
    ax.set_xlim(-0.9, len(priorities) - 0.1)
    ax.set(ylabel="minutes to acknowledge", title=_title(result, "Time to acknowledge"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(result: Mapping[str, Any], directory: Path) -> list[Path]:
    """All three PNGs into ``directory``."""
    return [
        burden_figure(result, directory / "burden.png"),
        verdicts_figure(result, directory / "verdicts.png"),
        time_to_ack_figure(result, directory / "time-to-ack.png"),
    ]
