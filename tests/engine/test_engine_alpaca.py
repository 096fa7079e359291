"""An engine whose venue is Alpaca: orders go to a local server speaking Alpaca's
protocol through the real alpaca-py, fills come back as the engine's own events, and
all of it survives a kill -9."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.config import EngineConfig, SymbolConfig, VenueConfig
from tickplane.core.events import (
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    PositionChanged,
    StopTriggered,
    Trade,
)
from tickplane.engine import service
from tickplane.engine.journal import snapshots

from .conftest import EngineProcess
from .fake_alpaca import FakeAlpaca, FakeOrder


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    with FakeAlpaca(symbols=("GOOG", "AAPL")) as server:
        # The engine reads Alpaca credentials from its environment (or a Secret mount).
        monkeypatch.setenv("APCA_API_KEY_ID", server.key_id)
        monkeypatch.setenv("APCA_API_SECRET_KEY", server.secret_key)
        yield server


def _engine(engine_factory: Any, fake: FakeAlpaca, **extra: Any) -> EngineProcess:
    eng: EngineProcess = engine_factory(
        venue={
            "kind": "alpaca",
            "url_override": fake.rest_url,
            "stream_url_override": fake.stream_url,
            "trail_poll_seconds": 0.02,
        },
        **extra,
    )
    return eng


def test_the_venue_settings_reach_the_adapter(fake: FakeAlpaca) -> None:
    """The engine's `venue.rate_limit_min_backoff`, `_max_backoff` and
    `early_updates_max` are the adapter's (they were not in the configuration: the
    adapter's defaults always applied)."""
    config = EngineConfig(
        symbols=[SymbolConfig("GOOG")],
        venue=VenueConfig(
            kind="alpaca",
            url_override=fake.rest_url,
            rate_limit_min_backoff=0.5,
            rate_limit_max_backoff=8.0,
            early_updates_max=250,
        ),
    ).validate()
    venue = service._alpaca_venue(config)
    assert venue._rate_backoff == (0.5, 8.0)  # type: ignore[attr-defined]
    assert venue._early_max == 250  # type: ignore[attr-defined]


async def _until(c: EngineClient, want: int, timeout: float = 20.0) -> list[Any]:
    """Every event so far, once at least `want` have been published."""
    async with asyncio.timeout(timeout):
        while True:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            if ping.last_seq >= want:
                return await c.replay(1, ping.last_seq)
            await asyncio.sleep(0.02)  # the venue reports asynchronously


def test_orders_route_to_alpaca_and_fills_come_back(engine_factory: Any, fake: FakeAlpaca) -> None:
    eng = _engine(engine_factory, fake)
    eng.start()

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            # The adapter connects in the background: wait until the engine says so.
            async with asyncio.timeout(20):
                while True:
                    r = await c.submit("alice", "GOOG", "buy", "limit", 10, price=12345)
                    if isinstance(r, wire.Ack):
                        break
                    assert r.reason == "venue_unavailable"
                    await asyncio.sleep(0.05)
            assert r.events == []  # pending: the venue has not answered yet
            fake.wait_until(lambda: fake.listeners == 1)  # the engine's stream listens
            order_id = r.order_id
            assert order_id is not None
            venue_order = fake.wait_order(f"tp-{order_id}")
            assert str(venue_order.limit_price) == "123.45"
            events = await _until(c, 1)
            assert isinstance(events[0], OrderAccepted) and events[0].id == order_id
            fake.fill(f"tp-{order_id}", "123.40", 4)
            events = await _until(c, 4)
            trade = events[1]
            assert isinstance(trade, Trade)
            assert (trade.taker, trade.price, trade.qty, trade.maker_account) == (
                order_id,
                12340,
                4,
                "venue:alpaca",
            )
            pos = [e for e in events if isinstance(e, PositionChanged) and e.account == "alice"]
            assert pos[-1].position == 4 and pos[-1].cost_basis == 4 * 12340
            assert isinstance(await c.cancel("mallory", order_id), wire.Reject)
            assert isinstance(await c.cancel("alice", order_id), wire.Ack)
            events = await _until(c, len(events) + 1)
            canceled = events[-1]
            assert isinstance(canceled, OrderCanceled) and canceled.remaining == 6
            # Alpaca refuses the next one: it ends rejected, never accepted
            fake.fail_next(403, message="insufficient buying power", method="POST")
            refused = await c.submit("bob", "GOOG", "sell", "limit", 3, price=13000)
            assert isinstance(refused, wire.Ack) and refused.order_id is not None
            events = await _until(c, len(events) + 1)
            assert isinstance(events[-1], OrderRejected) and events[-1].id == refused.order_id
            return await _finished(c, order_id, refused.order_id)

    async def _finished(c: EngineClient, filled: int, refused: int) -> list[wire.OrderView]:
        """The two orders' final states, as GetOrder answers them."""
        got = [await c.get_order("alice", filled), await c.get_order("bob", refused)]
        views = [r.order for r in got if isinstance(r, wire.Ack) and r.order is not None]
        assert [(v.status, v.filled_qty, v.avg_fill_price, v.total_qty) for v in views] == [
            ("canceled", 4, 12340.0, 10),
            ("rejected", 0, None, 3),
        ]
        assert views[1].reason is not None
        return views

    finished = asyncio.run(body())
    eng.kill()  # no snapshot: recovery replays the routing and the venue's reports
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            events = await c.replay(1, ping.last_seq)
            assert [type(e).__name__ for e in events][:2] == ["OrderAccepted", "Trade"]
            assert isinstance(events[-1], OrderRejected)
            assert await _finished(c, finished[0].id, finished[1].id) == finished

    asyncio.run(after())
    assert eng.stop() == 0


def test_unreachable_alpaca_rejects_or_falls_back(engine_factory: Any, fake: FakeAlpaca) -> None:
    fake.stop()  # Alpaca is down from the start
    rejecting = _engine(engine_factory, fake)
    rejecting.start()
    falling_back: EngineProcess = engine_factory(
        "fallback",
        venue={
            "kind": "alpaca",
            "url_override": fake.rest_url,
            "stream_url_override": fake.stream_url,
            "unreachable": "internal",
        },
    )
    falling_back.start()

    async def body() -> None:
        async with EngineClient(rejecting.order_entry, timeout=10) as c:
            r = await c.submit("a", "GOOG", "buy", "limit", 1, price=100)
            assert isinstance(r, wire.Reject) and r.reason == "venue_unavailable"
            # order classes and trailing stops follow the same policy
            r = await c.submit("a", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Reject) and r.reason == "venue_unavailable"
            r = await c.submit("a", "GOOG", "sell", "trailing_stop", 1, trail_price=5)
            assert isinstance(r, wire.Reject) and r.reason == "venue_unavailable"
            # a refused order keeps no client order id: its retry is refused again, not
            # answered as a duplicate of an order never placed
            for _ in range(2):
                r = await c.submit("a", "GOOG", "buy", "limit", 1, price=100, client_order_id="v")
                assert isinstance(r, wire.Reject) and r.reason == "venue_unavailable"
            r = await c.get_order_by_client_id("a", "v")
            assert isinstance(r, wire.Reject) and r.reason == "unknown_order"
        async with EngineClient(falling_back.order_entry, timeout=10) as c:
            r = await c.submit("a", "GOOG", "buy", "limit", 1, price=100)
            assert isinstance(r, wire.Ack) and isinstance(r.events[0], OrderAccepted)
            # matched here, where the internal order classes apply: legs held at once
            r = await c.submit("a", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            legs = [e for e in r.events if isinstance(e, OrderAccepted) and e.parent_id]
            assert [(e.id, e.leg) for e in legs] == [
                (r.order_id + 1, "take_profit"),
                (r.order_id + 2, "stop_loss"),
            ]

    asyncio.run(body())
    with urllib.request.urlopen(rejecting.http + "/status") as resp:
        status = json.loads(resp.read())
    assert status["venue"]["kind"] == "alpaca" and status["venue"]["connected"] is False
    assert (status["venue"]["unreachable"], status["venue"]["fallback_active"]) == (
        "reject",
        False,
    )
    venue = _status(falling_back)
    assert (venue["unreachable"], venue["fallback_active"]) == ("internal", True)
    assert venue["fallback_orders"] == {"new": 2, "in_flight": 0}
    assert _fallback_metrics(falling_back)['active{unreachable="internal"}'] == 1.0
    with urllib.request.urlopen(rejecting.http + "/metrics") as resp:
        assert "tickplane_engine_venue_connected 0.0" in resp.read().decode()
    assert rejecting.stop() == 0
    assert falling_back.stop() == 0


def _queue_depths(eng: EngineProcess) -> dict[str, float]:
    with urllib.request.urlopen(eng.http + "/metrics") as resp:
        text = resp.read().decode()
    prefix = 'tickplane_engine_queue_depth{queue="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def test_requests_waiting_for_alpaca_show_as_a_queue_depth(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    eng = _engine(engine_factory, fake)
    eng.start()
    # the adapter's connection reports are the loop's until it has taken them
    asyncio.run(_until_connected(eng))
    assert _queue_depths(eng) == {"venue_events": 0.0, "venue_requests": 0.0, "event_log": 0.0}
    # Alpaca holds its answers: each of the two REST workers is stuck in its first
    # submit (a third hang for a heartbeat probe that may come first), the rest queue
    fake.hang_next(3)

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            for _ in range(6):
                r = await c.submit("a", "GOOG", "buy", "limit", 1, price=100)
                assert isinstance(r, wire.Ack)

    asyncio.run(body())
    fake.wait_until(lambda: _queue_depths(eng)["venue_requests"] == 4.0)
    fake.release()
    fake.wait_until(lambda: _queue_depths(eng)["venue_requests"] == 0.0)
    assert eng.stop() == 0


# -- order classes at Alpaca: the internal venue's events -------------------------------------


def _shape(events: list[Any], first: int, last: int) -> list[tuple[Any, ...]]:
    """What the events say about orders first..last, ids relative to `first`."""
    ids = range(first, last + 1)
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, Trade):
            mine = [i for i in (e.taker, e.maker) if i in ids]
            if mine:
                out.append(("trade", mine[0] - first, e.qty, e.price))
        elif isinstance(e, OrderAccepted) and e.id in ids:
            out.append(("accepted", e.id - first, e.order_class, e.leg, e.qty, e.order_type))
        elif isinstance(e, OrderActivated) and e.id in ids:
            out.append(("activated", e.id - first, e.qty))
        elif isinstance(e, OrderReplaced) and e.id in ids:
            out.append(("replaced", e.id - first, e.qty, e.stop_price))
        elif isinstance(e, OrderCanceled) and e.id in ids:
            out.append(("canceled", e.id - first, e.remaining, e.reason))
        elif isinstance(e, StopTriggered) and e.id in ids:
            out.append(("triggered", e.id - first, e.stop_price))
        elif isinstance(e, OrderTrailed) and e.id in ids:
            out.append(("trailed", e.id - first, e.stop_price, e.hwm))
    return out


