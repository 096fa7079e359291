"""Numbers the wire cannot carry, and a turn the loop cannot finish.

The wire's integers are 64-bit; the engine's own arithmetic is Python's. Risk keeps an
order's worth under a ceiling so that no trade leaves 64 bits; a halt's end is bounded;
unrealized P&L and equity, which only report, are held to the 64-bit bound when a
position is marked far away; a query whose answer still cannot be encoded is refused
with a reason. And if a turn fails anyway after applying a request, the engine stops
without committing that turn or taking a snapshot, so a restart is where the last
acknowledged turn left it, its event history whole (real engine processes)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import zmq

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineUnavailable
from tickplane.core.events import PositionChanged
from tickplane.engine.risk import NOTIONAL_CEILING

from .conftest import EngineProcess

HOOK = Path(__file__).parent / "crashhook"  # its sitecustomize fails a chosen turn


def _ack(reply: wire.Reply) -> wire.Ack:
    assert isinstance(reply, wire.Ack), reply
    return reply


def test_an_order_past_the_ceiling_is_refused_and_the_engine_goes_on(
    engine: EngineProcess,
) -> None:
    """The reviewer's pair: 10^8 lots at 10^12 ticks, sold by one account and bought by
    another. The first is refused before anything is journaled; nothing trades."""

    async def body() -> None:
        async with EngineClient(engine.order_entry, timeout=10) as c:
            sell = await c.submit("a", "GOOG", "sell", "limit", 10**8, price=10**12)
            assert isinstance(sell, wire.Reject) and sell.reason == "max_order_notional"
            assert str(NOTIONAL_CEILING) in sell.message
            buy = await c.submit("b", "GOOG", "buy", "limit", 10**8, price=10**12)
            assert isinstance(buy, wire.Reject) and buy.reason == "max_order_notional"
            most = NOTIONAL_CEILING // 10**12
            _ack(await c.submit("a", "GOOG", "sell", "limit", most, price=10**12))
            trade = _ack(await c.submit("b", "GOOG", "buy", "limit", most, price=10**12))
            assert any(type(e).__name__ == "Trade" for e in trade.events)
            _ack(await c.get_account("b"))

    asyncio.run(body())


def test_a_halt_that_would_end_past_64_bits_is_refused(engine: EngineProcess) -> None:
    """The reviewer's frame: a halt of 2^64 - 1 ns, sent as the gateway never would (it
    caps halts at a week), straight over ZeroMQ."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(engine.order_entry)
    try:
        sock.send(wire.encode(wire.Control(1, "halt", None, "GOOG", 2**64 - 1)))
        reply = wire.decode_reply(sock.recv())
    finally:
        sock.close(0)
        ctx.term()
    assert isinstance(reply, wire.Reject) and reply.reason == "bad_duration", reply

    async def body() -> None:
        async with EngineClient(engine.order_entry, timeout=10) as c:
            _ack(await c.submit("a", "GOOG", "buy", "limit", 1, price=100))  # not halted

    asyncio.run(body())


def test_a_position_marked_past_64_bits_is_reported_at_the_bound(engine: EngineProcess) -> None:
    """The reviewer's second case: a billion lots bought at one tick, then one lot traded
    at 10^12. Marked there, the holder's unrealized P&L is 10^21 tick-lots, past what
    the wire carries: the trade's PositionChanged events and the account's view report
    unrealized P&L and equity at the 64-bit bound (positions.py), and the engine goes on.
    (Before: the trade's reply could not be encoded and the engine died.)"""
    top, bottom = 2**63 - 1, -(2**63)

    async def body() -> None:
        async with EngineClient(engine.order_entry, timeout=10) as c:
            _ack(await c.submit("s", "GOOG", "sell", "limit", 10**9, price=1))
            _ack(await c.submit("big", "GOOG", "buy", "limit", 10**9, price=1))
            _ack(await c.submit("s", "GOOG", "sell", "limit", 1, price=10**12))
            trade = _ack(await c.submit("t", "GOOG", "buy", "limit", 1, price=10**12))
            short = [e for e in trade.events if isinstance(e, PositionChanged) and e.account == "s"]
            assert [e.unrealized_pnl for e in short] == [bottom]
            assert short[0].position == -(10**9) - 1 and short[0].cash == 10**9 + 10**12
            view = _ack(await c.get_account("big")).account
            assert view is not None
            assert view.unrealized_pnl == top and view.equity == top
            assert view.positions[0].qty == 10**9 and view.cash == -(10**9)
            _ack(await c.ping())

    asyncio.run(body())


def test_an_answer_past_64_bits_is_refused_with_a_reason(engine_factory: Any) -> None:
    """A query whose answer cannot be encoded (`crashhook` makes account `poison`'s view
    fail as a number past 64 bits would): `unrepresentable`, and the engine answers the
    next request. A query changed nothing, so refusing it is safe."""
    eng: EngineProcess = engine_factory("query", fsync="none")
    eng.env = {
        "PYTHONPATH": os.pathsep.join([str(HOOK), os.environ.get("PYTHONPATH", "")]),
        "TICKPLANE_TEST_FAIL_ACCOUNT": "poison",
    }
    eng.start()

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            view = await c.get_account("poison")
            assert isinstance(view, wire.Reject) and view.reason == "unrepresentable", view
            assert _ack(await c.get_account("fine")).account is not None

    asyncio.run(body())
    assert eng.stop() == 0


def test_a_failed_turn_is_not_committed_and_history_stays_replayable(
    engine_factory: Any,
) -> None:
    """The loop raises after applying a request (`crashhook`: encoding the reply of an
    order of account `poison` fails). The engine exits non-zero without committing that
    turn or snapshotting; restarted, it holds every acknowledged order and not the
    failed one, its event log replays from seq 1 to its last seq without a gap, and it
    trades on. (Before: the close committed the turn and snapshotted it, so the event
    log, which never got the turn's events, started afresh and replay history was lost.)"""
    eng: EngineProcess = engine_factory("failed", fsync="none", snapshot_every=0)
    eng.env = {
        "PYTHONPATH": os.pathsep.join([str(HOOK), os.environ.get("PYTHONPATH", "")]),
        "TICKPLANE_TEST_FAIL_ACCOUNT": "poison",
    }
    eng.start()
    acked: list[int] = []

    async def before() -> None:
        async with EngineClient(eng.order_entry, timeout=3) as c:
            for i in range(20):
                acked.append(
                    _ack(await c.submit("ok", "GOOG", "buy", "limit", 1, price=10 + i)).order_id
                    or 0
                )
            try:
                reply: wire.Reply | None = await c.submit(
                    "poison", "GOOG", "buy", "limit", 1, price=5
                )
            except EngineUnavailable:
                reply = None
            assert reply is None, f"the failed turn was answered: {reply!r}"

    asyncio.run(before())
    assert eng.stop() != 0  # it had already exited, with the failure's status
    assert "the loop failed" in eng.log_text()
    eng.env = {}
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, eng.events, timeout=10) as c:
            orders = _ack(await c.list_orders("ok")).orders or []
            assert sorted(o.id for o in orders) == sorted(acked)
            assert _ack(await c.list_orders("poison")).orders == []
            last = _ack(await c.ping()).last_seq
            history = await c.replay(1, last)
            assert [e.seq for e in history] == list(range(1, last + 1))
            _ack(await c.submit("ok", "GOOG", "buy", "limit", 1, price=99))

    asyncio.run(after())
    eng.stop()
