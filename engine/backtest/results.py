"""A backtest's results: trades, equity curve, P&L, Sharpe, drawdown, turnover, fill
ratio, queue-position statistics; `summary()` is the JSON of `tickplane backtest`.

Everything is computed from integers (ticks x lots) and the data's own clock, and
rounded in one place, so the same inputs give the same bytes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import median
from typing import Any

from tickplane.engine.strategy.model import Fill

__all__ = ["BacktestResult", "sharpe_ratio"]

_DAY_S = 6.5 * 3600  # a US equity session
_YEAR_DAYS = 252


def sharpe_ratio(equity: list[float], period_s: float) -> float:
    """Annualized Sharpe ratio of the equity changes between samples `period_s` apart
    (no risk-free rate: P&L over constant capital, so the capital cancels out).
    Intraday periods annualize with 6.5-hour days; longer ones count a day each."""
    diffs = [b - a for a, b in pairwise(equity)]
    if len(diffs) < 2:
        return 0.0
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    if var <= 0:
        return 0.0
    per_year = _YEAR_DAYS * (_DAY_S / period_s if period_s < _DAY_S else 1.0)
    return mean / math.sqrt(var) * math.sqrt(per_year)


def max_drawdown(equity: list[float]) -> float:
    """The largest fall from a running peak (>= 0)."""
    peak = -math.inf
    worst = 0.0
    for e in equity:
        peak = max(peak, e)
        worst = max(worst, peak - e)
    return worst


def _r(x: float, nd: int = 6) -> float:
    v = round(x, nd)
    return 0.0 if v == 0 else v  # no "-0.0"


@dataclass
class BacktestResult:
    """Everything `tickplane backtest` reports (see the module docstring)."""

    strategy: str
    params: dict[str, Any]
    data: str
    symbol: str
    events: int
    price_scale: float
    latency_us: float
    fee_bps: float
    fills: list[Fill]
    orders: dict[str, int]
    submitted_qty: int
    position: int
    realized: float
    unrealized: float
    fees: float
    turnover: float  # ticks x lots
    sample_ts: list[int] = field(default_factory=list)
    sample_equity: list[float] = field(default_factory=list)
    sample_position: list[int] = field(default_factory=list)
    sample_mid: list[float] = field(default_factory=list)
    sharpe_period_s: float = 60.0
    queue_ahead: list[int] = field(default_factory=list)
    queue_waits_ns: list[int] = field(default_factory=list)
    maker_fills: int = 0
    taker_fills: int = 0
    logs: list[str] = field(default_factory=list)

    @property
    def pnl(self) -> float:
        return self.realized + self.unrealized - self.fees

    def equity_curve(self) -> list[float]:
        """Equity (P&L) in currency at each sample."""
        return [e * self.price_scale for e in self.sample_equity]

    def sharpe(self) -> float:
        step = max(1, round(self.sharpe_period_s / self._sample_period_s()))
        eq = self.sample_equity[::step]
        if self.sample_equity and (len(self.sample_equity) - 1) % step:
            eq.append(self.sample_equity[-1])
        return sharpe_ratio(eq, self.sharpe_period_s)

    def _sample_period_s(self) -> float:
        if len(self.sample_ts) < 2:
            return self.sharpe_period_s
        gaps = sorted(b - a for a, b in pairwise(self.sample_ts))
        return max(gaps[len(gaps) // 2] / 1e9, 1e-9)

    def summary(self) -> dict[str, Any]:
        """One JSON-ready object (deterministic: no wall-clock figures)."""
        sc = self.price_scale
        filled = sum(f.qty for f in self.fills)
        waits = [w / 1e9 for w in self.queue_waits_ns]
        return {
            "strategy": self.strategy,
            "params": self.params,
            "data": self.data,
            "symbol": self.symbol,
            "events": self.events,
            "latency_us": self.latency_us,
            "fee_bps": self.fee_bps,
            "trades": len(self.fills),
            "filled_qty": filled,
            "orders": dict(sorted(self.orders.items())),
            "pnl": _r(self.pnl * sc),
            "realized_pnl": _r(self.realized * sc),
            "unrealized_pnl": _r(self.unrealized * sc),
            "fees": _r(self.fees * sc),
            "position": self.position,
            "sharpe": _r(self.sharpe(), 4),
            "max_drawdown": _r(max_drawdown(self.sample_equity) * sc),
            "turnover": _r(self.turnover * sc),
            "fill_ratio": _r(filled / self.submitted_qty if self.submitted_qty else 0.0),
            "queue": {
                "maker_fills": self.maker_fills,
                "taker_fills": self.taker_fills,
                "orders_filled_from_queue": len(self.queue_ahead),
                "ahead_at_entry_mean": _r(
                    sum(self.queue_ahead) / len(self.queue_ahead) if self.queue_ahead else 0.0, 2
                ),
                "ahead_at_entry_median": _r(
                    median(self.queue_ahead) if self.queue_ahead else 0.0, 2
                ),
                "wait_to_first_fill_median_s": _r(median(waits) if waits else 0.0),
            },
        }