async def _connected(c: EngineClient) -> None:
    """Wait until the engine routes (the adapter connects in the background)."""
    async with asyncio.timeout(20):
        while True:
            r = await c.submit("probe", "AAPL", "buy", "limit", 1, price=1)
            if isinstance(r, wire.Ack):
                assert r.order_id is not None
                assert isinstance(await c.cancel("probe", r.order_id), wire.Ack)
                return
            assert r.reason == "venue_unavailable"
            await asyncio.sleep(0.05)


async def _events_until(c: EngineClient, done: Any, timeout: float = 20.0) -> list[Any]:
    """Every event so far, once `done(events)` holds."""
    async with asyncio.timeout(timeout):
        while True:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            events = await c.replay(1, ping.last_seq) if ping.last_seq else []
            if done(events):
                return events
            await asyncio.sleep(0.02)  # the venue reports asynchronously


async def _prints(c: EngineClient, price: int, bids: int = 1) -> None:
    """A trade at `price` on the internal venue's GOOG, leaving `bids - 1` bids there."""
    await c.submit("mm", "GOOG", "buy", "limit", bids, price=price)
    await c.submit("mm2", "GOOG", "sell", "limit", 1, price=price)


async def _shape_now(c: EngineClient, first: int, last: int) -> list[tuple[Any, ...]]:
    """`_shape` of every event the engine has published so far."""
    ping = await c.ping()
    assert isinstance(ping, wire.Ack)
    return _shape(await c.replay(1, ping.last_seq), first, last)


async def _route(
    c: EngineClient, fake: FakeAlpaca, side: str, order_type: str, qty: int, **order: Any
) -> tuple[int, Any]:
    """Once the engine routes: alice's order on GOOG; its id, and the order as Alpaca
    got it."""
    await _connected(c)
    r = await c.submit("alice", "GOOG", side, order_type, qty, **order)
    assert isinstance(r, wire.Ack) and r.order_id is not None
    return r.order_id, fake.wait_order(f"tp-{r.order_id}")


def _recovers(eng: EngineProcess, first: int, last: int, expected: list[Any]) -> None:
    """Kill -9 and restart `eng` (no snapshot: recovery replays the venue's reports):
    the events of orders first..last come back as `expected`, once."""
    eng.kill()
    eng.start()

    async def after() -> list[tuple[Any, ...]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            return await _shape_now(c, first, last)

    assert asyncio.run(after()) == expected
    assert eng.stop() == 0


# A bracket buy of 10 at 100 (take-profit 110, stop-loss 90): its parent filled, then
# its take-profit in two trades of 4 and 6 (ids relative to the parent's).
BRACKET_EVENTS = [
    ("accepted", 0, "bracket", None, 10, "limit"),
    ("accepted", 1, "bracket", "take_profit", 10, "limit"),
    ("accepted", 2, "bracket", "stop_loss", 10, "stop"),
    ("trade", 0, 10, 10000),
    ("activated", 1, 10),
    ("activated", 2, 10),
    ("trade", 1, 4, 11000),
    ("replaced", 2, 6, 9000),
    ("trade", 1, 6, 11000),
    ("canceled", 2, 10, "oco"),
]
BRACKET = dict(
    price=10000,
    order_class="bracket",
    take_profit=wire.TakeProfit(11000),
    stop_loss=wire.StopLoss(9000),
)


def test_a_bracket_at_alpaca_reads_as_on_the_internal_venue(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    # the same bracket on the internal venue, its parent filled, then its take-profit
    # in two trades
    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> list[tuple[Any, ...]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            r = await c.submit("alice", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            await c.submit("mm", "GOOG", "sell", "limit", 10, price=10000)
            await c.submit("mm", "GOOG", "buy", "limit", 4, price=11000)
            await c.submit("mm", "GOOG", "buy", "limit", 6, price=11000)
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            return _shape(await c.replay(1, ping.last_seq), r.order_id, r.order_id + 2)

    expected = asyncio.run(on_internal())
    assert internal.stop() == 0

    eng = _engine(engine_factory, fake)
    eng.start()

    async def at_alpaca() -> tuple[int, list[tuple[Any, ...]]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _connected(c)
            r = await c.submit("alice", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Ack) and r.order_id is not None and r.events == []
            p = r.order_id
            sent = fake.wait_order(f"tp-{p}")
            assert (sent.order_class, sent.limit_price) == ("bracket", Decimal(100))
            tp, sl = sent.legs
            assert (tp.limit_price, sl.stop_price) == (Decimal(110), Decimal(90))
            accepted = await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 3)
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [(v.id, v.order_class, v.leg) for v in views.orders] == [
                (p, "bracket", None),
                (p + 1, "bracket", "take_profit"),
                (p + 2, "bracket", "stop_loss"),
            ]
            legs = [e for e in accepted if isinstance(e, OrderAccepted) and e.id in (p + 1, p + 2)]
            assert [e.parent_id for e in legs] == [p, p]
            fake.fill(sent.id, "100", 10)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 6)
            fake.fill(tp.id, "110", 4)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 8)
            fake.fill(tp.id, "110", 6)
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 10)
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders == []
            account = await c.get_account("alice")
            assert isinstance(account, wire.Ack) and account.account is not None
            assert account.account.positions[0].qty == 0
            return p, _shape(events, p, p + 2)

    p, got = asyncio.run(at_alpaca())
    assert got == expected == BRACKET_EVENTS
    eng.kill()  # no snapshot: recovery replays the routing with its legs
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            assert _shape(await c.replay(1, ping.last_seq), p, p + 2) == expected
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders == []

    asyncio.run(after())
    assert eng.stop() == 0


async def _bracket_entered(c: EngineClient, fake: FakeAlpaca) -> tuple[int, FakeOrder]:
    """Once the engine routes: alice's `BRACKET` buy of 10, its entry filled at 100.00
    at Alpaca and its legs working; its id, and the order as Alpaca got it."""
    p, sent = await _route(c, fake, "buy", "limit", 10, **BRACKET)
    await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 3)
    fake.fill(sent.id, "100", 10)
    events = await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 6)
    assert _shape(events, p, p + 2) == BRACKET_EVENTS[:6]
    return p, sent


@pytest.mark.parametrize("snapshot_every", [0, 1])
def test_a_bracket_at_alpaca_survives_a_kill_9_in_the_middle(
    engine_factory: Any, fake: FakeAlpaca, snapshot_every: int
) -> None:
    """Killed with the legs working; the take-profit fills 4 while the engine is down
    (Alpaca does not replay trade updates): the restarted engine (from the journal, or
    from a snapshot taken after every record) hands its routed orders back to the
    venue, which finds the missed fill; then the rest goes on."""
    eng = _engine(engine_factory, fake, snapshot_every=snapshot_every)
    eng.start()

    async def first() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, _ = await _bracket_entered(c, fake)
            return p

    p = asyncio.run(first())
    eng.kill()
    # with snapshots on, the one recovery starts from holds the working legs
    assert bool(snapshots(eng.settings["journal_dir"])) == bool(snapshot_every)
    tp, sl = fake.order(f"tp-{p}").legs
    fake.fill(tp.id, "110", 4)  # nobody listens
    eng.start()

    async def second() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            # the missed fill comes back through the venue's resume
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 8)
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [(v.id, v.leg, v.qty) for v in views.orders] == [
                (p + 1, "take_profit", 6),
                (p + 2, "stop_loss", 6),
            ]
            fake.wait_until(lambda: fake.listeners == 1)
            fake.fill(tp.id, "110", 6)
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 10)
            assert _shape(events, p, p + 2) == BRACKET_EVENTS
            assert sl.status == "canceled"
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders == []

    asyncio.run(second())
    assert eng.stop() == 0


def sent_id(fake: FakeAlpaca, order_id: int) -> str:
    """Alpaca's id of the engine's order `order_id`."""
    return fake.order(f"tp-{order_id}").id


# A trailing sell of 3 trailing by 150 ticks, placed after a print at 100.00: the market
# goes to 101 and 102 (its stop follows: 99.50, 100.50), back to 101.50 (nothing), then
# prints 100.40, which triggers it; it sells its 3 at 100.40.
TRAILING_EVENTS = [
    ("accepted", 0, "simple", None, 3, "trailing_stop"),
    ("trailed", 0, 9950, 10100),
    ("trailed", 0, 10050, 10200),
    ("triggered", 0, 10050),
    ("trade", 0, 3, 10040),
]


def test_a_trailing_stop_at_alpaca_reads_as_on_the_internal_venue(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> tuple[list[tuple[Any, ...]], int | None]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            await _prints(c, 10000)
            r = await c.submit("alice", "GOOG", "sell", "trailing_stop", 3, trail_price=150)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            (accepted,) = [e for e in r.events if isinstance(e, OrderAccepted)]
            for price in (10100, 10200, 10150):
                await _prints(c, price)
            await _prints(c, 10040, bids=4)  # its 3 sell into the 3 bids left
            return await _shape_now(c, r.order_id, r.order_id), accepted.stop_price

    expected, accepted_stop = asyncio.run(on_internal())
    assert internal.stop() == 0
    assert (expected, accepted_stop) == (TRAILING_EVENTS, 9850)

    eng = _engine(engine_factory, fake)
    eng.start()

    async def at_alpaca() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            fake.trade("GOOG", "100")
            p, sent = await _route(c, fake, "sell", "trailing_stop", 3, trail_price=150)
            assert (sent.type, sent.trail_price) == ("trailing_stop", Decimal("1.5"))
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 1)
            (accepted,) = [e for e in events if isinstance(e, OrderAccepted) and e.id == p]
            assert (accepted.trail_price, accepted.stop_price) == (150, 9850)
            bad = await c.replace("alice", p, trail_percent=2.0)  # placed with trail_price
            assert isinstance(bad, wire.Reject) and bad.reason == "bad_replace"
            # each move is seen by the venue's poll before the market moves again
            for price, seen in (("101", 2), ("102", 3), ("101.50", 3)):
                fake.trade("GOOG", price)
                await _events_until(c, lambda ev, n=seen: len(_shape(ev, p, p)) == n)
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [(v.id, v.stop_price, v.hwm) for v in views.orders] == [(p, 10050, 10200)]
            fake.trade("GOOG", "100.40")  # Alpaca triggers it and sells at 100.40
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 5)
            assert _shape(events, p, p) == expected
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders == []
            return p

    p = asyncio.run(at_alpaca())
    # the moves were polled: the open orders read, not each order (GET /v2/orders/{id})
    gets = [path for m, path, _ in fake.requests if m == "GET"]
    assert "/v2/orders" in gets and not any(g.endswith(sent_id(fake, p)) for g in gets)
    _recovers(eng, p, p, expected)  # trails included


