"""The recorder's TimescaleDB path on a PostgreSQL without TimescaleDB (none is
installable here): migration 0010 takes the hypertable branch whenever
`create_hypertable` exists, so a stand-in of that signature that records its calls
runs the branch for real. What this cannot show is TimescaleDB's own behaviour (chunk
creation, its checks); what it shows: the branch's SQL runs, it asks for the right
hypertables, the tables meet TimescaleDB's rule that every unique index holds the time
column, and the sink writes into plain (not natively partitioned) tables, making no
partitions."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.services.servers import PostgresServer
from tickplane.api.recorder.postgres_sink import PostgresSink
from tickplane.core.events import BookLevel, TopOfBook, Trade

HISTORY = ("executions", "md_trades", "md_top_of_book")

_STAND_IN = """
CREATE TABLE hypertable_calls (relation regclass, time_column name, chunk interval);
CREATE FUNCTION create_hypertable(
    relation regclass, time_column_name name, chunk_time_interval interval
) RETURNS void LANGUAGE sql AS
$$ INSERT INTO hypertable_calls VALUES (relation, time_column_name, chunk_time_interval) $$;
"""


def test_hypertable_path_without_timescaledb(rec_postgres: PostgresServer) -> None:
    day1 = 1_577_836_800 * 10**9  # 2020-01-01T00:00:00Z in ns
    day2 = day1 + 86_400 * 10**9

    async def main() -> None:
        dsn = rec_postgres.create_database("rec")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(_STAND_IN)
            sink = PostgresSink(dsn, "ts")
            await sink.open()
            try:
                assert sink._native is False
                trades = [
                    Trade(1, day1 + 5, "GOOG", 100, 1, 2, 1, "buy", "a", "b"),
                    Trade(2, day2 + 5, "GOOG", 101, 1, 4, 3, "buy", "a", "b"),
                ]
                top = TopOfBook(1, day2, "GOOG", [BookLevel(100, 5, 1)], [], 101)
                await sink.write(trades, [top])
            finally:
                await sink.close()
            calls = await conn.fetch(
                "SELECT relation::text AS rel, time_column::text AS col, chunk"
                " FROM hypertable_calls"
            )
            assert [(c["rel"], c["col"], str(c["chunk"])) for c in calls] == [
                (t, "ts", "1 day, 0:00:00") for t in HISTORY
            ]
            partitioned = await conn.fetchval(
                "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c"
                " ON c.oid = p.partrelid WHERE c.relname = ANY($1::text[])",
                list(HISTORY),
            )
            assert partitioned == 0
            # TimescaleDB refuses a unique index without the time column: none lacks it.
            lacking = await conn.fetch(
                "SELECT i.indexrelid::regclass::text AS idx FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indrelid"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'ts'"
                " WHERE c.relname = ANY($1::text[]) AND i.indisunique"
                " AND NOT a.attnum = ANY(i.indkey)",
                list(HISTORY),
            )
            assert lacking == []
            # Rows in the tables themselves; no partitions made, for any day.
            rows = await conn.fetch(
                "SELECT seq, tableoid::regclass::text AS t FROM md_trades ORDER BY seq"
            )
            assert [(r["seq"], r["t"]) for r in rows] == [(1, "md_trades"), (2, "md_trades")]
            assert await conn.fetchval("SELECT count(*) FROM executions") == 4
            assert await conn.fetchval("SELECT count(*) FROM md_top_of_book") == 1
            made = await conn.fetchval(
                "SELECT recorder_ensure_partitions('2020-01-01'::date, '2020-01-05'::date)"
            )
            assert made == 0
            assert (
                await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_p2020%'")
                == 0
            )
        finally:
            await conn.close()

    asyncio.run(main())
