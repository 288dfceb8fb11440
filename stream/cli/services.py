"""`vitalstream services up|down|status|check`: the local Kafka and InfluxDB from the shell.

Commands only parse options and print; the work is in `stack` and `health`. Failures
raise `ServiceError`, which `stream.cli.main.main` prints as one line (exit 2); `up` also
prints the failing service's log tail first.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum

import typer
from rich.console import Console

from stream.config import Settings, load_settings
from stream.services.errors import ServiceError

services_app = typer.Typer(help="Run the local Kafka broker and InfluxDB.", no_args_is_help=True)


class Only(StrEnum):
    kafka = "kafka"
    influxdb = "influxdb"


def _selected(only: list[Only] | None) -> tuple:
    from stream.services.stack import SERVICES

    return tuple(choice.value for choice in only) if only else SERVICES


BROKERS_HELP = (
    "Kafka brokers: 1, or 3 for a replicated KRaft cluster on loopback (default: "
    "services.kafka_brokers; export VITALSTREAM_SERVICES__KAFKA_BROKERS=3 so every command "
    "sees the cluster)"
)


def _settings(brokers: int | None) -> Settings:
    settings = load_settings()
    if brokers is None:
        return settings
    services = settings.services.model_copy(update={"kafka_brokers": brokers})
    return settings.model_copy(update={"services": services})


@services_app.command("up")
def up(
    only: list[Only] | None = typer.Option(None, "--only", help="start just this service"),  # noqa: B008
    brokers: int | None = typer.Option(None, "--brokers", min=1, max=9, help=BROKERS_HELP),
) -> None:
    """Start Kafka and InfluxDB (building/fetching them once), wait until they work."""
    from stream.services import stack

    console = Console(stderr=True, soft_wrap=True)
    settings = _settings(brokers)
    began = time.monotonic()
    try:
        reports = stack.up(settings, console, _selected(only))
    except ServiceError as exc:
        if exc.log_tail:
            console.rule("log tail", style="red")
            console.print(exc.log_tail, markup=False, highlight=False)
            console.rule(style="red")
        raise
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"[bold green]VitalStream services ready[/] in {time.monotonic() - began:.1f} s")
    for report in reports:
        pid = f"pid {report.pid}" if report.pid else "not started by us"
        out.print(
            f"[bold]{report.name} {report.version}[/]  {report.address}  "
            f"{report.state} ({pid}, healthy after {report.ready_s:.1f} s)"
        )
        out.print(f"  data {report.data}\n  log  {report.log}")
        for broker in report.extra.get("brokers", [])[1:]:
            out.print(f"  node {broker['node']} {broker['address']} (pid {broker['pid']})")
    out.print(f"secrets: {settings.secrets_dir} (mode 0600)")
    if settings.services.kafka_brokers > 1:
        out.print(
            f"a {settings.services.kafka_brokers}-broker cluster: export "
            f"VITALSTREAM_SERVICES__KAFKA_BROKERS={settings.services.kafka_brokers} "
            "for the commands that use it"
        )


@services_app.command("down")
def down(
    only: list[Only] | None = typer.Option(None, "--only", help="stop just this service"),  # noqa: B008
) -> None:
    """Stop the services `up` started (never anything else)."""
    from stream.services import stack

    for name, stopped in stack.down(load_settings(), _selected(only)).items():
        typer.echo(f"{name}: {'stopped' if stopped else 'was not running (nothing of ours)'}")


@services_app.command("status")
def status(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    brokers: int | None = typer.Option(None, "--brokers", min=1, max=9, help=BROKERS_HELP),
) -> None:
    """Real health of the local services; exit 1 if any is down."""
    from stream.services import stack

    report = stack.status(_settings(brokers))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for name, entry in report.items():
            address = entry.get("bootstrap") or entry.get("url")
            state = "ok" if entry["ok"] else f"DOWN ({entry.get('error', 'unknown')})"
            typer.echo(f"{name:9} {address:26} {state}")
    if not all(entry["ok"] for entry in report.values()):
        raise typer.Exit(1)


@services_app.command("check")
def check() -> None:
    """Check the configured Kafka and InfluxDB (local or not) with a real round trip."""
    from stream.services.health import check_influx, check_kafka

    settings = load_settings()
    kafka = check_kafka(settings)
    typer.echo(f"kafka     {kafka.bootstrap:26} ok ({kafka.round_trip_ms:.0f} ms round trip)")
    influx = check_influx(settings)
    typer.echo(
        f"influxdb  {influx.url:26} ok "
        f"(v{influx.version}, {influx.round_trip_ms:.0f} ms round trip)"
    )
