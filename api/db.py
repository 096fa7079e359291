"""PostgreSQL for the gateway: the asyncpg pool and the schema migrations.

Migrations are the numbered SQL files of `api/migrations/` (`0001_name.sql`), applied in
order, each in its own transaction, and recorded in `schema_migrations`; a migration
already recorded is skipped, so `migrate()` is idempotent and safe for several gateway
processes starting at once (they take turns on an advisory lock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["MIGRATIONS_DIR", "Migration", "connect_pool", "migrate", "migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_LOCK_KEY = 0x7469636B  # pg_advisory_xact_lock key for migrations ("tick")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations of `directory`, by version (a badly named .sql file is an error)."""
    out: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.fullmatch(path.name)
        if m is None:
            raise ValueError(f"{path}: migrations are named NNNN_name.sql")
        out.append(Migration(int(m[1]), m[2], path.read_text()))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{directory}: two migrations share a version")
    return out


async def migrate(
    conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any], directory: Path = MIGRATIONS_DIR
) -> list[int]:
    """Apply the migrations not yet applied; return the versions applied now."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mig in migrations(directory):
            if mig.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    mig.version,
                    mig.name,
                )
            applied_now.append(mig.version)
    return applied_now


async def connect_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool[Any]:
    """A pool on `dsn` whose schema is migrated."""
    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        await pool.close()
        raise
    return pool
