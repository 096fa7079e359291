"""Run a strategy over historical data: the loop of `tickplane backtest`.

LOBSTER: each message is applied to the compiled book by the same known-window replay
as `tickplane replay lobster` (so the book stays the exchange's, row for row), then
the simulated venue moves the strategy's orders through it (`venue.py`), then the
strategy gets the market data: `on_trade` for executions, `on_quote` when the top of
book changed, `on_book` (if overridden) after every message. Order arrivals and timers
that fall between two messages run first, in time order. Bars: `bars_venue.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from tickplane.engine.backtest.bars_venue import BarVenue
from tickplane.engine.backtest.data import BarData, LobsterData
from tickplane.engine.backtest.results import BacktestResult
from tickplane.engine.backtest.venue import SimulatedVenue
from tickplane.engine.book import Book
from tickplane.engine.lobster_replay import Columns
from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import BookSnapshot, MarketTrade, Quote

__all__ = ["run_backtest"]

Progress = Callable[[int], None]

SAMPLE_NS = 1_000_000_000  # equity curve: one point per second of data
PROGRESS_EVERY = 4096


def run_backtest(
    strategy: Strategy,
    data: LobsterData | BarData,
    *,
    latency_ns: int = 0,
    fee_bps: float = 0.0,
    on_progress: Progress | None = None,
) -> BacktestResult:
    """Run `strategy` over `data`; `on_progress(events_done)` now and then."""
    if isinstance(data, LobsterData):
        return _run_lobster(strategy, data, latency_ns, fee_bps, on_progress)
    return _run_bars(strategy, data, fee_bps, on_progress)


def _result(
    strategy: Strategy, data: LobsterData | BarData, latency_ns: int, fee_bps: float, **kw: Any
) -> BacktestResult:
    led = strategy.ledger
    unreal = led.unrealized(strategy.mark)
    return BacktestResult(
        strategy=strategy.name or type(strategy).__name__,
        params=msgspec.to_builtins(strategy.params),
        data=data.source,
        symbol=data.symbol,
        events=data.events,
        price_scale=data.price_scale,
        latency_us=latency_ns / 1000,
        fee_bps=fee_bps,
        orders=strategy.result_order_counts(),
        submitted_qty=sum(o.qty for o in strategy.orders.values() if o.status != "rejected"),
        position=led.position,
        realized=float(led.realized),
        unrealized=unreal,
        fees=led.fees,
        turnover=float(led.traded_notional),
        **kw,
    )


def _run_lobster(
    strategy: Strategy,
    data: LobsterData,
    latency_ns: int,
    fee_bps: float,
    on_progress: Progress | None,
) -> BacktestResult:
    day = data.day
    cols = Columns.of(day)
    ts_all = data.timestamps().tolist()
    types = cols.types.tolist()
    ids = cols.ids.tolist()
    sizes = cols.sizes.tolist()
    prices = cols.prices.tolist()
    dirs = cols.directions.tolist()
    n = len(day)
    book = Book()
    venue = SimulatedVenue(strategy, book, latency_ns=latency_ns, fee_bps=fee_bps)
    symbol = data.symbol
    want_book = strategy.wants_book
    levels = day.levels
    s_ts: list[int] = []
    s_eq: list[float] = []
    s_pos: list[int] = []
    s_mid: list[float] = []
    led = strategy.ledger

    if n:
        cols.replay(book, levels, False, 0, 1)  # seed from row 0
        venue.clock = ts_all[0]
    strategy._handle_start()
    last_top: tuple[Any, Any] = (None, None)
    next_sample = (ts_all[0] // SAMPLE_NS + 1) * SAMPLE_NS if n else 0
    replay = cols.replay
    on_message = venue.on_message
    for i in range(n):
        ts = ts_all[i]
        if ts >= next_sample:
            # The state as it was at the sample time (before this message).
            while next_sample <= ts:
                s_ts.append(next_sample)
                s_eq.append(led.total(strategy.mark))
                s_pos.append(led.position)
                s_mid.append(strategy.mark or 0.0)
                next_sample += SAMPLE_NS
        venue.idx = i
        venue.advance(ts)
        t = types[i]
        if i > 0:
            replay(book, levels, False, i, i + 1)
        side = 0 if dirs[i] == 1 else 1
        on_message(t, ids[i], sizes[i], prices[i], side)
        if t == 4 or t == 5:
            strategy._handle_trade(
                MarketTrade(ts, symbol, prices[i], sizes[i], "sell" if side == 0 else "buy")
            )
        top = (book.best_bid(), book.best_ask())
        if top != last_top:
            last_top = top
            bid, ask = top
            strategy._handle_quote(
                Quote(
                    ts,
                    symbol,
                    bid[0] if bid else None,
                    bid[1] if bid else 0,
                    ask[0] if ask else None,
                    ask[1] if ask else 0,
                )
            )
        if want_book:
            d = book.depth(levels)
            strategy._handle_book(
                BookSnapshot(
                    ts,
                    symbol,
                    tuple((p, q) for p, q, _ in d["bids"]),
                    tuple((p, q) for p, q, _ in d["asks"]),
                )
            )
        if on_progress is not None and i % PROGRESS_EVERY == 0:
            on_progress(i)
    strategy._handle_stop()
    venue.finish()
    s_ts.append(venue.clock)
    s_eq.append(led.total(strategy.mark))
    s_pos.append(led.position)
    s_mid.append(strategy.mark or 0.0)
    if on_progress is not None:
        on_progress(n)
    st = venue.stats
    return _result(
        strategy,
        data,
        latency_ns,
        fee_bps,
        fills=venue.fills,
        sample_ts=s_ts,
        sample_equity=s_eq,
        sample_position=s_pos,
        sample_mid=s_mid,
        sharpe_period_s=60.0,
        queue_ahead=list(st.ahead_at_entry or []),
        queue_waits_ns=list(st.waits_ns or []),
        maker_fills=st.maker_fills,
        taker_fills=st.taker_fills,
        logs=venue.logs,
    )


def _run_bars(
    strategy: Strategy, data: BarData, fee_bps: float, on_progress: Progress | None
) -> BacktestResult:
    venue = BarVenue(strategy, fee_bps=fee_bps)
    led = strategy.ledger
    s_ts: list[int] = []
    s_eq: list[float] = []
    s_pos: list[int] = []
    s_mid: list[float] = []
    if data.bars:
        venue.clock = data.bars[0].ts
    strategy._handle_start()
    for i, bar in enumerate(data.bars):
        venue.bar(bar)
        s_ts.append(bar.ts)
        s_eq.append(led.total(strategy.mark))
        s_pos.append(led.position)
        s_mid.append(float(bar.close))
        if on_progress is not None and i % PROGRESS_EVERY == 0:
            on_progress(i)
    strategy._handle_stop()
    venue.finish()
    if on_progress is not None:
        on_progress(len(data.bars))
    gaps = sorted(b.ts - a.ts for a, b in zip(data.bars, data.bars[1:], strict=False))
    period = gaps[len(gaps) // 2] / 1e9 if gaps else 86400.0
    return _result(
        strategy,
        data,
        0,
        fee_bps,
        fills=venue.fills,
        sample_ts=s_ts,
        sample_equity=s_eq,
        sample_position=s_pos,
        sample_mid=s_mid,
        sharpe_period_s=period,
        taker_fills=len(venue.fills),
        logs=venue.logs,
    )
