"""alpaca-py's StockHistoricalDataClient against the gateway's `/v2/stocks/...`: history
from the recorder's PostgreSQL (trades the engine made, recorded by `tickplane recorder`),
bars aggregated from it, the latest trade and quote from the live view or the table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from tickplane.api.alpaca import market_data
from tickplane.api.recorder.rows import ts_of

from .conftest import Gateway, Trader, trader_maker
from .test_orders import limit

WAIT = 30.0
NEW_YORK = ZoneInfo("America/New_York")


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # another process's progress (the recorder): polled, with a deadline


@dataclass
class Market:
    """The trades the tests made, once recorded."""

    gateway: Gateway
    buyer: Trader
    seller: Trader
    data: StockHistoricalDataClient
    start: datetime

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(
            self.gateway.url + path, params=params, headers=self.buyer.headers, timeout=10
        )


@pytest.fixture(scope="module")
def market(md_gateway: Gateway) -> Iterator[Market]:
    """GOOG trades 4 then 6 at 100.00, BRK 20 shares at 250.05; then GOOG rests a bid of
    3 at 99.00 and an ask of 5 at 101.00. Waits until the recorder has the trades."""
    make = trader_maker(md_gateway)
    buyer, seller = make(), make()
    start = datetime.now(UTC) - timedelta(seconds=1)
    buyer.client.submit_order(limit("GOOG", "buy", 10, 100.00))
    seller.client.submit_order(limit("GOOG", "sell", 4, 100.00))
    seller.client.submit_order(limit("GOOG", "sell", 6, 100.00))
    buyer.client.submit_order(limit("BRK", "buy", 20, 250.05))
    seller.client.submit_order(limit("BRK", "sell", 20, 250.05))
    buyer.client.submit_order(limit("GOOG", "buy", 3, 99.00))
    seller.client.submit_order(limit("GOOG", "sell", 5, 101.00))
    data = StockHistoricalDataClient(buyer.key_id, buyer.secret, url_override=md_gateway.url)
    m = Market(md_gateway, buyer, seller, data, start)

    def recorded() -> bool:
        body = m.get("/v2/stocks/trades", symbols="GOOG,BRK", start=start.isoformat()).json()
        return sum(len(v) for v in body["trades"].values()) == 3

    _wait_until(recorded, "the recorder to write the trades")
    yield m


def test_trades_come_from_the_recorded_history(market: Market) -> None:
    request = StockTradesRequest(symbol_or_symbols=["GOOG", "BRK"], start=market.start)
    trades = market.data.get_stock_trades(request).data
    goog, brk = trades["GOOG"], trades["BRK"]
    assert [(t.price, t.size) for t in goog] == [(100.0, 4), (100.0, 6)]
    assert [(t.price, t.size) for t in brk] == [(250.05, 20)]  # 2 lots of 10 shares
    assert goog[0].id is not None and goog[1].id is not None and goog[0].id < goog[1].id
    now = datetime.now(UTC)
    for t in goog + brk:
        assert market.start <= t.timestamp <= now
        assert t.exchange == "Q"


def test_trades_page_sort_and_bounds(market: Market) -> None:
    everything = market.get("/v2/stocks/trades", symbols="BRK,GOOG", start=market.start.isoformat())
    assert everything.status_code == 200
    body = everything.json()
    assert body["next_page_token"] is None
    # By symbol, then time: BRK's one, then GOOG's two.
    flat = [(s, t["i"]) for s in body["trades"] for t in body["trades"][s]]
    assert [s for s, _ in flat] == ["BRK", "GOOG", "GOOG"]

    def pages(sort: str) -> list[tuple[str, int]]:
        token, out = None, []
        for _ in range(10):
            params = {"symbols": "GOOG,BRK", "start": market.start.isoformat(), "limit": 1}
            params |= {"sort": sort} | ({"page_token": token} if token else {})
            page = market.get("/v2/stocks/trades", **params).json()
            out += [(s, t["i"]) for s in page["trades"] for t in page["trades"][s]]
            token = page["next_page_token"]
            if token is None:
                return out
        raise AssertionError("paging did not end")

    assert pages("asc") == flat
    # Descending: symbols still in order, each symbol's trades newest first.
    assert pages("desc") == [flat[0], flat[2], flat[1]]

    # end is inclusive, start too: the window of the first GOOG trade alone.
    first = body["trades"]["GOOG"][0]["t"]
    only = market.get("/v2/stocks/trades", symbols="GOOG", start=first, end=first).json()
    assert [t["i"] for t in only["trades"]["GOOG"]] == [flat[1][1]]

    single = market.get("/v2/stocks/GOOG/trades", start=market.start.isoformat()).json()
    assert single["symbol"] == "GOOG" and single["trades"] == body["trades"]["GOOG"]


def test_quotes_follow_the_top_of_book(market: Market) -> None:
    request = StockQuotesRequest(symbol_or_symbols="GOOG", start=market.start)

    def last_quote() -> Any:
        quotes = market.data.get_stock_quotes(request).data.get("GOOG", [])
        return quotes[-1] if quotes else None

    _wait_until(
        lambda: (q := last_quote()) is not None and (q.bid_price, q.ask_price) == (99.0, 101.0),
        "the recorder to write the last top of book",
    )
    quotes = market.data.get_stock_quotes(request).data["GOOG"]
    sides = [(q.bid_price, q.bid_size, q.ask_price, q.ask_size) for q in quotes]
    assert (100.0, 10, 0.0, 0) in sides  # the resting bid before the trades
    assert (100.0, 6, 0.0, 0) in sides  # after the first trade
    assert sides[-1] == (99.0, 3, 101.0, 5)
    assert [q.timestamp for q in quotes] == sorted(q.timestamp for q in quotes)


def _expected_bars(trades: list[Any], bucket: Callable[[datetime], datetime]) -> list[tuple]:
    """Bars computed here from the trades the API returned (its own aggregation is SQL)."""
    groups: dict[datetime, list[Any]] = {}
    for t in trades:
        groups.setdefault(bucket(t.timestamp), []).append(t)
    out = []
    for start, ts in sorted(groups.items()):
        prices = [t.price for t in ts]
        volume = sum(t.size for t in ts)
        vwap = sum(t.price * t.size for t in ts) / volume
        out.append((start, prices[0], max(prices), min(prices), prices[-1], volume, len(ts), vwap))
    return out


def _new_york_midnight(t: datetime) -> datetime:
    """The start of `t`'s day bar: the midnight in New York that starts its day there."""
    local = t.astimezone(NEW_YORK).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def test_bars_aggregate_the_trades(market: Market) -> None:
    trades = market.data.get_stock_trades(
        StockTradesRequest(symbol_or_symbols="GOOG", start=market.start)
    ).data["GOOG"]

    def five(t: datetime) -> datetime:
        return t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)

    for timeframe, bucket in (
        (TimeFrame.Minute, lambda t: t.replace(second=0, microsecond=0)),
        (TimeFrame(5, TimeFrameUnit.Minute), five),
        (TimeFrame.Hour, lambda t: t.replace(minute=0, second=0, microsecond=0)),
        (TimeFrame.Day, _new_york_midnight),
    ):
        start = bucket(market.start)  # a bar is served when its start is in the window
        request = StockBarsRequest(symbol_or_symbols="GOOG", timeframe=timeframe, start=start)
        bars = market.data.get_stock_bars(request).data["GOOG"]
        got = [
            (b.timestamp, b.open, b.high, b.low, b.close, b.volume, b.trade_count, b.vwap)
            for b in bars
        ]
        assert got == _expected_bars(trades, bucket), timeframe
    day_before = market.start - timedelta(days=1)
    request = StockBarsRequest(symbol_or_symbols="BRK", timeframe=TimeFrame.Day, start=day_before)
    brk = market.data.get_stock_bars(request).data["BRK"]
    assert [(b.open, b.volume, b.trade_count, b.vwap) for b in brk] == [(250.05, 20, 1, 250.05)]


