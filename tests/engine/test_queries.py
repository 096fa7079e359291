"""The gateway's queries (symbols, account, open orders) against a real engine process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import PositionChanged

from .conftest import EngineProcess

T = TypeVar("T")


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


SYMBOLS: list[dict[str, Any]] = [
    {"name": "GOOG", "tick_size": "0.05", "lot_size": 10, "reference_price": 2000},
    {"name": "AAPL"},
]


def test_symbols_say_ticks_lots_prices_and_halts(engine_factory: Any) -> None:
    eng = engine_factory(symbols=SYMBOLS)
    eng.start()

    async def body(c: EngineClient) -> None:
        before = ack(await c.get_symbols()).symbols
        assert before == [
            wire.SymbolInfo("GOOG", "0.05", 10, 2000, None, False),
            wire.SymbolInfo("AAPL", "0.01", 1, None, None, False),
        ]
        ack(await c.submit("alice", "AAPL", "sell", "limit", 3, price=150))
        ack(await c.submit("bob", "AAPL", "buy", "limit", 2, price=151))
        ack(await c.control("halt", symbol="GOOG"))
        after = ack(await c.get_symbols()).symbols
        assert after is not None
        goog, aapl = after
        assert goog.halted and not aapl.halted
        assert aapl.last_price == 150 and aapl.reference_price == 150  # the last trade

    run(eng, body)


def test_account_cash_pnl_positions_open_orders_and_kill_switch(engine_factory: Any) -> None:
    eng = engine_factory(starting_cash=100_000)
    eng.start()

    async def body(c: EngineClient) -> None:
        fresh = ack(await c.get_account("nobody")).account
        assert fresh == wire.AccountView("nobody", 100_000, 100_000, 0, 0, [], 0, False)
        ack(await c.submit("bob", "GOOG", "sell", "limit", 10, price=100))
        ack(await c.submit("alice", "GOOG", "buy", "limit", 4, price=100))  # buys 4 at 100
        ack(await c.submit("alice", "GOOG", "buy", "limit", 2, price=100))  # 6 at 100
        carol = ack(await c.submit("carol", "GOOG", "buy", "limit", 1, price=110))  # last: 100
        ack(await c.submit("alice", "GOOG", "sell", "limit", 3, price=90))  # nobody bids 90+
        dave = ack(await c.submit("dave", "GOOG", "buy", "limit", 5, price=90))  # alice sells 3
        ack(await c.submit("alice", "AAPL", "buy", "limit", 1, price=50))  # rests
        ack(await c.submit("alice", "AAPL", "buy", "stop", 1, stop_price=60))  # held
        a = ack(await c.get_account("alice")).account
        assert a is not None
        # bought 6 at 100 (600), sold 3 at 90 (FIFO: -30 realized), marked at 90
        assert a.cash == 100_000 - 600 + 270
        assert a.realized_pnl == -30
        assert a.positions == [wire.PositionView("GOOG", 3, 100.0, 300, -30, -30, 90)]
        assert a.unrealized_pnl == -30
        assert a.equity == a.cash + 300 - 30
        # the events carry unrealized P&L at their trade's price: alice's last change was
        # the last trade, so it is GetAccount's; bob's was at 100, before the mark fell
        changes = {e.account: e for e in dave.events if isinstance(e, PositionChanged)}
        assert changes["alice"].unrealized_pnl == a.positions[0].unrealized_pnl == -30
        assert changes["dave"].unrealized_pnl == 3 * 90 - 270 == 0
        (bob_then,) = (e for e in carol.events if isinstance(e, PositionChanged) and
                       e.account == "bob")  # fmt: skip
        assert (bob_then.position, bob_then.cost_basis, bob_then.unrealized_pnl) == (-7, -700, 0)
        assert (a.open_orders, a.kill_switch) == (2, False)
        ack(await c.control("kill", account="alice"))
        killed = ack(await c.get_account("alice")).account
        assert killed is not None and killed.kill_switch and killed.open_orders == 0
        other = ack(await c.get_account("bob")).account
        assert other is not None and not other.kill_switch
        assert other.positions == [wire.PositionView("GOOG", -7, 100.0, -700, 0, 70, 90)]
        assert reject(await c.get_account("")).reason == "bad_account"

    run(eng, body)


def test_open_orders_are_the_accounts_own(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        limit = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, price=99, tif="day",
                                   client_order_id="a-1"))  # fmt: skip
        stop = ack(await c.submit("alice", "AAPL", "sell", "stop_limit", 2, price=40,
                                  stop_price=45))  # fmt: skip
        ack(await c.submit("bob", "GOOG", "buy", "limit", 1, price=98))
        gone = ack(await c.submit("alice", "GOOG", "buy", "limit", 1, price=97))
        ack(await c.cancel("alice", gone.order_id or 0))
        orders = ack(await c.list_orders("alice")).orders
        assert orders == [
            wire.OrderView(limit.order_id or 0, "alice", "GOOG", "buy", "limit", "resting", 99,
                           None, 5, "day", "a-1"),
            wire.OrderView(stop.order_id or 0, "alice", "AAPL", "sell", "stop_limit", "held", 40,
                           45, 2, "gtc", None),
        ]  # fmt: skip
        only = ack(await c.list_orders("alice", "AAPL")).orders
        assert only is not None and [o.id for o in only] == [stop.order_id]
        assert ack(await c.list_orders("nobody")).orders == []
        assert reject(await c.list_orders("alice", "MSFT")).reason == "unknown_symbol"
        # a replace the core refuses leaves the order as it was, client order id included
        refused = ack(await c.replace("alice", limit.order_id or 0, price=0))
        assert [type(e).__name__ for e in refused.events] == ["OrderRejected"]
        kept = ack(await c.get_order("alice", limit.order_id or 0)).order
        assert kept is not None and (kept.price, kept.client_order_id) == (99, "a-1")
        # a partial fill shows the open quantity
        ack(await c.submit("carol", "GOOG", "sell", "limit", 2, price=99))
        after = ack(await c.list_orders("alice", "GOOG")).orders
        assert after is not None and [o.qty for o in after] == [3]

    run(engine, body)


def _finished(view: wire.OrderView | None) -> tuple[Any, ...]:
    """What a finished order's view says, bar its timestamps (checked apart)."""
    assert view is not None
    assert view.created_ns is not None and view.finished_ns is not None
    assert 0 < view.created_ns <= view.finished_ns
    return (view.status, view.qty, view.filled_qty, view.avg_fill_price, view.reason,
            view.total_qty)  # fmt: skip


