"""The Alpaca venue end to end: the real alpaca-py against a local server speaking
Alpaca's protocol (`fake_alpaca.py`), plus exact price conversion.

Nothing sleeps where a condition can be awaited: tests wait on the events the venue
emits (`Events.wait`) or on the fake's state (`FakeAlpaca.wait_until`).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import email.utils
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import (
    LimitOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tickplane.engine.venues import alpaca as alpaca_venue
from tickplane.engine.venues.alpaca import AlpacaVenue, CredentialsError
from tickplane.engine.venues.base import (
    HandBack,
    OffTickPrice,
    SymbolSpec,
    Venue,
    VenueAccepted,
    VenueCanceled,
    VenueEvent,
    VenueFilled,
    VenueOrder,
    VenueRejected,
    VenueReplaced,
    VenueStatus,
    VenueTrailed,
)

if TYPE_CHECKING:
    from tests.engine.fake_alpaca import FakeAlpaca, FakeOrder, rfc3339
else:  # tests/engine is not a package: import the fake as a top-level module
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fake_alpaca import FakeAlpaca, FakeOrder, rfc3339

E = TypeVar("E")
SYMBOLS = {"AAPL": SymbolSpec("0.01"), "MSFT": SymbolSpec(Decimal("0.01")), "SPY": SymbolSpec(1)}
FAST: dict[str, Any] = {
    "reconnect_min_backoff": 0.05,
    "reconnect_max_backoff": 0.2,
    "probe_interval": 0.05,
    "rest_timeout": (1.0, 1.0),
}


class Events:
    """What the venue emitted, with the thread that emitted each event."""

    def __init__(self) -> None:
        self.items: list[VenueEvent] = []
        self.threads: set[int] = set()
        self._cond = threading.Condition()

    def __call__(self, event: VenueEvent) -> None:
        with self._cond:
            self.items.append(event)
            self.threads.add(threading.get_ident())
            self._cond.notify_all()

    def wait(
        self, kind: type[E], where: Callable[[E], bool] = lambda e: True, timeout: float = 10.0
    ) -> E:
        """The first event of `kind` matching `where` (waiting for it if need be)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.items:
                    if isinstance(e, kind) and where(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind.__name__} in time; got {self.items}")
                self._cond.wait(left)

    def about(self, order_id: int) -> list[VenueEvent]:
        """Every event about one order, in order."""
        with self._cond:
            return [e for e in self.items if getattr(e, "order_id", None) == order_id]

    def mark(self) -> int:
        """Remember where the log is now (see `wait_status`)."""
        with self._cond:
            return len(self.items)

    def wait_status(self, connected: bool, since: int = 0, timeout: float = 10.0) -> VenueStatus:
        """The first `VenueStatus(connected=...)` after position `since`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.items[since:]:
                    if isinstance(e, VenueStatus) and e.connected == connected:
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no VenueStatus({connected}) in time: {self.items}")
                self._cond.wait(left)


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        yield server


def make_venue(fake: FakeAlpaca, **kwargs: Any) -> AlpacaVenue:
    options: dict[str, Any] = {**FAST, **kwargs}
    return AlpacaVenue(
        fake.key_id,
        fake.secret_key,
        url_override=fake.rest_url,
        stream_url_override=fake.stream_url,
        symbols=SYMBOLS,
        **options,
    )


@contextlib.contextmanager
def running(fake: FakeAlpaca, **kwargs: Any) -> Iterator[tuple[AlpacaVenue, Events]]:
    """A venue (`make_venue(fake, **kwargs)`) started and connected; stopped after."""
    venue = make_venue(fake, **kwargs)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.wait_until(lambda: fake.listeners == 1)  # the stream's listen handshake is done
        yield venue, events
    finally:
        venue.stop()


@pytest.fixture
def started(fake: FakeAlpaca) -> Iterator[tuple[AlpacaVenue, Events]]:
    with running(fake) as started:
        yield started


def order(
    oid: int,
    type: str = "limit",
    side: str = "buy",
    qty: int = 100,
    limit: int | None = 12345,
    stop: int | None = None,
    tif: str = "gtc",
    symbol: str = "AAPL",
    coid: str = "",
) -> VenueOrder:
    return VenueOrder(oid, coid, symbol, side, type, qty, limit, stop, tif)  # type: ignore[arg-type]


def accepted(events: Events, oid: int) -> VenueAccepted:
    return events.wait(VenueAccepted, lambda e: e.order_id == oid)


# ---------------------------------------------------------------------- orders


def classed(oid: int, cls: str, **fields: Any) -> VenueOrder:
    """A bracket, OTO, OCO or trailing stop (`fields` on top of a buy limit of 10)."""
    base: dict[str, Any] = dict(
        order_id=oid,
        client_order_id="",
        symbol="AAPL",
        side="buy",
        type="limit",
        qty=10,
        limit_price=10000,
        stop_price=None,
        tif="gtc",
        order_class=cls,
    )
    base.update(fields)
    return VenueOrder(**base)


# ---------------------------------------------------------------------- order classes


def test_a_bracket_goes_as_one_request_and_its_legs_report_under_their_ids(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    venue.submit(
        classed(
            20,
            "bracket",
            take_profit=11050,
            stop_loss_stop=9500,
            stop_loss_limit=9490,
            legs=(21, 22),
        )
    )
    ack = accepted(events, 20)
    body = next(b for m, p, b in fake.requests if m == "POST" and p == "/v2/orders")
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": Decimal("110.5")}
    assert body["stop_loss"] == {"stop_price": Decimal("95"), "limit_price": Decimal("94.9")}
    parent = fake.order(ack.venue_order_id)
    tp, sl = parent.legs
    assert (tp.type, tp.side, tp.status, sl.type, sl.status) == (
        "limit",
        "sell",
        "held",
        "stop_limit",
        "held",
    )
    fake.fill(parent.id, "100", 10)  # the entry is in: the legs work
    events.wait(VenueFilled, lambda e: e.order_id == 20 and e.leaves_qty == 0)
    fake.wait_until(lambda: tp.status == "new")
    fake.fill(tp.id, "110.50", 4)
    part = events.wait(VenueFilled, lambda e: e.order_id == 21)
    assert (part.price, part.qty, part.leaves_qty) == (11050, 4, 6)
    fake.fill(tp.id, "110.50", 6)  # the take-profit is done: Alpaca cancels the stop-loss
    events.wait(VenueFilled, lambda e: e.order_id == 21 and e.leaves_qty == 0)
    gone = events.wait(VenueCanceled, lambda e: e.order_id == 22)
    assert (gone.remaining, gone.reason) == (10, "canceled")
    assert [type(e).__name__ for e in events.about(21)] == ["VenueFilled", "VenueFilled"]


def test_an_oco_and_an_oto_map_their_one_leg(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    venue.submit(
        classed(
            30,
            "oco",
            side="sell",
            limit_price=11000,
            take_profit=11000,
            stop_loss_stop=9000,
            legs=(31,),
        )
    )
    ack = accepted(events, 30)
    body = next(b for m, p, b in fake.requests if m == "POST" and p == "/v2/orders")
    assert (body["order_class"], body["type"], "limit_price" in body) == ("oco", "limit", False)
    (stop,) = fake.order(ack.venue_order_id).legs
    fake.fill(stop.id, "89.99", 10)  # the stop-loss fills: its limit is canceled
    assert events.wait(VenueFilled, lambda e: e.order_id == 31).qty == 10
    assert events.wait(VenueCanceled, lambda e: e.order_id == 30).reason == "canceled"
    # an OTO with a stop-loss only: the leg is the parent's id + 1; canceling the
    # unfilled parent cancels it
    venue.submit(classed(40, "oto", stop_loss_stop=9000, legs=(41,)))
    accepted(events, 40)
    venue.cancel(40)
    events.wait(VenueCanceled, lambda e: e.order_id == 40)
    assert events.wait(VenueCanceled, lambda e: e.order_id == 41).remaining == 10


def test_legs_are_learned_from_the_stream_even_before_the_submit_answers(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.hang_next(1, after_apply=True)  # the OCO is taken, its answer held back
    venue.submit(
        classed(
            60, "oco", side="sell", limit_price=11000, take_profit=11000, stop_loss_stop=9000,
            legs=(61,),
        )
    )  # fmt: skip
    fake.wait_until(lambda: fake.hung == 1)
    parent = fake.order("tp-60")
    (stop,) = parent.legs
    fake.fill(stop.id, "89.99", 10)  # its "new" (with its legs) came first: 61 is known
    assert events.wait(VenueFilled, lambda e: e.order_id == 61).qty == 10
    fake.release()
    assert events.wait(VenueCanceled, lambda e: e.order_id == 60).remaining == 10


def _stream(venue: AlpacaVenue, event: str, o: FakeOrder, **extra: Any) -> None:
    """Hand the venue a trade update as its stream would."""
    data = {"event": event, "order": o.to_json(), **extra}
    venue._on_trade_update({"stream": "trade_updates", "data": data})


def _oto_in_flight(venue: AlpacaVenue, fake: FakeAlpaca) -> tuple[FakeOrder, FakeOrder]:
    """OTO 80 (its stop 81) submitted, the submit in flight: nothing about it has come
    back. Its parent and leg as Alpaca would stream them (the fake sends a parent's
    `new` first, so the tests hand the updates to the venue as its stream would)."""
    fake.hang_next(1)
    venue.submit(classed(80, "oto", stop_loss_stop=9000, legs=(81,)))
    fake.wait_until(lambda: fake.hung == 1)
    leg = FakeOrder("leg-x", "alpacas-own", "AAPL", "sell", "stop", 10, "gtc", None, Decimal(90))
    parent = FakeOrder("parent-x", "tp-80", "AAPL", "buy", "limit", 10, "gtc", Decimal(100), None)
    leg.order_class = parent.order_class = "oto"
    parent.legs = [leg]
    return parent, leg


def test_a_leg_update_ahead_of_anything_about_its_parent_waits_for_it(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """Alpaca may send a leg's update before the parent's answer and its first update
    (the leg has Alpaca's own client order id): it is kept, and applied once the
    parent's legs are known."""
    venue, events = started
    parent, leg = _oto_in_flight(venue, fake)
    leg.status = "canceled"
    _stream(venue, "canceled", leg)
    assert events.about(81) == []  # not known yet
    _stream(venue, "new", parent)
    assert events.wait(VenueCanceled, lambda e: e.order_id == 81).remaining == 10
    fake.release()


def _theirs(n: int, symbol: str = "AAPL") -> FakeOrder:
    """A leg of another program's bracket in the same account (Alpaca streams every
    order of the account)."""
    o = FakeOrder(f"their-leg-{n}", f"theirs-{n}", symbol, "sell", "limit", 1, "gtc", None, None)
    o.limit_price, o.order_class = Decimal(120), "bracket"
    return o


@pytest.mark.parametrize("cap", [0, -1, True, 1.5])
def test_the_early_update_bound_is_a_positive_count(cap: Any) -> None:
    with pytest.raises(ValueError, match="early_updates_max"):
        AlpacaVenue("k", "s", symbols=SYMBOLS, early_updates_max=cap)


def test_early_updates_past_their_bound_are_dropped_and_the_legs_read_instead(
    fake: FakeAlpaca,
) -> None:
    """An OTO's submit unanswered (REST not answering) while the stream, back from an
    outage that hid its parent's updates, streams its stop's fill and then 1,500
    updates of other programs' groups: what is kept stays within
    `early_updates_max`, and once the answer names the leg, the leg is read by REST:
    its fill, dropped with the rest, is reported. (Nothing bounded the store while
    an order of ours waited.)"""
    # the answer is held while the test streams: no read timeout meanwhile
    with running(fake, early_updates_max=100, rest_timeout=(1.0, 30.0)) as (venue, events):
        fake.stop_stream()  # the stream misses the parent's updates
        fake.wait_until(lambda: fake.listeners == 0)
        fake.hang_next(1, after_apply=True)  # placed; the answer held back
        venue.submit(classed(80, "oto", stop_loss_stop=9000, legs=(81,)))
        fake.wait_until(lambda: fake.hung == 1)
        parent = fake.order("tp-80")
        fake.fill(parent.id, "100", 10)
        (leg,) = parent.legs
        fake.start_stream()
        fake.wait_until(lambda: fake.listeners == 1)
        fake.fill(leg.id, "89.90", 10)  # streamed, ahead of anything about its parent
        _streamed_so_far(venue, events, fake, 31)  # the other worker: 80's is waiting
        assert leg.id in venue._early  # kept
        kept = []
        for n in range(1500):
            _stream(venue, "new", _theirs(n))
            kept.append(sum(len(updates) for _, updates in venue._early.values()))
        assert max(kept) <= 100
        assert events.about(81) == []
        # said once, connected all the while: degraded, not unreachable
        said = [e for e in events.items if isinstance(e, VenueStatus) and e.degraded]
        assert [(e.connected, e.degraded) for e in said] == [(True, "early_updates_max")]
        assert "early_updates_max (100)" in said[0].detail
        fake.release()  # the answer names the leg: it is read, its fill found
        fill = events.wait(VenueFilled, lambda e: e.order_id == 81)
        assert (fill.qty, fill.price, fill.leaves_qty) == (10, 8990, 0)
        assert fill.execution_id.startswith("reconciled:")
        assert events.wait(VenueFilled, lambda e: e.order_id == 80).qty == 10
        assert venue._early == {} and venue._early_lost == set()
        cleared = events.items[events.items.index(said[0]) + 1 :]
        statuses = [e for e in cleared if isinstance(e, VenueStatus)]
        assert [(e.connected, e.degraded) for e in statuses] == [(True, None)]
        assert "kept again" in statuses[0].detail
        _streamed_so_far(venue, events, fake, 33)
        assert [type(e) for e in events.about(81)] == [VenueFilled]  # once


def test_a_legs_fill_ahead_of_its_parent_outlasts_any_number_of_other_groups(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """An OTO's submit is in flight when its stop's fill comes, its parent's own
    updates missed (the stream was reconnecting), then updates of 1,500 legs of
    other programs' groups in the account: the fill is kept until the parent names
    its leg, and reported. (The last 1,000 ids were kept: it was pushed out, and the
    fill went unreported until the stream's next reconnection.)"""
    venue, events = started
    parent, leg = _oto_in_flight(venue, fake)
    leg.status, leg.filled_qty, leg.notional = "filled", 10, Decimal("899.00")
    now = rfc3339(time.time_ns())
    _stream(venue, "fill", leg, price="89.90", qty="10", execution_id="x-81", timestamp=now)
    for n in range(1500):
        _stream(venue, "new", _theirs(n))
    assert events.about(81) == []  # not known yet
    _stream(venue, "new", parent)  # names its leg
    fill = events.wait(VenueFilled, lambda e: e.order_id == 81, timeout=1.0)
    assert (fill.qty, fill.price, fill.execution_id) == (10, 8990, "x-81")
    fake.release()


def test_other_groups_updates_are_kept_only_while_a_group_of_ours_may_claim_them(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """What is kept of unknown legs' updates is bounded by what the engine awaits:
    nothing while no group of ours has legs to name; while one has, those of its
    symbols, dropped once it named them (the next update finds them unclaimable)."""
    venue, events = started
    for n in range(50):
        _stream(venue, "new", _theirs(n))
    assert venue._early == {}
    _oto_in_flight(venue, fake)
    for n in range(50, 60):
        _stream(venue, "new", _theirs(n))
    _stream(venue, "new", _theirs(60, symbol="TSLA"))  # not a symbol of ours
    assert len(venue._early) == 10
    fake.release()
    accepted(events, 80)
    _stream(venue, "new", _theirs(61))
    assert venue._early == {}


@pytest.mark.parametrize("first", ["answer", "replaced"])
def test_a_replaced_legs_fill_ahead_of_the_replace_is_reported_once(
    fake: FakeAlpaca, first: str
) -> None:
    """A leg's replacement has an Alpaca id of its own and Alpaca's client order id,
    so its updates name nothing of ours until the PATCH's answer or the old leg's
    `replaced` event names it. Its fill coming before both is kept and reported, once,
    when the first of them comes (it was dropped: the fill was lost)."""
    # the PATCH's answer is held back while the test streams: no read timeout meanwhile
    venue = make_venue(fake, rest_timeout=(1.0, 30.0))
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.wait_until(lambda: fake.listeners == 1)
        _replaced_legs_fill_first(venue, events, fake, first)
    finally:
        venue.stop()


def _bracket_filled(venue: AlpacaVenue, events: Events, fake: FakeAlpaca) -> FakeOrder:
    """Bracket 20 (legs 21, 22) at Alpaca, its entry filled: its legs are working."""
    venue.submit(classed(20, "bracket", take_profit=11050, stop_loss_stop=9500, legs=(21, 22)))
    parent = fake.order(accepted(events, 20).venue_order_id)
    fake.fill(parent.id, "100", 10)
    tp = parent.legs[0]
    fake.wait_until(lambda: tp.status == "new")
    events.wait(VenueFilled, lambda e: e.order_id == 20)
    return parent


def _replaced_legs_fill_first(
    venue: AlpacaVenue, events: Events, fake: FakeAlpaca, first: str
) -> None:
    parent = _bracket_filled(venue, events, fake)
    tp = parent.legs[0]
    fake.hold_replaced = True
    fake.hang_next(1, after_apply=True)  # the PATCH is carried out, its answer held
    venue.replace(21, None, 11100)
    fake.wait_until(lambda: fake.hung == 1)
    new = parent.legs[0]
    assert new.replaces == tp.id
    fake.fill(new.id, "111.00", 10)  # the replacement fills: Alpaca cancels the stop
    events.wait(VenueCanceled, lambda e: e.order_id == 22)  # the fill was streamed first
    assert [e for e in events.about(21) if isinstance(e, VenueFilled)] == []
    if first == "answer":
        fake.release()
        fake.wait_until(lambda: fake.hung == 0)
        fill = events.wait(VenueFilled, lambda e: e.order_id == 21)
        fake.send_replaced()
    else:
        fake.send_replaced()
        fill = events.wait(VenueFilled, lambda e: e.order_id == 21)
        fake.release()
    assert (fill.qty, fill.price, fill.leaves_qty) == (10, 11100, 0)
    venue.replace(21, None, 11200)  # after the first replace on the order's queue
    refused = events.wait(VenueRejected, lambda e: e.order_id == 21)
    assert refused.reason == "unknown_order"  # done: filled
    kinds = [type(e).__name__ for e in events.about(21)]
    assert kinds == ["VenueReplaced", "VenueFilled", "VenueRejected"]
    assert venue._early == {} and venue._naming == {}


def _streamed_so_far(venue: AlpacaVenue, events: Events, fake: FakeAlpaca, oid: int) -> None:
    """Wait until the venue has handled every stream update sent so far: those of a
    new order `oid`, placed and filled now, come after them."""
    venue.submit(order(oid, qty=10, limit=10000))
    fake.fill(fake.order(accepted(events, oid).venue_order_id).id, "100", 10)
    events.wait(VenueFilled, lambda e: e.order_id == oid)


@pytest.mark.parametrize("says", ["replaced", "read"])
def test_a_legs_replace_answered_too_late_still_reports_its_replacements_fill_once(
    fake: FakeAlpaca, says: str
) -> None:
    """A take-profit's PATCH that Alpaca carries out but answers after the adapter's
    read timeout: the adapter does not know whether the replace happened, so the
    replacement's updates (its fill, before the `replaced` event) are kept until
    Alpaca says, by the `replaced` event or by a read of the old leg (`replaced_by`),
    and then applied once. (The timeout ended the wait: the fill, streamed after it,
    was dropped, and the engine was told the replace failed.)"""
    with running(fake) as (venue, events):
        parent = _bracket_filled(venue, events, fake)
        fake.hold_replaced = True
        fake.hang_next(1, after_apply=True)  # carried out; the answer comes too late
        mark = events.mark()
        venue.replace(21, None, 11100)
        fake.wait_until(lambda: fake.hung == 1)
        fake.stop_rest()  # Alpaca can neither be read nor asked until it is back
        assert events.wait_status(False, since=mark).detail == "rest: unreachable: read timeout"
        new = parent.legs[0]
        fake.fill(new.id, "111.00", 10)  # the replacement fills: Alpaca cancels the stop
        events.wait(VenueCanceled, lambda e: e.order_id == 22)  # streamed after the fill
        assert events.about(21) == []  # nothing known of the replace yet
        if says == "replaced":
            fake.send_replaced()
            fill = events.wait(VenueFilled, lambda e: e.order_id == 21)
            fake.start_rest()
            events.wait_status(True, since=mark)
        else:
            fake.start_rest()  # the monitor reads the old leg: replaced by the new one
            fill = events.wait(VenueFilled, lambda e: e.order_id == 21)
            fake.send_replaced()
        fake.release()
        assert (fill.qty, fill.price, fill.leaves_qty) == (10, 11100, 0)
        _streamed_so_far(venue, events, fake, 30)
        replaced = events.about(21)[0]
        assert isinstance(replaced, VenueReplaced) and replaced.limit_price == 11100
        assert [type(e).__name__ for e in events.about(21)] == ["VenueReplaced", "VenueFilled"]
        assert venue._early == {} and venue._naming == {}


@pytest.mark.parametrize("carried_out", [False, True])
def test_a_replace_without_an_answer_is_settled_by_reading_the_order(
    fake: FakeAlpaca, carried_out: bool
) -> None:
    """A leg's PATCH answered 504 (it may or may not have been carried out): nothing
    is reported until the monitor reads the leg. Replaced: `VenueReplaced` with the
    asked price. Still open `orphan_grace` seconds later: the replace is refused, the
    leg unchanged, and the wait for a replacement ends. (Refused at once before: a
    replace carried out was then reported with the old price, after its refusal.)"""
    with running(fake, orphan_grace=0.5) as (venue, events):
        _bracket_filled(venue, events, fake)
        fake.hold_replaced = True  # only the read can tell
        fake.fail_next(504, apply=carried_out, method="PATCH")
        sent = time.monotonic()
        venue.replace(21, None, 11100)
        if carried_out:
            replaced = events.wait(VenueReplaced, lambda e: e.order_id == 21)
            assert replaced.limit_price == 11100
            fake.send_replaced()  # the event, late, changes nothing
            _streamed_so_far(venue, events, fake, 30)
            assert events.about(21) == [replaced]
        else:
            refused = events.wait(VenueRejected, lambda e: e.order_id == 21)
            assert time.monotonic() - sent > 0.5  # looked for during the grace
            assert (refused.request, refused.reason) == ("replace", "venue_unavailable")
            assert events.about(21) == [refused]
            fake.hold_replaced = False
            venue.replace(21, None, 11200)  # nothing pending: it goes
            assert events.wait(VenueReplaced, lambda e: e.order_id == 21).limit_price == 11200
        assert venue._naming == {}


def test_a_trailing_stop_is_sent_with_its_trail(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.trade("AAPL", "100")
    venue.submit(
        classed(50, "simple", type="trailing_stop", side="sell", limit_price=None, trail_price=150)
    )
    placed = fake.order(accepted(events, 50).venue_order_id)
    body = next(b for m, p, b in fake.requests if m == "POST" and p == "/v2/orders")
    assert (body["type"], body["trail_price"]) == ("trailing_stop", Decimal("1.5"))
    assert (placed.stop_price, placed.hwm) == (Decimal("98.5"), Decimal("100"))
    venue.submit(
        classed(
            51, "simple", type="trailing_stop", side="sell", limit_price=None, trail_percent=2.5
        )
    )
    accepted(events, 51)
    body = [b for m, p, b in fake.requests if m == "POST" and p == "/v2/orders"][-1]
    assert body["trail_percent"] == Decimal("2.5")


def _trailing(oid: int, trail: int = 150) -> VenueOrder:
    return classed(oid, "simple", type="trailing_stop", side="sell", limit_price=None, qty=3,
                   trail_price=trail)  # fmt: skip


def _polls(fake: FakeAlpaca) -> tuple[int, int]:
    """(reads of the open orders, reads of one order) the fake has answered so far."""
    with fake._cond:
        gets = [p for m, p, _ in fake.requests if m == "GET"]
    return gets.count("/v2/orders"), sum(1 for p in gets if p.startswith("/v2/orders/"))


def test_a_trailing_stops_moves_are_polled_and_reported_until_it_closes(
    fake: FakeAlpaca,
) -> None:
    """Alpaca pushes nothing when a trailing stop trails: the venue reads the open
    orders every `trail_poll_seconds`, one request for all its trailing stops, and
    reports each move once; with none open it stops reading."""
    venue = make_venue(fake, trail_poll_seconds=0.02)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.wait_until(lambda: fake.listeners == 1)
        fake.trade("AAPL", "100")
        venue.submit(_trailing(60))
        venue.submit(_trailing(61, trail=300))
        first = accepted(events, 60)
        assert (first.stop_price, first.hwm) == (9850, 10000)  # its stop as Alpaca set it
        accepted(events, 61)
        fake.trade("AAPL", "101")
        assert events.wait(VenueTrailed, lambda e: e.order_id == 60) == VenueTrailed(
            60, 9950, 10100
        )
        events.wait(VenueTrailed, lambda e: e.order_id == 61 and e.hwm == 10100)
        fake.trade("AAPL", "100.50")  # below the high: nothing moves
        fake.trade("AAPL", "101.20")
        moved = events.wait(VenueTrailed, lambda e: e.order_id == 60 and e.hwm == 10120)
        assert moved.stop_price == 9970
        lists, singles = _polls(fake)
        fake.wait_until(lambda: _polls(fake)[0] >= lists + 3)  # still read while unchanged
        assert _polls(fake)[1] == singles  # two stops, one request a round
        trailed = [e for e in events.about(60) if isinstance(e, VenueTrailed)]
        assert [(e.stop_price, e.hwm) for e in trailed] == [(9950, 10100), (9970, 10120)]
        # closed: triggered and filled (its last move came with the fill)
        fake.trade("AAPL", "99.70")
        fill = events.wait(VenueFilled, lambda e: e.order_id == 60)
        assert (fill.price, fill.qty, fill.leaves_qty) == (9970, 3, 0)
        venue.cancel(61)
        events.wait(VenueCanceled, lambda e: e.order_id == 61)
        lists = _polls(fake)[0]
        time.sleep(0.3)  # fifteen poll intervals: the absence of a read cannot be awaited
        assert _polls(fake)[0] <= lists + 1  # at most the round that was in flight
        assert len([e for e in events.about(60) if isinstance(e, VenueTrailed)]) == 2
    finally:
        venue.stop()


def test_stops_the_open_list_leaves_out_are_read_one_by_one(
    fake: FakeAlpaca, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When Alpaca's page of open orders is full, the trailing stops not on it are read
    on their own: none of them misses its moves."""
    monkeypatch.setattr(alpaca_venue, "_OPEN_LIST_LIMIT", 1)
    venue = make_venue(fake, trail_poll_seconds=0.02)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.trade("AAPL", "100")
        venue.submit(_trailing(60))
        venue.submit(_trailing(61, trail=300))
        accepted(events, 60)
        accepted(events, 61)
        fake.trade("AAPL", "101")
        events.wait(VenueTrailed, lambda e: e.order_id == 60 and e.hwm == 10100)
        events.wait(VenueTrailed, lambda e: e.order_id == 61 and e.hwm == 10100)
        assert _polls(fake)[1] > 0  # the one left off the page, by id
    finally:
        venue.stop()


def test_trail_polling_can_be_turned_off(fake: FakeAlpaca) -> None:
    venue = make_venue(fake, trail_poll_seconds=0)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        assert "alpaca-trail" not in {t.name for t in threading.enumerate()}
    finally:
        venue.stop()
    with pytest.raises(ValueError, match="trail_poll_seconds"):
        make_venue(fake, trail_poll_seconds=-1)


def _patches(fake: FakeAlpaca) -> list[Any]:
    """The bodies of the PATCH requests the fake got so far."""
    with fake._cond:
        return [body for m, _, body in fake.requests if m == "PATCH"]


def test_a_trailing_stops_trail_is_replaced_and_the_poll_follows_the_new_order(
    fake: FakeAlpaca,
) -> None:
    """A trailing stop's quantity and trail go to Alpaca as one PATCH, its `trail` the
    new trail_price in dollars (a trail_percent stop's: the percent); `VenueReplaced`
    carries the new trail and the stop Alpaca worked out from the watermark, and the
    poll reads the new order from then on. A trail of the other kind, or a price, is
    refused before anything is sent."""
    venue = make_venue(fake, trail_poll_seconds=0.02)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.wait_until(lambda: fake.listeners == 1)
        fake.trade("AAPL", "100")
        venue.submit(_trailing(60))  # a sell of 3 trailing by 1.50: its stop 98.50
        buy = classed(61, "simple", type="trailing_stop", limit_price=None, qty=2,
                      trail_percent=2.0)  # fmt: skip
        venue.submit(buy)  # a buy of 2 trailing by 2%: its stop 102.00
        old = accepted(events, 60).venue_order_id
        assert accepted(events, 61).stop_price == 10200
        fake.trade("AAPL", "101")
        events.wait(VenueTrailed, lambda e: e.order_id == 60 and e.hwm == 10100)

        venue.replace(60, 2, None, trail_price=100)
        rep = events.wait(VenueReplaced, lambda e: e.order_id == 60)
        assert (rep.qty, rep.limit_price, rep.stop_price, rep.hwm) == (2, None, 10000, 10100)
        assert (rep.trail_price, rep.trail_percent) == (100, None)
        assert _patches(fake) == [
            {"qty": 2, "trail": Decimal("1.0"), "client_order_id": "tp-60-r1"}
        ]
        new = fake.order(rep.new_venue_order_id)
        assert (new.replaces, new.qty, new.trail_price, new.stop_price) == (old, 2, 1, 100)
        fake.trade("AAPL", "101.50")  # the new order trails by 1.00
        moved = events.wait(VenueTrailed, lambda e: e.order_id == 60 and e.hwm == 10150)
        assert moved.stop_price == 10050

        venue.replace(61, None, None, trail_percent=3.0)
        rep = events.wait(VenueReplaced, lambda e: e.order_id == 61)
        assert (rep.qty, rep.stop_price, rep.hwm, rep.trail_percent) == (2, 10300, 10000, 3.0)
        assert _patches(fake)[1] == {"trail": Decimal("3.0"), "client_order_id": "tp-61-r1"}

        venue.replace(60, None, None, trail_percent=1.0)  # placed with trail_price
        venue.replace(61, None, None, trail_price=100)  # placed with trail_percent
        venue.replace(60, None, 10000)  # a trailing stop has no limit
        refused = [
            events.wait(VenueRejected, lambda e, i=i: e.order_id == i and e.request == "replace")
            for i in (60, 61)
        ]
        assert [e.reason for e in refused] == ["bad_replace", "bad_replace"]
        assert "trail_price" in refused[1].message
        fake.wait_until(lambda: sum(isinstance(e, VenueRejected) for e in events.about(60)) == 2)
        assert len(_patches(fake)) == 2  # none of them was sent

        fake.trade("AAPL", "100.50")  # the new order's stop: triggered at Alpaca
        fill = events.wait(VenueFilled, lambda e: e.order_id == 60)
        assert (fill.price, fill.qty, fill.leaves_qty) == (10050, 2, 0)
    finally:
        venue.stop()


def test_a_restarted_venue_resumes_a_replaced_order_at_its_replacement(
    fake: FakeAlpaca,
) -> None:
    """An order replaced before a restart is read by its client order id (the order
    it replaced, now `replaced`) and followed to its replacement: no second
    `VenueReplaced`, its fills and moves are the replacement's, and its next
    replacement gets the next client order id."""
    first = make_venue(fake, trail_poll_seconds=0)
    events = Events()
    first.start(events)
    events.wait_status(True)
    fake.trade("AAPL", "100")
    first.submit(_trailing(70))
    accepted(events, 70)
    first.replace(70, None, None, trail_price=100)
    events.wait(VenueReplaced, lambda e: e.order_id == 70)
    first.stop()
    fake.wait_until(lambda: fake.listeners == 0)
    fake.trade("AAPL", "101")  # nobody polls: the replacement's stop moves to 100.00
    second = make_venue(fake, trail_poll_seconds=0.02)
    later = Events()
    second.start(later)
    try:
        later.wait_status(True)
        fake.wait_until(lambda: fake.listeners == 1)
        resumed = classed(70, "simple", type="trailing_stop", side="sell", limit_price=None,
                          qty=3, stop_price=9900, trail_price=100)  # fmt: skip
        second.resume([HandBack(resumed, 0)])
        moved = later.wait(VenueTrailed, lambda e: e.order_id == 70)
        assert (moved.stop_price, moved.hwm) == (10000, 10100)
        second.replace(70, None, None, trail_price=50)
        rep = later.wait(VenueReplaced, lambda e: e.order_id == 70)
        assert (rep.stop_price, rep.trail_price) == (10050, 50)
        assert _patches(fake)[-1]["client_order_id"] == "tp-70-r2"
        assert [type(e) for e in later.about(70)] == [VenueTrailed, VenueReplaced]
    finally:
        second.stop()


def _placed_elsewhere(fake: FakeAlpaca, client_order_id: str) -> Any:
    """A buy of 10 AAPL at 123.45 placed at the fake by another client (a process of the
    engine before a restart), with this client order id; Alpaca's answer."""
    client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
    request = LimitOrderRequest(
        symbol="AAPL", qty=10, side="buy", time_in_force="gtc", limit_price=123.45,
        client_order_id=client_order_id,
    )  # fmt: skip
    return client.submit_order(request)


def test_a_resumed_order_alpaca_never_got_is_rejected_and_canceled_if_it_arrives(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """The engine routed order 90 before a restart, but its submit never reached
    Alpaca: resumed, it is rejected (whatever the policy: a request of the old process
    could still land), and when such a request does land it is canceled there."""
    venue, events = started
    venue.resume([HandBack(order(90, qty=10), 0)])
    refused = events.wait(VenueRejected, lambda e: e.order_id == 90)
    assert (refused.reason, refused.request, refused.maybe_placed) == (
        "venue_unavailable",
        "submit",
        True,
    )
    late = _placed_elsewhere(fake, "tp-90")
    fake.wait_until(lambda: fake.order(str(late.id)).status == "canceled")
    settled = events.wait(VenueCanceled, lambda e: e.order_id == 90)
    assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
    assert [type(e) for e in events.about(90)] == [VenueRejected, VenueCanceled]


@pytest.mark.parametrize(("notional", "price"), [(4 * 12340, 12346), (None, 12342)])
def test_an_orphan_recovered_by_the_engine_is_watched_again(
    fake: FakeAlpaca, notional: int | None, price: int
) -> None:
    """Order 91 was rejected as maybe placed before a restart, and the engine booked 4
    lots of it, at 123.40; it is at Alpaca, filled 6 (2 more at 123.46): the 2 lots
    beyond what was booked are reported, at 123.46 (the booked lots valued at what
    the engine says they cost; that unknown, at Alpaca's average price, 123.42, as
    before), the rest canceled there, and the watch ends."""
    _placed_elsewhere(fake, "tp-91")
    fake.fill("tp-91", "123.40", 4)
    fake.fill("tp-91", "123.46", 2)
    venue = make_venue(fake)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        venue.watch_orphans([HandBack(order(91, qty=10), 4, notional)])
        settled = events.wait(VenueCanceled, lambda e: e.order_id == 91)
        assert (settled.reason, settled.remaining) == ("orphan_closed", 4)
        assert fake.order("tp-91").status == "canceled"
        fills = [e for e in events.about(91) if isinstance(e, VenueFilled)]
        assert [(f.qty, f.price, f.leaves_qty) for f in fills] == [(2, price, 4)]
        assert [type(e) for e in events.about(91)] == [VenueFilled, VenueCanceled]
    finally:
        venue.stop()


def test_a_resume_that_finds_alpaca_unreachable_is_tried_again(fake: FakeAlpaca) -> None:
    """Order 96 was placed at Alpaca before a restart and filled 4 while nobody
    listened; the look-up of its resume gets a 503: once Alpaca answers again it is
    resumed, and the missed fill reported."""
    _placed_elsewhere(fake, "tp-96")
    fake.fill("tp-96", "123.45", 4)
    venue = make_venue(fake)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        mark = events.mark()
        fake.fail_next(503, method="GET", path="/v2/orders:by_client_order_id")
        venue.resume([HandBack(order(96, qty=10), 0)])
        events.wait_status(False, since=mark)
        missed = events.wait(VenueFilled, lambda e: e.order_id == 96)
        assert (missed.qty, missed.price, missed.leaves_qty) == (4, 12345, 6)
        assert missed.execution_id.startswith("reconciled:")
    finally:
        venue.stop()


def _look_ups(fake: FakeAlpaca) -> int:
    """How many times an order was read by its client order id."""
    with fake._cond:
        return sum(1 for _, p, _ in fake.requests if p == "/v2/orders:by_client_order_id")


def test_a_resume_rate_limited_is_tried_again_after_a_backoff(fake: FakeAlpaca) -> None:
    """Order 99 was placed at Alpaca before a restart and filled 4 while nobody
    listened; the look-up of its resume is rate limited (429, no Retry-After) three
    times: it is made again, after a doubling backoff, until Alpaca answers, and the
    missed fill is reported (the order was left unfollowed before). Throttled is not
    down: the venue stays connected."""
    _placed_elsewhere(fake, "tp-99")
    fake.fill("tp-99", "123.45", 4)
    venue = make_venue(fake, rate_limit_min_backoff=0.02, rate_limit_max_backoff=0.05)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        mark = events.mark()
        fake.fail_next(429, count=3, method="GET", path="/v2/orders:by_client_order_id")
        venue.resume([HandBack(order(99, qty=10), 0)])
        missed = events.wait(VenueFilled, lambda e: e.order_id == 99)
        assert (missed.qty, missed.price, missed.leaves_qty) == (4, 12345, 6)
        assert _look_ups(fake) == 4
        assert not any(isinstance(e, VenueStatus) for e in events.items[mark:])
        venue.cancel(99)  # followed from then on
        assert events.wait(VenueCanceled, lambda e: e.order_id == 99).remaining == 6
    finally:
        venue.stop()


def test_a_rate_limited_resume_waits_what_retry_after_says(fake: FakeAlpaca) -> None:
    """Alpaca's Retry-After (0.05 s) is waited instead of the backoff (30 s here: the
    resume would not be done in time without it)."""
    _placed_elsewhere(fake, "tp-99")
    fake.fill("tp-99", "123.45", 4)
    venue = make_venue(fake, rate_limit_min_backoff=30.0, rate_limit_max_backoff=60.0)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.fail_next(
            429, count=2, method="GET", path="/v2/orders:by_client_order_id", retry_after="0.05"
        )
        venue.resume([HandBack(order(99, qty=10), 0)])
        assert events.wait(VenueFilled, lambda e: e.order_id == 99, timeout=10.0).qty == 4
        assert _look_ups(fake) == 3
    finally:
        venue.stop()


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    read = alpaca_venue._retry_after
    assert read(SimpleNamespace(headers={"Retry-After": "2"})) == 2.0
    soon = email.utils.format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30), usegmt=True
    )
    assert 25.0 < (read(SimpleNamespace(headers={"Retry-After": soon})) or 0) <= 30.0
    assert read(SimpleNamespace(headers={"Retry-After": "soon"})) is None
    assert read(SimpleNamespace(headers={})) is None
    assert read(None) is None
    with pytest.raises(ValueError, match="rate_limit_min_backoff"):
        AlpacaVenue("k", "s", symbols=SYMBOLS, rate_limit_min_backoff=2, rate_limit_max_backoff=1)


def test_the_fake_refuses_a_trail_on_other_orders(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """As Alpaca: `trail` is a trailing stop's (422 on a limit order), and a trailing
    stop takes no limit or stop price."""
    venue, events = started
    venue.submit(order(80))
    fake.trade("AAPL", "100")
    venue.submit(_trailing(81))
    limit, trailing = accepted(events, 80).venue_order_id, accepted(events, 81).venue_order_id
    client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
    for vid, fields in ((limit, {"trail": 1.0}), (trailing, {"stop_price": 99.0})):
        with pytest.raises(APIError) as refused:
            client.replace_order_by_id(vid, ReplaceOrderRequest(**fields))
        assert refused.value.status_code == 422
    assert fake.order(limit).status == fake.order(trailing).status == "new"


def test_the_venue_is_a_venue(started: tuple[AlpacaVenue, Events]) -> None:
    venue, _ = started
    assert isinstance(venue, Venue)
    assert venue.name == "alpaca"
    assert venue.connected


@pytest.mark.parametrize(
    ("kind", "limit", "stop", "tif", "sent"),
    [
        ("market", None, None, "day", {}),
        ("limit", 12345, None, "gtc", {"limit_price": "123.45"}),
        ("stop", None, 12001, "ioc", {"stop_price": "120.01"}),
        ("stop_limit", 11990, 12000, "fok", {"limit_price": "119.9", "stop_price": "120"}),
    ],
)
def test_each_order_type_is_sent_exactly_and_accepted(
    started: tuple[AlpacaVenue, Events],
    fake: FakeAlpaca,
    kind: str,
    limit: int | None,
    stop: int | None,
    tif: str,
    sent: dict[str, str],
) -> None:
    venue, events = started
    venue.submit(order(7, kind, "sell", 25, limit, stop, tif))
    ack = accepted(events, 7)
    placed = fake.order(ack.venue_order_id)
    assert placed.client_order_id == "tp-7"
    assert (placed.symbol, placed.side, placed.type, placed.time_in_force, placed.qty) == (
        "AAPL",
        "sell",
        kind,
        tif,
        25,
    )
    body = next(b for m, p, b in fake.requests if m == "POST" and p == "/v2/orders")
    for key, text in sent.items():
        assert body[key] == Decimal(text)  # the decimal the JSON carried, exactly
    assert ("limit_price" in body) == (limit is not None)
    assert ("stop_price" in body) == (stop is not None)
    assert events.about(7) == [ack]


def test_a_given_client_order_id_is_used(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    venue.submit(order(8, coid="my-bot-42"))
    ack = accepted(events, 8)
    assert fake.order(ack.venue_order_id).client_order_id == "my-bot-42"
    fake.fill(ack.venue_order_id, "123.45", 100)
    fill = events.wait(VenueFilled, lambda e: e.order_id == 8)
    assert (fill.qty, fill.leaves_qty) == (100, 0)


def test_partial_then_full_fill(started: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = started
    venue.submit(order(1, qty=100, limit=12345))
    vid = accepted(events, 1).venue_order_id
    first = fake.fill(vid, "123.45", 30)
    second = fake.fill(vid, Decimal("123.40"), 70)
    events.wait(VenueFilled, lambda e: e.order_id == 1 and e.leaves_qty == 0)
    fills = [e for e in events.about(1) if isinstance(e, VenueFilled)]
    assert [(f.price, f.qty, f.leaves_qty) for f in fills] == [(12345, 30, 70), (12340, 70, 0)]
    assert [f.execution_id for f in fills] == [first["execution_id"], second["execution_id"]]
    assert rfc3339(fills[0].ts_event) == first["timestamp"]  # ns survive
    assert isinstance(events.about(1)[0], VenueAccepted)


def test_market_order_filled_at_once_reports_accept_before_fill(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.last_price["SPY"] = Decimal("501")
    venue.submit(order(2, "market", qty=3, limit=None, symbol="SPY", tif="day"))
    fill = events.wait(VenueFilled, lambda e: e.order_id == 2)
    assert (fill.price, fill.qty, fill.leaves_qty) == (501, 3, 0)  # SPY ticks are $1
    assert [type(e) for e in events.about(2)] == [VenueAccepted, VenueFilled]


def test_cancel(started: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = started
    venue.submit(order(3, qty=50))
    vid = accepted(events, 3).venue_order_id
    fake.fill(vid, "123.45", 20)
    events.wait(VenueFilled, lambda e: e.order_id == 3)
    venue.cancel(3)
    done = events.wait(VenueCanceled, lambda e: e.order_id == 3)
    assert (done.remaining, done.reason) == (30, "canceled")
    assert fake.order(vid).status == "canceled"
    venue.cancel(3)  # closed now: refused without asking Alpaca
    again = events.wait(VenueRejected, lambda e: e.order_id == 3)
    assert (again.request, again.reason) == ("cancel", "unknown_order")


def test_cancel_of_a_filled_order_is_refused_by_alpaca(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    venue.submit(order(4, qty=10))
    vid = accepted(events, 4).venue_order_id
    with fake._cond:  # filled at Alpaca, the fill not yet seen by the venue
        o = fake.order(vid)
        o.status, o.filled_qty, o.notional = "filled", 10, Decimal("1234.5")
    venue.cancel(4)
    refused = events.wait(VenueRejected, lambda e: e.order_id == 4)
    assert (refused.request, refused.reason) == ("cancel", "not_cancelable")
    assert "not cancelable" in refused.message


def test_expired_and_rejected_after_acceptance(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    venue.submit(order(5, qty=10, tif="day"))
    venue.submit(order(6, qty=10))
    fake.expire(accepted(events, 5).venue_order_id)
    fake.reject(accepted(events, 6).venue_order_id)
    gone = events.wait(VenueCanceled, lambda e: e.order_id == 5)
    refused = events.wait(VenueCanceled, lambda e: e.order_id == 6)
    assert (gone.remaining, gone.reason) == (10, "expired")
    assert refused.reason == "venue_rejected"


def test_replace(started: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = started
    venue.submit(order(9, qty=100, limit=12345))
    old = accepted(events, 9).venue_order_id
    fake.fill(old, "123.45", 40)
    events.wait(VenueFilled, lambda e: e.order_id == 9)
    venue.replace(9, 50, 12350)
    rep = events.wait(VenueReplaced, lambda e: e.order_id == 9)
    assert (rep.qty, rep.limit_price) == (50, 12350)
    new = fake.order(rep.new_venue_order_id)
    assert (new.qty, new.limit_price, new.replaces) == (50, Decimal("123.5"), old)
    assert new.client_order_id == "tp-9-r1"
    assert fake.order(old).status == "replaced"
    fake.fill(new.id, "123.50", 50)
    last = events.wait(VenueFilled, lambda e: e.order_id == 9 and e.price == 12350)
    assert (last.qty, last.leaves_qty) == (50, 0)
    venue.replace(9, 10, None)  # done now
    refused = events.wait(VenueRejected, lambda e: e.order_id == 9)
    assert (refused.request, refused.reason) == ("replace", "unknown_order")


def test_rejections(started: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = started
    fake.buying_power = Decimal("1000")
    venue.submit(order(10, qty=100, limit=12345))  # $12,345 > $1,000
    venue.submit(order(11, symbol="TSLA"))  # not routed to Alpaca
    venue.submit(order(12, "limit", limit=None))  # a limit without a price
    fake.symbols.discard("MSFT")
    venue.submit(order(13, symbol="MSFT"))  # Alpaca does not know it
    poor = events.wait(VenueRejected, lambda e: e.order_id == 10)
    assert (poor.reason, poor.message, poor.request) == (
        "insufficient_buying_power",
        "insufficient buying power",
        "submit",
    )
    assert events.wait(VenueRejected, lambda e: e.order_id == 11).reason == "unknown_symbol"
    assert events.wait(VenueRejected, lambda e: e.order_id == 12).reason == "bad_order"
    unknown = events.wait(VenueRejected, lambda e: e.order_id == 13)
    assert (unknown.reason, unknown.message) == ("bad_order", 'asset "MSFT" not found')
    assert venue.connected  # business rejections are no outage
    venue.submit(order(10, qty=1))
    dup = events.wait(VenueRejected, lambda e: e.order_id == 10 and e.reason == "duplicate_id")
    assert dup.request == "submit"


def test_calls_return_at_once_and_events_come_from_venue_threads(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.hang_next(1)
    t0 = time.perf_counter()
    venue.submit(order(20))
    venue.submit(order(22))  # same worker as 20 (two workers): queued behind it
    venue.cancel(20)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.05
    fake.wait_until(lambda: fake.hung == 1)
    assert venue.pending == 2  # 22's submit and 20's cancel, behind the hung submit
    fake.release()
    accepted(events, 20)
    accepted(events, 22)
    events.wait(VenueCanceled, lambda e: e.order_id == 20)
    assert venue.pending == 0
    assert threading.get_ident() not in events.threads


# ---------------------------------------------------------------------- outages


def test_outage_rejects_then_recovers(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    venue.submit(order(30, qty=10))
    vid = accepted(events, 30).venue_order_id
    mark = events.mark()
    fake.stop()
    down = events.wait_status(False, since=mark)
    assert not venue.connected
    assert "stream" in down.detail
    venue.submit(order(31))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 31)
    assert (refused.reason, refused.request) == ("venue_unavailable", "submit")
    venue.cancel(30)
    assert events.wait(VenueRejected, lambda e: e.order_id == 30).reason == "venue_unavailable"
    venue.replace(30, 5, None)
    assert events.wait(
        VenueRejected, lambda e: e.order_id == 30 and e.request == "replace"
    ).reason == ("venue_unavailable")
    fake.fill(vid, "123.45", 4)  # happens at Alpaca while we cannot see it
    mark = events.mark()
    fake.start()
    events.wait_status(True, since=mark)
    # the fill missed during the outage is found by reconciliation
    missed = events.wait(VenueFilled, lambda e: e.order_id == 30)
    assert (missed.price, missed.qty, missed.leaves_qty) == (12345, 4, 6)
    assert missed.execution_id.startswith("reconciled:")
    venue.submit(order(32))
    accepted(events, 32)
    fake.fill(vid, "123.46", 6)  # and the stream goes on where reconciliation left off
    rest = events.wait(VenueFilled, lambda e: e.order_id == 30 and e.leaves_qty == 0)
    assert (rest.price, rest.qty) == (12346, 6)


@pytest.fixture
def falling_back(fake: FakeAlpaca) -> Iterator[tuple[AlpacaVenue, Events]]:
    """A started venue with ``policy="internal"``."""
    venue = make_venue(fake, policy="internal")
    events = Events()
    venue.start(events)
    events.wait_status(True)
    fake.wait_until(lambda: fake.listeners == 1)
    yield venue, events
    venue.stop()


def test_fallback_policy(falling_back: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = falling_back
    fake.stop()
    venue.submit(order(40))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 40)
    assert refused.reason == "venue_fallback"
    venue.submit(order(41))  # REST now known down: refused without trying
    assert events.wait(VenueRejected, lambda e: e.order_id == 41).reason == "venue_fallback"


def test_a_submit_that_never_left_falls_back_one_that_may_have_does_not(
    falling_back: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = falling_back
    # REST goes away while the stream stays: the venue still says connected until a
    # request fails, so the order is sent, and its connection refused
    fake.stop_rest()
    assert venue.connected
    mark = events.mark()
    venue.submit(order(42))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 42)
    assert (refused.reason, refused.request, refused.maybe_placed) == (
        "venue_fallback",
        "submit",
        False,
    )
    assert "refused" in events.wait_status(False, since=mark).detail
    fake.start_rest()
    events.wait_status(True, since=mark)
    # a 5xx after Alpaca took the order: it may exist there, so it is no fallback (it
    # would be placed twice) but unavailable, and canceled at Alpaca
    fake.stop_stream()  # so the venue hears of the order only through REST
    fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
    venue.submit(order(43, qty=10))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 43)
    assert (refused.reason, refused.maybe_placed) == ("venue_unavailable", True)
    orphan = fake.wait_order("tp-43")
    fake.wait_until(lambda: orphan.status == "canceled")
    settled = events.wait(VenueCanceled, lambda e: e.order_id == 43)
    assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
    assert [type(e) for e in events.about(43)] == [VenueRejected, VenueCanceled]
    assert [type(e) for e in events.about(42)] == [VenueRejected]
    assert not any(o.client_order_id == "tp-42" for o in fake.orders.values())


def test_server_errors_reject_and_recover(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    mark = events.mark()
    fake.fail_next(503)
    venue.submit(order(50))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 50)
    assert refused.reason == "venue_unavailable"
    assert "503" in refused.message
    events.wait_status(False, since=mark)
    events.wait_status(True, since=mark)  # the monitor's probe succeeds again
    venue.submit(order(51))
    accepted(events, 51)


def test_504_and_429_are_answered_at_once_not_retried(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.fail_next(429)  # alpaca-py alone would sleep 3 s and retry both
    venue.submit(order(52))
    limited = events.wait(VenueRejected, lambda e: e.order_id == 52, timeout=2.0)
    assert limited.reason == "venue_rate_limited"
    assert venue.connected  # throttled, not down
    mark = events.mark()
    fake.fail_next(504)
    venue.submit(order(53))
    assert events.wait(VenueRejected, lambda e: e.order_id == 53, timeout=2.0).reason == (
        "venue_unavailable"
    )
    events.wait_status(True, since=mark)
    assert [r for m, r, _ in fake.requests if r == "/v2/orders"] == ["/v2/orders"] * 2


def test_an_order_taken_despite_a_5xx_is_canceled_at_alpaca(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.stop_stream()  # so the venue hears of the order only through REST
    fake.fail_next(500, apply=True)  # Alpaca took the order, then answered 500
    venue.submit(order(60, qty=10))
    assert events.wait(VenueRejected, lambda e: e.order_id == 60).reason == "venue_unavailable"
    orphan = fake.wait_order("tp-60")
    fake.wait_until(lambda: orphan.status == "canceled")
    settled = events.wait(VenueCanceled, lambda e: e.order_id == 60)
    assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
    assert [type(e) for e in events.about(60)] == [VenueRejected, VenueCanceled]


def test_an_orphans_fill_before_its_cancel_is_reported_then_its_watch_ends(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """A market order Alpaca took and filled at once, answered with a 503: it is
    rejected as maybe placed, then reconciliation finds the fill and reports it (a real
    execution, which the engine books as a late fill), and the end of the watch."""
    venue, events = started
    fake.stop_stream()  # so the venue hears of the order only through REST
    fake.trade("AAPL", "123.40")  # a market order fills there at once
    fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
    venue.submit(order(62, type="market", qty=10, limit=None, tif="day"))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 62)
    assert (refused.reason, refused.maybe_placed) == ("venue_unavailable", True)
    settled = events.wait(VenueCanceled, lambda e: e.order_id == 62)
    assert (settled.reason, settled.remaining) == ("orphan_closed", 0)
    fills = [e for e in events.about(62) if isinstance(e, VenueFilled)]
    assert [(f.qty, f.price, f.leaves_qty) for f in fills] == [(10, 12340, 0)]
    assert [type(e) for e in events.about(62)] == [VenueRejected, VenueFilled, VenueCanceled]


def test_an_orphan_whose_look_up_is_rate_limited_is_looked_for_again(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """An order taken despite a 503 (the stream down) whose look-ups Alpaca rate
    limits twice: it is looked for again, found and canceled (the watch stalled until
    the stream's next reconnection, the order open at Alpaca meanwhile)."""
    venue, events = started
    fake.stop_stream()
    fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
    fake.fail_next(429, count=2, method="GET", path="/v2/orders:by_client_order_id")
    venue.submit(order(64, qty=10))
    assert events.wait(VenueRejected, lambda e: e.order_id == 64).maybe_placed
    orphan = fake.wait_order("tp-64")
    fake.wait_until(lambda: orphan.status == "canceled")
    settled = events.wait(VenueCanceled, lambda e: e.order_id == 64)
    assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
    assert _look_ups(fake) == 4  # refused twice, found (canceled), found closed


def _look_up_times(fake: FakeAlpaca, count: int, seen: int) -> list[float]:
    """When each of the first `count` look-ups by client order id after the fake's
    first `seen` requests reached it (waiting for them)."""
    path = "/v2/orders:by_client_order_id"

    def times() -> list[float]:
        came = zip(fake.requests[seen:], fake.request_times[seen:], strict=True)
        return [t for (_, p, _), t in came if p == path]

    return fake.wait_until(lambda: len(times()) >= count and times()[:count])


def test_a_status_while_down_names_the_side_still_down(fake: FakeAlpaca) -> None:
    """REST back while the stream is still down: the venue is not connected, and its
    status says what is down (it said only "rest: reachable", which the engine shows
    as "alpaca is unreachable: rest: reachable" in a rejection and on /status)."""
    venue = make_venue(fake, reconnect_min_backoff=30.0, reconnect_max_backoff=30.0)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.stop()  # both sides: the stream drops, and it waits 30 s to reconnect
        seen = len(events.items)
        events.wait_status(False)
        venue.submit(order(1))  # refused: REST is down too
        events.wait(VenueRejected, lambda e: e.order_id == 1)
        fake.wait_until(
            lambda: any(
                isinstance(e, VenueStatus) and e.detail.startswith("rest: unreachable")
                for e in events.items[seen:]
            )
        )
        fake.start_rest()  # REST answers the probe again; the stream stays down
        fake.wait_until(
            lambda: any(
                isinstance(e, VenueStatus) and e.detail.startswith("rest: reachable")
                for e in events.items[seen:]
            )
        )
        last = [e for e in events.items if isinstance(e, VenueStatus)][-1]
        assert not last.connected and not venue.connected
        assert "stream:" in last.detail, last.detail
    finally:
        venue.stop()


def test_a_rate_limited_account_probe_is_not_an_outage(fake: FakeAlpaca) -> None:
    """The heartbeat's account probe answered 429 three times: Alpaca is there, only
    throttling this account, so the venue stays connected (it said disconnected, and
    the engine refused new orders or matched them here under policy internal), and
    orders still go to Alpaca."""
    venue = make_venue(fake, heartbeat_interval=0.02)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        mark = events.mark()

        def probes() -> int:
            return sum(1 for _, p, _ in fake.requests if p == "/v2/account")

        before = fake.wait_until(probes)
        fake.fail_next(429, count=3, method="GET", path="/v2/account")
        fake.wait_until(lambda: probes() >= before + 4)  # refused 3 times, then answered
        assert not any(isinstance(e, VenueStatus) for e in events.items[mark:])
        assert venue.connected
        venue.submit(order(67, qty=10))
        accepted(events, 67)
    finally:
        venue.stop()


def _orphan_look_ups_rate_limited(
    fake: FakeAlpaca, oid: int, refusals: int, retry_after: str | None, min_backoff: float
) -> list[float]:
    """An order Alpaca takes despite a 503 (the stream down), its look-ups by the
    monitor's reconciliation refused `refusals` times with a 429 (and `retry_after`):
    when each look-up came, the refused ones and the one that finds it (it is then
    canceled, its watch ended)."""
    venue = make_venue(fake, rate_limit_min_backoff=min_backoff, rate_limit_max_backoff=5.0)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.stop_stream()
        fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
        fake.fail_next(
            429,
            count=refusals,
            method="GET",
            path="/v2/orders:by_client_order_id",
            retry_after=retry_after,
        )
        with fake._cond:
            seen = len(fake.requests)
        venue.submit(order(oid, qty=10))
        times = _look_up_times(fake, refusals + 1, seen)
        settled = events.wait(VenueCanceled, lambda e: e.order_id == oid)
        assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
        return times
    finally:
        venue.stop()


def test_a_rate_limited_reconciliation_waits_what_retry_after_says(fake: FakeAlpaca) -> None:
    """An orphan's look-up refused with a 429 and ``Retry-After: 0.6``: the monitor's
    next round waits those 0.6 s (it came a `probe_interval`, 0.05 s, later, asking
    again a dozen times while Alpaca asked it to wait), then finds and cancels it."""
    refused, found = _orphan_look_ups_rate_limited(fake, 65, 1, "0.6", min_backoff=0.01)
    assert found - refused >= 0.55


def test_a_rate_limited_reconciliation_backs_off_without_retry_after(fake: FakeAlpaca) -> None:
    """Without ``Retry-After``, the rounds after 429s in a row wait the backoff,
    doubling from `rate_limit_min_backoff` (0.25 s, then 0.5 s), not `probe_interval`."""
    first, second, found = _orphan_look_ups_rate_limited(fake, 66, 2, None, min_backoff=0.25)
    assert second - first >= 0.23 and found - second >= 0.48


def test_a_rate_limited_orphan_cancel_waits_what_retry_after_says(fake: FakeAlpaca) -> None:
    """An orphan found, its cancel refused with a 429 and ``Retry-After: 0.6``: the
    cancel is made again after those 0.6 s (it was ignored and made again at the next
    round, a `probe_interval`, 0.05 s, later, while Alpaca asked it to wait), then the
    orphan is canceled and its watch ended."""
    venue = make_venue(fake, rate_limit_min_backoff=0.01, rate_limit_max_backoff=5.0)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.stop_stream()
        fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
        fake.fail_next(429, method="DELETE", retry_after="0.6")  # the only DELETE: its cancel
        venue.submit(order(68, qty=10))
        orphan = fake.wait_order("tp-68")

        def cancels() -> list[float]:
            came = zip(fake.requests, fake.request_times, strict=True)
            return [t for (m, p, _), t in came if m == "DELETE" and p.endswith(orphan.id)]

        refused, done = fake.wait_until(lambda: len(cancels()) >= 2 and cancels()[:2])
        assert done - refused >= 0.55
        settled = events.wait(VenueCanceled, lambda e: e.order_id == 68)
        assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
        assert orphan.status == "canceled"
    finally:
        venue.stop()


def test_an_orphan_that_never_arrives_is_given_up_after_its_grace(fake: FakeAlpaca) -> None:
    """A 503 before Alpaca took the order: looked for during `orphan_grace`, never
    found, then given up (`VenueCanceled`, every lot remaining)."""
    venue = make_venue(fake, orphan_grace=0.3)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        fake.fail_next(503, method="POST", path="/v2/orders")
        venue.submit(order(63, qty=10))
        refused = events.wait(VenueRejected, lambda e: e.order_id == 63)
        assert refused.maybe_placed
        settled = events.wait(VenueCanceled, lambda e: e.order_id == 63)
        assert (settled.reason, settled.remaining) == ("orphan_closed", 10)
        assert [type(e) for e in events.about(63)] == [VenueRejected, VenueCanceled]
        assert not any(o.client_order_id == "tp-63" for o in fake.orders.values())
    finally:
        venue.stop()


def _before(events: Events, first: VenueEvent, then: VenueEvent) -> bool:
    """`first` was emitted before `then`."""
    return events.items.index(first) < events.items.index(then)


def test_an_orphaned_brackets_legs_are_watched_their_fills_reported_then_canceled(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    """Bracket 20 was taken despite a 503 (the stream down); before the venue could
    read it, its entry filled 10 and its take-profit 3, so both exits work at Alpaca.
    The venue reports the entry's fill and the take-profit's (real executions, booked
    as late fills under their ids), cancels both legs there (no order of the group
    may live at Alpaca: the engine has none open), and ends each watch, the legs'
    before the parent's. Before, only the parent was watched: the legs went on
    working, unseen."""
    venue, events = started
    fake.stop_stream()
    fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
    # no look-up gets through until the test has filled it there
    fake.fail_next(503, count=100_000, method="GET", path="/v2/orders:by_client_order_id")
    venue.submit(classed(20, "bracket", take_profit=11050, stop_loss_stop=9500, legs=(21, 22)))
    assert events.wait(VenueRejected, lambda e: e.order_id == 20).maybe_placed
    parent = fake.wait_order("tp-20")
    tp, sl = parent.legs
    fake.fill(parent.id, "100", 10)  # the entry is in: its exits work
    fake.fill(tp.id, "110.50", 3)
    fake.clear_failures()
    settled = events.wait(VenueCanceled, lambda e: e.order_id == 20)
    assert (settled.reason, settled.remaining) == ("orphan_closed", 0)
    assert (tp.status, sl.status) == ("canceled", "canceled")
    entry = [e for e in events.about(20) if isinstance(e, VenueFilled)]
    assert [(f.qty, f.price, f.leaves_qty) for f in entry] == [(10, 10000, 0)]
    take_profit = [e for e in events.about(21) if isinstance(e, VenueFilled)]
    assert [(f.qty, f.price, f.leaves_qty) for f in take_profit] == [(3, 11050, 7)]
    closed = {
        oid: events.wait(VenueCanceled, lambda e, oid=oid: e.order_id == oid) for oid in (21, 22)
    }
    assert [(c.reason, c.remaining) for c in closed.values()] == [
        ("orphan_closed", 7),
        ("orphan_closed", 10),
    ]
    assert all(_before(events, c, settled) for c in closed.values())
    assert [type(e) for e in events.about(21)] == [VenueFilled, VenueCanceled]
    assert [type(e) for e in events.about(22)] == [VenueCanceled]


def _bracket_elsewhere(fake: FakeAlpaca, client_order_id: str) -> FakeOrder:
    """A bracket buy of 10 AAPL at 100.00 (take-profit 110.50, stop-loss 95.00) placed
    at the fake by a process of the engine before a restart; the fake's parent."""
    client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
    client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=10, side="buy", time_in_force="gtc", limit_price=100.0,
            client_order_id=client_order_id, order_class="bracket",
            take_profit=TakeProfitRequest(limit_price=110.5),
            stop_loss=StopLossRequest(stop_price=95.0),
        )
    )  # fmt: skip
    return fake.order(client_order_id)


def test_an_orphaned_brackets_legs_are_watched_again_after_a_restart(fake: FakeAlpaca) -> None:
    """Bracket 30 was rejected as maybe placed before a restart, but Alpaca had it: its
    entry filled 10 and its take-profit 4, of which the engine booked all of the entry
    and 2 of the take-profit. Its take-profit fills 1 more on the stream before the
    engine hands the group back (held for its parent). Handed back with its legs (the
    parent's `legs`, each with its booked lots): the take-profit's 3 lots beyond those
    booked are reported (the streamed one as the stream gave it), both legs are
    canceled at Alpaca, and each watch ends, the legs' before the parent's."""
    parent = _bracket_elsewhere(fake, "tp-30")
    tp, sl = parent.legs
    fake.fill(parent.id, "100", 10)
    fake.fill(tp.id, "110.40", 2)
    fake.fill(tp.id, "110.60", 2)
    venue, events, updates = _restarted(fake, expect=[30, 31, 32])
    try:
        streamed = fake.fill(tp.id, "110.70", 1)
        updates.wait("partial_fill", tp.client_order_id, 5)
        assert events.about(31) == []
        bracket = classed(30, "bracket", take_profit=11050, stop_loss_stop=9500, legs=(31, 32))
        take_profit = classed(31, "bracket", side="sell", limit_price=11050)
        stop_loss = classed(
            32, "bracket", side="sell", type="stop", limit_price=None, stop_price=9500
        )
        venue.watch_orphans(
            [HandBack(bracket, 10), HandBack(take_profit, 2), HandBack(stop_loss, 0)]
        )
        settled = events.wait(VenueCanceled, lambda e: e.order_id == 30)
        assert (settled.reason, settled.remaining) == ("orphan_closed", 0)
        assert (tp.status, sl.status) == ("canceled", "canceled")
        assert [type(e) for e in events.about(30)] == [VenueCanceled]  # all of it booked
        fills = [e for e in events.about(31) if isinstance(e, VenueFilled)]
        assert sum(f.qty for f in fills) == 3
        assert (fills[0].qty, fills[0].price, fills[0].execution_id) == (
            1,
            11070,
            streamed["execution_id"],
        )
        closed = [e for e in events.about(31) + events.about(32) if isinstance(e, VenueCanceled)]
        assert [(c.order_id, c.reason, c.remaining) for c in closed] == [
            (31, "orphan_closed", 5),
            (32, "orphan_closed", 10),
        ]
        assert all(_before(events, c, settled) for c in closed)
    finally:
        venue.stop()


def test_an_order_the_stream_reported_stays_live_when_its_request_times_out(
    started: tuple[AlpacaVenue, Events], fake: FakeAlpaca
) -> None:
    venue, events = started
    fake.hang_next(1, after_apply=True)  # taken, `new` sent, then no answer
    venue.submit(order(61, qty=10))
    ack = accepted(events, 61)
    fake.wait_until(lambda: fake.hung == 1)
    mark = events.mark()
    events.wait_status(False, since=mark)  # the read timeout
    events.wait_status(True, since=mark)
    fake.release()
    fake.fill(ack.venue_order_id, "123.45", 10)
    events.wait(VenueFilled, lambda e: e.order_id == 61)
    assert [type(e) for e in events.about(61)] == [VenueAccepted, VenueFilled]
    assert fake.order(ack.venue_order_id).status == "filled"


def test_timeout_is_unavailable(started: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = started
    mark = events.mark()
    fake.hang_next(1)
    venue.submit(order(70))
    refused = events.wait(VenueRejected, lambda e: e.order_id == 70)
    assert (refused.reason, refused.message) == ("venue_unavailable", "read timeout")
    events.wait_status(True, since=mark)  # the probe finds Alpaca answering again
    fake.release()
    venue.submit(order(71))
    accepted(events, 71)
    # the timed-out request went through after all: reconciliation cancels it there
    # (the fake may not hold it yet when the wait begins: absent is "not yet")
    fake.wait_until(
        lambda: any(
            o.client_order_id == "tp-70" and o.status == "canceled"
            for o in list(fake.orders.values())
        )
    )


def test_stream_outage_alone(started: tuple[AlpacaVenue, Events], fake: FakeAlpaca) -> None:
    venue, events = started
    venue.submit(order(80, qty=10))
    vid = accepted(events, 80).venue_order_id
    mark = events.mark()
    fake.stop_stream()
    events.wait_status(False, since=mark)
    fake.fill(vid, "123.45", 10)
    fake.wait_until(lambda: fake.order(vid).status == "filled")
    mark = events.mark()
    fake.start_stream()
    events.wait_status(True, since=mark)
    fill = events.wait(VenueFilled, lambda e: e.order_id == 80)
    assert (fill.price, fill.qty, fill.leaves_qty) == (12345, 10, 0)


class Updates:
    """The trade updates a venue has handled (acted on, held or dropped), as (event,
    client order id, cumulative filled qty): a test waits until an update it caused
    has been through the venue before it goes on (one held makes no event)."""

    def __init__(self, venue: AlpacaVenue) -> None:
        self.items: list[tuple[str, str, int]] = []
        self._cond = threading.Condition()
        handle = venue._on_trade_update

        def counted(msg: Any) -> None:
            try:
                handle(msg)
            finally:
                data = msg["data"]
                o = data["order"]
                seen = (data["event"], o["client_order_id"], int(o["filled_qty"]))
                with self._cond:
                    self.items.append(seen)
                    self._cond.notify_all()

        venue._on_trade_update = counted  # type: ignore[method-assign]

    def wait(self, event: str, client_order_id: str, filled_qty: int) -> None:
        with self._cond:
            if not self._cond.wait_for(
                lambda: (event, client_order_id, filled_qty) in self.items, timeout=10.0
            ):
                raise AssertionError(f"no {event} of {client_order_id} in time: {self.items}")


def _restarted(
    fake: FakeAlpaca, expect: Collection[int] = ()
) -> tuple[AlpacaVenue, Events, Updates]:
    """A new venue process, started and listening (its `stop` is the caller's), told
    that the engine will hand back the orders `expect`."""
    venue = make_venue(fake)
    venue.expect_hand_back(expect)
    events = Events()
    updates = Updates(venue)
    venue.start(events)
    events.wait_status(True)
    # "connected" can precede the stream's listen handshake: a fill published in
    # between would reach nobody, so wait until the fake has the new listener.
    fake.wait_until(lambda: fake.listeners == 1)
    return venue, events, updates


def test_a_restarted_venue_follows_orders_the_engine_hands_back(fake: FakeAlpaca) -> None:
    """Order 90, placed by the process before, fills 4 on the stream before the engine
    hands it back: the update is held, then reported as the stream gave it (not as a
    reconciled fill); the order is followed from then on."""
    first = make_venue(fake)
    events = Events()
    first.start(events)
    events.wait_status(True)
    first.submit(order(90, qty=10))
    vid = accepted(events, 90).venue_order_id
    first.stop()
    fake.wait_until(lambda: fake.listeners == 0)
    second, later, updates = _restarted(fake, expect=[90])  # a new engine process
    try:
        data = fake.fill(vid, "123.45", 4)
        updates.wait("partial_fill", "tp-90", 4)
        assert later.about(90) == []
        second.resume([HandBack(order(90, qty=10), 0)])
        second.watch_orphans([])
        fill = later.wait(VenueFilled, lambda e: e.order_id == 90)
        assert (fill.price, fill.qty, fill.leaves_qty) == (12345, 4, 6)
        assert fill.execution_id == data["execution_id"]
        second.cancel(90)
        assert later.wait(VenueCanceled, lambda e: e.order_id == 90).remaining == 6
    finally:
        second.stop()


def test_a_fill_streamed_before_the_resume_is_reported_beyond_the_booked_lots(
    fake: FakeAlpaca,
) -> None:
    """Order 95 was placed before a restart and filled 4, which the engine booked. The
    new process hears of 3 more on the stream before the engine hands 95 back with its
    4 lots: only the 3 are reported (they were reported again with the 4 before: 7
    lots on top of the 4 booked), at the stream's price."""
    _placed_elsewhere(fake, "tp-95")
    fake.fill("tp-95", "123.40", 4)
    venue, events, updates = _restarted(fake, expect=[95])
    try:
        fake.fill("tp-95", "123.46", 3)
        updates.wait("partial_fill", "tp-95", 7)
        assert events.about(95) == []  # held until the engine says what it booked
        venue.resume([HandBack(order(95, qty=10), 4)])
        venue.watch_orphans([])
        venue.cancel(95)  # after the resume on its worker: every report of it is in
        assert events.wait(VenueCanceled, lambda e: e.order_id == 95).remaining == 3
        fills = [e for e in events.about(95) if isinstance(e, VenueFilled)]
        assert [(f.qty, f.price, f.leaves_qty) for f in fills] == [(3, 12346, 3)]
        assert [type(e) for e in events.about(95)] == [VenueFilled, VenueCanceled]
    finally:
        venue.stop()


def test_an_orphans_fill_streamed_before_its_watch_is_held_and_it_is_canceled(
    fake: FakeAlpaca,
) -> None:
    """Order 97 was rejected as maybe placed before a restart, the engine booked the 4
    lots Alpaca filled of it; 2 more fill on the stream before the engine hands it back
    (`watch_orphans`): only the 2 are reported, and it is canceled at Alpaca (it was
    followed as a live order, never canceled, before)."""
    _placed_elsewhere(fake, "tp-97")
    fake.fill("tp-97", "123.40", 4)
    venue, events, updates = _restarted(fake, expect=[97])
    try:
        fake.fill("tp-97", "123.46", 2)
        updates.wait("partial_fill", "tp-97", 6)
        assert events.about(97) == []
        venue.watch_orphans([HandBack(order(97, qty=10), 4)])
        fake.wait_until(lambda: fake.order("tp-97").status == "canceled")
        settled = events.wait(VenueCanceled, lambda e: e.order_id == 97)
        assert (settled.reason, settled.remaining) == ("orphan_closed", 4)
        fills = [e for e in events.about(97) if isinstance(e, VenueFilled)]
        assert [(f.qty, f.price, f.leaves_qty) for f in fills] == [(2, 12346, 4)]
        assert [type(e) for e in events.about(97)] == [VenueFilled, VenueCanceled]
    finally:
        venue.stop()


def test_a_legs_fill_streamed_before_its_groups_resume_counts_the_booked_lots(
    fake: FakeAlpaca,
) -> None:
    """Bracket 20's entry filled and its take-profit (21) 4 lots, all booked, before a
    restart; 3 more of the take-profit fill on the stream before the engine hands the
    group back. The leg's update waits for its parent (it has Alpaca's client order id)
    and is applied once the resume counted the 4 booked lots: 3 are reported (6
    before: the stream's 3, then the same 3 again as a reconciled fill)."""
    first = make_venue(fake)
    events = Events()
    first.start(events)
    events.wait_status(True)
    bracket = classed(20, "bracket", take_profit=11050, stop_loss_stop=9500, legs=(21, 22))
    first.submit(bracket)
    parent = fake.order(accepted(events, 20).venue_order_id)
    tp, _ = parent.legs
    fake.fill(parent.id, "100", 10)
    fake.wait_until(lambda: tp.status == "new")
    fake.fill(tp.id, "110.50", 4)
    events.wait(VenueFilled, lambda e: e.order_id == 21)
    first.stop()
    fake.wait_until(lambda: fake.listeners == 0)
    venue, later, updates = _restarted(fake, expect=[20])
    try:
        fake.fill(tp.id, "110.60", 3)
        updates.wait("partial_fill", tp.client_order_id, 7)
        take_profit = classed(21, "simple", side="sell", limit_price=11050)
        stop_loss = classed(22, "simple", side="sell", type="stop", stop_price=9500)
        venue.resume([HandBack(bracket, 10), HandBack(take_profit, 4), HandBack(stop_loss, 0)])
        venue.watch_orphans([])
        venue.cancel(20)  # after the resume on its worker: every report of it is in
        later.wait(VenueRejected, lambda e: e.order_id == 20)
        fills = [e for e in later.about(21) if isinstance(e, VenueFilled)]
        assert [(f.qty, f.price, f.leaves_qty) for f in fills] == [(3, 11060, 3)]
        assert [e for e in later.about(20) if isinstance(e, VenueFilled)] == []
    finally:
        venue.stop()


def test_updates_of_an_order_the_engine_did_not_hand_back_are_dropped(
    fake: FakeAlpaca,
) -> None:
    """Order 98 is ours by its client order id, but the engine hands it back neither
    to `resume` nor to `watch_orphans` (it has nothing open of it): its updates held
    before the hand-off, and those after, report nothing, and it is not followed."""
    _placed_elsewhere(fake, "tp-98")
    venue, events, updates = _restarted(fake, expect=[98])
    try:
        fake.fill("tp-98", "123.45", 2)
        updates.wait("partial_fill", "tp-98", 2)
        venue.watch_orphans([])
        fake.fill("tp-98", "123.45", 3)
        updates.wait("partial_fill", "tp-98", 5)
        assert events.about(98) == []
        venue.cancel(98)  # not followed: nothing to cancel
        assert events.wait(VenueRejected, lambda e: e.order_id == 98).reason == "unknown_order"
        assert fake.order("tp-98").status == "partially_filled"
    finally:
        venue.stop()


def _old_update(venue: AlpacaVenue, order_id: int) -> None:
    """The stream tells `venue` of a new order `tp-<order_id>` of the process before."""
    o = FakeOrder(str(uuid.uuid4()), f"tp-{order_id}", "AAPL", "buy", "limit", 10, "gtc",
                  Decimal(100), None, status="new")  # fmt: skip
    venue._on_trade_update(
        {"stream": "trade_updates", "data": {"event": "new", "order": o.to_json()}}
    )


def test_every_update_of_an_order_to_be_handed_back_is_held_and_only_those(
    fake: FakeAlpaca,
) -> None:
    """Order 100 fills 3 on the stream before the hand-off, then 1,100 other orders the
    engine will hand back, and 100 it will not, update: the last 1,000 ids were held,
    so 100's fill was dropped and came only as the look-up's reconciled lot (or, with
    a look-up read before it, not at all). Now every update of an order the engine
    named is held, and none of the others: 100's fill is reported as the stream gave
    it."""
    _placed_elsewhere(fake, "tp-100")
    others = range(2000, 3100)
    venue, events, updates = _restarted(fake, expect=[100, *others])
    try:
        data = fake.fill("tp-100", "123.45", 3)
        updates.wait("partial_fill", "tp-100", 3)
        for oid in [*others, *range(5000, 5100)]:
            _old_update(venue, oid)
        assert set(venue._held) == {100, *others}  # bounded by what is to come back
        venue.resume([HandBack(order(100, qty=10), 0)])
        venue.watch_orphans([])
        fill = events.wait(VenueFilled, lambda e: e.order_id == 100)
        assert (fill.qty, fill.price, fill.execution_id) == (3, 12345, data["execution_id"])
        venue.cancel(100)
        assert events.wait(VenueCanceled, lambda e: e.order_id == 100).remaining == 7
        assert venue._held == {}
    finally:
        venue.stop()


def test_expect_hand_back_refuses_what_is_not_an_order_id(fake: FakeAlpaca) -> None:
    venue = make_venue(fake)
    for bad in ([0], [-3], [True], ["7"]):
        with pytest.raises(ValueError, match="engine order ids"):
            venue.expect_hand_back(bad)  # type: ignore[list-item]
    assert venue._expected == set()


def test_stop_is_prompt_and_final(fake: FakeAlpaca) -> None:
    venue = make_venue(fake)
    events = Events()
    venue.start(events)
    events.wait_status(True)
    t0 = time.perf_counter()
    venue.stop()
    assert time.perf_counter() - t0 < 3.0
    assert events.items[-1] == VenueStatus(False, "stopped")
    with pytest.raises(RuntimeError, match="not running"):
        venue.submit(order(1))


# ---------------------------------------------------------------------- credentials


def test_credentials_from_env(fake: FakeAlpaca) -> None:
    env = {
        "APCA_API_KEY_ID": fake.key_id,
        "APCA_API_SECRET_KEY": fake.secret_key,
        "APCA_API_BASE_URL": fake.rest_url,
        "APCA_API_STREAM_URL": fake.stream_url,
    }
    venue = AlpacaVenue.from_env(symbols=SYMBOLS, environ=env, **FAST)
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        venue.submit(order(1))
        accepted(events, 1)
    finally:
        venue.stop()
    with pytest.raises(CredentialsError, match="APCA_API_SECRET_KEY not set"):
        AlpacaVenue.from_env(symbols=SYMBOLS, environ={"APCA_API_KEY_ID": "x"})


def test_credentials_from_a_secret_dir(fake: FakeAlpaca, tmp_path: Path) -> None:
    (tmp_path / "key_id").write_text(fake.key_id + "\n")
    (tmp_path / "secret_key").write_text(fake.secret_key + "\n")
    venue = AlpacaVenue.from_secret_dir(
        tmp_path,
        symbols=SYMBOLS,
        url_override=fake.rest_url,
        stream_url_override=fake.stream_url,
        **FAST,
    )
    events = Events()
    venue.start(events)
    try:
        events.wait_status(True)
        venue.submit(order(1))
        accepted(events, 1)
    finally:
        venue.stop()
    (tmp_path / "secret_key").unlink()
    with pytest.raises(CredentialsError, match="secret_key not found"):
        AlpacaVenue.from_secret_dir(tmp_path, symbols=SYMBOLS)


def test_wrong_credentials_never_connect(fake: FakeAlpaca) -> None:
    venue = AlpacaVenue(
        fake.key_id,
        "wrong",
        url_override=fake.rest_url,
        stream_url_override=fake.stream_url,
        symbols=SYMBOLS,
        **FAST,
    )
    events = Events()
    venue.start(events)
    try:
        refused = events.wait(VenueStatus, lambda e: "401" in e.detail)
        assert "not authorized" in refused.detail
        events.wait(VenueStatus, lambda e: "authenticate" in e.detail)
        assert not venue.connected
        venue.submit(order(1))
        assert events.wait(VenueRejected, lambda e: e.order_id == 1).reason == "venue_unavailable"
    finally:
        venue.stop()
    assert not any(isinstance(e, VenueStatus) and e.connected for e in events.items)


# ---------------------------------------------------------------------- prices

TICK_SIZES = st.sampled_from(["0.01", "0.0001", "0.05", "0.25", "1", "5", "0.001", "0.5"])


@settings(max_examples=300, deadline=None)
@given(tick=TICK_SIZES, ticks=st.integers(1, 10**12))
def test_ticks_round_trip_exactly(tick: str, ticks: int) -> None:
    spec = SymbolSpec(tick)
    price = spec.to_price(ticks)
    assert price == Decimal(ticks) * Decimal(tick)
    assert spec.to_ticks(price) == ticks
    assert spec.to_ticks(spec.price_text(ticks)) == ticks
    assert "E" not in spec.price_text(ticks)
    # a float carrying the price (as alpaca-py's models do) reads back exactly
    assert spec.to_ticks(float(price)) == ticks


@settings(max_examples=200, deadline=None)
@given(tick=TICK_SIZES, ticks=st.integers(1, 10**9), offset=st.integers(1, 99))
def test_off_grid_prices_are_refused_or_rounded(tick: str, ticks: int, offset: int) -> None:
    spec = SymbolSpec(tick)
    step = Decimal(tick)
    price = spec.to_price(ticks) + step * offset / 100
    with pytest.raises(OffTickPrice):
        spec.to_ticks(price)
    nearest = spec.to_ticks(price, rounding=decimal.ROUND_HALF_EVEN)
    assert nearest in (ticks, ticks + 1)
    assert abs(spec.to_price(nearest) - price) <= step / 2


def test_symbol_spec_refuses_floats_and_nonsense() -> None:
    with pytest.raises(TypeError):
        SymbolSpec(0.01)  # type: ignore[arg-type]
    for bad in ("0", "-0.01", "abc", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            SymbolSpec(bad)
    with pytest.raises(TypeError):
        SymbolSpec("0.01").to_price(1.5)  # type: ignore[arg-type]
    assert SymbolSpec("0.01").to_ticks("123.450") == 12345
    assert SymbolSpec("0.01").to_ticks(123.45) == 12345
