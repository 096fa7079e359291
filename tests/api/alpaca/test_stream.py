"""alpaca-py's TradingStream against the gateway's `/stream`: trade_updates."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce, TradeEvent
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import (
    LimitOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream

from .conftest import Gateway, Trader
from .test_orders import limit

WAIT = 10.0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # another thread's progress: polled with a deadline


class Listener:
    """A TradingStream running in its own thread, its updates in a queue."""

    def __init__(self, gateway: Gateway, trader: Trader) -> None:
        self.updates: queue.Queue[TradeUpdate] = queue.Queue()
        self.stream = TradingStream(trader.key_id, trader.secret, url_override=gateway.stream_url)
        self.stream.subscribe_trade_updates(self._handle)
        projection = gateway.app.state.projection
        before = projection.subscribers
        self.thread = threading.Thread(target=self.stream.run, daemon=True)
        self.thread.start()
        # The gateway subscribes before it answers `listen`: from then on, nothing is lost.
        _wait_until(lambda: projection.subscribers > before, "the stream to listen")

    async def _handle(self, update: TradeUpdate) -> None:
        self.updates.put(update)

    def next(self) -> TradeUpdate:
        return self.updates.get(timeout=WAIT)

    def stop(self) -> None:
        stop_stream(self.stream, self.thread)


def stop_stream(stream: TradingStream | Any, thread: threading.Thread) -> None:
    """Stop an alpaca-py stream (trading or data) running in `thread`."""
    stream.stop()
    # Closing the socket wakes the client's receive loop at once (it otherwise notices
    # the stop only at its next 5 s receive timeout).
    loop = stream._loop
    assert loop is not None
    asyncio.run_coroutine_threadsafe(stream.close(), loop).result(WAIT)
    thread.join(WAIT)
    assert not thread.is_alive()


@pytest.fixture
def listener(gateway: Gateway, trader: Trader) -> Iterator[Listener]:
    listening = Listener(gateway, trader)
    yield listening
    listening.stop()


def test_trade_updates_follow_an_order(listener: Listener, trader: Trader, other: Trader) -> None:
    order = trader.client.submit_order(limit("GOOG", "buy", 10, 95.00))
    new = listener.next()
    assert (new.event, new.order.id, new.order.status) == (TradeEvent.NEW, order.id, "new")

    trader.client.replace_order_by_id(order.id, ReplaceOrderRequest(qty=6))
    replaced = listener.next()
    assert (replaced.event, replaced.order.qty) == (TradeEvent.REPLACED, "6")

    other.client.submit_order(limit("GOOG", "sell", 4, 95.00))  # crosses ours
    partial = listener.next()
    assert partial.event == TradeEvent.PARTIAL_FILL
    assert (partial.price, partial.qty, partial.position_qty) == (95.0, 4.0, 4.0)
    assert partial.execution_id is not None
    assert (partial.order.status, partial.order.filled_qty) == (
        OrderStatus.PARTIALLY_FILLED,
        "4",
    )

    other.client.submit_order(limit("GOOG", "sell", 2, 94.00))
    fill = listener.next()
    assert fill.event == TradeEvent.FILL
    assert (fill.price, fill.qty, fill.position_qty) == (95.0, 2.0, 6.0)
    assert fill.order.status == OrderStatus.FILLED
    assert fill.order.filled_avg_price == "95.00"


def test_cancels_reach_the_stream_and_other_accounts_do_not(
    listener: Listener, trader: Trader, other: Trader
) -> None:
    theirs = other.client.submit_order(limit("AAPL", "buy", 1, 5.00))
    other.client.cancel_order_by_id(theirs.id)
    mine = trader.client.submit_order(limit("AAPL", "buy", 1, 5.00))
    trader.client.cancel_order_by_id(mine.id)
    first, second = listener.next(), listener.next()
    assert [(u.event, u.order.id) for u in (first, second)] == [
        (TradeEvent.NEW, mine.id),
        (TradeEvent.CANCELED, mine.id),
    ]
    assert listener.updates.empty()


def _frames(url: str, *messages: dict[str, object]) -> list[dict[str, object]]:
    """Send `messages` on a fresh connection; each one's answer."""

    async def talk() -> list[dict[str, object]]:
        async with websockets.connect(url) as ws:
            out = []
            for msg in messages:
                await ws.send(json.dumps(msg))
                out.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
            return out

    return asyncio.run(talk())


