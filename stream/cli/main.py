"""The `vitalstream` command line. Sub-commands delegate; they hold no logic.

Each area owns its own Typer sub-app (services, producers, models, alerts); this module
only assembles them, so `vitalstream --help` stays fast (heavy imports are deferred
into the commands themselves).
"""

from __future__ import annotations

import json
import sys

import typer
from pydantic import ValidationError

from models.cli import models_app, train
from producers.cli import replay, simulate
from stream.cli.alerts import alerts_app
from stream.cli.bench import bench
from stream.cli.dashboards import dashboards_app
from stream.cli.evaluate import evaluate
from stream.cli.run import analyze, demo, worker
from stream.cli.services import services_app
from stream.cli.soak import soak
from stream.config import load_settings
from stream.services.errors import ServiceError
from stream.tools.plotting import PlottingUnavailable

app = typer.Typer(
    name="vitalstream",
    help="Real-time clinical alerts from wearable streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print the effective settings, secrets masked."""
    data = load_settings().masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        from rich import print_json

        print_json(data=data, default=str)


app.add_typer(config_app, name="config")
app.add_typer(services_app, name="services")
app.add_typer(models_app, name="models")
app.add_typer(alerts_app, name="alerts")
app.add_typer(dashboards_app, name="dashboards")
for command in (simulate, replay, worker, demo, analyze, train, soak, bench, evaluate):
    app.command()(command)


def main() -> None:
    """Console entry point: bad settings, broken services or no matplotlib for a drawing
    end in one line, not a traceback."""
    try:
        app()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        typer.secho(f"error: invalid setting {where}: {first['msg']}", err=True, fg="red")
        sys.exit(2)
    except (ServiceError, PlottingUnavailable) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
