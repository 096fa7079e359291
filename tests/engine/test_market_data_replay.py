"""ReplayMarketData end to end: a real engine's tops of book by (symbol, md_seq), across
a kill -9 and a clean restart, and a subscriber that loses messages getting every top."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineError
from tickplane.core.events import BookDelta, MarketData, TopOfBook, Trade, TradePrint
from tickplane.engine.mdlog import RESERVE

from .conftest import EngineProcess
from .test_service import ack, run


async def all_market_data(c: EngineClient, symbol: str) -> tuple[list[MarketData], int]:
    """Every top and delta of `symbol` the engine keeps, in the order it published them,
    and the last md_seq it accounts for."""
    out: list[MarketData] = []
    nxt, covered = 1, 0
    while True:
        page, upto = await c.replay_market_data(symbol, nxt, 2**62)
        if upto < nxt:
            return out, covered
        out += page
        nxt, covered = upto + 1, upto


async def all_tops(c: EngineClient, symbol: str) -> tuple[list[TopOfBook], int]:
    """Every top of `symbol` the engine keeps, and the last md_seq it accounts for."""
    published, covered = await all_market_data(c, symbol)
    return [md for md in published if isinstance(md, TopOfBook)], covered


async def market_turn(c: EngineClient, i: int) -> None:
    """AAPL's turn i: a bid or an ask that rests, a buy that takes the best ask (a
    trade), or a post-only buy that would cross, refused by the book (a top, no delta)."""
    if i % 4 == 0:
        ack(await c.submit("mdb", "AAPL", "buy", "limit", 1 + i % 3, price=100 + i % 10))
    elif i % 4 == 1:
        ack(await c.submit("mds", "AAPL", "sell", "limit", 2, price=200 + i % 10))
    else:
        ack(await c.submit("mdt", "AAPL", "buy", "limit", 1, price=300, post_only=i % 4 == 3))


def levels(top: TopOfBook) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    return [(lv.price, lv.qty, lv.orders) for lv in top.bids], [
        (lv.price, lv.qty, lv.orders) for lv in top.asks
    ]


def test_tops_replay_by_md_seq_across_a_kill_and_a_clean_restart(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(snapshot_every=7)
    eng.start()

    async def first(c: EngineClient) -> list[MarketData]:
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
        published, _ = await all_market_data(c, "AAPL")
        deltas = [md for md in published if isinstance(md, BookDelta)]
        assert len(deltas) == 29  # every order but the first changed a level
        return published

    before = run(eng, first)
    eng.kill()  # the replay above flushed the log: every top and delta is on disk
    eng.start()

    async def second(c: EngineClient) -> None:
        published, covered = await all_market_data(c, "AAPL")
        assert [md.to_dict() for md in published] == [md.to_dict() for md in before]
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
                deltas=False,  # a consumer of tops only (the recorder): no deltas at all
            )
            async for msg in stream:
                assert type(msg) is not BookDelta
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


def test_a_subscriber_that_loses_deltas_gets_the_exact_sequence(
    engine: EngineProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deltas and tops lost on the way, in every arrangement (a delta alone, a top
    whose delta arrives, both, the very last delta, which no later message shows): the
    subscriber still yields every top and every delta once, in the order the engine
    published them, and a book kept from the deltas alone equals every top."""
    real = wire.decode_event
    lost: list[tuple[str, int]] = []

    def lossy(frame: bytes) -> Any:
        msg = real(frame)
        if (type(msg) is BookDelta and msg.md_seq % 5 == 2) or (
            type(msg) is TopOfBook and msg.md_seq % 7 == 3
        ):
            lost.append((type(msg).__name__, msg.md_seq))
            raise wire.WireError("dropped")
        return msg

    monkeypatch.setattr(wire, "decode_event", lossy)
    missing: list[tuple[str, int]] = []
    last = 67  # its delta (67 % 5 == 2) is lost, and nothing follows it

    async def body(c: EngineClient) -> None:
        for i in range(10):  # before the subscriber: from the log
            await market_turn(c, i)
        got: list[MarketData] = []
        caught_up = asyncio.Event()

        async def consume() -> None:
            stream = c.events(
                market_data=["AAPL"],
                md_from={"AAPL": 1},
                on_md_missing=lambda s, n: missing.append((s, n)),
            )
            async for msg in stream:
                if isinstance(msg, TopOfBook | BookDelta):
                    got.append(msg)
                    if msg.md_seq == 10 and (type(msg) is BookDelta or not msg.has_delta):
                        caught_up.set()
                    if msg.md_seq == last and type(msg) is BookDelta:
                        return

        task = asyncio.create_task(consume())
        await asyncio.wait_for(caught_up.wait(), 10)  # from the log; what follows is live
        for i in range(10, last):
            await market_turn(c, i)
        await asyncio.wait_for(task, 10)  # the last delta: caught up while idle
        published, _ = await all_market_data(c, "AAPL")
        assert [md.to_dict() for md in got] == [md.to_dict() for md in published]
        assert [md.md_seq for md in got if type(md) is TopOfBook] == list(range(1, last + 1))
        # Lost live in each arrangement: a delta alone, a top whose delta arrived, both.
        gone = set(lost)
        pairs = [
            (("TopOfBook", n) in gone, ("BookDelta", n) in gone)
            for n in {md.md_seq for md in published if type(md) is BookDelta and md.md_seq > 10}
        ]
        assert {(False, True), (True, False), (True, True)} <= set(pairs)
        assert ("BookDelta", last) in gone
        # Each delta right after the top announcing it; some tops announce none.
        for k, md in enumerate(got):
            if type(md) is BookDelta:
                before = got[k - 1]
                assert type(before) is TopOfBook and before.has_delta
                assert before.md_seq == md.md_seq
            elif md.has_delta:
                assert type(got[k + 1]) is BookDelta
        assert any(type(md) is TopOfBook and not md.has_delta for md in got[10:])
        # From the first top (none before it to differ from: no delta), the deltas alone
        # rebuild the book: after each, it equals its top.
        top = got[0]
        assert type(top) is TopOfBook and not top.has_delta
        book = ({lv.price: lv for lv in top.bids}, {lv.price: lv for lv in top.asks})
        for md in got:
            if type(md) is TopOfBook:
                top = md
                continue
            assert type(md) is BookDelta
            for side, changed in zip(book, (md.bids, md.asks), strict=True):
                for lv in changed:
                    if lv.qty:
                        side[lv.price] = lv
                    else:
                        del side[lv.price]
            bids = sorted(book[0].values(), key=lambda lv: -lv.price)
            asks = sorted(book[1].values(), key=lambda lv: lv.price)
            assert (bids, asks) == (top.bids, top.asks)

    run(engine, body)
    assert missing == []
