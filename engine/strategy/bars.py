"""Bars built from trades, the same way in backtests and live."""

from __future__ import annotations

from tickplane.engine.strategy.model import Bar

__all__ = ["BarBuilder"]


class BarBuilder:
    """Aggregates trades into fixed-interval OHLCV bars aligned on multiples of the
    interval. A bar is emitted when the first trade of a later interval arrives (or on
    `flush`); intervals with no trade make no bar."""

    def __init__(self, symbol: str, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError("the bar interval must be positive")
        self.symbol = symbol
        self.interval_ns = interval_ns
        self._start = -1
        self._o = self._h = self._l = self._c = 0
        self._v = 0

    def trade(self, ts: int, price: int, qty: int) -> Bar | None:
        """Add a trade; returns the bar it closed, if any."""
        start = ts - ts % self.interval_ns
        done = None
        if start != self._start:
            done = self.flush()
            self._start = start
            self._o = self._h = self._l = self._c = price
            self._v = qty
            return done
        self._h = max(self._h, price)
        self._l = min(self._l, price)
        self._c = price
        self._v += qty
        return None

    def flush(self) -> Bar | None:
        """The bar in progress, closed now (None if there is none)."""
        if self._start < 0:
            return None
        bar = Bar(self._start, self.symbol, self._o, self._h, self._l, self._c, self._v)
        self._start = -1
        return bar
