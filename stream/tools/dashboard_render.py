"""Drawing a dashboard's query results as one PNG, the way its Grafana panels show them.

Owns the rendering with matplotlib (the ``bench`` extra, imported only when drawing):
time series with NEWS2 bands and alert annotations, stat panels, bar gauges and tables,
laid out in the dashboard's order (no Grafana server is needed). :func:`render_dashboard`
runs a dashboard (:class:`~stream.tools.dashboard_runner.DashboardRunner`) and draws it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream.tools.dashboard_runner import DashboardRunner, PanelResult
from stream.tools.dashboards import TimeRange, rfc3339
from stream.tools.plotting import pyplot

# NEWS2 bands (RCP 2017): 0 low, 1-4 low (ward assessment), 5-6 medium, 7+ high.
NEWS2_COLOURS = ((7, "#d62728"), (5, "#ff7f0e"), (1, "#e6c619"), (0, "#2ca02c"))
_HIDDEN_COLUMNS = {"_start", "_stop", "_measurement", "result", "table"}


def news2_colour(score: float) -> str:
    return next(colour for floor, colour in NEWS2_COLOURS if score >= floor)


def series_label(table: Any) -> str:
    """A legend entry from a table's group key, short pseudonyms, no bookkeeping columns."""
    first = table.records[0].values
    parts = []
    for column in table.get_group_key():
        if column.label in _HIDDEN_COLUMNS or column.label == "ward":
            continue
        text = str(first.get(column.label))
        parts.append(text[:8] if column.label == "patient" else text)
    return " ".join(parts) or "value"


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%H:%M:%S")
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value > 1e12:  # epoch milliseconds (last-seen columns)
            return datetime.fromtimestamp(value / 1000, UTC).strftime("%H:%M:%S")
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    text = str(value)
    return text if len(text) <= 14 else text[:12] + "…"


def result_rows(result: PanelResult) -> tuple[list[str], list[list[Any]]]:
    """All records of a result as one table: visible columns and raw values."""
    columns: list[str] = []
    rows = []
    for table in result.tables:
        for record in table.records:
            for name in record.values:
                if name not in _HIDDEN_COLUMNS and name not in columns:
                    columns.append(name)
            rows.append(record.values)
    return columns, [[row.get(c) for c in columns] for row in rows]


def _draw_timeseries(ax: Any, result: PanelResult, annotations: Sequence[PanelResult]) -> None:
    for table in result.tables:
        points = [(r.get_time(), r.get_value()) for r in table.records]
        points = [(t, v) for t, v in points if isinstance(v, int | float)]
        if points:
            times, values = zip(*points, strict=True)
            ax.plot(times, values, linewidth=1, label=series_label(table))
    if "NEWS2" in result.query.title:
        for (low, colour), (high, _) in zip(NEWS2_COLOURS[1:], NEWS2_COLOURS, strict=False):
            ax.axhspan(low, high, color=colour, alpha=0.08)
        ax.axhspan(7, max(ax.get_ylim()[1], 8), color=NEWS2_COLOURS[0][1], alpha=0.08)
    for annotation in annotations:
        colour = "#d62728" if "ack" not in annotation.query.title.lower() else "#1f77b4"
        for table in annotation.tables:
            for record in table.records:
                ax.axvline(record.get_time(), color=colour, alpha=0.4, linewidth=0.8)
    if 0 < len(result.tables) <= 8:
        ax.legend(fontsize=6, loc="upper left")
    ax.tick_params(labelsize=6)


PRIORITY_COLOURS = {"high": "#d62728", "medium": "#ff7f0e", "low": "#1f77b4"}


def _labelled_values(result: PanelResult) -> list[tuple[str, float]]:
    return [
        (series_label(table), float(record.get_value()))
        for table in result.tables
        for record in table.records
        if isinstance(record.get_value(), int | float)
    ]


