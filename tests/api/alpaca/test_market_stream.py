"""alpaca-py's StockDataStream against the gateway's `/v2/iex`: trades and quotes the
engine produces, Alpaca's protocol (msgpack, Timestamp extensions) and its refusals;
minute bars as they are built."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Bar, Quote, Trade

from tickplane.api.alpaca import market_stream
from tickplane.api.alpaca.market_stream import MinuteBars

from .conftest import Gateway, Trader, trader_maker
from .test_orders import limit
from .test_stream import _wait_until, stop_stream

WAIT = 10.0


@dataclass
class Updated:
    """A bar received on `updatedBars` (alpaca-py hands both kinds over as a `Bar`)."""

    bar: Bar


Item = Trade | Quote | Bar | Updated


class DataListener:
    """A StockDataStream in its own thread, what it receives in a queue."""

    def __init__(
        self,
        gateway: Gateway,
        trader: Trader,
        trades: str,
        quotes: str,
        bars: str = "",
        updated_bars: str = "",
    ) -> None:
        self.items: queue.Queue[Item] = queue.Queue()
        self.held: list[Item] = []  # taken while looking for another kind
        url = gateway.url.replace("http://", "ws://") + "/v2/iex"
        self.stream = StockDataStream(trader.key_id, trader.secret, url_override=url)
        self.stream.subscribe_trades(self._handle, trades)
        self.stream.subscribe_quotes(self._handle, quotes)
        if bars:
            self.stream.subscribe_bars(self._handle, bars)
        if updated_bars:
            self.stream.subscribe_updated_bars(self._handle_updated, updated_bars)
        projection = gateway.app.state.projection
        before = projection.subscribers
        self.thread = threading.Thread(target=self.stream.run, daemon=True)
        self.thread.start()
        # The gateway follows the symbols before it answers the subscription.
        _wait_until(lambda: projection.subscribers > before, "the stream to subscribe")

    async def _handle(self, item: Trade | Quote | Bar) -> None:
        self.items.put(item)

    async def _handle_updated(self, bar: Bar) -> None:
        self.items.put(Updated(bar))

    def next(self, kind: type[Item]) -> Any:
        """The next item of `kind` (trades and quotes come on two engine streams: their
        order between each other is not fixed)."""
        for i, item in enumerate(self.held):
            if isinstance(item, kind):
                return self.held.pop(i)
        deadline = time.monotonic() + WAIT
        while True:
            item = self.items.get(timeout=max(deadline - time.monotonic(), 0.01))
            if isinstance(item, kind):
                return item
            self.held.append(item)

    def stop(self) -> None:
        stop_stream(self.stream, self.thread)


@pytest.fixture
def traders(md_gateway: Gateway) -> tuple[Trader, Trader]:
    make = trader_maker(md_gateway)
    return make(), make()


def test_live_trades_and_quotes_reach_alpaca_py(
    md_gateway: Gateway, traders: tuple[Trader, Trader]
) -> None:
    buyer, seller = traders
    listener = DataListener(md_gateway, buyer, trades="BRK", quotes="BRK")
    try:
        buyer.client.submit_order(limit("BRK", "buy", 30, 240.10))
        quote = listener.next(Quote)
        assert (quote.symbol, quote.bid_price, quote.bid_size) == ("BRK", 240.10, 30)
        assert (quote.ask_price, quote.ask_size) == (0.0, 0)
        assert abs(quote.timestamp - datetime.now(UTC)) < timedelta(seconds=30)
        seller.client.submit_order(limit("BRK", "sell", 10, 240.10))
        trade = listener.next(Trade)
        assert (trade.symbol, trade.price, trade.size) == ("BRK", 240.10, 10)
        after = listener.next(Quote)
        assert (after.bid_price, after.bid_size) == (240.10, 20)
        # the stream's trade is the REST API's: the same id (the engine's seq)
        latest = httpx.get(
            md_gateway.url + "/v2/stocks/trades/latest?symbols=BRK", headers=buyer.headers
        ).json()["trades"]["BRK"]
        assert latest["i"] == trade.id
    finally:
        listener.stop()
        buyer.client.cancel_orders()


def test_bars_go_out_when_their_period_is_over(
    md_gateway: Gateway, traders: tuple[Trader, Trader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live bar path end to end, with one-second "minutes" (a minute's wait would be
    the test's whole cost): the bar comes from the ticker, not from a later trade."""
    monkeypatch.setattr(market_stream, "_MINUTE", 1_000_000_000)
    monkeypatch.setattr(market_stream, "BAR_GRACE", 0.2)
    buyer, seller = traders
    listener = DataListener(md_gateway, buyer, trades="BRK", quotes="MSFT", bars="BRK")
    try:
        buyer.client.submit_order(limit("BRK", "buy", 10, 230.00))
        sold = seller.client.submit_order(limit("BRK", "sell", 10, 230.00))
        trade = listener.next(Trade)
        price = float(seller.client.get_order_by_id(sold.id).filled_avg_price or 0)
        assert (trade.price, trade.size) == (price, 10)
        bar = listener.next(Bar)
        second = trade.timestamp.replace(microsecond=0)
        assert (bar.symbol, bar.timestamp, bar.close) == ("BRK", second, price)
        # The whole second's trades, those before the subscription too (another test's
        # may fall in it): as the gateway's tape has them.
        start = int(second.timestamp()) * 10**9
        tape = [
            t
            for t in reversed(md_gateway.app.state.projection.trades("BRK"))
            if start <= t.ts_event < start + 10**9
        ]
        assert (bar.open, bar.volume, bar.trade_count) == (
            float(tape[0].price * Decimal("0.05")),  # BRK's tick
            sum(t.qty for t in tape) * 10,
            len(tape),
        )
    finally:
        listener.stop()
        buyer.client.cancel_orders()


