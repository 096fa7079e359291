"""Market-data history from the recorder's tables (api/migrations/0010_recorder.sql).

`md_trades` holds the engine's public trade prints, `md_top_of_book` its best bid and
ask after every change (numbered per symbol by `md_seq`), `md_minute_bars` the trades'
minute bars (kept by the recorder with the trades, api/migrations/0016); bars of every
timeframe are summed from the minute bars here, per request. Every row names its
engine: the gateway reads those of its own (`GatewaySettings.engine_name`, the
recorder's `--engine-name`).

Rows come ordered by symbol, then by time (ascending or descending), in pages: a
`Cursor` is the last row of the previous page (its symbol and its key: the trade's
`seq`, the quote's `md_seq`, the bar's start in microseconds), and a page resumes
strictly after it. Time bounds are on `ts` (the partitioning column, µs) and on
`ts_event` (the engine's exact ns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tickplane.api.alpaca.timeframe import MARKET_TZ, TimeFrame
from tickplane.api.recorder.rows import ts_of  # the `ts` the recorder writes for a ts_event

__all__ = ["Cursor", "MarketHistory", "Window", "micros"]


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: a symbol and a key within it."""

    symbol: str
    key: int


@dataclass(frozen=True)
class Window:
    """What one page asks for: `symbols`, [start_ns, end_ns], at most `limit` rows."""

    symbols: list[str]
    start_ns: int
    end_ns: int
    limit: int
    descending: bool = False
    after: Cursor | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(when: datetime) -> int:
    """µs since the epoch of an aware datetime (a bar's start, as its cursor key)."""
    return (when - _EPOCH) // timedelta(microseconds=1)


# The cursor: rows after ($3 symbol, $4 key) in the page's order; none when $3 is NULL.
_AFTER_ASC = "AND ($3::text IS NULL OR (symbol, {key}) > ($3, $4))"
_AFTER_DESC = "AND ($3::text IS NULL OR symbol > $3 OR (symbol = $3 AND {key} < $4))"

_TRADES = """
SELECT symbol, seq, ts_event, price, qty FROM md_trades
WHERE engine = $1 AND symbol = ANY($2::text[])
  AND ts >= $5 AND ts <= $6 AND ts_event >= $7 AND ts_event <= $8 {after}
ORDER BY symbol, seq {direction} LIMIT $9
"""

_QUOTES = """
SELECT symbol, md_seq, ts_event, bid_price, bid_qty, ask_price, ask_qty FROM md_top_of_book
WHERE engine = $1 AND symbol = ANY($2::text[])
  AND ts >= $5 AND ts <= $6 AND ts_event >= $7 AND ts_event <= $8 {after}
ORDER BY symbol, md_seq {direction} LIMIT $9
"""

# A bar's start from a minute's (`minute`; $8: the bar's length, or its months): minutes
# and hours binned from a Monday midnight UTC; days and weeks binned the same way in New
# York's local time and months truncated in it, then read back as New York times, so
# each starts at New York's midnight whatever its offset to UTC that day (DST). Every
# bar is whole minutes: New York is a whole number of hours from UTC.
_ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"
_LOCAL = f"(minute AT TIME ZONE '{MARKET_TZ}')"
_BUCKETS = {
    "utc": f"date_bin($8::interval, minute, {_ORIGIN})",
    "local": (
        f"date_bin($8::interval, {_LOCAL}, TIMESTAMP '2000-01-03') AT TIME ZONE '{MARKET_TZ}'"
    ),
    "Month": (
        f"(date_trunc('month', {_LOCAL}) - make_interval(months =>"
        f" (extract(month FROM {_LOCAL})::int - 1) % $8::int)) AT TIME ZONE '{MARKET_TZ}'"
    ),
}
# What a local bar may last beyond its nominal length: the hour DST gives back.
_DST = timedelta(hours=1)

