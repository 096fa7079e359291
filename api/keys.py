"""API keys: a public key id and a secret, shown once and stored only as a digest.

A secret is 256 random bits, so a fast keyed digest is as safe as a slow password hash
and keeps authentication cheap on every request: the table holds
`HMAC-SHA256(salt, secret)` with a random 16-byte salt per key, compared in constant time
(`hmac.compare_digest`). A revoked key stays in the table (`revoked_at`) and never
authenticates again.

Key ids and secrets travel in the Alpaca headers `APCA-API-KEY-ID` and
`APCA-API-SECRET-KEY`, so the same keys serve the native and the Alpaca-compatible API.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "ACCOUNT_PATTERN",
    "ApiKey",
    "Db",
    "NewKey",
    "Scope",
    "authenticate",
    "create_key",
    "digest",
    "list_keys",
    "revoke_key",
]

Scope = Literal["trader", "admin"]
SCOPES: tuple[Scope, ...] = ("trader", "admin")
# What the engine accepts as an account name, kept narrower: no spaces, no surprises.
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
_ACCOUNT = re.compile(ACCOUNT_PATTERN)
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


#: Anything that runs queries: a pool, a connection, a pool's connection.
Db: TypeAlias = "asyncpg.Pool[Any] | asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


@dataclass(frozen=True)
class ApiKey:
    """A key as stored (no secret)."""

    key_id: str
    account: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only time its secret is known."""

    key: ApiKey
    secret: str


def digest(salt: bytes, secret: str) -> bytes:
    """What the table holds for `secret`."""
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def _key_id() -> str:
    return "TP" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def _row(r: asyncpg.Record) -> ApiKey:
    return ApiKey(r["key_id"], r["account"], r["scope"], r["created_at"], r["revoked_at"])


async def create_key(db: Db, account: str, scope: Scope = "trader") -> NewKey:
    """Create a key for `account`; the returned secret is not stored anywhere."""
    if not _ACCOUNT.fullmatch(account):
        raise ValueError(
            f"account {account!r}: 1-64 letters, digits or . _ : @ -, starting with a "
            "letter or digit"
        )
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    row = await db.fetchrow(
        "INSERT INTO api_keys (key_id, account, scope, secret_salt, secret_hash)"
        " VALUES ($1, $2, $3, $4, $5)"
        " RETURNING key_id, account, scope, created_at, revoked_at",
        _key_id(),
        account,
        scope,
        salt,
        digest(salt, secret),
    )
    assert row is not None
    return NewKey(_row(row), secret)


async def list_keys(db: Db, account: str | None = None) -> list[ApiKey]:
    """Every key (of `account`), oldest first, revoked ones included."""
    rows = await db.fetch(
        "SELECT key_id, account, scope, created_at, revoked_at FROM api_keys"
        " WHERE $1::text IS NULL OR account = $1 ORDER BY created_at, key_id",
        account,
    )
    return [_row(r) for r in rows]


async def revoke_key(db: Db, key_id: str) -> ApiKey | None:
    """Revoke a key (a key already revoked keeps its first revocation time); None if
    there is no such key."""
    row = await db.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1"
        " RETURNING key_id, account, scope, created_at, revoked_at",
        key_id,
    )
    return None if row is None else _row(row)


async def authenticate(db: Db, key_id: str, secret: str) -> ApiKey | None:
    """The active key whose id and secret these are, or None."""
    row = await db.fetchrow(
        "SELECT key_id, account, scope, created_at, revoked_at, secret_salt, secret_hash"
        " FROM api_keys WHERE key_id = $1",
        key_id,
    )
    if row is None:
        digest(b"\0" * 16, secret)  # the same work either way
        return None
    expected = bytes(row["secret_hash"])
    if not hmac.compare_digest(digest(bytes(row["secret_salt"]), secret), expected):
        return None
    key = _row(row)
    return key if key.active else None