def _draw_bars(ax: Any, result: PanelResult) -> None:
    pairs = _labelled_values(result)
    news2 = "NEWS2" in result.query.title
    colours = [news2_colour(v) if news2 else "#1f77b4" for _, v in pairs]
    ax.barh([label for label, _ in pairs], [v for _, v in pairs], color=colours)
    for y, (_, v) in enumerate(pairs):
        ax.text(v, y, f" {v:g}", va="center", fontsize=7)
    ax.tick_params(labelsize=6)


def _draw_stat(ax: Any, result: PanelResult) -> None:
    """Big numbers, as Grafana's stat panel shows them (priorities in their colours)."""
    pairs = _labelled_values(result)
    ax.axis("off")
    for i, (label, value) in enumerate(pairs):
        x = (i + 0.5) / len(pairs)
        colour = PRIORITY_COLOURS.get(label, "#333333")
        ax.text(x, 0.45, f"{value:.3g}", ha="center", va="center", fontsize=22, color=colour)
        if label != "value":
            ax.text(x, 0.1, label, ha="center", va="center", fontsize=9, color=colour)


def _draw_table(ax: Any, result: PanelResult) -> None:
    columns, rows = result_rows(result)
    ax.axis("off")
    if not rows:
        return
    shown = rows[:14]
    cells = [[_cell(v) for v in row] for row in shown]
    labels = [c.lstrip("_") for c in columns]
    table = ax.table(cellText=cells, colLabels=labels, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(6)
    table.scale(1, 1.1)
    if "news2" in columns or any(c == "aggregate" for c in columns):
        index = columns.index("news2" if "news2" in columns else "aggregate")
        for i, row in enumerate(shown, start=1):
            if isinstance(row[index], int | float):
                table[i, index].set_facecolor(news2_colour(row[index]))


def render(
    dashboard: Mapping[str, Any],
    results: Sequence[PanelResult],
    path: Path,
    time_range: TimeRange,
    values: Mapping[str, str] | None = None,
) -> Path:
    """One PNG of a dashboard's panels (grid order), drawn from the query results."""
    plt = pyplot()
    import matplotlib.dates as mdates

    panels = [r for r in results if r.query.panel_type != "annotation"]
    annotations = [r for r in results if r.query.panel_type == "annotation"]
    by_panel: dict[int, list[PanelResult]] = {}
    for result in panels:
        by_panel.setdefault(result.query.panel_id, []).append(result)
    columns = 2
    rows = math.ceil(len(by_panel) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(12, 2.6 * rows), squeeze=False)
    for ax, group in zip(axes.flat, by_panel.values(), strict=False):
        first = group[0]
        merged = PanelResult(first.query, first.flux, [t for r in group for t in r.tables])
        kind = first.query.panel_type
        ax.set_title(f"{first.query.title} ({merged.rows} rows)", fontsize=8)
        if kind in ("timeseries", "barchart"):
            _draw_timeseries(ax, merged, annotations)
            locator = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        elif kind == "stat":
            _draw_stat(ax, merged)
        elif kind in ("bargauge", "gauge"):
            _draw_bars(ax, merged)
        else:
            _draw_table(ax, merged)
    for ax in list(axes.flat)[len(by_panel) :]:
        ax.axis("off")
    chosen = ", ".join(f"{k}={v[:8] if k == 'patient' else v}" for k, v in (values or {}).items())
    fig.suptitle(
        f"{dashboard['title']}  ({rfc3339(time_range.start)[:19]} – "
        f"{rfc3339(time_range.stop)[11:19]} UTC{'; ' + chosen if chosen else ''})",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def render_dashboard(
    runner: DashboardRunner, dashboard: Mapping[str, Any], time_range: TimeRange, out: Path
) -> Path:
    """Run one dashboard and draw it to ``out/<uid without 'vitalstream-'>.png``."""
    values = runner.resolve_variables(dashboard, time_range)
    results = runner.run(dashboard, time_range)
    name = dashboard["uid"].removeprefix("vitalstream-")
    return render(dashboard, results, out / f"{name}.png", time_range, values)
