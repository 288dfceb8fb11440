"""Run the alert service with uvicorn: in the foreground (CLI) or in a thread (tests, bench).

uvicorn's own access log is off: :class:`~.access_log.AccessLog` logs paths without query
strings, so nothing secret or identifying in a URL reaches the logs.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from stream.config import Settings
from stream.subscriptions.app import create_app
from stream.subscriptions.webhooks import RetryPolicy


def _config(
    settings: Settings, host: str, port: int, retry: RetryPolicy | None = None
) -> uvicorn.Config:
    config = uvicorn.Config(
        create_app(settings, webhook_retry=retry),
        host=host,
        port=port,
        access_log=False,
        log_level=settings.log_level.lower(),
        lifespan="on",
        ws="websockets-sansio",
        # Open SSE streams end when the server stops instead of holding shutdown forever.
        timeout_graceful_shutdown=5,
    )
    # access_log=False only empties the logger's handlers; a handler added later (another
    # logging setup) would bring query strings back, so the logger is switched off outright.
    logging.getLogger("uvicorn.access").disabled = True
    return config


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted."""
    api = settings.alerts_api
    uvicorn.Server(_config(settings, host or api.host, port or api.port)).run()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServerThread:
    """The service on a free loopback port in a background thread, as a context manager.

    ``url`` is ready once the context is entered; the feed may still be catching up, so
    wait for ``/healthz`` (see :meth:`wait_ready`) before subscribing.
    """

    def __init__(self, settings: Settings, retry: RetryPolicy | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(_config(settings, "127.0.0.1", self.port, retry))
        self.thread = threading.Thread(target=self.server.run, name="alerts-api", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("alert service did not start")
            time.sleep(0.02)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/healthz").status_code == 200:
                return
            time.sleep(0.05)
        raise TimeoutError("alert feed did not catch up")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
