"""The Strategy API without a venue: ledger, typed params, limits, the loss pause."""

from __future__ import annotations

from typing import Any

import pytest

from tickplane.engine.strategy import Fill, Order, Quote, Strategy, StrategyLimits
from tickplane.engine.strategy.ledger import Ledger
from tickplane.engine.strategy.params import ParamsError, parse_cli_params
from tickplane.engine.strategy.registry import BUILTIN, build


class Clock:
    """A Runtime that records what the strategy sends."""

    def __init__(self) -> None:
        self.t = 0
        self.sent: list[tuple[str, int]] = []
        self.logs: list[str] = []
        self.timer = 0

    def now(self) -> int:
        return self.t

    def send_new(self, order: Order) -> None:
        self.sent.append(("new", order.id))

    def send_cancel(self, order: Order) -> None:
        self.sent.append(("cancel", order.id))

    def send_replace(self, order: Order, qty: int | None, price: int | None) -> None:
        self.sent.append(("replace", order.id))

    def set_timer(self, interval_ns: int) -> None:
        self.timer = interval_ns

    def log(self, strategy: str, message: str) -> None:
        self.logs.append(message)


def attached(limits: StrategyLimits | None = None) -> tuple[Strategy, Clock]:
    s = Strategy(symbol="X", limits=limits)
    rt = Clock()
    s.attach(rt)
    return s, rt


def test_ledger_average_cost_realizes_on_reduction_and_flips() -> None:
    led = Ledger()
    led.fill("buy", 100, 10)
    led.fill("buy", 110, 10)  # average 105
    led.fill("sell", 120, 5, fee=1.5)
    assert (led.position, led.realized, led.cost) == (15, 75, 1575)
    led.fill("sell", 100, 25)  # closes 15 at -5 each, opens -10 at 100
    assert (led.position, led.realized, led.cost) == (-10, 0, -1000)
    assert led.unrealized(90.0) == 100.0
    assert led.total(90.0) == 100.0 - 1.5
    assert led.traded_qty == 50 and led.traded_notional == 1000 + 1100 + 600 + 2500


def test_params_are_typed_and_bad_ones_are_named() -> None:
    s = build("sma_crossover", parse_cli_params(["fast=3", "slow=7"]), symbol="X")
    assert (s.params.fast, s.params.slow, s.params.qty) == (3, 7, 100)
    s = build("twap", parse_cli_params(['{"side": "sell", "slices": 4}']), symbol="X")
    assert (s.params.side, s.params.slices) == ("sell", 4)
    with pytest.raises(ParamsError, match="fast"):
        build("sma_crossover", {"fast": "ten"}, symbol="X")
    with pytest.raises(ParamsError, match="fast < slow"):
        build("sma_crossover", {"fast": 30, "slow": 10}, symbol="X")
    with pytest.raises(ParamsError, match="nope"):
        build("market_maker", {"nope": 1}, symbol="X")
    with pytest.raises(ParamsError, match="unknown strategy"):
        build("nosuch", {}, symbol="X")
    with pytest.raises(ParamsError, match="NAME=VALUE"):
        parse_cli_params(["fast"])
    assert set(BUILTIN) == {"sma_crossover", "market_maker", "twap"}


def test_position_limit_counts_open_orders() -> None:
    s, rt = attached(StrategyLimits(max_position=100))
    rejected: list[str] = []
    s.on_rejected = lambda o: rejected.append(o.reason)  # type: ignore[method-assign]
    a = s.submit("buy", 60, 10)
    b = s.submit("buy", 50, 10)  # 60 open + 50 > 100
    assert a.status == "pending" and b.status == "rejected"
    assert rejected == ["strategy_position_limit"]
    assert rt.sent == [("new", a.id)]
    s._handle_canceled(a.id)
    assert s.submit("buy", 100, 10).status == "pending"
    assert s.submit("sell", 100, 10).status == "pending"  # the other side has room


def test_order_rate_is_a_sliding_second_of_the_strategy_clock() -> None:
    s, rt = attached(StrategyLimits(max_orders_per_sec=3))
    got = [s.submit("buy", 1, 10).status for _ in range(4)]
    assert got == ["pending"] * 3 + ["rejected"]
    assert s.orders[4].reason == "strategy_order_rate"
    rt.t = 999_999_999
    assert s.submit("buy", 1, 10).status == "rejected"
    rt.t = 1_000_000_000
    assert s.submit("buy", 1, 10).status == "pending"


def test_loss_limit_cancels_everything_and_pauses() -> None:
    s, rt = attached(StrategyLimits(max_loss=500))
    buy = s.submit("buy", 100, 100)
    rest = s.submit("sell", 10, 200)
    s._handle_accepted(buy.id)
    s._handle_accepted(rest.id)
    s._handle_fill(Fill(0, buy.id, "X", "buy", 100, 100, 0.0, "maker"))
    s._handle_quote(Quote(1, "X", 95, 10, 97, 10))  # mark 96: -400
    assert not s.paused
    s._handle_quote(Quote(2, "X", 94, 10, 96, 10))  # mark 95: -500
    assert s.paused
    assert ("cancel", rest.id) in rt.sent
    assert any("loss limit" in line for line in rt.logs)
    assert s.submit("sell", 100).reason == "strategy_paused"
    s.resume()
    assert s.submit("sell", 100).status == "pending"
    pnl = s.pnl()
    assert pnl["total"] == -500.0 and pnl["realized"] == 0.0


def test_bars_built_from_trades() -> None:
    class Recorder(Strategy):
        def on_start(self) -> None:
            self.bars: list[Any] = []
            self.build_bars(60_000_000_000)

        def on_bar(self, bar: Any) -> None:
            self.bars.append(bar)

    from tickplane.engine.strategy import MarketTrade

    s = Recorder(symbol="X")
    s.attach(Clock())
    s._handle_start()
    m = 60_000_000_000
    for ts, px, q in [(1, 10, 1), (m - 1, 12, 2), (m, 9, 1), (3 * m + 5, 11, 4)]:
        s._handle_trade(MarketTrade(ts, "X", px, q, "buy"))
    s._handle_stop()
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in s.bars] == [
        (0, 10, 12, 10, 12, 3),
        (m, 9, 9, 9, 9, 1),
        (3 * m, 11, 11, 11, 11, 4),
    ]
