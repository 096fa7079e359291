"""Position and P&L of one strategy in one symbol, from its own fills.

Average-cost accounting in integer ticks x lots: a fill that reduces the position
realizes (price - average cost) on the reduced lots; fees are kept apart so that P&L
can be shown before and after them. The same ledger runs in backtests and live, so a
strategy's `position` and `pnl()` mean the same thing in both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Ledger"]


@dataclass(slots=True)
class Ledger:
    """Signed position, its cost, realized P&L and fees (see the module docstring)."""

    position: int = 0
    cost: int = 0  # ticks x lots paid for the open position, signed like the position
    realized: int = 0
    fees: float = 0.0
    traded_qty: int = 0
    traded_notional: int = 0  # ticks x lots, both sides

    def fill(self, side: str, price: int, qty: int, fee: float = 0.0) -> None:
        """Book one execution."""
        signed = qty if side == "buy" else -qty
        self.fees += fee
        self.traded_qty += qty
        self.traded_notional += price * qty
        pos = self.position
        if pos == 0 or (pos > 0) == (signed > 0):
            self.position = pos + signed
            self.cost += price * signed
            return
        closing = min(abs(signed), abs(pos))
        # The average cost of the lots closed, in exact integers: cost * closing / |pos|.
        closed_cost = (
            self.cost * closing // abs(pos) if pos > 0 else -((-self.cost) * closing // abs(pos))
        )
        sign = 1 if pos > 0 else -1
        self.realized += sign * (price * closing) - closed_cost
        self.cost -= closed_cost
        self.position = pos + signed
        if self.position == 0:
            self.cost = 0
        elif (self.position > 0) != (pos > 0):
            # Flipped through zero: the rest opens a new position at this price.
            self.cost = price * self.position

    def unrealized(self, mark: float | None) -> float:
        """P&L of the open position at `mark` (0 without a mark)."""
        if self.position == 0 or mark is None:
            return 0.0
        return mark * self.position - self.cost

    def total(self, mark: float | None) -> float:
        """Realized + unrealized - fees, in ticks x lots."""
        return self.realized + self.unrealized(mark) - self.fees