async def _connect(gateway: Gateway, msgpack_frames: bool = True) -> Any:
    url = gateway.url.replace("http://", "ws://") + "/v2/sip"
    headers = {"Content-Type": "application/msgpack"} if msgpack_frames else {}
    ws = await websockets.connect(url, additional_headers=headers)
    return ws


async def _recv(ws: Any) -> list[dict[str, Any]]:
    raw = await asyncio.wait_for(ws.recv(), WAIT)
    if isinstance(raw, bytes):
        return msgpack.unpackb(raw)  # type: ignore[no-any-return]
    return json.loads(raw)  # type: ignore[no-any-return]


def test_a_trade_after_its_bar_went_out_sends_the_bar_updated(
    md_gateway: Gateway, traders: tuple[Trader, Trader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's clock ahead of the engine's (as a lagging feed would be): each
    (four-second) "minute"'s bar goes out one second into it by the engine's clock, and
    a trade later in that minute comes to alpaca-py's `updatedBars` handler as the bar
    corrected, with the same timestamp."""
    period, grace, ahead = 4_000_000_000, 0.2, 3_200_000_000
    monkeypatch.setattr(market_stream, "_MINUTE", period)
    monkeypatch.setattr(market_stream, "BAR_GRACE", grace)
    monkeypatch.setattr(market_stream, "_now", lambda: time.time_ns() + ahead)
    buyer, seller = traders
    buyer.client.submit_order(limit("BRK", "buy", 60, 231.00))
    listener = DataListener(
        md_gateway, buyer, trades="BRK", quotes="MSFT", bars="BRK", updated_bars="BRK"
    )
    try:
        for _attempt in range(5):
            # At a period's start: a trade, whose bar goes out one second later; a
            # second trade must then still fall in the period (a loaded machine may
            # take too long: then again, in another period).
            time.sleep((period - time.time_ns() % period) / 1e9 + 0.05)
            seller.client.submit_order(limit("BRK", "sell", 10, 231.00))
            first_ns = int(listener.next(Trade).timestamp.timestamp() * 1e9)
            start = first_ns // period * period
            bar = listener.next(Bar)
            while bar.timestamp < datetime.fromtimestamp(start / 1e9, UTC):
                bar = listener.next(Bar)  # an earlier try's
            if time.time_ns() - start < period - 1_500_000_000:
                break
        else:
            pytest.fail("no period's bar came out early enough in five tries")
        assert bar.timestamp == datetime.fromtimestamp(start / 1e9, UTC)
        assert bar.close == 231.00
        seller.client.submit_order(limit("BRK", "sell", 10, 231.00))
        late = listener.next(Trade)
        assert int(late.timestamp.timestamp() * 1e9) // period * period == start
        updated = listener.next(Updated).bar
        assert (updated.symbol, updated.timestamp) == ("BRK", bar.timestamp)
        assert (updated.volume, updated.trade_count) == (bar.volume + 10, bar.trade_count + 1)
        assert (updated.high, updated.low, updated.close) == (
            max(bar.high, 231.00),
            min(bar.low, 231.00),
            231.00,
        )
    finally:
        listener.stop()
        buyer.client.cancel_orders()


def test_protocol_in_msgpack(md_gateway: Gateway, traders: tuple[Trader, Trader]) -> None:
    buyer, seller = traders

    async def run() -> None:
        ws = await _connect(md_gateway)
        try:
            assert await _recv(ws) == [{"T": "success", "msg": "connected"}]
            await ws.send(msgpack.packb({"action": "subscribe", "trades": ["GOOG"]}))
            assert (await _recv(ws))[0]["code"] == 401  # not authenticated yet
            await ws.send(
                msgpack.packb({"action": "auth", "key": buyer.key_id, "secret": buyer.secret})
            )
            assert await _recv(ws) == [{"T": "success", "msg": "authenticated"}]
            await ws.send(
                msgpack.packb({"action": "auth", "key": buyer.key_id, "secret": buyer.secret})
            )
            assert (await _recv(ws))[0]["code"] == 403
            # an unknown symbol or an unserved channel changes nothing
            await ws.send(msgpack.packb({"action": "subscribe", "trades": ["GOOG", "NOPE"]}))
            error = (await _recv(ws))[0]
            assert (error["T"], error["code"]) == ("error", 400) and "NOPE" in error["msg"]
            await ws.send(msgpack.packb({"action": "subscribe", "dailyBars": ["GOOG"]}))
            assert (await _recv(ws))[0]["code"] == 410
            await ws.send(b"\xc1")  # not msgpack
            assert (await _recv(ws))[0]["code"] == 400
            await ws.send(
                msgpack.packb({"action": "subscribe", "trades": ["GOOG"], "quotes": ["*"]})
            )
            sub = (await _recv(ws))[0]
            assert (sub["T"], sub["trades"], sub["quotes"], sub["bars"]) == (
                "subscription",
                ["GOOG"],
                ["*"],
                [],
            )
            await ws.send(msgpack.packb({"action": "unsubscribe", "quotes": ["*"]}))
            sub = (await _recv(ws))[0]
            assert (sub["trades"], sub["quotes"]) == (["GOOG"], [])
            await asyncio.to_thread(buyer.client.submit_order, limit("GOOG", "buy", 2, 98.00))
            sold = await asyncio.to_thread(
                seller.client.submit_order, limit("GOOG", "sell", 2, 98.00)
            )
            # (a bid left resting by another test may be higher: the fill's price is it)
            order = await asyncio.to_thread(seller.client.get_order_by_id, sold.id)
            price = float(order.filled_avg_price or 0)
            trade = (await _recv(ws))[0]  # quotes are off: the trade is the next message
            assert (trade["T"], trade["S"], trade["p"], trade["s"]) == ("t", "GOOG", price, 2)
            stamp = trade["t"]
            assert isinstance(stamp, msgpack.Timestamp)  # the extension, as alpaca-py needs
            assert abs(stamp.to_unix_nano() - time.time_ns()) < 30 * 10**9
        finally:
            await ws.close()
            await asyncio.to_thread(buyer.client.cancel_orders)

    asyncio.run(run())


def test_changes_in_alpaca_trade_apis_shape(
    md_gateway: Gateway, traders: tuple[Trader, Trader]
) -> None:
    """alpaca-trade-api's stream unsubscribes with every channel named, those it does
    not mean as empty lists (`dailyBars`, `statuses`, `lulds` too): an unserved channel
    that names no symbol asks for nothing, and the rest applies."""
    buyer, _ = traders

    async def run() -> None:
        ws = await _connect(md_gateway)
        try:
            assert await _recv(ws) == [{"T": "success", "msg": "connected"}]
            await ws.send(
                msgpack.packb({"action": "auth", "key": buyer.key_id, "secret": buyer.secret})
            )
            assert await _recv(ws) == [{"T": "success", "msg": "authenticated"}]
            await ws.send(msgpack.packb({"action": "subscribe", "trades": ["GOOG", "BRK"]}))
            assert (await _recv(ws))[0]["trades"] == ["BRK", "GOOG"]
            unserved_empty = {"dailyBars": [], "statuses": [], "lulds": []}
            await ws.send(
                msgpack.packb(
                    {"action": "unsubscribe", "trades": ["GOOG"], "quotes": [], "bars": []}
                    | {"updatedBars": []}
                    | unserved_empty
                )
            )
            sub = (await _recv(ws))[0]
            assert (sub["T"], sub["trades"], sub["dailyBars"]) == ("subscription", ["BRK"], [])
            # one that names symbols is still refused, and changes nothing
            await ws.send(msgpack.packb({"action": "subscribe", "dailyBars": ["GOOG"]}))
            assert (await _recv(ws))[0]["code"] == 410
        finally:
            await ws.close()

    asyncio.run(run())


def test_bad_key_is_refused_and_closed_in_json(md_gateway: Gateway) -> None:
    async def run() -> None:
        ws = await _connect(md_gateway, msgpack_frames=False)
        try:
            assert await _recv(ws) == [{"T": "success", "msg": "connected"}]
            await ws.send(json.dumps({"action": "auth", "key": "TPNOPE", "secret": "x"}))
            error = (await _recv(ws))[0]
            assert (error["T"], error["code"]) == ("error", 402)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        finally:
            await ws.close()

    asyncio.run(run())


def test_minute_bars_close_when_the_minute_is_over() -> None:
    minute = 60_000_000_000
    t0 = 1_790_000_000 * 10**9 // minute * minute
    bars = MinuteBars()
    assert bars.add("GOOG", t0 + 1, 100, 2) == (None, None)
    assert bars.add("GOOG", t0 + 5, 103, 1) == (None, None)
    assert bars.add("GOOG", t0 + 7, 99, 3) == (None, None)
    assert bars.due(t0 + minute - 1) == []
    done, late = bars.add("GOOG", t0 + minute, 101, 1)  # the next minute's first trade
    assert done is not None and late is None
    assert (done.start_ns, done.open, done.high, done.low, done.close) == (t0, 100, 103, 99, 99)
    assert (done.volume, done.count, done.notional) == (6, 3, 200 + 103 + 297)
    [(symbol, late)] = bars.due(t0 + 2 * minute)
    assert (symbol, late.start_ns, late.open, late.volume) == ("GOOG", t0 + minute, 101, 1)
    assert bars.open == {}


def test_a_late_trade_corrects_its_minutes_bar() -> None:
    """A trade of a minute whose bar is done comes back as that bar, corrected; not in
    the open bar of a later minute, not as a second bar of its minute."""
    minute = 60_000_000_000
    t0 = 1_790_000_000 * 10**9 // minute * minute
    bars = MinuteBars()
    bars.add("GOOG", t0 + 1, 100, 2)
    [(_, first)] = bars.due(t0 + minute)  # sent by the ticker: nothing open now
    done, late = bars.add("GOOG", t0 + minute - 1, 104, 3)  # late: still its minute's
    assert done is None and late is first
    assert (late.open, late.high, late.close, late.volume, late.count) == (100, 104, 104, 5, 2)
    assert bars.open == {}
    bars.add("GOOG", t0 + 2 * minute, 99, 1)  # a later minute opens
    done, late = bars.add("GOOG", t0 + 2, 101, 1)  # and another late one of the first
    assert done is None and late is first and late.volume == 6
    assert bars.open["GOOG"].volume == 1  # the open bar is untouched
    # a minute that had no trades, between done ones: a bar of its own, as a correction
    bars.add("GOOG", t0 + 3 * minute, 98, 1)  # the minute at 2 is done too
    done, late = bars.add("GOOG", t0 + minute + 5, 97, 4)
    assert done is None and late is not None
    assert (late.start_ns, late.open, late.volume) == (t0 + minute, 97, 4)
    # older than the last SENT_KEPT bars: dropped
    for i in range(4, 4 + market_stream.SENT_KEPT):
        bars.add("GOOG", t0 + i * minute, 100, 1)
    assert bars.add("GOOG", t0 + 3, 100, 1) == (None, None)
