"""What a client is told when the engine stops: every reply the engine sent is read,
and a request sent while no engine is there never reaches the one started after (real
engine processes, `EngineClient`)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineUnavailable

from .conftest import EngineProcess


def last_seq(eng: EngineProcess) -> int:
    with urllib.request.urlopen(eng.http + "/status") as r:
        return int(json.loads(r.read())["last_seq"])


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the client's loop run until `condition` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come to hold"
        await asyncio.sleep(0.005)


def order(c: EngineClient, coid: str, account: str = "s") -> asyncio.Future[wire.Reply]:
    return c.send(
        wire.NewOrder(
            c.next_req(), account, "GOOG", "buy", "limit", 1, price=10, client_order_id=coid
        )
    )


async def placed(c: EngineClient, account: str, coid: str) -> bool:
    """Whether the engine holds the order of `coid` (open: these orders never trade)."""
    reply = await c.get_order_by_client_id(account, coid)
    return isinstance(reply, wire.Ack) and reply.order is not None


def in_client(
    eng: EngineProcess, body: Callable[[EngineClient], Awaitable[None]], **kw: Any
) -> None:
    async def main() -> None:
        async with EngineClient(eng.order_entry, **kw) as c:
            await body(c)

    asyncio.run(main())


def test_a_busy_client_reads_every_reply_the_stopping_engine_sent(engine_factory: Any) -> None:
    """The client's loop is busy while the engine applies its orders, answers them and
    stops (SIGTERM): the replies it received and had not read are still read (with
    ZMQ_IMMEDIATE, libzmq dropped them when the connection went, and the client was told
    nothing of orders placed and journaled); then it works on with the restarted engine."""
    eng: EngineProcess = engine_factory()
    eng.start()
    n = 3000

    async def body(c: EngineClient) -> None:
        first = await order(c, "busy-first")  # (its account's too)
        assert isinstance(first, wire.Ack) and first.events
        futs = [order(c, f"busy-{i}") for i in range(n)]  # an event each
        await asyncio.sleep(0)  # the turn's batches go out
        # The loop blocked: nothing read while the engine answers everything and stops.
        deadline = time.monotonic() + 30
        while last_seq(eng) < first.events[-1].seq + n:
            assert time.monotonic() < deadline, "the engine did not apply the orders"
            time.sleep(0.01)
        assert eng.stop() == 0
        replies = await asyncio.gather(*futs, return_exceptions=True)
        assert all(isinstance(r, wire.Ack) for r in replies), {type(r).__name__ for r in replies}
        await until(lambda: not c.connected)
        # the same client, against the restarted engine
        await asyncio.to_thread(eng.start)
        await until(lambda: c.connected)
        assert await placed(c, "s", f"busy-{n - 1}")
        assert isinstance(await c.submit("s", "GOOG", "buy", "limit", 1, price=9), wire.Ack)
        orders = await c.list_orders("s")
        assert isinstance(orders, wire.Ack) and len(orders.orders or []) == n + 2

    in_client(eng, body, timeout=20)
    assert eng.stop() == 0


def test_a_request_sent_while_the_engine_is_down_never_reaches_the_next_one(
    engine_factory: Any,
) -> None:
    """Sent while no engine is connected, a request waits in the client's backlog and
    fails at its deadline; the engine started after that never gets it."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def body(c: EngineClient) -> None:
        await c.ping()
        await asyncio.to_thread(eng.stop)
        await until(lambda: not c.connected)
        fut = order(c, "while-down")
        with pytest.raises(EngineUnavailable):
            await fut
        await asyncio.to_thread(eng.start)
        await until(lambda: c.connected)
        assert isinstance(await c.ping(), wire.Ack)
        await asyncio.sleep(0.2)  # time enough for a frame held anywhere to arrive
        assert not await placed(c, "s", "while-down")

    in_client(eng, body, timeout=1.0)
    assert eng.stop() == 0


def test_a_request_sent_before_the_client_heard_of_the_stop_never_reaches_the_next_engine(
    engine_factory: Any,
) -> None:
    """The engine stops while the client's loop is busy; the client sends before it has
    heard of it, so the frame goes to its socket (no backlog) and libzmq keeps it for the
    next engine. Hearing of the disconnection, the client replaces its socket: the frame
    goes with it, and its request fails at its deadline."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def body(c: EngineClient) -> None:
        await c.ping()
        assert eng.stop() == 0  # the loop blocked: the client hears of it only after
        assert c.connected
        fut = order(c, "in-between")
        with pytest.raises(EngineUnavailable):
            await fut
        assert not c.connected
        await asyncio.to_thread(eng.start)
        await until(lambda: c.connected)
        assert isinstance(await c.ping(), wire.Ack)
        await asyncio.sleep(0.2)
        assert not await placed(c, "s", "in-between")

    in_client(eng, body, timeout=1.0)
    assert eng.stop() == 0
