"""`vitalstream dashboards check|render`: the Grafana dashboards against the real InfluxDB.

Argument handling and printing only; the work is in :mod:`stream.tools.dashboards` (the
queries), :mod:`stream.tools.dashboard_runner` and :mod:`stream.tools.dashboard_render`.
Both commands read the bucket, org and token from the settings (``VITALSTREAM_INFLUX__*``), as the
provisioned Grafana datasource reads the same values from its environment.
"""

from __future__ import annotations

from pathlib import Path

import typer

dashboards_app = typer.Typer(
    help="Check and render the Grafana dashboards against InfluxDB.", no_args_is_help=True
)


def _overrides(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--var wants NAME=VALUE, got {pair!r}")
        values[name] = value
    return values


_RANGE_HELP = "time range ending now, e.g. 15m, 1h, 6h"
_VAR_HELP = "set a dashboard variable instead of its first value (repeatable)"


def check(
    last: str = typer.Option("1h", "--last", help=_RANGE_HELP),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP),  # noqa: B008
    allow_empty: bool = typer.Option(False, "--allow-empty", help="empty panels are not errors"),
) -> None:
    """Run every panel's Flux as Grafana would send it; report rows per panel."""
    from influxdb_client import InfluxDBClient
    from rich.console import Console
    from rich.table import Table

    from stream.config import load_settings
    from stream.tools.dashboard_runner import DashboardRunner
    from stream.tools.dashboards import TimeRange, load_dashboards, parse_duration

    settings = load_settings()
    influx = settings.influx
    time_range = TimeRange.last(parse_duration(last))
    console = Console()
    problems = 0
    with InfluxDBClient(url=influx.url, token=settings.influx_token, org=influx.org) as client:
        runner = DashboardRunner(client, influx.bucket, influx.org, _overrides(var))
        for uid, dashboard in load_dashboards().items():
            table = Table(
                title=f"{dashboard['title']} ({uid}), bucket {influx.bucket}, last {last}"
            )
            for column in ("id", "panel", "ref", "rows", "status"):
                table.add_column(column)
            try:
                results = runner.run(dashboard, time_range)
            except LookupError as exc:
                console.print(f"[red]{uid}: {exc}[/]")
                problems += 1
                continue
            for result in results:
                q = result.query
                if result.error:
                    status, problems = f"[red]error: {result.error}[/]", problems + 1
                elif result.rows == 0 and not allow_empty:
                    status, problems = "[yellow]no data[/]", problems + 1
                else:
                    status = "[green]ok[/]"
                table.add_row(str(q.panel_id), q.title, q.ref_id, str(result.rows), status)
            console.print(table)
    if problems:
        console.print(f"[red]{problems} panel queries failed or returned nothing[/]")
        raise typer.Exit(1)


def render(
    out: Path = typer.Option(Path("docs/dashboards"), "--out", help="directory for the PNGs"),  # noqa: B008
    last: str = typer.Option("1h", "--last", help=_RANGE_HELP),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP),  # noqa: B008
) -> None:
    """Draw each dashboard's data as a PNG (<name>.png: ward, patient, pipeline)."""
    from influxdb_client import InfluxDBClient
    from rich.progress import track

    from stream.config import load_settings
    from stream.tools.dashboard_render import render_dashboard
    from stream.tools.dashboard_runner import DashboardRunner
    from stream.tools.dashboards import TimeRange, load_dashboards, parse_duration

    settings = load_settings()
    influx = settings.influx
    time_range = TimeRange.last(parse_duration(last))
    with InfluxDBClient(url=influx.url, token=settings.influx_token, org=influx.org) as client:
        runner = DashboardRunner(client, influx.bucket, influx.org, _overrides(var))
        for uid, dashboard in track(list(load_dashboards().items()), description="render"):
            path = render_dashboard(runner, dashboard, time_range, out)
            typer.echo(f"{uid}: {path} ({path.stat().st_size // 1024} KB)")


dashboards_app.command()(check)
dashboards_app.command()(render)
