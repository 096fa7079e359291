"""The simulated venue of a LOBSTER backtest: the strategy's orders in the replayed book.

The replayed book is the exchange's own (the compiled `Book`, kept by the known-window
rule, so it still matches the orderbook file on every row); the strategy's orders sit
beside it with their place in the queue:

- An order reaches the venue `latency_ns` after it was sent (cancels and replaces too,
  in the order they were sent); reports come back at once.
- On arrival, a buy at or above the best ask (a sell at or below the best bid, or a
  market order) takes the visible liquidity level by level up to its limit, as a taker;
  what is left rests (`gtc`) or is canceled (`ioc`, market); a `fok` order that
  cannot fill whole is canceled (`fok`) without trading. A post-only order that would
  take is rejected (`post_only`).
- A resting order joins the back of its price level: `ahead` = the level's visible
  quantity at that moment. Later messages move it up: an execution at its price
  removes `ahead` first and fills the order only with what goes beyond; a cancel at its
  price counts only if the canceled order was there before ours (an order id the
  replay saw added later is behind us). An execution of an order that arrived after
  ours, an execution at a worse price, or a new opposite order at or through our price
  means the market reached us: the order fills (up to that message's size).
- Nothing the strategy does changes the replayed market (no market impact): its fills
  take no liquidity out of the book, as in most queue-position backtesters; but what
  its takers took from a level is not offered to them again until the history
  changes that level.
- Fees: `fee_bps` of the notional of every fill, maker or taker alike (negative for a
  rebate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tickplane.engine.backtest.fills import FillingVenue
from tickplane.engine.book import Book
from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Order

__all__ = ["SimulatedVenue"]

log = logging.getLogger("tickplane.backtest")

BUY, SELL = 0, 1
NEVER = 2**63 - 1


@dataclass(slots=True)
class _Resting:
    order: Order
    side: int
    price: int
    ahead: int
    arrival_idx: int
    arrival_ts: int
    ahead_at_entry: int
    first_fill_ts: int = -1


class SimulatedVenue(FillingVenue["_Resting"]):
    """Implements `Runtime` for one strategy over a replayed `Book` (module docstring)."""

    def __init__(
        self,
        strategy: Strategy,
        book: Book,
        *,
        latency_ns: int = 0,
        fee_bps: float = 0.0,
        logs: list[str] | None = None,
    ) -> None:
        super().__init__(strategy, latency_ns=latency_ns, fee_bps=fee_bps, logs=logs)
        self.book = book
        self.idx = 0  # the message being processed (arrival order against the feed)
        # Visible lots our takers took from a level (side, price) since the history
        # last changed it: the same displayed size is not taken twice.
        self.taken: dict[tuple[int, int], int] = {}
        self._watch: tuple[int, int, int, int, int, int, int, int] | None = None
        strategy.attach(self)

    # -- time ------------------------------------------------------------------------------------

    def advance(self, ts: int) -> None:
        """Run what is due up to `ts` (order arrivals and timers, in time order), then
        set the clock to `ts`."""
        pending = self.pending
        while True:
            t_arr = pending[0][0] if pending else -1
            t_tim = self.timer_next
            if t_arr >= 0 and t_arr <= ts and (t_tim < 0 or t_arr <= t_tim):
                self.clock = max(self.clock, t_arr)
                self._arrive(*pending.popleft()[1:])
            elif 0 <= t_tim <= ts:
                self.clock = max(self.clock, t_tim)
                self.timer_next = t_tim + self.timer_interval
                self.strategy._handle_timer(t_tim)
            else:
                break
        if ts > self.clock:
            self.clock = ts

    # -- orders arriving -----------------------------------------------------------------------

    def _arrive(self, kind: str, order: Order, qty: int | None, price: int | None) -> None:
        s = self.strategy
        if kind == "new":
            if not order.is_live:
                return
            self._enter(order)
        elif kind == "cancel":
            r = self.resting.pop(order.id, None)
            self._watch = None
            if r is not None:
                s._handle_canceled(order.id, "user")
        else:
            r = self.resting.get(order.id)
            if r is None:
                return
            new_price = price if price is not None else r.price
            open_qty = qty if qty is not None else order.remaining
            if open_qty <= 0:
                self.resting.pop(order.id)
                self._watch = None
                s._handle_canceled(order.id, "user")
                return
            if new_price == r.price and open_qty <= order.remaining:
                s._handle_replaced(order.id, open_qty, new_price)  # keeps its place
                return
            self.resting.pop(order.id)
            self._watch = None
            s._handle_replaced(order.id, open_qty, new_price)
            self._enter(order, accepted=True)

    def _enter(self, order: Order, accepted: bool = False) -> None:
        s = self.strategy
        side = BUY if order.side == "buy" else SELL
        book = self.book
        best = book.best_ask() if side == BUY else book.best_bid()
        crosses = best is not None and (
            order.price is None
            or (side == BUY and best[0] <= order.price)
            or (side == SELL and best[0] >= order.price)
        )
        if crosses and order.post_only:
            s._handle_rejected(order.id, "post_only")
            return
        if not accepted:
            s._handle_accepted(order.id)
        if crosses:
            opp = SELL if side == BUY else BUY
            taken = self.taken
            levels = [
                (price, qty - taken.get((opp, price), 0))
                for price, qty, _ in book.depth(1_000_000)["asks" if side == BUY else "bids"]
                if order.price is None
                or (price <= order.price if side == BUY else price >= order.price)
            ]
            if order.tif == "fok" and sum(q for _, q in levels if q > 0) < order.remaining:
                s._handle_canceled(order.id, "fok")  # all or nothing: nothing trades
                return
            for price, avail in levels:
                if order.remaining <= 0:
                    break
                q = min(avail, order.remaining)
                if q > 0:
                    taken[(opp, price)] = taken.get((opp, price), 0) + q
                    self._watch = None
                    self._fill(order, price, q, "taker")
        if order.remaining <= 0:
            return
        if order.price is None or order.tif in ("ioc", "fok"):
            s._handle_canceled(order.id, "ioc" if order.price is not None else "market")
            return
        own_best = book.best_bid() if side == BUY else book.best_ask()
        if own_best is None or (
            order.price > own_best[0] if side == BUY else order.price < own_best[0]
        ):
            ahead = 0  # a new best level: first in line
        elif order.price == own_best[0]:
            ahead = own_best[1]
        else:
            ahead = book.anonymous(side, order.price) + sum(
                q for _, q in book.level_orders(side, order.price)
            )
        self._watch = None
        self.resting[order.id] = _Resting(
            order, side, order.price, ahead, self.idx, self.clock, ahead
        )
        self.stats.rested += 1

    def _maker_fill(self, r: _Resting, qty: int) -> None:
        super()._maker_fill(r, qty)
        if r.order.remaining <= 0:
            self._watch = None  # it may have been the order watched

    # -- the feed ------------------------------------------------------------------------------

    def next_due(self) -> int:
        """When the next order arrives or the timer fires (NEVER: nothing due)."""
        t = self.pending[0][0] if self.pending else NEVER
        if 0 <= self.timer_next < t:
            t = self.timer_next
        return t

    def watch(self) -> tuple[int, int, int, int, int, int, int, int]:
        """The price ranges of our resting buys and sells, then of the bid and ask
        levels our takers took from (lo > hi: none): what the feed must not skip."""
        if self._watch is not None:
            return self._watch
        bl = al = tbl = tal = NEVER
        bh = ah = tbh = tah = -1
        for r in self.resting.values():
            if r.side == BUY:
                bl = min(bl, r.price)
                bh = max(bh, r.price)
            else:
                al = min(al, r.price)
                ah = max(ah, r.price)
        for side, price in self.taken:
            if side == BUY:
                tbl = min(tbl, price)
                tbh = max(tbh, price)
            else:
                tal = min(tal, price)
                tah = max(tah, price)
        self._watch = (bl, bh, al, ah, tbl, tbh, tal, tah)
        return self._watch

    def on_message(
        self, mtype: int, oid: int, size: int, price: int, side: int, added: int
    ) -> None:
        """Move our orders through one LOBSTER message (applied to the book already);
        `added` is the index of the message that added order `oid` (-1: none seen)."""
        if self.taken and self.taken.pop((side, price), None) is not None:
            # The history changed this level: its displayed size is the truth again.
            self._watch = None
        if not self.resting:
            return
        for r in list(self.resting.values()):
            if r.order.id not in self.resting:
                continue
            if mtype == 1:
                if side != r.side and (
                    (r.side == BUY and price <= r.price) or (r.side == SELL and price >= r.price)
                ):
                    self._maker_fill(r, size)
                continue
            if side != r.side:
                continue
            better = (price < r.price) if r.side == BUY else (price > r.price)
            if mtype == 4 or mtype == 5:
                if better:
                    # The aggressor went through our price to reach this one.
                    r.ahead = 0
                    self._maker_fill(r, size)
                elif price == r.price:
                    if mtype == 5 or added >= r.arrival_idx:
                        # Hidden orders and later arrivals trade after us.
                        r.ahead = 0
                        self._maker_fill(r, size)
                    else:
                        r.ahead -= size
                        if r.ahead < 0:
                            self._maker_fill(r, -r.ahead)
                            r.ahead = 0
            elif (mtype == 2 or mtype == 3) and price == r.price and added < r.arrival_idx:
                r.ahead = max(0, r.ahead - size)

    def finish(self) -> None:
        """Cancel what is still open (the data ended)."""
        for oid in list(self.resting):
            self.resting.pop(oid)
            self._watch = None
            self.strategy._handle_canceled(oid, "end_of_data")
        for _, kind, order, _, _ in self.pending:
            if kind == "new" and order.is_live:
                self.strategy._handle_canceled(order.id, "end_of_data")
        self.pending.clear()
