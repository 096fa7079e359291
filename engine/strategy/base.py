"""The `Strategy` base class: one API for backtests and live trading.

A strategy subclasses `Strategy`, declares its typed `Params`, overrides the callbacks
it needs and acts through the methods below. A runtime (`tickplane.engine.backtest`
for history, `tickplane.engine.strategy.live` against an engine) implements `Runtime`
and calls the `_handle_*` hooks; the strategy sees the same types and the same order
life cycle in both, so it can only tell them apart through `now()`.

Callbacks: on_start, on_stop, on_quote, on_trade, on_book, on_bar, on_accepted,
on_rejected, on_canceled, on_fill, on_timer. Actions: submit, cancel, replace,
cancel_all, position, pnl, log (and now, set_timer).

Every order passes the strategy's own limits (`StrategyLimits`) before it reaches the
runtime; a refusal comes back at once as `on_rejected` with a `strategy_*` reason. A
breach of the loss limit cancels every open order and pauses the strategy: it keeps
receiving data, but new orders are refused (`strategy_paused`) until `resume()`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Protocol

import msgspec

from tickplane.engine.strategy.bars import BarBuilder
from tickplane.engine.strategy.ledger import Ledger
from tickplane.engine.strategy.limits import RateWindow, StrategyLimits
from tickplane.engine.strategy.model import (
    Bar,
    BookSnapshot,
    Fill,
    MarketTrade,
    Order,
    OrderStatus,
    Quote,
    Side,
)
from tickplane.engine.strategy.params import NoParams

__all__ = ["Runtime", "Strategy"]

log = logging.getLogger("tickplane.strategy")


class Runtime(Protocol):
    """What a strategy needs from whatever runs it (a backtest or a live runner)."""

    def now(self) -> int:
        """The current time in ns (data time in a backtest, wall clock live)."""
        ...

    def send_new(self, order: Order) -> None:
        """Send a new order (answered later through the `_handle_*` hooks)."""
        ...

    def send_cancel(self, order: Order) -> None:
        """Ask to cancel an order."""
        ...

    def send_replace(self, order: Order, qty: int | None, price: int | None) -> None:
        """Ask to change an order's open quantity and/or price (`qty` is the new open
        quantity, as in the engine's replace)."""
        ...

    def set_timer(self, interval_ns: int) -> None:
        """Call `on_timer` every `interval_ns` from now (0 stops it)."""
        ...

    def log(self, strategy: str, message: str) -> None:
        """Record a strategy's log line."""
        ...


class _Detached:
    """The runtime of a strategy not attached to one yet: every use is an error."""

    def _fail(self, *args: object) -> Any:
        raise RuntimeError("the strategy is not attached to a runtime yet")

    now = send_new = send_cancel = send_replace = set_timer = log = _fail


_DETACHED: Runtime = _Detached()


