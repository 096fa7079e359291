"""An engine whose venue is Alpaca: orders go to a local server speaking Alpaca's
protocol through the real alpaca-py, fills come back as the engine's own events, and
all of it survives a kill -9."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import (
    OrderAccepted,
    OrderCanceled,
    PositionChanged,
    Trade,
)

from .conftest import EngineProcess
from .fake_alpaca import FakeAlpaca


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
        },
        **extra,
    )
    return eng


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

    asyncio.run(body())
    eng.kill()  # no snapshot: recovery replays the routing and the venue's reports
    eng.start()

    async def after() -> None:
        async with EngineClient(eng.order_entry, timeout=10) as c:
            ping = await c.ping()
            assert isinstance(ping, wire.Ack)
            events = await c.replay(1, ping.last_seq)
            assert [type(e).__name__ for e in events][:2] == ["OrderAccepted", "Trade"]
            assert isinstance(events[-1], OrderCanceled)

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
        async with EngineClient(falling_back.order_entry, timeout=10) as c:
            r = await c.submit("a", "GOOG", "buy", "limit", 1, price=100)
            assert isinstance(r, wire.Ack) and isinstance(r.events[0], OrderAccepted)

    asyncio.run(body())
    with urllib.request.urlopen(rejecting.http + "/status") as resp:
        status = json.loads(resp.read())
    assert status["venue"]["kind"] == "alpaca" and status["venue"]["connected"] is False
    with urllib.request.urlopen(rejecting.http + "/metrics") as resp:
        assert "tickplane_engine_venue_connected 0.0" in resp.read().decode()
    assert rejecting.stop() == 0
    assert falling_back.stop() == 0
