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
import numpy as np
import numpy.typing as npt

from tickplane.engine.backtest.bars_venue import BarVenue
from tickplane.engine.backtest.data import BarData, LobsterData
from tickplane.engine.backtest.recorded import RecordedData, TopVenue
from tickplane.engine.backtest.results import BacktestResult
from tickplane.engine.backtest.venue import SimulatedVenue
from tickplane.engine.book import Book
from tickplane.engine.lobster_replay import Columns
from tickplane.engine.replay import Stepper
from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import BookSnapshot, MarketTrade, Quote

__all__ = ["add_index", "run_backtest"]

Progress = Callable[[int], None]

SAMPLE_NS = 1_000_000_000  # equity curve: one point per second of data
PROGRESS_EVERY = 4096


def run_backtest(
    strategy: Strategy,
    data: LobsterData | BarData | RecordedData,
    *,
    latency_ns: int = 0,
    fee_bps: float = 0.0,
    on_progress: Progress | None = None,
) -> BacktestResult:
    """Run `strategy` over `data`; `on_progress(events_done)` now and then."""
    if isinstance(data, LobsterData):
        return _run_lobster(strategy, data, latency_ns, fee_bps, on_progress)
    if isinstance(data, RecordedData):
        return _run_recorded(strategy, data, latency_ns, fee_bps, on_progress)
    return _run_bars(strategy, data, fee_bps, on_progress)


class _Samples:
    """The equity curve as the backtest runs: time, equity, position and mark."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.ts: list[int] = []
        self.equity: list[float] = []
        self.position: list[int] = []
        self.mid: list[float] = []

    def take(self, ts: int, mid: float | None = None) -> None:
        """One point at `ts`: the strategy's state now (its mark, unless `mid` is given)."""
        s = self.strategy
        self.ts.append(ts)
        self.equity.append(s.ledger.total(s.mark))
        self.position.append(s.ledger.position)
        self.mid.append(mid if mid is not None else s.mark or 0.0)

    def until(self, next_sample: int, ts: int) -> int:
        """A point every SAMPLE_NS from `next_sample` up to `ts`; the next sample time."""
        while next_sample <= ts:
            self.take(next_sample)
            next_sample += SAMPLE_NS
        return next_sample

    def fields(self) -> dict[str, Any]:
        return {
            "sample_ts": self.ts,
            "sample_equity": self.equity,
            "sample_position": self.position,
            "sample_mid": self.mid,
        }


