"""Detached service processes: start with a pid file, find them again, stop only our own.

A process counts as ours when the pid in its pid file is alive and its command line still
contains the marker we started it with (its config path), so a recycled pid is never
killed. Waiting is always polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import psutil

from stream.services.errors import ServiceError

T = TypeVar("T")


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file ('' when there is none)."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in pid_file if that process is alive and still ours."""
    try:
        pid = int(pid_file.read_text().strip())
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        ours = any(marker in part for part in process.cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if alive and ours else None


def start_detached(
    argv: Sequence[str],
    pid_file: Path,
    log_file: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> int:
    """Start argv in its own session (it outlives this process) and record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def reap(pid: int) -> None:
    """Collect a child of ours that died, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid_file: Path, marker: str, timeout_s: float = 30.0) -> bool:
    """SIGTERM our process (SIGKILL after timeout_s); False when nothing of ours ran."""
    pid = running_pid(pid_file, marker)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: running_pid(pid_file, marker) is None or None, timeout_s, "stop")
    except ServiceError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    reap(pid)
    pid_file.unlink(missing_ok=True)
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(
    probe: Callable[[], T | None],
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    interval_s: float = 0.2,
) -> T:
    """Poll probe until it returns a value; fail early if `alive` says the process died.

    Exceptions from probe count as "not yet"; the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result is not None:
                return result
        except Exception as exc:
            last_error = exc
        if alive is not None and not alive():
            raise ServiceError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            reason = f" (last error: {_one_line(last_error)})" if last_error else ""
            raise ServiceError(f"{what}: not ready after {timeout_s:.0f} s{reason}")
        time.sleep(interval_s)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so concurrent `up`/`down`/builds (several test sessions) serialize."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
