"""Recovery books journaled commands without building events the event log holds.

An in-process engine takes a seeded random flow (several accounts, resting and crossing
orders, IOC, cancels, replaces, bad fields, client order ids, a circuit breaker that
halts and resumes); then engines recover from copies of its journal, with its event log
cut at several points (nothing kept, half, all), and with the fast path switched off.
Each must equal the live engine: the same last seq, books, risk and position state, and
an event log holding exactly the events the live engine published. Trailing stops
whose trail is replaced (held orders: the slow path) likewise, their OrderReplaced
events rebuilt with the new trail.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import shutil
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import inprocess_config
from tests.ports import free_ports
from tickplane.core import wire
from tickplane.core.config import (
    CircuitBreakerConfig,
    EngineConfig,
    RiskConfig,
    RiskLimits,
    SymbolConfig,
)
from tickplane.core.events import Event, OrderReplaced
from tickplane.engine import recovery, service
from tickplane.engine.eventlog import EventLog
from tickplane.engine.journal import FsyncPolicy, JournalWriter, snapshots
from tickplane.engine.service import EngineService

SYMBOLS = ["GOOG", "AAPL"]
LIVE_COLLAR = 200  # bps: the random flow's market orders often reach it


def _config(journal: Path, breaker: bool = True, collar: int | None = None) -> EngineConfig:
    """An engine on `journal`; `collar`: every account's market_collar_bps."""
    port = free_ports(2)
    return EngineConfig(
        name="recovery-test",
        order_entry=f"tcp://127.0.0.1:{port}",
        events=f"tcp://127.0.0.1:{port + 1}",
        http_port=0,
        journal_dir=str(journal),
        symbols=[SymbolConfig(s) for s in SYMBOLS],
        fsync="none",
        snapshot_every=0,
        pin_cpu=False,
        finished_orders=500,  # the flow finishes more: the bound drops some
        risk=RiskConfig(
            default=RiskLimits(market_collar_bps=collar),
            circuit_breaker=CircuitBreakerConfig(move_bps=300, window_ns=10**12, halt_ns=20_000)
            if breaker
            else None,
        ),
    )


def _flow(
    seed: int, n: int, resting: Callable[[], list[tuple[int, str]]]
) -> Iterator[wire.Request]:
    """Requests of a seeded random flow. Cancels and replaces mostly name an order that
    `resting()` (the engine's book at the time) holds, in its own account, so that many
    succeed whatever the circuit breaker's halts have rejected; the rest name any id."""
    rng = random.Random(seed)
    for req in range(1, n + 1):
        r = rng.random()
        account = f"acct{rng.randrange(4)}"
        if r < 0.65:
            side = rng.choice(["buy", "sell", "buy", "sell", "bad"])
            crossing = rng.random() < 0.25
            price = 100 + rng.randrange(1, 8) * (-1 if (side == "buy") != crossing else 1)
            yield wire.NewOrder(
                req,
                account,
                rng.choice(SYMBOLS),
                side,
                rng.choice(["limit", "limit", "limit", "market"]),
                rng.randrange(1, 25),
                price=price,
                tif=rng.choice(["gtc", "gtc", "ioc"]),
                client_order_id=f"c{req}" if rng.random() < 0.3 else None,
            )
            continue
        book = resting()
        if book and rng.random() < 0.8:
            target, account = rng.choice(book)
        else:
            target = rng.randrange(1, req + 1)
        if r < 0.85:
            yield wire.CancelOrder(req, account, target)
        else:
            yield wire.ReplaceOrder(req, account, target, qty=rng.randrange(1, 25))


def _resting(svc: EngineService) -> list[tuple[int, str]]:
    """The resting orders' ids and accounts."""
    part = svc.state.core.dump()["resting"]
    accounts = svc.state.accounts
    return [
        (i, accounts[a]) for i, a in zip(part["id"].tolist(), part["account"].tolist(), strict=True)
    ]


def _clock() -> types.SimpleNamespace:
    """The `time` module as the engine sees it, its wall clock a counter (a microsecond a
    reading): the circuit breaker halts and resumes at the same requests on any machine."""
    return types.SimpleNamespace(
        **{**vars(time), "time_ns": itertools.count(10**18, 1000).__next__}
    )


