"""Late fills (docs/venues.md, "Late fills"): a routed order rejected because its
submit may have reached the venue anyway (a timeout, a 5xx) is an orphan; the fills
the venue still reports for it are real executions, booked as a `Trade` against the
venue and its position changes, the order staying rejected, until the venue says it
stopped looking. The same after a snapshot and after a recovery from the journal
alone. In process, the venue a stand-in that reports what the test says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from tickplane.core import wire
from tickplane.core.config import VenueConfig
from tickplane.core.events import Event, OrderRejected, PositionChanged, Trade
from tickplane.engine.state import EngineState
from tickplane.engine.venues.base import (
    HandBack,
    VenueAccepted,
    VenueCanceled,
    VenueEvent,
    VenueFilled,
    VenueRejected,
)

from .test_order_class_risk import Engine, _routed, _Venue, bracket, ok, refused


def _at_alpaca(tmp_path: Path, **limits: Any) -> tuple[Engine, Any]:
    eng, venue = _routed(tmp_path, **limits)
    eng.svc.config.venue = VenueConfig(kind="alpaca")
    return eng, venue


def _report(eng: Engine, *events: VenueEvent) -> list[Event]:
    """The venue reports `events`: what the engine publishes for them."""
    out = eng.svc._venue_events(list(events), set())
    assert eng.svc.journal is not None
    eng.svc.journal.commit()
    return out


def _said(events: list[Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, Trade):
            out.append(("trade", e.taker, e.maker, e.qty, e.price, e.taker_side, e.maker_account))
        elif isinstance(e, PositionChanged):
            out.append(("position", e.account, e.position, e.cost_basis, e.cash))
        elif isinstance(e, OrderRejected):
            out.append(("rejected", e.id, e.reason))
        else:
            out.append((type(e).__name__,))
    return out


def _final(eng: Engine, order_id: int) -> tuple[Any, ...]:
    """How alice's order `order_id` ended, as `GetOrder` shows it: status, reason, lots
    filled and their average price."""
    v = eng.svc.state.order_view(order_id, "alice")
    assert v is not None
    return v.status, v.reason, v.filled_qty, v.avg_fill_price


def _fill(order_id: int, price: int, qty: int, leaves: int, n: int) -> VenueFilled:
    return VenueFilled(order_id, price, qty, 1_000 + n, f"exec-{n}", leaves)


def test_fills_of_an_order_rejected_as_maybe_placed_are_booked_until_its_watch_ends(
    tmp_path: Path,
) -> None:
    """alice's buy of 10 gets a 503 that Alpaca took anyway; it fills 4 at 101 and 2 at
    102 there before the orphan's cancel lands. Both are booked: position 6 past her
    max_position of 5 (the position is what the venue made it), so her next buy is
    refused; the order stays rejected. After the watch ends, a report is ignored."""
    eng, venue = _at_alpaca(tmp_path / "a", max_position=5)
    o = ok(eng.new("alice", "buy", 5, price=100)).order_id
    assert o is not None and venue.sent == [("submit", o)]
    start = eng.svc.state.positions.account("alice").cash
    said = _said(_report(eng, VenueRejected(o, "venue_unavailable", "503", maybe_placed=True)))
    assert said == [("rejected", o, "venue_unavailable")]
    assert _final(eng, o) == ("rejected", "venue_unavailable", 0, None)
    assert eng.svc.state.risk.open_exposure("alice", "GOOG") == (0, 0, 0)

    said = _said(_report(eng, _fill(o, 101, 4, 1, 1)))
    assert said == [
        ("trade", o, 0, 4, 101, "buy", "venue:alpaca"),
        ("position", "alice", 4, 404, start - 404),
        ("position", "venue:alpaca", -4, -404, 404),
    ]
    snap = eng.svc.state.snapshot()  # an orphan survives a snapshot
    restored = EngineState(eng.svc.state.config)
    restored.restore(snap)
    assert restored.orphans == eng.svc.state.orphans and list(restored.orphans) == [o]

    said = _said(_report(eng, _fill(o, 102, 2, 0, 2)))
    assert said[0] == ("trade", o, 0, 2, 102, "buy", "venue:alpaca")
    assert said[1] == ("position", "alice", 6, 608, start - 608)
    assert eng.svc.state.orphans == {}  # nothing left to fill: no longer watched
    assert eng.svc.state.positions.account("alice").positions[0].position == 6
    assert refused(eng.new("alice", "buy", 1, price=100)).reason == "max_position"
    # still rejected, not live: with the lots the venue filled
    assert _final(eng, o) == ("rejected", "venue_unavailable", 6, 608 / 6)

    # a duplicate report after that books nothing
    assert _report(eng, _fill(o, 102, 2, 0, 3)) == []

    # recovery from the journal alone: the same events, positions, risk and orphans
    again = eng.reopen(tmp_path / "b")
    st, live = again.svc.state, eng.svc.state
    assert st.seq == live.seq
    assert st.replay(1, st.seq, 1000) == live.replay(1, live.seq, 1000)
    assert st.positions.snapshot() == live.positions.snapshot()
    assert st.risk.snapshot() == live.risk.snapshot()
    assert st.orphans == live.orphans == {}
    assert _final(again, o) == _final(eng, o)


def test_an_orphan_is_forgotten_when_the_venue_gives_it_up(tmp_path: Path) -> None:
    """A partial late fill, then the venue's end of the watch (its cancel landed, or
    the order never arrived): no event, and later reports book nothing; a rejection
    that says the submit never left (no `maybe_placed`) makes no orphan at all."""
    eng, _ = _at_alpaca(tmp_path / "a")
    o = ok(eng.new("alice", "sell", 10, price=100)).order_id
    n = ok(eng.new("alice", "sell", 3, price=100)).order_id
    assert o is not None and n is not None
    _report(
        eng,
        VenueRejected(o, "venue_unavailable", "read timeout", maybe_placed=True),
        VenueRejected(n, "venue_unavailable", "connection refused"),
    )
    assert list(eng.svc.state.orphans) == [o]
    trades = [e for e in _report(eng, _fill(o, 99, 3, 7, 1)) if isinstance(e, Trade)]
    assert [(t.taker, t.qty, t.taker_side, t.taker_account) for t in trades] == [
        (o, 3, "sell", "alice")
    ]
    assert _report(eng, VenueCanceled(o, 7, "orphan_closed")) == []
    assert eng.svc.state.orphans == {}
    seq = eng.seq
    assert _report(eng, _fill(o, 99, 1, 6, 2), _fill(n, 99, 1, 2, 3)) == []
    assert eng.seq == seq
    assert eng.svc.state.positions.account("alice").positions[0].position == -3
    again = eng.reopen(tmp_path / "b")
    assert again.svc.state.positions.snapshot() == eng.svc.state.positions.snapshot()
    assert again.seq == eng.seq and again.svc.state.orphans == {}


class _HandedBack(_Venue):
    """The stand-in venue, recording what a restarted engine hands back to it."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed: list[HandBack] = []
        self.watched: list[HandBack] = []

    def resume(self, orders: list[HandBack]) -> None:
        self.sent.append(("resume", *(h.order.order_id for h in orders)))
        self.resumed.extend(orders)

    def watch_orphans(self, orders: list[HandBack]) -> None:
        self.sent.append(("watch_orphans", *(h.order.order_id for h in orders)))
        self.watched = orders


