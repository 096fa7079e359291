"""Held orders against pre-trade risk (docs/risk.md, "Order classes"): the legs of a
bracket, OTO or OCO and trailing stops count as open orders, legs pass the per-order
limits at submission, and a leg released into the book passes the position limit.

In process: an `EngineService` without sockets (requests go to `dispatch`), journaled,
so the same flows also recover; and an `EngineState` fed an Alpaca venue's reports
(its end-to-end tests are in test_engine_alpaca.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import generate_latest

from tickplane.core import wire
from tickplane.core.config import EngineConfig, RiskConfig, RiskLimits, SymbolConfig
from tickplane.core.events import (
    Event,
    OrderActivated,
    OrderCanceled,
    OrderReplaced,
    StopTriggered,
    Trade,
)
from tickplane.engine.journal import FsyncPolicy, JournalWriter
from tickplane.engine.service import EngineService
from tickplane.engine.state import EngineState, RoutedOrder
from tickplane.engine.venues.base import VenueAccepted, VenueRejected, VenueReplaced

TP = wire.TakeProfit
SL = wire.StopLoss


class Engine:
    """Requests in, replies out, numbered for the caller."""

    def __init__(self, journal_dir: Path, **limits: Any) -> None:
        config = EngineConfig(
            name="risk",
            journal_dir=str(journal_dir),
            symbols=[SymbolConfig("GOOG", reference_price=100)],
            http_port=0,
            snapshot_every=0,
            pin_cpu=False,
            risk=RiskConfig(accounts={"alice": RiskLimits(**limits)}),
        )
        self.svc = EngineService(config)
        self.svc.journal = JournalWriter.open(journal_dir, FsyncPolicy.NONE)
        self.svc.recover()
        self.n = 0

    def send(self, req: Any) -> wire.Reply:
        reply, _ = self.svc.dispatch(req, set())
        assert self.svc.journal is not None
        self.svc.journal.commit()
        return reply

    def new(self, account: str, side: str, qty: int, **fields: Any) -> wire.Reply:
        self.n += 1
        order_type = fields.pop("order_type", "limit")
        return self.send(wire.NewOrder(self.n, account, "GOOG", side, order_type, qty, **fields))

    def cancel(self, account: str, order_id: int) -> wire.Reply:
        self.n += 1
        return self.send(wire.CancelOrder(self.n, account, order_id))

    def replace(self, account: str, order_id: int, **fields: Any) -> wire.Reply:
        self.n += 1
        return self.send(wire.ReplaceOrder(self.n, account, order_id, **fields))

    def view(self, order_id: int) -> wire.OrderView:
        v = self.svc.state.order_view(order_id, "alice")
        assert v is not None
        return v

    def rejects(self, reason: str) -> float:
        """The engine's count of risk rejects for `reason` (its metric)."""
        text = generate_latest(self.svc.metrics.registry).decode()
        line = f'tickplane_engine_risk_rejects_total{{reason="{reason}"}} '
        found = [ln for ln in text.splitlines() if ln.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    def reopen(self, journal_dir: Path, **limits: Any) -> Engine:
        """A copy of this engine's journal in `journal_dir`, recovered under `limits`."""
        assert self.svc.journal is not None
        self.svc.journal.commit()
        shutil.copytree(Path(self.svc.config.journal_dir), journal_dir)
        return Engine(journal_dir, **limits)

    def open_ids(self, account: str) -> list[int]:
        return [v.id for v in self.svc.state.open_orders(account)]

    @property
    def seq(self) -> int:
        return self.svc.state.seq


def ok(reply: wire.Reply) -> wire.Ack:
    assert isinstance(reply, wire.Ack), reply
    return reply


def refused(reply: wire.Reply) -> wire.Reject:
    assert isinstance(reply, wire.Reject), reply
    return reply


def bracket(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        price=100, order_class="bracket", take_profit=TP(110), stop_loss=SL(90)
    )
    fields.update(over)
    return fields


def test_a_bracket_needs_three_open_orders_and_gives_them_back(tmp_path: Path) -> None:
    eng = Engine(tmp_path, max_open_orders=3)
    ok(eng.new("alice", "buy", 1, price=95))
    seq = eng.seq
    r = refused(eng.new("alice", "buy", 5, **bracket()))
    assert r.reason == "max_open_orders"
    assert "brings 3" in r.message  # the parent and its two legs
    assert eng.seq == seq and len(eng.open_ids("alice")) == 1  # nothing was accepted
    # an OTO brings two: it fits
    oto = ok(eng.new("alice", "buy", 5, price=100, order_class="oto", take_profit=TP(110)))
    assert oto.order_id is not None
    assert eng.open_ids("alice") == [1, oto.order_id, oto.order_id + 1]
    # the account is at its limit: a held leg counts like a resting order
    assert refused(eng.new("alice", "buy", 1, price=95)).reason == "max_open_orders"
    # canceling the parent cancels its leg (nothing to work yet): both slots come back
    ok(eng.cancel("alice", oto.order_id))
    assert eng.open_ids("alice") == [1]
    ok(eng.cancel("alice", 1))
    b = ok(eng.new("alice", "buy", 5, **bracket()))
    assert b.order_id is not None and len(eng.open_ids("alice")) == 3


def test_an_oco_brings_two_open_orders_and_a_trailing_stop_one(tmp_path: Path) -> None:
    eng = Engine(tmp_path, max_open_orders=2)
    oco = dict(order_class="oco", take_profit=TP(110), stop_loss=SL(90))
    ok(eng.new("alice", "sell", 3, **oco))
    assert refused(eng.new("alice", "sell", 1, price=120)).reason == "max_open_orders"
    eng2 = Engine(tmp_path / "two", max_open_orders=1)
    ok(eng2.new("alice", "sell", 3, order_type="trailing_stop", trail_price=2))
    assert refused(eng2.new("alice", "sell", 1, price=120)).reason == "max_open_orders"
    assert refused(eng2.new("alice", "sell", 3, **oco)).reason == "max_open_orders"


def test_each_leg_passes_the_order_limits_at_its_own_price(tmp_path: Path) -> None:
    eng = Engine(tmp_path, max_order_notional=1000, max_order_qty=10)
    seq = eng.seq
    # the parent (10 at 95: 950) passes; the take-profit (10 at 110: 1100) does not
    r = refused(eng.new("alice", "buy", 10, **bracket(price=95)))
    assert (r.reason, r.message.split(" notional")[0]) == (
        "max_order_notional",
        "the take_profit leg's",
    )
    # a sell's stop-loss is above it: a stop leg is valued at its stop ...
    r = refused(
        eng.new("alice", "sell", 10, **bracket(price=95, take_profit=TP(90), stop_loss=SL(105)))
    )
    assert r.reason == "max_order_notional" and r.message.startswith("the stop_loss leg's")
    # ... a stop-limit leg at its limit
    sl = SL(99, 101)
    r = refused(eng.new("alice", "sell", 10, **bracket(price=95, take_profit=TP(90), stop_loss=sl)))
    assert r.message.startswith("the stop_loss leg's") and "10 lots at 101" in r.message
    sl = SL(99, 100)
    ok(eng.new("alice", "sell", 10, **bracket(price=95, take_profit=TP(90), stop_loss=sl)))
    # quantity: a leg works at most its parent's, so the parent's check is the one
    assert refused(eng.new("alice", "buy", 11, **bracket(price=90))).reason == "max_order_qty"
    assert eng.seq == seq + 3  # only the one that passed: accepted, with its two legs


def _stop_loss_release(tmp_path: Path) -> tuple[Engine, int, list[Event]]:
    """alice buys 10 with an OTO whose only leg is a stop-loss at 90, then sells 20 on
    her own (within her limit of 10: the held stop counts no lots), so when the stop
    triggers, its sell of 10 would take her to 20 short."""
    eng = Engine(tmp_path, max_position=10)
    oto = ok(eng.new("alice", "buy", 10, price=100, order_class="oto", stop_loss=SL(90)))
    assert oto.order_id is not None
    ok(eng.new("bob", "sell", 10, price=100))  # the parent fills: the stop-loss works 10
    ok(eng.new("bob", "buy", 20, price=99))
    ok(eng.new("alice", "sell", 20, price=99))  # alice is 10 short now
    ok(eng.new("carol", "buy", 5, price=89))
    hit = ok(eng.new("dave", "sell", 1, price=89))  # prints 89: the stop triggers
    return eng, oto.order_id + 1, hit.events


def test_a_leg_released_past_the_position_limit_is_canceled(tmp_path: Path) -> None:
    eng, leg, events = _stop_loss_release(tmp_path)
    triggered = [e for e in events if isinstance(e, StopTriggered)]
    canceled = [e for e in events if isinstance(e, OrderCanceled) and e.id == leg]
    assert [e.id for e in triggered] == [leg]
    assert [(e.reason, e.remaining) for e in canceled] == [("max_position", 10)]
    assert not [e for e in events if isinstance(e, Trade) and leg in (e.taker, e.maker)]
    assert leg not in eng.open_ids("alice")
    acct = eng.svc.state.account_view("alice")
    assert acct.positions[0].qty == -10  # not -20
    assert acct.open_orders == 0


def test_a_leg_released_within_the_limit_counts_its_group_once(tmp_path: Path) -> None:
    # a bracket's take-profit rests (10 lots) when its stop-loss triggers: the stop's 10
    # are not added to them (one cancels the other), so a limit of 10 lets it work
    eng = Engine(tmp_path, max_position=10)
    b = ok(eng.new("alice", "buy", 10, **bracket()))
    assert b.order_id is not None
    ok(eng.new("bob", "sell", 10, price=100))
    assert eng.svc.state.risk.open_exposure("alice", "GOOG")[1] == 10  # the take-profit
    ok(eng.new("carol", "buy", 20, price=89))
    hit = ok(eng.new("dave", "sell", 1, price=89))
    sl = b.order_id + 2
    fills = [e for e in hit.events if isinstance(e, Trade) and sl in (e.taker, e.maker)]
    assert sum(e.qty for e in fills) == 10
    canceled = {e.id: e.reason for e in hit.events if isinstance(e, OrderCanceled)}
    assert canceled == {b.order_id + 1: "oco"}
    assert eng.svc.state.account_view("alice").positions[0].qty == 0
    assert eng.open_ids("alice") == []
    assert eng.svc.state.risk.open_exposure("alice", "GOOG") == (0, 0, 0)


@pytest.mark.parametrize("limit_after", [10, 1000])
def test_a_release_recovers_to_the_same_decision_under_new_limits(
    tmp_path: Path, limit_after: int
) -> None:
    """The leg keeps the limit it was accepted under (journaled with it), so a
    recovery under other limits replays the same cancel."""
    eng, leg, _ = _stop_loss_release(tmp_path / "a")
    assert eng.svc.journal is not None
    eng.svc.journal.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    again = Engine(tmp_path / "b", max_position=limit_after)
    st, before = again.svc.state, eng.svc.state
    assert st.seq == before.seq
    assert st.account_view("alice") == before.account_view("alice")
    assert st.risk.snapshot() == before.risk.snapshot()
    replayed = st.replay(1, st.seq, 10_000)
    assert replayed is not None
    canceled = [e.reason for e in replayed if isinstance(e, OrderCanceled) and e.id == leg]
    assert canceled == ["max_position"]


def test_a_routed_take_profit_refused_on_release_waits_hidden_for_the_venue(
    tmp_path: Path,
) -> None:
    """alice offers 11 at the venue and her routed bracket buy of 10 fills: its
    take-profit could take her to 11 short, so it is canceled for her and left for the
    venue to cancel (`venue_cancels`), out of her open orders. A fill of it that beat
    the cancel is booked (a real execution, its sibling reduced); the venue's cancel and
    its refusals of a second cancel are no events."""
    st = EngineState(
        EngineConfig(
            name="routed",
            journal_dir=str(tmp_path),
            symbols=[SymbolConfig("GOOG", reference_price=100)],
            risk=RiskConfig(accounts={"alice": RiskLimits(max_position=10)}),
        )
    )
    st.add_account("alice")

    def venue(kind: str, order_id: int, **fields: Any) -> list[Event]:
        return st.apply_venue(kind, {"order_id": order_id, "venue": "alpaca", **fields}, 1)

    def fill(order_id: int, qty: int, price: int, leaves: int) -> list[Event]:
        return venue("filled", order_id, qty=qty, price=price, ts_event=1, leaves_qty=leaves)

    st.route(RoutedOrder(1, "alice", "GOOG", "sell", "limit", 11, 200, None, "gtc"))
    venue("accepted", 1)
    leg = dict(order_class="bracket", parent_id=2, max_position=10)
    st.route(
        RoutedOrder(2, "alice", "GOOG", "buy", "limit", 10, 100, None, "gtc",
                    order_class="bracket"),
        [
            RoutedOrder(3, "alice", "GOOG", "sell", "limit", 10, 110, None, "gtc",
                        leg="take_profit", **leg),
            RoutedOrder(4, "alice", "GOOG", "sell", "stop", 10, None, 90, "gtc",
                        leg="stop_loss", **leg),
        ],
    )  # fmt: skip
    venue("accepted", 2)
    events = fill(2, 10, 100, 0)
    said = [
        (type(e).__name__, e.id, getattr(e, "reason", None))
        for e in events
        if isinstance(e, OrderActivated | OrderCanceled)
    ]
    assert said == [
        ("OrderActivated", 3, None),
        ("OrderCanceled", 3, "max_position"),
        ("OrderActivated", 4, None),
    ]
    assert st.venue_cancels == [3]
    assert [v.id for v in st.open_orders("alice")] == [1, 4]
    hidden = st.order_view(3, "alice")  # canceled for its clients, not open
    assert hidden is not None and (hidden.status, hidden.reason) == ("canceled", "max_position")
    assert st.risk.open_exposure("alice", "GOOG")[1] == 11  # the offer only
    assert venue("rejected", 3, reason="not_cancelable", message="", request="cancel") == []
    raced = fill(3, 4, 110, 6)
    assert [(e.taker, e.qty) for e in raced if isinstance(e, Trade)] == [(3, 4)]
    assert [(e.id, e.qty) for e in raced if isinstance(e, OrderReplaced)] == [(4, 6)]
    assert st.account_view("alice").positions[0].qty == 6
    assert venue("canceled", 3, remaining=6, reason="canceled") == []
    assert 3 not in st.routed and [v.id for v in st.open_orders("alice")] == [1, 4]


# --- replaces of held and routed orders (docs/risk.md, "Replaces") --------------------------


def test_a_trailing_stops_quantity_is_raised_only_within_the_limits(tmp_path: Path) -> None:
    eng = Engine(tmp_path, max_order_qty=10, max_position=12)
    ok(eng.new("alice", "sell", 4, price=120))  # rests: 4 sell lots open
    t = ok(eng.new("alice", "sell", 5, order_type="trailing_stop", trail_price=2)).order_id
    assert t is not None
    seq, risk = eng.seq, eng.svc.state.risk
    r = refused(eng.replace("alice", t, qty=11))
    assert r.reason == "max_order_qty" and "quantity 11" in r.message
    r = refused(eng.replace("alice", t, qty=9))  # 4 + 9: 13 short in the worst case
    assert r.reason == "max_position" and "13 lots short" in r.message
    # a refused replace changes nothing: no event, no MARK, the same lots
    assert eng.seq == seq and eng.view(t).qty == 5 and risk.open_exposure("alice", "GOOG")[1] == 9
    assert (eng.rejects("max_order_qty"), eng.rejects("max_position")) == (1, 1)
    replaced = ok(eng.replace("alice", t, qty=8))  # 12: at the limit
    assert [(e.id, e.qty) for e in replaced.events if isinstance(e, OrderReplaced)] == [(t, 8)]
    assert eng.view(t).qty == 8 and risk.open_exposure("alice", "GOOG")[1] == 12
    # a pure reduction passes always, even under a kill switch; a raise does not
    risk.kill("alice")
    ok(eng.replace("alice", t, qty=6))
    assert refused(eng.replace("alice", t, qty=7)).reason == "kill_switch"
    assert eng.view(t).qty == 6


def test_a_legs_price_moves_only_within_the_order_limits(tmp_path: Path) -> None:
    """A leg's quantity follows its parent, so a replace moves its price: it passes the
    per-order limits at the new price as at submission (a take-profit valued at its
    limit, a stop-loss at its stop when it has no limit)."""
    eng = Engine(tmp_path, max_order_notional=1000, max_position=9)
    b = ok(eng.new("alice", "buy", 9, **bracket()))  # take-profit 9 at 110: 990
    s = ok(eng.new("alice", "sell", 9, **bracket(take_profit=TP(90), stop_loss=SL(105))))
    assert b.order_id is not None and s.order_id is not None
    tp, sl = b.order_id + 1, s.order_id + 2
    seq = eng.seq
    r = refused(eng.replace("alice", tp, price=112))  # 9 at 112: 1008
    assert r.reason == "max_order_notional" and r.message.startswith("the take_profit leg's")
    r = refused(eng.replace("alice", sl, stop_price=112))
    assert r.reason == "max_order_notional" and "9 lots at 112" in r.message
    assert eng.seq == seq and (eng.view(tp).price, eng.view(sl).stop_price) == (110, 105)
    assert eng.rejects("max_order_notional") == 2
    ok(eng.replace("alice", tp, price=111))  # 999
    ok(eng.replace("alice", sl, stop_price=111))
    assert (eng.view(tp).price, eng.view(sl).stop_price) == (111, 111)
    eng.svc.state.risk.kill("alice")
    assert refused(eng.replace("alice", tp, price=108)).reason == "kill_switch"


class _Venue:
    """A venue that takes every request and says nothing (the test reports for it)."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def submit(self, order: Any) -> None:
        self.sent.append(("submit", order.order_id))

    def cancel(self, order_id: int) -> None:
        self.sent.append(("cancel", order_id))

    def replace(self, order_id: int, qty: Any, price: Any, stop: Any = None, **trail: Any) -> None:
        self.sent.append(("replace", order_id, qty, price, stop))


def _routed(tmp_path: Path, **limits: Any) -> tuple[Engine, _Venue]:
    eng = Engine(tmp_path, **limits)
    venue = _Venue()
    eng.svc.venue = venue  # type: ignore[assignment]
    return eng, venue


def _accepted(eng: Engine, order_id: int) -> None:
    eng.svc._venue_events([VenueAccepted(order_id, f"v{order_id}")], set())


def test_a_routed_orders_replace_passes_risk_before_it_goes_to_the_venue(
    tmp_path: Path,
) -> None:
    eng, venue = _routed(tmp_path, max_order_qty=10, max_position=12)
    ok(eng.new("alice", "buy", 4, price=90))
    o = ok(eng.new("alice", "buy", 5, price=100)).order_id
    t = ok(eng.new("alice", "sell", 5, order_type="trailing_stop", trail_price=2)).order_id
    b = ok(eng.new("alice", "sell", 2, **bracket(take_profit=TP(90), stop_loss=SL(105))))
    assert o is not None and t is not None and b.order_id is not None
    for order_id in (1, o, t, b.order_id):
        _accepted(eng, order_id)
    assert eng.svc.state.risk.open_exposure("alice", "GOOG")[:2] == (9, 7)
    sent, seq = len(venue.sent), eng.seq
    assert refused(eng.replace("alice", o, qty=11)).reason == "max_order_qty"
    assert refused(eng.replace("alice", o, qty=9)).reason == "max_position"  # 4 + 9 long
    assert refused(eng.replace("alice", t, qty=11)).reason == "max_order_qty"
    eng.svc.state.risk.kill("alice")
    assert refused(eng.replace("alice", b.order_id + 2, stop_price=104)).reason == "kill_switch"
    assert refused(eng.replace("alice", o, price=101)).reason == "kill_switch"
    # nothing went to the venue, nothing was journaled or published
    assert len(venue.sent) == sent and eng.seq == seq
    assert (eng.rejects("max_order_qty"), eng.rejects("max_position")) == (2, 1)
    ok(eng.replace("alice", o, qty=3))  # a pure reduction, under the kill switch too
    eng.svc.state.risk.revive("alice")
    ok(eng.replace("alice", o, qty=8))  # 12 long at worst: the limit
    ok(eng.replace("alice", t, qty=10))
    ok(eng.replace("alice", b.order_id + 2, stop_price=104))
    assert venue.sent[sent:] == [
        ("replace", o, 3, None, None),
        ("replace", o, 8, None, None),
        ("replace", t, 10, None, None),
        ("replace", b.order_id + 2, None, None, 104),
    ]


def test_replaces_of_held_and_routed_orders_spend_their_rate_token_in_recovery_too(
    tmp_path: Path,
) -> None:
    """With a burst of 4 orders: a trailing stop, its raise, a routed order and its
    raise take all four, so a fifth order is refused, live and after a recovery from
    the journal alone; a pure reduction took none."""
    limits = dict(max_orders_per_second=1, order_burst=4)
    eng, venue = _routed(tmp_path / "a", **limits)
    eng.svc.venue = None
    t = ok(eng.new("alice", "sell", 5, order_type="trailing_stop", trail_price=2)).order_id
    assert t is not None
    ok(eng.replace("alice", t, qty=6))
    ok(eng.replace("alice", t, qty=4))  # a reduction: no token
    eng.svc.venue = venue  # type: ignore[assignment]
    o = ok(eng.new("alice", "buy", 5, price=100)).order_id
    assert o is not None
    _accepted(eng, o)
    ok(eng.replace("alice", o, qty=7))
    eng.svc._venue_events([VenueReplaced(o, "v2", 7, 100)], set())  # risk counts 7 from now on
    ok(eng.replace("alice", o, qty=6))
    assert refused(eng.new("alice", "buy", 1, price=99)).reason == "order_rate"
    again = eng.reopen(tmp_path / "b", **limits)
    st, live = again.svc.state, eng.svc.state
    assert st.seq == live.seq
    assert st.risk.snapshot() == live.risk.snapshot()
    assert refused(again.new("alice", "buy", 1, price=99)).reason == "order_rate"


def test_a_routed_order_counts_for_risk_from_its_hand_off(tmp_path: Path) -> None:
    """Before the venue accepts it, a routed order already counts (its replaces are
    checked, its lots and its legs count), and a refused submit gives it all back."""
    eng, venue = _routed(tmp_path, max_position=8, max_open_orders=4)
    o = ok(eng.new("alice", "buy", 5, price=100)).order_id
    assert o is not None
    assert refused(eng.replace("alice", o, qty=9)).reason == "max_position"
    assert refused(eng.new("alice", "buy", 4, price=99)).reason == "max_position"  # 5 + 4
    b = ok(eng.new("alice", "sell", 2, **bracket(take_profit=TP(90), stop_loss=SL(105))))
    assert b.order_id is not None
    assert refused(eng.new("alice", "sell", 1, price=120)).reason == "max_open_orders"
    assert [s[0] for s in venue.sent] == ["submit", "submit"]  # nothing else went out
    eng.svc._venue_events([VenueRejected(b.order_id, "rejected", "no", "submit")], set())
    assert eng.svc.state.risk.open_exposure("alice", "GOOG") == (5, 0, 1)
    ok(eng.new("alice", "sell", 1, price=120))


# --- a leg's prices on replace: the band and the exits' order, on both venues ------------------


def _venue_engine(tmp_path: Path, routed: bool, **limits: Any) -> tuple[Engine, _Venue | None]:
    """An engine on the internal venue, or routing to a venue that takes every request
    and answers nothing (its legs' prices move only when it confirms, so what a
    refused replace must leave alone is the same on both: the order's view)."""
    if not routed:
        return Engine(tmp_path, **limits), None
    return _routed(tmp_path, **limits)


@pytest.mark.parametrize("routed", [False, True], ids=["internal", "routed"])
def test_a_take_profit_is_banded_as_a_limit_order_when_placed_and_replaced(
    tmp_path: Path, routed: bool
) -> None:
    """With a band of 5% around the reference price of 100, a take-profit works as a
    limit order would: placed or moved past 105 it is refused `price_band`, and the
    refused replace changes nothing (no event, no MARK, nothing sent). A stop-loss is
    banded no more than a stop is, at submission or on replace."""
    eng, venue = _venue_engine(tmp_path, routed, price_band_bps=500)
    seq = eng.seq
    r = refused(eng.new("alice", "buy", 5, **bracket(take_profit=TP(106))))
    assert r.reason == "price_band"
    assert r.message == (
        "the take_profit leg's price 106 is 600 bps from the reference price 100 of GOOG, "
        "outside the band of 500 bps"
    )
    assert eng.seq == seq and eng.open_ids("alice") == []
    b = ok(eng.new("alice", "buy", 5, **bracket(take_profit=TP(104), stop_loss=SL(80))))
    assert b.order_id is not None
    tp, sl = b.order_id + 1, b.order_id + 2
    if venue is not None:
        _accepted(eng, b.order_id)
    sent, seq = list(venue.sent) if venue else [], eng.seq
    r = refused(eng.replace("alice", tp, price=106))
    assert r.reason == "price_band" and r.message.startswith("the take_profit leg's price 106")
    assert refused(eng.replace("alice", tp, price=94)).reason == "price_band"
    assert eng.seq == seq and eng.view(tp).price == 104
    assert (venue.sent if venue else []) == sent
    assert eng.rejects("price_band") == 3
    ok(eng.replace("alice", tp, price=105))  # 500 bps: at the edge, inside
    ok(eng.replace("alice", sl, stop_price=70))  # 30% away: a stop is not banded
    if venue is not None:
        assert venue.sent[len(sent) :] == [
            ("replace", tp, None, 105, None),
            ("replace", sl, None, None, 70),
        ]
    else:
        assert (eng.view(tp).price, eng.view(sl).stop_price) == (105, 70)


@pytest.mark.parametrize("routed", [False, True], ids=["internal", "routed"])
def test_a_replace_keeps_the_take_profit_on_its_side_of_the_stop(
    tmp_path: Path, routed: bool
) -> None:
    """A buy bracket's exits sell: its take-profit must stay above its stop-loss's stop,
    as at submission; a sell bracket's and a buy OCO's buy, below it; a sell OCO's
    limit is its take-profit. A replace that would cross them is refused `bad_legs`
    with the submission's message, before risk, and changes nothing."""
    eng, venue = _venue_engine(tmp_path, routed, max_orders_per_second=1, order_burst=20)
    buy = ok(eng.new("alice", "buy", 5, **bracket(price=95)))  # take-profit 110, stop 90
    sell = ok(
        eng.new("alice", "sell", 5, **bracket(price=105, take_profit=TP(90), stop_loss=SL(110)))
    )
    oco = ok(eng.new("alice", "sell", 5, order_class="oco", take_profit=TP(110), stop_loss=SL(90)))
    assert buy.order_id is not None and sell.order_id is not None and oco.order_id is not None
    if venue is not None:
        for order_id in (buy.order_id, sell.order_id, oco.order_id):
            _accepted(eng, order_id)
    sent, seq = list(venue.sent) if venue else [], eng.seq
    risk = eng.svc.state.risk.snapshot()
    selling = "selling exits: take_profit above stop_loss's stop"
    buying = "buying exits: take_profit below stop_loss's stop"
    for order_id, fields, message in (
        (buy.order_id + 2, dict(stop_price=110), selling),  # equal is crossed too
        (buy.order_id + 1, dict(price=90), selling),
        (sell.order_id + 2, dict(stop_price=90), buying),
        (sell.order_id + 1, dict(price=111), buying),
        (oco.order_id, dict(price=89), selling),
        (oco.order_id + 1, dict(stop_price=111), selling),
    ):
        r = refused(eng.replace("alice", order_id, **fields))
        assert (r.reason, r.message) == ("bad_legs", message), (order_id, fields)
    r = refused(eng.replace("alice", oco.order_id, qty=3))  # on either venue
    assert (r.reason, r.message) == ("bad_replace", "an oco's quantity is not replaced: cancel it")
    # nothing changed: no event, no MARK, nothing sent, no rate token spent
    assert eng.seq == seq and (venue.sent if venue else []) == sent
    assert eng.svc.state.risk.snapshot() == risk
    assert (eng.view(buy.order_id + 2).stop_price, eng.view(oco.order_id).price) == (90, 110)
    # within the relation each moves; at a venue, the other leg is compared with what
    # it last confirmed
    ok(eng.replace("alice", buy.order_id + 2, stop_price=109))
    ok(eng.replace("alice", oco.order_id, price=108))
    # bob cannot learn about alice's OCO by replacing it
    assert refused(eng.replace("bob", oco.order_id, price=89)).reason == "unknown_order"
    if venue is None:
        assert refused(eng.replace("alice", buy.order_id + 1, price=109)).message == selling
        assert refused(eng.replace("alice", oco.order_id + 1, stop_price=108)).message == selling
    else:
        assert venue.sent[len(sent) :] == [
            ("replace", buy.order_id + 2, None, None, 109),
            ("replace", oco.order_id, None, 108, None),
        ]


def test_an_exit_without_its_sibling_moves_freely(tmp_path: Path) -> None:
    """The relation binds a pair: an OTO's one leg, or a leg whose sibling was
    canceled, takes any price (within risk)."""
    eng = Engine(tmp_path)
    oto = ok(eng.new("alice", "buy", 5, price=100, order_class="oto", stop_loss=SL(90)))
    b = ok(eng.new("alice", "buy", 5, **bracket()))
    assert oto.order_id is not None and b.order_id is not None
    ok(eng.replace("alice", oto.order_id + 1, stop_price=120))
    ok(eng.cancel("alice", b.order_id + 1))  # its take-profit
    ok(eng.replace("alice", b.order_id + 2, stop_price=120))
    assert eng.view(b.order_id + 2).stop_price == 120


def test_refused_leg_replaces_recover_to_the_same_decisions(tmp_path: Path) -> None:
    """Live, a take-profit moved past the band and a stop moved across its take-profit
    are refused (nothing journaled, no rate token), on both venues, while the moves
    within the rules pass and spend theirs. A recovery from the journal alone ends
    in the same state: the same prices, the same risk state (its buckets too), so
    the next order meets the same order-rate refusal."""
    limits = dict(price_band_bps=500, max_orders_per_second=1, order_burst=4)
    eng, venue = _routed(tmp_path / "a", **limits)
    eng.svc.venue = None
    b = ok(eng.new("alice", "buy", 5, **bracket(take_profit=TP(104)))).order_id
    assert b is not None
    assert refused(eng.replace("alice", b + 1, price=106)).reason == "price_band"
    assert refused(eng.replace("alice", b + 2, stop_price=104)).reason == "bad_legs"
    ok(eng.replace("alice", b + 1, price=103))
    eng.svc.venue = venue  # type: ignore[assignment]
    r = ok(eng.new("alice", "buy", 5, **bracket(take_profit=TP(104)))).order_id
    assert r is not None
    _accepted(eng, r)
    assert refused(eng.replace("alice", r + 1, price=106)).reason == "price_band"
    assert refused(eng.replace("alice", r + 2, stop_price=104)).reason == "bad_legs"
    ok(eng.replace("alice", r + 1, price=103))  # sent; the venue has not confirmed it
    assert refused(eng.new("alice", "buy", 1, price=99)).reason == "order_rate"
    again = eng.reopen(tmp_path / "b", **limits)
    st, live = again.svc.state, eng.svc.state
    assert st.seq == live.seq
    assert st.risk.snapshot() == live.risk.snapshot()
    assert msgspec.to_builtins(st.contingent.snapshot()) == msgspec.to_builtins(
        live.contingent.snapshot()
    )
    assert [again.view(i) for i in (b + 1, b + 2, r + 1, r + 2)] == [
        eng.view(i) for i in (b + 1, b + 2, r + 1, r + 2)
    ]
    assert (again.view(b + 1).price, again.view(b + 2).stop_price) == (103, 90)
    assert refused(again.new("alice", "buy", 1, price=99)).reason == "order_rate"
