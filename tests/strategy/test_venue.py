"""The simulated venue: queue position, latency, taking, post-only, fees."""

from __future__ import annotations

from typing import Any

from tests.strategy.synthetic import Msg, day
from tickplane.engine.backtest import run_backtest
from tickplane.engine.strategy import Fill, Order, Quote, Strategy

P = 1_000_000  # $100.00 in LOBSTER units
TICK = 100
S = 1_000_000_000


class Scripted(Strategy):
    """Sends the given orders on the first quote at or after `at_ns`."""

    name = "scripted"

    def __init__(self, orders: list[dict[str, Any]], at_ns: int, **kw: Any) -> None:
        super().__init__(symbol="TEST", tick=TICK, **kw)
        self.to_send = orders
        self.at_ns = at_ns
        self.sent: list[Order] = []
        self.fills: list[tuple[int, Fill]] = []
        self.rejected: list[Order] = []
        self.canceled: list[Order] = []

    def on_quote(self, quote: Quote) -> None:
        if not self.sent and quote.ts >= self.at_ns:
            self.sent = [self.submit(**o) for o in self.to_send]

    def on_fill(self, fill: Fill, order: Order) -> None:
        self.fills.append((self.now(), fill))

    def on_rejected(self, order: Order) -> None:
        self.rejected.append(order)

    def on_canceled(self, order: Order) -> None:
        self.canceled.append(order)


QUEUE: list[Msg] = [
    (1.0, 1, 1, 100, P, 1),  # bid 100 @ P (before us)
    (1.0, 1, 2, 100, P + TICK, -1),  # ask: our order is sent on this quote
    (2.0, 1, 3, 200, P, 1),  # behind us (with no latency)
    (3.0, 4, 1, 60, P, 1),  # 60 of the 100 ahead trade
    (4.0, 3, 3, 200, P, 1),  # order 3 leaves
    (5.0, 2, 1, 10, P, 1),  # 10 ahead cancel
    (6.0, 4, 1, 30, P, 1),  # the last 30 ahead trade: we are first now
    (7.0, 1, 4, 100, P, 1),  # behind us
    (8.0, 4, 4, 70, P, 1),  # a trade reaching an order behind ours: we fill first
]


def test_an_order_behind_volume_fills_only_after_that_volume_is_gone() -> None:
    s = Scripted([{"side": "buy", "qty": 50, "price": P}], at_ns=S)
    r = run_backtest(s, day(QUEUE), fee_bps=2.0)
    assert [(t, f.qty, f.price, f.liquidity) for t, f in s.fills] == [(8 * S, 50, P, "maker")]
    assert r.queue_ahead == [100]
    assert r.queue_waits_ns == [7 * S]
    assert s.position == 50
    assert s.ledger.fees == P * 50 * 2.0 / 10_000


def test_cancels_behind_the_order_do_not_move_it_up() -> None:
    # Without message 5 (10 ahead cancel) 10 lots would still be ahead at the last
    # trade of order 1, and order 3 (behind) canceling must not count.
    msgs = [m for m in QUEUE if m[0] != 5.0]
    msgs[-3] = (6.0, 4, 1, 30, P, 1)
    s = Scripted([{"side": "buy", "qty": 50, "price": P}], at_ns=S)
    run_backtest(s, day(msgs))
    # 10 still ahead (order 1's rest); order 4's execution reaches behind us anyway.
    assert [(t, f.qty) for t, f in s.fills] == [(8 * S, 50)]
    msgs_no_behind = [m for m in msgs if m[2] != 4]
    s2 = Scripted([{"side": "buy", "qty": 50, "price": P}], at_ns=S)
    run_backtest(s2, day(msgs_no_behind))
    assert s2.fills == []


def test_latency_puts_the_order_behind_what_arrived_meanwhile() -> None:
    s = Scripted([{"side": "buy", "qty": 50, "price": P}], at_ns=S)
    r = run_backtest(s, day(QUEUE), latency_ns=2_500_000_000)
    # Arrives at 3.5 s: order 1's 40 left and order 3's 200 are ahead.
    assert r.queue_ahead == [240]
    assert [(t, f.qty) for t, f in s.fills] == [(8 * S, 50)]
    assert s.sent[0].ts_submitted == S


def test_a_new_opposite_order_at_our_price_trades_with_us() -> None:
    msgs: list[Msg] = [
        (1.0, 1, 1, 100, P, 1),
        (1.0, 1, 2, 100, P + TICK, -1),
        (2.0, 4, 1, 100, P, 1),  # the 100 ahead trade
        (3.0, 1, 5, 30, P, -1),  # a sell at our price: it trades with us
        (4.0, 4, 2, 10, P + TICK, -1),  # unrelated
    ]
    s = Scripted([{"side": "buy", "qty": 50, "price": P}], at_ns=S)
    run_backtest(s, day(msgs))
    assert [(t, f.qty, f.liquidity) for t, f in s.fills] == [(3 * S, 30, "maker")]
    assert s.sent[0].filled == 30


def test_a_trade_at_a_worse_price_went_through_ours() -> None:
    msgs: list[Msg] = [
        (1.0, 1, 1, 100, P, 1),
        (1.0, 1, 2, 100, P + 2 * TICK, -1),
        (2.0, 1, 3, 100, P + TICK, 1),  # a better bid, ahead of nothing of ours
        (3.0, 4, 1, 80, P, 1),  # an execution at P: the seller went through P + TICK
    ]
    s = Scripted([{"side": "buy", "qty": 50, "price": P + TICK}], at_ns=S)
    run_backtest(s, day(msgs))
    # Ours joined P + TICK at 1 s (empty level, nothing ahead), before order 3.
    assert [(t, f.qty, f.price) for t, f in s.fills] == [(3 * S, 50, P + TICK)]