def test_the_orders_named_to_the_venue_before_it_starts_are_those_handed_back(
    tmp_path: Path,
) -> None:
    """A restarted engine names to the venue, before it starts, the orders it will hand
    back (`Venue.expect_hand_back`: the venue holds what it hears of them until then):
    a plain order, a bracket by its parent, an orphan; not an order that ended."""
    eng, _ = _at_alpaca(tmp_path / "a")
    plain = ok(eng.new("alice", "buy", 5, price=100)).order_id
    group = ok(eng.new("alice", "buy", 5, **bracket())).order_id
    ended = ok(eng.new("alice", "sell", 3, price=100)).order_id
    orphan = ok(eng.new("alice", "buy", 2, price=100)).order_id
    assert plain and group and ended and orphan
    _report(
        eng,
        VenueAccepted(plain, "v-plain"),
        VenueAccepted(group, "v-group"),
        VenueAccepted(ended, "v-ended"),
        VenueCanceled(ended, 3, "canceled"),
        VenueRejected(orphan, "venue_unavailable", "503", maybe_placed=True),
    )
    again = eng.reopen(tmp_path / "b")
    again.svc.config.venue = VenueConfig(kind="alpaca")
    venue = _HandedBack()
    again.svc.venue = venue  # type: ignore[assignment]
    named = again.svc._hand_back_ids()
    again.svc._resume_routed()
    assert venue.sent == [
        ("resume", plain),
        ("resume", group, group + 1, group + 2),
        ("watch_orphans", orphan),
    ]
    assert named == {plain, group, orphan}


