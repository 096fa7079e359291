"""The built-in strategies' own behavior: TWAP's schedule and price guard, the market
maker's inventory skew and inventory cap."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.strategy.synthetic import Msg, day
from tests.strategy.test_strategy_api import Clock
from tickplane.engine.backtest import run_backtest
from tickplane.engine.strategy import Quote
from tickplane.engine.strategy.market_maker import MarketMaker
from tickplane.engine.strategy.registry import build

P = 1_000_000
TICK = 100
S = 1_000_000_000


def flat_market(seconds: int) -> list[Msg]:
    """A quiet market: a deep bid and ask, and a size change every second (new quotes)."""
    msgs: list[Msg] = [(0.5, 1, 1, 10_000, P, 1), (0.5, 1, 2, 10_000, P + TICK, -1)]
    for k in range(1, seconds + 1):
        msgs.append((float(k), 1, 100 + k, 1, P - 5 * TICK, 1))
    return msgs


def test_twap_slices_evenly_at_the_touch() -> None:
    s = build(
        "twap",
        {"total_qty": 100, "duration_s": 4, "slices": 4, "ioc": True},
        symbol="TEST",
        tick=TICK,
    )
    r = run_backtest(s, day(flat_market(8)))
    orders = list(s.orders.values())
    assert [(o.ts_submitted, o.qty, o.price) for o in orders] == [
        (int(0.5 * S) + k * S, 25, P + TICK) for k in range(4)
    ]
    assert s.position == 100 and r.summary()["filled_qty"] == 100


def test_twap_price_guard_holds_and_rolls_the_rest_over() -> None:
    s = build(
        "twap",
        {"total_qty": 100, "duration_s": 4, "slices": 4, "limit_price": P, "ioc": True},
        symbol="TEST",
        tick=TICK,
    )
    run_backtest(s, day(flat_market(8)))
    # The ask is above the guard: each slice bids at the guard (IOC, nothing fills), and
    # asks for everything the schedule says should be done by then.
    assert [(o.qty, o.price, o.filled) for o in s.orders.values()] == [
        (25, P, 0),
        (50, P, 0),
        (75, P, 0),
        (100, P, 0),
    ]
    assert s.position == 0


def quotes_of(mm: MarketMaker, position: int) -> tuple[int | None, int | None]:
    rt = Clock()
    mm.attach(rt)
    mm._handle_start()
    mm.ledger.position = position
    mm._handle_quote(Quote(1, "X", 10_000, 5, 10_010, 5))
    bid = next((o.price for o in mm.orders.values() if o.side == "buy"), None)
    ask = next((o.price for o in mm.orders.values() if o.side == "sell"), None)
    return bid, ask


def test_market_maker_skews_quotes_against_its_inventory() -> None:
    params = {"qty": 10, "gamma": 0.5, "kappa": 1.0, "sigma": 0.5, "horizon_s": 10}

    def mm() -> MarketMaker:
        m = build("market_maker", params, symbol="X")
        assert isinstance(m, MarketMaker)
        return m

    flat_bid, flat_ask = quotes_of(mm(), 0)
    long_bid, long_ask = quotes_of(mm(), 30)
    short_bid, short_ask = quotes_of(mm(), -30)
    assert flat_bid is not None and flat_ask is not None
    assert flat_bid < 10_005 < flat_ask  # around the mid
    assert long_bid is not None and long_ask is not None
    assert short_bid is not None and short_ask is not None
    # Long: both quotes lower (sell sooner, buy later); short: both higher.
    assert long_bid < flat_bid and long_ask < flat_ask
    assert short_bid > flat_bid and short_ask > flat_ask
    assert long_ask >= 10_001  # never crosses the best bid


def test_market_maker_stops_quoting_the_side_beyond_its_inventory_cap() -> None:
    m = build("market_maker", {"qty": 10, "max_inventory": 30, "sigma": 0.5}, symbol="X")
    assert isinstance(m, MarketMaker)
    bid, ask = quotes_of(m, 30)
    assert bid is None and ask is not None


def test_strategy_list_names_the_builtins_and_their_params() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tickplane.cli.main", "strategy", "list"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    listed = json.loads(out.stdout)
    assert set(listed) == {"market_maker", "sma_crossover", "twap"}
    assert listed["twap"]["slices"] == 10 and "gamma" in listed["market_maker"]


def test_a_timer_set_in_on_start_runs_on_the_data_clock() -> None:
    from tickplane.engine.strategy import Strategy

    class Ticker(Strategy):
        def on_start(self) -> None:
            self.ticks: list[int] = []
            self.started_at = self.now()
            self.set_timer(S)

        def on_timer(self, ts: int) -> None:
            self.ticks.append(ts)

    s = Ticker(symbol="TEST", tick=TICK)
    run_backtest(s, day(flat_market(4)))
    assert s.started_at == int(0.5 * S)
    assert s.ticks == [int(0.5 * S) + k * S for k in range(1, 4)]
