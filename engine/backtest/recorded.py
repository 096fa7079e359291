"""Backtests over a day traded on the platform: the recorder's tables in PostgreSQL.

The recorder (api/recorder) stores every trade (`md_trades`) and every top-of-book
change (`md_top_of_book`) of an engine. `load_recorded` reads one symbol's, merged in
event time (a trade before the top it left behind), and `TopVenue` trades the strategy
against them. With only the top of book, the queue is estimated the usual L1 way:

- an order joining the best level queues behind its displayed size; one at a better
  price than the best is first; one below the best joins behind whatever is displayed
  when its price becomes the best;
- a trade at its price removes the queue first and fills it with what goes beyond; a
  trade at a worse price went through it (it fills); the displayed size at its price
  shrinking below the queue shrinks the queue (cancels ahead);
- an opposite best at or through its price trades with it;
- marketable orders take the opposite best level only (the only one known), and not
  twice the same size before the next top; `fok` is all or nothing.
Order-entry latency and fees work as in the LOBSTER venue; nothing changes the data.

URL: `postgresql://USER@HOST:PORT/DB?symbol=GOOG[&engine=NAME][&tick_size=0.01]`
(`--symbol` may name the symbol instead); prices are the engine's integer ticks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from tickplane.engine.backtest.fills import FillingVenue
from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Order

__all__ = ["RecordedData", "TopVenue", "load_recorded"]

NEVER = 2**63 - 1

# (ts_event, kind, a, b, c, d): kind 0 trade (price, qty, taker side 0 buy / 1 sell, -),
# kind 1 top (bid, bid_qty, ask, ask_qty; 0 = no such side).
Event = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class RecordedData:
    """One symbol's recorded trades and tops, in event time."""

    events_list: list[Event]
    symbol: str
    source: str
    tick: int = 1
    price_scale: float = 0.01

    @property
    def events(self) -> int:
        return len(self.events_list)


def load_recorded(url: str, symbol: str | None) -> RecordedData:
    """Read the recorder's tables (see the module docstring). ValueError when the URL,
    the symbol or the tables are not usable."""
    import asyncpg

    parts = urlsplit(url)
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    sym = symbol or q.pop("symbol", None)
    q.pop("symbol", None)
    engine = q.pop("engine", None)
    try:
        scale = float(q.pop("tick_size", "0.01"))
    except ValueError:
        raise ValueError(f"{url}: tick_size must be a number") from None
    if not sym:
        raise ValueError("--data postgresql://...: name the symbol (?symbol=GOOG or --symbol)")
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    where = "symbol = $1" + (" AND engine = $2" if engine else "")
    args: list[Any] = [sym, *([engine] if engine else [])]

    async def fetch() -> tuple[list[Any], list[Any]]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            trades = await conn.fetch(
                f"SELECT ts_event, seq, price, qty, taker_side FROM md_trades WHERE {where} "
                "ORDER BY ts_event, seq",
                *args,
            )
            tops = await conn.fetch(
                "SELECT ts_event, md_seq, bid_price, bid_qty, ask_price, ask_qty "
                f"FROM md_top_of_book WHERE {where} ORDER BY ts_event, md_seq",
                *args,
            )
            return list(trades), list(tops)
        finally:
            await conn.close()

    try:
        trades, tops = asyncio.run(fetch())
    except asyncpg.UndefinedTableError:
        raise ValueError(
            f"{dsn}: no recorder tables (md_trades, md_top_of_book); run `tickplane recorder`"
        ) from None
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise ValueError(f"{dsn}: {exc}") from None
    events: list[tuple[int, int, int, int, int, int, int]] = []
    for r in trades:
        side = 0 if r["taker_side"] == "buy" else 1
        events.append((r["ts_event"], 0, r["seq"], r["price"], r["qty"], side, 0))
    for r in tops:
        events.append(
            (
                r["ts_event"],
                1,
                r["md_seq"],
                r["bid_price"] or 0,
                r["bid_qty"] or 0,
                r["ask_price"] or 0,
                r["ask_qty"] or 0,
            )
        )
    if not events:
        raise ValueError(f"{dsn}: nothing recorded for symbol {sym!r}")
    events.sort()
    merged: list[Event] = [(e[0], e[1], e[3], e[4], e[5], e[6]) for e in events]
    shown = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    return RecordedData(merged, sym, f"{shown}?symbol={sym}", price_scale=scale)


@dataclass(slots=True)
class _Resting:
    order: Order
    buy: bool
    price: int
    ahead: int | None  # None: below the best, not yet known
    arrival_ts: int
    ahead_at_entry: int | None = None
    first_fill_ts: int = -1