def _result(
    strategy: Strategy,
    data: LobsterData | BarData | RecordedData,
    latency_ns: int,
    fee_bps: float,
    **kw: Any,
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


def _queue_result(
    strategy: Strategy,
    data: LobsterData | RecordedData,
    venue: SimulatedVenue | TopVenue,
    samples: _Samples,
    latency_ns: int,
    fee_bps: float,
    on_progress: Progress | None,
    done: int,
) -> BacktestResult:
    """End a run on a venue with queues (a book, a recorded top): stop the strategy,
    settle the venue, take the last sample; the result with the venue's queue figures."""
    strategy._handle_stop()
    venue.finish()
    samples.take(venue.clock)
    if on_progress is not None:
        on_progress(done)
    st = venue.stats
    return _result(
        strategy,
        data,
        latency_ns,
        fee_bps,
        fills=venue.fills,
        **samples.fields(),
        sharpe_period_s=60.0,
        queue_ahead=list(st.ahead_at_entry),
        queue_waits_ns=list(st.waits_ns),
        maker_fills=st.maker_fills,
        taker_fills=st.taker_fills,
        logs=venue.logs,
    )


def add_index(types: npt.NDArray[np.int8], ids: npt.NDArray[np.int64]) -> list[int]:
    """For each message, the index of the add (type 1) of its order id at or before it,
    else -1 (an order from before the file, or one the file never reported)."""
    n = len(types)
    pos = np.flatnonzero(types == 1)
    if n == 0 or len(pos) == 0:
        return [-1] * n
    order = np.argsort(ids[pos], kind="stable")
    sid, spos = ids[pos][order], pos[order]
    k = np.searchsorted(sid, ids, side="right") - 1
    kc = k.clip(0)
    found = (k >= 0) & (sid[kc] == ids) & (spos[kc] <= np.arange(n))
    out: list[int] = np.where(found, spos[kc], -1).tolist()
    return out


def _run_lobster(
    strategy: Strategy,
    data: LobsterData,
    latency_ns: int,
    fee_bps: float,
    on_progress: Progress | None,
) -> BacktestResult:
    day = data.day
    cols = Columns.of(day)
    ts_np = data.timestamps()
    ts_all = ts_np.tolist()
    types = cols.types.tolist()
    ids = cols.ids.tolist()
    sizes = cols.sizes.tolist()
    prices = cols.prices.tolist()
    dirs = cols.directions.tolist()
    added = add_index(cols.types, cols.ids)
    n = len(day)
    book = Book()
    venue = SimulatedVenue(strategy, book, latency_ns=latency_ns, fee_bps=fee_bps)
    feed = Stepper(
        book,
        cols.types,
        cols.ids,
        cols.sizes,
        cols.prices,
        cols.directions,
        ts_np,
        cols.orderbook,
        day.levels,
    )
    symbol = data.symbol
    every = strategy.wants_book
    levels = day.levels
    samples = _Samples(strategy)

    def quote(ts: int) -> None:
        strategy._handle_quote(
            Quote(
                ts,
                symbol,
                feed.bid if feed.bid_qty else None,
                feed.bid_qty,
                feed.ask if feed.ask_qty else None,
                feed.ask_qty,
            )
        )

    if n:
        venue.clock = ts_all[0]  # on_start may already read the clock or set a timer
    strategy._handle_start()
    if n:
        feed.seed()
        quote(ts_all[0])
    next_sample = (ts_all[0] // SAMPLE_NS + 1) * SAMPLE_NS if n else 0
    on_message = venue.on_message
    next_progress = PROGRESS_EVERY
    i = 1
    while i < n:
        until = min(next_sample, venue.next_due())
        bl, bh, al, ah, tbl, tbh, tal, tah = venue.watch()
        j = feed.run(i, until, bl, bh, al, ah, every, tbl, tbh, tal, tah)
        if j >= n:
            break
        ts = ts_all[j]
        if not feed.applied:
            # The state as it was at the sample times (before this message).
            next_sample = samples.until(next_sample, ts)
            venue.idx = j
            venue.advance(ts)  # then message j goes through the feed like any other
            i = j
            continue
        venue.idx = j + 1
        if ts > venue.clock:
            venue.clock = ts
        t = types[j]
        side = 0 if dirs[j] == 1 else 1
        on_message(t, ids[j], sizes[j], prices[j], side, added[j])
        if t == 4 or t == 5:
            strategy._handle_trade(
                MarketTrade(ts, symbol, prices[j], sizes[j], "sell" if side == 0 else "buy")
            )
        if feed.top_changed:
            quote(ts)
        if every:
            d = book.depth(levels)
            strategy._handle_book(
                BookSnapshot(
                    ts,
                    symbol,
                    tuple((p, q) for p, q, _ in d["bids"]),
                    tuple((p, q) for p, q, _ in d["asks"]),
                )
            )
        if on_progress is not None and j >= next_progress:
            on_progress(j)
            next_progress = j + PROGRESS_EVERY
        i = j + 1
    if n:
        venue.advance(ts_all[-1])
    return _queue_result(strategy, data, venue, samples, latency_ns, fee_bps, on_progress, n)


def _run_recorded(
    strategy: Strategy,
    data: RecordedData,
    latency_ns: int,
    fee_bps: float,
    on_progress: Progress | None,
) -> BacktestResult:
    venue = TopVenue(strategy, latency_ns=latency_ns, fee_bps=fee_bps)
    symbol = data.symbol
    samples = _Samples(strategy)
    evs = data.events_list
    every = strategy.wants_book
    if evs:
        venue.clock = evs[0][0]
    strategy._handle_start()
    next_sample = (evs[0][0] // SAMPLE_NS + 1) * SAMPLE_NS if evs else 0
    for k, (ts, kind, a, b, c, d) in enumerate(evs):
        next_sample = samples.until(next_sample, ts)
        venue.advance(ts)
        if kind == 0:
            venue.on_trade(a, b, c == 0)
            strategy._handle_trade(MarketTrade(ts, symbol, a, b, "buy" if c == 0 else "sell"))
        else:
            venue.on_top(a, b, c, d)
            strategy._handle_quote(Quote(ts, symbol, a if b else None, b, c if d else None, d))
            if every:  # only the top is recorded: a one-level book
                strategy._handle_book(
                    BookSnapshot(ts, symbol, ((a, b),) if b else (), ((c, d),) if d else ())
                )
        if on_progress is not None and k % PROGRESS_EVERY == 0:
            on_progress(k)
    if evs:
        venue.advance(evs[-1][0])
    return _queue_result(strategy, data, venue, samples, latency_ns, fee_bps, on_progress, len(evs))


def _run_bars(
    strategy: Strategy, data: BarData, fee_bps: float, on_progress: Progress | None
) -> BacktestResult:
    venue = BarVenue(strategy, fee_bps=fee_bps)
    samples = _Samples(strategy)
    if data.bars:
        venue.clock = data.bars[0].ts
    strategy._handle_start()
    for i, bar in enumerate(data.bars):
        venue.bar(bar)
        samples.take(bar.ts, float(bar.close))
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
        **samples.fields(),
        sharpe_period_s=period,
        taker_fills=len(venue.fills),
        logs=venue.logs,
    )