def test_a_restart_hands_back_what_the_booked_lots_cost(tmp_path: Path) -> None:
    """alice's buy of 10 fills 4 at 100 and 2 at 103 at the venue: the engine keeps what
    the 6 booked lots cost (606 ticks*lots) and a restart hands it back with them, the
    same recovered from the journal alone and from a snapshot. A snapshot written
    before the engine kept it still loads: unknown (None), handed back as such, and
    a fill after it leaves it unknown (the venue values the lots at its average)."""
    eng, _ = _at_alpaca(tmp_path / "a")
    o = ok(eng.new("alice", "buy", 10, price=100)).order_id
    assert o is not None
    _report(eng, VenueAccepted(o, "v-o"), _fill(o, 100, 4, 6, 1), _fill(o, 103, 2, 4, 2))
    live = eng.svc.state
    assert (live.routed[o].filled, live.routed[o].notional) == (6, 606)

    again = eng.reopen(tmp_path / "b")
    assert again.svc.state.routed == live.routed
    venue = _HandedBack()
    again.svc.venue = venue  # type: ignore[assignment]
    again.svc._resume_routed()
    assert [(h.order.order_id, h.lots, h.notional) for h in venue.resumed] == [(o, 6, 606)]

    snap = live.snapshot()
    restored = EngineState(live.config)
    restored.restore(snap)
    assert restored.routed == live.routed

    older = msgspec.msgpack.decode(snap)
    for r in older["routed"]:
        del r["notional"]
    restored = EngineState(live.config)
    restored.restore(msgspec.msgpack.encode(older))
    assert (restored.routed[o].filled, restored.routed[o].notional) == (6, None)
    restored.apply_venue("filled", msgspec.to_builtins(_fill(o, 104, 1, 3, 3)), 1_003)
    assert (restored.routed[o].filled, restored.routed[o].notional) == (7, None)
    again.svc.state = restored
    venue = _HandedBack()
    again.svc.venue = venue  # type: ignore[assignment]
    again.svc._resume_routed()
    assert [(h.order.order_id, h.lots, h.notional) for h in venue.resumed] == [(o, 7, None)]


