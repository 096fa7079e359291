"""ReplayMarketData end to end: a real engine's tops of book by (symbol, md_seq), across
a kill -9 and a clean restart, and a subscriber that loses messages getting every top."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineError
from tickplane.core.events import TopOfBook, Trade, TradePrint
from tickplane.engine.mdlog import RESERVE

from .conftest import EngineProcess
from .test_service import ack, run


async def all_tops(c: EngineClient, symbol: str) -> tuple[list[TopOfBook], int]:
    """Every top of `symbol` the engine keeps, and the last md_seq it accounts for."""
    out: list[TopOfBook] = []
    nxt, covered = 1, 0
    while True:
        tops, upto = await c.replay_market_data(symbol, nxt, 2**62)
        if upto < nxt:
            return out, covered
        out += tops
        nxt, covered = upto + 1, upto


def levels(top: TopOfBook) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    return [(lv.price, lv.qty, lv.orders) for lv in top.bids], [
        (lv.price, lv.qty, lv.orders) for lv in top.asks
    ]


def test_tops_replay_by_md_seq_across_a_kill_and_a_clean_restart(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(snapshot_every=7)
    eng.start()

    async def first(c: EngineClient) -> list[TopOfBook]:
        for i in range(30):
            ack(await c.submit("md", "AAPL", "buy" if i % 2 else "sell", "limit", 1 + i,
                               price=1000 + (i % 5 if i % 2 else 10 + i % 3)))  # fmt: skip
        tops, covered = await all_tops(c, "AAPL")
        assert covered == 30 and [t.md_seq for t in tops] == list(range(1, 31))
        book = ack(await c.get_book("AAPL", depth=10)).book
        assert book is not None and levels(book) == levels(tops[-1])
        assert ack(await c.get_book("AAPL")).book.md_seq == 30  # type: ignore[union-attr]
        assert (await all_tops(c, "GOOG")) == ([], 0)  # untouched: nothing, no error
        for bad in (
            wire.ReplayMarketData(c.next_req(), "AAPL", 0, 5),
            wire.ReplayMarketData(c.next_req(), "AAPL", 5, 4),
            wire.ReplayMarketData(c.next_req(), "NOPE", 1, 5),
        ):
            reply = await c.request(bad)
            assert isinstance(reply, wire.Reject)
            assert reply.reason in ("bad_range", "unknown_symbol")
        return tops

    before = run(eng, first)
    eng.kill()  # the replay above flushed the log: every top is on disk
    eng.start()

    async def second(c: EngineClient) -> None:
        tops, covered = await all_tops(c, "AAPL")
        assert [t.to_dict() for t in tops] == [t.to_dict() for t in before]
        assert covered == RESERVE  # 31..RESERVE: handed out perhaps, not kept
        # Numbers handed out before the kill are never reused: the next top jumps past
        # the reservation, and the jump is accounted for as not kept.
        ack(await c.submit("md", "AAPL", "buy", "limit", 1, price=900))
        tops, covered = await all_tops(c, "AAPL")
        assert covered == RESERVE + 1
        assert [t.md_seq for t in tops] == [*range(1, 31), RESERVE + 1]

    run(eng, second)
    assert eng.stop() == 0
    eng.start()  # a clean stop gives the reservation back: no jump

    async def third(c: EngineClient) -> None:
        ack(await c.submit("md", "AAPL", "buy", "limit", 1, price=901))
        tops, covered = await all_tops(c, "AAPL")
        assert covered == RESERVE + 2 and tops[-1].md_seq == RESERVE + 2

    run(eng, third)
    assert eng.stop() == 0


def test_replayed_tops_keep_their_trades_across_a_kill_and_a_clean_restart(
    engine_factory: Any,
) -> None:
    """The prints ride in the tops' log records: replay returns them as they were
    published, after a kill -9 and after a clean restart, and the md_seq rules hold
    for the tops of trades after each (a jump past the reservation after the kill,
    none after the clean stop)."""
    eng: EngineProcess = engine_factory()
    eng.start()

    async def trade(c: EngineClient, qty: int) -> TradePrint:
        """A resting sell of `qty`, then a buy that takes it: the buy's print."""
        ack(await c.submit("seller", "AAPL", "sell", "limit", qty, price=100))
        reply = ack(await c.submit("buyer", "AAPL", "buy", "limit", qty, price=100))
        (t,) = [e for e in reply.events if isinstance(e, Trade)]
        return TradePrint(t.price, t.qty, t.taker_side, t.ts_event)

    async def first(c: EngineClient) -> list[TopOfBook]:
        p2, p3 = await trade(c, 2), await trade(c, 3)
        tops, covered = await all_tops(c, "AAPL")
        assert covered == 4
        assert [t.trades for t in tops] == [[], [p2], [], [p3]]
        return tops

    before = run(eng, first)
    eng.kill()  # the replay above flushed the log: every top is on disk
    eng.start()

    async def second(c: EngineClient) -> list[TopOfBook]:
        tops, covered = await all_tops(c, "AAPL")
        assert tops == before and covered == RESERVE
        p = await trade(c, 1)
        tops, covered = await all_tops(c, "AAPL")
        assert [t.md_seq for t in tops[-2:]] == [RESERVE + 1, RESERVE + 2]
        assert tops[-1].trades == [p] and tops[:4] == before
        return tops

    after_kill = run(eng, second)
    assert eng.stop() == 0
    eng.start()

    async def third(c: EngineClient) -> None:
        tops, _ = await all_tops(c, "AAPL")
        assert tops == after_kill
        p = await trade(c, 4)
        tops, covered = await all_tops(c, "AAPL")
        assert covered == RESERVE + 4 and tops[-1].trades == [p]

    run(eng, third)
    assert eng.stop() == 0


