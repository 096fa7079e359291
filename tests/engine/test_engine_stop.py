"""What a client is told when the engine stops: every reply the engine sent is read,
every request it did not handle is refused `shutting_down`, and a request sent while
no engine is there never reaches the one started after (real engine processes,
`EngineClient`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import zmq

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineUnavailable
from tickplane.engine import service

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


async def never_reached(
    c: EngineClient, eng: EngineProcess, fut: asyncio.Future[wire.Reply], coid: str
) -> None:
    """The order `coid` (its reply `fut`) fails at its deadline, and the engine started
    after that, with which the client works on, never gets it."""
    with pytest.raises(EngineUnavailable):
        await fut
    assert not c.connected
    await asyncio.to_thread(eng.start)
    await until(lambda: c.connected)
    assert isinstance(await c.ping(), wire.Ack)
    await asyncio.sleep(0.2)  # time enough for a frame held anywhere to arrive
    assert not await placed(c, "s", coid)


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
        await never_reached(c, eng, fut, "while-down")

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
        await never_reached(c, eng, fut, "in-between")

    in_client(eng, body, timeout=1.0)
    assert eng.stop() == 0


def test_a_client_blocked_through_a_restart_reads_the_new_engines_reply(
    engine_factory: Any,
) -> None:
    """What remains (docs/engine-service.md): a client whose loop is blocked while its
    engine stops and a new one starts has its old socket reconnect by itself, and a
    frame sent before it heard of the stop reaches the new engine. Its reply is read
    before the socket is replaced, so the caller is told what happened: an Ack, and the
    order is there."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def body(c: EngineClient) -> None:
        await c.ping()
        assert eng.stop() == 0  # the loop blocked from here ...
        fut = order(c, "through")
        eng.start()
        time.sleep(0.5)  # ... while the old socket reconnects (every 0.1 s) and is answered
        reply = await fut
        assert isinstance(reply, wire.Ack), reply
        await until(lambda: c.connected)
        assert await placed(c, "s", "through")

    in_client(eng, body, timeout=10)
    assert eng.stop() == 0


def test_a_client_streaming_at_sigterm_is_told_of_every_request(engine_factory: Any) -> None:
    """Clients stream orders (one at a time, and in batches) when SIGTERM comes: each
    request gets an Ack, journaled (there after the restart), or a Reject
    `shutting_down`, which changed nothing (absent after it); none is left to its
    deadline. A request sent once the engine closed its socket fails at its deadline."""
    eng: EngineProcess = engine_factory()
    eng.start()
    outcomes: dict[str, str] = {}  # client order id -> "ack", "shutting_down" or other

    def outcome(reply: wire.Reply | BaseException) -> str:
        if isinstance(reply, wire.Ack):
            return "ack"
        if isinstance(reply, wire.Reject):
            return reply.reason
        return type(reply).__name__

    async def one_by_one(c: EngineClient, k: int) -> None:
        i = 0
        while True:
            coid = f"one-{k}-{i}"
            try:
                outcomes[coid] = outcome(await order(c, coid))
            except EngineUnavailable as exc:
                outcomes[coid] = outcome(exc)
            if outcomes[coid] != "ack":
                return
            i += 1

    async def batches(c: EngineClient) -> None:
        i = 0
        while True:
            coids = [f"batch-{i + j}" for j in range(50)]
            got = await asyncio.gather(*(order(c, coid) for coid in coids), return_exceptions=True)
            outcomes.update((coid, outcome(r)) for coid, r in zip(coids, got, strict=True))
            if any(outcome(r) != "ack" for r in got):
                return
            i += 50

    async def body(c: EngineClient) -> None:
        await c.ping()
        streams = [asyncio.ensure_future(one_by_one(c, k)) for k in range(4)]
        streams.append(asyncio.ensure_future(batches(c)))
        await until(lambda: sum(o == "ack" for o in outcomes.values()) >= 500)
        os.kill(eng.pid, signal.SIGTERM)
        await asyncio.gather(*streams)
        await until(lambda: not c.connected)
        c.timeout = 0.5
        with pytest.raises(EngineUnavailable):  # sent after the engine closed its socket
            await order(c, "after")
        assert await asyncio.to_thread(eng.stop) == 0
        got = set(outcomes.values())
        assert got <= {"ack", "shutting_down"}, got
        assert "shutting_down" in got, "no request came after intake stopped"
        # after the restart: what was acknowledged is there, what was refused is not
        await asyncio.to_thread(eng.start)
        await until(lambda: c.connected)
        c.timeout = 10
        held = await asyncio.gather(*(placed(c, "s", coid) for coid in outcomes))
        for (coid, said), there in zip(outcomes.items(), held, strict=True):
            assert there == (said == "ack"), (coid, said, there)
        assert not await placed(c, "s", "after")

    in_client(eng, body, timeout=10)
    assert "(shutting_down)" in eng.log_text()
    assert eng.stop() == 0


def test_a_client_that_keeps_sending_does_not_hold_the_stop(engine_factory: Any) -> None:
    """A client sending batches without pause while the engine stops gets `shutting_down`
    for them, and the engine stops all the same (it answers for a bounded time)."""
    eng: EngineProcess = engine_factory()
    eng.start()
    frame = wire.encode_batch([wire.Ping(i + 1) for i in range(wire.MAX_BATCH)])
    reasons: set[str] = set()
    done = threading.Event()

    def flood() -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(eng.order_entry)
        try:
            while not done.is_set():
                with contextlib.suppress(zmq.Again):  # its queue full: read, send again
                    sock.send(frame, zmq.NOBLOCK)
                while sock.poll(0):
                    for r in wire.decode_replies(sock.recv()):
                        reasons.add(r.reason if isinstance(r, wire.Reject) else "ack")
        finally:
            sock.close(0)
            ctx.term()

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        deadline = time.monotonic() + 10
        while "ack" not in reasons:
            assert time.monotonic() < deadline, "the engine answered nothing"
            time.sleep(0.01)
        t0 = time.monotonic()
        assert eng.stop() == 0
        took = time.monotonic() - t0
        while "shutting_down" not in reasons and time.monotonic() < t0 + 10:
            time.sleep(0.01)  # (the flooder reads what the engine sent before it went)
    finally:
        done.set()
        flooder.join()
    assert "shutting_down" in reasons
    # the refusing, then the sockets' linger for replies the flooder did not read
    bound = (service.SHUTDOWN_REFUSE_MS + service.SHUTDOWN_LINGER_MS) / 1000
    assert took < bound + 3, took
