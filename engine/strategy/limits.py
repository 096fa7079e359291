"""Per-strategy risk limits, checked before an order leaves the strategy.

These sit in front of the engine's own pre-trade risk (docs/risk.md): they are the
strategy author's (or the `Strategy` resource's) limits, and a breach of the loss limit
pauses the strategy rather than failing an order.
"""

from __future__ import annotations

from collections import deque

import msgspec

__all__ = ["RateWindow", "StrategyLimits"]


class StrategyLimits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Limits of one strategy; 0 disables a limit.

    - `max_position`: |position + every open order on the side| may not exceed it;
    - `max_orders_per_sec`: new orders and replaces in any one-second window (by the
      strategy's clock, so a backtest counts data time);
    - `max_loss`: when P&L (realized + unrealized - fees, ticks x lots) falls to
      -max_loss, the strategy cancels its orders and pauses itself.
    """

    max_position: int = 0
    max_orders_per_sec: int = 0
    max_loss: int = 0


class RateWindow:
    """Counts events in a sliding one-second window."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[int] = deque()

    def allow(self, now_ns: int) -> bool:
        """Record one event at `now_ns` unless the window is full."""
        if self.limit <= 0:
            return True
        t = self._times
        while t and t[0] <= now_ns - 1_000_000_000:
            t.popleft()
        if len(t) >= self.limit:
            return False
        t.append(now_ns)
        return True