def test_latest_trade_quote_and_bar(market: Market) -> None:
    symbols = ["GOOG", "BRK"]
    trades = market.data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=symbols))
    assert (trades["GOOG"].price, trades["GOOG"].size) == (100.0, 6)
    assert (trades["BRK"].price, trades["BRK"].size) == (250.05, 20)

    def quote() -> Any:
        return market.data.get_stock_latest_quote(
            StockLatestQuoteRequest(symbol_or_symbols="GOOG")
        ).get("GOOG")

    _wait_until(
        lambda: (q := quote()) is not None and (q.bid_price, q.ask_price) == (99.0, 101.0),
        "the gateway's top of book",
    )
    q = quote()
    assert (q.bid_size, q.ask_size) == (3, 5)

    bars = market.data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="GOOG"))
    last = trades["GOOG"].timestamp
    assert bars["GOOG"].timestamp == last.replace(second=0, microsecond=0)
    assert bars["GOOG"].close == 100.0

    one = market.get("/v2/stocks/GOOG/trades/latest").json()
    assert one["symbol"] == "GOOG" and one["trade"]["p"] == 100.0 and one["trade"]["s"] == 6


# -- history written straight into the recorder's tables (MSFT: nothing live) -----------

_MSFT_TRADES = [  # (UTC time, price in cents, shares)
    ("2026-10-30T15:00:10", 10000, 5),
    ("2026-11-02T09:30:00.000000001", 10100, 2),
    ("2026-11-02T09:31:30", 10050, 3),
    ("2026-11-02T09:44:59.999999999", 10200, 1),
    ("2026-11-02T09:45:00", 10150, 4),
    ("2026-11-02T10:05:00", 9990, 10),
    ("2026-11-03T12:00:00", 10300, 1),
]


