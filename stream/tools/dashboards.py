"""Grafana dashboards as checkable code: the files, their queries, Grafana's substitutions.

Owns reading the provisioned dashboards in ``grafana/dashboards/`` (panels, annotations,
variables) and turning each panel's Flux into the exact text Grafana would send to
InfluxDB (no Grafana server is needed). Running it is
:mod:`stream.tools.dashboard_runner`'s; drawing the results,
:mod:`stream.tools.dashboard_render`'s.

Grafana's Flux macros (pkg/tsdb/influxdb/flux/macros.go) are plain text replacements:

- ``v.timeRangeStart`` / ``v.timeRangeStop`` → RFC3339 time literals (unquoted),
- ``v.windowPeriod`` → the panel interval as a Go duration (``10s``, ``1m0s``), the time
  range divided by the data points Grafana asks for, rounded as Grafana's
  ``roundInterval`` does and never below the datasource's ``timeInterval``,
- ``v.bucket`` / ``v.defaultBucket`` / ``v.organization`` → quoted strings.

Dashboard variables (``$ward``, ``${patient}``, ``${device:regex}``) take the first value
their own Flux query returns (Grafana's choice when nothing is selected), resolved in
dashboard order so a variable may depend on the ones before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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
