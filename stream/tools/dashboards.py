"""Grafana dashboards as checkable code: load, substitute like Grafana, run, render.

Owns reading the provisioned dashboards in ``grafana/dashboards/``, turning each panel's
Flux into the exact text Grafana would send to InfluxDB, running it with influxdb-client,
and drawing the same data as a matplotlib PNG (no Grafana server is needed for either).

Grafana's Flux macros (pkg/tsdb/influxdb/flux/macros.go) are plain text replacements:

- ``v.timeRangeStart`` / ``v.timeRangeStop`` → RFC3339 time literals (unquoted),
- ``v.windowPeriod`` → the panel interval as a Go duration (``10s``, ``1m0s``), the time
  range divided by the data points Grafana asks for, rounded as Grafana's
  ``roundInterval`` does and never below the datasource's ``timeInterval``,
- ``v.bucket`` / ``v.defaultBucket`` / ``v.organization`` → quoted strings.

Dashboard variables (``$ward``, ``${patient}``, ``${device:regex}``) take the first value
their own Flux query returns (Grafana's choice when nothing is selected), resolved in
dashboard order so a variable may depend on the ones before it.

Example::

    runner = DashboardRunner(settings, client)
    dashboard = load_dashboards()["vitalstream-ward"]
    for result in runner.run(dashboard, TimeRange.last(3600)):
        print(result.query.title, result.rows, result.error)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "influxdb.yaml"

# Grafana asks for about one point per pixel of a panel; a full-width panel is ~1000 px.
DEFAULT_MAX_POINTS = 1000
DEFAULT_MIN_INTERVAL_S = 10.0

# Grafana's roundInterval (packages/grafana-data/src/datetime/rangeutil.ts):
# (raw interval below this many ms, rounded interval in ms).
_ROUNDING_MS: tuple[tuple[float, int], ...] = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
    (1_500, 1_000), (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000),
    (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000),
    (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000),
    (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
    (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)  # fmt: skip
_YEAR_MS = 31_536_000_000

# templateSrv's variable syntax: $name, [[name]] / [[name:fmt]], ${name} / ${name:fmt}.
_VARIABLE = re.compile(
    r"\$(?P<plain>\w+)|\[\[(?P<bracket>\w+?)(?::(?P<bfmt>\w+))?\]\]"
    r"|\$\{(?P<braced>\w+)(?::(?P<fmt>[^}]+))?\}"
)
_REGEX_SPECIAL = re.compile(r"[\\^$.|?*+()\[\]{}/]")


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time picker: an absolute start and stop (UTC)."""

    start: datetime
    stop: datetime

    @classmethod
    def last(cls, seconds: float, now: datetime | None = None) -> TimeRange:
        stop = now or datetime.now(UTC)
        return cls(stop - timedelta(seconds=seconds), stop)

    @property
    def seconds(self) -> float:
        return (self.stop - self.start).total_seconds()


@dataclass(frozen=True)
class PanelQuery:
    """One Flux query of a dashboard: a panel target or an annotation."""

    dashboard: str
    panel_id: int
    title: str
    panel_type: str
    ref_id: str
    flux: str
    interval_s: float | None = None  # the panel's own "min interval", if it sets one


@dataclass
class PanelResult:
    query: PanelQuery
    flux: str
    tables: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def rows(self) -> int:
        return sum(len(table.records) for table in self.tables)


# -- files -------------------------------------------------------------------------------


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """Every dashboard JSON in ``directory``, keyed by its uid."""
    dashboards = {}
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        dashboards[dashboard["uid"]] = dashboard
    return dashboards


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def parse_duration(text: str) -> float:
    """Grafana interval text (``10s``, ``1m``, ``500ms``) to seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text.strip())
    if match is None:
        raise ValueError(f"not a Grafana interval: {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match[2]]
    return float(match[1]) * scale


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """The Flux of every panel target, in layout order (rows are containers, not queries)."""
    queries = []
    for panel in iter_panels(dashboard):
        interval = panel.get("interval")
        for target in panel.get("targets", []):
            queries.append(
                PanelQuery(
                    dashboard=dashboard["uid"],
                    panel_id=panel["id"],
                    title=panel.get("title", ""),
                    panel_type=panel["type"],
                    ref_id=target.get("refId", "A"),
                    flux=target["query"],
                    interval_s=parse_duration(interval) if interval else None,
                )
            )
    return queries


def annotation_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """The Flux of the dashboard's own annotations (Grafana's built-in one has none)."""
    queries = []
    for annotation in dashboard.get("annotations", {}).get("list", []):
        target = annotation.get("target") or {}
        if "query" in target:
            queries.append(
                PanelQuery(
                    dashboard=dashboard["uid"],
                    panel_id=0,
                    title=annotation["name"],
                    panel_type="annotation",
                    ref_id=target.get("refId", "Anno"),
                    flux=target["query"],
                )
            )
    return queries


def query_variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's query variables, in the order Grafana resolves them."""
    return [v for v in dashboard.get("templating", {}).get("list", []) if v["type"] == "query"]


def variable_flux(variable: Mapping[str, Any]) -> str:
    """A variable's Flux: Grafana stores it as a string or as ``{"query": ...}``."""
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query


