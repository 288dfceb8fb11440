"""``vitalstream alerts tail``: the live feed in the terminal, coloured by priority."""

from __future__ import annotations

import asyncio
from datetime import datetime

from rich.console import Console
from rich.text import Text

from stream.records import Alert
from stream.subscriptions.client import AlertClient, AlertClientError

PRIORITY_STYLE = {"high": "bold white on red", "medium": "bold yellow", "low": "cyan"}
EVENT_STYLE = {"resolved": "green", "acknowledged": "blue", "escalated": "bold magenta"}


def render(alert: Alert) -> Text:
    when = datetime.fromtimestamp(alert.emitted_at or alert.t_event).strftime("%H:%M:%S")
    line = Text()
    line.append(f"{when} ")
    line.append(f" {alert.priority.upper():6} ", style=PRIORITY_STYLE[alert.priority])
    line.append(f" {alert.event:12}", style=EVENT_STYLE.get(alert.event, ""))
    line.append(f" {alert.ward:10} {alert.kind:18} ")
    line.append(alert.message or ", ".join(f"{k}={v:g}" for k, v in alert.values.items()))
    if alert.escalation_level:
        line.append(f"  [level {alert.escalation_level}]", style="magenta")
    return line


async def tail(client: AlertClient, console: Console) -> None:
    async for alert in client.alerts():
        console.print(render(alert))


def run_tail(client: AlertClient) -> int:
    """Tail until Ctrl-C; returns the process exit status."""
    console = Console()
    client.on_reconnect = lambda n, why: console.print(
        f"[dim]reconnecting ({why}), resuming from the last event (#{n})[/dim]"
    )
    try:
        asyncio.run(tail(client, console))
    except AlertClientError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        pass
    return 0
