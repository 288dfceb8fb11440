"""Running the Grafana dashboards' Flux on InfluxDB exactly as Grafana would send it.

Owns :class:`DashboardRunner`: it resolves a dashboard's variables (an override, else the
first value the variable's own query returns, in dashboard order), substitutes Grafana's
variables and macros (:mod:`stream.tools.dashboards`) and runs every panel target and
annotation with influxdb-client, each failure kept as its :class:`PanelResult`'s error.

Example::

    runner = DashboardRunner(client, bucket, org)
    dashboard = load_dashboards()["vitalstream-ward"]
    for result in runner.run(dashboard, TimeRange.last(3600)):
        print(result.query.title, result.rows, result.error)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.tools.dashboards import (
    DEFAULT_MAX_POINTS,
    PanelQuery,
    TimeRange,
    annotation_queries,
    datasource_min_interval,
    panel_queries,
    query_variables,
    substitute_macros,
    substitute_variables,
    variable_flux,
    window_period,
)


@dataclass
class PanelResult:
    query: PanelQuery
    flux: str
    tables: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def rows(self) -> int:
        return sum(len(table.records) for table in self.tables)


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
