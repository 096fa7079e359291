"""API keys: a public key id and a secret, shown once and stored only as a digest.

A secret is 256 random bits, so a fast keyed digest is as safe as a slow password hash
and keeps authentication cheap on every request: the store holds
`HMAC-SHA256(salt, secret)` with a random 16-byte salt per key, compared in constant time
(`hmac.compare_digest`). A revoked key stays in the store (`revoked_at`) and never
authenticates again.

Two stores behind one protocol, `KeyStore`: PostgreSQL (`PostgresKeyStore`, asyncpg,
the table `api_keys`) when the gateway has a database URL, else SQLite
(`SqliteKeyStore`, stdlib sqlite3 in WAL mode, `<data_dir>/keys.sqlite`), so a laptop
needs no service. Both are shared with `tickplane keys`, which works while gateways run.

`Authenticator` keeps verified keys in memory for `ttl` seconds (the order path should
not pay a database round trip per request): a revocation takes effect within `ttl`.

Key ids and secrets travel in the Alpaca headers `APCA-API-KEY-ID` and
`APCA-API-SECRET-KEY`, so the same keys serve the native and the Alpaca-compatible API.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import asyncpg

from tickplane.api.db import connect_pool
from tickplane.core.accounts import ACCOUNT_RULE, is_account

__all__ = [
    "SCOPES",
    "ApiKey",
    "Authenticator",
    "KeyStore",
    "NewKey",
    "PostgresKeyStore",
    "Scope",
    "SqliteKeyStore",
    "StoredKey",
    "digest",
    "open_store",
]

Scope = Literal["trader", "admin"]
SCOPES: tuple[Scope, ...] = ("trader", "admin")
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SQLITE_NAME = "keys.sqlite"


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
class StoredKey:
    """A key with its salt and digest: what authentication compares against."""

    key: ApiKey
    salt: bytes
    secret_hash: bytes


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only time its secret is known."""

    key: ApiKey
    secret: str


def digest(salt: bytes, secret: str) -> bytes:
    """What the store holds for `secret`."""
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def _new_key_id() -> str:
    return "TP" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def _check(account: str, scope: str) -> None:
    if not is_account(account):
        raise ValueError(f"account {account!r}: {ACCOUNT_RULE}")
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")


def verify(stored: StoredKey | None, secret: str) -> ApiKey | None:
    """The active key if `secret` is its secret (constant time), else None."""
    if stored is None:
        digest(b"\0" * 16, secret)  # the same work either way
        return None
    if not hmac.compare_digest(digest(stored.salt, secret), stored.secret_hash):
        return None
    return stored.key if stored.key.active else None


class KeyStore(Protocol):
    """Where keys live (PostgreSQL or SQLite)."""

    async def create(self, account: str, scope: Scope = "trader") -> NewKey:
        """Create a key for `account` (ValueError for a bad account or scope); the
        returned secret is stored nowhere."""
        ...

    async def list(self, account: str | None = None) -> list[ApiKey]:
        """Every key (of `account`), oldest first, revoked ones included."""
        ...

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (keeping its first revocation time); None if there is none."""
        ...

    async def get(self, key_id: str) -> StoredKey | None:
        """The key with its salt and digest, or None."""
        ...

    async def close(self) -> None: ...


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_key(r: Any) -> ApiKey:
    return ApiKey(r["key_id"], r["account"], r["scope"], r["created_at"], r["revoked_at"])


_PG_COLUMNS = "key_id, account, scope, created_at, revoked_at"


class PostgresKeyStore:
    """Keys in PostgreSQL's `api_keys` (migrations in `api/migrations/`)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> PostgresKeyStore:
        """A store on `dsn`, its schema migrated."""
        return cls(await connect_pool(dsn, min_size=min_size, max_size=max_size))

    async def create(self, account: str, scope: Scope = "trader") -> NewKey:
        _check(account, scope)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        row = await self.pool.fetchrow(
            "INSERT INTO api_keys (key_id, account, scope, secret_salt, secret_hash)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {_PG_COLUMNS}",
            _new_key_id(),
            account,
            scope,
            salt,
            digest(salt, secret),
        )
        assert row is not None
        return NewKey(_pg_key(row), secret)

    async def list(self, account: str | None = None) -> list[ApiKey]:
        rows = await self.pool.fetch(
            f"SELECT {_PG_COLUMNS} FROM api_keys"
            " WHERE $1::text IS NULL OR account = $1 ORDER BY created_at, key_id",
            account,
        )
        return [_pg_key(r) for r in rows]

    async def revoke(self, key_id: str) -> ApiKey | None:
        row = await self.pool.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1"
            f" RETURNING {_PG_COLUMNS}",
            key_id,
        )
        return None if row is None else _pg_key(row)

    async def get(self, key_id: str) -> StoredKey | None:
        row = await self.pool.fetchrow(
            f"SELECT {_PG_COLUMNS}, secret_salt, secret_hash FROM api_keys WHERE key_id = $1",
            key_id,
        )
        if row is None:
            return None
        return StoredKey(_pg_key(row), bytes(row["secret_salt"]), bytes(row["secret_hash"]))

    async def close(self) -> None:
        await self.pool.close()


