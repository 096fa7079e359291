"""Alpaca's real-time stock data stream at `/v2/iex` and `/v2/sip` (one feed: the
engine's), for alpaca-py's `StockDataStream(key, secret, url_override="ws://HOST/v2/iex")`.

The protocol is Alpaca's: every server frame is an array of messages, msgpack when the
handshake says `Content-Type: application/msgpack` (alpaca-py does; timestamps are msgpack
Timestamp extensions), else JSON text (timestamps RFC 3339).

1. On connect: `[{"T": "success", "msg": "connected"}]`.
2. `{"action": "auth", "key": K, "secret": S}` (within `AUTH_SECONDS`), the gateway's
   API keys: `[{"T": "success", "msg": "authenticated"}]`, or error 402 and a close.
3. `{"action": "subscribe"|"unsubscribe", "trades": [...], "quotes": [...], "bars":
   [...]}` (symbols the engine trades, or `"*"`): answered with the whole subscription
   `{"T": "subscription", "trades": [...], ...}`. The gateway follows the symbols in
   its projection *before* it answers, so nothing after the answer is missed.
4. Data: trades `{"T": "t", "S", "i", "x", "p", "s", "t", "c", "z"}` (each of the
   engine's trades, `i` its seq), quotes `{"T": "q", "S", "bx", "bp", "bs", "ax", "ap",
   "as", "t", "c", "z"}` (the top of book when its best bid or ask changed), minute bars
   `{"T": "b", "S", "o", "h", "l", "c", "v", "n", "vw", "t"}` (a minute's trades, sent
   once the minute is over: at its first later trade, or `BAR_GRACE` seconds after it by
   the gateway's clock), and on `updatedBars` the same bar as `{"T": "u", ...}` again,
   with every trade of it so far, when a trade of an already sent minute arrives after
   its bar (the engine's stamp is its own clock's; the bar went out by the gateway's:
   a feed that lags more than `BAR_GRACE`, or a gateway clock ahead of the engine's).

Errors are Alpaca's `{"T": "error", "code", "msg"}`: 400 a frame that is not an action
or names an unknown symbol (nothing changes), 401 not authenticated yet, 402 auth
failed, 403 already authenticated, 404 auth timeout, 407 slow client (then closed: more
than `ws_queue_size` updates behind), 410 symbols of a channel Tickplane does not serve
(`dailyBars`, `statuses`, `lulds`, `orderbooks`, `news`; the channel with an empty list
asks for nothing and is let pass), 500 the engine did not answer.

The feed is the projection's market data (`Projection.follow_market`): the same
subscription to the engine that serves the native `/api/v1/ws/market` WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tickplane.api.alpaca import market_rendering as md
from tickplane.api.alpaca.symbols import symbol_table
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.deps import ProjectionDep, SettingsDep, authenticate
from tickplane.api.errors import ApiError
from tickplane.api.projection import MarketUpdate, Projection, Subscription, SubscriptionOverflow
from tickplane.api.settings import GatewaySettings
from tickplane.core.events import Trade

__all__ = ["AUTH_SECONDS", "BAR_GRACE", "FEEDS", "MinuteBars", "router"]

router = APIRouter(tags=["alpaca market data"])
log = logging.getLogger(__name__)

FEEDS = ("iex", "sip")
CHANNELS = ("trades", "quotes", "bars", "updatedBars")
# Alpaca's channels with nothing to send here (a subscription to them is a 410).
UNSERVED = ("dailyBars", "statuses", "lulds", "orderbooks", "news")
AUTH_SECONDS = 10.0
BAR_GRACE = 1.0  # seconds after a minute ends before its bar goes out
SENT_KEPT = 5  # a symbol's last sent bars kept to be corrected by late trades
_MINUTE = 60_000_000_000
_now = time.time_ns  # the gateway's clock (which says when a minute is over)
_msgpack = msgspec.msgpack.Encoder()


@dataclass
class Bar:
    """A minute's trades so far: prices in ticks, volume in lots."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    count: int = 0
    notional: int = 0

    def add(self, price: int, qty: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += qty
        self.count += 1
        self.notional += price * qty


class MinuteBars:
    """Minute bars built from trades as they come, per symbol; a bar is done once its
    minute is over (`add` of a later trade returns it, `due` returns those whose minute
    ended before a given time). A trade of a minute whose bar is done (a late trade) is
    counted into that bar, which `add` returns as corrected (the last `SENT_KEPT` done
    bars of each symbol are kept for this; a trade older than those is dropped)."""

    def __init__(self) -> None:
        self.open: dict[str, Bar] = {}
        self.done: dict[str, dict[int, Bar]] = {}  # per symbol, by start: bars sent

    def add(self, symbol: str, ts_ns: int, price: int, qty: int) -> tuple[Bar | None, Bar | None]:
        """Count one trade in: (the symbol's previous bar if this trade starts a new one,
        the done bar this late trade corrected), each None when there is none."""
        start = ts_ns - ts_ns % _MINUTE
        bar = self.open.get(symbol)
        done = self.done.setdefault(symbol, {})
        if bar is not None and start == bar.start_ns:
            bar.add(price, qty)
            return None, None
        if (bar is None or start > bar.start_ns) and start > max(done, default=-1):
            finished = bar
            if bar is not None:
                self._keep(symbol, bar)
            new = self.open[symbol] = Bar(start, price, price, price, price)
            new.add(price, qty)
            return finished, None
        late = done.get(start)
        if late is None:  # a minute with no bar yet, before one that is out: a new bar
            if done and start < min(done):
                return None, None  # older than the bars kept: too late to say
            late = Bar(start, price, price, price, price)
            self._keep(symbol, late)
        late.add(price, qty)
        return None, late

    def _keep(self, symbol: str, bar: Bar) -> None:
        done = self.done.setdefault(symbol, {})
        done[bar.start_ns] = bar
        while len(done) > SENT_KEPT:
            del done[min(done)]

    def due(self, now_ns: int) -> list[tuple[str, Bar]]:
        """The bars whose minute ended at or before `now_ns` (now done)."""
        out = [(s, b) for s, b in self.open.items() if b.start_ns + _MINUTE <= now_ns]
        for symbol, bar in out:
            del self.open[symbol]
            self._keep(symbol, bar)
        return out

    def drop(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self.open.pop(symbol, None)
            self.done.pop(symbol, None)


class _Wire:
    """msgpack (binary frames, Timestamp extensions) or JSON (text frames, RFC 3339)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.msgpack = "msgpack" in ws.headers.get("content-type", "").lower()
        self.stamp: md.Stamp = md.msgpack_time if self.msgpack else md.rfc3339
        self._lock = asyncio.Lock()  # the reader's answers and the pusher's data

    async def send(self, messages: list[dict[str, Any]]) -> None:
        async with self._lock:
            if self.msgpack:
                await self.ws.send_bytes(_msgpack.encode(messages))
            else:
                await self.ws.send_text(json.dumps(messages, separators=(",", ":")))

    async def error(self, code: int, msg: str) -> None:
        await self.send([{"T": "error", "code": code, "msg": msg}])

    async def receive(self) -> Any:
        """The client's next message (None: a frame that does not decode; raises
        WebSocketDisconnect when it leaves)."""
        frame = await self.ws.receive()
        if frame["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(frame.get("code", 1000))
        try:
            if frame.get("bytes") is not None:
                return msgspec.msgpack.decode(frame["bytes"])
            return json.loads(frame.get("text") or "")
        except (msgspec.DecodeError, ValueError, RecursionError):
            return None


class _Session:
    """One authenticated connection: its channels, its projection subscription and the
    task that turns market updates into Alpaca messages."""

    def __init__(
        self, wire: _Wire, projection: Projection, units: dict[str, SymbolUnits], size: int
    ) -> None:
        self.wire = wire
        self.projection = projection
        self.units = units
        self.channels: dict[str, set[str]] = {c: set() for c in CHANNELS}
        self.sub = Subscription(size, None, None)
        self.followed: set[str | None] = set()
        self.quotes: dict[str, tuple[Any, Any]] = {}  # the last quote sent per symbol
        self.bars = MinuteBars()
        self.corrected: dict[tuple[str, int], Bar] = {}  # updated bars not sent yet

    def wants(self, channel: str, symbol: str) -> bool:
        chosen = self.channels[channel]
        return symbol in chosen or "*" in chosen

    def _follow(self) -> None:
        """Follow exactly the symbols some channel names (all of them for a `*`)."""
        named = {symbol for chosen in self.channels.values() for symbol in chosen}
        want: set[str | None] = {None} if "*" in named else set(named)
        for symbol in self.followed - want:
            self.projection.unfollow_market(self.sub, symbol)
        for symbol in want - self.followed:
            self.projection.follow_market(self.sub, symbol)
        self.followed = want

    def close(self) -> None:
        for symbol in self.followed:
            self.projection.unfollow_market(self.sub, symbol)
        self.followed = set()

    def change(self, msg: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Apply a subscribe / unsubscribe; its errors (nothing applied), or None."""
        asked: dict[str, list[str]] = {}
        for channel, symbols in msg.items():
            if channel == "action":
                continue
            if channel in UNSERVED:
                if not symbols:  # asks nothing of it (alpaca-trade-api names every channel)
                    continue
                return [_error(410, f"{channel} are not served by Tickplane")]
            if channel not in CHANNELS and channel not in ("corrections", "cancelErrors"):
                return [_error(400, f"invalid syntax: unknown channel {channel!r}")]
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                return [_error(400, f"invalid syntax: {channel} must be a list of symbols")]
            unknown = [s for s in symbols if s != "*" and s not in self.units]
            if unknown:
                traded = ", ".join(self.units)
                return [_error(400, f"invalid symbol {unknown[0]!r}: this engine trades {traded}")]
            if channel in CHANNELS:  # corrections and cancelErrors follow trades
                asked[channel] = symbols
        before_bars = self._barred()
        for channel, symbols in asked.items():
            if msg["action"] == "subscribe":
                self.channels[channel].update(symbols)
            else:
                self.channels[channel].difference_update(symbols)
        self._follow()
        self._seed_bars(self._barred() - before_bars)
        # What is no longer wanted starts afresh if it is wanted again.
        self.bars.drop([s for s in self.bars.done if not self._builds_bars(s)])
        for symbol in [s for s in self.quotes if not self.wants("quotes", s)]:
            del self.quotes[symbol]
        return None

    def _barred(self) -> set[str]:
        """The symbols (or `*`) whose bars are built: for `bars` or `updatedBars`."""
        return self.channels["bars"] | self.channels["updatedBars"]

    def _builds_bars(self, symbol: str) -> bool:
        return self.wants("bars", symbol) or self.wants("updatedBars", symbol)

    def _seed_bars(self, added: set[str]) -> None:
        """Newly subscribed bars start with the current minute's trades the projection
        already holds (taken in the same step as the follow: none twice, none missed)."""
        if not added:
            return
        minute = _now() // _MINUTE * _MINUTE
        for symbol in self.units if "*" in added else added:
            if symbol in self.bars.done:
                continue
            recent = [t for t in self.projection.trades(symbol) if t.ts_event >= minute]
            for t in reversed(recent):  # oldest first
                self.bars.add(symbol, t.ts_event, t.price, t.qty)

    def subscription(self) -> dict[str, Any]:
        trades = sorted(self.channels["trades"])
        return {
            "T": "subscription",
            "trades": trades,
            "quotes": sorted(self.channels["quotes"]),
            "bars": sorted(self.channels["bars"]),
            "updatedBars": sorted(self.channels["updatedBars"]),
            **{channel: [] for channel in UNSERVED if channel not in ("orderbooks", "news")},
            "corrections": trades,
            "cancelErrors": trades,
        }

    def messages(self, update: MarketUpdate) -> list[dict[str, Any]]:
        """What one market update means to this client."""
        symbol = update.symbol
        units = self.units.get(symbol)
        if units is None:
            return []
        stamp = self.wire.stamp
        out = []
        if update.kind == "trade" and isinstance(update.trade, Trade):
            t = update.trade
            if self.wants("trades", symbol):
                trade = md.trade(units, t.seq, t.ts_event, t.price, t.qty, stamp)
                out.append({"T": "t", "S": symbol, **trade})
            if self._builds_bars(symbol):
                done, late = self.bars.add(symbol, t.ts_event, t.price, t.qty)
                if done is not None and self.wants("bars", symbol):
                    out.append(self.bar(symbol, done))
                if late is not None and self.wants("updatedBars", symbol):
                    self.corrected[(symbol, late.start_ns)] = late
        elif update.kind == "top" and update.top is not None and self.wants("quotes", symbol):
            top = update.top
            bid = (top.bids[0].price, top.bids[0].qty) if top.bids else None
            ask = (top.asks[0].price, top.asks[0].qty) if top.asks else None
            if self.quotes.get(symbol) != (bid, ask):
                self.quotes[symbol] = (bid, ask)
                quote = md.quote(units, top.ts_event, bid, ask, stamp)
                out.append({"T": "q", "S": symbol, **quote})
        return out

    def bar(self, symbol: str, b: Bar, kind: str = "b") -> dict[str, Any]:
        """Bar `b` as message `kind`: `b` a bar, `u` an updated bar."""
        ohlc = (b.open, b.high, b.low, b.close)
        data = md.bar(
            self.units[symbol], b.start_ns, ohlc, b.volume, b.count, b.notional, self.wire.stamp
        )
        return {"T": kind, "S": symbol, **data}

    async def push(self) -> None:
        """Send the subscription's updates, batched as they queue up."""
        try:
            while True:
                first = await self.sub.get()
                out = []
                for update in [first, *self.sub.drain()]:
                    if isinstance(update, MarketUpdate):
                        out.extend(self.messages(update))
                # a bar corrected by several late trades of this batch goes out once
                out.extend(self.bar(s, b, "u") for (s, _), b in self.corrected.items())
                self.corrected.clear()
                if out:
                    await self.wire.send(out)
        except SubscriptionOverflow:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.wire.error(407, "slow client")
                await self.wire.ws.close(code=1011, reason="slow client")

    async def tick(self) -> None:
        """Send each minute's bars `BAR_GRACE` seconds after it ends."""
        while True:
            now = _now()
            next_minute = now - now % _MINUTE + _MINUTE
            await asyncio.sleep((next_minute - now) / 1e9 + BAR_GRACE)
            due = self.bars.due(_now() - int(BAR_GRACE * 1e9))
            out = [self.bar(symbol, b) for symbol, b in due if self.wants("bars", symbol)]
            if out:
                await self.wire.send(out)


def _error(code: int, msg: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": msg}


async def _login(wire: _Wire) -> bool:
    """Wait for the auth message and answer it (False: refused, and told why)."""
    try:
        async with asyncio.timeout(AUTH_SECONDS):
            while True:
                msg = await wire.receive()
                if not isinstance(msg, dict) or msg.get("action") != "auth":
                    what = "not authenticated" if isinstance(msg, dict) else "invalid syntax"
                    await wire.error(401 if isinstance(msg, dict) else 400, what)
                    continue
                break
    except TimeoutError:
        await wire.error(404, "auth timeout")
        return False
    key, secret = msg.get("key"), msg.get("secret")
    try:
        await authenticate(
            wire.ws,
            key if isinstance(key, str) else None,
            secret if isinstance(secret, str) else None,
            limit=False,
        )
    except ApiError as exc:
        await wire.error(402, f"auth failed: {exc.message}")
        return False
    await wire.send([{"T": "success", "msg": "authenticated"}])
    return True


async def _serve(ws: WebSocket, projection: Projection, settings: GatewaySettings) -> None:
    wire = _Wire(ws)
    await wire.send([{"T": "success", "msg": "connected"}])
    if not await _login(wire):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1008)
        return
    try:
        units = await symbol_table(ws.app.state).all(projection.engine, settings.engine_timeout)
    except ApiError as exc:
        await wire.error(500, f"internal error: {exc.message}")
        await ws.close(code=1011)
        return
    session = _Session(wire, projection, units, settings.ws_queue_size)
    tasks = [asyncio.create_task(session.push()), asyncio.create_task(session.tick())]
    try:
        while True:
            msg = await wire.receive()
            action = msg.get("action") if isinstance(msg, dict) else None
            if action == "auth":
                await wire.error(403, "already authenticated")
            elif action in ("subscribe", "unsubscribe"):
                assert isinstance(msg, dict)
                errors = session.change(msg)
                await wire.send(errors or [session.subscription()])
            else:
                await wire.error(400, "invalid syntax: expected auth, subscribe or unsubscribe")
    finally:
        session.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a send to a client that has gone: it is over
                log.debug("market-data stream task ended: %r", exc)


async def stream_market_data(
    ws: WebSocket, settings: SettingsDep, projection: ProjectionDep
) -> None:
    """Alpaca's market-data stream (see the module docstring)."""
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await _serve(ws, projection, settings)


for _feed in FEEDS:
    router.add_api_websocket_route(f"/v2/{_feed}", stream_market_data, name=f"market_data_{_feed}")
