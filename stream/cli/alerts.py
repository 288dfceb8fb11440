"""`vitalstream alerts serve|token|tokens|revoke|tail|ack|bench`: the alert feed's commands.

Commands only parse options and delegate; heavy imports stay inside them so
`vitalstream --help` stays fast.
"""

from __future__ import annotations

import time
from enum import Enum
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
