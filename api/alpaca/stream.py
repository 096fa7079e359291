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
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tickplane.api.alpaca import rendering
from tickplane.api.alpaca.symbols import SymbolTable, symbol_table
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.deps import ProjectionDep, SettingsDep, authenticate
from tickplane.api.errors import ApiError
from tickplane.api.projection import (
    OrderUpdate,
    PositionUpdate,
    Projection,
    Subscription,
)

__all__ = ["router"]

router = APIRouter(tags=["alpaca stream"])

TRADE_UPDATES: Final = "trade_updates"
# Tickplane's update names that Alpaca spells differently (`held`: an accepted stop,
# which Alpaca reports as `new`). `triggered` has no Alpaca event and is not sent.
_EVENTS: Final = {"held": "new", "change_rejected": "order_replace_rejected"}
_SKIPPED: Final = frozenset({"triggered"})
_AUTH_TIMEOUT: Final = 10.0
_NAMESPACE: Final = uuid.UUID("0c0f3b0e-4a63-4f4e-8c52-3f1d0b6a9e21")


def _message(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data})


def _authorization(status: str, message: str | None = None) -> str:
    data = {"status": status, "action": "authenticate"}
    if message is not None:
        data["message"] = message
    return _message("authorization", data)


def trade_update(
    update: OrderUpdate, units: SymbolUnits, position: int | None
) -> dict[str, Any] | None:
    """One order update as a trade_updates event's data (None: not an Alpaca event)."""
    if update.event in _SKIPPED:
        return None
    event = _EVENTS.get(update.event, update.event)
    if event == "canceled" and rendering.order_status(update.order) == "expired":
        event = "expired"
    data: dict[str, Any] = {
        "event": event,
        "timestamp": rendering.iso(update.ts_event),
        "order": rendering.order(update.order, units).model_dump(mode="json"),
    }
    fill = update.execution
    if fill is not None:
        data["execution_id"] = str(uuid.uuid5(_NAMESPACE, f"{fill.seq}:{fill.order_id}"))
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
        except ValueError:
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
    """One authenticated connection: what it listens to, and the account's updates."""

    def __init__(self, ws: WebSocket, account: str, projection: Projection) -> None:
        self.ws = ws
        self.account = account
        self.projection = projection
        self.listening = False
        self.positions = {p.symbol: p.qty for p in projection.positions(account)}

    async def commands(self) -> None:
        async for msg in _messages(self.ws):
            data = msg.get("data")
            if msg.get("action") not in ("listen", "unlisten") or not isinstance(data, dict):
                await self.ws.send_text(_message("error", {"message": "unknown action"}))
                continue
            streams = data.get("streams")
            wanted = isinstance(streams, list) and TRADE_UPDATES in streams
            self.listening = (
                wanted if msg["action"] == "listen" else (self.listening and not wanted)
            )
            now = [TRADE_UPDATES] if self.listening else []
            await self.ws.send_text(_message("listening", {"streams": now}))

    async def updates(self, sub: Subscription, symbols: SymbolTable, timeout: float) -> None:
        engine = self.projection.engine
        async for update in sub:
            if isinstance(update, PositionUpdate):
                self.positions[update.position.symbol] = update.position.qty
                continue
            if not isinstance(update, OrderUpdate) or not self.listening:
                continue
            order = update.order
            units = (await symbols.all(engine, timeout)).get(order.symbol)
            if units is None:
                continue
            position = None
            if update.execution is not None:
                # The engine publishes a fill's position change right after it.
                signed = update.execution.qty * (1 if order.side == "buy" else -1)
                position = self.positions.get(order.symbol, 0) + signed
                self.positions[order.symbol] = position
            data = trade_update(update, units, position)
            if data is not None:
                await self.ws.send_text(_message(TRADE_UPDATES, data))


@router.websocket("/stream")
async def trade_updates(ws: WebSocket, settings: SettingsDep, projection: ProjectionDep) -> None:
    """Alpaca's trading stream (see the module docstring)."""
    await ws.accept()
    account = await _login(ws)
    if account is None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1008)
        return
    symbols = symbol_table(ws.app.state)
    session = _Session(ws, account, projection)
    async with projection.subscribe(account=account, queue_size=settings.ws_queue_size) as sub:
        tasks = {
            asyncio.create_task(session.commands()),
            asyncio.create_task(session.updates(sub, symbols, settings.engine_timeout)),
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    # The client left, or fell too far behind (the subscription overflowed) or the
    # socket broke: in the last two cases, say so and close.
    if any(t.exception() is not None for t in done):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1011, reason="too slow: more updates queued than allowed")
