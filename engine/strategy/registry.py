"""The built-in strategies by name, and how to build one from configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.limits import StrategyLimits
from tickplane.engine.strategy.market_maker import MarketMaker
from tickplane.engine.strategy.params import ParamsError, load_params
from tickplane.engine.strategy.sma_crossover import SmaCrossover
from tickplane.engine.strategy.twap import Twap

__all__ = ["BUILTIN", "build"]

BUILTIN: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCrossover, MarketMaker, Twap)}


def build(
    name: str,
    params: Mapping[str, Any] | None,
    *,
    symbol: str,
    tick: int = 1,
    limits: StrategyLimits | None = None,
) -> Strategy:
    """A built-in strategy with its typed params (ParamsError on a bad name or value)."""
    cls = BUILTIN.get(name)
    if cls is None:
        raise ParamsError(f"unknown strategy {name!r}; built-in: {', '.join(sorted(BUILTIN))}")
    try:
        typed = load_params(cls.Params, params)
    except ValueError as exc:  # __post_init__ checks raise ValueError through msgspec
        raise ParamsError(str(exc)) from None
    return cls(typed, symbol=symbol, tick=tick, limits=limits)