def test_the_stream_refuses_a_wrong_key(gateway: Gateway, trader: Trader) -> None:
    auth = {"action": "authenticate", "data": {"key_id": trader.key_id, "secret_key": "no"}}
    (answer,) = _frames(gateway.stream_url, auth)
    assert answer == {
        "stream": "authorization",
        "data": {
            "status": "unauthorized",
            "action": "authenticate",
            "message": "unknown or revoked API key, or a wrong secret",
        },
    }
    listen = {"action": "listen", "data": {"streams": ["trade_updates"]}}
    (first,) = _frames(gateway.stream_url, listen)
    assert first["stream"] == "authorization"
    assert first["data"]["status"] == "unauthorized"  # type: ignore[index]


def test_listen_and_unlisten(gateway: Gateway, trader: Trader) -> None:
    auth = {
        "action": "authenticate",
        "data": {"key_id": trader.key_id, "secret_key": trader.secret},
    }
    listen = {"action": "listen", "data": {"streams": ["trade_updates"]}}
    unlisten = {"action": "unlisten", "data": {"streams": ["trade_updates"]}}
    answers = _frames(gateway.stream_url, auth, listen, unlisten, {"action": "dance"})
    assert answers == [
        {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}},
        {"stream": "listening", "data": {"streams": ["trade_updates"]}},
        {"stream": "listening", "data": {"streams": []}},
        {"stream": "error", "data": {"message": "unknown action"}},
    ]


def test_garbage_frames_get_an_error_and_the_session_goes_on(
    gateway: Gateway, trader: Trader
) -> None:
    key = {"key_id": trader.key_id, "secret_key": trader.secret}

    async def talk() -> list[object]:
        async with websockets.connect(gateway.stream_url) as ws:
            await ws.send(json.dumps({"action": "authenticate", "data": key}))
            answers = [json.loads(await asyncio.wait_for(ws.recv(), WAIT))]
            for garbage in ("not json", "[" * 100_000, b"\xff\xfe"):
                await ws.send(garbage)
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
            listen = {"action": "listen", "data": {"streams": ["trade_updates"]}}
            await ws.send(json.dumps(listen))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
            return answers

    answers = asyncio.run(talk())
    error = {"stream": "error", "data": {"message": "messages must be JSON"}}
    assert answers[1:] == [
        error,
        error,
        error,
        {"stream": "listening", "data": {"streams": ["trade_updates"]}},
    ]


def test_a_trailing_stops_new_trail_reaches_the_stream(listener: Listener, trader: Trader) -> None:
    """The `replaced` update shows the new trail (the projection's record, from
    OrderReplaced), and so does every later one."""
    order = trader.client.submit_order(
        TrailingStopOrderRequest(
            symbol="GOOG", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            trail_price=50,
        )
    )  # fmt: skip
    new = listener.next()
    assert (new.event, new.order.id, new.order.trail_price) == (TradeEvent.NEW, order.id, "50.00")
    trader.client.replace_order_by_id(order.id, ReplaceOrderRequest(trail=40))
    replaced = listener.next()
    assert (replaced.event, replaced.order.trail_price) == (TradeEvent.REPLACED, "40.00")
    trader.client.cancel_order_by_id(order.id)
    canceled = listener.next()
    assert (canceled.event, canceled.order.trail_price) == (TradeEvent.CANCELED, "40.00")


def test_a_brackets_legs_reach_the_stream_held(listener: Listener, trader: Trader) -> None:
    entry = trader.client.submit_order(
        LimitOrderRequest(
            symbol="BRK",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=20,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=25),
            stop_loss=StopLossRequest(stop_price=15),
        )
    )
    assert entry.legs is not None
    news = [listener.next() for _ in range(3)]
    seen = {u.order.id: (u.event, u.order.order_class, u.order.status) for u in news}
    assert seen == {
        entry.id: (TradeEvent.NEW, OrderClass.BRACKET, OrderStatus.NEW),
        entry.legs[0].id: (TradeEvent.NEW, OrderClass.BRACKET, OrderStatus.HELD),
        entry.legs[1].id: (TradeEvent.NEW, OrderClass.BRACKET, OrderStatus.HELD),
    }
    trader.client.cancel_orders()
    canceled = {listener.next().order.id for _ in range(3)}
    assert canceled == set(seen)