def _state(svc: EngineService) -> dict[str, Any]:
    st = svc.state
    return {
        "seq": st.seq,
        "core": {k: v.tolist() for k, v in st.core.dump().items()},
        "positions": st.positions.snapshot(),
        "risk": st.risk.snapshot(),
        "client_order_ids": dict(st.client_order_ids),
        "idempotency": st.idempotency.dump(),
        "accounts": list(st.accounts),
        "finished": st.finished.snapshot(),
    }


def _logged(log: EventLog, last: int) -> list[Event]:
    out: list[Event] = []
    while len(out) < last:
        page = log.read(len(out) + 1, last, 10_000)
        assert page, f"the event log stops at {len(out)} of {last}"
        out += page
    return out


@contextlib.contextmanager
def _recovered(journal: Path, breaker: bool = False) -> Iterator[EngineService]:
    """An engine recovered from `journal` (its journal and event log open, no sockets)."""
    svc = EngineService(_config(journal, breaker))
    svc.journal = JournalWriter.open(journal, FsyncPolicy.NONE)
    svc.eventlog = EventLog(journal)
    try:
        svc.recover()
        yield svc
    finally:
        svc.journal.close()
        svc.eventlog.close()


@pytest.fixture(scope="module", params=[True, False], ids=["breaker", "no-breaker"])
def live(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> tuple[Path, dict[str, Any], list[Event], list[int], bool]:
    """A journal of a random flow, the live engine's state and published events, and
    the last seq of each batch (where the event log's records end)."""
    breaker: bool = request.param
    root = tmp_path_factory.mktemp("live")
    svc = EngineService(_config(root / "journal", breaker, collar=LIVE_COLLAR))
    svc.open()
    try:
        rng = random.Random(7)
        flow = _flow(7, 3000, lambda: _resting(svc))
        ident = b"\x00client"
        ends: list[int] = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(service, "time", _clock())
            while batch := list(itertools.islice(flow, rng.randrange(1, 60))):
                svc.process([(ident, wire.encode(req)) for req in batch])
                ends.append(svc.state.seq)
        assert svc.journal is not None and svc.eventlog is not None
        svc.journal.commit()
        state = _state(svc)
        events = _logged(svc.eventlog, svc.state.seq)
        kinds = {type(e).__name__ for e in events}
        assert {"Trade", "OrderRejected", "OrderReplaced"} <= kinds, kinds
        assert ("SymbolHalted" in kinds) == breaker
        assert any(getattr(e, "reason", None) == "market_collar" for e in events)
        assert svc.state.finished.dropped > 0
        assert {v.status for v in svc.state.finished.done.values()} == {"filled", "canceled"}
        svc.eventlog.flush()
        shutil.copytree(root / "journal", root / "kept")  # before close() snapshots
    finally:
        svc.close()
    return root / "kept", state, events, ends, breaker


@pytest.mark.parametrize("kept", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("fast", [True, False])
def test_recovery_equals_the_live_engine(
    live: tuple[Path, dict[str, Any], list[Event], list[int], bool],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kept: float,
    fast: bool,
) -> None:
    journal, state, events, ends, breaker = live
    shutil.copytree(journal, tmp_path / "journal")
    cut = ends[int(len(ends) * kept) - 1] if kept else 0  # a record ends there
    log = EventLog(tmp_path / "journal")
    log.truncate_after(cut)
    assert log.next_seq == cut + 1
    log.close()
    if not fast:
        monkeypatch.setattr(recovery, "fast_path_allowed", lambda state: False)
    # without the live engine's market collar: the journal carries each order's
    with _recovered(tmp_path / "journal", breaker) as svc:
        assert _state(svc) == state
        assert _logged(svc.eventlog, svc.state.seq) == events
        # what the in-memory replay buffer lacks comes from the log
        first = events[len(events) // 3].seq
        reply = svc._replay(wire.Replay(1, first, first + 4))
        assert isinstance(reply, wire.Ack) and reply.events == events[first - 1 : first + 4]


def test_recovery_rebuilds_the_new_trail_of_replaced_trailing_stops(tmp_path: Path) -> None:
    """A sell trailing stop by price and a buy one by percent, their trails replaced
    (and the sell's quantity after): recovering with the event log cut before the
    replaces, or holding nothing, publishes the same events, the trails included."""
    svc = EngineService(_config(tmp_path / "journal", breaker=False))
    svc.open()
    ident = b"\x00client"

    def send(*requests: wire.Request) -> None:
        svc.process([(ident, wire.encode(req)) for req in requests])

    try:
        send(
            wire.NewOrder(1, "a", "GOOG", "sell", "limit", 1, price=100),
            wire.NewOrder(2, "b", "GOOG", "buy", "limit", 1, price=100),
            wire.NewOrder(3, "c", "GOOG", "sell", "trailing_stop", 5, trail_price=3),
            wire.NewOrder(4, "c", "GOOG", "buy", "trailing_stop", 2, trail_percent=4.0),
        )
        sell, buy = sorted(svc.state.contingent.orders)
        # a print at 101: the sell's stop 98, the buy's 104 (its low is 100)
        send(
            wire.NewOrder(5, "a", "GOOG", "sell", "limit", 1, price=101),
            wire.NewOrder(6, "b", "GOOG", "buy", "limit", 1, price=101),
        )
        cut = svc.state.seq
        send(
            wire.ReplaceOrder(7, "c", sell, trail_price=2),
            wire.ReplaceOrder(8, "c", buy, trail_percent=2.0),
            wire.ReplaceOrder(9, "c", sell, qty=4),
        )
        assert svc.journal is not None and svc.eventlog is not None
        svc.journal.commit()
        state = _state(svc)
        events = _logged(svc.eventlog, svc.state.seq)
        svc.eventlog.flush()
        shutil.copytree(tmp_path / "journal", tmp_path / "kept")  # before close() snapshots
    finally:
        svc.close()
    assert [
        (e.id, e.qty, e.stop_price, e.trail_price, e.trail_percent)
        for e in events
        if isinstance(e, OrderReplaced)
    ] == [(sell, 5, 99, 2, None), (buy, 2, 102, None, 2.0), (sell, 4, 99, 2, None)]
    for kept in (0, cut):
        journal = tmp_path / f"recovered-{kept}"
        shutil.copytree(tmp_path / "kept", journal)
        log = EventLog(journal)
        log.truncate_after(kept)
        log.close()
        with _recovered(journal) as again:
            assert _state(again) == state
            assert _logged(again.eventlog, again.state.seq) == events


def test_an_account_the_rule_now_refuses_is_recovered_and_reached_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal from an engine that took any printable account name ("desk one", which
    core/accounts.py refuses): recovery replays it as written, from the journal and from
    the snapshot. Afterwards the engine, which holds that account, lets it be reached by
    name: its orders canceled (one by id, the rest by a mass cancel of the account) and
    queried (GetOrder, ListOrders, GetAccount); it places nothing more (a new order or a
    replace is `bad_account`, saying why, and changes nothing), and a name the engine does
    not hold is refused as before. (Every request naming it was refused: only a mass cancel
    of every account, or an engine-wide kill, reached its orders.)"""
    odd = "desk one"
    # the older engine: names it accepted without the rule (the engine's accepted set)
    monkeypatch.setattr(service, "_ACCOUNTS_OK", {odd})
    svc = EngineService(_config(tmp_path / "journal", breaker=False))
    svc.open()
    ident = b"\x00client"
    try:
        svc.process(
            [
                (ident, wire.encode(wire.NewOrder(1, odd, "GOOG", "buy", "limit", 5, price=99))),
                (ident, wire.encode(wire.NewOrder(2, odd, "GOOG", "sell", "limit", 2, price=101))),
                (ident, wire.encode(wire.NewOrder(3, "bob", "GOOG", "buy", "limit", 2, price=101))),
                (ident, wire.encode(wire.NewOrder(4, odd, "AAPL", "buy", "limit", 3, price=50))),
                (ident, wire.encode(wire.NewOrder(5, odd, "AAPL", "buy", "limit", 4, price=49))),
            ]
        )
        assert svc.journal is not None
        svc.journal.commit()
        state = _state(svc)
        assert odd in state["accounts"] and sorted(_resting(svc)) == [(1, odd), (4, odd), (5, odd)]
        shutil.copytree(tmp_path / "journal", tmp_path / "kept")  # before close() snapshots
    finally:
        svc.close()
    monkeypatch.setattr(service, "_ACCOUNTS_OK", set())  # this engine: the rule
    for journal in (tmp_path / "kept", tmp_path / "journal"):  # the journal; the snapshot
        with _recovered(journal) as again:
            assert _state(again) == state
            touched: set[int] = set()
            for req in (
                wire.NewOrder(6, odd, "GOOG", "buy", "limit", 1, price=98),
                wire.ReplaceOrder(7, odd, 1, qty=9),
            ):
                refused, events = again.dispatch(req, touched)
                assert isinstance(refused, wire.Reject) and refused.reason == "bad_account"
                assert "from before the account rule" in refused.message and events == []
            for req in (
                wire.CancelOrder(8, "desk two", 1),
                wire.MassCancel(9, "desk two", None),
                wire.GetAccount(10, "desk two"),
            ):  # a name the engine does not hold
                refused, events = again.dispatch(req, touched)
                assert isinstance(refused, wire.Reject) and refused.reason == "bad_account"
                assert refused.message.startswith("account must be") and events == []
            assert _state(again) == state  # nothing changed
            listed, _ = again.dispatch(wire.ListOrders(11, odd), touched)
            assert isinstance(listed, wire.Ack) and listed.orders is not None
            assert [o.id for o in listed.orders] == [1, 4, 5]
            done, events = again.dispatch(wire.CancelOrder(12, odd, 1), touched)
            assert isinstance(done, wire.Ack)
            assert [(type(e).__name__, e.id) for e in events] == [("OrderCanceled", 1)]
            done, events = again.dispatch(wire.MassCancel(13, odd, "AAPL"), touched)
            assert isinstance(done, wire.Ack)
            assert sorted((type(e).__name__, e.id) for e in events) == [
                ("OrderCanceled", 4),
                ("OrderCanceled", 5),
            ]
            assert _resting(again) == []
            got, _ = again.dispatch(wire.GetOrder(14, odd, 1), touched)
            assert isinstance(got, wire.Ack) and got.order is not None
            assert (got.order.status, got.order.reason) == ("canceled", "user")
            account, _ = again.dispatch(wire.GetAccount(15, odd), touched)
            assert isinstance(account, wire.Ack) and account.account is not None
            assert account.account.open_orders == 0
            assert [(p.symbol, p.qty) for p in account.account.positions] == [("GOOG", -2)]


def test_a_turns_commands_count_one_by_one_toward_snapshot_every(tmp_path: Path) -> None:
    """A turn's commands share one journal record, but recovery replays each: every
    order (and a new account's record) is an entry (`JournalWriter.entries`), so a
    snapshot is due at `snapshot_every` 10 however the turns batch them; nine entries
    are not. A recovered tail counts toward the next."""
    cfg = inprocess_config(tmp_path, "turns", snapshot_every=10)
    svc = EngineService(cfg)
    svc.open()
    peer = b"\x00peer"

    def turn(first: int, n: int) -> None:
        svc.process(
            [
                (peer, wire.encode(wire.NewOrder(r, "a", "GOOG", "buy", "limit", 1, 10 + r)))
                for r in range(first, first + n)
            ]
        )

    try:
        turn(1, 8)  # and the new account's record: 9 entries
        assert snapshots(cfg.journal_dir) == [], "a snapshot after 9 entries"
        turn(9, 3)
        assert len(snapshots(cfg.journal_dir)) == 1, "no snapshot after 12 entries in 2 turns"
        turn(12, 6)
    finally:
        svc.close(failed=True)  # as a crash: no snapshot at the close
    again = EngineService(cfg)
    again.open()  # recovers the 6 commands after the snapshot: they count
    before = len(snapshots(cfg.journal_dir))
    try:
        again.process(
            [
                (peer, wire.encode(wire.NewOrder(r, "a", "GOOG", "buy", "limit", 1, 10 + r)))
                for r in range(19, 23)
            ]
        )
        assert len(snapshots(cfg.journal_dir)) == before + 1, "the recovered 6 did not count"
    finally:
        again.close()


def test_marks_count_toward_snapshot_every(tmp_path: Path) -> None:
    """A snapshot is due after `snapshot_every` journal entries, whatever they are:
    control MARKs (kill switches here) replay at recovery as commands do."""
    svc = EngineService(inprocess_config(tmp_path, "marks", snapshot_every=10))
    svc.open()
    try:
        peer = b"\x00peer"
        for req in range(1, 12):  # eleven MARKs, no command
            action = "kill" if req % 2 else "revive"
            svc.process([(peer, wire.encode(wire.Control(req, action, account="a")))])
        assert svc.state.risk.kill_switches() == 1
        assert snapshots(svc.config.journal_dir), "no snapshot after 11 journaled MARKs"
    finally:
        svc.close()