class TopVenue(FillingVenue["_Resting"]):
    """Implements `Runtime` over recorded tops and trades (module docstring)."""

    def __init__(self, strategy: Strategy, *, latency_ns: int = 0, fee_bps: float = 0.0) -> None:
        super().__init__(strategy, latency_ns=latency_ns, fee_bps=fee_bps)
        self.top = (0, 0, 0, 0)
        # Lots our takers took from the best ask / bid since the last top: not twice.
        self.taken = [0, 0]
        strategy.attach(self)

    def advance(self, ts: int) -> None:
        """Order arrivals and timers due by `ts`, in time order."""
        while True:
            t_arr = self.pending[0][0] if self.pending else NEVER
            t_tim = self.timer_next if self.timer_next >= 0 else NEVER
            t = min(t_arr, t_tim)
            if t > ts:
                break
            self.clock = max(self.clock, t)
            if t_arr <= t_tim:
                _, kind, order, qty, price = self.pending.popleft()
                self._arrive(kind, order, qty, price)
            else:
                self.timer_next = t_tim + self.timer_interval
                self.strategy._handle_timer(t_tim)
        self.clock = max(self.clock, ts)

    def _arrive(self, kind: str, order: Order, qty: int | None, price: int | None) -> None:
        s = self.strategy
        if kind == "new":
            if order.is_live:
                s._handle_accepted(order.id)
                self._enter(order)
            return
        r = self.resting.pop(order.id, None)
        if r is None:
            return
        if kind == "cancel":
            s._handle_canceled(order.id, "user")
            return
        open_qty = qty if qty is not None else order.remaining
        if open_qty <= 0:
            s._handle_canceled(order.id, "user")
            return
        s._handle_replaced(order.id, open_qty, price if price is not None else r.price)
        if (price is None or price == r.price) and open_qty <= r.order.remaining:
            self.resting[order.id] = r  # a smaller order keeps its place
        else:
            self._enter(order)

    def _enter(self, order: Order) -> None:
        bid, bq, ask, aq = self.top
        buy = order.side == "buy"
        best, shown = (ask, aq) if buy else (bid, bq)
        if shown and (order.price is None or (order.price >= best if buy else order.price <= best)):
            if order.post_only:
                self.strategy._handle_rejected(order.id, "post_only")
                return
            avail = shown - self.taken[0 if buy else 1]
            if order.tif == "fok" and avail < order.remaining:
                self.strategy._handle_canceled(order.id, "fok")
                return
            q = min(avail, order.remaining)
            if q > 0:
                self.taken[0 if buy else 1] += q
                self._fill(order, best, q, "taker")
        if order.remaining <= 0:
            return
        if order.price is None or order.tif in ("ioc", "fok"):
            self.strategy._handle_canceled(order.id, "ioc" if order.price else "market")
            return
        r = _Resting(order, buy, order.price, None, self.clock)
        self._queue(r)
        self.resting[order.id] = r

    def _queue(self, r: _Resting) -> None:
        """Set the queue ahead of `r` from the best level on its side, if it is there."""
        bid, bq, ask, aq = self.top
        best, qty = (bid, bq) if r.buy else (ask, aq)
        if not qty or (r.price > best if r.buy else r.price < best):
            ahead: int | None = 0
        elif r.price == best:
            ahead = qty
        else:
            ahead = None
        if r.ahead is None and ahead is not None:
            r.ahead = ahead
            r.ahead_at_entry = ahead

    def on_trade(self, price: int, qty: int, taker_buy: bool) -> None:
        for r in list(self.resting.values()):
            if r.buy == taker_buy or r.order.id not in self.resting:
                continue  # a buyer's trade reaches sells only, and the other way round
            through = price < r.price if r.buy else price > r.price
            if through:
                r.ahead = 0
                self._maker_fill(r, qty)
            elif price == r.price:
                ahead = r.ahead or 0
                if qty > ahead:
                    self._maker_fill(r, qty - ahead)
                r.ahead = max(0, ahead - qty)

    def on_top(self, bid: int, bq: int, ask: int, aq: int) -> None:
        self.top = (bid, bq, ask, aq)
        self.taken = [0, 0]
        for r in list(self.resting.values()):
            if r.order.id not in self.resting:
                continue
            if r.buy and aq and ask <= r.price:
                self._maker_fill(r, aq)
                continue
            if not r.buy and bq and bid >= r.price:
                self._maker_fill(r, bq)
                continue
            best, qty = (bid, bq) if r.buy else (ask, aq)
            if r.ahead is None:
                self._queue(r)
            elif qty and best == r.price and qty < r.ahead:
                r.ahead = qty  # the displayed size fell below our queue: cancels ahead

    def finish(self) -> None:
        for oid in list(self.resting):
            self.resting.pop(oid)
            self.strategy._handle_canceled(oid, "end_of_data")
        for _, kind, order, _, _ in self.pending:
            if kind == "new" and order.is_live:
                self.strategy._handle_canceled(order.id, "end_of_data")
        self.pending.clear()