def test_without_a_log_replay_says_so(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(md_log_bytes=0)
    eng.start()

    async def body(c: EngineClient) -> None:
        with pytest.raises(EngineError, match="replay_unavailable"):
            await c.replay_market_data("AAPL", 1, 10)
        # A stream asked for gap-free tops still runs: live tops only, said in the log.
        got: list[TopOfBook] = []

        async def consume() -> None:
            async for msg in c.events(market_data=["AAPL"], md_from={"AAPL": 1}):
                if type(msg) is TopOfBook:
                    got.append(msg)
                    return

        task = asyncio.create_task(consume())
        async with asyncio.timeout(10):
            while not task.done():  # a SUB joins asynchronously: orders until one arrives
                ack(await c.submit("nolog", "AAPL", "buy", "limit", 1, price=100))
                await asyncio.wait({task}, timeout=0.05)
        await task
        assert got and got[0].symbol == "AAPL"

    run(eng, body)
    assert eng.stop() == 0


def test_a_subscriber_that_loses_tops_gets_every_one_once(
    engine: EngineProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = wire.decode_event
    seen = {"tops": 0}
    dropped: list[int] = []  # md_seqs

    def lossy(frame: bytes) -> Any:
        msg = real(frame)
        if type(msg) is TopOfBook:
            seen["tops"] += 1
            if seen["tops"] % 3 == 0:  # every third top is lost on the way
                dropped.append(msg.md_seq)
                raise wire.WireError("dropped")
        return msg

    monkeypatch.setattr(wire, "decode_event", lossy)
    missing: list[tuple[str, int]] = []

    async def body(c: EngineClient) -> None:
        for i in range(10):  # before the subscriber: from the log
            ack(await c.submit("mdl", "AAPL", "buy", "limit", 1, price=100 + i))
        got: list[TopOfBook] = []
        caught_up = asyncio.Event()

        async def consume() -> None:
            stream = c.events(
                market_data=["AAPL"],
                md_from={"AAPL": 1},
                on_md_missing=lambda s, n: missing.append((s, n)),
            )
            async for msg in stream:
                if type(msg) is TopOfBook:
                    got.append(msg)
                    if len(got) == 10:
                        caught_up.set()
                    if len(got) == 60:
                        return

        task = asyncio.create_task(consume())
        await asyncio.wait_for(caught_up.wait(), 10)  # from the log; what follows is live
        for i in range(50):  # every second one trades: its top carries the print
            side, account = ("sell", "mdl") if i % 2 == 0 else ("buy", "mdb")
            ack(await c.submit(account, "AAPL", side, "limit", 1, price=300))
        await asyncio.wait_for(task, 10)
        assert seen["tops"] >= 3  # live tops really were lost
        assert [t.md_seq for t in got] == list(range(1, 61))
        tops, _ = await all_tops(c, "AAPL")
        assert [t.to_dict() for t in got] == [t.to_dict() for t in tops]
        # the prints are gap-free too: the lost tops' came back with them
        assert [len(t.trades) for t in got[10:]] == [0, 1] * 25
        assert any(got[n - 1].trades for n in dropped if n > 10)

    run(engine, body)
    assert missing == []