# A trailing sell of 3 placed after a print at 100.00, trailing by 1.50 (or 1.5%): a
# print at 102 moves its stop to 100.50 (100.47); its quantity is replaced by 2, then
# its trail by 1.00 (1%): its stop 101.00 (100.98) at the same high; a print at 103
# moves it to 102.00 (101.97), one at 101.90 triggers it and it sells its 2 there.
# Per kind: how it is placed, its new trail, and a trail of the other kind.
TRAILS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "price": ({"trail_price": 150}, {"trail_price": 100}, {"trail_percent": 1.0}),
    "percent": ({"trail_percent": 1.5}, {"trail_percent": 1.0}, {"trail_price": 100}),
}
REPLACED_TRAILING_EVENTS = {
    kind: [
        ("accepted", 0, "simple", None, 3, "trailing_stop"),
        ("trailed", 0, first, 10200),
        ("replaced", 0, 2, first),
        ("replaced", 0, 2, second),
        ("trailed", 0, third, 10300),
        ("triggered", 0, third),
        ("trade", 0, 2, 10190),
    ]
    for kind, (first, second, third) in {
        "price": (10050, 10100, 10200),
        "percent": (10047, 10098, 10197),
    }.items()
}


async def _replace_trailing(
    c: EngineClient, p: int, kind: str
) -> tuple[list[tuple[str, str]], wire.OrderView]:
    """Replace trailing stop `p`'s quantity, then its trail (the venue reports each),
    between refused replaces; their (reason, message) and the order's view after."""
    _, trail, other = TRAILS[kind]
    refused: list[tuple[str, str]] = []

    async def no(**change: Any) -> None:
        r = await c.replace("alice", p, **change)
        assert isinstance(r, wire.Reject), r
        refused.append((r.reason, r.message))

    assert isinstance(await c.replace("alice", p, qty=2), wire.Ack)
    await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 3)
    await no(**other)  # a trail of the other kind
    await no(price=10100)
    await no(stop_price=10100)
    await no()
    assert isinstance(await c.replace("alice", p, **trail), wire.Ack)
    await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 4)
    got = await c.get_order("alice", p)
    assert isinstance(got, wire.Ack) and got.order is not None
    return refused, got.order


def _replaced(events: list[Any], p: int) -> list[tuple[Any, ...]]:
    """The OrderReplaced events of order `p`, field by field (its id relative)."""
    return [
        (
            e.id - p,
            e.account,
            e.symbol,
            e.price,
            e.qty,
            e.stop_price,
            e.trail_price,
            e.trail_percent,
        )
        for e in events
        if isinstance(e, OrderReplaced) and e.id == p
    ]


def _trail_view(v: wire.OrderView) -> tuple[Any, ...]:
    return (v.qty, v.price, v.stop_price, v.hwm, v.trail_price, v.trail_percent)


@pytest.mark.parametrize(("kind", "snapshot_every"), [("price", 0), ("percent", 1)])
def test_a_routed_trailing_stops_qty_and_trail_are_replaced_as_on_the_internal_venue(
    engine_factory: Any, fake: FakeAlpaca, kind: str, snapshot_every: int
) -> None:
    """The same replaces of a trailing stop on the internal venue and at Alpaca (a
    PATCH with `trail`): the same events, field by field, the same refusals, the same
    order view; at Alpaca the engine is killed after the replaces and restarted (from
    the journal, or a snapshot): it follows the replacement, its new trail and id,
    and shows nothing twice."""
    placed = TRAILS[kind][0]
    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> tuple[list[Any], list[Any], list[Any], wire.OrderView]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            await _prints(c, 10000)
            r = await c.submit("alice", "GOOG", "sell", "trailing_stop", 3, **placed)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            p = r.order_id
            await _prints(c, 10200)
            refused, view = await _replace_trailing(c, p, kind)
            await _prints(c, 10300)
            await _prints(c, 10190, bids=3)  # its 2 sell into the 2 bids left
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            events = await c.replay(1, ping.last_seq)
            return _shape(events, p, p), _replaced(events, p), refused, view

    expected, replaced, refusals, view = asyncio.run(on_internal())
    assert internal.stop() == 0
    assert expected == REPLACED_TRAILING_EVENTS[kind]
    # each OrderReplaced carries the trail: the placed one (a quantity), then the new
    trails = [(t.get("trail_price"), t.get("trail_percent")) for t in TRAILS[kind][:2]]
    assert [r[-2:] for r in replaced] == trails
    assert [reason for reason, _ in refusals] == ["bad_replace"] * 4

    eng = _engine(engine_factory, fake, snapshot_every=snapshot_every)
    eng.start()

    async def at_alpaca() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            fake.trade("GOOG", "100")
            p, _ = await _route(c, fake, "sell", "trailing_stop", 3, **placed)
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 1)
            fake.trade("GOOG", "102")
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 2)
            got_refusals, got_view = await _replace_trailing(c, p, kind)
            assert got_refusals == refusals
            assert _trail_view(got_view) == _trail_view(view)
            return p

    p = asyncio.run(at_alpaca())
    live = fake.order(f"tp-{p}-r2")  # the PATCHes: `trail` the new trail, as Alpaca takes it
    trail = Decimal(1)
    assert (live.qty, live.trail_price or live.trail_percent, live.status) == (2, trail, "new")
    patches = [body for m, _, body in fake.requests if m == "PATCH"]
    assert [b.get("trail") for b in patches] == [None, trail]
    eng.kill()
    assert bool(snapshots(eng.settings["journal_dir"])) == bool(snapshot_every)
    asked = len(fake.requests)
    eng.start()

    async def after() -> list[Any]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            # resumed (Venue.resume), then polled: the replacement, with its trail
            fake.wait_until(
                lambda: any(
                    m == "GET" and path == "/v2/orders" for m, path, _ in fake.requests[asked:]
                )
            )
            got = await c.get_order("alice", p)
            assert isinstance(got, wire.Ack) and got.order is not None
            assert _trail_view(got.order) == _trail_view(view)
            fake.wait_until(lambda: fake.listeners == 1)
            fake.trade("GOOG", "103")
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 5)
            fake.trade("GOOG", "101.90")  # Alpaca triggers the replacement and sells at 101.90
            return await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 7)

    events = asyncio.run(after())
    assert _shape(events, p, p) == expected
    assert _replaced(events, p) == replaced
    assert fake.order(live.id).status == "filled"
    _recovers(eng, p, p, expected)


def test_a_new_trail_that_reaches_the_last_trade_triggers_on_both_venues(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """A trailing sell of 3 by 1.50 after a print at 100.00, its high 102 (its stop
    100.50), the last trade 101.50: a trail of 0.50 puts its stop on the last trade,
    so it triggers at once (at Alpaca: right after the PATCH) and sells its 3 there."""
    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> list[tuple[Any, ...]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            await _prints(c, 10000)
            r = await c.submit("alice", "GOOG", "sell", "trailing_stop", 3, trail_price=150)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            await _prints(c, 10200)
            await _prints(c, 10150, bids=4)  # leaves 3 bids at 101.50
            assert isinstance(await c.replace("alice", r.order_id, trail_price=50), wire.Ack)
            return await _shape_now(c, r.order_id, r.order_id)

    expected = asyncio.run(on_internal())
    assert internal.stop() == 0
    assert expected == [
        ("accepted", 0, "simple", None, 3, "trailing_stop"),
        ("trailed", 0, 10050, 10200),
        ("replaced", 0, 3, 10150),
        ("triggered", 0, 10150),
        ("trade", 0, 3, 10150),
    ]

    eng = _engine(engine_factory, fake)
    eng.start()

    async def at_alpaca() -> list[tuple[Any, ...]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            fake.trade("GOOG", "100")
            p, _ = await _route(c, fake, "sell", "trailing_stop", 3, trail_price=150)
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 1)
            fake.trade("GOOG", "102")
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 2)
            fake.trade("GOOG", "101.50")
            assert isinstance(await c.replace("alice", p, trail_price=50), wire.Ack)
            return _shape(await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 5), p, p)

    assert asyncio.run(at_alpaca()) == expected
    assert eng.stop() == 0


def test_a_routed_trailing_stop_is_not_replaced_once_it_triggered(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Alpaca triggered it (its first fill says so, as it says nothing else): a replace
    is refused as on the internal venue, before anything is sent."""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            fake.trade("GOOG", "100")
            p, sent = await _route(c, fake, "sell", "trailing_stop", 3, trail_price=150)
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 1)
            fake.fill(sent.id, "98.50", 1)  # the market order it became, partly filled
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 3)
            for change in ({"qty": 2}, {"trail_price": 100}):
                r = await c.replace("alice", p, **change)
                assert isinstance(r, wire.Reject)
                assert (r.reason, r.message) == (
                    "bad_replace",
                    "the trailing stop triggered: its order is working",
                )
            assert not [m for m, _, _ in fake.requests if m == "PATCH"]

    asyncio.run(body())
    assert eng.stop() == 0


# A plain sell stop of 3 at 99.00 placed after a print at 100.00: a print at 99.50
# leaves it, one at 99.00 triggers it and it sells its 3 at 99.00.
STOP_EVENTS = [
    ("accepted", 0, None, None, 3, "stop"),
    ("triggered", 0, 9900),
    ("trade", 0, 3, 9900),
]


def test_a_plain_stop_at_alpaca_reads_as_on_the_internal_venue(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Alpaca reports no trigger: the first fill of a routed stop stands for it, so
    the events are those of the internal venue, `StopTriggered` before the `Trade`."""
    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> list[tuple[Any, ...]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            await _prints(c, 10000)
            r = await c.submit("alice", "GOOG", "sell", "stop", 3, stop_price=9900)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            await _prints(c, 9950)
            await _prints(c, 9900, bids=4)  # triggers it: its 3 sell into the 3 bids left
            return await _shape_now(c, r.order_id, r.order_id)

    assert asyncio.run(on_internal()) == STOP_EVENTS
    assert internal.stop() == 0

    eng = _engine(engine_factory, fake)
    eng.start()

    async def at_alpaca() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            fake.trade("GOOG", "100")
            p, sent = await _route(c, fake, "sell", "stop", 3, stop_price=9900)
            assert (sent.type, sent.stop_price) == ("stop", Decimal("99"))
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 1)
            fake.trade("GOOG", "99.50")
            fake.trade("GOOG", "99")  # Alpaca triggers it and sells at 99.00
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 3)
            assert _shape(events, p, p) == STOP_EVENTS
            return p

    p = asyncio.run(at_alpaca())
    _recovers(eng, p, p, STOP_EVENTS)  # the trigger comes back once


