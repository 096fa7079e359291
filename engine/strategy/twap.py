"""TWAP execution: a parent order sliced evenly over time, with a limit-price guard.

Every `duration_s / slices` seconds the strategy cancels what is left of the previous
child order and sends a new one for what the schedule says should be done by now
(`total_qty * k / slices` minus what has filled), as a limit order at the touch (the
best ask to buy, the best bid to sell) and never beyond `limit_price` (0: no guard).
Child orders are immediate-or-cancel when `ioc` is set, else they rest until the next
slice. What a guarded slice could not do rolls into the next one; the last slice ends
the schedule.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Order, Quote

__all__ = ["Twap"]


class TwapParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    side: Literal["buy", "sell"] = "buy"
    total_qty: int = 1000
    duration_s: float = 600.0
    slices: int = 10
    limit_price: int = 0
    ioc: bool = False

    def __post_init__(self) -> None:
        if self.total_qty <= 0 or self.slices <= 0 or self.duration_s <= 0:
            raise ValueError("total_qty, slices and duration_s must be positive")


class Twap(Strategy):
    """See the module docstring."""

    name = "twap"
    Params = TwapParams
    params: TwapParams

    def on_start(self) -> None:
        self.slice = 0
        self.done = 0
        self.child: Order | None = None
        self.started = False

    @property
    def filled(self) -> int:
        return sum(o.filled for o in self.orders.values())

    def _begin(self) -> None:
        self.started = True
        self.set_timer(int(self.params.duration_s * 1e9 / self.params.slices))
        self._slice()

    def on_quote(self, quote: Quote) -> None:
        # The schedule starts with the first quote that has the side it would take.
        touch = quote.ask if self.params.side == "buy" else quote.bid
        if not self.started and touch is not None:
            self._begin()

    def on_timer(self, ts: int) -> None:
        self._slice()

    def _slice(self) -> None:
        p = self.params
        if self.slice >= p.slices:
            return
        self.slice += 1
        if self.child is not None and self.child.is_live:
            self.cancel(self.child)
        target = p.total_qty * self.slice // p.slices
        # Count what is filled or may still fill, so a canceled remainder is not doubled.
        committed = self.filled
        want = target - committed
        if self.slice == p.slices:
            self.set_timer(0)
        if want <= 0 or self.quote is None:
            return
        touch = self.quote.ask if p.side == "buy" else self.quote.bid
        if touch is None:
            return
        price = touch
        if p.limit_price > 0:
            price = min(price, p.limit_price) if p.side == "buy" else max(price, p.limit_price)
        self.child = self.submit(p.side, want, price, tif="ioc" if p.ioc else "gtc")
