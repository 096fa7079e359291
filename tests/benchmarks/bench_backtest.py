"""`tickplane bench backtest`: a full GOOG-day backtest, Tickplane vs nautilus_trader.

Tickplane: the market maker (`market_maker`, default params, 100 µs order-entry latency,
0.1 bps fees) over the level-10 GOOG day (147,916 LOBSTER messages): each message
through the compiled book (known-window replay), the simulated venue's queue tracking
and the strategy's callbacks (`on_trade`, `on_quote`, its orders). Also the same day
with a strategy that does nothing (the runtime's own cost).

Peer: nautilus_trader's `BacktestEngine` over the same day as L3 order-book deltas
(`tests/benchmarks/stream.py` makes the explicit L3 operations the replay performs,
checked against every orderbook row; `nautilus_peer.build` turns them into
`OrderBookDelta`s), an `L3_MBO` venue book and a strategy subscribed to the deltas
that does nothing in its callback. Its setup (instrument, venue, data sorting) is not
timed; `engine.run()` is.

`events_per_sec` is each system's own events (LOBSTER messages for Tickplane, deltas
for nautilus) per second; `day_seconds` compares the same day, so the ratio
`vs_nautilus` is on the day (nautilus seconds / Tickplane seconds). Medians of
`repeats` runs after a warm-up. CPU seconds (`time.process_time`, all threads) are
reported beside wall time: on a shared machine they are the steadier figure.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

try:
    from tests.benchmarks import nautilus_peer
    from tests.benchmarks import stream as replay_stream
    from tests.benchmarks.measure import median, quiet_gc
except ModuleNotFoundError:  # run as a script: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.benchmarks import nautilus_peer
    from tests.benchmarks import stream as replay_stream
    from tests.benchmarks.measure import median, quiet_gc
from tickplane.engine.backtest import LobsterData, run_backtest
from tickplane.engine.lobster import load, sample_paths
from tickplane.engine.strategy import Strategy
from tickplane.engine.strategy.registry import build

LATENCY_NS = 100_000
FEE_BPS = 0.1


class _Idle(Strategy):
    name = "idle"


def _tickplane(
    data: LobsterData, strategy: str, repeats: int
) -> tuple[list[float], list[float], dict[str, Any]]:
    samples: list[float] = []
    cpu: list[float] = []
    summary: dict[str, Any] = {}
    for k in range(repeats + 1):
        s = (
            build(strategy, {}, symbol=data.symbol, tick=data.tick)
            if strategy
            else _Idle(symbol=data.symbol)
        )
        with quiet_gc():
            c0, t0 = time.process_time(), time.perf_counter()
            r = run_backtest(s, data, latency_ns=LATENCY_NS, fee_bps=FEE_BPS)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if k:  # the first run warms up
            samples.append(dt)
            cpu.append(dc)
        summary = r.summary()
    return samples, cpu, summary


def _nautilus(data: LobsterData, repeats: int, console: Console) -> dict[str, Any]:
    try:
        from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
        from nautilus_trader.config import LoggingConfig
        from nautilus_trader.model.currencies import USD
        from nautilus_trader.model.enums import AccountType, BookType, OmsType
        from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
        from nautilus_trader.model.instruments import Equity
        from nautilus_trader.model.objects import Money, Price, Quantity
        from nautilus_trader.trading.strategy import Strategy as NtStrategy
    except ImportError as exc:
        return {"skipped": f"nautilus_trader is not installed ({exc}); make bench installs it"}
    from importlib import metadata

    console.print("nautilus_trader: building the L3 delta stream (not timed)")
    st = replay_stream.build(data.day)
    ts_ops = data.timestamps()[st.rows]  # each operation at its message's time
    deltas = nautilus_peer.build(st, ts_ops).deltas

    class Noop(NtStrategy):  # type: ignore[misc]
        def __init__(self, iid: Any) -> None:
            super().__init__()
            self.iid = iid
            self.seen = 0

        def on_start(self) -> None:
            self.subscribe_order_book_deltas(self.iid, book_type=BookType.L3_MBO)

        def on_order_book_deltas(self, deltas: Any) -> None:
            self.seen += 1

    samples: list[float] = []
    cpu: list[float] = []
    seen = 0
    for k in range(repeats + 1):
        engine = BacktestEngine(
            BacktestEngineConfig(
                trader_id=TraderId("BENCH-001"), logging=LoggingConfig(bypass_logging=True)
            )
        )
        engine.add_venue(
            venue=Venue("XNAS"),
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            base_currency=USD,
            starting_balances=[Money(10_000_000, USD)],
            book_type=BookType.L3_MBO,
        )
        iid = InstrumentId(Symbol("GOOG"), Venue("XNAS"))
        engine.add_instrument(
            Equity(
                instrument_id=iid,
                raw_symbol=Symbol("GOOG"),
                currency=USD,
                price_precision=nautilus_peer.PRICE_PRECISION,
                price_increment=Price.from_str("0.0001"),
                lot_size=Quantity.from_int(1),
                ts_event=0,
                ts_init=0,
            )
        )
        engine.add_data(list(deltas))
        strat = Noop(iid)
        engine.add_strategy(strat)
        with quiet_gc():
            c0, t0 = time.process_time(), time.perf_counter()
            engine.run()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
        seen = strat.seen
        engine.dispose()
        if k:
            samples.append(dt)
            cpu.append(dc)
    day = median(samples)
    return {
        "version": metadata.version("nautilus_trader"),
        "events": len(deltas),
        "callbacks": seen,
        "day_seconds": round(day, 4),
        "events_per_sec": round(len(deltas) / day),
        "day_cpu_seconds": round(median(cpu), 4),
        "samples": [round(x, 4) for x in samples],
    }


def run(json_out: bool = True, repeats: int = 3) -> dict[str, Any]:
    """Run the benchmark; one JSON-ready dict (progress on stderr)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    console = Console(stderr=True)
    path = sample_paths()[10]
    started = time.perf_counter()
    console.print(f"loading {path.name}")
    day = load(zip_path=path)
    data = LobsterData(day, "GOOG", str(path))
    n = len(day)
    console.print(f"tickplane: market maker over {n:,} messages x {repeats + 1}")
    mm, mm_cpu, mm_summary = _tickplane(data, "market_maker", repeats)
    console.print("tickplane: idle strategy")
    idle, idle_cpu, _ = _tickplane(data, "", repeats)
    peer = _nautilus(data, repeats, console)
    mm_day = median(mm)
    idle_day = median(idle)
    result: dict[str, Any] = {
        "events": n,
        "events_per_sec": round(n / mm_day),
        "day_seconds": round(mm_day, 4),
        "day_cpu_seconds": round(median(mm_cpu), 4),
        "idle_events_per_sec": round(n / idle_day),
        "idle_day_seconds": round(idle_day, 4),
        "idle_day_cpu_seconds": round(median(idle_cpu), 4),
        "nautilus": peer,
        "vs_nautilus": round(peer["day_seconds"] / mm_day, 2) if "day_seconds" in peer else None,
        "idle_vs_nautilus": (
            round(peer["day_seconds"] / idle_day, 2) if "day_seconds" in peer else None
        ),
        "cpu_vs_nautilus": (
            round(peer["day_cpu_seconds"] / median(mm_cpu), 2) if "day_seconds" in peer else None
        ),
        "idle_cpu_vs_nautilus": (
            round(peer["day_cpu_seconds"] / median(idle_cpu), 2) if "day_seconds" in peer else None
        ),
        "market_maker": {
            k: mm_summary[k] for k in ("trades", "pnl", "fill_ratio", "orders", "queue")
        },
        "samples": [round(x, 4) for x in mm],
        "data": path.name,
        "full_day": n > 100_000,
        "repeats": repeats,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not json_out:
        console.print(result)
    return result