@pytest.mark.parametrize("snapshot_every", [0, 1])
def test_a_trailing_stop_at_alpaca_survives_a_kill_9_without_a_second_trail(
    engine_factory: Any, fake: FakeAlpaca, snapshot_every: int
) -> None:
    """Killed while the trailing stop works at 100.50 (its high 102): the market prints
    below the high while the engine is down. The restarted engine hands the order back
    to the venue, which reads its stop and high again: the same, so no OrderTrailed;
    later moves and the trigger come as before."""
    eng = _engine(engine_factory, fake, snapshot_every=snapshot_every)
    eng.start()

    async def first() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _connected(c)
            fake.trade("GOOG", "100")
            r = await c.submit("alice", "GOOG", "sell", "trailing_stop", 3, trail_price=150)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            p = r.order_id
            fake.wait_order(f"tp-{p}")
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 1)
            for price, seen in (("101", 2), ("102", 3)):
                fake.trade("GOOG", price)
                await _events_until(c, lambda ev, n=seen: len(_shape(ev, p, p)) == n)
            return p

    p = asyncio.run(first())
    eng.kill()
    assert bool(snapshots(eng.settings["journal_dir"])) == bool(snapshot_every)
    fake.trade("GOOG", "101.80")  # nobody listens; the stop stays at 100.50
    asked = len(fake.requests)
    eng.start()

    async def second() -> list[tuple[Any, ...]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:

            def read(how: str) -> bool:
                return any(m == "GET" and how in path for m, path, _ in fake.requests[asked:])

            def polled() -> bool:  # the open orders read (the trail poll)
                return any(
                    m == "GET" and path == "/v2/orders" for m, path, _ in fake.requests[asked:]
                )

            fake.wait_until(lambda: read("by_client_order_id"))  # resumed (Venue.resume)
            fake.wait_until(polled)  # and polled since
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [(v.id, v.stop_price, v.hwm) for v in views.orders] == [(p, 10050, 10200)]
            fake.wait_until(lambda: fake.listeners == 1)
            fake.trade("GOOG", "103")
            await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 4)
            fake.trade("GOOG", "101.40")
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p)) == 6)
            return _shape(events, p, p)

    assert asyncio.run(second()) == [
        *TRAILING_EVENTS[:3],
        ("trailed", 0, 10150, 10300),
        ("triggered", 0, 10150),
        ("trade", 0, 3, 10140),
    ]
    assert eng.stop() == 0


def test_an_oco_at_alpaca_reads_as_on_the_internal_venue(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """An OCO sell of 8 (take-profit 70, stop-loss 40) whose stop triggers and fills:
    its limit is canceled `oco`."""
    oco: dict[str, Any] = dict(
        order_class="oco", take_profit=wire.TakeProfit(7000), stop_loss=wire.StopLoss(4000)
    )
    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> list[tuple[Any, ...]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            r = await c.submit("alice", "GOOG", "sell", "limit", 8, **oco)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            await c.submit("mm", "GOOG", "buy", "limit", 10, price=3990)
            await c.submit("mm", "GOOG", "sell", "limit", 1, price=4000)
            await c.submit("mm2", "GOOG", "buy", "limit", 1, price=4000)  # prints 40
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            return _shape(await c.replay(1, ping.last_seq), r.order_id, r.order_id + 1)

    expected = asyncio.run(on_internal())
    assert internal.stop() == 0
    assert expected == [
        ("accepted", 0, "oco", None, 8, "limit"),
        ("accepted", 1, "oco", "stop_loss", 8, "stop"),
        ("triggered", 1, 4000),
        ("trade", 1, 8, 3990),
        ("canceled", 0, 8, "oco"),
    ]

    eng = _engine(engine_factory, fake)
    eng.start()

    async def at_alpaca() -> list[tuple[Any, ...]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _route(c, fake, "sell", "limit", 8, **oco)
            assert (sent.order_class, sent.limit_price) == ("oco", Decimal(70))
            (stop,) = sent.legs
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 1)) == 2)
            fake.fill(stop.id, "39.90", 8)
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p + 1)) == 5)
            return _shape(events, p, p + 1)

    assert asyncio.run(at_alpaca()) == expected
    assert eng.stop() == 0


def test_a_kill_switch_cancels_routed_orders_and_their_legs(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    eng = _engine(engine_factory, fake)
    eng.start()

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _connected(c)
            plain = await c.submit("alice", "GOOG", "buy", "limit", 5, price=9000)
            working = await c.submit("alice", "GOOG", "buy", "limit", 10, **BRACKET)
            waiting = await c.submit("alice", "AAPL", "buy", "limit", 10, **BRACKET)
            oco = await c.submit(
                "alice",
                "AAPL",
                "sell",
                "limit",
                3,
                order_class="oco",
                take_profit=wire.TakeProfit(12000),
                stop_loss=wire.StopLoss(8000),
            )
            other = await c.submit("bob", "GOOG", "buy", "limit", 5, price=9000)
            acks = [plain, working, waiting, oco, other]
            assert all(isinstance(a, wire.Ack) and a.order_id for a in acks)
            ids = [a.order_id for a in acks if isinstance(a, wire.Ack) and a.order_id]
            entry = fake.wait_order(f"tp-{ids[1]}")
            for i in ids:
                fake.wait_order(f"tp-{i}")
            await _events_until(c, lambda ev: sum(isinstance(e, OrderAccepted) for e in ev) >= 11)
            fake.fill(entry.id, "100", 10)  # the first bracket's legs work on their own
            await _events_until(c, lambda ev: sum(isinstance(e, OrderActivated) for e in ev) == 2)
            killed = await c.control("kill", account="alice")
            assert isinstance(killed, wire.Ack)
            alice = [i for i in range(ids[0], ids[3] + 2) if i != ids[1]]
            events = await _events_until(
                c,
                lambda ev: {e.id for e in ev if isinstance(e, OrderCanceled)} >= set(alice),
            )
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders == []
            reasons = {e.id: e.reason for e in events if isinstance(e, OrderCanceled)}
            assert reasons[ids[2] + 1] == reasons[ids[2] + 2] == "parent_canceled"
            assert reasons[ids[3] + 1] == "parent_canceled"  # the OCO's stop, with its limit
            assert ids[4] not in reasons  # bob's order is not covered
            assert fake.order(f"tp-{ids[4]}").status == "new"

    asyncio.run(body())
    assert eng.stop() == 0


def test_a_bracket_legs_prices_are_replaced_at_alpaca_as_internally(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    async def replaces(c: EngineClient, p: int) -> None:
        r = await c.replace("alice", p + 2, stop_price=8500)
        assert isinstance(r, wire.Ack), r
        r = await c.replace("alice", p + 1, price=11500)
        assert isinstance(r, wire.Ack), r
        for bad in (
            await c.replace("alice", p + 1, qty=5),
            await c.replace("alice", p + 1, stop_price=9500),
            await c.replace("alice", p + 2, price=9500),
        ):
            assert isinstance(bad, wire.Reject) and bad.reason == "bad_replace"

    internal: EngineProcess = engine_factory("internal")
    internal.start()

    async def on_internal() -> list[tuple[Any, ...]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            r = await c.submit("alice", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            await replaces(c, r.order_id)
            await c.submit("mm", "GOOG", "sell", "limit", 10, price=10000)
            await c.submit("mm", "GOOG", "buy", "limit", 10, price=11500)
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            return _shape(await c.replay(1, ping.last_seq), r.order_id, r.order_id + 2)

    expected = asyncio.run(on_internal())
    assert internal.stop() == 0
    assert expected[3:5] == [("replaced", 2, 0, 8500), ("replaced", 1, 0, None)]

    eng = _engine(engine_factory, fake)
    eng.start()

    async def at_alpaca() -> list[tuple[Any, ...]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _route(c, fake, "buy", "limit", 10, **BRACKET)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 3)
            await replaces(c, p)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 5)
            tp, sl = sent.legs  # the replacements, in their places
            assert (tp.limit_price, sl.stop_price) == (Decimal(115), Decimal(85))
            assert (tp.status, sl.status, tp.replaces is not None) == ("held", "held", True)
            fake.fill(sent.id, "100", 10)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 8)
            fake.fill(tp.id, "115", 10)
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 10)
            return _shape(events, p, p + 2)

    got = asyncio.run(at_alpaca())
    # Each leg's replace is its own request at Alpaca, answered on its own: the two
    # `replaced` reports may come back in either order (the internal venue's is fixed).
    assert (got[:3], got[5:]) == (expected[:3], expected[5:])
    assert sorted(got[3:5], key=repr) == sorted(expected[3:5], key=repr)
    assert eng.stop() == 0


async def _take_profit_replaced_unanswered(c: EngineClient, fake: FakeAlpaca) -> tuple[int, Any]:
    """A bracket buy routed and its entry filled, then its take-profit replaced at 115:
    Alpaca carries the PATCH out, holds its answer and the `replaced` event back."""
    p, sent = await _route(c, fake, "buy", "limit", 10, **BRACKET)
    await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 3)
    fake.fill(sent.id, "100", 10)
    await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 6)
    fake.hold_replaced = True
    fake.hang_next(1, after_apply=True)
    r = await c.replace("alice", p + 1, price=11500)
    assert isinstance(r, wire.Ack), r
    fake.wait_until(lambda: fake.hung == 1)
    return p, sent


def _booked_once_at_115(eng: EngineProcess, p: int, got: list[tuple[Any, ...]]) -> None:
    """Bracket `p`'s events (`got`): its stop-loss canceled, its take-profit replaced
    and filled at 115, once; the same after a kill -9 and a recovery."""
    assert got[:6] == BRACKET_EVENTS[:6]
    assert got[6:] == [
        ("canceled", 2, 10, "canceled"),
        ("replaced", 1, 10, None),
        ("trade", 1, 10, 11500),
    ]
    _recovers(eng, p, p + 2, got)


