"""The engine process end to end: real process, real sockets, through EngineClient."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import zmq

from tickplane.core import wire
from tickplane.core.accounts import ACCOUNT_RULE
from tickplane.core.client import EngineClient
from tickplane.core.events import (
    KillSwitchChanged,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    PositionChanged,
    StopTriggered,
    SymbolHalted,
    SymbolResumed,
    TopOfBook,
    Trade,
    TradePrint,
)
from tickplane.engine import service

from .conftest import EngineProcess, engine_settings

T = TypeVar("T")


def run(eng: EngineProcess, body: Callable[[EngineClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with EngineClient(eng.order_entry, eng.events, timeout=10) as client:
            return await body(client)

    return asyncio.run(main())


def ack(reply: wire.Reply) -> wire.Ack:
    assert isinstance(reply, wire.Ack), reply
    return reply


def kinds(reply: wire.Reply) -> list[str]:
    return [type(e).__name__ for e in ack(reply).events]


def http_get(eng: EngineProcess, path: str) -> str:
    """The body of the engine's HTTP `path` (`/metrics`, `/status`)."""
    with urllib.request.urlopen(eng.http + path) as r:
        return str(r.read().decode())


def refused(reply: wire.Reply, reason: str) -> wire.Reject:
    assert isinstance(reply, wire.Reject) and reply.reason == reason, reply
    return reply


