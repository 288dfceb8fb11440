"""Secrets the local services generate once: InfluxDB token and password, pseudonym key.

They live as mode-0600 files in ``Settings.secrets_dir``, where `Settings.influx_token`
and `Settings.pseudonym_secret` find them when nothing else is configured.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from stream.config import Settings

LOCAL_SECRETS = ("influx_token", "influx_password", "pseudonym_key")


def ensure_local_secrets(settings: Settings) -> dict[str, Path]:
    """Create any missing secret file (never overwrite one); returns name -> path."""
    directory = settings.secrets_dir
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    paths = {}
    for name in LOCAL_SECRETS:
        path = directory / name
        try:
            # O_EXCL: two concurrent `up`s must not each write a different token.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        paths[name] = path
    return paths


def read_local_secret(settings: Settings, name: str) -> str:
    return (settings.secrets_dir / name).read_text().strip()
