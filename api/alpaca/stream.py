"""`/stream`: Alpaca's trade_updates WebSocket, fed by the projection's per-account
subscription.

The protocol is alpaca-py's TradingStream's: the client authenticates with a first
message (`{"action": "authenticate", "data": {"key_id", "secret_key"}}`), then
`listen`s to `trade_updates`; every update of the account's orders follows as
`{"stream": "trade_updates", "data": {"event", "timestamp", "order", ...}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tickplane.api.alpaca import rendering
from tickplane.api.alpaca.ids import execution_uuid
from tickplane.api.alpaca.rendering import Link
from tickplane.api.alpaca.symbols import symbol_table
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.deps import ProjectionDep, SettingsDep, authenticate
from tickplane.api.engine import acked
from tickplane.api.errors import ApiError
from tickplane.api.projection import (
    OrderUpdate,
    PositionUpdate,
    Projection,
    Subscription,
    SubscriptionOverflow,
    Update,
)
from tickplane.api.settings import GatewaySettings

__all__ = ["router"]

router = APIRouter(tags=["alpaca stream"])

TRADE_UPDATES: Final = "trade_updates"
# Tickplane's update names that Alpaca spells differently (`held`: an accepted stop,
# which Alpaca reports as `new`). `triggered` has no Alpaca event and is not sent.
# `activated` (a leg now works) has none either: the leg's next event shows it working.
# Neither has `trailed` (a trailing stop's stop moved): Alpaca shows it on the order
# (`stop_price`, `hwm`) without pushing an update.
_EVENTS: Final = {"held": "new", "change_rejected": "order_replace_rejected"}
_SKIPPED: Final = frozenset({"triggered", "activated", "trailed"})
_AUTH_TIMEOUT: Final = 10.0


def _message(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data})


def _authorization(status: str, message: str | None = None) -> str:
    data = {"status": status, "action": "authenticate"}
    if message is not None:
        data["message"] = message
    return _message("authorization", data)


def trade_update(
    update: OrderUpdate,
    units: SymbolUnits,
    position: int | None,
    link: Link | None = None,
    held: bool = False,
) -> dict[str, Any] | None:
    """One order update as a trade_updates event's data (None: not an Alpaca event);
    `link` and `held` as for `rendering.order`."""
    if update.event in _SKIPPED:
        return None
    event = _EVENTS.get(update.event, update.event)
    order = rendering.order(update.order, units, link, held=held)
    data: dict[str, Any] = {
        "event": event,
        "timestamp": rendering.iso(update.ts_event),
        "order": order.model_dump(mode="json"),
    }
    fill = update.execution
    if fill is not None:
        data["execution_id"] = execution_uuid(fill.seq, fill.order_id)
        data["price"] = units.price(fill.price)
        data["qty"] = units.shares(fill.qty)
        if position is not None:
            data["position_qty"] = units.shares(position)
    return data


async def _messages(ws: WebSocket) -> AsyncIterator[dict[str, Any]]:
    """The client's messages as JSON objects (text or binary frames); others skipped."""
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        raw = msg.get("text") or msg.get("bytes")
        if raw is None:
            continue
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested beyond reason
            await ws.send_text(_message("error", {"message": "messages must be JSON"}))
            continue
        if isinstance(parsed, dict):
            yield parsed


async def _login(ws: WebSocket) -> str | None:
    """The account of the first message's key (None: refused, and answered so)."""
    try:
        async with asyncio.timeout(_AUTH_TIMEOUT):
            first = await anext(aiter(_messages(ws)), None)
    except TimeoutError:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.send_text(_authorization("unauthorized", "authenticate first"))
        return None
    if first is None:
        return None
    data = first.get("data") if isinstance(first.get("data"), dict) else {}
    if first.get("action") not in ("authenticate", "auth") or not isinstance(data, dict):
        await ws.send_text(_authorization("unauthorized", "authenticate first"))
        return None
    key_id, secret = data.get("key_id"), data.get("secret_key")
    try:
        caller = await authenticate(
            ws,
            key_id if isinstance(key_id, str) else None,
            secret if isinstance(secret, str) else None,
            limit=False,
        )
    except ApiError as exc:
        await ws.send_text(_authorization("unauthorized", exc.message))
        return None
    await ws.send_text(_authorization("authorized"))
    return caller.account


class _Session:
    """One authenticated connection: its subscription while it listens to
    trade_updates, and the task that pushes the account's updates to it."""

    def __init__(
        self,
        ws: WebSocket,
        account: str,
        projection: Projection,
        settings: GatewaySettings,
    ) -> None:
        self.ws = ws
        self.account = account
        self.projection = projection
        self.settings = settings
        self.symbols = symbol_table(ws.app.state)
        self.positions: dict[str, int] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self._pusher: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        """Subscribe (before answering `listening`, so no update after it is lost)."""
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        sub = await stack.enter_async_context(
            self.projection.subscribe(account=self.account, queue_size=self.settings.ws_queue_size)
        )
        self._stack = stack
        self.positions = await self._positions()
        self._pusher = asyncio.create_task(self._push(sub))

    async def unlisten(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    async def _positions(self) -> dict[str, int]:
        """The account's positions (lots) from the engine, to count fills onto."""
        try:
            ack = await acked(
                self.projection.engine.get_account(self.account), self.settings.engine_timeout
            )
        except ApiError:
            return {}
        view = ack.account
        return {} if view is None else {p.symbol: p.qty for p in view.positions}

    async def _push(self, sub: Subscription) -> None:
        try:
            async for update in sub:
                await self._send(update)
        except SubscriptionOverflow:
            # Too slow a reader: dropped, never allowed to slow the gateway down.
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.close(code=1011, reason="too slow: too many updates queued")

    async def _send(self, update: Update) -> None:
        if isinstance(update, PositionUpdate):  # the truth, right after a fill
            self.positions[update.position.symbol] = update.position.qty
            return
        if not isinstance(update, OrderUpdate):
            return
        order = update.order
        every = await self.symbols.all(self.projection.engine, self.settings.engine_timeout)
        units = every.get(order.symbol)
        if units is None:
            return
        position = None
        if update.execution is not None:
            signed = update.execution.qty * (1 if order.side == "buy" else -1)
            position = self.positions.get(order.symbol, 0) + signed
            self.positions[order.symbol] = position
        held = rendering.waiting_leg(order)
        data = trade_update(update, units, position, Link.of(order), held)
        if data is not None:
            await self.ws.send_text(_message(TRADE_UPDATES, data))

    async def serve(self) -> None:
        """Answer the client's listen / unlisten until it leaves."""
        try:
            async for msg in _messages(self.ws):
                data = msg.get("data")
                action = msg.get("action")
                if action not in ("listen", "unlisten") or not isinstance(data, dict):
                    await self.ws.send_text(_message("error", {"message": "unknown action"}))
                    continue
                streams = data.get("streams")
                named = isinstance(streams, list) and TRADE_UPDATES in streams
                if action == "listen" and named:
                    await self.listen()
                elif action == "unlisten" and named:
                    await self.unlisten()
                now = [TRADE_UPDATES] if self._stack is not None else []
                await self.ws.send_text(_message("listening", {"streams": now}))
        except WebSocketDisconnect:
            pass
        finally:
            await self.unlisten()


@router.websocket("/stream")
async def trade_updates(ws: WebSocket, settings: SettingsDep, projection: ProjectionDep) -> None:
    """Alpaca's trading stream (see the module docstring)."""
    await ws.accept()
    try:
        account = await _login(ws)
    except WebSocketDisconnect:
        return
    if account is None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1008)
        return
    await _Session(ws, account, projection, settings).serve()