def test_finished_orders_keep_their_final_status(engine_factory: Any) -> None:
    """GetOrder answers a filled, canceled or ioc-ended order with its final state, by
    id or client order id, to its own account only, also after a kill -9; beyond the
    bound (here 6 finished orders) it is `unknown_order`, saying it is too old."""
    eng = engine_factory(finished_orders=6)
    eng.start()

    async def play(c: EngineClient) -> dict[str, int]:
        ids: dict[str, int] = {}
        ids["old"] = ack(await c.submit("alice", "GOOG", "buy", "limit", 1, price=90)).order_id or 0
        ack(await c.cancel("alice", ids["old"]))  # the one the bound drops later
        ids["maker"] = ack(await c.submit("bob", "GOOG", "sell", "limit", 10, price=100,
                                          client_order_id="b-1")).order_id or 0  # fmt: skip
        ack(await c.submit("bob", "GOOG", "sell", "limit", 5, price=102))
        # fills 10 at 100 and 2 at 102: done, at the average of its two prices
        ids["taker"] = ack(await c.submit("alice", "GOOG", "buy", "limit", 12, price=102,
                                          client_order_id="a-1")).order_id or 0  # fmt: skip
        # 3 at 102, the rest of an ioc canceled
        ids["ioc"] = ack(await c.submit("carol", "GOOG", "buy", "limit", 8, price=102,
                                        tif="ioc")).order_id or 0  # fmt: skip
        part = ack(await c.submit("dave", "AAPL", "sell", "limit", 6, price=50))
        ids["part"] = part.order_id or 0
        ack(await c.submit("carol", "AAPL", "buy", "limit", 2, price=50))  # fills, done
        ack(await c.replace("dave", ids["part"], qty=3))  # 3 open now: 5 in all
        ack(await c.cancel("dave", ids["part"]))
        return ids

    async def check(c: EngineClient, ids: dict[str, int]) -> list[wire.OrderView | None]:
        views = {
            k: ack(await c.get_order(a, ids[k])).order
            for k, a in (("maker", "bob"), ("taker", "alice"), ("ioc", "carol"), ("part", "dave"))
        }
        assert _finished(views["maker"]) == ("filled", 0, 10, 100.0, None, 10)
        assert _finished(views["taker"]) == ("filled", 0, 12, (10 * 100 + 2 * 102) / 12, None, 12)
        assert _finished(views["ioc"]) == ("canceled", 0, 3, 102.0, "ioc", 8)
        assert _finished(views["part"]) == ("canceled", 0, 2, 50.0, "user", 5)
        taker = views["taker"]
        assert taker is not None and (taker.symbol, taker.side, taker.order_type) == (
            "GOOG", "buy", "limit"
        )  # fmt: skip
        assert (taker.price, taker.client_order_id, taker.tif) == (102, "a-1", "gtc")
        by_coid = ack(await c.get_order_by_client_id("bob", "b-1"))
        assert (by_coid.order_id, by_coid.order) == (ids["maker"], views["maker"])
        # another account's finished order is no more visible than its open ones
        other = reject(await c.get_order("bob", ids["taker"]))
        assert other.reason == "unknown_order" and "not this account's" in other.message
        # six finished after it (bob's at 102 and carol's AAPL buy too): the bound drops it
        old = reject(await c.get_order("alice", ids["old"]))
        assert old.reason == "unknown_order"
        assert f"no open order {ids['old']}" in old.message
        assert "last 6 finished orders" in old.message and "too old" in old.message
        never = reject(await c.get_order("alice", 10**9))
        assert never.message == f"no order {10**9}"
        return list(views.values())

    async def both(c: EngineClient) -> tuple[dict[str, int], list[wire.OrderView | None]]:
        ids = await play(c)
        return ids, await check(c, ids)

    ids, before = run(eng, both)
    eng.kill()  # kill -9: recovery rebuilds them from the journal
    eng.start()
    assert run(eng, lambda c: check(c, ids)) == before


