"""`vitalstream alerts serve|token|tokens|revoke|tail|ack|report|simulate-week|bench`:
the alert feed's commands, and the alarm-burden report on what InfluxDB holds.

Commands only parse options and delegate; heavy imports stay inside them so
`vitalstream --help` stays fast.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from stream.config import load_settings
from stream.records import VERDICTS

# The verdicts as a choice typer lists in --help and checks before any request.
VerdictChoice = Enum("VerdictChoice", {v: v for v in VERDICTS}, type=str)  # type: ignore[misc]

alerts_app = typer.Typer(
    help="Serve, issue tokens for, and tail the alert feed.", no_args_is_help=True
)


@alerts_app.command()
def serve(
    port: int = typer.Option(None, help="port (default: alerts_api.port)"),
    host: str = typer.Option(None, help="interface (default: alerts_api.host)"),
) -> None:
    """Serve the alert feed (SSE, WebSocket, webhooks, FHIR)."""
    import logging

    from stream.subscriptions.server import serve as run_server

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    run_server(settings, host=host, port=port)


@alerts_app.command()
def token(
    ward: Annotated[list[str], typer.Option(help="ward the token may see; repeat, or '*' for all")],
    patient: Annotated[list[str] | None, typer.Option(help="restrict to these pseudonyms")] = None,
    ack: bool = typer.Option(False, "--ack", help="may acknowledge alerts"),
    ttl: float = typer.Option(12.0, help="hours until the token expires"),
    subject: str = typer.Option(None, help="who holds it (shown as 'acknowledged by')"),
) -> None:
    """Issue a bearer token. It is printed once and only its hash is kept."""
    from stream.subscriptions.tokens import TokenStore

    store = TokenStore(load_settings().alerts_api.tokens_file)
    wards = "*" if "*" in ward else list(ward)
    secret, record = store.issue(
        subject=subject or f"token-{int(time.time())}",
        wards=wards,
        patients=list(patient or []),
        can_ack=ack,
        ttl_s=ttl * 3600,
    )
    typer.secho(
        f"token {record.id} for {record.subject}, expires "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(record.expires_at))} "
        "(shown once, store it now):",
        err=True,
    )
    typer.echo(secret)


@alerts_app.command("tokens")
def list_tokens() -> None:
    """List issued tokens (ids and scopes, never the tokens)."""
    from stream.subscriptions.tokens import TokenStore

    for r in TokenStore(load_settings().alerts_api.tokens_file).records():
        state = "expired" if r.expired() else "valid"
        typer.echo(
            f"{r.id}  {r.subject:20} wards={r.wards} patients={len(r.patients)} "
            f"ack={r.can_ack} {state}"
        )


@alerts_app.command()
def revoke(token_id: str = typer.Argument(..., help="id shown by `alerts tokens`")) -> None:
    """Revoke a token; open streams using it end at their next event."""
    from stream.subscriptions.tokens import TokenStore

    if not TokenStore(load_settings().alerts_api.tokens_file).revoke(token_id):
        typer.secho(f"no token {token_id}", err=True, fg="red")
        raise typer.Exit(1)


@alerts_app.command()
def tail(
    ward: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    patient: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    min_priority: str = typer.Option(None, help="low, medium or high"),
    token: str = typer.Option(
        ..., envvar="VITALSTREAM_ALERTS_TOKEN", help="bearer token", show_default=False
    ),
    url: str = typer.Option(None, help="service URL (default: from alerts_api settings)"),
) -> None:
    """Follow the alert feed live, coloured by priority; resumes after disconnects."""
    from stream.subscriptions.client import AlertClient
    from stream.subscriptions.tail import run_tail

    api = load_settings().alerts_api
    filters: dict[str, str | list[str]] = {
        k: v for k, v in {"ward": ward, "patient": patient, "kind": kind}.items() if v
    }
    if min_priority:
        filters["min_priority"] = min_priority
    client = AlertClient(url or f"http://{api.host}:{api.port}", token, filters=filters)
    raise typer.Exit(run_tail(client))


@alerts_app.command()
def ack(
    alert_id: str = typer.Argument(..., help="the alert's id (alert_id of its events)"),
    verdict: VerdictChoice = typer.Option(  # type: ignore[valid-type]  # noqa: B008
        ..., "--verdict", help="your verdict on the alarm", show_default=False
    ),
    note: str = typer.Option("", "--note", help="free text kept with the acknowledgement"),
    token: str = typer.Option(
        ...,
        envvar="VITALSTREAM_ALERTS_TOKEN",
        help="bearer token with --ack scope (default: $VITALSTREAM_ALERTS_TOKEN)",
        show_default=False,
    ),
    url: str = typer.Option(None, help="service URL (default: from alerts_api settings)"),
) -> None:
    """Acknowledge an alert with your verdict: actionable, not_actionable or artefact."""
    import asyncio

    import httpx

    from stream.subscriptions.client import AlertClientError, acknowledge

    api = load_settings().alerts_api
    base = url or f"http://{api.host}:{api.port}"
    try:
        answer = asyncio.run(acknowledge(base, token, alert_id, verdict=verdict.value, note=note))
    except AlertClientError as exc:
        typer.secho(f"not acknowledged: {exc.status} {exc.code}: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.secho(f"cannot reach the alert service at {base}: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(
        f"acknowledged {answer['alert_id']} as {answer['verdict']} by "
        f"{answer['acknowledged_by']} at "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(answer['at']))}"
    )


@alerts_app.command()
def report(
    since: str = typer.Option("-7d", help="window start: -7d, -12h, -30m or an ISO 8601 time"),
    until: str = typer.Option("now", help="window end: now, a duration before now, or a time"),
    ward: str = typer.Option(None, help="one ward only (default: every ward)"),
    out: Path = typer.Option(  # noqa: B008 - typer declares options this way
        Path("alarm-burden"), "--out", help="directory for report.md and its PNGs"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="also write report.json, and print the JSON instead of tables"
    ),
    bucket: str = typer.Option(None, help="InfluxDB bucket (default: influx.bucket)"),
    simulation: Path = typer.Option(  # noqa: B008
        None, help="the simulation.json of a simulated week in the bucket: says what it was"
    ),
) -> None:
    """Alarm burden over a window: alarms per patient-day by kind and priority, share
    acknowledged, time to acknowledge, verdicts. Reads InfluxDB (alerts, adjudications,
    vitals); writes report.md and PNGs."""
    import json
    import sys

    from rich.console import Console

    from stream.tools import plotting
    from stream.tools.burden import influx, metrics
    from stream.tools.burden import report as burden_report

    plotting.require()
    settings = load_settings()
    now = time.time()
    try:
        start, stop = metrics.parse_when(since, now), metrics.parse_when(until, now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if stop <= start:
        raise typer.BadParameter(f"--since ({since}) must come before --until ({until})")
    with influx.influx_client(settings) as client:
        result = influx.window_result(
            client, bucket or settings.influx.bucket, settings.influx.org, start, stop, ward
        )
    described = None
    if simulation is not None:
        try:
            described = json.loads(simulation.read_text())
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"cannot read {simulation}: {exc}") from None
    command = " ".join(
        ["vitalstream alerts report", *(f"--{k} {v}" for k, v in (
            ("bucket", bucket), ("since", since), ("until", until), ("ward", ward),
            ("out", out), ("simulation", simulation),
        ) if v is not None)]
    )  # fmt: skip
    for path in burden_report.write_report(out, result, described, command):
        typer.echo(f"wrote {path}", err=True)
    if as_json:
        typer.echo(f"wrote {burden_report.write_json(out / 'report.json', result)}", err=True)
        typer.echo(json.dumps(result, indent=1))
    else:
        console = Console(width=None if sys.stdout.isatty() else 200)
        burden_report.print_result(console, result)


@alerts_app.command("simulate-week")
def simulate_week(
    scenario: str = typer.Option("all", help="a shipped scenario, a scenario YAML, or 'all'"),
    seeds: int = typer.Option(17, min=1, help="seeds per scenario"),
    seed_start: int = typer.Option(0, help="first seed"),
    devices: int = typer.Option(10, min=1, help="devices (patients) per run"),
    seconds: int = typer.Option(600, min=1, help="simulated seconds per run"),
    workers: int = typer.Option(2, min=1, help="worker processes"),
    bucket: str = typer.Option("alarm-burden-sim", help="InfluxDB bucket to write (its own)"),
    replace: bool = typer.Option(False, "--replace", help="delete the bucket first if it exists"),
    out: Path = typer.Option(  # noqa: B008
        None, "--out", help="then write the report of the simulated week here"
    ),
) -> None:
    """A simulated week for the alarm-burden report: the worker's in-memory pipeline over
    labelled scenarios × seeds, each alarm adjudicated from the labels (scripted
    verdicts and response times), written to an InfluxDB bucket as production writes."""
    import json

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from producers.scenario import ScenarioError
    from stream.tools import plotting
    from stream.tools.burden import influx, simulate
    from stream.tools.burden import report as burden_report
    from stream.tools.burden.metrics import iso
    from stream.tools.evaluation.runner import scenario_names

    if out is not None:
        plotting.require()
    settings = load_settings()
    if bucket == settings.influx.bucket:
        raise typer.BadParameter(
            f"'{bucket}' is the bucket the stream writes; simulate into a bucket of its own",
            param_hint="--bucket",
        )
    try:
        names = scenario_names(scenario)
    except ScenarioError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    week_start = float(int(time.time() // 60) * 60) - simulate.WEEK_S
    # The last run, its acknowledgements (up to an hour) and escalations end before now.
    span = simulate.WEEK_S - seconds - 2 * 3600.0
    specs = simulate.plan_week(
        names, seeds, devices=devices, seconds=seconds, start=week_start, span_s=span,
        seed_start=seed_start,
    )  # fmt: skip
    console = Console(stderr=True)
    org = settings.influx.org
    with influx.influx_client(settings) as client:
        if influx.bucket_exists(client, bucket) and not replace:
            raise typer.BadParameter(
                f"bucket '{bucket}' exists; pass --replace to delete and recreate it",
                param_hint="--bucket",
            )
        influx.recreate_bucket(client, bucket, org)
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("simulating", total=len(specs))

            def done(run: simulate.SimRun) -> None:
                progress.update(
                    task, advance=1, description=f"{run.spec.scenario} seed {run.spec.seed}"
                )

            description = simulate.simulate_into(
                client, bucket, org, specs, workers=workers, on_done=done
            )
        totals = description["totals"]
        typer.echo(
            f"simulated {description['runs']} runs, {description['patient_days']:.2f} "
            f"patient-days: {totals.get('alarms', 0)} alarms, "
            f"{totals.get('acknowledged', 0)} acknowledged; "
            f"{description['lines_written']} lines into bucket '{bucket}'",
            err=True,
        )
        stop = week_start + simulate.WEEK_S
        command = (
            f"vitalstream alerts report --bucket {bucket} --since {iso(week_start)} "
            f"--until {iso(stop)}"
        )
        typer.echo(command)
        if out is None:
            return
        result = influx.window_result(client, bucket, org, week_start, stop)
    out.mkdir(parents=True, exist_ok=True)
    (out / "simulation.json").write_text(json.dumps(description, indent=1) + "\n")
    paths = burden_report.write_report(out, result, description, command + f" --out {out}")
    paths.append(burden_report.write_json(out / "report.json", result))
    for path in paths:
        typer.echo(f"wrote {path}", err=True)


@alerts_app.command()
def bench(
    subscribers: int = typer.Option(200, help="concurrent subscribers"),
    alerts: int = typer.Option(200, help="alerts produced"),
    transport: str = typer.Option("sse", help="sse or ws"),
    rate: float = typer.Option(20.0, help="alerts produced per second"),
) -> None:
    """Fan-out benchmark on the running services: p50/p99 delivery latency."""
    from stream.tools.bench.alerts import run_bench

    run_bench(
        load_settings(),
        subscribers=subscribers,
        alerts=alerts,
        transport=transport,
        rate_per_s=rate,
    )