_MSFT_QUOTES = [  # (UTC time, bid, ask): (price in cents, shares) or None
    ("2026-11-02T09:30:00", (10000, 5), (10100, 3)),
    ("2026-11-03T12:00:00", None, (10300, 1)),
]


def _ns(text: str) -> int:
    whole, _, fraction = text.partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


async def _write_msft_trades(
    conn: asyncpg.Connection, engine: str, trades: list[tuple[str, int, int]], first_seq: int
) -> None:
    """MSFT's `trades` (UTC time, price in cents, shares) numbered from `first_seq`, with
    their minute bars, as the recorder writes them (their days' partitions exist)."""
    for seq, (when, price, qty) in enumerate(trades, start=first_seq):
        ns = _ns(when)
        await conn.execute(
            "INSERT INTO md_trades (engine, seq, ts, ts_event, symbol, price, qty,"
            " taker_side) VALUES ($1, $2, $3, $4, 'MSFT', $5, $6, 'buy')",
            engine, seq, ts_of(ns), ns, price, qty,
        )  # fmt: skip
        # the minute bars the recorder keeps with the trades it writes
        await conn.execute("SELECT recorder_rebuild_minute_bars($1, $1)", ts_of(ns))


@pytest.fixture(scope="module")
def msft(market: Market, md_database: str) -> Market:
    """MSFT's trades and two tops of book, as the recorder writes them."""
    engine = market.gateway.app.state.settings.engine_name

    async def write() -> None:
        conn = await asyncpg.connect(md_database)
        try:
            await conn.execute("SELECT recorder_ensure_partitions('2026-10-30', '2026-11-03')")
            await _write_msft_trades(conn, engine, _MSFT_TRADES, 1)
            for md_seq, (when, bid, ask) in enumerate(_MSFT_QUOTES, start=1):
                ns = _ns(when)
                await conn.execute(
                    "INSERT INTO md_top_of_book (engine, symbol, md_seq, ts, ts_event, bid_price,"
                    " bid_qty, ask_price, ask_qty) VALUES ($1, 'MSFT', $2, $3, $4, $5, $6, $7,"
                    " $8)",
                    engine, md_seq, ts_of(ns), ns, *(bid or (None, None)), *ask,
                )  # fmt: skip
        finally:
            await conn.close()

    asyncio.run(write())
    return market


def _bars(m: Market, timeframe: str, start: str, end: str) -> list[tuple]:
    body = m.get("/v2/stocks/bars", symbols="MSFT", timeframe=timeframe, start=start, end=end)
    assert body.status_code == 200, body.text
    return [
        (b["t"], b["o"], b["h"], b["l"], b["c"], b["v"], b["n"])
        for b in body.json()["bars"].get("MSFT", [])
    ]


