"""Backtests over a day the recorder stored in PostgreSQL (`--data postgresql://...`):
the recorder's own schema (api migrations) in a real PostgreSQL, rows as it writes them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from tests.strategy.test_venue import Scripted
from tickplane.api.db import migrate
from tickplane.engine.backtest import DataError, open_data, run_backtest

DAY = dt.datetime(2026, 11, 2, 14, 30, tzinfo=dt.UTC)
T0 = int(DAY.timestamp()) * 1_000_000_000
S = 1_000_000_000

# (seconds after T0, bid, bid qty, ask, ask qty)
TOPS = [
    (0, 10_000, 50, 10_002, 40),
    (1, 10_000, 80, 10_002, 40),  # more size joins the bid behind whoever is there
    (3, 10_000, 30, 10_002, 40),  # cancels at the bid: our queue can only shrink
    (5, 10_000, 5, 10_002, 40),
    (6, 9_999, 20, 10_001, 10),
]
# (seconds after T0, price, qty, taker side)
TRADES = [
    (4, 10_000, 20, "sell"),  # 20 traded at the bid
    (5.5, 10_000, 45, "sell"),  # beyond the queue: fills us
]


@pytest.fixture(scope="module")
def recorded_url(postgres: Any) -> str:
    url = str(postgres.create_database("rec"))

    async def fill() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await conn.execute("SELECT recorder_ensure_partitions($1, $1)", DAY.date())
            for k, (sec, bid, bq, ask, aq) in enumerate(TOPS, start=1):
                ts = T0 + int(sec * S)
                await conn.execute(
                    "INSERT INTO md_top_of_book VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                    "e0",
                    "GOOG",
                    k,
                    DAY + dt.timedelta(seconds=sec),
                    ts,
                    bid,
                    bq,
                    ask,
                    aq,
                    None,
                )
            for k, (sec, px, qty, side) in enumerate(TRADES, start=1):
                ts = T0 + int(sec * S)
                await conn.execute(
                    "INSERT INTO md_trades VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                    "e0",
                    100 + k,
                    DAY + dt.timedelta(seconds=sec),
                    ts,
                    "GOOG",
                    px,
                    qty,
                    side,
                )
            # Another symbol the backtest must not see.
            await conn.execute(
                "INSERT INTO md_trades VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                "e0",
                999,
                DAY,
                T0,
                "AAPL",
                1,
                1,
                "buy",
            )
        finally:
            await conn.close()

    asyncio.run(fill())
    return url


def test_a_recorded_day_fills_by_its_queue(recorded_url: str) -> None:
    data = open_data([recorded_url + "?symbol=GOOG"])
    assert data.events == len(TOPS) + len(TRADES)
    s = Scripted([{"side": "buy", "qty": 30, "price": 10_000}], at_ns=T0)
    s.tick = 1
    r = run_backtest(s, data, latency_ns=S // 2)
    # Arrives at 0.5 s behind the 50 shown; the bid shrinks to 30 (cancels ahead), 20
    # trade (10 ahead), the bid shows 5 (5 ahead), then 45 trade: 40 beyond the queue.
    assert [(f.ts, f.qty, f.price, f.liquidity) for f in r.fills] == [
        (T0 + int(5.5 * S), 30, 10_000, "maker")
    ]
    assert r.queue_ahead == [50]


def test_backtest_command_reads_postgresql(recorded_url: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickplane.cli.main",
            "backtest",
            "--strategy",
            "twap",
            "--data",
            recorded_url,
            "--symbol",
            "GOOG",
            "--params",
            "total_qty=30",
            "duration_s=4",
            "slices=2",
            "--json",
            "--no-progress",
        ],
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode()
    res = json.loads(out.stdout)
    assert res["events"] == len(TOPS) + len(TRADES) and res["symbol"] == "GOOG"
    assert res["trades"] > 0 and res["filled_qty"] == 30


def test_recorded_data_errors_are_clear(recorded_url: str, postgres: Any) -> None:
    with pytest.raises(DataError, match="name the symbol"):
        open_data([recorded_url])
    with pytest.raises(DataError, match="nothing recorded"):
        open_data([recorded_url + "?symbol=MSFT"])
    with pytest.raises(DataError, match="no recorder tables"):
        open_data([str(postgres.dsn) + "?symbol=GOOG"])


def test_recorded_takers_share_the_shown_size_and_fok_is_all_or_nothing(
    recorded_url: str,
) -> None:
    data = open_data([recorded_url + "?symbol=GOOG"])
    ioc = {"side": "buy", "qty": 30, "price": 10_002, "tif": "ioc"}
    fok = {"side": "buy", "qty": 20, "price": 10_002, "tif": "fok"}
    s = Scripted([ioc, ioc, fok], at_ns=T0)
    s.tick = 1
    r = run_backtest(s, data)
    # 40 shown at the ask: 30, then the 10 left, then nothing for the fok.
    assert [(f.order_id, f.qty) for f in r.fills] == [(1, 30), (2, 10)]
    assert [(o.id, o.reason) for o in s.canceled] == [(2, "ioc"), (3, "fok")]


def test_recorded_tops_reach_on_book_as_one_level(recorded_url: str) -> None:
    from tickplane.engine.strategy import BookSnapshot, Strategy

    class Books(Strategy):
        def on_start(self) -> None:
            self.books: list[BookSnapshot] = []

        def on_book(self, book: BookSnapshot) -> None:
            self.books.append(book)

    s = Books(symbol="GOOG")
    run_backtest(s, open_data([recorded_url + "?symbol=GOOG"]))
    assert [(b.bids, b.asks) for b in s.books] == [
        (((bid, bq),), ((ask, aq),)) for _, bid, bq, ask, aq in TOPS
    ]