def test_an_orphaned_brackets_legs_are_orphans_with_it(tmp_path: Path) -> None:
    """alice's bracket gets a 503 that Alpaca took anyway: Alpaca made its legs with it,
    so they are orphans too. The entry fills 10 there, then the take-profit 4: both
    booked as late fills under their own ids (the take-profit a sell), no order event.
    The parent, filled, is kept while its legs are watched (a restart hands them back
    with it, named in its `legs`); the legs' watch ends, then the parent's. The same
    from the journal alone."""
    eng, _ = _at_alpaca(tmp_path / "a")
    p = ok(eng.new("alice", "buy", 10, **bracket())).order_id
    assert p is not None
    tp, sl = p + 1, p + 2
    _report(eng, VenueRejected(p, "venue_unavailable", "503", maybe_placed=True))
    assert sorted(eng.svc.state.orphans) == [p, tp, sl]
    said = _said(_report(eng, _fill(p, 100, 10, 0, 1), _fill(tp, 110, 4, 6, 2)))
    assert [x for x in said if x[0] == "trade"] == [
        ("trade", p, 0, 10, 100, "buy", "venue:alpaca"),
        ("trade", tp, 0, 4, 110, "sell", "venue:alpaca"),
    ]
    assert eng.svc.state.positions.account("alice").positions[0].position == 6
    assert sorted(eng.svc.state.orphans) == [p, tp, sl]  # the parent waits for its legs

    again = eng.reopen(tmp_path / "b")  # recovered, then handed back
    assert again.svc.state.orphans == eng.svc.state.orphans
    venue = _HandedBack()
    again.svc.venue = venue  # type: ignore[assignment]
    again.svc._resume_routed()
    assert venue.sent == [("watch_orphans", p, tp, sl)]
    watched = venue.watched
    # with the lots booked of each, and what they cost (ticks*lots)
    assert [(h.order.order_id, h.order.legs, h.lots, h.notional) for h in watched] == [
        (p, (tp, sl), 10, 1000),
        (tp, (), 4, 440),
        (sl, (), 0, 0),
    ]
    assert again.svc._hand_back_ids() == {p, tp, sl}

    assert _report(eng, VenueCanceled(tp, 6, "orphan_closed")) == []
    assert sorted(eng.svc.state.orphans) == [p, sl]
    assert _report(eng, VenueCanceled(p, 0, "orphan_closed")) == []
    assert eng.svc.state.orphans == {}  # its close ends its legs' watch too
    assert _report(eng, _fill(sl, 90, 1, 9, 3)) == []
    later = eng.reopen(tmp_path / "c")
    st, live = later.svc.state, eng.svc.state
    assert st.replay(1, st.seq, 1000) == live.replay(1, live.seq, 1000)
    assert st.positions.snapshot() == live.positions.snapshot() and st.orphans == {}


def test_get_order_answers_for_an_orphaned_brackets_legs(tmp_path: Path) -> None:
    """An orphaned bracket's legs have their fills booked under their own ids, so
    their owner asks about them by those ids: GetOrder shows each rejected with its
    parent (`venue_unavailable`), with the lots Alpaca filled and their average (it
    answered `unknown_order`); another account's ask is refused. The same from the
    journal alone. A bracket refused for sure (not maybe placed) leaves no legs to
    ask about."""
    eng, _ = _at_alpaca(tmp_path / "a")
    p = ok(eng.new("alice", "buy", 10, **bracket())).order_id
    assert p is not None
    tp, sl = p + 1, p + 2
    _report(eng, VenueRejected(p, "venue_unavailable", "503", maybe_placed=True))
    _report(eng, _fill(p, 100, 10, 0, 1), _fill(tp, 110, 4, 6, 2), _fill(tp, 113, 2, 4, 3))
    assert _final(eng, p) == ("rejected", "venue_unavailable", 10, 100)
    assert _final(eng, tp) == ("rejected", "venue_unavailable", 6, 111)
    assert _final(eng, sl) == ("rejected", "venue_unavailable", 0, None)
    reply, _ = eng.svc.dispatch(wire.GetOrder(7, "alice", tp), set())
    assert isinstance(reply, wire.Ack) and reply.order is not None
    view = reply.order
    assert (view.parent_id, view.side, view.order_type, view.price) == (p, "sell", "limit", 110)
    refused, _ = eng.svc.dispatch(wire.GetOrder(8, "bob", tp), set())
    assert isinstance(refused, wire.Reject) and refused.reason == "unknown_order"

    again = eng.reopen(tmp_path / "b")
    for i in (p, tp, sl):
        assert _final(again, i) == _final(eng, i)

    q = ok(eng.new("alice", "buy", 10, **bracket())).order_id
    assert q is not None
    _report(eng, VenueRejected(q, "venue_rejected", "422"))
    assert eng.svc.state.order_view(q + 1, "alice") is None
