"""A crash inside one request's journal records recovers as if the request never came.

Some requests write more than one record: a new account's order (ACCOUNT, then its
command), an order with a client order id (its MARK, then the command), a bracket, OTO
or OCO (the legs' MARK, then the parent's command), a trailing stop with a client order
id (two MARKs), a kill switch (its MARK, then the cancels of what it covers: commands and
held orders' MARKs), a mass cancel (commands and MARKs), a routed order with a client
order id (two MARKs: the id's, the `route`). For each, an in-process engine
takes a few orders, then the request in a turn of its own; its journal is cut at every
byte from the request's first record to its end, and an engine recovered from each cut
must equal, to the byte of its snapshot, the engine recovered from the journal without
the request. A restart from such a cut takes the request again as new: a client order
id the crash cut short is not a duplicate.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tickplane.core import wire
from tickplane.core.config import EngineConfig, VenueConfig
from tickplane.engine.journal import RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE, read, segments
from tickplane.engine.service import EngineService

from .fake_alpaca import FakeAlpaca
from .test_recovery import _config


def _limit(
    req: int, account: str, symbol: str, side: str, qty: int, price: int, **fields: Any
) -> wire.NewOrder:
    return wire.NewOrder(req, account, symbol, side, "limit", qty, price, **fields)


def _legs(
    order_class: str, tp: int | None, sl: int | None, sl_limit: int | None = None
) -> dict[str, Any]:
    """An order class's fields: its take-profit's limit, its stop-loss's stop and limit."""
    return {
        "order_class": order_class,
        "take_profit": None if tp is None else wire.TakeProfit(tp),
        "stop_loss": None if sl is None else wire.StopLoss(sl, sl_limit),
    }


ALICE_ORDERS = [
    _limit(1, "alice", "GOOG", "buy", 5, 95),
    _limit(2, "alice", "GOOG", "sell", 5, 105),
    _limit(3, "alice", "AAPL", "buy", 7, 90),
    # a bracket resting (its legs held) and a trailing stop (held): MARKs to cancel
    _limit(4, "alice", "GOOG", "buy", 3, 94, **_legs("bracket", 120, 80)),
    wire.NewOrder(5, "alice", "AAPL", "sell", "trailing_stop", 2, trail_price=5),
    _limit(6, "bob", "AAPL", "sell", 4, 110),
]

REQUESTS: dict[str, wire.Request] = {
    "new account": _limit(9, "carol", "GOOG", "buy", 5, 96),
    "client order id": _limit(9, "alice", "GOOG", "buy", 7, 99, client_order_id="c-1"),
    "bracket, new account, client order id": _limit(
        9, "dave", "GOOG", "buy", 5, 97, client_order_id="b-1", **_legs("bracket", 130, 70, 69)
    ),
    "oco, client order id": _limit(
        9, "bob", "GOOG", "sell", 2, 125, client_order_id="o-1", **_legs("oco", 125, 85)
    ),
    "oto, client order id": _limit(
        9, "bob", "AAPL", "buy", 3, 89, client_order_id="t-1", **_legs("oto", None, 60)
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


def _cut_everywhere(
    tmp_path: Path,
    config: Callable[[Path], EngineConfig],
    setup: list[wire.Request],
    request: wire.Request,
    ready: Callable[[EngineService], None] = lambda svc: None,
) -> None:
    """Run `setup` (one turn), then `request` (a turn of its own) in an engine of
    `config`; recover from its journal cut at every byte of the request's records, each
    time comparing with the journal without them; restart from a cut and retry the
    request, which must run as new. `ready(svc)` returns once an opened engine takes
    orders."""
    live = tmp_path / "live"
    svc = EngineService(config(live))
    svc.open()
    try:
        ready(svc)
        svc.process([(b"\x00c", wire.encode(r)) for r in setup])
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

    def recovered(journal: Path) -> bytes:
        """The state an engine recovers from `journal`, as its snapshot's bytes."""
        svc = EngineService(config(journal))
        svc.recover()
        return svc.state.snapshot()

    without = recovered(cut_at(start))
    assert recovered(cut_at(end)) != without  # the whole request did change the state
    for cut in range(start + 1, end):
        d = cut_at(cut)
        assert recovered(d) == without, f"cut at byte {cut} of {start}..{end}"
        shutil.rmtree(d)

    # Restarted from a cut inside the request, the engine takes the retry as new: the
    # same order id as the first time, no duplicate of an order never placed.
    restarted = EngineService(config(cut_at(end - 1)))
    restarted.open()
    try:
        ready(restarted)
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


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_a_request_cut_anywhere_recovers_as_if_it_never_came(tmp_path: Path, kind: str) -> None:
    _cut_everywhere(
        tmp_path, lambda journal: _config(journal, breaker=False), ALICE_ORDERS, REQUESTS[kind]
    )


ROUTED: dict[str, wire.Request] = {
    "routed, new account, client order id": _limit(
        9, "erin", "GOOG", "buy", 5, 97, client_order_id="r-1"
    ),
    "routed bracket, client order id": _limit(
        9, "alice", "AAPL", "buy", 5, 97, client_order_id="r-2", **_legs("bracket", 130, 70)
    ),
}


@pytest.mark.parametrize("kind", list(ROUTED))
def test_a_routed_request_cut_anywhere_recovers_as_if_it_never_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The same with Alpaca as the venue (a local server speaking its protocol): an
    order's client order id MARK and its `route` MARK (the legs in it)."""
    with FakeAlpaca(symbols=("GOOG", "AAPL")) as fake:
        monkeypatch.setenv("APCA_API_KEY_ID", fake.key_id)
        monkeypatch.setenv("APCA_API_SECRET_KEY", fake.secret_key)
        venue = VenueConfig(
            kind="alpaca", url_override=fake.rest_url, stream_url_override=fake.stream_url
        )

        def config(journal: Path) -> EngineConfig:
            return msgspec.structs.replace(_config(journal, breaker=False), venue=venue)

        def connected(svc: EngineService) -> None:
            deadline = time.monotonic() + 20
            while not (svc.venue is not None and svc.venue.connected):
                assert time.monotonic() < deadline, "the venue did not connect"
                time.sleep(0.01)

        setup = [_limit(1, "alice", "GOOG", "buy", 5, 95, client_order_id="a")]
        _cut_everywhere(tmp_path, config, setup, ROUTED[kind], connected)
