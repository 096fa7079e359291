"""Alpaca's stock market-data API: `/v2/stocks/{trades,quotes,bars}`, their `/latest`
forms, `/v2/stocks/snapshots`, and the single-symbol forms `/v2/stocks/{symbol}/...`.

History is the recorder's (`market_history.py`: PostgreSQL, the gateway's
`database_url`, rows of its `engine_name`); the latest trade and quote are the
gateway's live view (the projection of the engine's stream) when it has one, else the
table's last row. Shapes are Alpaca's (`market_rendering.py`). A gateway without
PostgreSQL serves only the latest trade and quote; the history routes answer 404 saying
why.

Parameters as alpaca-py sends them: `symbols` (comma-separated), `timeframe` (bars),
`start`/`end` (RFC 3339: a time without an offset is UTC, as alpaca-py's naive
datetimes are; or a date, `YYYY-MM-DD`: a New York day, from its midnight for `start`,
to its end for `end`, so `start=end=` a date is that day whole; default, as Alpaca's:
from the beginning of the current day in New York until now), `limit`
(1-10,000, default 1,000, across all symbols), `sort` (`asc`, `desc`), `page_token`
(the previous page's `next_page_token`), `feed`,
`currency` (`USD`), `adjustment`, `asof` (accepted: Tickplane has one feed, one
currency and no corporate actions).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from tickplane.api.alpaca import market_rendering as md
from tickplane.api.alpaca.deps import Ctx, CtxDep
from tickplane.api.alpaca.errors import UNAVAILABLE, AlpacaError, AlpacaRoute
from tickplane.api.alpaca.market_history import Cursor, MarketHistory, Window, micros
from tickplane.api.alpaca.orders import ERRORS
from tickplane.api.alpaca.timeframe import TimeFrame, market_day, parse_timeframe
from tickplane.api.alpaca.times import FIRST_NS, LAST_NS, parse_time
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.deps import SettingsDep
from tickplane.api.keys import PostgresKeyStore

__all__ = ["MAX_LIMIT", "router"]

router = APIRouter(route_class=AlpacaRoute, tags=["alpaca market data"])

MAX_LIMIT = 10_000  # rows per page (alpaca-py asks for pages of 10,000)
DEFAULT_LIMIT = 1_000
_FEEDS = frozenset({"iex", "sip", "delayed_sip", "otc", "boats", "overnight"})
_ADJUSTMENTS = frozenset({"raw", "split", "dividend", "spin-off", "all"})
_MINUTE_NS = 60_000_000_000
_now = time.time_ns  # the gateway's clock: a request's default end, its day the default start
_NO_HISTORY = (
    "market-data history is not served by this gateway: it needs the recorder's "
    "PostgreSQL (TICKPLANE_GATEWAY_DATABASE_URL)"
)
_BAD_TOKEN = "invalid page_token: pass the next_page_token of a page"
T = TypeVar("T")


async def get_history(request: Request, settings: SettingsDep) -> MarketHistory | None:
    """The recorder's tables, in the database the gateway's keys are in (None: none)."""
    store = request.app.state.keys
    if isinstance(store, PostgresKeyStore):
        return MarketHistory(store.pool, settings.engine_name)
    return None


HistoryDep = Annotated[MarketHistory | None, Depends(get_history)]


def _served(history: MarketHistory | None) -> MarketHistory:
    if history is None:
        raise AlpacaError.not_found(_NO_HISTORY)
    return history


async def _read(query: Awaitable[T]) -> T:
    """A query's rows; PostgreSQL down is a 503 (true, and worth retrying)."""
    try:
        return await query
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise AlpacaError(503, UNAVAILABLE, f"market-data history is unavailable: {exc}") from exc


async def _requested(ctx: Ctx, series: Series, text: str) -> dict[str, SymbolUnits]:
    """The symbols of a history request; its page token must be one of its pages."""
    units = await _symbols(ctx, text)
    if series.after is not None and series.after.symbol not in units:
        raise AlpacaError.invalid("invalid page_token: it is not a page of these symbols")
    return units