def test_marketable_orders_take_visible_liquidity_and_post_only_is_refused() -> None:
    msgs: list[Msg] = [
        (1.0, 1, 1, 100, P, 1),
        (1.0, 1, 2, 100, P + TICK, -1),
        (1.0, 1, 6, 100, P + 2 * TICK, -1),
        (2.0, 1, 7, 50, P, 1),  # the top changes: the orders are sent on this quote
        (3.0, 3, 6, 100, P + 2 * TICK, -1),
    ]
    orders = [
        {"side": "buy", "qty": 150, "price": P + TICK, "tif": "ioc"},
        {"side": "buy", "qty": 10, "price": P + TICK, "post_only": True},
        {"side": "buy", "qty": 120},  # market: walks two levels
    ]
    s = Scripted(orders, at_ns=2 * S)
    r = run_backtest(s, day(msgs), fee_bps=1.0)
    got = [(f.order_id, f.qty, f.price, f.liquidity) for _, f in s.fills]
    # The market order finds the first ask level already taken by order 1 (the history
    # has not changed it since), so it walks on to the second.
    assert got == [
        (1, 100, P + TICK, "taker"),
        (3, 100, P + 2 * TICK, "taker"),
    ]
    assert [o.id for o in s.rejected] == [2] and s.rejected[0].reason == "post_only"
    assert [(o.id, o.reason) for o in s.canceled] == [(1, "ioc"), (3, "market")]
    assert s.sent[0].filled == 100 and s.sent[0].status == "canceled"
    assert r.summary()["fill_ratio"] == round(200 / 270, 6)


def test_a_canceled_order_no_longer_fills() -> None:
    class CancelAfter(Scripted):
        def on_trade(self, trade: Any) -> None:
            self.cancel_all()

    msgs: list[Msg] = [
        (1.0, 1, 1, 100, P, 1),
        (1.0, 1, 2, 100, P + TICK, -1),
        (2.0, 4, 2, 10, P + TICK, -1),  # any trade: the strategy cancels
        (3.0, 1, 5, 30, P, -1),  # would have traded with us
    ]
    s = CancelAfter([{"side": "buy", "qty": 50, "price": P}], at_ns=S)
    run_backtest(s, day(msgs))
    assert s.fills == []
    assert s.sent[0].status == "canceled"


def test_the_fast_feed_skips_only_what_changes_nothing() -> None:
    """The compiled feed hands Python only the messages that matter; a strategy that
    asks for every message (on_book) must see the same fills, P&L and queue figures."""
    from tickplane.engine.backtest import open_data
    from tickplane.engine.lobster import excerpt_paths
    from tickplane.engine.strategy.market_maker import MarketMaker
    from tickplane.engine.strategy.registry import build

    class EveryMessage(MarketMaker):
        def on_book(self, book: Any) -> None:
            self.books = getattr(self, "books", 0) + 1

    data = open_data([str(excerpt_paths()[10])])
    fast = build("market_maker", {"qty": 50}, symbol=data.symbol, tick=data.tick)
    slow = EveryMessage(fast.params, symbol=data.symbol, tick=data.tick)
    a = run_backtest(fast, data, latency_ns=100_000).summary()
    b = run_backtest(slow, data, latency_ns=100_000).summary()
    assert slow.books == data.events - 1  # type: ignore[attr-defined]
    assert a["trades"] > 0
    assert a == b


def test_takers_do_not_take_the_same_displayed_size_twice() -> None:
    msgs: list[Msg] = [
        (1.0, 1, 1, 100, P, 1),
        (1.0, 1, 2, 100, P + TICK, -1),
        (2.0, 1, 7, 50, P, 1),  # orders sent on this quote
        (3.0, 2, 2, 10, P + TICK, -1),  # the history changes the ask: 90 shown again
    ]
    ioc = {"side": "buy", "qty": 80, "price": P + TICK, "tif": "ioc"}
    s = Scripted([ioc, ioc], at_ns=2 * S)
    run_backtest(s, day(msgs))
    assert [(f.order_id, f.qty) for _, f in s.fills] == [(1, 80), (2, 20)]

    class Again(Scripted):
        def on_quote(self, quote: Quote) -> None:
            super().on_quote(quote)
            if quote.ts == 3 * S:
                self.submit("buy", 80, P + TICK, tif="ioc")

    s = Again([ioc, ioc], at_ns=2 * S)
    run_backtest(s, day(msgs))
    assert [(f.order_id, f.qty) for _, f in s.fills] == [(1, 80), (2, 20), (3, 80)]


def test_fill_or_kill_is_all_or_nothing() -> None:
    msgs: list[Msg] = [
        (1.0, 1, 1, 100, P, 1),
        (1.0, 1, 2, 100, P + TICK, -1),
        (1.0, 1, 3, 50, P + 2 * TICK, -1),
        (2.0, 1, 7, 50, P, 1),
    ]
    orders = [
        {"side": "buy", "qty": 160, "price": P + TICK, "tif": "fok"},  # 100 up to its limit
        {"side": "buy", "qty": 150, "price": P + 2 * TICK, "tif": "fok"},  # 150 there: fills
    ]
    s = Scripted(orders, at_ns=2 * S)
    run_backtest(s, day(msgs))
    assert [(o.id, o.reason) for o in s.canceled] == [(1, "fok")]
    assert [(f.order_id, f.qty, f.price) for _, f in s.fills] == [
        (2, 100, P + TICK),
        (2, 50, P + 2 * TICK),
    ]
