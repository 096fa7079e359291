"""The values a strategy sees: market data, its own orders and fills.

The same types reach a strategy in a backtest and live (the runtimes build them from
LOBSTER messages, CSV bars or the engine's event stream), so strategy code cannot tell
the two apart except through the clock. Prices are integer ticks and quantities integer
lots, as everywhere in the engine; timestamps are integer nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Bar",
    "BookSnapshot",
    "Fill",
    "MarketTrade",
    "Order",
    "OrderStatus",
    "Quote",
    "Side",
]

Side = Literal["buy", "sell"]
OrderStatus = Literal["pending", "open", "filled", "canceled", "rejected"]


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book after a change. A missing side has price None and qty 0."""

    ts: int
    symbol: str
    bid: int | None
    bid_qty: int
    ask: int | None
    ask_qty: int

    @property
    def mid(self) -> float | None:
        """The mid price, when both sides are there."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """A trade printed by the market (anyone's), `side` being the aggressor's."""

    ts: int
    symbol: str
    price: int
    qty: int
    side: Side | None


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Aggregated levels (price, qty), best first on each side."""

    ts: int
    symbol: str
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Bar:
    """OHLCV over [ts, ts + interval): from CSV bars or built from trades."""

    ts: int
    symbol: str
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(slots=True)
class Order:
    """One of the strategy's own orders. `id` is the strategy's own number (1, 2, ...),
    the same in a backtest and live; the runtime maps it to the venue's."""

    id: int
    symbol: str
    side: Side
    order_type: Literal["limit", "market"]
    qty: int
    price: int | None
    tif: str = "gtc"
    post_only: bool = False
    status: OrderStatus = "pending"
    filled: int = 0
    reason: str = ""
    ts_submitted: int = 0
    venue_id: int | None = field(default=None, repr=False)

    @property
    def remaining(self) -> int:
        """Quantity still open (0 once filled, canceled or rejected)."""
        if self.status in ("filled", "canceled", "rejected"):
            return 0
        return self.qty - self.filled

    @property
    def is_live(self) -> bool:
        """Pending or open: it may still fill."""
        return self.status in ("pending", "open")


@dataclass(frozen=True, slots=True)
class Fill:
    """A (partial) execution of one of the strategy's orders."""

    ts: int
    order_id: int
    symbol: str
    side: Side
    price: int
    qty: int
    fee: float  # in price units x lots (ticks), like P&L
    liquidity: Literal["maker", "taker"]
