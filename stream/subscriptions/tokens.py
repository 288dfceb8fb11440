"""Bearer tokens for the alert feed: issued once, stored only as hashes, scoped.

A token is ``vs_`` + 32 random bytes (URL-safe base64). The tokens file (mode 0600)
keeps ``sha256(token)`` with the scope; the token itself is printed once by
``vitalstream alerts token`` and never stored or logged. Tokens are high-entropy random
strings, so a plain (unsalted) SHA-256 is enough: there is nothing to brute-force.

The store re-reads the file when it changes, so a running server sees tokens issued or
revoked by the CLI within a second.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from stream.records import Alert

TOKEN_PREFIX = "vs_"
_RELOAD_EVERY_S = 1.0


class AuthError(Exception):
    """A request that cannot be served: ``status`` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: Literal[401, 403], code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class TokenRecord(BaseModel):
    """What the tokens file keeps about one token (never the token itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="short public id, for listing and revoking")
    sha256: str
    subject: str = Field(min_length=1, max_length=128)
    wards: list[str] | Literal["*"]
    patients: list[str] = Field(default_factory=list)
    can_ack: bool = False
    created_at: float
    expires_at: float

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def allows_ward(self, ward: str) -> bool:
        return self.wards == "*" or ward in self.wards

    def allows_patient(self, patient: str) -> bool:
        return not self.patients or patient in self.patients

    def allows(self, alert: Alert) -> bool:
        """The per-event check: may this token see this alert?"""
        return self.allows_ward(alert.ward) and self.allows_patient(alert.patient)

    def check_filters(self, wards: frozenset[str], patients: frozenset[str]) -> None:
        """Refuse filters asking for wards or patients outside the scope (403)."""
        outside = sorted(w for w in wards if not self.allows_ward(w))
        if outside:
            raise AuthError(403, "insufficient_scope", f"token does not cover ward(s) {outside}")
        if self.patients and any(not self.allows_patient(p) for p in patients):
            raise AuthError(
                403, "insufficient_scope", "token does not cover the requested patient(s)"
            )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens file: issue, revoke, list, and authenticate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash: dict[str, TokenRecord] = {}
        self._mtime_ns: int | None = None
        self._checked_at = 0.0

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._by_hash, self._mtime_ns = {}, None
            return
        if stat.st_mtime_ns == self._mtime_ns:
            return
        data = orjson.loads(self.path.read_bytes() or b"[]")
        records = [TokenRecord.model_validate(r) for r in data]
        self._by_hash = {r.sha256: r for r in records}
        self._mtime_ns = stat.st_mtime_ns

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= _RELOAD_EVERY_S or self._mtime_ns is None:
            self._checked_at = now
            self._load()

    def _save(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps([r.model_dump() for r in records], option=orjson.OPT_INDENT_2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._mtime_ns = None
        self._load()

    def records(self) -> list[TokenRecord]:
        self._load()
        return sorted(self._by_hash.values(), key=lambda r: r.created_at)

    def issue(
        self,
        *,
        subject: str,
        wards: list[str] | Literal["*"],
        patients: list[str] | None = None,
        can_ack: bool = False,
        ttl_s: float = 12 * 3600,
        now: float | None = None,
    ) -> tuple[str, TokenRecord]:
        """Create a token; returns the token (show it once) and what is stored."""
        if wards != "*" and not wards:
            raise ValueError("a token needs at least one ward ('*' for all)")
        if ttl_s <= 0:
            raise ValueError("ttl must be positive")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        issued = time.time() if now is None else now
        record = TokenRecord(
            id=secrets.token_hex(4),
            sha256=hash_token(token),
            subject=subject,
            wards=wards,
            patients=list(patients or []),
            can_ack=can_ack,
            created_at=issued,
            expires_at=issued + ttl_s,
        )
        self._save([*self.records(), record])
        return token, record

    def revoke(self, token_id: str) -> bool:
        records = self.records()
        kept = [r for r in records if r.id != token_id]
        if len(kept) == len(records):
            return False
        self._save(kept)
        return True

    def authenticate(self, token: str | None, now: float | None = None) -> TokenRecord:
        """The token's record, or :class:`AuthError` 401 when missing, unknown or expired."""
        if not token:
            raise AuthError(401, "missing_token", "send 'Authorization: Bearer <token>'")
        self._refresh()
        record = self._by_hash.get(hash_token(token))
        if record is None:
            raise AuthError(
                401, "unknown_token", "token is not recognised (revoked or never issued)"
            )
        if record.expired(now):
            raise AuthError(401, "expired_token", "token has expired; ask for a new one")
        return record

    def still_valid(self, record: TokenRecord, now: float | None = None) -> bool:
        """Per-event re-check: not expired and not revoked since the stream began."""
        if record.expired(now):
            return False
        self._refresh()
        return record.sha256 in self._by_hash


def bearer_token(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer`` header value, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