def test_a_changed_reference_price_holds_after_a_restart_until_the_symbol_trades(
    engine_factory: Any,
) -> None:
    """A snapshot holds each symbol's reference price; on a restart with another
    `reference_price`, a symbol that never traded takes the new setting (none: it has no
    reference), a traded one keeps its last trade's price. The price band follows. A
    kill -9 then recovers the same references from that snapshot and the journal after
    it."""
    eng: EngineProcess = engine_factory(
        symbols=[
            {"name": "GOOG", "reference_price": 100},
            {"name": "AAPL", "reference_price": 200},
            {"name": "MSFT", "reference_price": 300},
        ],
        risk={"default": {"price_band_bps": 1000}},
    )
    eng.start()

    async def refs(c: EngineClient) -> dict[str, int | None]:
        return {s.name: s.reference_price for s in ack(await c.get_symbols()).symbols or []}

    async def before(c: EngineClient) -> dict[str, int | None]:
        ack(await c.submit("mm", "GOOG", "sell", "limit", 1, price=105))
        ack(await c.submit("bob", "GOOG", "buy", "limit", 1, price=105))  # GOOG trades
        ack(await c.submit("mm", "AAPL", "buy", "limit", 1, price=195))  # rests: no trade
        return await refs(c)

    assert run(eng, before) == {"GOOG": 105, "AAPL": 200, "MSFT": 300}
    assert eng.stop() == 0  # a snapshot at shutdown
    eng.settings["symbols"] = [
        {"name": "GOOG", "reference_price": 50},
        {"name": "AAPL", "reference_price": 400},
        {"name": "MSFT"},
    ]
    eng.start()
    assert "recovered 0 commands after snapshot" in eng.logs[-1].read_text()

    async def after(c: EngineClient) -> dict[str, int | None]:
        assert await refs(c) == {"GOOG": 105, "AAPL": 400, "MSFT": None}
        # banded around 400 now, not 200: 10% either side
        far = reject(await c.submit("bob", "AAPL", "buy", "limit", 1, price=300))
        assert far.reason == "price_band" and "reference price 400" in far.message
        ack(await c.submit("mm", "AAPL", "sell", "limit", 1, price=390))
        ack(await c.submit("bob", "AAPL", "buy", "limit", 1, price=390))  # AAPL trades
        ack(await c.submit("bob", "MSFT", "buy", "limit", 1, price=1))  # no reference, no band
        return await refs(c)

    assert run(eng, after) == {"GOOG": 105, "AAPL": 390, "MSFT": None}
    eng.kill()  # the snapshot from before AAPL traded, and the journal after it
    eng.start()
    assert run(eng, refs) == {"GOOG": 105, "AAPL": 390, "MSFT": None}
    assert eng.stop() == 0
