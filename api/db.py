"""PostgreSQL for the gateway: the asyncpg pool and the schema migrations.

Migrations are the numbered SQL files of `api/migrations/` (`0001_name.sql`), applied in
order in one transaction, each in a savepoint of its own, and recorded in
`schema_migrations`; a migration already recorded is skipped, so `migrate()` is
idempotent and safe for several gateway processes starting at once (they take turns on
an advisory lock).

Work too long for the migrations' transaction is queued by a migration and done after
it, in steps of their own transactions: the minute bars of the trades recorded before
md_minute_bars existed (0017, `backfill_minute_bars`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "backfill_minute_bars",
    "connect_pool",
    "migrate",
    "migrations",
]

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


Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


async def migrate(
    conn: Conn, directory: Path = MIGRATIONS_DIR, *, backfill: bool = True
) -> list[int]:
    """Apply the migrations not yet applied, then (`backfill`) finish the backfill they
    queued (`backfill_minute_bars`); return the versions applied now."""
    applied_now = await _apply(conn, directory)
    if backfill:
        await backfill_minute_bars(conn)
    return applied_now


async def _apply(conn: Conn, directory: Path) -> list[int]:
    """The migrations not yet applied, in one transaction under the advisory lock."""
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


async def backfill_minute_bars(conn: Conn) -> int:
    """Build md_minute_bars from the trades recorded before it (queued by migration 0017),
    one partition of md_trades (a day) a transaction, until nothing is queued; return
    the steps run. Interrupted, the next run does the partitions still queued; several
    processes running it take turns (each step locks its queue row)."""
    if await conn.fetchval("SELECT to_regclass('md_minute_bars_backfill')") is None:
        return 0  # a schema without it (migrations of another directory)
    steps = 0
    while True:
        async with conn.transaction():
            more = await conn.fetchval("SELECT recorder_backfill_minute_bars_step()")
        if not more:
            return steps
        steps += 1


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
