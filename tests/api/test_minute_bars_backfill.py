"""The minute-bar backfill of migrations 0016 and 0017 on a real PostgreSQL: a database
upgraded from 0015 with trades recorded gets, step by step, exactly the bars of the
one-shot rebuild; an interrupted backfill resumes and completes; a database that applied
0016 in its first form (which built the bars in the migration) has nothing queued."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from tickplane.api.db import MIGRATIONS_DIR, backfill_minute_bars, migrate
from tickplane.api.recorder.postgres_sink import _ADD_MINUTE_BARS

T = TypeVar("T")
# Columns of md_minute_bars, every one compared.
_COLUMNS = (
    "engine, symbol, minute, open, high, low, close, volume, trades, notional, first_seq, last_seq"
)
# 0016 as it was first applied: the same table and function, then every bar built in the
# migration itself.
_FIRST_0016 = "SELECT recorder_rebuild_minute_bars('-infinity', 'infinity');\n"


@pytest.fixture
def fresh_db(postgres: Any) -> str:
    """An empty database of the session PostgreSQL, for one test."""
    return str(postgres.create_database("bars"))


def _run(dsn: str, work: Callable[[asyncpg.Connection[Any]], Awaitable[T]]) -> T:
    async def main() -> T:
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


def _migrations_up_to(tmp: Path, last: int, *, first_0016: bool = False) -> Path:
    """A directory with the migrations up to `last` (0016 in its first form, if asked)."""
    tmp.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) <= last:
            shutil.copy(path, tmp / path.name)
    if first_0016:
        mig = next(tmp.glob("0016_*.sql"))
        mig.write_text(mig.read_text() + _FIRST_0016)
    return tmp


async def _record_history(conn: asyncpg.Connection[Any]) -> int:
    """Five days of trades of two engines and three symbols, at random times between
    14:00 and 16:00 UTC (several in most minutes; seqs in time order per engine), as the
    recorder writes them; the number of trades."""
    await conn.execute("SELECT recorder_ensure_partitions('2026-01-05', '2026-01-09')")
    await conn.execute("SELECT setseed(0.16)")
    await conn.execute(
        """
        INSERT INTO md_trades (engine, seq, ts, ts_event, symbol, price, qty, taker_side)
        SELECT engine, row_number() OVER (PARTITION BY engine ORDER BY ts, n), ts,
               (extract(epoch FROM ts) * 1000000)::bigint * 1000, symbol, price, qty, 'buy'
        FROM (
            SELECT n, (ARRAY['e1', 'e2'])[1 + n % 2] AS engine,
                   (ARRAY['GOOG', 'AAPL', 'MSFT'])[1 + n % 3] AS symbol,
                   timestamptz '2026-01-05 14:00+00' + (n % 5) * interval '1 day'
                       + random() * interval '2 hours' AS ts,
                   10000 + (random() * 500)::bigint AS price,
                   1 + (random() * 9)::bigint AS qty
            FROM generate_series(1, 12000) AS n
        ) AS trades
        """
    )
    return int(await conn.fetchval("SELECT count(*) FROM md_trades"))


async def _bars(conn: asyncpg.Connection[Any]) -> list[asyncpg.Record]:
    return list(await conn.fetch(f"SELECT {_COLUMNS} FROM md_minute_bars ORDER BY 1, 2, 3"))


async def _one_shot(conn: asyncpg.Connection[Any]) -> list[asyncpg.Record]:
    """The bars of the one-shot rebuild of everything (0016's first form), not kept."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(_FIRST_0016)
        return await _bars(conn)
    finally:
        await tx.rollback()


async def _queued(conn: asyncpg.Connection[Any]) -> list[str]:
    rows = await conn.fetch("SELECT part::text FROM md_minute_bars_backfill ORDER BY 1")
    return [r[0] for r in rows]


def _days(*days: int) -> list[str]:
    return [f"md_trades_p202601{d:02}" for d in days]


def test_backfill_in_steps_equals_the_one_shot_rebuild(fresh_db: str, tmp_path: Path) -> None:
    async def work(conn: asyncpg.Connection[Any]) -> None:
        await migrate(conn, _migrations_up_to(tmp_path / "old", 15))
        assert await _record_history(conn) == 12000
        await conn.execute("SELECT recorder_ensure_partitions('2026-01-10', '2026-01-10')")
        # The upgrade: 0016 and 0017 in one run; the backfill is queued, not done.
        assert await migrate(conn, backfill=False) == [16, 17]
        assert await _bars(conn) == []
        assert await _queued(conn) == _days(5, 6, 7, 8, 9, 10)  # the 10th has no trades
        assert await backfill_minute_bars(conn) == 6  # a step a partition
        assert await _queued(conn) == []
        bars = await _bars(conn)
        assert 3000 < len(bars) < 3600  # 3,600 minutes of six symbols, most traded
        assert sum(b["trades"] > 1 for b in bars) > len(bars) / 2
        assert bars == await _one_shot(conn)
        assert await backfill_minute_bars(conn) == 0  # nothing queued any more

    _run(fresh_db, work)


def test_an_interrupted_backfill_resumes_and_completes(fresh_db: str, tmp_path: Path) -> None:
    async def interrupted(conn: asyncpg.Connection[Any]) -> list[Any]:
        await migrate(conn, _migrations_up_to(tmp_path / "old", 15))
        await _record_history(conn)
        await migrate(conn, backfill=False)
        for _ in range(2):  # two steps done, each committed
            async with conn.transaction():
                assert await conn.fetchval("SELECT recorder_backfill_minute_bars_step()")
        kept = await _bars(conn)
        # A third step killed before its commit, its bars written but not committed.
        killer = await asyncpg.connect(fresh_db)
        try:
            tx = conn.transaction()
            await tx.start()
            assert await conn.fetchval("SELECT recorder_backfill_minute_bars_step()")
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", conn.get_server_pid())
        finally:
            await killer.close()
        return kept

    async def resumed(conn: asyncpg.Connection[Any]) -> tuple[list[str], list[Any], int]:
        queued, partial = await _queued(conn), await _bars(conn)
        return queued, partial, await backfill_minute_bars(conn)

    kept = _run(fresh_db, interrupted)
    assert kept and max(b["minute"] for b in kept) < datetime(2026, 1, 7, tzinfo=UTC)
    queued, partial, steps = _run(fresh_db, resumed)
    assert (queued, partial) == (_days(7, 8, 9), kept)  # the killed step left nothing
    assert steps == 3
    assert _run(fresh_db, _bars) == _run(fresh_db, _one_shot)
    assert _run(fresh_db, _queued) == []


async def _waits_on_a_lock(watcher: asyncpg.Connection[Any], pid: int) -> None:
    """Until backend `pid` waits on a lock (another connection's, polled, with a deadline)."""
    query = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
    async with asyncio.timeout(30):
        while not await watcher.fetchval(query, pid):
            await asyncio.sleep(0.01)


def test_a_step_waits_for_a_recorder_batch_and_counts_it(fresh_db: str, tmp_path: Path) -> None:
    """A batch the recorder has merged into a minute but not committed when a step
    starts: the step waits for it (without that, its rebuilt minute collides with the
    batch's and the step fails), then rebuilds the minute with the batch's trade."""

    async def work(conn: asyncpg.Connection[Any]) -> None:
        await migrate(conn, _migrations_up_to(tmp_path / "old", 15))
        await _record_history(conn)
        await migrate(conn, backfill=False)
        minute = await conn.fetchval(
            "SELECT date_bin('1 minute', ts, 'epoch') FROM md_trades"
            " WHERE engine = 'e1' AND symbol = 'GOOG' AND ts < '2026-01-06' ORDER BY ts LIMIT 1"
        )
        recorder = await asyncpg.connect(fresh_db)
        try:
            batch = recorder.transaction()
            await batch.start()  # a trade of that minute, its bar merged as the sink does
            await recorder.execute(
                "INSERT INTO md_trades (engine, seq, ts, ts_event, symbol, price, qty,"
                " taker_side) VALUES ('e1', 100000, $1, 0, 'GOOG', 20000, 1, 'buy')",
                minute,
            )
            await recorder.execute(
                _ADD_MINUTE_BARS, "e1", ["GOOG"], [minute], *[[20000]] * 4, [1], [1],
                [20000], [100000], [100000],
            )  # fmt: skip
            step = asyncio.create_task(conn.fetchval("SELECT recorder_backfill_minute_bars_step()"))
            await _waits_on_a_lock(recorder, conn.get_server_pid())
            await batch.commit()
            assert await step  # the 5th's partition, with the batch's trade
        finally:
            await recorder.close()
        assert await backfill_minute_bars(conn) == 4
        bars = await _bars(conn)
        assert bars == await _one_shot(conn)
        merged = [
            b for b in bars if (b["engine"], b["symbol"], b["minute"]) == ("e1", "GOOG", minute)
        ]
        assert merged[0]["high"] == 20000 and merged[0]["last_seq"] == 100000

    _run(fresh_db, work)


def test_two_gateways_starting_at_once_share_the_backfill(fresh_db: str, tmp_path: Path) -> None:
    async def work(conn: asyncpg.Connection[Any]) -> None:
        await migrate(conn, _migrations_up_to(tmp_path / "old", 15))
        await _record_history(conn)
        await migrate(conn, backfill=False)
        other = await asyncpg.connect(fresh_db)
        try:
            steps = await asyncio.gather(backfill_minute_bars(conn), backfill_minute_bars(other))
        finally:
            await other.close()
        assert sum(steps) == 5  # each of the five partitions once, by one or the other
        assert await _queued(conn) == []
        assert await _bars(conn) == await _one_shot(conn)

    _run(fresh_db, work)


def test_a_partition_dropped_while_queued_is_taken_off(fresh_db: str, tmp_path: Path) -> None:
    async def work(conn: asyncpg.Connection[Any]) -> None:
        await migrate(conn, _migrations_up_to(tmp_path / "old", 15))
        await _record_history(conn)
        await migrate(conn, backfill=False)
        await conn.execute("DROP TABLE md_trades_p20260106")  # retention, say
        assert await backfill_minute_bars(conn) == 5
        bars = await _bars(conn)
        assert {b["minute"].day for b in bars} == {5, 7, 8, 9}
        assert bars == await _one_shot(conn)

    _run(fresh_db, work)


def test_a_database_that_built_its_bars_in_0016_has_nothing_queued(
    fresh_db: str, tmp_path: Path
) -> None:
    async def work(conn: asyncpg.Connection[Any]) -> None:
        await migrate(conn, _migrations_up_to(tmp_path / "old", 15))
        await _record_history(conn)
        first_form = _migrations_up_to(tmp_path / "first", 16, first_0016=True)
        assert await migrate(conn, first_form) == [16]
        built = await _bars(conn)
        assert built and built == await _one_shot(conn)
        assert await migrate(conn) == [17]
        assert await _queued(conn) == []
        assert await _bars(conn) == built

    _run(fresh_db, work)


def test_a_fresh_database_has_nothing_queued(fresh_db: str) -> None:
    async def work(conn: asyncpg.Connection[Any]) -> tuple[list[str], int]:
        await migrate(conn)
        return await _queued(conn), await backfill_minute_bars(conn)

    assert _run(fresh_db, work) == ([], 0)
