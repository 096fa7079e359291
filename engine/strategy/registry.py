"""The built-in strategies by name, and how to build one from configuration.

`--strategy` takes a built-in name or `package.module:ClassName`, a `Strategy`
subclass of your own importable by the runner (live, on the image's Python path).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.limits import StrategyLimits
from tickplane.engine.strategy.market_maker import MarketMaker
from tickplane.engine.strategy.params import ParamsError, load_params
from tickplane.engine.strategy.sma_crossover import SmaCrossover
from tickplane.engine.strategy.twap import Twap

__all__ = ["BUILTIN", "build", "load_class"]

BUILTIN: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCrossover, MarketMaker, Twap)}


def load_class(path: str) -> type[Strategy]:
    """A `Strategy` subclass named `package.module:ClassName` (ParamsError if not)."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParamsError(f"strategy {path!r}: cannot import {module_name!r} ({exc})") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ParamsError(f"strategy {path!r}: {attr!r} is not a Strategy subclass")
    return cls


def build(
    name: str,
    params: Mapping[str, Any] | None,
    *,
    symbol: str,
    tick: int = 1,
    limits: StrategyLimits | None = None,
) -> Strategy:
    """A built-in strategy with its typed params (ParamsError on a bad name or value)."""
    cls = BUILTIN.get(name) if ":" not in name else load_class(name)
    if cls is None:
        raise ParamsError(
            f"unknown strategy {name!r}; built-in: {', '.join(sorted(BUILTIN))}, "
            "or MODULE:CLASS for your own"
        )
    try:
        typed = load_params(cls.Params, params)
    except ValueError as exc:  # __post_init__ checks raise ValueError through msgspec
        raise ParamsError(str(exc)) from None
    return cls(typed, symbol=symbol, tick=tick, limits=limits)
