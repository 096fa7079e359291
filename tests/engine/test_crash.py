"""kill -9 at random moments loses no acknowledged order.

A client streams orders into an engine; a timer kills the engine with SIGKILL while
requests are in flight; the engine restarts from its journal. Then every acknowledged
request must be reflected, nothing may be half-applied, and the recovered engine must
equal a fresh engine fed the same commands without interruption: same events (bar
timestamps), same books, same open orders.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import msgspec
import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineUnavailable

from .conftest import EngineProcess

SYMBOLS = ["GOOG", "AAPL"]


def _requests(seed: int, n: int) -> list[dict[str, Any]]:
    """A seeded random flow: limit orders near 100, marketable orders, cancels and
    replaces of earlier orders (by their position in the flow)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        r = rng.random()
        account = f"acct{rng.randrange(4)}"
        if r < 0.6 or i < 10:
            side = rng.choice(["buy", "sell"])
            price = 100 + (rng.randrange(1, 6) * (-1 if side == "buy" else 1))
            out.append(dict(kind="new", account=account, symbol=rng.choice(SYMBOLS), side=side,
                            order_type="limit", qty=rng.randrange(1, 20), price=price))  # fmt: skip
        elif r < 0.75:
            side = rng.choice(["buy", "sell"])
            out.append(dict(kind="new", account=account, symbol=rng.choice(SYMBOLS), side=side,
                            order_type=rng.choice(["market", "limit"]), qty=rng.randrange(1, 30),
                            price=110 if side == "buy" else 90))  # fmt: skip
        elif r < 0.9:
            out.append(dict(kind="cancel", target=rng.randrange(i)))
        else:
            out.append(dict(kind="replace", target=rng.randrange(i), qty=rng.randrange(1, 20)))
    return out


async def _send(c: EngineClient, req: dict[str, Any], ids: dict[int, tuple[str, int]],
                index: int) -> wire.Reply | None:  # fmt: skip
    """Send flow item `index`; None when it refers to an order the flow never placed."""
    if req["kind"] == "new":
        price = None if req["order_type"] == "market" else req["price"]
        reply = await c.submit(req["account"], req["symbol"], req["side"], req["order_type"],
                               req["qty"], price=price)  # fmt: skip
        if isinstance(reply, wire.Ack) and reply.order_id is not None:
            ids[index] = (req["account"], reply.order_id)
        return reply
    target = ids.get(req["target"])
    if target is None:
        return None
    account, order_id = target
    if req["kind"] == "cancel":
        return await c.cancel(account, order_id)
    return await c.replace(account, order_id, qty=req["qty"])


def _strip(events: list[Any]) -> list[Any]:
    """Events without their wall-clock timestamps (two runs never share those)."""
    return [{k: v for k, v in msgspec.structs.asdict(e).items() if k != "ts_event"}
            for e in events]  # fmt: skip


async def _state(c: EngineClient, order_ids: list[int], accounts: dict[int, str]) -> Any:
    books = {}
    for sym in SYMBOLS:
        reply = await c.get_book(sym, 10_000)
        assert isinstance(reply, wire.Ack) and reply.book is not None
        books[sym] = (reply.book.bids, reply.book.asks, reply.book.last_price)
    orders = {}
    for oid in order_ids:
        reply = await c.get_order(accounts[oid], oid)
        order = reply.order if isinstance(reply, wire.Ack) else None
        # open, or finished (at a time of its own run: that is left out)
        orders[oid] = order and msgspec.structs.replace(order, created_ns=0, finished_ns=0)
    ping = await c.ping()
    assert isinstance(ping, wire.Ack)
    events = await c.replay(1, ping.last_seq)
    return books, orders, ping.last_seq, _strip(events)


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_kill_9_loses_no_acknowledged_order(engine_factory: Any, seed: int) -> None:
    flow = _requests(seed, 20_000)  # far more than the engine serves before the kill
    victim: EngineProcess = engine_factory(f"victim{seed}", fsync="batch")
    victim.start()
    delay = random.Random(seed).uniform(0.1, 0.6)
    acked: list[tuple[int, wire.Reply | None]] = []  # (flow index, reply) in order

    async def stream() -> None:
        ids: dict[int, tuple[str, int]] = {}
        async with EngineClient(victim.order_entry, timeout=2) as c:
            killer = threading.Timer(delay, victim.kill)
            killer.start()
            try:
                for i, req in enumerate(flow):
                    try:
                        reply = await _send(c, req, ids, i)
                    except EngineUnavailable:
                        return  # the engine died with this request in flight
                    acked.append((i, reply))
            finally:
                killer.cancel()

    asyncio.run(stream())
    assert victim.returncode == -9, "the kill came too late"
    assert len(acked) > 10, "the kill came before any order"
    in_flight = len(acked)  # flow index of the request that may or may not have landed

    victim.start()  # recovery from the journal
    reference: EngineProcess = engine_factory(f"reference{seed}", fsync="none")
    reference.start()

    async def compare() -> None:
        async with EngineClient(victim.order_entry, timeout=10) as v:
            ping = await v.ping()
        assert isinstance(ping, wire.Ack)
        acked_seq = max(
            [e.seq for _, r in acked if isinstance(r, wire.Ack) for e in r.events] or [0]
        )
        assert ping.last_seq >= acked_seq, "acknowledged events were lost"
        # Feed the reference the acknowledged requests, plus the in-flight one if the
        # victim's journal holds it (it may: journaled, then killed before the reply).
        ids: dict[int, tuple[str, int]] = {}
        accounts: dict[int, str] = {}
        async with EngineClient(reference.order_entry, timeout=10) as r:
            for i, _ in acked:
                await _send(r, flow[i], ids, i)
            ref_ping = await r.ping()
            assert isinstance(ref_ping, wire.Ack)
            if ref_ping.last_seq < ping.last_seq:
                await _send(r, flow[in_flight], ids, in_flight)
            for account, oid in ids.values():
                accounts[oid] = account
            expected = await _state(r, sorted(accounts), accounts)
        async with EngineClient(victim.order_entry, timeout=10) as v:
            got = await _state(v, sorted(accounts), accounts)
        assert got[2] == expected[2], "sequence numbers differ"
        assert got[0] == expected[0], "books differ"
        assert got[1] == expected[1], "orders differ (open and finished)"
        assert got[3] == expected[3], "events differ"
        # Every acknowledged reply's events are exactly what the recovered engine holds.
        by_seq = {e["seq"]: e for e in got[3]}
        for _, reply in acked:
            if isinstance(reply, wire.Ack):
                for e in _strip(reply.events):
                    assert by_seq[e["seq"]] == e

    asyncio.run(compare())
    assert victim.stop() == 0
    assert reference.stop() == 0