def test_bars_of_every_timeframe(msft: Market) -> None:
    day = ("2026-11-02", "2026-11-02T23:59:59Z")
    assert _bars(msft, "5Min", *day) == [
        ("2026-11-02T09:30:00Z", 101.0, 101.0, 100.5, 100.5, 5, 2),
        ("2026-11-02T09:40:00Z", 102.0, 102.0, 102.0, 102.0, 1, 1),
        ("2026-11-02T09:45:00Z", 101.5, 101.5, 101.5, 101.5, 4, 1),
        ("2026-11-02T10:05:00Z", 99.9, 99.9, 99.9, 99.9, 10, 1),
    ]
    assert _bars(msft, "15Min", *day) == [
        ("2026-11-02T09:30:00Z", 101.0, 102.0, 100.5, 102.0, 6, 3),
        ("2026-11-02T09:45:00Z", 101.5, 101.5, 101.5, 101.5, 4, 1),
        ("2026-11-02T10:00:00Z", 99.9, 99.9, 99.9, 99.9, 10, 1),
    ]
    assert _bars(msft, "1Hour", *day) == [
        ("2026-11-02T09:00:00Z", 101.0, 102.0, 100.5, 101.5, 10, 4),
        ("2026-11-02T10:00:00Z", 99.9, 99.9, 99.9, 99.9, 10, 1),
    ]
    # A bar starting before `start` is not served; one starting at `end` is, whole.
    assert _bars(msft, "1Hour", "2026-11-02T09:30:00Z", "2026-11-02T10:00:00Z") == [
        ("2026-11-02T10:00:00Z", 99.9, 99.9, 99.9, 99.9, 10, 1),
    ]
    # Days, weeks and months start at New York's midnight: EDT (UTC-4) until DST ends
    # on 2026-11-01, EST (UTC-5) after.
    month = ("2026-10-01", "2026-11-30")
    assert _bars(msft, "1Day", *month) == [
        ("2026-10-30T04:00:00Z", 100.0, 100.0, 100.0, 100.0, 5, 1),
        ("2026-11-02T05:00:00Z", 101.0, 102.0, 99.9, 99.9, 20, 5),
        ("2026-11-03T05:00:00Z", 103.0, 103.0, 103.0, 103.0, 1, 1),
    ]
    assert _bars(msft, "1Week", *month) == [
        ("2026-10-26T04:00:00Z", 100.0, 100.0, 100.0, 100.0, 5, 1),
        ("2026-11-02T05:00:00Z", 101.0, 103.0, 99.9, 103.0, 21, 6),
    ]
    assert _bars(msft, "1Month", *month) == [
        ("2026-10-01T04:00:00Z", 100.0, 100.0, 100.0, 100.0, 5, 1),
        ("2026-11-01T04:00:00Z", 101.0, 103.0, 99.9, 103.0, 21, 6),
    ]
    assert (
        _bars(msft, "1M", *month) == _bars(msft, "1month", *month) == _bars(msft, "1Month", *month)
    )
    vwap = msft.get(
        "/v2/stocks/bars", symbols="MSFT", timeframe="1H", start=day[0], end=day[1]
    ).json()["bars"]["MSFT"][0]["vw"]
    assert vwap == 101.15  # (101.00 x 2 + 100.50 x 3 + 102.00 + 101.50 x 4) / 10


# Trades either side of New York midnights, around both DST changes (seq 101 on: after
# MSFT's other rows, before none of its latest): (UTC time, price in cents, shares).
_NEW_YORK_TRADES = [
    ("2025-11-02T12:00:00", 10000, 1),  # Sun 2 Nov 2025 07:00 EST: DST ended at 02:00
    ("2025-11-03T04:30:00", 10100, 2),  # Sun 2 Nov 23:30 EST: the 25th hour of that day
    ("2026-02-28T23:00:00", 10200, 3),  # Sat 28 Feb 18:00 EST
    ("2026-03-01T04:59:59", 10300, 4),  # Sat 28 Feb 23:59:59 EST
    ("2026-03-01T05:00:00", 10400, 5),  # Sun 1 Mar 00:00 EST: a new day and month
    ("2026-03-08T23:30:00", 10500, 6),  # Sun 8 Mar 19:30 EDT: DST began at 02:00
    ("2026-03-09T03:59:59", 10600, 7),  # Sun 8 Mar 23:59:59 EDT
    ("2026-03-09T04:00:00", 10700, 8),  # Mon 9 Mar 00:00 EDT: a new day and week
]


