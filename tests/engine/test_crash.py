"""kill -9 at random moments loses no acknowledged order.

A client streams orders into an engine; a timer kills the engine with SIGKILL while
requests are in flight; the engine restarts from its journal. Then every acknowledged
request must be reflected, nothing may be half-applied, and the recovered engine must
equal a fresh engine fed the same commands without interruption: same events (bar
timestamps), same books, same open orders.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections import deque
from pathlib import Path
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


# -- kill -9 inside a multi-request commit ------------------------------------------------------

HOOK = Path(__file__).parent / "crashhook"  # its sitecustomize kills inside a commit
ACCOUNTS = [f"acct{k}" for k in range(4)]


def _next_request(
    rng: random.Random, c: EngineClient, i: int, placed: list[tuple[str, int]]
) -> wire.Request:
    """Flow item `i`: orders (most with a client order id; now and then a new account's,
    or a bracket), cancels and replaces of acknowledged orders, kill switches on and off,
    mass cancels. Many write more than one journal record."""
    r = rng.random()
    account = f"new{i}" if rng.random() < 0.03 else rng.choice(ACCOUNTS)
    coid = f"c{i}" if rng.random() < 0.7 else None
    side, symbol = rng.choice(["buy", "sell"]), rng.choice(SYMBOLS)
    sign = -1 if side == "buy" else 1
    req = c.next_req()
    if r < 0.5:
        price = 100 + sign * rng.randrange(1, 6)
        qty = rng.randrange(1, 20)
        return wire.NewOrder(req, account, symbol, side, "limit", qty, price, client_order_id=coid)
    if r < 0.6:
        qty, price = rng.randrange(1, 30), 100 - sign * 10  # marketable
        return wire.NewOrder(req, account, symbol, side, "limit", qty, price, client_order_id=coid)
    if r < 0.66:
        price = 100 + sign * rng.randrange(1, 6)
        return wire.NewOrder(
            req, account, symbol, side, "limit", rng.randrange(1, 10), price,
            client_order_id=coid, order_class="bracket",
            take_profit=wire.TakeProfit(price - sign * 20),
            stop_loss=wire.StopLoss(price + sign * 20),
        )  # fmt: skip
    if r < 0.8 and placed:
        owner, order_id = rng.choice(placed)
        return wire.CancelOrder(req, owner, order_id)
    if r < 0.88 and placed:
        owner, order_id = rng.choice(placed)
        return wire.ReplaceOrder(req, owner, order_id, qty=rng.randrange(1, 20))
    if r < 0.93:
        return wire.Control(req, "kill", account=rng.choice(ACCOUNTS))
    if r < 0.98:
        return wire.Control(req, "revive", account=rng.choice(ACCOUNTS))
    return wire.MassCancel(req, account=rng.choice(ACCOUNTS))


def _placed(msg: wire.Request, reply: wire.Reply) -> tuple[str, int] | None:
    if isinstance(msg, wire.NewOrder) and isinstance(reply, wire.Ack) and reply.order_id:
        return msg.account, reply.order_id
    return None


async def _run_all(c: EngineClient, msgs: list[wire.Request]) -> list[wire.Reply]:
    """`msgs` renumbered for `c`, pipelined; their replies in order."""
    renumbered = [msgspec.structs.replace(m, req=c.next_req()) for m in msgs]
    return list(await asyncio.gather(*(c.send(m) for m in renumbered)))


def _outcome(reply: wire.Reply) -> tuple[str, int | None, bool, str]:
    """What a reply says happened, without request numbers and timestamps."""
    if isinstance(reply, wire.Ack):
        return "ack", reply.order_id, reply.duplicate, ""
    assert isinstance(reply, wire.Reject)
    return "reject", None, False, reply.reason


@pytest.mark.parametrize("seed", range(1, 7))
def test_kill_9_inside_multi_request_commits(engine_factory: Any, seed: int) -> None:
    """Requests in flight in `Batch` frames (bursts of up to 24, up to 4 bursts in
    flight), client order ids, new accounts, brackets, kill switches and snapshots every
    100 records; the engine is killed inside a commit of several records, at a random
    byte of it (`crashhook`). The restarted engine must equal a reference fed the
    acknowledged requests and then the unacknowledged ones whose records survived (a
    prefix of them, whole requests only); then a retry of every unacknowledged client
    order id gets, from both, the same answer: a duplicate of an order that survived,
    else a new order (never a duplicate of an order never placed)."""
    rng = random.Random(seed)
    victim: EngineProcess = engine_factory(f"victim{seed}", fsync="none", snapshot_every=100)
    victim.env = {
        "PYTHONPATH": os.pathsep.join([str(HOOK), os.environ.get("PYTHONPATH", "")]),
        "TICKPLANE_TEST_KILL_IN_COMMIT": f"{rng.randrange(30, 120)}:{seed}",
    }
    victim.start()
    sent: list[wire.Request] = []
    replies: list[wire.Reply] = []  # the acknowledged prefix of `sent`

    async def stream() -> None:
        placed: list[tuple[str, int]] = []
        bursts: deque[list[asyncio.Future[wire.Reply]]] = deque()
        async with EngineClient(victim.order_entry, timeout=2) as c:
            while len(sent) < 20_000:
                burst = []
                for _ in range(rng.randrange(1, 25)):  # sent in one loop turn: a Batch
                    msg = _next_request(rng, c, len(sent), placed)
                    sent.append(msg)
                    burst.append(c.send(msg))
                bursts.append(burst)
                while len(bursts) > 3 or (bursts and len(sent) >= 20_000):
                    for fut in bursts.popleft():
                        try:
                            reply = await fut
                        except EngineUnavailable:
                            return  # killed: this request and those after it unanswered
                        if (p := _placed(sent[len(replies)], reply)) is not None:
                            placed.append(p)
                        replies.append(reply)
                await asyncio.sleep(0)  # the burst goes out (the client flushes it)

    asyncio.run(stream())
    assert len(replies) < len(sent), "the engine was not killed"
    victim.kill()
    assert victim.returncode == -9
    acked = len(replies)
    assert acked > 50, "killed before much was acknowledged"

    victim.env = {}
    victim.start()  # recovery: snapshot + journal
    reference: EngineProcess = engine_factory(f"reference{seed}", fsync="none")
    reference.start()

    async def compare() -> None:
        async with (
            EngineClient(victim.order_entry, timeout=10) as v,
            EngineClient(reference.order_entry, timeout=10) as r,
        ):
            ping = await v.ping()
            assert isinstance(ping, wire.Ack)
            acked_seq = max(
                [e.seq for a in replies if isinstance(a, wire.Ack) for e in a.events] or [0]
            )
            assert ping.last_seq >= acked_seq, "acknowledged events were lost"
            ref_replies = await _run_all(r, sent[:acked])
            assert [_outcome(a) for a in ref_replies] == [_outcome(a) for a in replies]
            # the unacknowledged requests that survived: a prefix, up to the victim's seq
            landed = acked
            while True:
                ref_ping = await r.ping()
                assert isinstance(ref_ping, wire.Ack)
                if ref_ping.last_seq >= ping.last_seq:
                    break
                assert landed < len(sent), "the victim holds events no request explains"
                ref_replies += await _run_all(r, [sent[landed]])
                landed += 1
            assert ref_ping.last_seq == ping.last_seq, "a request survived in part"
            placed = [
                p
                for m, a in zip(sent[:landed], ref_replies, strict=True)
                if (p := _placed(m, a)) is not None
            ]
            accounts = {oid: account for account, oid in placed}
            got = await _state(v, sorted(accounts), accounts)
            expected = await _state(r, sorted(accounts), accounts)
            assert got[0] == expected[0], "books differ"
            assert got[1] == expected[1], "open orders differ"
            assert got[3] == expected[3], "events differ"
            by_seq = {e["seq"]: e for e in got[3]}
            for a in replies:
                if isinstance(a, wire.Ack):
                    for e in _strip(a.events):
                        assert by_seq[e["seq"]] == e
            # every unacknowledged client order id, retried on both
            retries = [
                (i, m)
                for i, m in enumerate(sent[acked:], acked)
                if isinstance(m, wire.NewOrder) and m.client_order_id is not None
            ]
            assert retries, "no client order id was in flight"
            for i, m in retries:
                (again,) = await _run_all(v, [m])
                (ref,) = await _run_all(r, [m])
                assert _outcome(again) == _outcome(ref), (i, m)
                if i >= landed:  # its records did not survive: it runs as a new order
                    assert not (isinstance(again, wire.Ack) and again.duplicate), (i, m)
            got = await _state(v, sorted(accounts), accounts)
            expected = await _state(r, sorted(accounts), accounts)
            assert got == expected, "the retries left the engines apart"

    asyncio.run(compare())
    assert victim.stop() == 0
    assert reference.stop() == 0