def test_every_order_type_and_the_replies(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        sell = ack(await c.submit("alice", "GOOG", "sell", "limit", 10, price=100))
        assert kinds(sell) == ["OrderAccepted"]
        assert sell.order_id == 1
        stop = ack(await c.submit("carol", "GOOG", "buy", "stop", 2, stop_price=100))
        assert kinds(stop) == ["OrderAccepted"]
        buy = await c.submit("bob", "GOOG", "buy", "market", 4, client_order_id="b-1")
        assert kinds(buy) == [
            "OrderAccepted",
            "Trade",
            "PositionChanged",
            "PositionChanged",
            "StopTriggered",
            "Trade",
            "PositionChanged",
            "PositionChanged",
        ]
        acc = ack(buy).events[0]
        assert isinstance(acc, OrderAccepted) and acc.client_order_id == "b-1"
        trade = ack(buy).events[1]
        assert isinstance(trade, Trade) and (trade.price, trade.qty, trade.maker) == (100, 4, 1)
        pos = ack(buy).events[2]
        assert isinstance(pos, PositionChanged)
        assert (pos.account, pos.position, pos.cost_basis, pos.cash) == ("bob", 4, 400, -400)
        assert isinstance(ack(buy).events[4], StopTriggered)
        # stop_limit held, ioc and fok outcomes, post-only
        sl = ack(await c.submit("carol", "GOOG", "sell", "stop_limit", 1, price=90, stop_price=95))
        assert kinds(sl) == ["OrderAccepted"]
        ioc = ack(await c.submit("dan", "GOOG", "buy", "limit", 9, price=100, tif="ioc"))
        assert kinds(ioc) == [
            "OrderAccepted",
            "Trade",
            "PositionChanged",
            "PositionChanged",
            "OrderCanceled",
        ]
        canceled = ioc.events[-1]
        assert isinstance(canceled, OrderCanceled) and canceled.reason == "ioc"
        fok = ack(await c.submit("dan", "GOOG", "buy", "limit", 9, price=100, tif="fok"))
        assert isinstance(fok.events[-1], OrderCanceled) and fok.events[-1].reason == "fok"
        post = ack(await c.submit("erin", "GOOG", "buy", "limit", 1, price=99, post_only=True))
        assert kinds(post) == ["OrderAccepted"]
        # replace and cancel, own orders only
        rep = ack(await c.replace("erin", post.order_id or 0, qty=3, price=98))
        assert isinstance(rep.events[0], OrderReplaced) and rep.events[0].price == 98
        assert isinstance(await c.cancel("mallory", post.order_id or 0), wire.Reject)
        cxl = ack(await c.cancel("erin", post.order_id or 0))
        assert isinstance(cxl.events[0], OrderCanceled) and cxl.events[0].remaining == 3
        again = await c.cancel("erin", post.order_id or 0)
        assert isinstance(again, wire.Reject) and again.reason == "unknown_order"
        seqs = [e.seq for e in (sell.events + stop.events + ack(buy).events)]
        assert seqs == list(range(1, len(seqs) + 1))

    run(engine, body)


def test_bad_input_gets_the_contracts_reasons(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        cases = [
            (dict(side="up"), "bad_side"),
            (dict(order_type="iceberg"), "bad_type"),
            (dict(qty=0), "bad_qty"),
            (dict(qty=10**13), "bad_qty"),
            (dict(price=None), "bad_price"),
            (dict(tif="forever"), "bad_tif"),
            (dict(order_type="market", post_only=True), "bad_post_only"),
        ]
        for change, reason in cases:
            args: dict[str, Any] = dict(side="buy", order_type="limit", qty=1, price=10)
            args.update(change)
            reply = ack(
                await c.submit(
                    "zed", "GOOG", args.pop("side"), args.pop("order_type"), args.pop("qty"), **args
                )
            )
            assert len(reply.events) == 1
            ev = reply.events[0]
            assert isinstance(ev, OrderRejected) and ev.reason == reason, change
        unknown = await c.submit("zed", "NOPE", "buy", "limit", 1, price=1)
        assert isinstance(unknown, wire.Reject) and unknown.reason == "unknown_symbol"
        book = ack(await c.get_book("GOOG"))
        assert book.book is not None and book.book.bids == [] and book.book.asks == []

    run(engine, body)


def test_malformed_frames_are_rejected_and_the_engine_survives(engine: EngineProcess) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(engine.order_entry)
    try:
        for frame in [
            b"",
            b"\x01",
            b"\x02\x91\x01",
            b"\x01\xc1",
            b"\x01\x93\xa3new\x07\x01",
            bytes(range(256)),
            b"\x01\x92\xa3new\xc3",  # req `true`: answered with req 0, not `true`
        ]:
            sock.send(frame)
            reply = wire.decode_reply(sock.recv())
            assert isinstance(reply, wire.Reject) and reply.reason == "bad_frame"
        # Messages of several frames are dropped whole, alone or between good ones: the
        # framing of what follows stays right (each good request gets its own reply).
        ping = wire.encode(wire.Ping(1))
        sock.send_multipart([ping, ping])
        sock.send_multipart([ping, ping, ping])
        for req in (2, 3, 4):
            sock.send(wire.encode(wire.Ping(req)))
        sock.send_multipart([ping, ping])
        sock.send(wire.encode(wire.Ping(99)))
        replies = [wire.decode_reply(sock.recv()) for _ in range(4)]
        assert [(type(r), r.req) for r in replies] == [(wire.Ack, n) for n in (2, 3, 4, 99)]
    finally:
        sock.close(0)
        ctx.term()
    text = http_get(engine, "/metrics")
    assert "tickplane_engine_bad_frames_total 10.0" in text
    # Seven were answered with a Reject; the three multi-frame messages were dropped unanswered.
    assert 'tickplane_engine_request_rejects_total{reason="bad_frame"} 7.0' in text


def test_a_batch_is_its_requests_one_by_one_and_gets_one_frame_back(
    engine: EngineProcess,
) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(engine.order_entry)
    try:
        sock.send(
            wire.encode_batch(
                [
                    wire.NewOrder(1, "bx", "GOOG", "sell", "limit", 5, 100),
                    wire.NewOrder(2, "by", "GOOG", "buy", "limit", 2, 100),
                    wire.CancelOrder(3, "bx", 999),
                    wire.NewOrder(4, "by", "NOPE", "buy", "limit", 1, 100),
                    wire.Ping(5),
                ]
            )
        )
        frame = sock.recv()
        replies = wire.decode_replies(frame)
        assert [r.req for r in replies] == [1, 2, 3, 4, 5]
        assert kinds(replies[0]) == ["OrderAccepted"]
        assert kinds(replies[1])[:2] == ["OrderAccepted", "Trade"]  # it met the first
        assert [getattr(r, "reason", None) for r in replies[2:4]] == [
            "unknown_order",
            "unknown_symbol",
        ]
        seqs = [e.seq for r in replies if isinstance(r, wire.Ack) for e in r.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # in order, gap-free
        # Too long a batch: every request in it refused with the reason, none run.
        many = [
            wire.NewOrder(10 + i, "bz", "GOOG", "buy", "limit", 1, 50)
            for i in range(wire.MAX_BATCH + 1)
        ]
        sock.send(wire.encode_batch(many))
        refused = wire.decode_replies(sock.recv())
        assert [r.req for r in refused] == [m.req for m in many]
        assert {getattr(r, "reason", None) for r in refused} == {"batch_too_large"}
    finally:
        sock.close(0)
        ctx.term()
    listed = ack(run(engine, lambda c: c.list_orders("bz")))
    assert listed.orders == []


def test_get_order_mass_cancel_and_isolation(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        ids = []
        for i in range(3):
            ids.append(ack(await c.submit("ann", "AAPL", "buy", "limit", 1, price=10 + i)).order_id)
        other = ack(await c.submit("ben", "AAPL", "buy", "limit", 1, price=5)).order_id
        view = ack(await c.get_order("ann", ids[0] or 0)).order
        assert view is not None and (view.status, view.price, view.qty) == ("resting", 10, 1)
        assert isinstance(await c.get_order("ben", ids[0] or 0), wire.Reject)
        mass = ack(await c.mass_cancel("ann"))
        assert sorted(e.id for e in mass.events if isinstance(e, OrderCanceled)) == ids
        assert ack(await c.get_order("ben", other or 0)).order is not None
        book = ack(await c.get_book("AAPL")).book
        assert book is not None and [(lv.price, lv.qty) for lv in book.bids] == [(5, 1)]

    run(engine, body)


def test_the_event_stream_is_gap_free_and_replays_what_was_missed(
    engine: EngineProcess,
) -> None:
    async def body(c: EngineClient) -> None:
        # Events published before the subscriber existed come through replay.
        sent = [
            ack(await c.submit("sam", "GOOG", "sell", "limit", 1, price=200 + i)) for i in range(20)
        ]
        got: list[Any] = []

        async def consume() -> None:
            async for ev in c.events(from_seq=1):
                got.append(ev)
                if ev.seq == 40:
                    return

        task = asyncio.create_task(consume())
        for i in range(20):
            await c.submit("sam", "GOOG", "sell", "limit", 1, price=300 + i)
        await asyncio.wait_for(task, 10)
        assert [e.seq for e in got] == list(range(1, 41))
        assert [e.id for e in got[:20]] == [r.order_id for r in sent]
        bad = await c.request(wire.Replay(c.next_req(), 5, 2))
        assert isinstance(bad, wire.Reject) and bad.reason == "bad_range"
        assert await c.replay(5, 2) == []

    run(engine, body)


def test_health_status_and_metrics(engine: EngineProcess) -> None:
    run(engine, lambda c: c.submit("m", "GOOG", "buy", "limit", 1, price=1))
    with urllib.request.urlopen(engine.http + "/healthz") as r:
        assert r.status == 200
    status = json.loads(http_get(engine, "/status"))
    assert status["ready"] is True and status["last_seq"] == 1 and status["cpus"]
    text = http_get(engine, "/metrics")
    assert 'tickplane_engine_orders_total{outcome="accepted"} 1.0' in text
    assert "tickplane_engine_journal_fsync_seconds_count" in text


def test_sigterm_snapshots_and_a_restart_resumes(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory()
    eng.start()
    first = run(eng, lambda c: c.submit("r", "GOOG", "buy", "limit", 5, price=50))
    assert eng.stop() == 0
    assert list((eng.workdir / "journal").glob("snapshot-*.tps"))
    # the shutdown says when it starts and what it flushed
    logged = eng.log_text()
    assert "stopping: intake stopped at seq 1" in logged
    assert re.search(r"stopped in [0-9.]+s: journal flushed .* record \d+ \(last seq 1\)", logged)
    eng.start()

    async def body(c: EngineClient) -> None:
        view = ack(await c.get_order("r", ack(first).order_id or 0)).order
        assert view is not None and view.qty == 5
        nxt = ack(await c.submit("r", "GOOG", "buy", "limit", 1, price=49))
        assert nxt.order_id == 2 and nxt.events[0].seq == 2

    run(eng, body)
    assert eng.stop() == 0


def test_sigterm_delivers_the_replies_of_every_request_it_applied(engine_factory: Any) -> None:
    """A clean stop sends the replies of every request it applied: the sockets were
    closed without lingering, so replies still in ZeroMQ's queue for a client slow to
    read (its TCP window full) were dropped, and the client was told nothing of orders
    the engine had placed and journaled. (A plain DEALER here; `EngineClient` reading
    every reply it received when the engine goes: tests/engine/test_engine_stop.py.)"""
    eng: EngineProcess = engine_factory()
    eng.start()
    n = 40_000  # ~12 MB of replies (their events name a long client order id)
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVHWM, 1)  # a reader this slow backs up to the engine
    dealer.connect(eng.order_entry)
    try:
        for start in range(0, n, wire.MAX_BATCH):
            batch = [
                wire.NewOrder(
                    i + 1, "t", "GOOG", "buy", "limit", 1, price=10, client_order_id=f"{i:0120}"
                )
                for i in range(start, min(n, start + wire.MAX_BATCH))
            ]
            dealer.send(wire.encode_batch(batch))
        # Nothing is read while the engine applies them all and stops: the replies
        # wait in the engine's queue, more than the TCP buffers hold.
        deadline = time.monotonic() + 30
        while json.loads(http_get(eng, "/status"))["last_seq"] < n:
            assert time.monotonic() < deadline, "the engine did not apply the requests"
            time.sleep(0.01)
        os.kill(eng.pid, signal.SIGTERM)
        time.sleep(0.5)  # the engine closes its sockets meanwhile
        acked = 0
        while dealer.poll(2000):
            acked += sum(isinstance(r, wire.Ack) for r in wire.decode_replies(dealer.recv()))
    finally:
        dealer.close(0)
        ctx.term()
    assert eng.stop() == 0
    assert acked == n
    eng.start()

    async def placed(c: EngineClient) -> int:
        return len(ack(await c.list_orders("t")).orders or [])

    assert run(eng, placed) == n
    assert eng.stop() == 0


def test_a_refused_first_order_leaves_no_account(engine_factory: Any) -> None:
    """New accounts' orders that risk refuses (or the ceiling) create no account and
    journal nothing: `/status` counts none of them, the journal holds no ACCOUNT record
    of theirs; a later order of one of them that passes creates it, and recovery gives
    every account the index it had live (its orders come back under it)."""
    from tickplane.engine.journal import RecordType, read

    eng: EngineProcess = engine_factory(risk={"default": {"max_order_qty": 100}})
    eng.start()
    names = [f"new-{i}" for i in range(5)]

    async def body(c: EngineClient) -> None:
        ack(await c.submit("first", "GOOG", "buy", "limit", 1, price=10))
        for name in names:
            refused = await c.submit(name, "GOOG", "buy", "limit", 101, price=10)
            assert isinstance(refused, wire.Reject) and refused.reason == "max_order_qty"
        assert json.loads(http_get(eng, "/status"))["accounts"] == 1
        ack(await c.submit("new-3", "GOOG", "buy", "limit", 2, price=11))
        ack(await c.submit("first", "GOOG", "buy", "limit", 3, price=12))

    run(eng, body)
    assert json.loads(http_get(eng, "/status"))["accounts"] == 2
    assert eng.stop() == 0
    journaled = [
        r.account()
        for r in read(Path(eng.settings["journal_dir"]))
        if r.rtype == RecordType.ACCOUNT
    ]
    assert journaled == ["first", "new-3"]
    eng.start()

    async def after(c: EngineClient) -> None:
        mine = ack(await c.list_orders("new-3")).orders or []
        assert [(o.account, o.qty) for o in mine] == [("new-3", 2)]
        assert len(ack(await c.list_orders("first")).orders or []) == 2

    run(eng, after)
    assert eng.stop() == 0


def test_pre_trade_risk_refuses_with_a_reason_and_journals_nothing(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(
        risk={
            "default": {"max_order_qty": 100, "max_open_orders": 2},
            "accounts": {"whale": {"max_order_qty": 1000}},
            "circuit_breaker": {
                "move_bps": 500,
                "window_ns": 60_000_000_000,
                "halt_ns": 60_000_000_000,
            },
        }
    )
    eng.start()

    async def body(c: EngineClient) -> None:
        big = await c.submit("minnow", "GOOG", "buy", "limit", 101, price=100)
        assert isinstance(big, wire.Reject) and big.reason == "max_order_qty"
        assert "101" in big.message
        assert isinstance(await c.submit("whale", "GOOG", "buy", "limit", 500, price=100), wire.Ack)
        for _ in range(2):
            ack(await c.submit("minnow", "GOOG", "buy", "limit", 1, price=90))
        third = await c.submit("minnow", "GOOG", "buy", "limit", 1, price=90)
        assert isinstance(third, wire.Reject) and third.reason == "max_open_orders"
        # A trade at 100, then one 10% away, trips the circuit breaker.
        ack(await c.submit("whale", "GOOG", "sell", "limit", 1, price=100))
        ack(await c.submit("whale", "GOOG", "sell", "limit", 600, price=80))
        halted = await c.submit("whale", "GOOG", "buy", "limit", 1, price=80)
        assert isinstance(halted, wire.Reject) and halted.reason == "symbol_halted"
        ping = ack(await c.ping())
        events = await c.replay(1, ping.last_seq)
        assert any(type(e).__name__ == "SymbolHalted" for e in events)
        # Nothing refused reached the journal: order ids have no holes from refusals.
        accepted = [e.id for e in events if isinstance(e, OrderAccepted)]
        assert accepted == list(range(1, len(accepted) + 1))

    run(eng, body)
    text = http_get(eng, "/metrics")
    assert 'tickplane_engine_risk_rejects_total{reason="max_order_qty"} 1.0' in text
    # Every refused request, risk or not, by its reason.
    assert 'tickplane_engine_request_rejects_total{reason="max_order_qty"} 1.0' in text
    assert 'tickplane_engine_request_rejects_total{reason="symbol_halted"} 1.0' in text
    assert eng.stop() == 0


def test_market_orders_and_stops_stop_at_the_market_collar(engine_factory: Any) -> None:
    """A market order trades no further than its collar from the reference price (its
    own `market_collar_bps`, else the price band's width), a stop no further than it
    from its stop price; the rest is canceled `market_collar`. A kill -9 and a restart
    under other limits recovers the same book and events: the collar is journaled."""
    eng: EngineProcess = engine_factory(
        symbols=[{"name": "GOOG", "reference_price": 100}],
        risk={
            "default": {"price_band_bps": 1000},
            "accounts": {"mm": {}, "tight": {"price_band_bps": 1000, "market_collar_bps": 500}},
        },
    )
    eng.start()

    def collared(reply: wire.Reply) -> tuple[list[tuple[int, int]], tuple[int, int, str]]:
        """The trades of an order, and its last event's (id, remaining, reason)."""
        events = ack(reply).events
        last = events[-1]
        assert isinstance(last, OrderCanceled), events
        trades = [(e.price, e.qty) for e in events if isinstance(e, Trade)]
        return trades, (last.id, last.remaining, last.reason)

    async def body(c: EngineClient) -> tuple[Any, list[Any]]:
        for price in (100, 104, 109, 115):  # mm has no band: 115 rests too
            ack(await c.submit("mm", "GOOG", "sell", "limit", 1, price=price))
        for price in (99, 95, 80):
            ack(await c.submit("mm", "GOOG", "buy", "limit", 1, price=price))
        # 5% from the reference 100: up to 105
        tight = await c.submit("tight", "GOOG", "buy", "market", 4)
        assert collared(tight) == ([(100, 1), (104, 1)], (ack(tight).order_id, 2, "market_collar"))
        # the band's 10% from the last trade, 104: up to 114
        fat = await c.submit("fat", "GOOG", "buy", "market", 3)
        assert collared(fat) == ([(109, 1)], (ack(fat).order_id, 2, "market_collar"))
        # a sell stop at 99 trades down to 90, 10% below its stop price, not to 80
        stop = ack(await c.submit("stopper", "GOOG", "sell", "stop", 3, stop_price=99))
        hit = ack(await c.submit("fat", "GOOG", "sell", "limit", 1, price=99))
        assert [type(e).__name__ for e in hit.events if not isinstance(e, PositionChanged)] == [
            "OrderAccepted",
            "Trade",
            "StopTriggered",
            "Trade",
            "OrderCanceled",
        ]
        assert collared(hit) == ([(99, 1), (95, 1)], (stop.order_id, 2, "market_collar"))
        # held through the restarts below: 10% below 90, down to 81
        ack(await c.submit("late", "GOOG", "sell", "stop", 2, stop_price=90))
        book = ack(await c.get_book("GOOG")).book
        assert book is not None
        assert [lv.price for lv in book.asks] == [115] and [lv.price for lv in book.bids] == [80]
        levels = (book.bids, book.asks, book.last_price)
        return levels, await c.replay(1, ack(await c.ping()).last_seq)

    levels, events = run(eng, body)
    with urllib.request.urlopen(eng.http + "/metrics") as r:
        assert 'tickplane_engine_cancels_total{reason="market_collar"} 3.0' in r.read().decode()
    eng.kill()
    eng.settings["risk"] = {}  # no band, no collar: recovery must not need them
    eng.start()

    async def after(c: EngineClient) -> None:
        book = ack(await c.get_book("GOOG")).book
        assert book is not None and (book.bids, book.asks, book.last_price) == levels
        assert await c.replay(1, len(events)) == events
        # new orders get the limits now in force: none
        swept = ack(await c.submit("fat", "GOOG", "buy", "market", 2))
        assert [(e.price, e.qty) for e in swept.events if isinstance(e, Trade)] == [(115, 1)]

    run(eng, after)
    assert eng.stop() == 0  # a snapshot holds the stop now

    async def trigger(c: EngineClient) -> None:
        ack(await c.submit("mm", "GOOG", "buy", "limit", 1, price=85))
        hit = await c.submit("fat", "GOOG", "sell", "limit", 1, price=85)  # 85 <= 90
        assert [type(e).__name__ for e in ack(hit).events][-2:] == [
            "StopTriggered",
            "OrderCanceled",  # the bid at 80 is beyond its collar, 81
        ]
        assert collared(hit)[1][1:] == (2, "market_collar")

    eng.start()
    run(eng, trigger)
    assert eng.stop() == 0


def test_kill_switches_and_halts(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        for i in range(2):
            ack(await c.submit("kim", "GOOG", "buy", "limit", 1, price=10 + i))
        ack(await c.submit("lee", "GOOG", "buy", "limit", 1, price=5))
        killed = ack(await c.control("kill", account="kim"))
        assert [type(e).__name__ for e in killed.events] == [
            "KillSwitchChanged",
            "OrderCanceled",
            "OrderCanceled",
        ]
        assert {getattr(e, "reason", None) for e in killed.events[1:]} == {"kill_switch"}
        mine = ack(await c.mass_cancel("lee")).events  # a user's own says `user`
        assert [(type(e), e.reason) for e in mine if isinstance(e, OrderCanceled)] == [
            (OrderCanceled, "user")
        ]
        refused = await c.submit("kim", "GOOG", "buy", "limit", 1, price=10)
        assert isinstance(refused, wire.Reject) and refused.reason == "kill_switch"
        ack(await c.submit("lee", "GOOG", "buy", "limit", 1, price=6))  # others trade on
        ack(await c.control("revive", account="kim"))
        ack(await c.submit("kim", "GOOG", "buy", "limit", 1, price=10))
        halted = ack(await c.control("halt", symbol="AAPL"))
        assert type(halted.events[0]).__name__ == "SymbolHalted"
        refused = await c.submit("lee", "AAPL", "buy", "limit", 1, price=10)
        assert isinstance(refused, wire.Reject) and refused.reason == "symbol_halted"
        ack(await c.control("resume", symbol="AAPL"))
        ack(await c.submit("lee", "AAPL", "buy", "limit", 1, price=10))
        bad = await c.control("explode")
        assert isinstance(bad, wire.Reject) and bad.reason == "bad_action"

    run(engine, body)
    text = http_get(engine, "/metrics")
    assert "tickplane_engine_kill_switches_engaged 0.0" in text
    assert 'tickplane_engine_symbol_halts_total{reason="manual"} 1.0' in text
    assert 'tickplane_engine_cancels_total{reason="kill_switch"} 2.0' in text


def test_a_halts_end_is_announced_when_its_time_is_up(engine_factory: Any) -> None:
    """A halt for a time (by hand, or the circuit breaker's) ends with its
    `SymbolResumed` on the event stream when the time is up, though no command comes:
    it was announced only with the next command's events, so a subscriber waiting for
    the resume to trade again waited for ever on a quiet engine. The end is journaled,
    so a restart after a kill -9 replays it at the same seq."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def live(c: EngineClient) -> tuple[SymbolHalted, SymbolResumed]:
        reply = ack(await c.control("halt", symbol="GOOG", duration_ns=300_000_000))
        halted = reply.events[0]
        assert isinstance(halted, SymbolHalted) and halted.until is not None

        async def first_event() -> Any:
            async for ev in c.events(from_seq=reply.last_seq + 1):
                return ev

        resumed = await asyncio.wait_for(first_event(), 10)
        assert isinstance(resumed, SymbolResumed), resumed
        assert (resumed.symbol, resumed.ts_event) == ("GOOG", halted.until)
        assert resumed.seq == halted.seq + 1
        return halted, resumed

    halted, resumed = run(eng, live)
    eng.kill()
    (eng.workdir / "journal" / "events.tpe").unlink(missing_ok=True)  # from the journal
    eng.start()

    async def after(c: EngineClient) -> None:
        assert await c.replay(1, resumed.seq) == [halted, resumed]
        placed = ack(await c.submit("h", "GOOG", "buy", "limit", 1, price=10))
        assert kinds(placed) == ["OrderAccepted"]  # no second resume
        assert placed.events[0].seq == resumed.seq + 1

    run(eng, after)
    assert eng.stop() == 0


def test_a_halts_end_is_announced_under_a_stream_of_queries(engine_factory: Any) -> None:
    """The same while queries keep coming faster than the loop's idle interval (100 ms):
    the loop never idles, and a turn of queries runs no command that would end the
    halt, so the resume waited for the first order (h13's review)."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def body(c: EngineClient) -> None:
        reply = ack(await c.control("halt", symbol="GOOG", duration_ns=300_000_000))
        halted = reply.events[0]
        assert isinstance(halted, SymbolHalted) and halted.until is not None
        pings = 0

        async def queries() -> None:
            nonlocal pings
            while True:
                ack(await c.ping())
                pings += 1
                await asyncio.sleep(0.01)

        async def first_event() -> Any:
            async for ev in c.events(from_seq=reply.last_seq + 1):
                return ev

        querying = asyncio.create_task(queries())
        try:
            resumed = await asyncio.wait_for(first_event(), 10)
        finally:
            querying.cancel()
        assert isinstance(resumed, SymbolResumed), resumed
        assert (resumed.symbol, resumed.ts_event) == ("GOOG", halted.until)
        assert pings >= 10  # the queries did keep coming while it waited

    run(eng, body)
    assert eng.stop() == 0


def test_a_synthetic_market_keeps_the_book_alive(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(market={"source": "synthetic", "rate": 400, "seed": 7})
    eng.start()

    async def body(c: EngineClient) -> None:
        async with asyncio.timeout(20):
            while True:
                ping = ack(await c.ping())
                if ping.last_seq > 200:
                    break
                await asyncio.sleep(0.05)  # the market produces on its own clock
        events = await c.replay(1, ping.last_seq)
        assert any(isinstance(e, Trade) for e in events)
        book = ack(await c.get_book("GOOG")).book
        assert book is not None and book.bids and book.asks
        assert book.bids[0].price < book.asks[0].price
        # A client trades against it like against anyone.
        r = ack(await c.submit("me", "GOOG", "buy", "market", 1))
        assert any(isinstance(e, Trade) for e in r.events)

    run(eng, body)
    assert eng.stop() == 0


@pytest.mark.parametrize(
    "market",
    [{"source": "synthetic", "rate": 200, "seed": 3}, {"source": "lobster", "speed": 1.0}],
    ids=["synthetic", "lobster"],
)
def test_a_markets_resting_orders_do_not_pile_up_across_restarts(
    engine_factory: Any, market: dict[str, Any]
) -> None:
    """A generated market does not know the orders an earlier run of it left resting
    (recovered from the journal): they stayed in the book for ever, at stale prices,
    and the LOBSTER replay laid the day's first book again on top of its own (every
    level doubled at each restart, and at each start of the day over). It cancels the
    maker's orders first now."""
    eng: EngineProcess = engine_factory(market=market)
    maker = "market-maker"

    async def resting(c: EngineClient, newer_than: int) -> set[int]:
        """The maker's open orders once it has some newer than `newer_than`."""
        async with asyncio.timeout(20):
            while True:
                ids = {o.id for o in ack(await c.list_orders(maker)).orders or []}
                if any(i > newer_than for i in ids):
                    return ids
                await asyncio.sleep(0.02)  # the market produces on its own clock

    eng.start()
    before = run(eng, lambda c: resting(c, 0))
    assert eng.stop() == 0
    eng.start()
    after = run(eng, lambda c: resting(c, max(before)))
    assert eng.stop() == 0
    assert not before & after, f"{len(before & after)} of the {len(before)} orders left"


def test_market_data_top_of_book_and_deltas(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        got: list[Any] = []
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def consume() -> None:
            async for msg in c.events(market_data=["AAPL"]):
                if msg.symbol == "AAPL" and type(msg).__name__ in ("TopOfBook", "BookDelta"):
                    await queue.put(msg)

        task = asyncio.create_task(consume())
        # A SUB socket joins asynchronously: probe until the first message arrives.
        async with asyncio.timeout(10):
            while queue.empty():
                ack(await c.submit("probe", "AAPL", "sell", "limit", 1, price=900))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), 0.05)
                    break
        while not queue.empty():
            queue.get_nowait()
        ack(await c.submit("mdx", "AAPL", "buy", "limit", 5, price=100))
        ack(await c.submit("mdx", "AAPL", "buy", "limit", 2, price=100))
        async with asyncio.timeout(10):
            while len(got) < 4:
                got.append(await queue.get())
        task.cancel()
        top1, delta1, top2, delta2 = got
        assert type(top1).__name__ == "TopOfBook" and top1.bids[0].qty == 5
        assert [(lv.price, lv.qty, lv.orders) for lv in delta1.bids] == [(100, 5, 1)]
        assert type(top2).__name__ == "TopOfBook" and top2.bids[0].qty == 7
        assert type(delta2).__name__ == "BookDelta" and delta2.md_seq == top2.md_seq
        assert [(lv.price, lv.qty, lv.orders) for lv in delta2.bids] == [(100, 7, 2)]
        assert delta2.asks == []

    run(engine, body)


def test_tops_carry_the_turns_trades_as_anonymous_prints(engine: EngineProcess) -> None:
    """A turn that trades a symbol publishes its top with the turn's trades of it as
    prints (price, qty, taker side, time), in the order of the `Trade` events and with
    their values; the frame names no account and the print has no order id; a turn
    that trades but leaves the levels as they were still publishes its top (no delta);
    a turn without trades carries none."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"m.GOOG")
    sub.connect(engine.events)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.connect(engine.order_entry)
    req = iter(range(1, 10**6))

    def send(*orders: tuple[str, str, int, int]) -> list[wire.Reply]:
        """One frame (a `Batch` for several orders: one turn); the replies."""
        msgs: list[wire.Request] = [
            wire.NewOrder(next(req), acct, "GOOG", side, "limit", qty, price=price)
            for acct, side, qty, price in orders
        ]
        dealer.send(wire.encode_batch(msgs))
        return wire.decode_replies(dealer.recv())

    def frames() -> list[bytes]:
        """The market-data frames of GOOG published so far (tops and deltas)."""
        out = []
        while sub.poll(200):
            topic, frame = sub.recv_multipart()
            assert topic == b"m.GOOG"
            out.append(frame)
        return out

    try:
        for _ in range(100):  # a SUB socket joins asynchronously: probe until it has
            send(("probe-acct", "buy", 1, 1))
            if sub.poll(50):
                break
        frames()
        (rest1,) = send(("alice-acct", "sell", 3, 100))
        (rest2,) = send(("alice-acct", "sell", 4, 101))
        (taker,) = send(("bob-acct", "buy", 5, 101))
        # one turn: carol rests 2 @ 100, dan takes them: the levels end as they began
        batch = send(("carol-acct", "sell", 2, 100), ("dan-acct", "buy", 2, 100))
        got = frames()
    finally:
        ctx.destroy(0)
    for frame in got:
        for name in (b"alice-acct", b"bob-acct", b"carol-acct", b"dan-acct"):
            assert name not in frame
    md = [wire.decode_event(f) for f in got]
    tops = [m for m in md if isinstance(m, TopOfBook)]
    assert [t.md_seq for t in tops] == list(range(tops[0].md_seq, tops[0].md_seq + 4))
    assert tops[0].trades == [] and tops[1].trades == []
    assert TradePrint.__struct_fields__ == ("price", "qty", "taker_side", "ts_event")

    def prints(*replies: wire.Reply) -> list[TradePrint]:
        trades = [e for r in replies for e in ack(r).events if isinstance(e, Trade)]
        return [TradePrint(t.price, t.qty, t.taker_side, t.ts_event) for t in trades]

    assert (
        tops[2].trades
        == prints(taker)
        == [
            TradePrint(100, 3, "buy", tops[2].trades[0].ts_event),
            TradePrint(101, 2, "buy", tops[2].trades[1].ts_event),
        ]
    )
    assert tops[3].trades == prints(*batch) and len(tops[3].trades) == 1
    assert (tops[3].bids, tops[3].asks) == (tops[2].bids, tops[2].asks)
    after_batch = [m for m in md if m.md_seq == tops[3].md_seq]
    assert after_batch == [tops[3]]  # the levels did not change: no delta
    assert kinds(rest1) == kinds(rest2) == ["OrderAccepted"]


def test_the_tape_is_the_books_trades_not_a_venues_fills() -> None:
    """`tape`: per symbol, in order, the trades of this engine's books; a fill a venue
    reported (maker 0: its counterparty is at the venue) is not one of them."""
    from tickplane.engine.state import tape

    events: list[Any] = [
        Trade(1, 10, "GOOG", 100, 2, 7, 3, "buy", "bob", "alice"),
        Trade(2, 11, "AAPL", 50, 1, 8, 0, "sell", "carol", "venue:alpaca"),
        OrderCanceled(3, 11, 7, "bob", "GOOG", 0, "ioc"),
        Trade(4, 12, "GOOG", 101, 1, 9, 4, "sell", "dan", "erin"),
    ]
    assert tape(events) == {"GOOG": [TradePrint(100, 2, "buy", 10), TradePrint(101, 1, "sell", 12)]}


def test_a_lobster_day_replayed_as_the_market(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(market={"source": "lobster", "speed": 200.0})
    eng.start()

    async def body(c: EngineClient) -> None:
        async with asyncio.timeout(20):
            while True:
                ping = ack(await c.ping())
                if ping.last_seq > 300:
                    break
                await asyncio.sleep(0.05)  # the replay runs on its own (scaled) clock
        events = await c.replay(1, ping.last_seq)
        trades = [e for e in events if isinstance(e, Trade)]
        assert trades and all(e.symbol == "GOOG" for e in trades)
        book = ack(await c.get_book("GOOG")).book
        assert book is not None and book.bids and book.asks
        # GOOG traded around $580 on 2012-06-21: 58,000 ticks of a cent.
        assert 50_000 < book.bids[0].price < book.asks[0].price < 65_000

    run(eng, body)
    assert eng.stop() == 0


def test_replay_serves_any_range_from_the_event_log_across_restarts(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(replay_buffer=10, snapshot_every=25)
    eng.start()

    async def first(c: EngineClient) -> list[Any]:
        for i in range(60):
            ack(await c.submit("old", "GOOG", "buy", "limit", 1, price=100 + i % 7))
        return await c.replay(1, 60)

    before = run(eng, first)
    assert [e.seq for e in before] == list(range(1, 61))  # far older than the memory ring
    eng.kill()  # the log's unsynced tail is re-derived from the journal on recovery
    eng.start()

    async def second(c: EngineClient) -> None:
        ack(await c.submit("old", "GOOG", "sell", "limit", 1, price=500))
        after = await c.replay(1, 61)
        assert [e.seq for e in after] == list(range(1, 62))
        assert [e.to_dict() for e in after[:60]] == [e.to_dict() for e in before]

    run(eng, second)
    assert eng.stop() == 0
    eng.start()  # after a clean stop (snapshot) too
    again = run(eng, lambda c: c.replay(1, 61))
    assert [e.seq for e in again] == list(range(1, 62))
    assert eng.stop() == 0


def test_a_subscriber_that_drops_messages_recovers_the_exact_sequence(
    engine: EngineProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = wire.decode_events
    seen = {"frames": 0}

    def lossy(frame: bytes) -> list[Any]:
        seen["frames"] += 1
        if seen["frames"] % 3 == 0:  # every third message is lost on the way
            raise wire.WireError("dropped")
        return real(frame)

    monkeypatch.setattr(wire, "decode_events", lossy)

    async def body(c: EngineClient) -> None:
        got: list[Any] = []
        sent: list[Any] = []

        async def consume() -> None:
            async for ev in c.events(from_seq=1):
                got.append(ev)
                if len(got) == 120:
                    return

        task = asyncio.create_task(consume())
        for i in range(120):
            sent.extend(ack(await c.submit("gap", "AAPL", "buy", "limit", 1, price=1 + i)).events)
        await asyncio.wait_for(task, 10)
        assert seen["frames"] >= 3  # messages really were dropped
        assert [e.seq for e in got] == list(range(1, 121))
        assert [e.to_dict() for e in got] == [e.to_dict() for e in sent]

    run(engine, body)


def test_fuzzed_frames_never_kill_the_engine(engine: EngineProcess) -> None:
    """Random frames, valid headers with random msgpack, and mutated real requests:
    every one gets a reply, and the engine still trades afterwards."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(engine.order_entry)
    base = wire.encode(wire.NewOrder(7, "fz", "GOOG", "buy", "limit", 1, 100))
    batch = wire.encode_batch(
        [wire.NewOrder(8, "fz", "GOOG", "buy", "limit", 1, 100), wire.CancelOrder(9, "fz", 1)]
    )

    def mutated(frame: bytes) -> st.SearchStrategy[bytes]:
        return st.builds(
            lambda i, b: frame[:i] + b + frame[i + len(b) :],
            st.integers(0, len(frame) - 1),
            st.binary(min_size=1, max_size=4),
        )

    frames = st.one_of(
        st.binary(max_size=80),
        st.builds(lambda b: bytes([wire.WIRE_VERSION]) + b, st.binary(max_size=80)),
        mutated(base),
        mutated(batch),
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames)
    def send(frame: bytes) -> None:
        sock.send(frame)
        wire.decode_replies(sock.recv())  # a reply (or a batch's), never silence

    try:
        send()
    finally:
        sock.close(0)
        ctx.term()
    reply = run(engine, lambda c: c.submit("after", "GOOG", "buy", "limit", 1, price=1))
    assert isinstance(reply, wire.Ack)


def test_deeply_nested_frames_are_rejected(engine: EngineProcess) -> None:
    """msgpack nested past the decoder's recursion limit, as the whole message or as a
    field a request does not have (skipped, but walked): `bad_frame`, and the engine
    goes on (a RecursionError once escaped the reject path and ended the loop)."""
    deep = b"\x91" * 100_000 + b"\x00"
    frames = [
        bytes([wire.WIRE_VERSION]) + deep,
        bytes([wire.WIRE_VERSION]) + b"\x93" + msgspec.msgpack.encode("ping") + b"\x05" + deep,
    ]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(engine.order_entry)
    try:
        for frame in frames:
            sock.send(frame)
            reply = wire.decode_reply(sock.recv())
            assert isinstance(reply, wire.Reject) and reply.reason == "bad_frame", reply
    finally:
        sock.close(0)
        ctx.term()
    reply = run(engine, lambda c: c.submit("after", "GOOG", "buy", "limit", 1, price=1))
    assert isinstance(reply, wire.Ack)


def test_names_are_bounded(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        coid = await c.submit("a", "GOOG", "buy", "limit", 1, price=1, client_order_id="c" * 129)
        assert isinstance(coid, wire.Reject) and coid.reason == "bad_client_order_id"
        assert isinstance(await c.submit("x" * 64, "GOOG", "buy", "limit", 1, price=1), wire.Ack)

    run(engine, body)


ODD_ACCOUNTS = ["", "x" * 65, "a\x00b", "desk one", "desk/1", "-lead", ".x", "b\u00e9a", "a\n"]


def test_every_request_naming_an_account_keeps_to_the_account_rule(
    engine: EngineProcess,
) -> None:
    """core/accounts.py's rule, the gateway's keys' and the configuration's, holds on the
    wire too: every request that names an account outside it is refused `bad_account`
    with the rule's words, and nothing changes; names at the rule's edges pass."""

    async def body(c: EngineClient) -> None:
        mine = ack(await c.submit("rule-a", "GOOG", "buy", "limit", 1, price=1)).order_id
        assert mine is not None
        before = ack(await c.ping()).last_seq
        for name in ODD_ACCOUNTS:
            for reply in (
                await c.submit(name, "GOOG", "buy", "limit", 1, price=1),
                await c.submit(name, "GOOG", "buy", "limit", 1, price=1, client_order_id="r"),
                await c.cancel(name, mine),
                await c.replace(name, mine, qty=2),
                await c.mass_cancel(name),
                await c.mass_cancel(name, "GOOG"),
                await c.get_order(name, mine),
                await c.get_order_by_client_id(name, "r"),
                await c.control("kill", account=name),
                await c.control("revive", account=name),
                await c.get_account(name),
                await c.list_orders(name),
            ):
                assert refused(reply, "bad_account").message == f"account must be {ACCOUNT_RULE}"
        assert ack(await c.ping()).last_seq == before  # nothing journaled, nothing applied
        orders = ack(await c.list_orders("rule-a")).orders
        assert orders is not None and [o.id for o in orders] == [mine]
        for name in ("x" * 64, "9", "a.b_c:d@e-f"):
            ack(await c.submit(name, "GOOG", "buy", "limit", 1, price=1))
            ack(await c.get_account(name))
        # a good name the engine never saw: no such order (not a refused name)
        refused(await c.cancel("rule-never", mine), "unknown_order")

    run(engine, body)


def test_the_accepted_account_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names the rule passed are kept (the next request pays a set lookup), at most
    `_ACCOUNTS_OK_MAX` of them; a refused name is never kept."""
    kept: set[str] = set()
    monkeypatch.setattr(service, "_ACCOUNTS_OK", kept)
    monkeypatch.setattr(service, "_ACCOUNTS_OK_MAX", 3)
    for n in range(10):
        assert service._bad_account(n, f"acct-{n}") is None
        assert f"acct-{n}" in kept and len(kept) <= 3
    bad = service._bad_account(11, "desk one")
    assert isinstance(bad, wire.Reject) and bad.reason == "bad_account"
    assert "desk one" not in kept


def engaged(eng: EngineProcess) -> str:
    """The kill-switch gauge's sample line."""
    lines = http_get(eng, "/metrics").splitlines()
    return next(x for x in lines if x.startswith("tickplane_engine_kill_switches_engaged "))


def test_the_kill_switch_gauge_is_the_state_across_restarts(engine_factory: Any) -> None:
    """The gauge reads the switches risk holds: after a kill -9 (the journal recovered)
    and after a clean stop (a snapshot) it still counts what is engaged, and a revive
    after the restart brings it down to 0, not below."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def kill(c: EngineClient) -> None:
        ack(await c.control("kill", account="zz"))
        ack(await c.control("kill", account="zz"))  # already engaged: counted once
        ack(await c.control("kill"))

    run(eng, kill)
    assert engaged(eng) == "tickplane_engine_kill_switches_engaged 2.0"
    eng.kill()
    eng.start()  # from the journal alone: no snapshot was taken
    assert not list((eng.workdir / "journal").glob("snapshot-*.tps"))
    assert engaged(eng) == "tickplane_engine_kill_switches_engaged 2.0"
    ack(run(eng, lambda c: c.control("revive")))
    assert engaged(eng) == "tickplane_engine_kill_switches_engaged 1.0"
    assert eng.stop() == 0
    assert list((eng.workdir / "journal").glob("snapshot-*.tps"))
    eng.start()  # from the snapshot

    async def after(c: EngineClient) -> None:
        view = ack(await c.get_account("zz")).account
        assert view is not None and view.kill_switch
        assert engaged(eng) == "tickplane_engine_kill_switches_engaged 1.0"
        ack(await c.control("revive", account="zz"))
        ack(await c.control("revive", account="zz"))  # already off: no change
        refused(await c.control("explode"), "bad_action")

    run(eng, after)
    assert engaged(eng) == "tickplane_engine_kill_switches_engaged 0.0"
    assert eng.stop() == 0


def test_the_global_kill_switch_cancels_everything_and_refuses_until_revived(
    engine: EngineProcess,
) -> None:
    async def body(c: EngineClient) -> None:
        ids = [
            ack(await c.submit("gk1", "GOOG", "buy", "limit", 1, price=10)).order_id,
            ack(await c.submit("gk2", "AAPL", "sell", "limit", 2, price=500)).order_id,
            ack(await c.submit("gk2", "GOOG", "buy", "stop", 1, stop_price=900)).order_id,
        ]
        killed = ack(await c.control("kill"))
        switch = killed.events[0]
        assert isinstance(switch, KillSwitchChanged)
        assert (switch.account, switch.engaged) == (None, True)
        # every account's open orders, on every symbol, the held stop too
        canceled = [e for e in killed.events[1:] if isinstance(e, OrderCanceled)]
        assert [e.id for e in canceled] == ids
        assert {e.reason for e in canceled} == {"kill_switch"}
        ack(await c.control("kill", account="gk2"))  # an account's own switch: separate
        for account in ("gk1", "gk2", "never-seen"):
            assert ack(await c.list_orders(account)).orders == []
            no = refused(await c.submit(account, "AAPL", "buy", "limit", 1, price=1), "kill_switch")
            assert "global" in no.message
            view = ack(await c.get_account(account)).account
            assert view is not None and view.kill_switch
        (released,) = ack(await c.control("revive")).events
        assert isinstance(released, KillSwitchChanged)
        assert (released.account, released.engaged) == (None, False)
        ack(await c.submit("gk1", "GOOG", "buy", "limit", 1, price=10))
        ack(await c.submit("never-seen", "GOOG", "buy", "limit", 1, price=10))
        # gk2's own switch stays engaged until its own revive
        no = refused(await c.submit("gk2", "GOOG", "buy", "limit", 1, price=10), "kill_switch")
        assert "gk2" in no.message
        ack(await c.control("revive", account="gk2"))
        ack(await c.submit("gk2", "GOOG", "buy", "limit", 1, price=10))

    run(engine, body)
    assert engaged(engine) == "tickplane_engine_kill_switches_engaged 0.0"


def test_mass_cancel_by_symbol_and_what_it_names_that_is_unknown(engine: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        def oid(reply: wire.Reply) -> int:
            return ack(reply).order_id or 0

        goog = [
            oid(await c.submit("mc", "GOOG", "buy", "limit", 1, price=10 + i)) for i in range(2)
        ]
        stop = oid(await c.submit("mc", "GOOG", "sell", "stop", 1, stop_price=5))
        aapl = oid(await c.submit("mc", "AAPL", "buy", "limit", 1, price=10))
        other = oid(await c.submit("mc2", "AAPL", "buy", "limit", 1, price=9))
        mine = ack(await c.mass_cancel("mc", "GOOG"))
        assert [e.id for e in mine.events if isinstance(e, OrderCanceled)] == [*goog, stop]
        assert [o.id for o in ack(await c.list_orders("mc")).orders] == [aapl]
        # a symbol not traded here is an error, as for ListOrders, and changes nothing
        before = ack(await c.ping()).last_seq
        for account in ("mc", None, "never-seen"):
            no = refused(await c.mass_cancel(account, "NOPE"), "unknown_symbol")
            assert "'NOPE'" in no.message and "GOOG" in no.message
        refused(await c.list_orders("mc", "NOPE"), "unknown_symbol")
        # an account with no orders (never seen) has nothing to cancel: not an error
        assert ack(await c.mass_cancel("never-seen")).events == []
        assert ack(await c.mass_cancel("never-seen", "GOOG")).events == []
        assert ack(await c.ping()).last_seq == before
        # every account's orders of one symbol
        everyone = ack(await c.mass_cancel(None, "AAPL"))
        assert sorted(e.id for e in everyone.events if isinstance(e, OrderCanceled)) == [
            aapl,
            other,
        ]

    run(engine, body)
    text = http_get(engine, "/metrics")
    assert 'tickplane_engine_request_rejects_total{reason="unknown_symbol"} 4.0' in text


def test_a_replace_that_changes_nothing_is_refused_and_journals_nothing(
    engine: EngineProcess,
) -> None:
    async def body(c: EngineClient) -> None:
        resting = ack(await c.submit("rn", "GOOG", "buy", "limit", 2, price=10)).order_id or 0
        held = ack(await c.submit("rn", "GOOG", "sell", "stop", 1, stop_price=5)).order_id or 0
        before = ack(await c.ping()).last_seq
        for order_id in (resting, held, 999_999):
            no = refused(await c.replace("rn", order_id), "bad_replace")
            assert no.message.startswith("nothing to replace")
        assert ack(await c.ping()).last_seq == before  # no OrderReplaced, nothing journaled
        view = ack(await c.get_order("rn", resting)).order
        assert view is not None and (view.qty, view.price) == (2, 10)
        assert kinds(await c.replace("rn", resting, qty=1)) == ["OrderReplaced"]

    run(engine, body)


def _cpu_list(text: str) -> set[int]:
    """CPUs of a `Cpus_allowed_list` ("0-3,6")."""
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def test_the_hot_loop_is_pinned_to_the_last_allowed_cpu(engine_factory: Any) -> None:
    """With `pin_cpu`, the loop thread (the process's main thread) may run on one CPU,
    the last one the process was given; ZeroMQ's threads (its I/O thread, its reaper) run
    on the others (on all of them when there is only one), and the other threads (HTTP)
    keep them all. The
    log, `/status` and `tickplane_engine_cpus` say the same."""
    allowed = os.sched_getaffinity(0)  # the engine inherits the test's
    pinned = max(allowed)
    io = allowed - {pinned} or allowed
    eng: EngineProcess = engine_factory(pin_cpu=True)
    eng.start()
    tasks: dict[str, set[int]] = {}
    for task in Path(f"/proc/{eng.pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip() + f"/{task.name}"
            lines = (task / "status").read_text().splitlines()
        except FileNotFoundError:  # a thread that ended meanwhile (an HTTP request's)
            continue
        tasks[name] = _cpu_list(
            next(
                line.split(":", 1)[1].strip()
                for line in lines
                if line.startswith("Cpus_allowed_list:")
            )
        )
    main = next(name for name in tasks if name.endswith(f"/{eng.pid}"))
    assert tasks.pop(main) == {pinned}
    zmq_io = [name for name in tasks if name.startswith("ZMQbg/")]  # IO/0, Reaper
    assert zmq_io and all(tasks.pop(name) == io for name in zmq_io), (zmq_io, tasks)
    assert tasks and all(cpus == allowed for cpus in tasks.values()), tasks
    assert f"hot loop pinned to {pinned}" in eng.log_text()
    status = json.loads(http_get(eng, "/status"))
    assert (status["cpus"], status["pinned_cpu"]) == (sorted(allowed), pinned)
    assert status["io_cpus"] == (sorted(io) if len(allowed) > 1 else [])
    text = http_get(eng, "/metrics")
    for cpu in allowed:
        flag = "true" if cpu == pinned else "false"
        assert f'tickplane_engine_cpus{{cpu="{cpu}",pinned="{flag}"}} 1.0' in text
    assert eng.stop() == 0


def test_without_pinning_the_loop_keeps_every_cpu(engine: EngineProcess) -> None:
    status = json.loads(http_get(engine, "/status"))
    assert status["pinned_cpu"] is None and status["cpus"] == sorted(os.sched_getaffinity(0))
    assert status["io_cpus"] == []
    assert os.sched_getaffinity(engine.pid) == os.sched_getaffinity(0)
    assert 'pinned="true"' not in http_get(engine, "/metrics")


# -- the risk reasons end to end: one engine, each limit on an account of its own --------

RISK = {
    "accounts": {
        "notional": {"max_order_notional": 1_000},
        "position": {"max_position": 5},
        "band": {"price_band_bps": 500},
        "rate": {"max_orders_per_second": 1, "order_burst": 2},
    },
}


@pytest.fixture(scope="module")
def risky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine with tight per-account limits (`RISK`), GOOG's reference price 100."""
    work = tmp_path_factory.mktemp("risky")
    settings = engine_settings(work, "risky", risk=RISK)
    settings["symbols"] = [
        {"name": "GOOG", "reference_price": 100},
        {"name": "AAPL"},
        {"name": "MSFT"},
    ]
    eng = EngineProcess(work, settings)
    eng.start()
    yield eng
    try:
        assert eng.stop() == 0
    finally:
        eng.kill()


def risk_refusals(eng: EngineProcess, reason: str) -> str:
    lines = http_get(eng, "/metrics").splitlines()
    return next(
        x
        for x in lines
        if x.startswith(f'tickplane_engine_risk_rejects_total{{reason="{reason}"}}')
    )


def test_max_order_notional_end_to_end(risky: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        ack(await c.submit("notional", "GOOG", "buy", "limit", 10, price=100))  # 1,000: at
        no = refused(
            await c.submit("notional", "GOOG", "buy", "limit", 11, price=100), "max_order_notional"
        )
        assert "1100" in no.message.replace(",", "")
        # a market order is valued at the reference price
        refused(await c.submit("notional", "GOOG", "sell", "market", 11), "max_order_notional")
        # a symbol with no reference price cannot value an unpriced order
        refused(await c.submit("notional", "AAPL", "sell", "market", 1), "max_order_notional")
        # a replace raising the notional is refused and leaves the order as it was
        oid = ack(await c.submit("notional", "GOOG", "buy", "limit", 5, price=100)).order_id or 0
        refused(await c.replace("notional", oid, qty=20), "max_order_notional")
        view = ack(await c.get_order("notional", oid)).order
        assert view is not None and view.qty == 5

    run(risky, body)
    assert risk_refusals(risky, "max_order_notional").endswith(" 4.0")


def test_max_position_end_to_end(risky: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        # MSFT is this test's own book (nothing else to fill against)
        ack(await c.submit("position", "MSFT", "buy", "limit", 3, price=90))
        # the worst case counts the open buy: 3 + 3 > 5
        no = refused(
            await c.submit("position", "MSFT", "buy", "limit", 3, price=90), "max_position"
        )
        assert "5" in no.message
        ack(await c.submit("position", "MSFT", "buy", "limit", 2, price=90))  # 5: at the limit
        # the sell side's worst case leaves the open buys out: -5 is allowed, -6 is not
        ack(await c.submit("position", "MSFT", "sell", "limit", 5, price=10_000))
        refused(
            await c.submit("position", "MSFT", "sell", "limit", 1, price=10_000), "max_position"
        )
        # filled, the open buys become a position of 5: one more lot bought is refused
        ack(await c.submit("seller", "MSFT", "sell", "limit", 5, price=90))
        view = ack(await c.get_account("position")).account
        assert view is not None and [(p.symbol, p.qty) for p in view.positions] == [("MSFT", 5)]
        refused(await c.submit("position", "MSFT", "buy", "limit", 1, price=90), "max_position")

    run(risky, body)
    assert risk_refusals(risky, "max_position").endswith(" 3.0")


def test_price_band_end_to_end(risky: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        # reference 100, 500 bps: 95..105
        for price in (95, 105):
            ack(await c.submit("band", "GOOG", "buy", "limit", 1, price=price))
        for price in (94, 106):
            no = refused(
                await c.submit("band", "GOOG", "buy", "limit", 1, price=price), "price_band"
            )
            assert str(price) in no.message
        # AAPL has no reference and no trade yet: no band to check
        ack(await c.submit("band", "AAPL", "buy", "limit", 1, price=1))
        # other accounts have no band
        ack(await c.submit("unbanded", "GOOG", "buy", "limit", 1, price=1))

    run(risky, body)
    assert risk_refusals(risky, "price_band").endswith(" 2.0")


def test_an_untriggered_stops_replace_is_the_cores_to_refuse(risky: EngineProcess) -> None:
    """The core replaces resting orders only: an untriggered stop's replace ends as its
    `OrderRejected` (`unknown_order`), journaled, as the contract has it. Risk used to
    check it first, so a limit past the band was refused `price_band` instead, and one
    inside it spent an order-rate token (h13's review)."""

    async def body(c: EngineClient) -> None:
        # `band`: reference 100, 500 bps; no trade yet, so the stop stays held
        stop = ack(
            await c.submit("band", "GOOG", "buy", "stop_limit", 1, price=104, stop_price=103)
        )
        assert kinds(stop) == ["OrderAccepted"]
        for price in (200, 104):  # past the band, then inside it
            replaced = ack(await c.replace("band", stop.order_id, price=price))
            assert kinds(replaced) == ["OrderRejected"]
            assert replaced.events[0].reason == "unknown_order"

    def banded() -> str | None:  # the counter's line (none before a first refusal)
        try:
            return risk_refusals(risky, "price_band")
        except StopIteration:
            return None

    before = banded()
    run(risky, body)
    assert banded() == before


def test_order_rate_end_to_end(risky: EngineProcess) -> None:
    async def body(c: EngineClient) -> None:
        # a burst of 2, refilled at 1 a second: three orders sent together, the third
        # refused (one batch, one loop turn: no time to refill)
        replies = await asyncio.gather(
            *(c.submit("rate", "AAPL", "buy", "limit", 1, price=10 + i) for i in range(3))
        )
        assert [type(r) for r in replies] == [wire.Ack, wire.Ack, wire.Reject]
        refused(replies[2], "order_rate")
        # a refusal spent no token; cancels are never rate limited
        for r in replies[:2]:
            ack(await c.cancel("rate", ack(r).order_id or 0))
        assert ack(await c.list_orders("rate")).orders == []

    run(risky, body)
    assert risk_refusals(risky, "order_rate").endswith(" 1.0")
    text = http_get(risky, "/metrics")
    assert 'tickplane_engine_request_rejects_total{reason="order_rate"} 1.0' in text


def test_a_kill_switchs_cancels_say_kill_switch_live_and_after_a_kill_9(
    engine_factory: Any,
) -> None:
    """The orders a kill switch cancels, in the book and held (a trailing stop), end
    with reason `kill_switch`, not `user`; the journal keeps the reason, so the events
    a restart re-derives from it (the event log cut, replayed) say the same."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def live(c: EngineClient) -> tuple[list[tuple[int, str]], int]:
        ack(await c.submit("ks", "GOOG", "buy", "limit", 1, price=10))
        ack(await c.submit("ks", "GOOG", "sell", "limit", 1, price=200))
        ack(await c.submit("ks-buyer", "GOOG", "buy", "limit", 1, price=200))  # a last price
        ack(await c.submit("ks", "GOOG", "sell", "trailing_stop", 1, trail_price=3))
        killed = ack(await c.control("kill", account="ks"))
        cxl = [(e.id, e.reason) for e in killed.events if isinstance(e, OrderCanceled)]
        return cxl, killed.last_seq

    canceled, last = run(eng, live)
    assert len(canceled) == 2 and {r for _, r in canceled} == {"kill_switch"}
    eng.kill()
    for name in ("events.tpe",):  # the events are re-derived from the journal alone
        (eng.workdir / "journal" / name).unlink(missing_ok=True)
    eng.start()

    async def replayed(c: EngineClient) -> list[tuple[int, str]]:
        return [(e.id, e.reason) for e in await c.replay(1, last) if isinstance(e, OrderCanceled)]

    assert run(eng, replayed) == canceled
    eng.stop()


def test_an_idle_engine_sends_its_last_seq_as_a_heartbeat(engine: EngineProcess) -> None:
    """While nothing arrives, topic `h` carries the last event seq (so a subscriber that
    lost the last messages notices): after an order, the seq of its last event."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"h")
    sub.connect(engine.events)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    dealer.connect(engine.order_entry)
    try:
        dealer.send(wire.encode(wire.NewOrder(1, "hb", "GOOG", "buy", "limit", 1, price=100)))
        reply = wire.decode_reply(dealer.recv())
        assert isinstance(reply, wire.Ack) and reply.last_seq > 0
        assert sub.poll(5000), "no heartbeat within 5 s"
        topic, frame = sub.recv_multipart()
        assert topic == b"h" and wire.decode_heartbeat(frame) == reply.last_seq
    finally:
        sub.close(0)
        dealer.close(0)
        ctx.term()