@pytest.fixture(scope="module")
def new_york(msft: Market, md_database: str) -> Market:
    """MSFT's trades around New York midnights, written as the recorder writes them."""
    engine = msft.gateway.app.state.settings.engine_name

    async def write() -> None:
        conn = await asyncpg.connect(md_database)
        try:
            for first, last in (("2025-11-01", "2025-11-04"), ("2026-02-27", "2026-03-10")):
                await conn.execute(
                    "SELECT recorder_ensure_partitions($1, $2)",
                    date.fromisoformat(first),
                    date.fromisoformat(last),
                )
            await _write_msft_trades(conn, engine, _NEW_YORK_TRADES, 101)
        finally:
            await conn.close()

    asyncio.run(write())
    return msft


def _sdk_bars(m: Market, timeframe: TimeFrame, start: datetime, end: datetime) -> list[tuple]:
    """MSFT's bars through alpaca-py: (start, open, close, volume, trades)."""
    request = StockBarsRequest(symbol_or_symbols="MSFT", timeframe=timeframe, start=start, end=end)
    bars = m.data.get_stock_bars(request).data.get("MSFT", [])
    return [(b.timestamp, b.open, b.close, b.volume, b.trade_count) for b in bars]


def _utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def test_days_weeks_and_months_are_new_yorks(new_york: Market) -> None:
    spring = (_utc(2026, 2, 1), _utc(2026, 3, 31))
    assert _sdk_bars(new_york, TimeFrame.Day, *spring) == [
        (_utc(2026, 2, 28, 5), 102.0, 103.0, 7, 2),  # both before New York's midnight
        (_utc(2026, 3, 1, 5), 104.0, 104.0, 5, 1),
        (_utc(2026, 3, 8, 5), 105.0, 106.0, 13, 2),  # a 23-hour day: EST to EDT
        (_utc(2026, 3, 9, 4), 107.0, 107.0, 8, 1),
    ]
    assert _sdk_bars(new_york, TimeFrame.Week, *spring) == [
        (_utc(2026, 2, 23, 5), 102.0, 104.0, 12, 3),  # Monday 23 Feb to Sunday 1 Mar
        (_utc(2026, 3, 2, 5), 105.0, 106.0, 13, 2),  # Monday 2 Mar to Sunday 8 Mar
        (_utc(2026, 3, 9, 4), 107.0, 107.0, 8, 1),  # Monday 9 Mar, in EDT
    ]
    assert _sdk_bars(new_york, TimeFrame.Month, *spring) == [
        (_utc(2026, 2, 1, 5), 102.0, 103.0, 7, 2),
        (_utc(2026, 3, 1, 5), 104.0, 107.0, 26, 4),
    ]
    quarter = TimeFrame(3, TimeFrameUnit.Month)
    assert _sdk_bars(new_york, quarter, *spring) == []  # it starts on 1 Jan, before start
    assert _sdk_bars(new_york, quarter, _utc(2026, 1, 1, 5), spring[1]) == [
        (_utc(2026, 1, 1, 5), 102.0, 107.0, 33, 6),
    ]
    # Minutes and hours stay on UTC's clock.
    hours = _sdk_bars(new_york, TimeFrame.Hour, _utc(2026, 3, 1), _utc(2026, 3, 1, 6))
    assert hours == [
        (_utc(2026, 3, 1, 4), 103.0, 103.0, 4, 1),
        (_utc(2026, 3, 1, 5), 104.0, 104.0, 5, 1),
    ]
    # The day DST ends has 25 hours; a bar starting at `end` is still served whole.
    fall = _utc(2025, 11, 2, 4)
    assert _sdk_bars(new_york, TimeFrame.Day, fall, fall) == [(fall, 100.0, 101.0, 3, 2)]


def _trade_prices(m: Market, start: str, end: str) -> list[float]:
    """MSFT's trade prices from `start` to `end`, as sent (the HTTP API)."""
    body = m.get("/v2/stocks/trades", symbols="MSFT", start=start, end=end)
    assert body.status_code == 200, body.text
    return [t["p"] for t in body.json()["trades"].get("MSFT", [])]


