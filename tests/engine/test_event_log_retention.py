"""The event log's retention (`event_log_bytes`) and the bounds on what one frame may
replay, through a real engine process: the log's files stay within the bound across
rotations, a kill -9 and a restart; a range across its two files replays exactly; a
pruned range is `replay_unavailable`; a batch of huge replays gets bounded answers and
the client still catches up exactly."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import Event
from tickplane.engine.eventlog import FILE_NAME, OLD_FILE_NAME
from tickplane.engine.service import REPLAY_PAGE, REPLAY_TURN

from .conftest import EngineProcess
from .test_service import run

BOUND = 1 << 20  # the smallest event_log_bytes allowed
TURN = 100  # orders a turn: records of ~10-20 KB


def disk(eng: EngineProcess) -> tuple[int, bool]:
    """The bytes the event log's files take, and whether the old one exists."""
    journal = eng.workdir / "journal"
    files = [p for p in (journal / FILE_NAME, journal / OLD_FILE_NAME) if p.exists()]
    return sum(p.stat().st_size for p in files), (journal / OLD_FILE_NAME).exists()


async def trade_turns(
    c: EngineClient, history: dict[int, Event], turns: int, bound: EngineProcess | None = None
) -> None:
    """`turns` batches of orders; every event their acks carry goes into `history`.
    `bound`: after each turn, its engine's event log is within BOUND on disk."""
    for _ in range(turns):
        futs = [
            c.send(wire.NewOrder(c.next_req(), "ret", "GOOG", "buy" if i % 2 else "sell",
                                 "limit", 1, price=1000 + (5 if i % 2 else -5), tif="ioc"))
            for i in range(TURN)
        ]  # fmt: skip
        for reply in await asyncio.gather(*futs):
            assert isinstance(reply, wire.Ack), reply
            history.update((e.seq, e) for e in reply.events)
        if bound is not None:
            # an event older than the memory buffer: read from the log, which writes
            # its buffered records first, so the files hold every turn so far
            old = max(history) - 150
            assert await c.replay(old, old) == [history[old]]
            assert disk(bound)[0] <= BOUND


async def first_kept(c: EngineClient) -> int:
    """The oldest seq the engine still replays (from its reject of seq 1)."""
    reply = await c.request(wire.Replay(c.next_req(), 1, 1))
    assert isinstance(reply, wire.Reject) and reply.reason == "replay_unavailable", reply
    found = re.search(r"events before (\d+) are no longer kept", reply.message)
    assert found, reply.message
    return int(found.group(1))


async def check(c: EngineClient, eng: EngineProcess, history: dict[int, Event]) -> int:
    """The log is within its bound and pruned; every kept event replays exactly, across
    the two files; the pruned range is unavailable. The first kept seq."""
    size, rotated = disk(eng)
    assert rotated and size <= BOUND, size  # each file within half, a kill -9 included
    last = max(history)
    assert sorted(history) == list(range(1, last + 1))
    first = await first_kept(c)
    assert 1 < first < last - 1000
    assert [e.to_dict() for e in await c.replay(first, last)] == [
        history[s].to_dict() for s in range(first, last + 1)
    ]
    bad = await c.request(wire.Replay(c.next_req(), first - 1, last))
    assert isinstance(bad, wire.Reject) and bad.reason == "replay_unavailable"
    return first


def test_the_event_log_keeps_its_bound_across_rotation_and_restarts(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(event_log_bytes=BOUND, replay_buffer=100,
                                        snapshot_every=5000)  # fmt: skip
    eng.start()
    history: dict[int, Event] = {}

    async def fill(c: EngineClient) -> int:
        await trade_turns(c, history, 120, eng)
        return await check(c, eng, history)

    before = run(eng, fill)
    eng.kill()  # kill -9: the log's buffer and the last turns' records may be lost
    eng.start()

    async def after_kill(c: EngineClient) -> int:
        first = await check(c, eng, history)  # re-derived from the journal
        assert first >= before
        await trade_turns(c, history, 60, eng)  # rotates again after the restart
        return await check(c, eng, history)

    again = run(eng, after_kill)
    assert again > before
    assert eng.stop() == 0
    eng.start()
    assert run(eng, lambda c: check(c, eng, history)) == again


def test_a_batch_of_huge_replays_gets_bounded_answers(engine_factory: Any) -> None:
    eng: EngineProcess = engine_factory(replay_buffer=100)
    eng.start()
    history: dict[int, Event] = {}

    async def body(c: EngineClient) -> None:
        await trade_turns(c, history, 80)
        last = max(history)
        assert last > 3 * REPLAY_PAGE
        # one frame (after the first request, which goes out alone): 100 requests each
        # asking for everything
        futs = [c.send(wire.Replay(c.next_req(), 1, 10**9)) for _ in range(100)]
        replies = await asyncio.gather(*futs)
        sizes = []
        for reply in replies:
            assert isinstance(reply, wire.Ack), reply
            assert reply.events == [history[s] for s in range(1, len(reply.events) + 1)]
            sizes.append(len(reply.events))
        assert all(1 <= n <= REPLAY_PAGE for n in sizes)
        # at most two turns' budgets (the lone first request may be a turn of its own)
        assert sum(sizes) <= 2 * REPLAY_TURN + len(sizes), sizes
        # the client pages through bounded answers and gets every event once
        assert await c.replay(1, last) == [history[s] for s in range(1, last + 1)]

    run(eng, body)
    assert eng.stop() == 0
