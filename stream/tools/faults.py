"""Fault injection against the local stack: crash workers, bounce the broker, cut InfluxDB.

Owns the few operations the fault tests and `vitalstream soak` use to break things on
purpose, all through `stream.services.stack` (so only services this tool started are
stopped) and plain signals for worker processes. Every outage helper restores what it
stopped, even when interrupted, because the broker and InfluxDB are shared by everything
on this machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

from rich.console import Console

from stream.config import Settings
from stream.services import stack
from stream.services.stack import Service


def sigkill(pid: int) -> bool:
    """Crash a process the hard way (no flush, no commit); False if it was already gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def stop_service(settings: Settings, name: Service) -> bool:
    """Stop one local service this tool started; True if it was running."""
    return stack.down(settings, only=(name,))[name]


def start_service(settings: Settings, name: Service, console: Console | None = None) -> float:
    """Start (or reuse) one local service and wait until healthy; returns seconds taken."""
    began = time.monotonic()
    stack.up(settings, console or Console(stderr=True, quiet=True), only=(name,))
    return time.monotonic() - began


@contextlib.contextmanager
def outage(settings: Settings, name: Service, console: Console | None = None) -> Iterator[None]:
    """The service is down inside the block and healthy again after it, whatever happens."""
    stop_service(settings, name)
    try:
        yield
    finally:
        start_service(settings, name, console)


def outage_for(
    settings: Settings, name: Service, down_s: float, console: Console | None = None
) -> float:
    """Stop a service for down_s seconds, then restore it; returns the total seconds taken."""
    began = time.monotonic()
    with outage(settings, name, console):
        time.sleep(down_s)
    return time.monotonic() - began
