"""Trailing stops, OTO, bracket and OCO orders through a real engine process, and their
recovery after kill -9 (from the journal and from a snapshot)."""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.config import EngineConfig, SymbolConfig
from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderReplaced,
    OrderTrailed,
    StopTriggered,
    Trade,
)
from tickplane.engine.finished import FinishedSnapshot
from tickplane.engine.journal import FsyncPolicy, JournalWriter
from tickplane.engine.service import EngineService

from .conftest import EngineProcess

T = TypeVar("T")
TP = wire.TakeProfit
SL = wire.StopLoss


def run(eng: EngineProcess, body: Callable[[EngineClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with EngineClient(eng.order_entry, eng.events, timeout=10) as client:
            return await body(client)

    return asyncio.run(main())


def ack(reply: wire.Reply) -> wire.Ack:
    assert isinstance(reply, wire.Ack), reply
    return reply


def reject(reply: wire.Reply) -> wire.Reject:
    assert isinstance(reply, wire.Reject), reply
    return reply


def oid(reply: wire.Reply) -> int:
    order_id = ack(reply).order_id
    assert order_id is not None
    return order_id


def of(reply: wire.Reply, *types: type) -> list[Any]:
    """The reply's events of these types (order kept), without the others."""
    return [e for e in ack(reply).events if isinstance(e, types)]


async def trade_at(c: EngineClient, price: int, symbol: str = "GOOG") -> None:
    """Print one lot at `price` between two accounts of their own."""
    ack(await c.submit("mm-a", symbol, "sell", "limit", 1, price=price))
    ack(await c.submit("mm-b", symbol, "buy", "limit", 1, price=price))


async def view(c: EngineClient, account: str, order_id: int) -> wire.OrderView:
    order = ack(await c.get_order(account, order_id)).order
    assert order is not None
    return order


# -- trailing stops -------------------------------------------------------------------------


def test_a_sell_trailing_stop_follows_the_high_and_triggers_into_a_market_order(
    engine: EngineProcess,
) -> None:
    async def body(c: EngineClient) -> None:
        await trade_at(c, 100)
        r = await c.submit("carol", "GOOG", "sell", "trailing_stop", 5, trail_price=3)
        ts = oid(r)
        (accepted,) = of(r, OrderAccepted)
        assert (accepted.order_type, accepted.order_class, accepted.trail_price) == (
            "trailing_stop",
            "simple",
            3,
        )
        assert accepted.stop_price == 97
        await trade_at(c, 105)  # a new high: the stop follows
        v = await view(c, "carol", ts)
        assert (v.status, v.stop_price, v.qty, v.order_type) == ("held", 102, 5, "trailing_stop")
        await trade_at(c, 103)  # lower, above the stop: nothing moves
        assert (await view(c, "carol", ts)).stop_price == 102
        ack(await c.submit("dave", "GOOG", "buy", "limit", 10, price=101))
        hit = await c.submit("mm-a", "GOOG", "sell", "limit", 1, price=101)  # prints 101
        (trig,) = of(hit, StopTriggered)
        assert (trig.id, trig.stop_price) == (ts, 102)
        fills = [t for t in of(hit, Trade) if t.taker == ts]
        assert [(t.qty, t.price, t.taker_side) for t in fills] == [(5, 101, "sell")]
        done = ack(await c.get_order("carol", ts)).order  # finished: its final state
        assert done is not None and (done.status, done.order_type, done.stop_price) == (
            "filled", "trailing_stop", 102
        )  # fmt: skip
        assert (done.filled_qty, done.avg_fill_price, done.total_qty) == (5, 101.0, 5)
        assert done.hwm == 105  # the high it last trailed, kept when it finished
        acct = ack(await c.get_account("carol")).account
        assert acct is not None and acct.positions[0].qty == -5

    run(engine, body)


def test_a_trailing_stop_publishes_its_stop_when_it_moves_and_only_then(
    engine: EngineProcess,
) -> None:
    async def body(c: EngineClient) -> None:
        await trade_at(c, 100)
        ts = oid(await c.submit("carol", "GOOG", "sell", "trailing_stop", 5, trail_price=3))
        ack(await c.submit("mm-a", "GOOG", "sell", "limit", 1, price=105))
        up = await c.submit("mm-b", "GOOG", "buy", "limit", 1, price=105)
        (moved,) = of(up, OrderTrailed)
        assert (moved.id, moved.account, moved.symbol) == (ts, "carol", "GOOG")
        assert (moved.stop_price, moved.hwm) == (102, 105)
        assert moved.seq > max(t.seq for t in of(up, Trade))  # after the trade that moved it
        ack(await c.submit("mm-a", "GOOG", "sell", "limit", 1, price=103))
        down = await c.submit("mm-b", "GOOG", "buy", "limit", 1, price=103)
        assert of(down, OrderTrailed) == []  # a lower print leaves a sell's stop alone
        # a sweep of three levels is one batch of trades: the stop moves once, to the end
        for price in (106, 107, 108):
            ack(await c.submit("mm-a", "GOOG", "sell", "limit", 1, price=price))
        sweep = await c.submit("mm-b", "GOOG", "buy", "limit", 3, price=108)
        assert len(of(sweep, Trade)) == 3
        assert [(e.id, e.stop_price, e.hwm) for e in of(sweep, OrderTrailed)] == [(ts, 105, 108)]
        v = await view(c, "carol", ts)
        assert (v.stop_price, v.hwm) == (105, 108)
        # a percent trail rounds: a new high can leave the stop where it was
        pct = oid(await c.submit("dave", "AAPL", "sell", "trailing_stop", 1, trail_percent=10.0))
        await trade_at(c, 94, "AAPL")  # 10% of 94 rounds to 9: the stop appears at 85
        assert (await view(c, "dave", pct)).stop_price == 85
        ack(await c.submit("mm-a", "AAPL", "sell", "limit", 1, price=95))
        same = await c.submit("mm-b", "AAPL", "buy", "limit", 1, price=95)
        assert of(same, OrderTrailed) == []  # 95 - 9.5 (rounds to 10) is 85 still
        v = await view(c, "dave", pct)
        assert (v.stop_price, v.hwm) == (85, 95)
        ack(await c.submit("mm-a", "AAPL", "sell", "limit", 1, price=96))
        higher = await c.submit("mm-b", "AAPL", "buy", "limit", 1, price=96)
        assert [(e.id, e.stop_price, e.hwm) for e in of(higher, OrderTrailed)] == [(pct, 86, 96)]
        # the stream carries them, numbered like every event
        events = await c.replay(1, ack(await c.ping()).last_seq)
        trailed = [(e.id, e.stop_price) for e in events if isinstance(e, OrderTrailed)]
        assert trailed == [(ts, 102), (ts, 105), (pct, 85), (pct, 86)]

    run(engine, body)


def test_a_buy_trailing_stop_by_percent_follows_the_low(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        await trade_at(c, 100)
        ts = oid(await c.submit("carol", "GOOG", "buy", "trailing_stop", 2, trail_percent=5.0))
        assert (await view(c, "carol", ts)).stop_price == 105
        await trade_at(c, 90)  # 5% of 90 is 4.5 ticks: rounds to 5
        assert (await view(c, "carol", ts)).stop_price == 95
        ack(await c.submit("dave", "GOOG", "sell", "limit", 5, price=96))
        hit = await c.submit("mm-b", "GOOG", "buy", "limit", 1, price=96)  # prints 96
        assert [e.id for e in of(hit, StopTriggered)] == [ts]
        assert [(t.qty, t.price) for t in of(hit, Trade) if t.taker == ts] == [(2, 96)]

    run(engine, body)


def test_a_trailing_stop_takes_a_new_quantity_and_trail(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        await trade_at(c, 100)
        ts = oid(await c.submit("carol", "GOOG", "sell", "trailing_stop", 5, trail_price=3))
        await trade_at(c, 105)
        await trade_at(c, 103)  # the high is 105: the stop 102
        r = await c.replace("carol", ts, qty=4)
        # its OrderReplaced carries its trail, unchanged by this replace
        assert [
            (e.id, e.qty, e.stop_price, e.trail_price, e.trail_percent)
            for e in of(r, OrderReplaced)
        ] == [(ts, 4, 102, 3, None)]
        bad = reject(await c.replace("carol", ts, trail_percent=1.0))
        assert bad.reason == "bad_replace"  # placed with trail_price: its trail is ticks
        assert reject(await c.replace("carol", ts, price=101)).reason == "bad_replace"
        ack(await c.submit("dave", "GOOG", "buy", "limit", 10, price=103))
        # a trail of 2 puts the stop at 103, where the last trade is: it triggers now
        r = await c.replace("carol", ts, trail_price=2)
        assert [
            (e.id, e.qty, e.stop_price, e.trail_price, e.trail_percent)
            for e in of(r, OrderReplaced)
        ] == [(ts, 4, 103, 2, None)]  # the new trail, then what it causes
        assert [(e.id, e.stop_price) for e in of(r, StopTriggered)] == [(ts, 103)]
        assert [(t.taker, t.qty, t.price) for t in of(r, Trade)] == [(ts, 4, 103)]

    run(engine, body)


# -- brackets ---------------------------------------------------------------------------


def test_bracket_legs_activate_with_partial_fills_and_cancel_each_other(
    engine: EngineProcess,
) -> None:
    async def body(c: EngineClient) -> None:
        r = await c.submit(
            "alice",
            "GOOG",
            "buy",
            "limit",
            10,
            price=100,
            order_class="bracket",
            take_profit=TP(110),
            stop_loss=SL(90),
        )
        parent = oid(r)
        accepted = of(r, OrderAccepted)
        assert [
            (a.id, a.order_class, a.parent_id, a.leg, a.side, a.order_type) for a in accepted
        ] == [
            (parent, "bracket", None, None, "buy", "limit"),
            (parent + 1, "bracket", parent, "take_profit", "sell", "limit"),
            (parent + 2, "bracket", parent, "stop_loss", "sell", "stop"),
        ]
        tp, sl = parent + 1, parent + 2
        held = ack(await c.list_orders("alice")).orders
        assert held is not None
        assert [(o.id, o.status, o.qty, o.leg) for o in held] == [
            (parent, "resting", 10, None),
            (tp, "held", 10, "take_profit"),
            (sl, "held", 10, "stop_loss"),
        ]
        # the parent fills 4: both legs work 4
        r = await c.submit("bob", "GOOG", "sell", "limit", 4, price=100)
        assert [(e.id, e.leg, e.qty, e.parent_id) for e in of(r, OrderActivated)] == [
            (tp, "take_profit", 4, parent),
            (sl, "stop_loss", 4, parent),
        ]
        v = await view(c, "alice", tp)
        assert (v.status, v.qty, v.price) == ("resting", 4, 110)
        book = ack(await c.get_book("GOOG")).book
        assert book is not None and [(lv.price, lv.qty) for lv in book.asks] == [(110, 4)]
        # the rest of the parent: 10 each
        r = await c.submit("bob", "GOOG", "sell", "limit", 6, price=100)
        assert [e.qty for e in of(r, OrderActivated)] == [10, 10]
        # the take-profit fills 3: the stop-loss works 7
        r = await c.submit("carol", "GOOG", "buy", "limit", 3, price=110)
        assert [(t.maker, t.qty) for t in of(r, Trade)] == [(tp, 3)]
        assert [(e.id, e.qty) for e in of(r, OrderReplaced)] == [(sl, 7)]
        assert (await view(c, "alice", sl)).qty == 7
        # the take-profit fills its 7: the stop-loss is canceled (one cancels other)
        r = await c.submit("carol", "GOOG", "buy", "limit", 7, price=110)
        assert [(t.maker, t.qty) for t in of(r, Trade)] == [(tp, 7)]
        assert [(e.id, e.reason) for e in of(r, OrderCanceled)] == [(sl, "oco")]
        assert ack(await c.list_orders("alice")).orders == []
        a = ack(await c.get_account("alice")).account
        assert a is not None and a.realized_pnl == 100 and a.positions[0].qty == 0

    run(engine, body)


def test_a_bracket_stop_loss_triggers_and_cancels_the_take_profit(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        ack(await c.submit("dave", "GOOG", "sell", "limit", 5, price=100))
        r = await c.submit(
            "alice",
            "GOOG",
            "buy",
            "market",
            5,
            order_class="bracket",
            take_profit=TP(110),
            stop_loss=SL(90, 85),
        )
        parent = oid(r)
        tp, sl = parent + 1, parent + 2
        assert [e.qty for e in of(r, OrderActivated)] == [5, 5]  # filled at once
        assert (await view(c, "alice", sl)).order_type == "stop_limit"
        ack(await c.submit("eve", "GOOG", "buy", "limit", 10, price=89))
        r = await c.submit("frank", "GOOG", "sell", "limit", 1, price=89)  # prints 89
        assert [(e.id, e.stop_price) for e in of(r, StopTriggered)] == [(sl, 90)]
        assert [(t.taker, t.qty, t.price) for t in of(r, Trade) if t.taker == sl] == [(sl, 5, 89)]
        assert [(e.id, e.reason, e.remaining) for e in of(r, OrderCanceled)] == [(tp, "oco", 5)]
        assert ack(await c.list_orders("alice")).orders == []
        book = ack(await c.get_book("GOOG")).book
        assert book is not None and book.asks == []  # the take-profit left the book

    run(engine, body)


def test_triggered_trailing_stops_and_stop_losses_stop_at_their_market_collar(
    engine_factory: Any,
) -> None:
    """A trailing stop or an OTO's stop-loss that triggers into a market order trades
    no further than the market collar from its stop price (5% here); the rest of it is
    canceled `market_collar`."""
    eng: EngineProcess = engine_factory(risk={"default": {"market_collar_bps": 500}})
    eng.start()

    async def body(c: EngineClient) -> None:
        await trade_at(c, 100)
        ts = oid(await c.submit("carol", "GOOG", "sell", "trailing_stop", 5, trail_price=3))
        for price in (96, 94, 90):  # the stop is 97: it trades down to 93
            ack(await c.submit("dave", "GOOG", "buy", "limit", 1, price=price))
        hit = await c.submit("mm-a", "GOOG", "sell", "limit", 1, price=96)
        assert [(t.qty, t.price) for t in of(hit, Trade) if t.taker == ts] == [(1, 94)]
        assert [(e.id, e.remaining, e.reason) for e in of(hit, OrderCanceled)] == [
            (ts, 4, "market_collar")
        ]
        ack(await c.submit("dave", "GOOG", "sell", "limit", 5, price=97))  # 94 to 98: in
        r = await c.submit("alice", "GOOG", "buy", "market", 5, order_class="oto", stop_loss=SL(90))
        sl = oid(r) + 1
        assert [e.qty for e in of(r, OrderActivated)] == [5]
        for price in (87, 80):  # the stop is 90: it trades down to 86
            ack(await c.submit("eve", "GOOG", "buy", "limit", 1, price=price))
        hit = await c.submit("frank", "GOOG", "sell", "limit", 1, price=89)  # prints 90
        assert [e.id for e in of(hit, StopTriggered)] == [sl]
        assert [(t.qty, t.price) for t in of(hit, Trade) if t.taker == sl] == [(1, 87)]
        assert [(e.id, e.remaining, e.reason) for e in of(hit, OrderCanceled)] == [
            (sl, 4, "market_collar")
        ]

    run(eng, body)
    assert eng.stop() == 0


def test_canceling_a_parent_cancels_its_held_legs(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        r = await c.submit(
            "alice",
            "GOOG",
            "buy",
            "limit",
            10,
            price=100,
            order_class="bracket",
            take_profit=TP(110),
            stop_loss=SL(90),
        )
        parent = oid(r)
        r = await c.cancel("alice", parent)
        assert [(e.id, e.reason) for e in of(r, OrderCanceled)] == [
            (parent, "user"),
            (parent + 1, "parent_canceled"),
            (parent + 2, "parent_canceled"),
        ]
        assert ack(await c.list_orders("alice")).orders == []

    run(engine, body)


# -- OTO ------------------------------------------------------------------------------------


def test_oto_child_works_what_the_parent_filled(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        r = await c.submit(
            "alice", "GOOG", "buy", "limit", 5, price=100, order_class="oto", stop_loss=SL(95)
        )
        parent = oid(r)
        child = parent + 1
        assert [(a.id, a.leg) for a in of(r, OrderAccepted)] == [
            (parent, None),
            (child, "stop_loss"),
        ]
        r = await c.submit("bob", "GOOG", "sell", "limit", 2, price=100)
        assert [(e.id, e.qty) for e in of(r, OrderActivated)] == [(child, 2)]
        # the parent's rest is canceled: the child keeps protecting the 2 bought
        r = await c.cancel("alice", parent)
        assert [e.id for e in of(r, OrderCanceled)] == [parent]
        v = await view(c, "alice", child)
        assert (v.status, v.qty, v.stop_price, v.side) == ("held", 2, 95, "sell")
        r = await c.cancel("alice", child)
        assert [(e.id, e.reason, e.remaining) for e in of(r, OrderCanceled)] == [(child, "user", 2)]
        assert ack(await c.list_orders("alice")).orders == []

    run(engine, body)


# -- OCO ------------------------------------------------------------------------------------


def test_oco_a_fill_of_one_reduces_then_cancels_the_other(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        r = await c.submit(
            "alice",
            "GOOG",
            "sell",
            "limit",
            10,
            order_class="oco",
            take_profit=TP(110),
            stop_loss=SL(90),
        )
        limit = oid(r)
        stop = limit + 1
        assert [
            (a.id, a.order_type, a.price, a.stop_price, a.leg) for a in of(r, OrderAccepted)
        ] == [
            (limit, "limit", 110, None, None),
            (stop, "stop", None, 90, "stop_loss"),
        ]
        assert (await view(c, "alice", limit)).order_class == "oco"
        r = await c.submit("carol", "GOOG", "buy", "limit", 4, price=110)
        assert [(e.id, e.qty) for e in of(r, OrderReplaced)] == [(stop, 6)]
        ack(await c.submit("eve", "GOOG", "buy", "limit", 10, price=90))
        r = await c.submit("frank", "GOOG", "sell", "limit", 1, price=90)  # prints 90
        assert [e.id for e in of(r, StopTriggered)] == [stop]
        assert [(t.qty, t.price) for t in of(r, Trade) if t.taker == stop] == [(6, 90)]
        assert [(e.id, e.reason) for e in of(r, OrderCanceled)] == [(limit, "oco")]
        assert ack(await c.list_orders("alice")).orders == []
        a = ack(await c.get_account("alice")).account
        assert a is not None and a.positions[0].qty == -10

    run(engine, body)


# -- replace and validation ------------------------------------------------------------------


def test_legs_prices_are_replaced_their_quantity_is_not(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        r = await c.submit(
            "alice",
            "GOOG",
            "buy",
            "limit",
            10,
            price=100,
            order_class="bracket",
            take_profit=TP(110),
            stop_loss=SL(90, 89),
        )
        parent = oid(r)
        tp, sl = parent + 1, parent + 2
        r = await c.replace("alice", tp, price=112)  # held: only the price changes
        assert [(e.id, e.price) for e in of(r, OrderReplaced)] == [(tp, 112)]
        ack(await c.submit("bob", "GOOG", "sell", "limit", 3, price=100))
        assert (await view(c, "alice", tp)).price == 112
        r = await c.replace("alice", tp, price=111)  # working: its piece moves
        assert [(e.id, e.price, e.qty) for e in of(r, OrderReplaced)] == [(tp, 111, 3)]
        book = ack(await c.get_book("GOOG")).book
        assert book is not None and [(lv.price, lv.qty) for lv in book.asks] == [(111, 3)]
        r = await c.replace("alice", sl, stop_price=88, price=87)
        assert [(e.id, e.stop_price, e.price) for e in of(r, OrderReplaced)] == [(sl, 88, 87)]
        v = await view(c, "alice", sl)
        assert (v.stop_price, v.price) == (88, 87)
        assert reject(await c.replace("alice", tp, qty=5)).reason == "bad_replace"
        assert reject(await c.replace("bob", tp, price=120)).reason == "unknown_order"

    run(engine, body)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (dict(order_class="ladder"), "bad_order_class"),
        (dict(take_profit=TP(110)), "bad_order_class"),
        (dict(order_class="bracket", take_profit=TP(110)), "bad_legs"),
        (dict(order_class="bracket", take_profit=TP(90), stop_loss=SL(95)), "bad_legs"),
        (dict(order_class="oto", take_profit=TP(110), stop_loss=SL(90)), "bad_legs"),
        (dict(order_class="bracket", take_profit=TP(110), stop_loss=SL(90), tif="ioc"), "bad_tif"),
        (dict(order_type="trailing_stop", price=None), "bad_trail"),
        (
            dict(order_type="trailing_stop", price=None, trail_price=1, trail_percent=1.0),
            "bad_trail",
        ),
        (dict(order_type="trailing_stop", price=None, trail_percent=100.0), "bad_trail"),
        (dict(trail_price=3), "bad_trail"),
        (
            dict(
                order_class="oco",
                order_type="market",
                price=None,
                take_profit=TP(90),
                stop_loss=SL(110),
            ),
            "bad_order_class",
        ),
    ],
)
def test_bad_order_classes_are_refused_and_change_nothing(
    engine: EngineProcess, fields: dict[str, Any], reason: str
) -> None:
    async def body(c: EngineClient) -> None:
        seq = ack(await c.ping()).last_seq
        req: dict[str, Any] = dict(order_type="limit", price=100)
        req.update(fields)
        order_type = req.pop("order_type")
        r = reject(await c.submit("alice", "GOOG", "buy", order_type, 5, **req))
        assert r.reason == reason, r.message
        assert ack(await c.ping()).last_seq == seq
        assert ack(await c.list_orders("alice")).orders == []

    run(engine, body)


# -- recovery ------------------------------------------------------------------------------

# The first part leaves every kind of held state: a trailing stop with a watermark, a
# bracket partly filled (working pieces), an OTO child held, an OCO partly filled.
PART_A: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("submit", ("mm-a", "GOOG", "sell", "limit", 1), dict(price=100)),
    ("submit", ("mm-b", "GOOG", "buy", "limit", 1), dict(price=100)),
    ("submit", ("carol", "GOOG", "sell", "trailing_stop", 5), dict(trail_price=3)),
    (
        "submit",
        ("alice", "GOOG", "buy", "limit", 10),
        dict(price=100, order_class="bracket", take_profit=TP(110), stop_loss=SL(90, 88)),
    ),
    ("submit", ("bob", "GOOG", "sell", "limit", 4), dict(price=100)),
    (
        "submit",
        ("alice", "AAPL", "buy", "limit", 5),
        dict(price=50, order_class="oto", take_profit=TP(60)),
    ),
    (
        "submit",
        ("dave", "AAPL", "sell", "limit", 8),
        dict(order_class="oco", take_profit=TP(70), stop_loss=SL(40)),
    ),
    ("submit", ("mm-a", "GOOG", "sell", "limit", 1), dict(price=104)),
    ("submit", ("mm-b", "GOOG", "buy", "limit", 1), dict(price=104)),
]
# Then: the bracket's parent fills and its take-profit partly; the trailing stop
# triggers (no bids: its market order is canceled); the OTO's parent fills and its child
# works; the OCO's stop triggers and cancels its limit; the bracket's stop-limit
# triggers and cancels its take-profit.
PART_B: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("submit", ("bob", "GOOG", "sell", "limit", 6), dict(price=100)),
    ("submit", ("carol2", "GOOG", "buy", "limit", 3), dict(price=110)),
    ("submit", ("eve", "AAPL", "buy", "limit", 20), dict(price=39)),
    ("submit", ("frank", "AAPL", "sell", "limit", 6), dict(price=39)),
    ("submit", ("eve", "GOOG", "buy", "limit", 20), dict(price=89)),
    ("submit", ("frank", "GOOG", "sell", "limit", 1), dict(price=89)),
]
ACCOUNTS = ["alice", "bob", "carol", "carol2", "dave", "eve", "frank"]


async def _play(c: EngineClient, steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
    for _kind, args, kwargs in steps:
        ack(await c.submit(*args, **kwargs))


async def _state(c: EngineClient) -> tuple[Any, ...]:
    """Everything a client can see: every event (bar timestamps), open orders, accounts."""
    last = ack(await c.ping()).last_seq
    events: list[Event] = await c.replay(1, last)
    plain = [msgspec.structs.replace(e, ts_event=0) for e in events]
    orders = [ack(await c.list_orders(a)).orders for a in ACCOUNTS]
    accounts = [ack(await c.get_account(a)).account for a in ACCOUNTS]
    return plain, orders, accounts


def _recovers(engine_factory: Any, **settings: Any) -> None:
    crashed: EngineProcess = engine_factory("crashed", **settings)
    crashed.start()
    before = run(crashed, lambda c: _play_and_state(c, PART_A))
    crashed.kill()
    crashed.start()
    assert run(crashed, _state) == before  # the same events, orders and accounts
    after = run(crashed, lambda c: _play_and_state(c, PART_B))
    straight: EngineProcess = engine_factory("straight")
    straight.start()
    run(straight, lambda c: _play(c, PART_A))
    expected = run(straight, lambda c: _play_and_state(c, PART_B))
    assert after == expected
    events = after[0]
    # the scenario did exercise what it is meant to: triggers, activations, oco cancels
    kinds = {type(e).__name__ for e in events}
    assert {
        "StopTriggered",
        "OrderActivated",
        "OrderReplaced",
        "OrderCanceled",
        "OrderTrailed",
    } <= kinds
    oco = [e.id for e in events if isinstance(e, OrderCanceled) and e.reason == "oco"]
    assert len(oco) == 2  # the OCO's limit, the bracket's take-profit


async def _play_and_state(
    c: EngineClient, steps: list[tuple[str, tuple[Any, ...], dict[str, Any]]]
) -> tuple[Any, ...]:
    await _play(c, steps)
    return await _state(c)


def test_order_classes_recover_from_the_journal_after_kill_9(engine_factory: Any) -> None:
    _recovers(engine_factory, snapshot_every=0)


def test_order_classes_recover_from_a_snapshot_after_kill_9(engine_factory: Any) -> None:
    _recovers(engine_factory, snapshot_every=1)


# -- random flows, in process: recovery equals the uninterrupted state ------------------------


def _service(journal_dir: Path) -> EngineService:
    """An engine service without sockets (requests go to `dispatch`), recovered from
    `journal_dir`."""
    config = EngineConfig(
        name="random",
        journal_dir=str(journal_dir),
        symbols=[SymbolConfig("GOOG"), SymbolConfig("AAPL")],
        http_port=0,
        snapshot_every=0,
        pin_cpu=False,
        finished_orders=60,  # fewer than the flows finish: the bound drops some
    )
    svc = EngineService(config)
    svc.journal = JournalWriter.open(journal_dir, FsyncPolicy.NONE)
    svc.recover()
    return svc


def _random_request(rng: random.Random, n: int, ids: list[tuple[str, int]]) -> wire.Request:
    """One request of a flow that mixes plain orders with every order class."""
    account = f"acct{rng.randrange(4)}"
    symbol = rng.choice(["GOOG", "AAPL"])
    side = rng.choice(["buy", "sell"])
    sign = 1 if side == "buy" else -1
    qty = rng.randrange(1, 12)
    r = rng.random()
    if ids and r < 0.12:
        acc, oid = rng.choice(ids)
        return wire.CancelOrder(n, acc, oid)
    if ids and r < 0.2:
        acc, oid = rng.choice(ids)
        if rng.random() < 0.5:
            return wire.ReplaceOrder(n, acc, oid, price=100 + rng.randrange(-8, 9))
        return wire.ReplaceOrder(n, acc, oid, stop_price=100 + rng.randrange(-8, 9))
    if r < 0.5:
        price = 100 + rng.randrange(-4, 5)
        kind = "market" if rng.random() < 0.2 else "limit"
        return wire.NewOrder(
            n, account, symbol, side, kind, qty, None if kind == "market" else price
        )
    if r < 0.6:
        trail = (
            dict(trail_price=rng.randrange(1, 4))
            if rng.random() < 0.5
            else dict(trail_percent=rng.choice([1.0, 2.5, 4.0]))
        )
        return wire.NewOrder(n, account, symbol, side, "trailing_stop", qty, **trail)  # type: ignore[arg-type]
    entry = 100 + sign * rng.randrange(0, 4)
    tp = (
        TP(entry - sign * rng.randrange(-9, -2))
        if side == "buy"
        else TP(entry - rng.randrange(3, 9))
    )
    sl_stop = entry - sign * rng.randrange(3, 9)
    sl = SL(sl_stop, sl_stop - sign * rng.randrange(0, 3) if rng.random() < 0.5 else None)
    cls = rng.choice(["bracket", "oto", "oco"])
    if cls == "oco":  # exits on the order's own side: take-profit above a sell's stop
        tp, sl = (
            (TP(entry + 5), SL(entry - 5)) if side == "sell" else (TP(entry - 5), SL(entry + 5))
        )
        return wire.NewOrder(
            n,
            account,
            symbol,
            side,
            "limit",
            qty,
            None,
            order_class="oco",
            take_profit=tp,
            stop_loss=sl,
        )
    if cls == "oto":
        legs = dict(take_profit=tp) if rng.random() < 0.5 else dict(stop_loss=sl)
        return wire.NewOrder(
            n, account, symbol, side, "limit", qty, entry, order_class="oto", **legs
        )  # type: ignore[arg-type]
    return wire.NewOrder(
        n,
        account,
        symbol,
        side,
        "limit",
        qty,
        entry,
        order_class="bracket",
        take_profit=tp,
        stop_loss=sl,
    )


def _feed(
    svc: EngineService, requests: list[wire.Request], ids: list[tuple[str, int]]
) -> list[str]:
    """Dispatch the requests one by one (journal committed after each, as the loop
    does); return the replies' reasons and event kinds, for comparison."""
    out: list[str] = []
    assert svc.journal is not None
    for req in requests:
        reply, _ = svc.dispatch(req, set())
        svc.journal.commit()
        if isinstance(reply, wire.Reject):
            out.append(reply.reason)
        else:
            out.append(",".join(type(e).__name__ for e in reply.events))
            if isinstance(req, wire.NewOrder) and reply.order_id is not None:
                ids.append((req.account, reply.order_id))
                ids.extend((req.account, reply.order_id + k) for k in (1, 2))
    return out


def _everything(svc: EngineService) -> tuple[Any, ...]:
    st = svc.state
    accounts = [f"acct{i}" for i in range(4)]
    core = {k: v.tolist() for k, v in st.core.dump().items()}
    return (
        st.seq,
        [st.open_orders(a) for a in accounts],
        [st.account_view(a) for a in accounts],
        msgspec.to_builtins(st.contingent.snapshot()),
        _untimed(st.finished.snapshot()),
        core,
    )


def _untimed(snap: FinishedSnapshot) -> tuple[Any, ...]:
    """The finished orders bar their times: the flow after the cut runs again later."""
    rep = msgspec.structs.replace
    return (
        [rep(e, ts_event=0) for e in snap.open],
        [(i, qty, notional) for i, qty, notional, _ts in snap.fills],
        [rep(d, accepted=rep(d.accepted, ts_event=0), finished_ns=0) for d in snap.done],
        snap.dropped,
        sorted(snap.hwms),
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_flows_with_order_classes_recover_exactly(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    flow: list[wire.Request] = []
    live_ids: list[tuple[str, int]] = []
    # the flow refers to ids the engine gives: build it as it runs
    original = _service(tmp_path / "original")
    cut, snap_at = 150, rng.randrange(20, 140)
    replies: list[str] = []
    for n in range(1, 301):
        req = _random_request(rng, n, live_ids)
        flow.append(req)
        replies += _feed(original, [req], live_ids)
        if n == snap_at:
            assert original.journal is not None
            original.journal.snapshot(original.state.snapshot())
        if n == cut:  # "kill -9": what the journal holds now, in another directory
            assert original.journal is not None
            original.journal.commit()
            shutil.copytree(tmp_path / "original", tmp_path / "crashed")
            at_cut = _everything(original)
    crashed = _service(tmp_path / "crashed")
    assert _everything(crashed) == at_cut
    again = _feed(crashed, flow[cut:], [])
    assert again == replies[cut:]
    assert _everything(crashed) == _everything(original)
    kinds = ",".join(replies)
    assert "OrderActivated" in kinds and "StopTriggered" in kinds  # classes did things
    assert "OrderTrailed" in kinds
    done = original.state.finished.done.values()
    assert original.state.finished.dropped > 0 and any(d.accepted.leg for d in done)
    _legs_never_exit_more_than_was_entered(original)


def _legs_never_exit_more_than_was_entered(svc: EngineService) -> None:
    """Over the whole run: a bracket's or OTO's legs together trade at most what their
    parent traded; an OCO's limit and stop together at most its quantity."""
    events = svc.state.replay(1, svc.state.seq, 1_000_000)
    assert events is not None and len(events) == svc.state.seq
    traded: dict[int, int] = {}
    groups: dict[int, tuple[str, int, list[int]]] = {}
    for e in events:
        if isinstance(e, Trade):
            for oid in {e.taker, e.maker}:
                traded[oid] = traded.get(oid, 0) + e.qty
        elif isinstance(e, OrderAccepted) and e.order_class in ("bracket", "oto", "oco"):
            if e.parent_id is None:
                groups[e.id] = (e.order_class, e.qty, [])
            else:
                groups[e.parent_id][2].append(e.id)
    checked = 0
    for parent, (cls, qty, legs) in groups.items():
        exits = sum(traded.get(leg, 0) for leg in legs)
        if cls == "oco":
            assert exits + traded.get(parent, 0) <= qty
        else:
            assert exits <= traded.get(parent, 0)
        checked += exits > 0
    assert checked  # some legs did trade