class Strategy:
    """Base class of every strategy (see the module docstring)."""

    #: The built-in name (`tickplane backtest --strategy NAME`).
    name: ClassVar[str] = ""
    #: The typed parameters (a msgspec Struct); instances get them as `self.params`.
    Params: ClassVar[type[msgspec.Struct]] = NoParams

    def __init__(
        self,
        params: msgspec.Struct | None = None,
        *,
        symbol: str,
        limits: StrategyLimits | None = None,
        bar_interval_ns: int = 0,
        tick: int = 1,
    ) -> None:
        self.params: Any = params if params is not None else self.Params()
        self.symbol = symbol
        #: The price increment of the market (ticks of the data: 100 for LOBSTER's
        #: 1/10,000 dollar prices of a one-cent market, 1 for an engine symbol).
        self.tick = tick
        self.limits = limits or StrategyLimits()
        self.ledger = Ledger()
        self.orders: dict[int, Order] = {}  # every order, by the strategy's id
        self.paused = False
        self.mark: float | None = None
        self.quote: Quote | None = None
        self._rt: Runtime = _DETACHED
        self._next_id = 1
        self._rate = RateWindow(self.limits.max_orders_per_sec)
        self._open_buy = 0
        self._open_sell = 0
        self._bars = BarBuilder(symbol, bar_interval_ns) if bar_interval_ns > 0 else None

    # -- callbacks (override what you need) ------------------------------------------------

    def on_start(self) -> None:
        """Before the first event."""

    def on_stop(self) -> None:
        """After the last event (a backtest's end, or a live runner stopping)."""

    def on_quote(self, quote: Quote) -> None:
        """The top of book changed."""

    def on_trade(self, trade: MarketTrade) -> None:
        """The market printed a trade (anyone's)."""

    def on_book(self, book: BookSnapshot) -> None:
        """The book changed (only called when overridden: building it costs time)."""

    def on_bar(self, bar: Bar) -> None:
        """A bar closed (CSV bars, or bars built from trades with `bar_interval_ns`)."""

    def on_accepted(self, order: Order) -> None:
        """An order reached the venue and is open."""

    def on_rejected(self, order: Order) -> None:
        """An order was refused (`order.reason` says why)."""

    def on_canceled(self, order: Order) -> None:
        """An order left the book unfilled (in part or whole)."""

    def on_fill(self, fill: Fill, order: Order) -> None:
        """An order (partly) executed."""

    def on_timer(self, ts: int) -> None:
        """The timer set with `set_timer` fired."""

    # -- actions -----------------------------------------------------------------------------

    def now(self) -> int:
        """The runtime's clock, ns."""
        return self._rt.now()

    def submit(
        self,
        side: Side,
        qty: int,
        price: int | None = None,
        *,
        tif: str = "gtc",
        post_only: bool = False,
    ) -> Order:
        """Send a limit order (`price` given) or a market order (no price).

        Returns the order; if the strategy's limits refuse it, its status is already
        "rejected" and `on_rejected` has been called."""
        order = Order(
            self._next_id,
            self.symbol,
            side,
            "market" if price is None else "limit",
            qty,
            price,
            tif,
            post_only,
            "pending",
            0,
            "",
            self._rt.now(),
        )
        self._next_id += 1
        self.orders[order.id] = order
        reason = self._check(side, qty)
        if reason:
            order.status = "rejected"
            order.reason = reason
            self.on_rejected(order)
            return order
        if side == "buy":
            self._open_buy += qty
        else:
            self._open_sell += qty
        self._rt.send_new(order)
        return order

    def cancel(self, order: Order | int) -> bool:
        """Ask to cancel a live order; False if it is not live."""
        o = self.orders.get(order if isinstance(order, int) else order.id)
        if o is None or not o.is_live:
            return False
        self._rt.send_cancel(o)
        return True

    def replace(
        self, order: Order | int, *, qty: int | None = None, price: int | None = None
    ) -> bool:
        """Ask to change a live limit order's open quantity and/or price. False if it
        is not live or the limits refuse it (counted like a new order)."""
        o = self.orders.get(order if isinstance(order, int) else order.id)
        if o is None or not o.is_live or o.order_type != "limit":
            return False
        if self.paused or not self._rate.allow(self._rt.now()):
            return False
        extra = (qty - o.remaining) if qty is not None else 0
        if extra > 0 and self._check_position(o.side, extra):
            return False
        self._rt.send_replace(o, qty, price)
        return True

    def cancel_all(self) -> int:
        """Cancel every live order; returns how many were asked."""
        n = 0
        for o in list(self.orders.values()):
            if o.is_live:
                self._rt.send_cancel(o)
                n += 1
        return n

    @property
    def position(self) -> int:
        """Signed position in lots (from this strategy's own fills)."""
        return self.ledger.position

    def pnl(self) -> dict[str, float]:
        """realized, unrealized (at the mark: mid, else last trade), fees, total."""
        unreal = self.ledger.unrealized(self.mark)
        return {
            "realized": float(self.ledger.realized),
            "unrealized": unreal,
            "fees": self.ledger.fees,
            "total": self.ledger.realized + unreal - self.ledger.fees,
        }

    def open_orders(self) -> list[Order]:
        """Live orders, oldest first."""
        return [o for o in self.orders.values() if o.is_live]

    def log(self, message: str) -> None:
        """A log line, tagged with the strategy and the runtime's clock."""
        self._rt.log(self.name or type(self).__name__, message)

    def set_timer(self, interval_ns: int) -> None:
        """Call `on_timer` every `interval_ns` (0 stops it)."""
        self._rt.set_timer(interval_ns)

    def build_bars(self, interval_ns: int) -> None:
        """Build bars of `interval_ns` from the market's trades and call `on_bar` with
        them (when the data has no bars of its own)."""
        self._bars = BarBuilder(self.symbol, interval_ns)

    def resume(self) -> None:
        """Take new orders again after a loss-limit pause."""
        self.paused = False

    # -- the runtime's side ------------------------------------------------------------------

    def attach(self, runtime: Runtime) -> None:
        """Bind to the runtime that will drive this strategy."""
        self._rt = runtime

    def _check_position(self, side: Side, qty: int) -> bool:
        cap = self.limits.max_position
        if cap <= 0:
            return False
        if side == "buy":
            return self.ledger.position + self._open_buy + qty > cap
        return -self.ledger.position + self._open_sell + qty > cap

    def _check(self, side: Side, qty: int) -> str:
        if self.paused:
            return "strategy_paused"
        if qty <= 0:
            return "bad_qty"
        if self.limits.max_position > 0 and self._check_position(side, qty):
            return "strategy_position_limit"
        if self._rate.limit > 0 and not self._rate.allow(self._rt.now()):
            return "strategy_order_rate"
        return ""

    def _release(self, order: Order, qty: int) -> None:
        if order.side == "buy":
            self._open_buy -= qty
        else:
            self._open_sell -= qty

    def _check_loss(self) -> None:
        cap = self.limits.max_loss
        if cap <= 0 or self.paused:
            return
        if self.ledger.total(self.mark) <= -cap:
            self.paused = True
            self.log(f"loss limit {cap} reached (pnl {self.ledger.total(self.mark):.0f}): paused")
            self.cancel_all()

    def _handle_start(self) -> None:
        self.on_start()

    def _handle_stop(self) -> None:
        if self._bars is not None:
            bar = self._bars.flush()
            if bar is not None:
                self.on_bar(bar)
        self.on_stop()

    def _handle_accepted(self, order_id: int) -> None:
        o = self.orders.get(order_id)
        if o is None or o.status != "pending":
            return
        o.status = "open"
        self.on_accepted(o)

    def _handle_rejected(self, order_id: int, reason: str) -> None:
        o = self._end(order_id, "rejected", reason)
        if o is not None:
            self.on_rejected(o)

    def _handle_canceled(self, order_id: int, reason: str = "canceled") -> None:
        o = self._end(order_id, "canceled", reason)
        if o is not None:
            self.on_canceled(o)

    def _end(self, order_id: int, status: OrderStatus, reason: str) -> Order | None:
        """Close a live order the venue ended without a fill (its reserved quantity
        released); None when it is unknown or already closed."""
        o = self.orders.get(order_id)
        if o is None or not o.is_live:
            return None
        self._release(o, o.remaining)
        o.status = status
        o.reason = reason
        return o

    def _handle_replaced(self, order_id: int, open_qty: int, price: int | None) -> None:
        """The venue changed an order: `open_qty` is its new open quantity."""
        o = self.orders.get(order_id)
        if o is None or not o.is_live:
            return
        self._release(o, o.remaining)
        o.qty = o.filled + open_qty
        if price is not None:
            o.price = price
        if o.side == "buy":
            self._open_buy += o.remaining
        else:
            self._open_sell += o.remaining

    def _handle_fill(self, fill: Fill) -> None:
        o = self.orders.get(fill.order_id)
        if o is None:
            return
        if o.status == "pending":
            o.status = "open"
        qty = min(fill.qty, o.qty - o.filled)
        o.filled += qty
        self._release(o, qty)
        if o.filled >= o.qty:
            o.status = "filled"
        self.ledger.fill(fill.side, fill.price, fill.qty, fill.fee)
        self.on_fill(fill, o)
        self._check_loss()

    def _handle_quote(self, quote: Quote) -> None:
        self.quote = quote
        mid = quote.mid
        if mid is not None:
            self.mark = mid
        self.on_quote(quote)
        self._check_loss()

    def _handle_trade(self, trade: MarketTrade) -> None:
        if self.quote is None or self.quote.mid is None:
            self.mark = float(trade.price)
        self.on_trade(trade)
        if self._bars is not None:
            bar = self._bars.trade(trade.ts, trade.price, trade.qty)
            if bar is not None:
                self.on_bar(bar)

    def _handle_bar(self, bar: Bar) -> None:
        self.mark = float(bar.close)
        self.on_bar(bar)
        self._check_loss()

    def _handle_book(self, book: BookSnapshot) -> None:
        self.on_book(book)

    def _handle_timer(self, ts: int) -> None:
        self.on_timer(ts)

    @property
    def wants_book(self) -> bool:
        """Does this strategy override `on_book` (else the runtime skips building it)?"""
        return type(self).on_book is not Strategy.on_book

    def result_order_counts(self) -> dict[str, int]:
        """How many orders ended in each status."""
        out: dict[str, int] = {}
        for o in self.orders.values():
            out[o.status] = out.get(o.status, 0) + 1
        return out