# Bars whose start lies in [start, end] ($5, $6), summed from the recorder's minute bars
# (md_minute_bars, api/migrations/0016) of [start, end + length) ($5, $9): each bar
# takes its whole bucket. A bar's open is its first minute's (by the minutes' first
# trade's seq), its close its last minute's.
_BARS = """
WITH bars AS (
    SELECT symbol, {bucket} AS start,
           (min(ARRAY[first_seq, open]))[2] AS open, max(high) AS high, min(low) AS low,
           (max(ARRAY[last_seq, close]))[2] AS close, sum(volume)::bigint AS volume,
           sum(trades)::bigint AS trades, sum(notional) AS notional
    FROM md_minute_bars
    WHERE engine = $1 AND symbol = ANY($2::text[]) AND minute >= $5 AND minute < $9
    GROUP BY symbol, start
)
SELECT * FROM bars
WHERE start >= $5 AND start <= $6 {after}
ORDER BY symbol, start {direction} LIMIT $7
"""


class MarketHistory:
    """The recorder's market data of engine `engine`, read through `pool`."""

    def __init__(self, pool: asyncpg.Pool[Any], engine: str) -> None:
        self.pool = pool
        self.engine = engine

    def _args(self, w: Window) -> list[Any]:
        after = w.after
        return [
            self.engine,
            w.symbols,
            after.symbol if after else None,
            after.key if after else None,
            ts_of(w.start_ns),
            ts_of(w.end_ns),
            w.start_ns,
            w.end_ns,
            w.limit,
        ]

    @staticmethod
    def _sql(template: str, key: str, w: Window, **extra: str) -> str:
        after = (_AFTER_DESC if w.descending else _AFTER_ASC).format(key=key)
        direction = "DESC" if w.descending else "ASC"
        return template.format(after=after, direction=direction, **extra)

    async def trades(self, w: Window) -> list[asyncpg.Record]:
        """Trade prints: symbol, seq, ts_event, price (ticks), qty (lots)."""
        return await self.pool.fetch(self._sql(_TRADES, "seq", w), *self._args(w))

    async def quotes(self, w: Window) -> list[asyncpg.Record]:
        """Tops of book: symbol, md_seq, ts_event, bid/ask price (ticks) and qty (lots)."""
        return await self.pool.fetch(self._sql(_QUOTES, "md_seq", w), *self._args(w))

    async def bars(self, w: Window, timeframe: TimeFrame) -> list[asyncpg.Record]:
        """Bars: symbol, start, open, high, low, close (ticks), volume (lots), trades,
        notional (tick-lots)."""
        length: int | timedelta  # date_bin's interval, or a number of months
        if timeframe.unit == "Month":
            bucket, length = _BUCKETS["Month"], timeframe.amount
        else:
            bucket = _BUCKETS["local" if timeframe.local else "utc"]
            length = timeframe.length
        last = ts_of(w.end_ns) + timeframe.length + (_DST if timeframe.local else timedelta())
        after = w.after
        args = [
            self.engine,
            w.symbols,
            after.symbol if after else None,
            _EPOCH + timedelta(microseconds=after.key) if after else None,  # a bar's start
            ts_of(w.start_ns),
            ts_of(w.end_ns),
            w.limit,
            length,
            last,
        ]
        return await self.pool.fetch(self._sql(_BARS, "start", w, bucket=bucket), *args)

    async def latest_trade(self, symbol: str) -> asyncpg.Record | None:
        """The symbol's last trade print (seq, ts_event, price, qty), or None."""
        return await self.pool.fetchrow(
            "SELECT seq, ts_event, price, qty FROM md_trades WHERE engine = $1 AND symbol = $2"
            " ORDER BY ts DESC, seq DESC LIMIT 1",
            self.engine,
            symbol,
        )

    async def latest_quote(self, symbol: str) -> asyncpg.Record | None:
        """The symbol's last top of book, or None."""
        return await self.pool.fetchrow(
            "SELECT md_seq, ts_event, bid_price, bid_qty, ask_price, ask_qty"
            " FROM md_top_of_book WHERE engine = $1 AND symbol = $2"
            " ORDER BY md_seq DESC LIMIT 1",
            self.engine,
            symbol,
        )
