"""The terminal's pages, one module each; `PAGES` maps their titles to their renderers."""

from __future__ import annotations

from collections.abc import Callable

from tickplane.ui.views import executions, monitoring, orders, positions, strategies, trade

__all__ = ["PAGES"]

PAGES: dict[str, Callable[[], None]] = {
    "Trade": trade.render,
    "Orders": orders.render,
    "Executions": executions.render,
    "Positions": positions.render,
    "Strategies": strategies.render,
    "Monitoring": monitoring.render,
}
