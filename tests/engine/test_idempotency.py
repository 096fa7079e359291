"""Idempotent order entry by (account, client_order_id), through a real engine process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.engine.idempotency import ClientOrderIds, fingerprint

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


LIMIT: dict[str, Any] = dict(price=100, client_order_id="c-1")


def test_a_retry_after_the_ack_returns_the_same_order_and_runs_nothing(
    engine_factory: Any,
) -> None:
    # One token a second, two at most: if a retry spent one, the second order would fail.
    eng = engine_factory(risk={"default": {"max_orders_per_second": 1, "order_burst": 2}})
    eng.start()

    async def body(c: EngineClient) -> None:
        first = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        assert first.events and not first.duplicate
        for _ in range(5):
            again = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
            assert again.duplicate
            assert again.order_id == first.order_id
            assert again.events == []
            assert again.last_seq == first.last_seq  # nothing journaled, no event
            assert again.order is not None
            assert (again.order.id, again.order.qty, again.order.status) == (
                first.order_id,
                5,
                "resting",
            )
        other = ack(await c.submit("alice", "GOOG", "buy", "limit", 1, price=99))
        assert not other.duplicate and other.order_id != first.order_id
        # the order is filled: a retry still names it, with its final state
        ack(await c.submit("bob", "GOOG", "sell", "limit", 5, price=100))
        done = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        assert done.duplicate and done.order_id == first.order_id and done.order is not None
        assert (done.order.status, done.order.qty, done.order.filled_qty) == ("filled", 0, 5)

    run(eng, body)


def test_same_id_with_other_fields_is_refused_and_changes_nothing(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        first = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        for change in (dict(qty=6), dict(price=101), dict(side="sell"), dict(tif="day")):
            fields: dict[str, Any] = dict(side="buy", qty=5, price=100, tif="gtc")
            fields.update(change)
            side, qty = fields.pop("side"), fields.pop("qty")
            r = reject(
                await c.submit("alice", "GOOG", side, "limit", qty, client_order_id="c-1", **fields)
            )
            assert r.reason == "client_order_id_reused"
            assert str(first.order_id) in r.message
        view = ack(await c.get_order("alice", first.order_id or 0)).order
        assert view is not None and (view.qty, view.price) == (5, 100)
        assert ack(await c.ping()).last_seq == first.last_seq

    run(engine, body)


def test_the_same_id_in_another_account_is_another_order(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        a = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        b = ack(await c.submit("bob", "GOOG", "buy", "limit", 5, **LIMIT))
        assert not b.duplicate and b.order_id != a.order_id
        again = ack(await c.submit("bob", "GOOG", "buy", "limit", 5, **LIMIT))
        assert again.duplicate and again.order_id == b.order_id

    run(engine, body)


def test_a_rejected_order_does_not_keep_its_id(engine_factory: Any) -> None:
    eng = engine_factory(risk={"default": {"max_order_qty": 10}})
    eng.start()

    async def body(c: EngineClient) -> None:
        risk = reject(await c.submit("alice", "GOOG", "buy", "limit", 50, **LIMIT))
        assert risk.reason == "max_order_qty"
        # the core's validation: a post-only market order is an OrderRejected event
        bad = ack(
            await c.submit(
                "alice", "GOOG", "buy", "market", 5, post_only=True, client_order_id="c-1"
            )
        )
        assert [type(e).__name__ for e in bad.events] == ["OrderRejected"]
        ok = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        assert not ok.duplicate and ok.order_id != bad.order_id
        assert [type(e).__name__ for e in ok.events] == ["OrderAccepted"]

    run(eng, body)
    eng.kill()
    eng.start()  # the refusal stays a refusal after recovery: the id names the good order

    async def after(c: EngineClient) -> None:
        again = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        assert again.duplicate
        assert again.order is not None and again.order.qty == 5

    run(eng, after)


def _kill_and_retry(eng: EngineProcess) -> None:
    eng.start()

    async def before(c: EngineClient) -> tuple[int, int]:
        resting = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        ack(await c.submit("bob", "GOOG", "sell", "limit", 2, price=100))  # fills 2 of 5
        market = ack(await c.submit("carol", "AAPL", "buy", "market", 1, client_order_id="m"))
        assert resting.order_id is not None and market.order_id is not None
        return resting.order_id, market.order_id

    resting_id, market_id = run(eng, before)
    eng.kill()  # kill -9: recovery alone must rebuild the table
    eng.start()

    async def after(c: EngineClient) -> None:
        seq = ack(await c.ping()).last_seq
        again = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        assert again.duplicate and again.order_id == resting_id
        assert again.order is not None and again.order.qty == 3
        m = ack(await c.submit("carol", "AAPL", "buy", "market", 1, client_order_id="m"))
        assert m.duplicate and m.order_id == market_id and m.order is not None
        # a market order with nothing to buy: its rest canceled, kept through the kill
        assert (m.order.status, m.order.reason, m.order.filled_qty) == (
            "canceled", "no_liquidity", 0
        )  # fmt: skip
        r = reject(await c.submit("alice", "GOOG", "buy", "limit", 4, **LIMIT))
        assert r.reason == "client_order_id_reused"
        assert ack(await c.ping()).last_seq == seq
        fresh = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, price=100))
        assert fresh.order_id is not None and fresh.order_id > market_id

    run(eng, after)


def test_retry_after_kill_9_recovered_from_the_journal(engine_factory: Any) -> None:
    _kill_and_retry(engine_factory(snapshot_every=0))


def test_retry_after_kill_9_recovered_from_a_snapshot(engine_factory: Any) -> None:
    eng = engine_factory(snapshot_every=1)  # a snapshot after every command
    _kill_and_retry(eng)
    assert list((eng.workdir / "journal").glob("*snap*")), "no snapshot was written"


def test_an_order_is_found_by_its_client_order_id_open_or_done(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        placed = ack(await c.submit("alice", "GOOG", "buy", "limit", 5, **LIMIT))
        found = ack(await c.get_order_by_client_id("alice", "c-1"))
        assert found.order_id == placed.order_id
        assert found.order is not None and (found.order.qty, found.order.client_order_id) == (
            5,
            "c-1",
        )
        assert reject(await c.get_order_by_client_id("bob", "c-1")).reason == "unknown_order"
        ack(await c.submit("bob", "GOOG", "sell", "limit", 5, price=100))  # fills it
        done = ack(await c.get_order_by_client_id("alice", "c-1"))
        assert done.order_id == placed.order_id and done.order is not None
        assert (done.order.status, done.order.filled_qty, done.order.client_order_id) == (
            "filled", 5, "c-1"
        )  # fmt: skip

    run(engine, body)


def test_the_fingerprint_covers_the_orders_fields_and_nothing_else() -> None:
    base = wire.NewOrder(1, "alice", "GOOG", "buy", "limit", 5, 100, client_order_id="x")
    fp = fingerprint(base)
    same = [
        msgspec.structs.replace(base, req=99),  # the request id is the transport's
        msgspec.structs.replace(base, order_class="simple"),  # the default, spelled out
    ]
    assert all(fingerprint(o) == fp for o in same)
    other = [
        msgspec.structs.replace(base, qty=6),
        msgspec.structs.replace(base, price=101),
        msgspec.structs.replace(base, stop_price=90),
        msgspec.structs.replace(base, tif="day"),
        msgspec.structs.replace(base, post_only=True),
        msgspec.structs.replace(base, symbol="AAPL"),
        msgspec.structs.replace(base, order_class="bracket", take_profit=wire.TakeProfit(110)),
        msgspec.structs.replace(base, stop_loss=wire.StopLoss(90)),
    ]
    assert len({fingerprint(o) for o in other} | {fp}) == len(other) + 1


def test_the_table_forgets_only_the_order_it_names_and_round_trips() -> None:
    table = ClientOrderIds()
    table.remember(1, "a", 10, 2**64 - 1)
    table.remember(2, "a", 11, 7)
    table.forget(1, "a", 12)  # another order's refusal: "a" still names 10
    assert table.get(1, "a") == (10, 2**64 - 1)
    again = ClientOrderIds()
    again.load(table.dump())
    assert again.dump() == table.dump() == [(1, "a", 10, 2**64 - 1), (2, "a", 11, 7)]
    table.forget(1, "a", 10)
    assert table.get(1, "a") is None and table.get(2, "a") == (11, 7) and len(table) == 1
