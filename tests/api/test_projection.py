"""The projection against a real engine: orders, fills, positions, trades, top of book,
read-your-writes, a late start, retention and bounded subscriptions.

The module runs its own engine (not the session's shared one): a projection replays
the stream from seq 1, and on the shared engine that is every event the whole session
made (thousands after the API and fuzz tests, more than `wait_for`'s 2 s on a loaded
machine), and another test's resting order could take the trades these tests check."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import msgspec
import pytest

from tests.engine.conftest import EngineProcess, engine_settings
from tickplane.api.projection import (
    MarketUpdate,
    OrderRecord,
    OrderUpdate,
    PositionUpdate,
    Projection,
    SubscriptionOverflow,
    order_from_accepted,
)
from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import OrderAccepted, OrderRejected, PositionChanged, Trade

T = TypeVar("T")


@pytest.fixture(scope="module")
def engine_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """This module's own engine (GOOG, AAPL), in place of the session's shared one."""
    work = tmp_path_factory.mktemp("projection-engine")
    eng = EngineProcess(work, engine_settings(work, "projection-tests", fsync="none"))
    eng.start()
    try:
        yield {"order_entry": eng.order_entry, "events": eng.events}
    finally:
        if eng.stop() != 0:
            eng.kill()


def _acct() -> str:
    return "proj-" + uuid.uuid4().hex[:10]


def _run(endpoints: dict[str, str], body: Callable[[EngineClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with EngineClient(endpoints["order_entry"], endpoints["events"]) as eng:
            return await body(eng)

    return asyncio.run(main())


def _ack(reply: wire.Reply) -> wire.Ack:
    assert isinstance(reply, wire.Ack), reply
    return reply


async def _price_far(eng: EngineClient) -> int:
    """A price band that no other test trades in (orders there never cross others)."""
    return 90_000 + (uuid.uuid4().int % 5_000) * 2


def test_orders_fills_positions_and_a_late_start(engine_endpoints: dict[str, str]) -> None:
    seller, buyer = _acct(), _acct()

    async def body(eng: EngineClient) -> None:
        proj = Projection(eng)
        await proj.start()
        try:
            async with proj.subscribe(account=buyer) as sub, proj.subscribe_market("AAPL") as md:
                price = await _price_far(eng)
                sell = _ack(await eng.submit(seller, "AAPL", "sell", "limit", 5, price=price))
                buy = _ack(
                    await eng.submit(
                        buyer, "AAPL", "buy", "limit", 3, price=price, client_order_id="b-1"
                    )
                )
                assert await proj.wait_for(buy.last_seq, 10)
                assert sell.order_id is not None and buy.order_id is not None
                resting = proj.order(seller, sell.order_id)
                assert resting is not None and resting.status == "partially_filled"
                assert (resting.filled_qty, resting.open_qty, resting.qty) == (3, 2, 5)
                taken = proj.order_by_client_id(buyer, "b-1")
                assert taken is not None and taken.id == buy.order_id
                assert taken.status == "filled" and taken.avg_fill_price == price
                # isolation: the buyer's view has no trace of the seller's order
                assert proj.order(buyer, sell.order_id) is None
                (fill,) = proj.executions(buyer)
                assert (fill.qty, fill.price, fill.liquidity) == (3, price, "taker")
                assert proj.executions(seller)[0].liquidity == "maker"
                (pos,) = proj.positions(buyer)
                assert (pos.symbol, pos.qty, pos.cost_basis) == ("AAPL", 3, 3 * price)
                assert proj.cash(buyer) == -3 * price
                assert proj.trades("AAPL")[0].price == price
                assert [o.id for o in proj.orders(seller, status="open")] == [sell.order_id]
                assert proj.orders(buyer, status="open") == []
                assert [o.id for o in proj.orders(buyer, status="closed", side="buy")] == [
                    buy.order_id
                ]
                updates = [await asyncio.wait_for(sub.get(), 5) for _ in range(3)]
                kinds = [u.event if isinstance(u, OrderUpdate) else "position" for u in updates]
                assert kinds == ["new", "fill", "position"]
                assert isinstance(updates[2], PositionUpdate)
                # market data (not replayable: what comes live once the stream is up,
                # as it is now): another trade, then the top of book after it
                more = _ack(await eng.submit(buyer, "AAPL", "buy", "limit", 1, price=price))
                seen: set[str] = set()
                while not {"trade", "top"} <= seen:
                    m = await asyncio.wait_for(md.get(), 5)
                    assert isinstance(m, MarketUpdate) and m.symbol == "AAPL"
                    if m.kind == "trade":
                        assert m.trade is not None
                        seen.add("trade") if m.trade.seq > buy.last_seq else None
                    elif m.kind == "top" and "trade" in seen:
                        seen.add("top")
                assert await proj.wait_for(more.last_seq, 10)
                top = proj.top("AAPL")
                assert top is not None and top.last_price is not None
                cancel = _ack(await eng.cancel(seller, sell.order_id))
                assert await proj.wait_for(cancel.last_seq, 10)
                gone = proj.order(seller, sell.order_id)
                assert gone is not None and gone.status == "canceled" and gone.reason == "user"

            # a projection started now replays the stream from seq 1 and agrees
            late = Projection(eng)
            await late.start()
            try:
                assert await late.wait_for(cancel.last_seq, 10)
                assert late.order(seller, sell.order_id) == proj.order(seller, sell.order_id)
                assert late.positions(buyer) == proj.positions(buyer)
            finally:
                await late.stop()
        finally:
            await proj.stop()

    _run(engine_endpoints, body)


def test_retention_and_a_subscriber_that_falls_behind(engine_endpoints: dict[str, str]) -> None:
    account = _acct()

    async def body(eng: EngineClient) -> None:
        proj = Projection(eng, max_closed_orders=2, queue_size=3)
        await proj.start()
        try:
            async with proj.subscribe(account=account) as slow, proj.subscribe() as everyone:
                ids = []
                last = 0
                for i in range(4):
                    ack = _ack(
                        await eng.submit(
                            account, "GOOG", "buy", "limit", 1, price=10 + i, tif="ioc"
                        )
                    )
                    assert ack.order_id is not None
                    ids.append(ack.order_id)
                    last = ack.last_seq
                assert await proj.wait_for(last, 10)
                kept = [o.id for o in proj.orders(account)]
                assert kept == ids[:1:-1]  # the two newest closed orders, newest first
                assert proj.order(account, ids[0]) is None
                # 8 updates (new + canceled each) for a queue of 3: dropped, not blocked
                with pytest.raises(SubscriptionOverflow):
                    await asyncio.wait_for(slow.get(), 5)
                assert everyone.overflowed
            assert proj.subscribers == 0
        finally:
            await proj.stop()

    _run(engine_endpoints, body)


def test_wait_for_times_out_on_a_seq_not_reached(engine_endpoints: dict[str, str]) -> None:
    async def body(eng: EngineClient) -> Any:
        proj = Projection(eng)
        await proj.start()
        try:
            ping = _ack(await eng.ping())
            assert await proj.wait_for(ping.last_seq, 10)
            assert not await proj.wait_for(ping.last_seq + 10**9, 0.05)
        finally:
            await proj.stop()

    _run(engine_endpoints, body)


def test_a_bracket_keeps_its_class_legs_and_activation(engine_endpoints: dict[str, str]) -> None:
    trader, taker = _acct(), _acct()

    async def body(eng: EngineClient) -> None:
        proj = Projection(eng)
        await proj.start()
        try:
            async with proj.subscribe(account=trader) as sub:
                entry = _ack(
                    await eng.submit(
                        trader,
                        "GOOG",
                        "buy",
                        "limit",
                        10,
                        price=5_000,
                        order_class="bracket",
                        take_profit=wire.TakeProfit(5_100),
                        stop_loss=wire.StopLoss(4_900),
                    )
                )
                assert entry.order_id is not None
                parent_id = entry.order_id
                assert await proj.wait_for(entry.last_seq, 10)
                tp, sl = proj.legs(trader, parent_id)
                parent = proj.order(trader, parent_id)
                assert parent is not None and parent.order_class == "bracket"
                assert parent.parent_id is None and parent.status == "new"
                for leg, role in ((tp, "take_profit"), (sl, "stop_loss")):
                    assert (leg.order_class, leg.parent_id, leg.leg) == ("bracket", parent_id, role)
                    assert (leg.status, leg.open_qty, leg.qty, leg.side) == ("held", 0, 10, "sell")
                assert (tp.limit_price, sl.stop_price) == (5_100, 4_900)
                # the entry fills 4: both legs work 4 (the take-profit in the book, the
                # stop-loss still held until its stop)
                fill = _ack(await eng.submit(taker, "GOOG", "sell", "limit", 4, price=5_000))
                assert await proj.wait_for(fill.last_seq, 10)
                tp, sl = proj.legs(trader, parent_id)
                assert (tp.status, tp.open_qty) == ("new", 4)
                assert (sl.status, sl.open_qty) == ("held", 4)
                events = []
                while len(events) < 6:
                    update = await asyncio.wait_for(sub.get(), 5)
                    if isinstance(update, OrderUpdate):
                        events.append((update.event, update.order.id))
                assert ("activated", tp.id) in events and ("activated", sl.id) in events
                # the take-profit takes the 4; the entry is canceled: the group is over,
                # the take-profit filled (no event of its own says so), the stop canceled
                take = _ack(await eng.submit(taker, "GOOG", "buy", "limit", 4, price=5_100))
                cancel = _ack(await eng.cancel(trader, parent_id))
                assert await proj.wait_for(max(take.last_seq, cancel.last_seq), 10)
                tp, sl = proj.legs(trader, parent_id)
                assert (tp.status, tp.filled_qty, tp.open_qty) == ("filled", 4, 0)
                assert (sl.status, sl.filled_qty) == ("canceled", 0)
                assert proj.orders(trader, status="open") == []

            # a projection started now replays the stream from seq 1 and agrees
            late = Projection(eng)
            await late.start()
            try:
                assert await late.wait_for(cancel.last_seq, 10)
                assert late.legs(trader, parent_id) == proj.legs(trader, parent_id)
                assert late.order(trader, parent_id) == proj.order(trader, parent_id)
            finally:
                await late.stop()
        finally:
            await proj.stop()

    _run(engine_endpoints, body)


def test_a_trailing_stop_shows_its_moving_stop(engine_endpoints: dict[str, str]) -> None:
    trader, a, b = _acct(), _acct(), _acct()

    async def body(eng: EngineClient) -> None:
        price = await _price_far(eng)

        async def cross(at: int) -> int:
            _ack(await eng.submit(a, "AAPL", "sell", "limit", 1, price=at))
            return _ack(await eng.submit(b, "AAPL", "buy", "limit", 1, price=at)).last_seq

        proj = Projection(eng)
        await proj.start()
        try:
            await cross(price)
            async with proj.subscribe(account=trader) as sub:
                ts = _ack(
                    await eng.submit(trader, "AAPL", "sell", "trailing_stop", 2, trail_price=5)
                )
                assert ts.order_id is not None
                assert await proj.wait_for(ts.last_seq, 10)
                order = proj.order(trader, ts.order_id)
                assert order is not None and (order.stop_price, order.hwm) == (price - 5, None)
                assert await proj.wait_for(await cross(price + 10), 10)
                order = proj.order(trader, ts.order_id)
                assert order is not None
                assert (order.status, order.stop_price, order.hwm) == (
                    "held",  # untriggered, as a stop is
                    price + 5,
                    price + 10,
                )
                updates = [u for u in sub.drain() if isinstance(u, OrderUpdate)]
                assert [u.event for u in updates] == ["held", "trailed"]
                assert updates[-1].order == order
                done = _ack(await eng.cancel(trader, ts.order_id))
                assert await proj.wait_for(done.last_seq, 10)
                closed = proj.order(trader, ts.order_id)
                assert closed is not None and (closed.status, closed.stop_price) == (
                    "canceled",
                    price + 5,
                )
        finally:
            await proj.stop()

    _run(engine_endpoints, body)


def test_order_from_accepted_fills_every_field_by_name() -> None:
    """`order_from_accepted` builds the record by position: each field lands where its
    name says (a bracket leg and a trailing stop carry every optional field)."""
    leg = OrderAccepted(
        seq=7,
        ts_event=123,
        id=42,
        account="a",
        symbol="GOOG",
        side="sell",
        order_type="stop_limit",
        qty=5,
        price=99,
        stop_price=101,
        tif="day",
        post_only=False,
        client_order_id="c-42",
        order_class="bracket",
        parent_id=41,
        leg="stop_loss",
        trail_price=3,
        trail_percent=None,
    )
    trail = msgspec.structs.replace(
        leg,
        id=43,
        order_type="stop",
        price=None,
        order_class="simple",
        parent_id=None,
        leg=None,
        trail_price=None,
        trail_percent=1.5,
    )
    for ev, status, open_qty in ((leg, "held", 0), (trail, "held", 5)):
        by_name = OrderRecord(
            id=ev.id, account=ev.account, symbol=ev.symbol, side=ev.side,
            type=ev.order_type, qty=ev.qty, limit_price=ev.price, stop_price=ev.stop_price,
            time_in_force=ev.tif, post_only=ev.post_only, client_order_id=ev.client_order_id,
            status=status, reason=None, filled_qty=0, open_qty=open_qty, filled_notional=0,
            created_ns=ev.ts_event, updated_ns=ev.ts_event, seq=ev.seq,
            order_class=ev.order_class, parent_id=ev.parent_id, leg=ev.leg,
            trail_price=ev.trail_price, trail_percent=ev.trail_percent,
        )  # fmt: skip
        assert order_from_accepted(ev) == by_name


def test_a_late_fill_of_a_rejected_order_is_an_execution() -> None:
    """An order rejected before it was ever accepted (its submit may have reached the
    venue) then filled there twice (docs/venues.md, "Late fills"): the projection has no
    order for it, as for any such rejection, but each fill is the account's execution
    (its side, what it filled so far, nothing open), and the position follows."""
    proj = Projection(None)  # type: ignore[arg-type]  # folded by hand: no engine needed
    venue = "venue:alpaca"
    proj.apply_all(
        [
            OrderRejected(1, 10, 7, "alice", "venue_unavailable"),
            Trade(2, 11, "GOOG", 101, 4, 7, 0, "sell", "alice", venue),
            PositionChanged(3, 11, "alice", "GOOG", -4, -404, 0, 404),
            PositionChanged(4, 11, venue, "GOOG", 4, 404, 0, -404),
            Trade(5, 12, "GOOG", 102, 2, 7, 0, "sell", "alice", venue),
        ]
    )
    assert proj.order("alice", 7) is None
    fills = [(e.order_id, e.side, e.qty, e.price, e.liquidity, e.cum_qty, e.leaves_qty)
             for e in proj.executions("alice")]  # fmt: skip
    assert fills == [(7, "sell", 2, 102, "taker", 6, 0), (7, "sell", 4, 101, "taker", 4, 0)]
    assert [(p.symbol, p.qty) for p in proj.positions("alice")] == [("GOOG", -4)]
    assert proj.executions(venue) == []  # the venue's side of it is no order of an account
