"""Alpaca bars benchmark: how long the gateway's bar query (`MarketHistory.bars`, what
`GET /v2/stocks/bars` runs) takes over a realistic `md_trades`.

The trades are the executions (LOBSTER types 4 and 5) of the shared GOOG day
(2012-06-21, 11,678 of them, at their New York times), written on each weekday of June
2012 (21 days) under four symbols (GOOG and three copies), about a million rows, as the
recorder writes them (day partitions on `ts`, the recorder's indexes). PostgreSQL is
started the way the tests start it (`tests/services/servers.py`), for this run only.

Figures, each the median of `repeats` queries after one warm-up, in milliseconds:
- `day_of_minute_bars_ms`: one symbol's 1Min bars of one day (390 bars, limit 10,000
  as alpaca-py asks).
- `month_of_day_bars_ms`: one symbol's 1Day bars of June (21 bars).
- `month_of_minute_bars_ms`: one symbol's 1Min bars of June (8,190 bars).

Run: `python -m tests.benchmarks.bench_bars` (one JSON object on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.benchmarks.measure import median  # noqa: E402
from tests.services.servers import PostgresServer  # noqa: E402
from tickplane.api.alpaca.market_history import MarketHistory, Window  # noqa: E402
from tickplane.api.alpaca.timeframe import TimeFrame  # noqa: E402
from tickplane.api.db import migrate  # noqa: E402
from tickplane.api.recorder.rows import ts_of  # noqa: E402
from tickplane.engine import lobster  # noqa: E402

__all__ = ["run"]

ENGINE = "bench"
SYMBOLS = ["GOOG", "AAPL", "MSFT", "AMZN"]
NEW_YORK = ZoneInfo("America/New_York")
COLUMNS = ["engine", "seq", "ts", "ts_event", "symbol", "price", "qty", "taker_side"]
DAYS = [date(2012, 6, d) for d in range(1, 31) if date(2012, 6, d).weekday() < 5]


def _day_trades() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The GOOG day's executions: seconds after New York midnight, price in cents, shares."""
    paths = lobster.shared_paths()
    if paths is None:
        raise SystemExit("the shared LOBSTER files are needed (../shared/data/lobster)")
    m = lobster.load(zip_path=paths[1]).messages
    ex = m[(m["type"] == 4) | (m["type"] == 5)]
    return ex["time"], ex["price"] // 100, ex["size"]


def _ns(day: date, seconds: np.ndarray) -> np.ndarray:
    midnight = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    base = int(midnight.timestamp()) * 1_000_000_000
    return base + np.round(seconds * 1e9).astype(np.int64)


def _month_range() -> tuple[datetime, datetime]:
    return (
        datetime(2012, 6, 1, tzinfo=NEW_YORK),
        datetime(2012, 6, 30, 23, tzinfo=NEW_YORK),
    )


async def _load(dsn: str) -> int:
    """Write the month's trades; the number of rows."""
    seconds, prices, sizes = _day_trades()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("SELECT recorder_ensure_partitions($1, $2)", DAYS[0], DAYS[-1])
        seq = 0
        for symbol in SYMBOLS:
            for day in DAYS:
                stamps = _ns(day, seconds)
                rows = []
                for ns, price, qty in zip(
                    stamps.tolist(), prices.tolist(), sizes.tolist(), strict=True
                ):
                    seq += 1
                    rows.append((ENGINE, seq, ts_of(ns), ns, symbol, price, qty, "buy"))
                await conn.copy_records_to_table(
                    "md_trades",
                    records=rows,
                    columns=COLUMNS,
                )
        # the minute bars the recorder keeps with the trades it writes
        await conn.execute("SELECT recorder_rebuild_minute_bars($1, $2)", *_month_range())
        await conn.execute("ANALYZE md_trades")
        await conn.execute("ANALYZE md_minute_bars")
        return seq
    finally:
        await conn.close()


def _window(start: datetime, end: datetime) -> Window:
    ns = 1_000_000_000
    return Window(["GOOG"], int(start.timestamp()) * ns, int(end.timestamp()) * ns, 10_001)


async def _time(history: MarketHistory, w: Window, frame: TimeFrame) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = await history.bars(w, frame)
    return (time.perf_counter() - t0) * 1000, len(rows)


def run(json_out: bool = False, repeats: int = 5) -> dict[str, float]:
    """Start PostgreSQL, load the trades, time each query (median of `repeats`)."""
    day = DAYS[14]  # 2012-06-21, the LOBSTER day's own date
    day_start = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    month = _month_range()
    cases: dict[str, tuple[Window, TimeFrame]] = {
        "day_of_minute_bars": (
            _window(day_start, day_start + timedelta(days=1) - timedelta(seconds=1)),
            TimeFrame(1, "Min"),
        ),
        "month_of_day_bars": (_window(*month), TimeFrame(1, "Day")),
        "month_of_minute_bars": (_window(*month), TimeFrame(1, "Min")),
    }
    out: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="tickplane-bench-bars-") as tmp,
        PostgresServer(Path(tmp) / "pg") as pg,
    ):
        dsn = pg.create_database("bars")

        async def measure() -> None:
            out["rows"] = float(await _load(dsn))
            pool: Any = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
            try:
                history = MarketHistory(pool, ENGINE)
                for name, (w, frame) in cases.items():
                    samples = []
                    for i in range(repeats + 1):  # the first warms up
                        ms, bars = await _time(history, w, frame)
                        if i:
                            samples.append(ms)
                    out[f"{name}_ms"] = round(median(samples), 1)
                    out[f"{name}_bars"] = float(bars)
                    if not json_out:
                        print(f"{name}: {median(samples):.1f} ms, {bars} bars", file=sys.stderr)
            finally:
                await pool.close()

        asyncio.run(measure())
    out["repeats"] = float(repeats)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true", help="only the JSON result on stdout")
    args = p.parse_args(argv)
    result = run(json_out=args.json, repeats=args.repeats)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