def test_a_date_is_a_new_york_day(new_york: Market) -> None:
    """A date-only `start` is its New York midnight, a date-only `end` its day's last
    nanosecond (both inclusive), so one date as both ends is that New York day whole
    (it was midnight UTC: no trade at all, and four or five hours early)."""
    assert _trade_prices(new_york, "2026-02-28", "2026-02-28") == [102.0, 103.0]  # to 23:59:59
    assert _trade_prices(new_york, "2026-03-01", "2026-03-01") == [104.0]  # from 00:00 EST
    assert _trade_prices(new_york, "2026-03-08", "2026-03-08") == [105.0, 106.0]  # 23 hours
    assert _trade_prices(new_york, "2026-03-09", "2026-03-09") == [107.0]  # from 00:00 EDT
    week = [102.0, 103.0, 104.0, 105.0, 106.0]
    assert _trade_prices(new_york, "2026-02-28", "2026-03-08") == week
    # a date and a time mix: the date's midnight in New York, the time as written
    assert _trade_prices(new_york, "2026-03-01", "2026-03-09T04:00:00Z") == [*week[2:], 107.0]
    # the day bar of a date is the day asked for
    assert _bars(new_york, "1Day", "2026-02-28", "2026-02-28") == [
        ("2026-02-28T05:00:00Z", 102.0, 103.0, 102.0, 103.0, 7, 2)
    ]
    assert _bars(new_york, "1Day", "2026-03-09", "2026-03-09") == [
        ("2026-03-09T04:00:00Z", 107.0, 107.0, 107.0, 107.0, 8, 1)
    ]
    # alpaca-py sends datetimes: New York's midnights, aware, ask for the same day
    day = StockTradesRequest(
        symbol_or_symbols="MSFT",
        start=datetime(2026, 3, 8, tzinfo=NEW_YORK),
        end=datetime(2026, 3, 9, tzinfo=NEW_YORK) - timedelta(microseconds=1),
    )
    assert [t.price for t in new_york.data.get_stock_trades(day).data["MSFT"]] == [105.0, 106.0]


def _sdk_bars_today(m: Market, timeframe: TimeFrame) -> list[tuple]:
    """MSFT's bars through alpaca-py with neither start nor end (neither is sent)."""
    request = StockBarsRequest(symbol_or_symbols="MSFT", timeframe=timeframe)
    bars = m.data.get_stock_bars(request).data.get("MSFT", [])
    return [(b.timestamp, b.open, b.close, b.volume, b.trade_count) for b in bars]


