"""A crash inside one request's journal records recovers as if the request never came.

Some requests write more than one record: a new account's order (ACCOUNT, then its
command), an order with a client order id (its MARK, then the command), a bracket, OTO
or OCO (the legs' MARK, then the parent's command), a trailing stop with a client order
id (two MARKs), a kill switch (its MARK, then the cancels of what it covers: commands and
held orders' MARKs), a mass cancel (commands and MARKs). For each, an in-process engine
takes a few orders, then the request in a turn of its own; its journal is cut at every
byte from the request's first record to its end, and an engine recovered from each cut
must equal, to the byte of its snapshot, the engine recovered from the journal without
the request. A restart from such a cut takes the request again as new: a client order
id the crash cut short is not a duplicate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tickplane.core import wire
from tickplane.engine.journal import RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE, read, segments
from tickplane.engine.service import EngineService

from .test_recovery import _config

ALICE_ORDERS = [
    wire.NewOrder(1, "alice", "GOOG", "buy", "limit", 5, 95),
    wire.NewOrder(2, "alice", "GOOG", "sell", "limit", 5, 105),
    wire.NewOrder(3, "alice", "AAPL", "buy", "limit", 7, 90),
    # a bracket resting (its legs held) and a trailing stop (held): MARKs to cancel
    wire.NewOrder(
        4,
        "alice",
        "GOOG",
        "buy",
        "limit",
        3,
        94,
        order_class="bracket",
        take_profit=wire.TakeProfit(120),
        stop_loss=wire.StopLoss(80),
    ),
    wire.NewOrder(5, "alice", "AAPL", "sell", "trailing_stop", 2, trail_price=5),
    wire.NewOrder(6, "bob", "AAPL", "sell", "limit", 4, 110),
]

REQUESTS: dict[str, wire.Request] = {
    "new account": wire.NewOrder(9, "carol", "GOOG", "buy", "limit", 5, 96),
    "client order id": wire.NewOrder(
        9, "alice", "GOOG", "buy", "limit", 7, 99, client_order_id="c-1"
    ),
    "bracket, new account, client order id": wire.NewOrder(
        9,
        "dave",
        "GOOG",
        "buy",
        "limit",
        5,
        97,
        client_order_id="b-1",
        order_class="bracket",
        take_profit=wire.TakeProfit(130),
        stop_loss=wire.StopLoss(70, 69),
    ),
    "oco, client order id": wire.NewOrder(
        9,
        "bob",
        "GOOG",
        "sell",
        "limit",
        2,
        125,
        client_order_id="o-1",
        order_class="oco",
        take_profit=wire.TakeProfit(125),
        stop_loss=wire.StopLoss(85),
    ),
    "oto, client order id": wire.NewOrder(
        9,
        "bob",
        "AAPL",
        "buy",
        "limit",
        3,
        89,
        client_order_id="t-1",
        order_class="oto",
        stop_loss=wire.StopLoss(60),
    ),
    "trailing stop, client order id": wire.NewOrder(
        9, "bob", "GOOG", "sell", "trailing_stop", 2, trail_percent=2.5, client_order_id="s-1"
    ),
    "kill switch": wire.Control(9, "kill", account="alice"),
    "mass cancel": wire.MassCancel(9, account="alice"),
}


def _records_end(journal: Path) -> int:
    """The byte offset just past the last record (the only segment's; a live writer's
    file also holds the space it reserved ahead)."""
    return SEGMENT_HEADER_SIZE + sum(RECORD_HEADER_SIZE + len(r.payload) for r in read(journal))


def _recovered(journal: Path) -> bytes:
    """The state an engine recovers from `journal`, as its snapshot's bytes."""
    svc = EngineService(_config(journal, breaker=False))
    svc.recover()
    return svc.state.snapshot()


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_a_request_cut_anywhere_recovers_as_if_it_never_came(tmp_path: Path, kind: str) -> None:
    request = REQUESTS[kind]
    live = tmp_path / "live"
    svc = EngineService(_config(live, breaker=False))
    svc.open()
    ident = b"\x00c"
    try:
        svc.process([(ident, wire.encode(r)) for r in ALICE_ORDERS])
        start, before = _records_end(live), len(list(read(live)))
        reply, _ = svc.handle(wire.encode(request), set())
        assert isinstance(reply, wire.Ack), reply
        assert svc.journal is not None
        svc.journal.commit()
        assert len(list(read(live))) - before >= 2, "one record: nothing to tear"
        shutil.copytree(live, tmp_path / "kept")  # before close() snapshots
    finally:
        svc.close()
    (path,) = (s.path for s in segments(tmp_path / "kept"))
    end = _records_end(tmp_path / "kept")
    data = path.read_bytes()[:end]

    def cut_at(cut: int) -> Path:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / path.name).write_bytes(data[:cut])
        return d

    without = _recovered(cut_at(start))
    assert _recovered(cut_at(end)) != without  # the whole request did change the state
    for cut in range(start + 1, end):
        d = cut_at(cut)
        assert _recovered(d) == without, f"cut at byte {cut} of {start}..{end}"
        shutil.rmtree(d)

    # Restarted from a cut inside the request, the engine takes the retry as new: the
    # same order id as the first time, no duplicate of an order never placed.
    restarted = EngineService(_config(cut_at(end - 1), breaker=False))
    restarted.open()
    try:
        again, _ = restarted.dispatch(request, set())
        assert isinstance(again, wire.Ack) and not again.duplicate
        assert again.order_id == reply.order_id
        if isinstance(request, wire.NewOrder) and request.client_order_id is not None:
            found = restarted.dispatch(
                wire.GetOrder(10, request.account, 0, request.client_order_id), set()
            )[0]
            assert isinstance(found, wire.Ack) and found.order_id == reply.order_id
            assert found.order is not None
            assert found.order.client_order_id == request.client_order_id
    finally:
        restarted.close()