# -- Grafana's substitutions ---------------------------------------------------------------


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``, which Grafana uses for ``v.windowPeriod``.

    >>> go_duration(10), go_duration(60), go_duration(0.5), go_duration(5400)
    ('10s', '1m0s', '500ms', '1h30m0s')
    """
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return f"{millis:g}ms" if millis >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def window_period(
    time_range: TimeRange,
    max_points: int = DEFAULT_MAX_POINTS,
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
) -> float:
    """The interval Grafana computes for a panel, in seconds.

    >>> window_period(TimeRange.last(3600)), window_period(TimeRange.last(86400))
    (10.0, 60.0)
    """
    raw_ms = time_range.seconds * 1000 / max_points
    rounded = next((to for below, to in _ROUNDING_MS if raw_ms < below), _YEAR_MS)
    return max(rounded / 1000, min_interval_s)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def format_value(value: str, fmt: str | None) -> str:
    """One variable value in a templateSrv format (the ones a Flux query needs)."""
    if fmt is None or fmt in ("raw", "text", "glob", "pipe", "csv"):
        return value
    if fmt == "regex":
        return _REGEX_SPECIAL.sub(lambda m: "\\" + m[0], value)
    if fmt == "json":
        return json.dumps(value)
    if fmt == "doublequote":
        return f'"{value}"'
    if fmt == "singlequote":
        return f"'{value}'"
    raise ValueError(f"variable format {fmt!r} is not supported")


def substitute_variables(text: str, values: Mapping[str, str]) -> str:
    """Dashboard variables as templateSrv replaces them; unknown names stay as they are."""

    def replace(match: re.Match[str]) -> str:
        name = match["plain"] or match["bracket"] or match["braced"]
        if name not in values:
            return match[0]
        return format_value(values[name], match["bfmt"] or match["fmt"])

    return _VARIABLE.sub(replace, text)


def substitute_macros(
    flux: str, time_range: TimeRange, bucket: str, org: str, interval_s: float
) -> str:
    """Grafana's Flux macros, replaced in the order its backend replaces them."""
    replacements = (
        ("v.timeRangeStart", rfc3339(time_range.start)),
        ("v.timeRangeStop", rfc3339(time_range.stop)),
        ("v.windowPeriod", go_duration(interval_s)),
        ("v.bucket", f'"{bucket}"'),
        ("v.defaultBucket", f'"{bucket}"'),
        ("v.organization", f'"{org}"'),
    )
    for macro, value in replacements:
        flux = flux.replace(macro, value)
    return flux


def datasource_min_interval(path: Path = DATASOURCE_FILE) -> float:
    """The provisioned datasource's ``timeInterval`` (v.windowPeriod's lower bound)."""
    import yaml

    config = yaml.safe_load(path.read_text())
    interval = config["datasources"][0].get("jsonData", {}).get("timeInterval")
    return parse_duration(interval) if interval else DEFAULT_MIN_INTERVAL_S


# -- running -------------------------------------------------------------------------------


class DashboardRunner:
    """Runs dashboards' Flux on one InfluxDB bucket exactly as Grafana would send it."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        org: str,
        overrides: Mapping[str, str] | None = None,
        max_points: int = DEFAULT_MAX_POINTS,
        min_interval_s: float | None = None,
    ) -> None:
        self.query_api = client.query_api()
        self.bucket = bucket
        self.org = org
        self.overrides = dict(overrides or {})
        self.max_points = max_points
        self.min_interval_s = (
            datasource_min_interval() if min_interval_s is None else min_interval_s
        )

    def flux(self, query: PanelQuery, time_range: TimeRange, values: Mapping[str, str]) -> str:
        minimum = max(self.min_interval_s, query.interval_s or 0.0)
        interval = window_period(time_range, self.max_points, minimum)
        text = substitute_variables(query.flux, values)
        return substitute_macros(text, time_range, self.bucket, self.org, interval)

    def resolve_variables(
        self, dashboard: Mapping[str, Any], time_range: TimeRange
    ) -> dict[str, str]:
        """Each variable's value: an override, else the first option its query returns."""
        values: dict[str, str] = {}
        for variable in query_variables(dashboard):
            name = variable["name"]
            if name in self.overrides:
                values[name] = self.overrides[name]
                continue
            options = self.variable_options(variable, time_range, values)
            if not options:
                raise LookupError(f"variable {name} has no values in this time range")
            values[name] = options[0]
        return values

    def variable_options(
        self, variable: Mapping[str, Any], time_range: TimeRange, values: Mapping[str, str]
    ) -> list[str]:
        query = PanelQuery("", 0, variable["name"], "variable", "V", variable_flux(variable))
        tables = self.query_api.query(self.flux(query, time_range, values), org=self.org)
        options = list(
            dict.fromkeys(str(r.get_value()) for t in tables for r in t.records if r.get_value())
        )
        # Grafana's sort 1/2 are alphabetical ascending/descending; 0 keeps query order.
        sort = variable.get("sort", 0)
        if sort in (1, 2):
            options.sort(reverse=sort == 2)
        return options

    def run_query(
        self, query: PanelQuery, time_range: TimeRange, values: Mapping[str, str]
    ) -> PanelResult:
        text = self.flux(query, time_range, values)
        try:
            tables = self.query_api.query(text, org=self.org)
        except Exception as exc:  # any failure is a result to report, not a crash
            return PanelResult(query, text, error=_first_line(exc))
        return PanelResult(query, text, list(tables))

    def run(
        self, dashboard: Mapping[str, Any], time_range: TimeRange, annotations: bool = True
    ) -> list[PanelResult]:
        """Every panel target (and annotation) of one dashboard, variables resolved first."""
        values = self.resolve_variables(dashboard, time_range)
        queries = panel_queries(dashboard)
        if annotations:
            queries += annotation_queries(dashboard)
        return [self.run_query(q, time_range, values) for q in queries]


def _first_line(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message", body))
        except (ValueError, AttributeError):
            return str(body)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# -- rendering -----------------------------------------------------------------------------

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

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
