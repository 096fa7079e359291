"""What the latency-simulating backtest venues do the same way when the strategy's
orders fill: the `Fill` with its fee, the maker/taker counts, and the queue figures of
the orders that rested (how much was ahead of them, how long they waited)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from tickplane.engine.backtest.entry import DelayedEntry
from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Fill, Order

__all__ = ["FillingVenue", "QueueStats"]


@dataclass(slots=True)
class QueueStats:
    """Queue-position figures of the orders that rested (maker side)."""

    rested: int = 0
    maker_fills: int = 0
    taker_fills: int = 0
    ahead_at_entry: list[int] = field(default_factory=list)
    waits_ns: list[int] = field(default_factory=list)


class Resting(Protocol):
    """What a venue keeps of a resting order that its fills need."""

    @property
    def order(self) -> Order: ...
    @property
    def price(self) -> int: ...
    @property
    def arrival_ts(self) -> int: ...
    @property
    def ahead_at_entry(self) -> int | None: ...

    first_fill_ts: int


R = TypeVar("R", bound=Resting)


class FillingVenue(DelayedEntry, Generic[R]):
    """A `DelayedEntry` venue for one strategy that fills its orders: `resting` holds
    its resting orders by id (each venue's own record of their place in the queue)."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        latency_ns: int = 0,
        fee_bps: float = 0.0,
        logs: list[str] | None = None,
    ) -> None:
        super().__init__(latency_ns, logs)
        self.strategy = strategy
        self.fee_rate = fee_bps / 10_000.0  # of every fill's notional, maker or taker
        self.resting: dict[int, R] = {}
        self.fills: list[Fill] = []
        self.stats = QueueStats()

    def _fill(
        self, order: Order, price: int, qty: int, liquidity: Literal["maker", "taker"]
    ) -> None:
        """Fill `qty` of `order` at `price` now, and tell the strategy."""
        if qty <= 0:
            return
        fill = Fill(
            self.clock,
            order.id,
            order.symbol,
            order.side,
            price,
            qty,
            price * qty * self.fee_rate,
            liquidity,
        )
        self.fills.append(fill)
        if liquidity == "maker":
            self.stats.maker_fills += 1
        else:
            self.stats.taker_fills += 1
        self.strategy._handle_fill(fill)

    def _maker_fill(self, r: R, qty: int) -> None:
        """Fill up to `qty` of resting `r` at its price; a first fill records its queue
        figures, the last one takes it off `resting`."""
        qty = min(qty, r.order.remaining)
        if qty <= 0:
            return
        if r.first_fill_ts < 0:
            r.first_fill_ts = self.clock
            self.stats.ahead_at_entry.append(r.ahead_at_entry or 0)
            self.stats.waits_ns.append(self.clock - r.arrival_ts)
        self._fill(r.order, r.price, qty, "maker")
        if r.order.remaining <= 0:
            self.resting.pop(r.order.id, None)
