"""The strategy runtime: one `Strategy` API for backtests and live trading.

See docs/strategies.md. Modules: `model` (what a strategy sees), `base` (the
`Strategy` class and the `Runtime` a runner implements), `params` (typed parameters),
`limits` (per-strategy risk), `ledger` (position and P&L), `bars`, the built-in
strategies (`sma_crossover`, `market_maker`, `twap`, by name in `registry`) and `live`
(the runner against an engine).
"""

from tickplane.engine.strategy.base import Runtime, Strategy
from tickplane.engine.strategy.limits import StrategyLimits
from tickplane.engine.strategy.model import Bar, BookSnapshot, Fill, MarketTrade, Order, Quote
from tickplane.engine.strategy.params import ParamsError

__all__ = [
    "Bar",
    "BookSnapshot",
    "Fill",
    "MarketTrade",
    "Order",
    "ParamsError",
    "Quote",
    "Runtime",
    "Strategy",
    "StrategyLimits",
]
