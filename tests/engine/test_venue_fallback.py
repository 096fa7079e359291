"""An order handed to the venue whose submit never reached it, under `venue.unreachable:
internal` (docs/venues.md, "The engine and the policy"): matched here as had it come
while the venue was unreachable, the same after a recovery from the journal; and
rejected when a later order reached the book first (the book takes ids in rising
order only). In process, the venue a stand-in that reports what the test says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tickplane.core.config import VenueConfig
from tickplane.core.events import Event, OrderAccepted, OrderCanceled, OrderRejected, Trade
from tickplane.engine.venues.base import VenueRejected

from .test_order_class_risk import TP, Engine, _routed, bracket, ok


def _falling_back(tmp_path: Path, **limits: Any) -> tuple[Engine, Any]:
    eng, venue = _routed(tmp_path, **limits)
    eng.svc.config.venue = VenueConfig(kind="alpaca", unreachable="internal")
    return eng, venue


def _fall_back(eng: Engine, order_id: int) -> list[Event]:
    """The venue says the submit of `order_id` never left (policy internal)."""
    fallback = VenueRejected(order_id, "venue_fallback", "connection failed (refused)")
    touched: set[int] = set()
    events = eng.svc._venue_events([fallback], touched)
    assert eng.svc.journal is not None
    eng.svc.journal.commit()
    assert touched == {0}  # GOOG's book is published
    return events


def _said(events: list[Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, OrderAccepted):
            out.append(("accepted", e.id, e.leg, e.order_type))
        elif isinstance(e, Trade):
            out.append(("trade", e.maker, e.taker, e.qty))
        elif isinstance(e, OrderRejected):
            out.append(("rejected", e.id, e.reason))
        elif isinstance(e, OrderCanceled):
            out.append(("canceled", e.id, e.remaining, e.reason))
    return out


def test_routed_orders_that_never_left_are_matched_here_and_recover_so(
    tmp_path: Path,
) -> None:
    eng, venue = _falling_back(tmp_path / "a")
    plain = ok(eng.new("alice", "sell", 5, price=101)).order_id
    b = ok(eng.new("alice", "buy", 10, **bracket(take_profit=TP(110)))).order_id
    t = ok(eng.new("alice", "sell", 3, order_type="trailing_stop", trail_price=2)).order_id
    assert plain is not None and b is not None and t is not None
    assert [s[0] for s in venue.sent] == ["submit"] * 3
    assert sorted(eng.svc.state.routed) == [plain, b, b + 1, b + 2, t]

    assert _said(_fall_back(eng, plain)) == [("accepted", plain, None, "limit")]
    assert _said(_fall_back(eng, b)) == [
        ("accepted", b, None, "limit"),
        ("accepted", b + 1, "take_profit", "limit"),
        ("accepted", b + 2, "stop_loss", "stop"),
    ]
    assert _said(_fall_back(eng, t)) == [("accepted", t, None, "trailing_stop")]
    assert eng.svc.state.routed == {} and eng.svc.state.routed_groups == {}
    views = [eng.view(i) for i in (plain, b, b + 1, b + 2, t)]
    assert [v.status for v in views] == ["resting", "resting", "held", "held", "held"]
    # they are the book's now: a crossing order trades with the plain one here
    venue.connected = False
    taken = ok(eng.new("bob", "buy", 2, price=101))
    assert _said(taken.events)[-1] == ("trade", plain, taken.order_id, 2)
    assert eng.svc.metrics.venue_fallbacks["in_flight"].value == 3
    assert eng.svc.metrics.venue_fallbacks["new"].value == 1
    # recovery from the journal alone: the same orders, the same risk, nothing routed
    again = eng.reopen(tmp_path / "b")
    st, live = again.svc.state, eng.svc.state
    assert st.seq == live.seq and st.routed == {}
    assert [again.view(i) for i in (plain, b, b + 1, b + 2, t)] == [
        eng.view(i) for i in (plain, b, b + 1, b + 2, t)
    ]
    assert st.risk.snapshot() == live.risk.snapshot()
    assert st.contingent.snapshot() == live.contingent.snapshot()


def test_a_routed_order_a_later_one_overtook_in_the_book_is_rejected(
    tmp_path: Path,
) -> None:
    eng, venue = _falling_back(tmp_path / "a")
    o = ok(eng.new("alice", "buy", 5, price=100)).order_id
    assert o is not None
    venue.connected = False  # the outage is seen: the next order is matched here at once
    later = ok(eng.new("alice", "buy", 1, price=99))
    assert later.order_id is not None and later.order_id > o
    assert _said(later.events) == [("accepted", later.order_id, None, "limit")]
    fallback = VenueRejected(o, "venue_fallback", "connection failed (refused)")
    events = eng.svc._venue_events([fallback], set())
    assert _said(events) == [("rejected", o, "venue_unavailable")]
    assert o not in eng.svc.state.routed
    assert eng.svc.state.risk.open_exposure("alice", "GOOG") == (1, 0, 1)  # `later` only
    assert eng.svc.metrics.venue_fallbacks["in_flight"].value == 0
    again = eng.reopen(tmp_path / "b")
    assert again.svc.state.seq == eng.svc.state.seq
    assert again.svc.state.risk.snapshot() == eng.svc.state.risk.snapshot()


def test_a_market_order_that_falls_back_stops_at_its_market_collar(tmp_path: Path) -> None:
    """Matched here, a routed market order is collared as one that came while the venue
    was unreachable: 5% from the reference 100 (alice's market_collar_bps), up to 105."""
    eng, venue = _falling_back(tmp_path / "a", market_collar_bps=500)
    venue.connected = False  # liquidity in the book here
    asks = [ok(eng.new("bob", "sell", 1, price=p)).order_id for p in (100, 104, 108)]
    venue.connected = True
    m = ok(eng.new("alice", "buy", 3, order_type="market")).order_id
    assert m is not None and [s[0] for s in venue.sent] == ["submit"]
    assert _said(_fall_back(eng, m)) == [
        ("accepted", m, None, "market"),
        ("trade", asks[0], m, 1),
        ("trade", asks[1], m, 1),
        ("canceled", m, 1, "market_collar"),
    ]
    again = eng.reopen(tmp_path / "b", market_collar_bps=500)
    assert again.svc.state.seq == eng.svc.state.seq
    book, recovered = (e.svc.state.core.dump()["resting"].tolist() for e in (eng, again))
    assert recovered == book and [o[0] for o in book] == [asks[2]]  # 108 rests
    assert again.svc.state.risk.snapshot() == eng.svc.state.risk.snapshot()
