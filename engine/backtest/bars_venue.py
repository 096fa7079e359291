"""The simulated venue of a bar backtest, with backtrader's default fill assumption.

An order sent while bar i is handled (in `on_bar`) is looked at on bar i + 1: a market
order fills whole at that bar's open; a buy limit fills if the bar's low reaches the
limit, at the better of the open and the limit (a sell limit alike with the high);
an unfilled `gtc` limit waits for the next bars, an `ioc` one is canceled. There is no
queue and no latency at bar granularity; fees as in the LOBSTER venue.
"""

from __future__ import annotations

from typing import Literal

from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Bar, Fill, Order

__all__ = ["BarVenue"]


class BarVenue:
    """Implements `Runtime` for one strategy over bars (module docstring)."""

    def __init__(self, strategy: Strategy, *, fee_bps: float = 0.0) -> None:
        self.strategy = strategy
        self.fee_rate = fee_bps / 10_000.0
        self.clock = 0
        self.incoming: list[
            tuple[Literal["new", "cancel", "replace"], Order, int | None, int | None]
        ] = []
        self.working: dict[int, Order] = {}
        self.fills: list[Fill] = []
        self.timer_interval = 0
        self.timer_next = -1
        self.logs: list[str] = []
        strategy.attach(self)

    def now(self) -> int:
        return self.clock

    def send_new(self, order: Order) -> None:
        self.incoming.append(("new", order, None, None))

    def send_cancel(self, order: Order) -> None:
        self.incoming.append(("cancel", order, None, None))

    def send_replace(self, order: Order, qty: int | None, price: int | None) -> None:
        self.incoming.append(("replace", order, qty, price))

    def set_timer(self, interval_ns: int) -> None:
        self.timer_interval = max(0, interval_ns)
        self.timer_next = self.clock + interval_ns if interval_ns > 0 else -1

    def log(self, strategy: str, message: str) -> None:
        self.logs.append(f"{self.clock} {strategy}: {message}")

    def bar(self, bar: Bar) -> None:
        """Execute against `bar` what was sent before it, then hand it to the strategy."""
        s = self.strategy
        while 0 <= self.timer_next <= bar.ts:
            self.clock = self.timer_next
            self.timer_next += self.timer_interval
            s._handle_timer(self.clock)
        self.clock = bar.ts
        incoming, self.incoming = self.incoming, []
        for kind, order, qty, price in incoming:
            if kind == "new" and order.is_live:
                s._handle_accepted(order.id)
                self.working[order.id] = order
            elif kind == "cancel" and self.working.pop(order.id, None) is not None:
                s._handle_canceled(order.id, "user")
            elif kind == "replace" and order.id in self.working:
                s._handle_replaced(order.id, qty if qty is not None else order.remaining, price)
        for oid, order in list(self.working.items()):
            price_ = self._execution_price(order, bar)
            if price_ is not None:
                qty = order.remaining
                fill = Fill(
                    bar.ts,
                    oid,
                    order.symbol,
                    order.side,
                    price_,
                    qty,
                    price_ * qty * self.fee_rate,
                    "taker",
                )
                self.fills.append(fill)
                del self.working[oid]
                s._handle_fill(fill)
            elif order.tif in ("ioc", "fok"):
                del self.working[oid]
                s._handle_canceled(oid, order.tif)
        s._handle_bar(bar)

    @staticmethod
    def _execution_price(order: Order, bar: Bar) -> int | None:
        if order.price is None:
            return bar.open
        if order.side == "buy" and bar.low <= order.price:
            return min(bar.open, order.price)
        if order.side == "sell" and bar.high >= order.price:
            return max(bar.open, order.price)
        return None

    def finish(self) -> None:
        for oid in list(self.working):
            del self.working[oid]
            self.strategy._handle_canceled(oid, "end_of_data")
        for kind, order, _, _ in self.incoming:
            if kind == "new" and order.is_live:
                self.strategy._handle_canceled(order.id, "end_of_data")
        self.incoming.clear()
