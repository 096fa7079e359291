"""A market maker in the style of Avellaneda and Stoikov (2008), with inventory skew.

Around the mid price s, with inventory q (in units of `qty`), volatility sigma (ticks
per sqrt(second), estimated online from mid changes unless given), risk aversion gamma,
order-arrival decay kappa and a horizon of T seconds (a rolling one: the stationary
form of the model, since a trading day has no natural end for a continuous quoter):

    reservation price  r = s - q * gamma * sigma^2 * T
    half spread        d = gamma * sigma^2 * T / 2 + ln(1 + gamma / kappa) / gamma

It quotes one bid at r - d and one ask at r + d (in ticks of the market, never crossing
the opposite best, at least `min_half_spread` ticks from the mid), each of `qty` lots;
it requotes a side only when its price moves by `requote_ticks` or more (so resting
orders keep their queue position), and stops quoting the side that would take |q|
beyond `max_inventory` lots.
"""

from __future__ import annotations

import math

import msgspec

from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Fill, Order, Quote

__all__ = ["MarketMaker"]


class MarketMakerParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    qty: int = 100
    gamma: float = 0.1
    kappa: float = 1.5
    horizon_s: float = 60.0
    sigma: float = 0.0  # ticks per sqrt(s); 0: estimate from the mid
    max_inventory: int = 1000
    requote_ticks: int = 1
    min_half_spread: float = 1.0

    def __post_init__(self) -> None:
        if self.qty <= 0 or self.gamma <= 0 or self.kappa <= 0 or self.horizon_s <= 0:
            raise ValueError("qty, gamma, kappa and horizon_s must be positive")


class MarketMaker(Strategy):
    """See the module docstring."""

    name = "market_maker"
    Params = MarketMakerParams
    params: MarketMakerParams

    def on_start(self) -> None:
        self.bid_order: Order | None = None
        self.ask_order: Order | None = None
        self._var = 0.0  # EWMA of squared mid changes per second, ticks^2 / s
        self._last_mid: float | None = None
        self._last_ts = 0
        self.requotes = 0

    def _sigma2(self, mid: float, ts: int) -> float:
        if self.params.sigma > 0:
            return self.params.sigma**2
        if self._last_mid is not None and ts > self._last_ts:
            dt = (ts - self._last_ts) / 1e9
            move = (mid - self._last_mid) / self.tick
            # Exponential weighting with a one-minute memory, per unit of time.
            w = min(1.0, dt / 60.0)
            self._var += w * (move * move / dt - self._var) if dt > 0 else 0.0
        self._last_mid, self._last_ts = mid, ts
        return max(self._var, 1e-4)

    def on_quote(self, quote: Quote) -> None:
        mid = quote.mid
        if mid is None or self.paused:
            return
        p = self.params
        s2 = self._sigma2(mid, quote.ts)
        q = self.position / p.qty
        t = p.horizon_s
        reservation = mid / self.tick - q * p.gamma * s2 * t
        half = p.gamma * s2 * t / 2 + math.log(1 + p.gamma / p.kappa) / p.gamma
        half = max(half, p.min_half_spread)
        bid = math.floor(reservation - half) * self.tick
        ask = math.ceil(reservation + half) * self.tick
        assert quote.bid is not None and quote.ask is not None
        bid = min(bid, quote.ask - self.tick)
        ask = max(ask, quote.bid + self.tick)
        self.bid_order = self._quote_side(
            "buy", bid, self.bid_order, self.position + p.qty <= p.max_inventory
        )
        self.ask_order = self._quote_side(
            "sell", ask, self.ask_order, self.position - p.qty >= -p.max_inventory
        )

    def _quote_side(
        self, side: str, price: int, order: Order | None, allowed: bool
    ) -> Order | None:
        live = order is not None and order.is_live
        if not allowed:
            if live:
                assert order is not None
                self.cancel(order)
            return order
        if live:
            assert order is not None
            if (
                order.price is not None
                and abs(order.price - price) < self.params.requote_ticks * self.tick
            ):
                return order
            if order.status == "pending":
                return order  # not at the venue yet: wait for it before moving it
            self.requotes += 1
            self.cancel(order)
        new = self.submit("buy" if side == "buy" else "sell", self.params.qty, price)
        return new if new.is_live else None

    def on_fill(self, fill: Fill, order: Order) -> None:
        # Inventory changed: the next quote recomputes both sides with the new skew.
        if self.quote is not None and order.status == "filled":
            self.on_quote(self.quote)