def test_default_start_is_the_new_york_day(
    new_york: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `start`, bars start at the beginning of the current day in New York (as
    Alpaca's), not at midnight UTC; without `end`, they end at the gateway's now."""

    def now_is(when: datetime) -> None:
        monkeypatch.setattr(market_data, "_now", lambda: int(when.timestamp()) * 10**9)

    # Sun 1 Mar 00:30 UTC is still Sat 28 Feb 19:30 in New York: its day began at 05:00
    # UTC on the 28th (midnight UTC would leave out that day's bar and trades).
    now_is(_utc(2026, 3, 1, 0, 30))
    assert _sdk_bars_today(new_york, TimeFrame.Day) == [(_utc(2026, 2, 28, 5), 102.0, 103.0, 7, 2)]
    assert _sdk_bars_today(new_york, TimeFrame.Minute) == [
        (_utc(2026, 2, 28, 23), 102.0, 102.0, 3, 1)
    ]
    request = StockTradesRequest(symbol_or_symbols="MSFT")
    assert [t.price for t in new_york.data.get_stock_trades(request).data["MSFT"]] == [102.0]
    # The day DST ended (Sun 2 Nov 2025, 25 hours) began at 00:00 EDT, 04:00 UTC; at
    # 23:45 EST (04:45 UTC on the 3rd) it is still that day, its bar whole from 04:00.
    now_is(_utc(2025, 11, 3, 4, 45))
    assert _sdk_bars_today(new_york, TimeFrame.Day) == [(_utc(2025, 11, 2, 4), 100.0, 101.0, 3, 2)]
    # The day DST began (Sun 8 Mar 2026, 23 hours) began at 00:00 EST, 05:00 UTC; at
    # 23:59:59 EDT (03:59:59 UTC on the 9th) it is still that day.
    now_is(_utc(2026, 3, 9, 3, 59, 59))
    assert _sdk_bars_today(new_york, TimeFrame.Minute) == [
        (_utc(2026, 3, 8, 23, 30), 105.0, 105.0, 6, 1),
        (_utc(2026, 3, 9, 3, 59), 106.0, 106.0, 7, 1),
    ]
    # A second later it is Mon 9 Mar in New York: a new day, from 04:00 UTC (EDT).
    now_is(_utc(2026, 3, 9, 4))
    assert _sdk_bars_today(new_york, TimeFrame.Day) == [(_utc(2026, 3, 9, 4), 107.0, 107.0, 8, 1)]


def test_bars_page_through_alpaca_py_and_tokens(msft: Market) -> None:
    everything = _bars(msft, "1Min", "2026-10-01", "2026-11-30")
    assert len(everything) == 7
    token, seen = None, []
    while True:
        params: dict[str, Any] = {"symbols": "MSFT", "timeframe": "1Min", "limit": 3}
        params |= {"start": "2026-10-01", "end": "2026-11-30"}
        page = msft.get("/v2/stocks/bars", **params | ({"page_token": token} if token else {}))
        body = page.json()
        seen += [b["t"] for b in body["bars"]["MSFT"]]
        token = body["next_page_token"]
        if token is None:
            break
    assert seen == [b[0] for b in everything]
    request = StockBarsRequest(
        symbol_or_symbols="MSFT",
        timeframe=TimeFrame.Minute,
        start=datetime(2026, 10, 1),
        end=datetime(2026, 11, 30),
        sort="desc",
    )
    bars = msft.data.get_stock_bars(request).data["MSFT"]
    assert [b.timestamp for b in bars] == sorted((b.timestamp for b in bars), reverse=True)
    assert len(bars) == 7


def test_latest_from_the_table_when_nothing_is_live(msft: Market) -> None:
    trade = msft.data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="MSFT"))
    assert (trade["MSFT"].price, trade["MSFT"].size, trade["MSFT"].id) == (103.0, 1, 7)
    quote = msft.data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="MSFT"))
    q = quote["MSFT"]
    assert (q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (0.0, 0, 103.0, 1)
    assert q.timestamp == datetime(2026, 11, 3, 12, tzinfo=UTC)
    quotes = msft.get("/v2/stocks/quotes", symbols="MSFT", start="2026-11-02", end="2026-11-04")
    assert [x["bp"] for x in quotes.json()["quotes"]["MSFT"]] == [100.0, 0.0]
    # nanoseconds survive the table and the JSON
    first = msft.get("/v2/stocks/trades", symbols="MSFT", start="2026-11-02", limit=1).json()
    assert first["trades"]["MSFT"][0]["t"] == "2026-11-02T09:30:00.000000001Z"


def test_snapshots(msft: Market) -> None:
    snaps = msft.data.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["GOOG", "MSFT"]))
    goog, ms = snaps["GOOG"], snaps["MSFT"]
    assert goog.latest_trade is not None and goog.latest_trade.price == 100.0
    assert goog.latest_quote is not None
    assert (goog.latest_quote.bid_price, goog.latest_quote.ask_price) == (99.0, 101.0)
    assert goog.daily_bar is not None and goog.minute_bar is not None
    day = goog.daily_bar.timestamp
    bars = msft.data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="GOOG", timeframe=TimeFrame.Day, start=day)
    ).data["GOOG"]
    assert goog.daily_bar == bars[-1]  # the day's bar, as the bars route has it
    assert goog.minute_bar.close == 100.0
    # MSFT, from the table only: its last trade's minute, day and the day before
    assert ms.latest_trade is not None and ms.latest_trade.price == 103.0
    assert ms.latest_quote is not None and ms.latest_quote.ask_price == 103.0
    assert ms.minute_bar is not None and ms.daily_bar is not None
    assert ms.minute_bar.timestamp == datetime(2026, 11, 3, 12, tzinfo=UTC)
    # New York days: midnight EST is 05:00 UTC
    assert (ms.daily_bar.timestamp, ms.daily_bar.volume) == (
        datetime(2026, 11, 3, 5, tzinfo=UTC),
        1,
    )
    previous = ms.previous_daily_bar
    assert previous is not None
    assert (previous.timestamp, previous.volume, previous.trade_count) == (
        datetime(2026, 11, 2, 5, tzinfo=UTC),
        20,
        5,
    )
    one = msft.get("/v2/stocks/MSFT/snapshot").json()
    assert one["symbol"] == "MSFT" and one["latestTrade"]["p"] == 103.0


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/v2/stocks/bars", {"symbols": "GOOG", "timeframe": "7Fortnight"}, "timeframe"),
        ("/v2/stocks/bars", {"symbols": "GOOG", "timeframe": "60Min"}, "timeframe"),
        ("/v2/stocks/bars", {"symbols": "GOOG", "timeframe": "1m"}, "timeframe"),  # not a month
        ("/v2/stocks/bars", {"symbols": "GOOG"}, "timeframe"),
        ("/v2/stocks/trades", {"symbols": "NOPE"}, "unknown symbol"),
        ("/v2/stocks/trades", {"symbols": ","}, "symbols"),
        ("/v2/stocks/trades", {}, "symbols"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "start": "yesterday"}, "start"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "start": "2026-02-30"}, "start"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "start": "9999-01-01"}, "1970-2262"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "end": "9999-12-31"}, "1970-2262"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "start": "1969-12-31"}, "1970-2262"),
        (
            "/v2/stocks/trades",
            {"symbols": "GOOG", "start": "2026-12-02", "end": "2026-12-01"},
            "after",
        ),
        ("/v2/stocks/trades", {"symbols": "GOOG", "limit": 0}, "limit"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "limit": 10_001}, "limit"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "limit": "many"}, "limit"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "sort": "sideways"}, "sort"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "page_token": "!!"}, "page_token"),
        ("/v2/stocks/trades", {"symbols": "GOOG", "page_token": "WzEsMl0"}, "page_token"),
        (  # ["GOOG", 2**62]: a bar start (µs) past any date
            "/v2/stocks/bars",
            {
                "symbols": "GOOG",
                "timeframe": "1Min",
                "page_token": "WyJHT09HIiw0NjExNjg2MDE4NDI3Mzg3OTA0XQ",
            },
            "page_token",
        ),
        ("/v2/stocks/quotes", {"symbols": "GOOG", "currency": "EUR"}, "currency"),
        ("/v2/stocks/quotes", {"symbols": "GOOG", "feed": "nyse"}, "feed"),
        ("/v2/stocks/trades/latest", {"symbols": "NOPE"}, "unknown symbol"),
        ("/v2/stocks/GOOG,BRK/trades/latest", {}, "one symbol"),
        ("/v2/stocks/snapshots", {"symbols": "GOOG,NOPE"}, "unknown symbol"),
    ],
)
def test_bad_input_is_a_422_with_a_message(
    market: Market, path: str, params: dict[str, Any], says: str
) -> None:
    answer = market.get(path, **params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == 40010001 and says in body["message"]


def test_refusals_in_alpacas_shape(market: Market) -> None:
    url = market.gateway.url
    anonymous = httpx.get(url + "/v2/stocks/trades", params={"symbols": "GOOG"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 40110000
    wrong = StockHistoricalDataClient(market.buyer.key_id, "not-the-secret", url_override=url)
    with pytest.raises(APIError) as refused:
        wrong.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="GOOG"))
    assert refused.value.status_code == 401
    auctions = market.get("/v2/stocks/auctions", symbols="GOOG")  # not served
    assert auctions.status_code == 404 and auctions.json()["code"] == 40410000
    posted = httpx.post(url + "/v2/stocks/bars", headers=market.buyer.headers)
    assert posted.status_code == 405 and "GET" in posted.headers["Allow"]


def test_without_a_database_only_the_latest_is_served(
    gateway: Gateway, make_trader: Callable[[], Trader], other: Trader
) -> None:
    """The SQLite gateway: history is a 404 saying what it needs; the latest trade comes
    from the live view."""
    trader = make_trader()
    other.client.submit_order(limit("AAPL", "buy", 1, 77.00))
    sold = trader.client.submit_order(limit("AAPL", "sell", 1, 77.00))
    # (another test's resting bid may be higher: the fill's price is the trade's)
    price = float(trader.client.get_order_by_id(sold.id).filled_avg_price or 0)
    history = httpx.get(
        gateway.url + "/v2/stocks/trades", params={"symbols": "AAPL"}, headers=trader.headers
    )
    assert history.status_code == 404 and "PostgreSQL" in history.json()["message"]
    data = StockHistoricalDataClient(trader.key_id, trader.secret, url_override=gateway.url)
    latest = data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    assert (latest["AAPL"].price, latest["AAPL"].size) == (price, 1)
