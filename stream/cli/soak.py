"""`vitalstream soak`: the demo load with faults injected, checked against its ground truth.

Argument handling and printing only; the run is :func:`stream.tools.soak.run`. The
summary prints as a table (stderr); with ``--json`` the last line is that summary as one
JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def soak(
    minutes: float = typer.Option(30.0, "--minutes", min=0.5, help="length of the load"),
    devices: int = typer.Option(10, "--devices", min=1, help="simulated wearables"),
    scenario: str = typer.Option("default", "--scenario", help="ward scenario"),
    seed: int = typer.Option(7, "--seed", help="simulator seed"),
    plot: Path | None = typer.Option(None, "--plot", help="write the RSS trend as a PNG"),  # noqa: B008
    as_json: bool = typer.Option(False, "--json", help="last line: JSON summary"),
) -> None:
    """Soak test: demo load with worker kills, a broker restart and an InfluxDB outage."""
    from rich.console import Console

    from stream.tools.soak import run

    console = Console(stderr=True)
    result = run(minutes, devices, scenario, seed, console, plot=plot, show_progress=not as_json)
    _print(console, result)
    if as_json:
        typer.echo(json.dumps(result))


def _print(console: Any, result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"soak: {result['minutes']:g} min, {result['devices']} devices")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("frames_in", "frames_out", "alerts_expected", "alerts_delivered",
                "alerts_duplicated", "alert_replays", "points_expected", "points_written",
                "peak_rss_mb"):  # fmt: skip
        table.add_row(key, str(result[key]))
    table.add_row("alerts_not_due", str(result.get("alerts_not_due", 0)))
    for role, peak in result["peak_rss_by_process_mb"].items():
        slope = result["rss_slope_mb_per_min"].get(role)
        growth = result.get("rss_growth_mb_per_hour", {}).get(role)
        restarts = result.get("restarts", {}).get(role, 0)
        table.add_row(
            f"{role} peak / slope / after warm-up",
            f"{peak} MB / {slope} MB/min / {growth} MB/h ({restarts} restarts)",
        )
    for fault in result["faults"]:
        table.add_row(f"fault {fault['fault']}", f"at {fault['at_s']} s, {fault['took_s']} s")
    console.print(table)