# -- SQLite -------------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('trader', 'admin')),
    secret_salt BLOB NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys (account);
"""


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _sqlite_key(r: sqlite3.Row) -> ApiKey:
    created = _ts(r["created_at"])
    assert created is not None
    return ApiKey(r["key_id"], r["account"], r["scope"], created, _ts(r["revoked_at"]))


class SqliteKeyStore:
    """Keys in a SQLite file (WAL, so `tickplane keys` can write while gateways read).

    The stdlib driver blocks, so every call runs in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            self._db.executescript(_SQLITE_SCHEMA)
        path.chmod(0o600)  # digests only, but nobody else's business

    async def _call(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        def work() -> list[sqlite3.Row]:
            with self._lock, self._db:
                return self._db.execute(sql, args).fetchall()

        return await asyncio.to_thread(work)

    async def create(self, account: str, scope: Scope = "trader") -> NewKey:
        _check(account, scope)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = datetime.now(UTC).isoformat()
        rows = await self._call(
            "INSERT INTO api_keys (key_id, account, scope, secret_salt, secret_hash,"
            f" created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING {_PG_COLUMNS}",
            _new_key_id(),
            account,
            scope,
            salt,
            digest(salt, secret),
            now,
        )
        return NewKey(_sqlite_key(rows[0]), secret)

    async def list(self, account: str | None = None) -> list[ApiKey]:
        rows = await self._call(
            f"SELECT {_PG_COLUMNS} FROM api_keys WHERE ? IS NULL OR account = ?"
            " ORDER BY created_at, key_id",
            account,
            account,
        )
        return [_sqlite_key(r) for r in rows]

    async def revoke(self, key_id: str) -> ApiKey | None:
        rows = await self._call(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?"
            f" RETURNING {_PG_COLUMNS}",
            datetime.now(UTC).isoformat(),
            key_id,
        )
        return _sqlite_key(rows[0]) if rows else None

    async def get(self, key_id: str) -> StoredKey | None:
        rows = await self._call(
            f"SELECT {_PG_COLUMNS}, secret_salt, secret_hash FROM api_keys WHERE key_id = ?",
            key_id,
        )
        if not rows:
            return None
        r = rows[0]
        return StoredKey(_sqlite_key(r), bytes(r["secret_salt"]), bytes(r["secret_hash"]))

    async def close(self) -> None:
        with self._lock:
            self._db.close()


async def open_store(
    database_url: str | None,
    data_dir: Path,
    *,
    pool_min: int = 1,
    pool_max: int = 10,
) -> KeyStore:
    """PostgreSQL at `database_url` if given, else SQLite in `data_dir`."""
    if database_url:
        return await PostgresKeyStore.connect(database_url, min_size=pool_min, max_size=pool_max)
    return SqliteKeyStore(data_dir / SQLITE_NAME)


class Authenticator:
    """Checks a key id and secret against a store, keeping what it read for `ttl`
    seconds: a revoked key stops working at most `ttl` seconds after the revocation
    (0: every request reads the store)."""

    def __init__(self, store: KeyStore, ttl: float = 1.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[float, StoredKey | None]] = {}

    async def authenticate(self, key_id: str, secret: str) -> ApiKey | None:
        """The active key whose id and secret these are, or None."""
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and hit[0] > now:
            return verify(hit[1], secret)
        stored = await self.store.get(key_id)
        if self.ttl > 0 and stored is not None:  # made-up key ids are never cached
            self._cache[key_id] = (now + self.ttl, stored)
        return verify(stored, secret)
