"""Backtests: a strategy over historical data through the compiled book.

See docs/strategies.md. Modules: `data` (LOBSTER days, CSV bars), `recorded` (the recorder's
PostgreSQL tables and their top-of-book venue), `venue` (the
simulated venue: queue position, latency, fees), `bars_venue` (bar fills as
backtrader makes them), `runner` (the loop), `results` (metrics), `report` (PNG plots
and an HTML summary).
"""

from tickplane.engine.backtest.data import (
    BarData,
    DataError,
    LobsterData,
    RecordedData,
    open_data,
)
from tickplane.engine.backtest.results import BacktestResult
from tickplane.engine.backtest.runner import run_backtest

__all__ = [
    "BacktestResult",
    "BarData",
    "DataError",
    "LobsterData",
    "RecordedData",
    "open_data",
    "run_backtest",
]
