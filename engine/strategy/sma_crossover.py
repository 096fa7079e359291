"""Moving-average crossover (the prototype's example strategy), on bars.

Long only: when the fast simple moving average of closes crosses above the slow one,
buy `qty` at market (if flat); when it crosses below, sell the whole position at
market. A cross is judged as backtrader's `CrossOver` does: the last non-zero
difference fast - slow changed sign. The averages are compared exactly in integers
(sum_fast * slow vs sum_slow * fast), so a tie never depends on float rounding.
With data that has no bars (LOBSTER, a live engine), bars of `bar_seconds` are built
from the market's trades.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import msgspec

from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import Bar

__all__ = ["SmaCrossover"]


class SmaCrossoverParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    fast: int = 10
    slow: int = 30
    qty: int = 100
    bar_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError("need 0 < fast < slow")
        if self.qty <= 0 or self.bar_seconds <= 0:
            raise ValueError("qty and bar_seconds must be positive")


class SmaCrossover(Strategy):
    """See the module docstring."""

    name = "sma_crossover"
    Params = SmaCrossoverParams
    params: SmaCrossoverParams

    def on_start(self) -> None:
        self.closes: deque[int] = deque(maxlen=self.params.slow)
        self.nzd = 0  # the last non-zero sign of fast - slow (0: none yet)
        self.signals: list[tuple[int, Literal["buy", "sell"]]] = []
        self.build_bars(int(self.params.bar_seconds * 1e9))

    def on_bar(self, bar: Bar) -> None:
        p = self.params
        self.closes.append(bar.close)
        if len(self.closes) < p.slow:
            return
        slow_sum = sum(self.closes)
        fast_sum = sum(list(self.closes)[-p.fast :])
        diff = fast_sum * p.slow - slow_sum * p.fast
        sign = (diff > 0) - (diff < 0)
        prev = self.nzd
        if sign != 0:
            self.nzd = sign
        if prev < 0 < sign and self.position <= 0:
            self.signals.append((bar.ts, "buy"))
            self.submit("buy", p.qty)
        elif prev > 0 > sign and self.position > 0:
            self.signals.append((bar.ts, "sell"))
            self.submit("sell", self.position)