def test_a_replaced_take_profits_fill_ahead_of_its_replace_is_booked_once(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """A bracket's take-profit replaced at Alpaca, whose replacement fills before the
    PATCH's answer and the old leg's `replaced` event (Alpaca streams the replacement's
    updates under its own new id): the engine books the fill once, and the same after
    a kill -9 and a recovery. (The fill was lost: no trade, the position never
    closed.)"""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def run() -> tuple[int, list[tuple[Any, ...]]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _take_profit_replaced_unanswered(c, fake)
            fake.fill(sent.legs[0].id, "115", 10)  # the replacement; the stop is canceled
            await _events_until(
                c, lambda ev: ("canceled", 2) in [x[:2] for x in _shape(ev, p, p + 2)]
            )
            fake.send_replaced()
            fake.release()
            events = await _events_until(
                c, lambda ev: ("trade", 1, 10, 11500) in _shape(ev, p, p + 2)
            )
            return p, _shape(events, p, p + 2)

    p, got = asyncio.run(run())
    _booked_once_at_115(eng, p, got)


def test_a_take_profits_replace_answered_too_late_books_its_replacements_fill_once(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """A bracket's take-profit replaced at Alpaca, whose PATCH is carried out but
    answered after the adapter's read timeout (10 s), and whose replacement fills
    after that, before the old leg's `replaced` event: the engine books the fill once,
    at the new price, and the same after a kill -9 and a recovery. (The timeout ended
    the adapter's wait for the replacement: its fill was dropped, the position never
    closed.)"""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def timed_out() -> None:  # the engine logs the venue's REST going down
        async with asyncio.timeout(30):
            while "rest: unreachable: read timeout" not in eng.logs[-1].read_text():
                await asyncio.sleep(0.05)  # the adapter's read timeout is 10 s

    async def run() -> tuple[int, list[tuple[Any, ...]]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _take_profit_replaced_unanswered(c, fake)
            fake.stop_rest()  # nothing can be read at Alpaca until it is back
            await timed_out()
            fake.fill(sent.legs[0].id, "115", 10)  # the replacement; the stop is canceled
            await _events_until(
                c, lambda ev: ("canceled", 2) in [x[:2] for x in _shape(ev, p, p + 2)]
            )
            fake.send_replaced()
            fake.start_rest()
            fake.release()
            await _events_until(c, lambda ev: ("trade", 1, 10, 11500) in _shape(ev, p, p + 2))
            await _until_connected(eng)  # the monitor read Alpaca again meanwhile
            return p, _shape(await _events_until(c, lambda ev: True), p, p + 2)

    p, got = asyncio.run(run())
    _booked_once_at_115(eng, p, got)


@pytest.mark.parametrize(("offered", "lost_cancel"), [(11, False), (11, True), (10, False)])
def test_a_routed_take_profit_is_checked_against_max_position_on_release(
    engine_factory: Any, fake: FakeAlpaca, offered: int, lost_cancel: bool
) -> None:
    """alice offers `offered` lots under a limit of 20; the engine restarts with her
    max_position tightened to 10, and she places a bracket buy of 10. Its parent fills
    and its take-profit, a sell of 10, is released: with 11 offered it could take her
    to 11 short, so the engine cancels it (`max_position`, as the internal venue does
    on release) and has Alpaca cancel it, while its stop-loss goes on; with 10 offered
    it is released untouched and fills. The decision is journaled with the limit the
    legs were routed under: a restart under a looser one shows the same events. With
    `lost_cancel`, the engine's cancel of the take-profit fails and the engine is
    killed: the restarted one asks Alpaca again, and shows nothing twice."""
    breach = offered > 10

    def limit(lots: int) -> dict[str, Any]:
        return {"accounts": {"alice": {"max_position": lots}}}

    async def offer(c: EngineClient) -> int:
        r = await c.submit("alice", "GOOG", "sell", "limit", offered, price=20000)
        assert isinstance(r, wire.Ack) and r.order_id is not None
        return r.order_id

    async def scenario(c: EngineClient, offer_id: int) -> None:
        """What follows the parent's fill on the internal venue."""
        if breach:  # the stop-loss triggers (alice offers nothing more by then)
            await c.cancel("alice", offer_id)
            await c.submit("mm", "GOOG", "buy", "limit", 11, price=9000)
            await c.submit("mm2", "GOOG", "sell", "limit", 1, price=9000)
        else:  # the take-profit fills
            await c.submit("mm", "GOOG", "buy", "limit", 10, price=11000)

    internal: EngineProcess = engine_factory("internal", risk=limit(20))
    internal.start()

    async def offered_internally() -> int:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            return await offer(c)

    offer_id = asyncio.run(offered_internally())
    assert internal.stop() == 0
    internal.settings["risk"] = limit(10)
    internal.start()

    async def on_internal() -> list[tuple[Any, ...]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            r = await c.submit("alice", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            await c.submit("mm", "GOOG", "sell", "limit", 10, price=10000)
            await scenario(c, offer_id)
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            return _shape(await c.replay(1, ping.last_seq), r.order_id, r.order_id + 2)

    expected = asyncio.run(on_internal())
    assert internal.stop() == 0
    released = BRACKET_EVENTS[:6]
    if breach:
        assert expected == [
            *released[:5],
            ("canceled", 1, 10, "max_position"),
            released[5],
            ("triggered", 2, 9000),
            ("trade", 2, 10, 9000),
        ]
    else:
        assert expected == [*released, ("trade", 1, 10, 11000), ("canceled", 2, 10, "oco")]

    eng = _engine(engine_factory, fake, risk=limit(20))
    eng.start()

    async def offered_at_alpaca() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _connected(c)
            offer_id = await offer(c)
            # risk counts what alice offers once Alpaca has it
            await _events_until(c, lambda ev: bool(_shape(ev, offer_id, offer_id)))
            return offer_id

    offer_id = asyncio.run(offered_at_alpaca())
    assert eng.stop() == 0
    eng.settings["risk"] = limit(10)
    eng.start()

    async def released_at_alpaca() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _route(c, fake, "buy", "limit", 10, **BRACKET)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 3)
            if lost_cancel:  # the engine's cancel of the take-profit
                fake.fail_next(500, method="DELETE", path=f"/v2/orders/{sent.legs[0].id}")
            fake.fill(sent.id, "100", 10)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 7 - (not breach))
            return p

    p = asyncio.run(released_at_alpaca())
    sent = fake.order(f"tp-{p}")
    tp, sl = sent.legs
    if lost_cancel:
        path = f"/v2/orders/{tp.id}"
        fake.wait_until(lambda: ("DELETE", path) in [(m, q) for m, q, _ in fake.requests])
        assert tp.status == "new"  # the cancel failed (500)
        eng.kill()
        eng.start()  # recovers the decision, and asks again

    async def at_alpaca() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            if breach:
                fake.wait_until(lambda: tp.status == "canceled")  # the engine asked Alpaca
                assert [v.id for v in views.orders] == [offer_id, p + 2]
                assert isinstance(await c.cancel("alice", offer_id), wire.Ack)
                await _events_until(
                    c, lambda ev: any(isinstance(e, OrderCanceled) and e.id == offer_id for e in ev)
                )
                fake.fill(sl.id, "90", 10)
            else:
                assert [v.id for v in views.orders] == [offer_id, p + 1, p + 2]
                fake.fill(tp.id, "110", 10)  # still working at Alpaca
            events = await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == len(expected))
            assert _shape(events, p, p + 2) == expected
            deletes = [path for m, path, _ in fake.requests if m == "DELETE"]
            assert (f"/v2/orders/{tp.id}" in deletes) == breach
            return p

    p = asyncio.run(at_alpaca())
    eng.kill()
    eng.settings["risk"] = limit(1000)
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            assert _shape(await c.replay(1, ping.last_seq), p, p + 2) == expected
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [v.id for v in views.orders] == ([] if breach else [offer_id])

    asyncio.run(after())
    assert eng.stop() == 0


def test_a_routed_replace_past_the_risk_limits_never_reaches_alpaca(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """alice's order at Alpaca takes a raise within her limits, not past them (the
    same reasons as a replace in the internal book), and not a replace that changes
    nothing: a refused replace is a `Reject` and no PATCH, so the one that passes is
    Alpaca's only replacement of the order. A routed trailing stop's quantity is
    checked the same way."""
    limits = {"max_order_qty": 10, "max_position": 8}
    eng = _engine(engine_factory, fake, risk={"accounts": {"alice": limits}})
    eng.start()

    def accepted(ids: set[int]) -> Any:
        return lambda ev: {e.id for e in ev if isinstance(e, OrderAccepted)} >= ids

    async def at_alpaca() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            o, sent = await _route(c, fake, "buy", "limit", 5, price=10000)
            t, trailing = await _route(c, fake, "sell", "trailing_stop", 5, trail_price=200)
            await _events_until(c, accepted({o, t}))  # risk counts them from here
            for order_id, qty, reason in (
                (o, 11, "max_order_qty"),
                (o, 9, "max_position"),
                (t, 11, "max_order_qty"),
                (o, None, "bad_replace"),  # nothing to replace
                (t, None, "bad_replace"),
            ):
                r = await c.replace("alice", order_id, qty=qty)
                assert isinstance(r, wire.Reject) and r.reason == reason, r
            assert isinstance(await c.replace("alice", o, qty=8), wire.Ack)
            events = await _events_until(
                c, lambda ev: any(isinstance(e, OrderReplaced) and e.id == o for e in ev)
            )
            assert [(e.id, e.qty) for e in events if isinstance(e, OrderReplaced)] == [(o, 8)]
            replacement = fake.order(sent.id).replaced_by
            assert replacement is not None
            assert (fake.order(replacement).qty, fake.order(replacement).replaced_by) == (8, None)
            assert (fake.order(trailing.id).qty, fake.order(trailing.id).replaced_by) == (5, None)

    asyncio.run(at_alpaca())
    assert eng.stop() == 0


def test_a_routed_stop_limits_replace_is_not_banded(engine_factory: Any, fake: FakeAlpaca) -> None:
    """A stop-limit's limit is not held to the price band (it belongs to the market
    that triggers it, docs/risk.md), at submission nor when a replace raises its
    quantity or moves its limit at Alpaca: the band applied to the replace refused
    `price_band` a raise of the order it had let through. A limit order's replace
    stays banded."""
    eng = _engine(
        engine_factory,
        fake,
        risk={"accounts": {"alice": {"price_band_bps": 500}}},
        symbols=[{"name": "GOOG", "reference_price": 10000}, {"name": "AAPL"}],
    )
    eng.start()

    async def at_alpaca() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            s, _ = await _route(c, fake, "buy", "stop_limit", 5, price=12000, stop_price=11900)
            o, _ = await _route(c, fake, "buy", "limit", 5, price=10000)
            await _events_until(
                c, lambda ev: {e.id for e in ev if isinstance(e, OrderAccepted)} >= {s, o}
            )
            for change, replaced in (({"qty": 6}, 1), ({"price": 12100}, 2)):
                assert isinstance(await c.replace("alice", s, **change), wire.Ack)
                await _events_until(  # Alpaca took it
                    c,
                    lambda ev, n=replaced: (
                        sum(isinstance(e, OrderReplaced) and e.id == s for e in ev) == n
                    ),
                )
            r = await c.replace("alice", o, price=12000)
            assert isinstance(r, wire.Reject) and r.reason == "price_band", r

    asyncio.run(at_alpaca())
    assert eng.stop() == 0


# -- the early-update store past its bound: the venue degraded ----------------------------------


def _degraded_count(eng: EngineProcess) -> float | None:
    """`tickplane_engine_venue_degraded_total{reason="early_updates_max"}`."""
    with urllib.request.urlopen(eng.http + "/metrics") as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith('tickplane_engine_venue_degraded_total{reason="early_updates_max"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _until_status(eng: EngineProcess, key: str, value: Any) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while (status := _status(eng))[key] != value:
            await asyncio.sleep(0.02)  # the venue reports through the loop
    return status


def test_the_early_update_bound_reached_shows_as_degraded_until_the_store_keeps_again(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """`venue.early_updates_max` reaches the adapter: with 5, a bracket's submit left
    unanswered while 6 updates of other programs' legs stream past, the store drops
    what it kept and the venue says so: `/status` shows `degraded`
    `early_updates_max` and the counter counts it once; once the answer names the
    bracket's legs the store keeps updates again and `degraded` clears (the count
    stays). (The cap was the adapter's default, 10,000, and reaching it showed only
    in the log.)"""
    eng = _engine(engine_factory, fake)
    eng.settings["venue"]["early_updates_max"] = 5
    eng.start()

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _connected(c)
            assert _status(eng)["degraded"] is None and _degraded_count(eng) == 0
            # the probe's submit and cancel reached Alpaca: the next POST is the bracket's
            fake.wait_until(lambda: any(m == "DELETE" for m, _, _ in fake.requests))
            fake.hang_next(1, method="POST")  # the bracket's submit: no answer until released
            r = await c.submit("alice", "GOOG", "buy", "limit", 10, **BRACKET)
            assert isinstance(r, wire.Ack)
            fake.wait_until(lambda: fake.hung == 1)
            for n in range(6):  # kept while the bracket may claim them; the sixth is one too many
                fake.stream("new", _their_leg(n))
            status = await _until_status(eng, "degraded", "early_updates_max")
            assert status["connected"] is True  # degraded, not unreachable
            assert "early_updates_max (5)" in status["detail"]
            assert _degraded_count(eng) == 1
            fake.release()
            status = await _until_status(eng, "degraded", None)
            assert "kept again" in status["detail"] and status["connected"] is True
            assert _degraded_count(eng) == 1
            await _events_until(c, lambda evs: any(isinstance(e, OrderAccepted) for e in evs))

    asyncio.run(body())


def _their_leg(n: int) -> Any:
    """A leg of another program's bracket in the same account, on a symbol of ours."""
    o = FakeOrder(f"their-leg-{n}", f"theirs-{n}", "GOOG", "sell", "limit", 1, "gtc", None, None)
    o.limit_price, o.order_class = Decimal(120), "bracket"
    return o


# -- Alpaca going down after connecting: the `unreachable` policy ------------------------------


def _status(eng: EngineProcess) -> dict[str, Any]:
    with urllib.request.urlopen(eng.http + "/status") as resp:
        venue: dict[str, Any] = json.loads(resp.read())["venue"]
    return venue


async def _until_connected(eng: EngineProcess, connected: bool = True) -> None:
    """Wait until the engine's /status says the venue is (or is not) connected."""
    async with asyncio.timeout(20):
        while _status(eng)["connected"] is not connected:
            await asyncio.sleep(0.02)  # the adapter (re)connects in the background


def _fallback_metrics(eng: EngineProcess) -> dict[str, float]:
    """The fallback counter by `when`, and the fallback gauge (by its policy label)."""
    with urllib.request.urlopen(eng.http + "/metrics") as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tickplane_engine_venue_fallback_"):
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix("tickplane_engine_venue_fallback_")] = float(value)
    return out


def _ids_events(events: list[Any], order_id: int) -> list[str]:
    """The names of the events about one order (a trade: its side of it)."""
    out = []
    for e in events:
        if isinstance(e, Trade) and order_id in (e.taker, e.maker):
            out.append("Trade")
        elif getattr(e, "id", None) == order_id and not isinstance(e, Trade):
            out.append(type(e).__name__)
    return out


def test_alpaca_down_after_connecting_falls_back_under_internal(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    eng = _engine(engine_factory, fake)
    eng.settings["venue"]["unreachable"] = "internal"
    eng.start()
    ids: dict[str, int] = {}

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _until_connected(eng)
            fake.wait_until(lambda: fake.listeners == 1)
            assert _status(eng)["unreachable"] == "internal"
            assert _status(eng)["fallback_active"] is False
            # placed at Alpaca before the outage
            a = await c.submit("alice", "GOOG", "buy", "limit", 10, price=10000)
            assert isinstance(a, wire.Ack) and a.order_id is not None
            ids["a"] = a.order_id
            fake.wait_order(f"tp-{a.order_id}")
            await _events_until(c, lambda evs: "OrderAccepted" in _ids_events(evs, a.order_id))
            # REST goes away, the stream stays: the engine still routes, and the
            # submit's connection is refused, so the order never left: matched here
            fake.stop_rest()
            b = await c.submit("alice", "GOOG", "sell", "limit", 5, price=10100)
            assert isinstance(b, wire.Ack) and b.order_id is not None
            assert b.events == []  # routed: pending
            ids["b"] = b.order_id
            evs = await _events_until(c, lambda evs: _ids_events(evs, b.order_id))
            assert _ids_events(evs, b.order_id) == ["OrderAccepted"]
            status = _status(eng)
            assert (status["connected"], status["fallback_active"]) == (False, True)
            assert status["fallback_orders"] == {"new": 0, "in_flight": 1}
            # now known unreachable: a new order is matched here at once, against b
            n = await c.submit("bob", "GOOG", "buy", "limit", 3, price=10100)
            assert isinstance(n, wire.Ack) and n.order_id is not None
            trades = [x for x in n.events if isinstance(x, Trade)]
            assert [(t.maker, t.taker, t.qty) for t in trades] == [(b.order_id, n.order_id, 3)]
            assert _status(eng)["fallback_orders"] == {"new": 1, "in_flight": 1}
            view = await c.get_order("alice", b.order_id)
            assert isinstance(view, wire.Ack) and view.order is not None
            assert (view.order.status, view.order.qty) == ("resting", 2)

            # the whole of Alpaca goes away; a fill happens there meanwhile
            fake.stop()
            fake.fill(f"tp-{a.order_id}", "100.00", 4)
            fake.start()
            await _until_connected(eng)
            assert _status(eng)["fallback_active"] is False
            # the order placed before the outage is followed again: the missed fill
            evs = await _events_until(c, lambda evs: "Trade" in _ids_events(evs, a.order_id))
            fill = [x for x in evs if isinstance(x, Trade) and x.taker == a.order_id]
            assert [(t.qty, t.price) for t in fill] == [(4, 10000)]
            # and new orders route to Alpaca again
            d = await c.submit("alice", "GOOG", "buy", "limit", 1, price=9900)
            assert isinstance(d, wire.Ack) and d.order_id is not None and d.events == []
            fake.wait_order(f"tp-{d.order_id}")
            ids["d"] = d.order_id
            # a 5xx: the order may have reached Alpaca, so it is rejected, never
            # matched here too (the adapter's tests show one found there canceled)
            fake.fail_next(503, method="POST", path="/v2/orders")
            e = await c.submit("alice", "GOOG", "buy", "limit", 1, price=9000)
            assert isinstance(e, wire.Ack) and e.order_id is not None and e.events == []
            evs = await _events_until(c, lambda evs: _ids_events(evs, e.order_id))
            assert _ids_events(evs, e.order_id) == ["OrderRejected"]
            rejected = [x for x in evs if isinstance(x, OrderRejected) and x.id == e.order_id]
            assert [x.reason for x in rejected] == ["venue_unavailable"]
            await _until_connected(eng)  # the probe finds REST answering again

    asyncio.run(body())
    assert _fallback_metrics(eng) == {
        'orders_total{when="new"}': 1.0,
        'orders_total{when="in_flight"}': 1.0,
        'active{unreachable="internal"}': 0.0,
    }
    # never both: the fallen-back order never reached Alpaca
    assert not any(o.client_order_id == f"tp-{ids['b']}" for o in fake.orders.values())
    before = asyncio.run(_all_events(eng))
    eng.kill()  # the fallen-back order comes back as an internal one
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            assert await c.replay(1, ping.last_seq) == before
            view = await c.get_order("alice", ids["b"])
            assert isinstance(view, wire.Ack) and view.order is not None
            assert (view.order.status, view.order.qty) == ("resting", 2)
            await _until_connected(eng)
            canceled = await c.cancel("alice", ids["b"])  # the book's: canceled at once
            assert isinstance(canceled, wire.Ack)
            assert [type(x).__name__ for x in canceled.events] == ["OrderCanceled"]
            # the orders at Alpaca are resumed there; the fallen-back one is not sent
            pending = await c.cancel("alice", ids["d"])
            assert isinstance(pending, wire.Ack) and pending.events == []  # Alpaca's to do
            fake.wait_until(lambda: fake.order(f"tp-{ids['d']}").status == "canceled")
            assert not any(o.client_order_id == f"tp-{ids['b']}" for o in fake.orders.values())

    asyncio.run(after())
    assert eng.stop() == 0


async def _all_events(eng: EngineProcess) -> list[Any]:
    async with EngineClient(eng.order_entry, timeout=10) as c:
        ping = await c.ping()
        assert isinstance(ping, wire.Ack)
        return await c.replay(1, ping.last_seq)


def test_alpaca_down_after_connecting_rejects_under_reject(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    eng = _engine(engine_factory, fake)
    eng.start()

    async def body() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            await _until_connected(eng)
            fake.wait_until(lambda: fake.listeners == 1)
            fake.stop_rest()
            b = await c.submit("alice", "GOOG", "sell", "limit", 5, price=10100)
            assert isinstance(b, wire.Ack) and b.order_id is not None and b.events == []
            evs = await _events_until(c, lambda evs: _ids_events(evs, b.order_id))
            rejected = [x for x in evs if isinstance(x, OrderRejected) and x.id == b.order_id]
            assert [x.reason for x in rejected] == ["venue_unavailable"]
            assert _ids_events(evs, b.order_id) == ["OrderRejected"]
            n = await c.submit("bob", "GOOG", "buy", "limit", 3, price=10100)
            assert isinstance(n, wire.Reject) and n.reason == "venue_unavailable"
            status = _status(eng)
            assert (status["unreachable"], status["fallback_active"]) == ("reject", False)
            assert status["fallback_orders"] == {"new": 0, "in_flight": 0}
            fake.start_rest()
            await _until_connected(eng)
            d = await c.submit("alice", "GOOG", "buy", "limit", 1, price=9900)
            assert isinstance(d, wire.Ack) and d.order_id is not None and d.events == []
            fake.wait_order(f"tp-{d.order_id}")

    asyncio.run(body())
    assert _fallback_metrics(eng) == {
        'orders_total{when="new"}': 0.0,
        'orders_total{when="in_flight"}': 0.0,
        'active{unreachable="reject"}': 0.0,
    }


def test_a_legs_replace_past_the_band_or_across_its_sibling_never_reaches_alpaca(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """A bracket's take-profit moved out of the price band, or its stop-loss moved onto
    the take-profit's side, is refused with the same reason and message on both
    venues; at Alpaca no PATCH goes out, so its legs stay as they were routed, and a
    move within the rules is Alpaca's only replacement of them."""
    settings = dict(
        symbols=[{"name": "GOOG", "reference_price": 10000}, {"name": "AAPL"}],
        risk={"accounts": {"alice": {"price_band_bps": 500}}},
    )
    bad = (
        (1, dict(price=10600), "price_band"),  # 6% above the reference of 100.00
        (2, dict(stop_price=11000), "bad_legs"),  # onto the take-profit (110.00)
    )

    async def refusals(c: EngineClient, p: int) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for leg, fields, reason in bad:
            r = await c.replace("alice", p + leg, **fields)
            assert isinstance(r, wire.Reject) and r.reason == reason, r
            out.append((r.reason, r.message))
        return out

    bracket = dict(BRACKET, take_profit=wire.TakeProfit(10400))
    internal: EngineProcess = engine_factory("internal", **settings)
    internal.start()

    async def on_internal() -> list[tuple[str, str]]:
        async with EngineClient(internal.order_entry, timeout=10) as c:
            r = await c.submit("alice", "GOOG", "buy", "limit", 10, **bracket)
            assert isinstance(r, wire.Ack) and r.order_id is not None
            return await refusals(c, r.order_id)

    expected = asyncio.run(on_internal())
    assert internal.stop() == 0

    eng = _engine(engine_factory, fake, **settings)
    eng.start()

    async def at_alpaca() -> list[tuple[str, str]]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _route(c, fake, "buy", "limit", 10, **bracket)
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 3)
            got = await refusals(c, p)
            tp, sl = sent.legs
            assert (tp.limit_price, sl.stop_price) == (Decimal(104), Decimal(90))
            assert (tp.replaced_by, sl.replaced_by) == (None, None)
            r = await c.replace("alice", p + 2, stop_price=9500)
            assert isinstance(r, wire.Ack), r
            await _events_until(c, lambda ev: len(_shape(ev, p, p + 2)) == 4)
            tp, sl = sent.legs
            assert (tp.limit_price, sl.stop_price) == (Decimal(104), Decimal(95))
            assert (tp.replaces, sl.replaces is not None) == (None, True)
            return got

    assert asyncio.run(at_alpaca()) == expected
    assert eng.stop() == 0


def _ended(v: wire.OrderView) -> tuple[Any, ...]:
    """How a finished order ended: status, reason, lots filled, their average price."""
    return v.status, v.reason, v.filled_qty, v.avg_fill_price


async def _held_submit(
    eng: EngineProcess, c: EngineClient, fake: FakeAlpaca, order_type: str, qty: int, **order: Any
) -> int:
    """Once the engine routes and its stream listens: alice's GOOG buy, its submit held
    at the fake (no answer yet); its id."""
    await _until_connected(eng)
    fake.wait_until(lambda: fake.listeners == 1)
    fake.hang_next(1)
    r = await c.submit("alice", "GOOG", "buy", order_type, qty, **order)
    assert isinstance(r, wire.Ack) and r.order_id is not None and r.events == []
    fake.wait_until(lambda: fake.hung == 1 and fake.requests[-1][:2] == ("POST", "/v2/orders"))
    return r.order_id


def _taken_but_503(fake: FakeAlpaca) -> None:
    """The held submit is carried out at Alpaca (a market order filled there) but
    answered 503, with the stream down: the engine hears of it only through REST, after
    it rejected it as maybe placed."""
    fake.stop_stream()
    fake.fail_next(503, apply=True, method="POST", path="/v2/orders")
    fake.release()


def test_an_order_whose_submit_died_with_the_engine_is_rejected_after_a_restart(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Routed, then the engine is killed before Alpaca answered, and the request never
    reached it: the restarted engine does not leave the order open for ever, nor match
    it here (the old request could still land): it is rejected."""
    eng = _engine(engine_factory, fake)
    eng.settings["venue"]["unreachable"] = "internal"
    eng.start()

    async def body() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            return await _held_submit(eng, c, fake, "limit", 5, price=10000)

    order_id = asyncio.run(body())
    eng.kill()
    fake.stop()  # the hanging request is dropped, never carried out
    fake.start()
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda evs: _ids_events(evs, order_id))
            assert _ids_events(evs, order_id) == ["OrderRejected"]
            assert [e.reason for e in evs if isinstance(e, OrderRejected)] == ["venue_unavailable"]
            gone = await c.get_order("alice", order_id)  # finished: rejected, not open
            assert isinstance(gone, wire.Ack) and gone.order is not None
            assert (gone.order.status, gone.order.reason) == ("rejected", "venue_unavailable")

    asyncio.run(after())
    assert not any(o.client_order_id == f"tp-{order_id}" for o in fake.orders.values())
    assert _status(eng)["routed_orders"] == 0
    assert eng.stop() == 0


def test_a_fill_of_an_order_rejected_after_a_5xx_is_booked_and_survives_a_kill_9(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Alpaca took alice's market buy and filled it at once, but answered the submit
    with a 503 (and the stream that would have said so was down): the engine rejected
    the order (venue_unavailable: it may be there), and the fill reconciliation finds
    is a real execution, booked as a late fill: its Trade, alice's position and cash,
    the order staying rejected. The same after a kill -9 and a recovery."""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def body() -> tuple[int, wire.AccountView]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            fake.trade("GOOG", "101.00")  # a market order fills there at once
            oid = await _held_submit(eng, c, fake, "market", 10, tif="day")
            _taken_but_503(fake)
            evs = await _events_until(c, lambda evs: "Trade" in _ids_events(evs, oid))
            assert fake.order(f"tp-{oid}").status == "filled"
            assert _ids_events(evs, oid) == ["OrderRejected", "Trade"]
            rejected = [e for e in evs if isinstance(e, OrderRejected) and e.id == oid]
            assert [e.reason for e in rejected] == ["venue_unavailable"]
            (trade,) = [e for e in evs if isinstance(e, Trade) and e.taker == oid]
            assert (trade.qty, trade.price, trade.taker_side, trade.taker_account) == (
                10,
                10100,
                "buy",
                "alice",
            )
            assert trade.maker_account == "venue:alpaca"
            pos = [e for e in evs if isinstance(e, PositionChanged) and e.account == "alice"]
            assert (pos[-1].position, pos[-1].cost_basis) == (10, 101_000)
            got = await c.get_account("alice")
            assert isinstance(got, wire.Ack) and got.account is not None
            assert [(p.symbol, p.qty) for p in got.account.positions] == [("GOOG", 10)]
            assert got.account.cash == pos[-1].cash
            gone = await c.get_order("alice", oid)  # rejected it stays, filled 10
            assert isinstance(gone, wire.Ack) and gone.order is not None
            assert _ended(gone.order) == ("rejected", "venue_unavailable", 10, 10100.0)
            fake.start_stream()
            await _until_connected(eng)
            return oid, got.account

    oid, account = asyncio.run(body())
    assert _status(eng)["routed_orders"] == 0
    before = asyncio.run(_all_events(eng))
    eng.kill()
    eng.start()
    assert asyncio.run(_all_events(eng)) == before

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            got = await c.get_account("alice")
            assert isinstance(got, wire.Ack) and got.account == account
            gone = await c.get_order("alice", oid)
            assert isinstance(gone, wire.Ack) and gone.order is not None
            assert _ended(gone.order) == ("rejected", "venue_unavailable", 10, 10100.0)

    asyncio.run(after())
    assert eng.stop() == 0


def _orphaned_then_killed(eng: EngineProcess, fake: FakeAlpaca, **order: Any) -> int:
    """alice's limit buy of 10 (`order`: its price or bracket) that Alpaca takes but
    answers 503, rejected for her; every look-up of it fails until the engine is
    killed (-9), after its first. Returns its id."""

    async def body() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            oid = await _held_submit(eng, c, fake, "limit", 10, **order)
            fake.fail_next(503, 100_000, method="GET", path="/v2/orders:by_client_order_id")
            _taken_but_503(fake)
            evs = await _events_until(c, lambda evs: _ids_events(evs, oid))
            assert _ids_events(evs, oid) == ["OrderRejected"]
            fake.wait_until(
                lambda: ("GET", "/v2/orders:by_client_order_id") in {r[:2] for r in fake.requests}
            )
            return oid

    oid = asyncio.run(body())
    eng.kill()
    return oid


def test_an_orphan_still_watched_at_a_kill_9_is_watched_again_after_the_restart(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Alpaca took alice's buy of 10 but answered 503, and could not be asked about it
    before the engine was killed; meanwhile it filled 3 there. The restarted engine
    looks for the rejected order again: the 3 lots are booked as a late fill, and the
    rest is canceled at Alpaca."""
    eng = _engine(engine_factory, fake)
    eng.start()
    oid = _orphaned_then_killed(eng, fake, price=10000)
    fake.clear_failures()
    fake.fill(f"tp-{oid}", "99.50", 3)
    fake.start_stream()
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda evs: "Trade" in _ids_events(evs, oid))
            assert _ids_events(evs, oid) == ["OrderRejected", "Trade"]
            (trade,) = [e for e in evs if isinstance(e, Trade) and e.taker == oid]
            assert (trade.qty, trade.price, trade.taker_account) == (3, 9950, "alice")
            fake.wait_until(lambda: fake.order(f"tp-{oid}").status == "canceled")
            got = await c.get_account("alice")
            assert isinstance(got, wire.Ack) and got.account is not None
            assert [(p.symbol, p.qty) for p in got.account.positions] == [("GOOG", 3)]

    asyncio.run(after())
    assert eng.stop() == 0


def test_an_orphaned_brackets_legs_are_booked_and_canceled_after_a_kill_9(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Alpaca took alice's bracket but answered 503, and could not be asked about it
    before the engine was killed; meanwhile its entry filled 10 there and its
    take-profit 3. The restarted engine hands the bracket back with its legs: both
    fills are booked as late fills under their own ids (alice long 7), the legs still
    working at Alpaca are canceled, and no order of the group is open anywhere."""
    eng = _engine(engine_factory, fake)
    eng.start()
    p = _orphaned_then_killed(eng, fake, **BRACKET)
    fake.clear_failures()
    parent = fake.order(f"tp-{p}")
    tp, sl = parent.legs
    fake.fill(parent.id, "100.00", 10)  # the entry is in: its exits work
    fake.fill(tp.id, "110.00", 3)
    fake.start_stream()
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda evs: "Trade" in _ids_events(evs, p + 1))
            assert _ids_events(evs, p) == ["OrderRejected", "Trade"]
            assert _ids_events(evs, p + 1) == ["Trade"]
            assert _ids_events(evs, p + 2) == []
            trades = [e for e in evs if isinstance(e, Trade) and e.taker in (p, p + 1)]
            assert [(t.taker, t.qty, t.price, t.taker_side, t.taker_account) for t in trades] == [
                (p, 10, 10000, "buy", "alice"),
                (p + 1, 3, 11000, "sell", "alice"),
            ]
            fake.wait_until(lambda: tp.status == sl.status == "canceled")
            got = await c.get_account("alice")
            assert isinstance(got, wire.Ack) and got.account is not None
            assert [(x.symbol, x.qty) for x in got.account.positions] == [("GOOG", 7)]
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders == []

    asyncio.run(after())
    assert eng.stop() == 0


# Fills missed while the engine was down (docs/venues.md, "Nothing lost, nothing
# doubled"): the restarted engine hands each order back with the lots it booked and
# what they cost, so a missed fill is booked at what it cost, not at Alpaca's average.


def _trades(events: list[Any], order_id: int) -> list[tuple[int, int]]:
    """(qty, price) of each trade of order `order_id`."""
    return [(e.qty, e.price) for e in events if isinstance(e, Trade) and e.taker == order_id]


def _alices(events: list[Any]) -> tuple[int, int]:
    """alice's last position and its cost basis."""
    pos = [e for e in events if isinstance(e, PositionChanged) and e.account == "alice"]
    return pos[-1].position, pos[-1].cost_basis


async def _partly_filled(
    c: EngineClient, fake: FakeAlpaca, qty: int, price: int, at: str, filled: int
) -> tuple[int, FakeOrder]:
    """Once the engine routes: alice's limit buy of `qty` at `price` ticks, accepted,
    then `filled` lots filled at `at` at Alpaca and booked; its id, and the order as
    Alpaca got it."""
    oid, sent = await _route(c, fake, "buy", "limit", qty, price=price)
    await _events_until(c, lambda ev: "OrderAccepted" in _ids_events(ev, oid))
    fake.fill(sent.id, at, filled)
    await _events_until(c, lambda ev: len(_trades(ev, oid)) == 1)
    return oid, sent


@pytest.mark.parametrize("snapshot_every", [0, 1])
def test_a_fill_missed_while_the_engine_was_down_is_booked_at_its_own_price(
    engine_factory: Any, fake: FakeAlpaca, snapshot_every: int
) -> None:
    """alice's buy of 200 at 11.00 fills 100 at 10.00, booked; the engine is killed and
    the other 100 fill at 11.00 meanwhile (Alpaca's average: 10.50). The restarted
    engine (from the journal, or from a snapshot taken after every record) books the
    missed 100 at 11.00 (it booked them at the 10.50 average, for a cost basis of
    2,075.00 instead of 2,100.00); the same after another kill -9 and a recovery."""
    eng = _engine(engine_factory, fake, snapshot_every=snapshot_every)
    eng.start()

    async def first() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            oid, _ = await _partly_filled(c, fake, 200, 1100, "10.00", 100)
            return oid

    oid = asyncio.run(first())
    eng.kill()
    fake.fill(f"tp-{oid}", "11.00", 100)  # nobody listens
    assert Decimal(fake.order(f"tp-{oid}").to_json()["filled_avg_price"]) == Decimal("10.5")
    eng.start()

    async def second() -> list[Any]:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda ev: len(_trades(ev, oid)) == 2)
            assert _trades(evs, oid) == [(100, 1000), (100, 1100)]
            assert _alices(evs) == (200, 210_000)
            got = await c.get_order("alice", oid)
            assert isinstance(got, wire.Ack) and got.order is not None
            assert (got.order.status, got.order.filled_qty) == ("filled", 200)
            assert got.order.avg_fill_price == 1050.0  # Alpaca's average, as it should
            return evs

    before = asyncio.run(second())
    eng.kill()
    eng.start()
    assert asyncio.run(_all_events(eng)) == before
    assert eng.stop() == 0


def test_a_replaced_orders_missed_fill_is_booked_at_its_own_price(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """alice's buy of 10 at 100.00 fills 4 at 100.00, is replaced at 101.00 (a new
    Alpaca order for the 6 left), which fills 2 at 101.00: all booked. The engine is
    killed and the new order fills 3 at 100.50 meanwhile. The restarted engine counts
    the 6 booked lots against the replaced order (4, at its own average) and the new
    one (2, at what remains of what they cost), and books the missed 3 at 100.50 (it
    booked them at the new order's average, 100.70)."""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def first() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            oid, sent = await _partly_filled(c, fake, 10, 10000, "100.00", 4)
            assert isinstance(await c.replace("alice", oid, price=10100), wire.Ack)
            await _events_until(c, lambda ev: "OrderReplaced" in _ids_events(ev, oid))
            assert sent.status == "replaced" and sent.replaced_by is not None
            fake.fill(sent.replaced_by, "101.00", 2)
            evs = await _events_until(c, lambda ev: len(_trades(ev, oid)) == 2)
            assert _trades(evs, oid) == [(4, 10000), (2, 10100)]
            return oid

    oid = asyncio.run(first())
    eng.kill()
    new = fake.order(f"tp-{oid}").replaced_by
    assert new is not None
    fake.fill(new, "100.50", 3)  # nobody listens
    assert Decimal(fake.order(new).to_json()["filled_avg_price"]) == Decimal("100.7")
    eng.start()

    async def second() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda ev: len(_trades(ev, oid)) == 3)
            assert _trades(evs, oid) == [(4, 10000), (2, 10100), (3, 10050)]
            assert _alices(evs) == (9, 4 * 10000 + 2 * 10100 + 3 * 10050)
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [(v.id, v.qty) for v in views.orders] == [(oid, 1)]

    asyncio.run(second())
    assert eng.stop() == 0


def test_a_bracket_legs_missed_fill_is_booked_at_its_own_price(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """A bracket's entry fills 10 at 100.00 and its take-profit 4 at 110.00, booked;
    the engine is killed and the take-profit fills 3 at 112.00 meanwhile (Alpaca's
    average 110.857142...). The restarted engine hands the group back, the take-profit
    with what its 4 lots cost, and books the missed 3 at 112.00 (it booked them at the
    average's nearest tick, 110.86)."""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def first() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            p, sent = await _bracket_entered(c, fake)
            fake.fill(sent.legs[0].id, "110.00", 4)
            evs = await _events_until(c, lambda ev: len(_trades(ev, p + 1)) == 1)
            assert _trades(evs, p + 1) == [(4, 11000)]
            return p

    p = asyncio.run(first())
    eng.kill()
    tp, _ = fake.order(f"tp-{p}").legs
    fake.fill(tp.id, "112.00", 3)  # nobody listens
    eng.start()

    async def second() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda ev: len(_trades(ev, p + 1)) == 2)
            assert _trades(evs, p + 1) == [(4, 11000), (3, 11200)]
            assert _alices(evs) == (3, 3 * 10000)
            alices = [e for e in evs if isinstance(e, PositionChanged) and e.account == "alice"]
            assert alices[-1].realized_pnl == 4 * 1000 + 3 * 1200
            views = await c.list_orders("alice")
            assert isinstance(views, wire.Ack) and views.orders is not None
            assert [(v.id, v.qty) for v in views.orders] == [(p + 1, 3), (p + 2, 3)]

    asyncio.run(second())
    assert eng.stop() == 0


def test_an_orphans_fill_missed_while_the_engine_was_down_is_booked_at_its_own_price(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """Alpaca took alice's buy of 10 at 100.00 but answered 503: rejected for her, an
    orphan. It fills 3 at 99.00 there, booked as a late fill, and its cancel is refused
    until the engine is killed; 3 more fill at 100.00 meanwhile (Alpaca's average
    99.50). The restarted engine watches the orphan again with what its 3 booked lots
    cost, books the missed 3 at 100.00 (it booked them at 99.50), and cancels the rest."""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def body() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            oid = await _held_submit(eng, c, fake, "limit", 10, price=10000)
            fake.fail_next(422, 100_000, "order is not cancelable", method="DELETE")
            _taken_but_503(fake)
            fake.wait_order(f"tp-{oid}")
            fake.fill(f"tp-{oid}", "99.00", 3)
            evs = await _events_until(c, lambda ev: "Trade" in _ids_events(ev, oid))
            assert _ids_events(evs, oid) == ["OrderRejected", "Trade"]
            assert _trades(evs, oid) == [(3, 9900)]
            return oid

    oid = asyncio.run(body())
    eng.kill()
    assert fake.order(f"tp-{oid}").status == "partially_filled"  # its cancels refused
    fake.fill(f"tp-{oid}", "100.00", 3)  # nobody listens
    fake.clear_failures()
    fake.start_stream()
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda ev: len(_trades(ev, oid)) == 2)
            assert _trades(evs, oid) == [(3, 9900), (3, 10000)]
            assert _alices(evs) == (6, 3 * 9900 + 3 * 10000)
            fake.wait_until(lambda: fake.order(f"tp-{oid}").status == "canceled")
            gone = await c.get_order("alice", oid)
            assert isinstance(gone, wire.Ack) and gone.order is not None
            assert _ended(gone.order) == ("rejected", "venue_unavailable", 6, 9950.0)

    asyncio.run(after())
    assert eng.stop() == 0


def test_an_order_not_found_at_alpaca_after_a_restart_books_its_late_fills_at_their_price(
    engine_factory: Any, fake: FakeAlpaca
) -> None:
    """alice's buy of 10 at 101.00 fills 4 at 100.00, booked; the engine is killed and 3
    more fill at 101.00 meanwhile (Alpaca's average 100.43). The restarted engine's look-up
    of the order answers 404 (`_never_arrived`): it is rejected `venue_unavailable` and
    watched as an orphan, with what its 4 booked lots cost (`HandBack.notional`). When
    it shows up at Alpaca, the 3 lots beyond them are booked at 101.00 (valuing the 4
    at Alpaca's average books them at 100.43), and the rest is canceled there."""
    eng = _engine(engine_factory, fake)
    eng.start()

    async def first() -> int:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            oid, _ = await _partly_filled(c, fake, 10, 10100, "100.00", 4)
            return oid

    oid = asyncio.run(first())
    eng.kill()
    fake.fill(f"tp-{oid}", "101.00", 3)  # nobody listens
    assert Decimal(fake.order(f"tp-{oid}").to_json()["filled_avg_price"]).quantize(
        Decimal("0.01")
    ) == Decimal("100.43")
    fake.fail_next(404, 1, "order not found", method="GET", path="/v2/orders:by_client_order_id")
    eng.start()

    async def second() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            evs = await _events_until(c, lambda ev: len(_trades(ev, oid)) == 2)
            assert _ids_events(evs, oid) == ["OrderAccepted", "Trade", "OrderRejected", "Trade"]
            (rejected,) = [e for e in evs if isinstance(e, OrderRejected) and e.id == oid]
            assert rejected.reason == "venue_unavailable"
            assert _trades(evs, oid) == [(4, 10000), (3, 10100)]
            assert _alices(evs) == (7, 4 * 10000 + 3 * 10100)
            fake.wait_until(lambda: fake.order(f"tp-{oid}").status == "canceled")
            got = await c.get_order("alice", oid)
            assert isinstance(got, wire.Ack) and got.order is not None
            assert _ended(got.order)[:3] == ("rejected", "venue_unavailable", 7)

    asyncio.run(second())
    assert eng.stop() == 0