async def _symbols(ctx: Ctx, text: str) -> dict[str, SymbolUnits]:
    """The comma-separated symbols, each one the engine trades, with their units."""
    every = await ctx.all_units()
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise AlpacaError.invalid("symbols: name at least one symbol")
    unknown = [s for s in names if s not in every]
    if unknown:
        traded = ", ".join(every) or "none"
        raise AlpacaError.invalid(f"unknown symbol {unknown[0]!r}: this engine trades {traded}")
    return {s: every[s] for s in sorted(set(names))}


def _page_token(token: str | None) -> Cursor | None:
    if token is None:
        return None
    try:
        symbol, key = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
        if isinstance(symbol, str) and type(key) is int and -(2**63) <= key < 2**63:
            return Cursor(symbol, key)
    except (ValueError, TypeError, binascii.Error, UnicodeError, RecursionError):
        pass
    raise AlpacaError.invalid(_BAD_TOKEN)


def _next_token(cursor: Cursor) -> str:
    raw = json.dumps([cursor.symbol, cursor.key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _check_extras(feed: str | None, currency: str | None, adjustment: str | None) -> None:
    if feed is not None and feed not in _FEEDS:
        raise AlpacaError.invalid(f"invalid feed {feed!r}: one of {', '.join(sorted(_FEEDS))}")
    if currency is not None and currency.upper() != "USD":
        raise AlpacaError.invalid(f"invalid currency {currency!r}: Tickplane prices are USD")
    if adjustment is not None and not set(adjustment.split(",")) <= _ADJUSTMENTS:
        raise AlpacaError.invalid(
            f"invalid adjustment {adjustment!r}: {', '.join(sorted(_ADJUSTMENTS))}"
        )


class Series:
    """The parameters every history route shares (a FastAPI dependency)."""

    def __init__(
        self,
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int | None, Query(description="1-10,000 rows per page")] = None,
        page_token: str | None = None,
        sort: Literal["asc", "desc"] = "asc",
        feed: str | None = None,
        currency: str | None = None,
        adjustment: str | None = None,
        asof: str | None = None,
    ) -> None:
        _check_extras(feed, currency, adjustment)
        now = _now()
        self.end_ns = now if end is None else parse_time(end, "end", day_end=True)
        if start is None:  # Alpaca's "beginning of the current day": its days are New York's
            self.start_ns = market_day(now)
        else:
            self.start_ns = parse_time(start, "start")
        if self.start_ns > self.end_ns:
            raise AlpacaError.invalid("start must not be after end")
        if limit is not None and not 1 <= limit <= MAX_LIMIT:
            raise AlpacaError.invalid(f"limit must be between 1 and {MAX_LIMIT}")
        self.limit = limit or DEFAULT_LIMIT
        self.descending = sort == "desc"
        self.after = _page_token(page_token)

    def window(self, symbols: list[str]) -> Window:
        """One more row than the page holds: its presence says a next page exists."""
        return Window(
            symbols, self.start_ns, self.end_ns, self.limit + 1, self.descending, self.after
        )


SeriesDep = Annotated[Series, Depends()]
Row = asyncpg.Record | Mapping[str, Any]  # a dict: the same fields


def _grouped(
    rows: Sequence[Row],
    series: Series,
    key: Callable[[Row], int],
    render: Callable[[Row], dict[str, Any]],
) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """A page's rows by symbol (in order) and the token of the next page (None: last)."""
    page = rows[: series.limit]
    out: dict[str, list[dict[str, Any]]] = {}
    for row in page:
        out.setdefault(row["symbol"], []).append(render(row))
    token = None
    if len(rows) > series.limit:
        last = page[-1]
        token = _next_token(Cursor(last["symbol"], key(last)))
    return out, token


def _trade_row(units: dict[str, SymbolUnits]) -> Callable[[Row], dict[str, Any]]:
    def render(r: Row) -> dict[str, Any]:
        return md.trade(
            units[r["symbol"]], r["seq"], r["ts_event"], r["price"], r["qty"], md.rfc3339
        )

    return render


def _side(price: int | None, qty: int | None) -> tuple[int, int] | None:
    return None if price is None or qty is None else (price, qty)


def _quote_row(units: dict[str, SymbolUnits]) -> Callable[[Row], dict[str, Any]]:
    def render(r: Row) -> dict[str, Any]:
        return md.quote(
            units[r["symbol"]],
            r["ts_event"],
            _side(r["bid_price"], r["bid_qty"]),
            _side(r["ask_price"], r["ask_qty"]),
            md.rfc3339,
        )

    return render


def _bar_row(units: dict[str, SymbolUnits]) -> Callable[[Row], dict[str, Any]]:
    def render(r: Row) -> dict[str, Any]:
        return md.bar(
            units[r["symbol"]],
            micros(r["start"]) * 1000,
            (r["open"], r["high"], r["low"], r["close"]),
            r["volume"],
            r["trades"],
            r["notional"],
            md.rfc3339,
        )

    return render


def _bar_key(r: Row) -> int:
    return micros(r["start"])


# -- history --------------------------------------------------------------------------

Page = tuple[dict[str, list[dict[str, Any]]], str | None]


async def _trades(ctx: Ctx, history: MarketHistory | None, series: Series, names: str) -> Page:
    units = await _requested(ctx, series, names)
    rows = await _read(_served(history).trades(series.window(list(units))))
    return _grouped(rows, series, lambda r: r["seq"], _trade_row(units))


async def _quotes(ctx: Ctx, history: MarketHistory | None, series: Series, names: str) -> Page:
    units = await _requested(ctx, series, names)
    rows = await _read(_served(history).quotes(series.window(list(units))))
    return _grouped(rows, series, lambda r: r["md_seq"], _quote_row(units))


async def _bars(
    ctx: Ctx, history: MarketHistory | None, series: Series, names: str, timeframe: str
) -> Page:
    frame = parse_timeframe(timeframe)
    # a bar page's key is a bar's start (µs): one outside the times served is no page's
    if series.after is not None and not FIRST_NS <= series.after.key * 1000 <= LAST_NS:
        raise AlpacaError.invalid(_BAD_TOKEN)
    units = await _requested(ctx, series, names)
    rows = await _read(_served(history).bars(series.window(list(units)), frame))
    return _grouped(rows, series, _bar_key, _bar_row(units))


def _several(kind: str, page: Page) -> JSONResponse:
    data, token = page
    return JSONResponse({kind: data, "next_page_token": token, "currency": "USD"})


def _one(symbol: str, kind: str, page: Page) -> JSONResponse:
    data, token = page
    return JSONResponse(
        {"symbol": symbol, kind: data.get(symbol, []), "next_page_token": token, "currency": "USD"}
    )


def _single(symbol: str) -> str:
    if "," in symbol:
        raise AlpacaError.invalid(f"one symbol, not {symbol!r}: use ?symbols= for several")
    return symbol


@router.get("/stocks/trades", responses=ERRORS)
async def get_trades(
    ctx: CtxDep, history: HistoryDep, series: SeriesDep, symbols: str
) -> JSONResponse:
    """Trade prints of `symbols`, by symbol, then time."""
    return _several("trades", await _trades(ctx, history, series, symbols))


@router.get("/stocks/quotes", responses=ERRORS)
async def get_quotes(
    ctx: CtxDep, history: HistoryDep, series: SeriesDep, symbols: str
) -> JSONResponse:
    """Best bid and ask of `symbols` after each change, by symbol, then time."""
    return _several("quotes", await _quotes(ctx, history, series, symbols))


@router.get("/stocks/bars", responses=ERRORS)
async def get_bars(
    ctx: CtxDep, history: HistoryDep, series: SeriesDep, symbols: str, timeframe: str
) -> JSONResponse:
    """Bars of `symbols` aggregated from their trades, by symbol, then start: those
    starting in [start, end], each over its whole timeframe; no trades, no bar."""
    return _several("bars", await _bars(ctx, history, series, symbols, timeframe))


@router.get("/stocks/{symbol}/trades", responses=ERRORS)
async def get_symbol_trades(
    symbol: str, ctx: CtxDep, history: HistoryDep, series: SeriesDep
) -> JSONResponse:
    """One symbol's trade prints (Alpaca's single-symbol form)."""
    return _one(symbol, "trades", await _trades(ctx, history, series, _single(symbol)))


@router.get("/stocks/{symbol}/quotes", responses=ERRORS)
async def get_symbol_quotes(
    symbol: str, ctx: CtxDep, history: HistoryDep, series: SeriesDep
) -> JSONResponse:
    """One symbol's quotes (Alpaca's single-symbol form)."""
    return _one(symbol, "quotes", await _quotes(ctx, history, series, _single(symbol)))


@router.get("/stocks/{symbol}/bars", responses=ERRORS)
async def get_symbol_bars(
    symbol: str, ctx: CtxDep, history: HistoryDep, series: SeriesDep, timeframe: str
) -> JSONResponse:
    """One symbol's bars (Alpaca's single-symbol form)."""
    page = await _bars(ctx, history, series, _single(symbol), timeframe)
    return _one(symbol, "bars", page)


# -- latest: several symbols ---------------------------------------------------------------


async def _latest_trade(
    ctx: Ctx, history: MarketHistory | None, symbol: str, units: SymbolUnits
) -> dict[str, Any] | None:
    live = ctx.projection.trades(symbol, 1)
    if live:
        t = live[0]
        return md.trade(units, t.seq, t.ts_event, t.price, t.qty, md.rfc3339)
    row = None if history is None else await _read(history.latest_trade(symbol))
    if row is None:
        return None
    return md.trade(units, row["seq"], row["ts_event"], row["price"], row["qty"], md.rfc3339)


async def _latest_quote(
    ctx: Ctx, history: MarketHistory | None, symbol: str, units: SymbolUnits
) -> dict[str, Any] | None:
    top = ctx.projection.top(symbol)
    if top is not None:
        bid = (top.bids[0].price, top.bids[0].qty) if top.bids else None
        ask = (top.asks[0].price, top.asks[0].qty) if top.asks else None
        return md.quote(units, top.ts_event, bid, ask, md.rfc3339)
    row = None if history is None else await _read(history.latest_quote(symbol))
    if row is None:
        return None
    return _quote_row({symbol: units})({**dict(row.items()), "symbol": symbol})


async def _bar_at(
    history: MarketHistory, symbol: str, units: SymbolUnits, start_ns: int, frame: TimeFrame
) -> dict[str, Any] | None:
    """The bar of `frame` starting at `start_ns` (None: no trades in it)."""
    rows = await _read(history.bars(Window([symbol], start_ns, start_ns, 1), frame))
    return _bar_row({symbol: units})(rows[0]) if rows else None


async def _latest_bar(history: MarketHistory, symbol: str, units: SymbolUnits) -> Any:
    """The minute bar of the symbol's last trade (from the table)."""
    last = await _read(history.latest_trade(symbol))
    if last is None:
        return None
    minute = last["ts_event"] - last["ts_event"] % _MINUTE_NS
    return await _bar_at(history, symbol, units, minute, TimeFrame(1, "Min"))


async def _snapshot(
    ctx: Ctx, history: MarketHistory | None, symbol: str, units: SymbolUnits
) -> dict[str, Any] | None:
    """Latest trade and quote (live view, else table); the minute bar, the day's bar and
    the previous day's (New York days) of the last recorded trade."""
    snap: dict[str, Any] = {
        "latestTrade": await _latest_trade(ctx, history, symbol, units),
        "latestQuote": await _latest_quote(ctx, history, symbol, units),
        "minuteBar": None,
        "dailyBar": None,
        "prevDailyBar": None,
    }
    last = None if history is None else await _read(history.latest_trade(symbol))
    if history is not None and last is not None:
        ts = last["ts_event"]
        daily = TimeFrame(1, "Day")
        snap["minuteBar"] = await _bar_at(
            history, symbol, units, ts - ts % _MINUTE_NS, TimeFrame(1, "Min")
        )
        snap["dailyBar"] = await _bar_at(history, symbol, units, market_day(ts), daily)
        snap["prevDailyBar"] = await _bar_at(history, symbol, units, market_day(ts, 1), daily)
    return snap if any(v is not None for v in snap.values()) else None


Latest = Callable[[Ctx, MarketHistory | None, str, SymbolUnits], Awaitable[Any]]


async def _latest_of(
    ctx: Ctx, history: MarketHistory | None, symbols: str, latest: Latest
) -> dict[str, Any]:
    await ctx.projection.caught_up(ctx.account, ctx.catch_up_timeout)  # read-your-writes
    out = {}
    for symbol, units in (await _symbols(ctx, symbols)).items():
        found = await latest(ctx, history, symbol, units)
        if found is not None:  # as Alpaca: a symbol with nothing yet is left out
            out[symbol] = found
    return out


async def _bar_latest(
    ctx: Ctx, history: MarketHistory | None, symbol: str, units: SymbolUnits
) -> Any:
    return await _latest_bar(_served(history), symbol, units)


@router.get("/stocks/snapshots", responses=ERRORS)
async def get_snapshots(
    ctx: CtxDep, history: HistoryDep, symbols: str, feed: str | None = None
) -> JSONResponse:
    """Each symbol's snapshot: latest trade and quote, minute, daily and previous daily
    bars (those from the recorder's history: null without it)."""
    _check_extras(feed, None, None)
    return JSONResponse(await _latest_of(ctx, history, symbols, _snapshot))


@router.get("/stocks/{symbol}/snapshot", responses=ERRORS)
async def get_symbol_snapshot(symbol: str, ctx: CtxDep, history: HistoryDep) -> JSONResponse:
    """One symbol's snapshot (404 before it has any market data)."""
    found = (await _latest_of(ctx, history, _single(symbol), _snapshot)).get(symbol)
    if found is None:
        raise AlpacaError.not_found(f"no market data of {symbol} yet")
    return JSONResponse({"symbol": symbol, **found})


@router.get("/stocks/trades/latest", responses=ERRORS)
async def get_latest_trades(
    ctx: CtxDep, history: HistoryDep, symbols: str, feed: str | None = None
) -> JSONResponse:
    """Each symbol's last trade: the gateway's live view, else the recorder's table."""
    _check_extras(feed, None, None)
    return JSONResponse({"trades": await _latest_of(ctx, history, symbols, _latest_trade)})


@router.get("/stocks/quotes/latest", responses=ERRORS)
async def get_latest_quotes(
    ctx: CtxDep, history: HistoryDep, symbols: str, feed: str | None = None
) -> JSONResponse:
    """Each symbol's best bid and ask: the live view, else the recorder's table."""
    _check_extras(feed, None, None)
    return JSONResponse({"quotes": await _latest_of(ctx, history, symbols, _latest_quote)})


@router.get("/stocks/bars/latest", responses=ERRORS)
async def get_latest_bars(
    ctx: CtxDep, history: HistoryDep, symbols: str, feed: str | None = None
) -> JSONResponse:
    """Each symbol's last minute bar (the minute of its last recorded trade)."""
    _check_extras(feed, None, None)
    return JSONResponse({"bars": await _latest_of(ctx, history, symbols, _bar_latest)})


# -- one symbol ----------------------------------------------------------------------------


async def _single_latest(
    ctx: Ctx, history: MarketHistory | None, symbol: str, kind: str, latest: Latest
) -> JSONResponse:
    found = (await _latest_of(ctx, history, _single(symbol), latest)).get(symbol)
    if found is None:
        raise AlpacaError.not_found(f"no {kind} of {symbol} yet")
    return JSONResponse({"symbol": symbol, kind: found})


@router.get("/stocks/{symbol}/trades/latest", responses=ERRORS)
async def get_symbol_latest_trade(symbol: str, ctx: CtxDep, history: HistoryDep) -> JSONResponse:
    """One symbol's last trade (404 before its first)."""
    return await _single_latest(ctx, history, symbol, "trade", _latest_trade)


@router.get("/stocks/{symbol}/quotes/latest", responses=ERRORS)
async def get_symbol_latest_quote(symbol: str, ctx: CtxDep, history: HistoryDep) -> JSONResponse:
    """One symbol's best bid and ask (404 before its first market data)."""
    return await _single_latest(ctx, history, symbol, "quote", _latest_quote)


@router.get("/stocks/{symbol}/bars/latest", responses=ERRORS)
async def get_symbol_latest_bar(symbol: str, ctx: CtxDep, history: HistoryDep) -> JSONResponse:
    """One symbol's last minute bar (404 before its first trade)."""
    return await _single_latest(ctx, history, symbol, "bar", _bar_latest)
