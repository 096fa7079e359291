"""Native WebSockets: `/api/v1/ws/orders` (the caller's order updates and fills, and order
entry) and `/api/v1/ws/market/{symbol}` (top of book, L2 deltas, trades, halts).

Auth: the key headers on the handshake, or (browsers cannot set headers) a first
message `{"action": "auth", "key_id": ..., "secret": ...}` within `AUTH_SECONDS`.
A failed auth closes with 1008 and the reason.

Every server frame is a JSON array of messages (a busy stream sends several per frame).
Each client gets bounded queues (`ws_queue_size`: updates not yet taken from the
projection, and frames not yet written to the socket): a client that falls that far
behind is closed with `SLOW_CLIENT` (4008, "slow client: ...") and never slows the
projection or other clients.

Order entry on `/ws/orders` (a frame: one action object, or an array of them):
`{"action": "submit", "ref": "r1", "symbol": "GOOG", "side": "buy", "type": "limit",
"qty": 10, "limit_price": 58000}` (the fields of `POST /orders`), `{"action": "cancel",
"ref": ..., "order_id": 42}`, `{"action": "replace", "ref": ..., "order_id": 42, "qty": 5,
"limit_price": 58010}` (the fields of `PATCH /orders/{id}`), `{"action": "ping"}`. Each
is answered by `{"type": "ack", "ref", "action", "order_id", "duplicate", "last_seq"}` or
`{"type": "error", "ref", "reason", "message"}`; what happens next to the order comes
as `{"type": "order", "event", "seq", "ts", "order", "execution"}` updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from typing import Any, Literal

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from tickplane.api.deps import KEY_ID_HEADER, SECRET_HEADER, Caller, authenticate
from tickplane.api.engine import ack_of, acked
from tickplane.api.errors import ApiError
from tickplane.api.metrics import GatewayMetrics
from tickplane.api.projection import (
    Execution,
    MarketUpdate,
    OrderRecord,
    OrderUpdate,
    Position,
    PositionUpdate,
    Projection,
    Subscription,
    SubscriptionOverflow,
    Update,
)
from tickplane.api.quick_orders import QuickOrder, fits_the_type, quick_order
from tickplane.api.schemas import OrderCreate, OrderReplace
from tickplane.api.settings import GatewaySettings
from tickplane.core import wire
from tickplane.core.client import EngineClient

__all__ = ["AUTH_SECONDS", "SLOW_CLIENT", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ws", tags=["websockets"])

AUTH_SECONDS = 5.0
SLOW_CLIENT = 4008  # a private-use close code: "you read too slowly"
POLICY = 1008
_json = msgspec.json.Encoder()
_MAX_BATCH = 1000  # actions in one client frame
_MAX_IN_FLIGHT = 10_000  # actions of one client sent to the engine and not yet answered


class _SlowClient(Exception):
    pass


class _Outbox:
    """What goes to one client: items (lists of messages, one frame each) bounded by
    `size`; a `push` past it marks the client slow."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: deque[Any] = deque()
        self.ready = asyncio.Event()
        self.slow = False

    def push(self, item: Any) -> None:
        if len(self.items) >= self.size:
            self.slow = True
        else:
            self.items.append(item)
        self.ready.set()

    async def take(self) -> list[Any]:
        while not self.items:
            if self.slow:
                raise _SlowClient
            self.ready.clear()
            await self.ready.wait()
        out = list(self.items)
        self.items.clear()
        return out


# The busiest messages as structs, not dicts: encoded the same (fields in this order),
# built and encoded in half the time; a client gets two order messages per order.


class _OrderMessage(msgspec.Struct):
    type: str
    event: str
    seq: int
    ts: int
    order: OrderRecord
    execution: Execution | None


class _PositionMessage(msgspec.Struct):
    type: str
    seq: int
    position: Position
    cash: int


class _AckMessage(msgspec.Struct):
    type: str
    ref: Any
    action: Any
    order_id: int | None
    duplicate: bool
    last_seq: int


def _update_message(u: Update) -> _OrderMessage | _PositionMessage | dict[str, Any]:
    if isinstance(u, OrderUpdate):
        return _OrderMessage("order", u.event, u.seq, u.ts_event, u.order, u.execution)
    if isinstance(u, PositionUpdate):
        return _PositionMessage("position", u.seq, u.position, u.cash)
    assert isinstance(u, MarketUpdate)
    if u.kind == "trade" and u.trade is not None:
        t = u.trade
        return {
            "type": "trade",
            "symbol": u.symbol,
            "seq": t.seq,
            "ts": t.ts_event,
            "price": t.price,
            "qty": t.qty,
            "taker_side": t.taker_side,
        }
    if u.kind == "top" and u.top is not None:
        return {"type": "top", **_levels(u.top)}
    if u.kind == "delta" and u.delta is not None:
        return {"type": "delta", **_levels(u.delta)}
    if u.kind == "gap":
        return {
            "type": "gap",
            "symbol": u.symbol,
            "from_md_seq": u.from_md_seq,
            "to_md_seq": u.to_md_seq,
        }
    return {"type": u.kind, "symbol": u.symbol}


def _levels(md: Any) -> dict[str, Any]:
    out = {
        "symbol": md.symbol,
        "md_seq": md.md_seq,
        "ts": md.ts_event,
        "bids": [[lv.price, lv.qty, lv.orders] for lv in md.bids],
        "asks": [[lv.price, lv.qty, lv.orders] for lv in md.asks],
    }
    if hasattr(md, "last_price"):
        out["last_price"] = md.last_price
    return out


async def _authenticated(ws: WebSocket) -> Caller | None:
    """Accept the socket and authenticate its caller (None: closed with the reason)."""
    key_id, secret = ws.headers.get(KEY_ID_HEADER), ws.headers.get(SECRET_HEADER)
    await ws.accept()
    if not (key_id and secret):
        try:
            async with asyncio.timeout(AUTH_SECONDS):
                first = await ws.receive_text()
            msg = msgspec.json.decode(first)
        except TimeoutError:
            await ws.close(POLICY, "send the key headers, or an auth message first")
            return None
        except (msgspec.DecodeError, RecursionError, KeyError, RuntimeError, WebSocketDisconnect):
            with contextlib.suppress(RuntimeError):
                await ws.close(POLICY, "the first message must be a JSON auth message")
            return None
        if not isinstance(msg, dict) or msg.get("action") != "auth":
            await ws.close(POLICY, 'the first message must be {"action": "auth", ...}')
            return None
        key_id, secret = msg.get("key_id"), msg.get("secret")
        if not isinstance(key_id, str) or not isinstance(secret, str):
            await ws.close(POLICY, "auth needs key_id and secret strings")
            return None
    try:
        caller = await authenticate(ws, key_id, secret, limit=False)
    except ApiError as exc:
        await ws.close(POLICY, exc.message[:120])
        return None
    return caller


async def _pump(sub: Subscription, outbox: _Outbox) -> None:
    """Projection updates into the client's outbox: whatever queued up meanwhile goes as
    one outbox item (one frame), so the outbox counts frames the client has not taken."""
    try:
        while not outbox.slow:
            first = await sub.get()
            outbox.push([_update_message(u) for u in (first, *sub.drain())])
    except SubscriptionOverflow:
        outbox.slow = True
    # Ending wakes `_serve`, which drops the client: its writer may be stuck in a send
    # that waits for a client that does not read.


async def _write(ws: WebSocket, outbox: _Outbox) -> None:
    while True:
        batch = list(itertools.chain.from_iterable(await outbox.take()))
        await ws.send_text(_json.encode(batch).decode())


async def _serve(
    ws: WebSocket,
    stream: str,
    sub: Subscription,
    outbox: _Outbox,
    reader: Any,
) -> None:
    """Run the pump, the writer and the reader until one ends; close as it says."""
    metrics: GatewayMetrics = ws.app.state.metrics
    metrics.ws_clients.labels(stream).inc()
    tasks = [
        asyncio.create_task(_pump(sub, outbox)),
        asyncio.create_task(_write(ws, outbox)),
        asyncio.create_task(reader),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        slow = outbox.slow or any(
            t.done() and not t.cancelled() and isinstance(t.exception(), _SlowClient) for t in done
        )
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        metrics.ws_clients.labels(stream).dec()
    if slow:
        metrics.ws_dropped.labels(stream).inc()
        await _close(ws, SLOW_CLIENT, f"slow client: more than {outbox.size} messages behind")
    else:
        await _close(ws, 1000, "")


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close, but never wait long on a client that does not read: the close frame is
    queued behind what its socket holds, and the server closes the connection once the
    handler returns."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await ws.close(code, reason)


# -- /ws/orders ------------------------------------------------------------------------------


def _error(ref: Any, reason: str, message: str) -> dict[str, Any]:
    return {"type": "error", "ref": ref, "reason": reason, "message": message}


# (its reply read as a head: the events stay encoded unless they hold a rejection)
_Started = tuple[Any, str, "asyncio.Future[wire.ReplyHead]"]


def _start(msg: Any, caller: Caller, engine: EngineClient) -> _Started | dict[str, Any]:
    """One order-entry action validated and sent to the engine now: (its ref, the
    action, the reply to come); or its answer already (an error, a pong)."""
    if not isinstance(msg, dict):
        return _error(None, "invalid_request", "an action is a JSON object")
    fields = dict(msg)
    ref = fields.pop("ref", None)
    action = fields.pop("action", None)
    try:
        if action == "submit":
            # the common plain shape without pydantic; anything else through OrderCreate
            order: QuickOrder | OrderCreate | None = quick_order(fields)
            if order is None:
                order = OrderCreate.model_validate(fields)
            return _submit(ref, order, caller, engine)
        if action in ("cancel", "replace"):
            order_id = fields.pop("order_id", None)
            if type(order_id) is not int or not 1 <= order_id < 2**63:
                return _error(ref, "invalid_request", "order_id: a positive integer")
            if action == "cancel":
                if fields:
                    return _error(ref, "invalid_request", f"unknown fields {sorted(fields)}")
                request: wire.Request = wire.CancelOrder(
                    engine.next_req(), caller.account, order_id
                )
            else:
                change = OrderReplace.model_validate(fields)
                request = wire.ReplaceOrder(
                    engine.next_req(),
                    caller.account,
                    order_id,
                    change.qty,
                    change.limit_price,
                    change.stop_price,
                    change.trail_price,
                    change.trail_percent,
                )
        elif action == "ping":
            return {"type": "pong", "ref": ref}
        else:
            return _error(ref, "invalid_request", "action: submit, cancel, replace or ping")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        text = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return _error(ref, "invalid_request", f"{where}: {text}" if where else text)
    return ref, action, engine.send_head(request)


def _submit(
    ref: Any, order: QuickOrder | OrderCreate, caller: Caller, engine: EngineClient
) -> _Started:
    """A validated new order sent to the engine now."""
    request = wire.NewOrder(
        engine.next_req(),
        caller.account,
        order.symbol,
        order.side,
        order.type,
        order.qty,
        order.limit_price,
        order.stop_price,
        order.time_in_force,
        order.post_only,
        order.client_order_id,
    )
    if type(order) is OrderCreate and (classed := order.wire_class()):
        request = msgspec.structs.replace(request, **classed)
    return ref, "submit", engine.send_head(request)


class _QuickSubmit(QuickOrder, kw_only=True):
    """A submit action in the plain shape (`quick_orders`), with its action and ref."""

    action: Literal["submit"]
    ref: Any = None


# A frame of plain submits (the usual frame of a client that streams orders) decodes
# straight into structs, without a dict per action; any other frame (another action, a
# field in another shape, an error to answer) takes the general path, `_start`.
_quick_frame = msgspec.json.Decoder(list[_QuickSubmit] | _QuickSubmit)


def _quick_submits(text: str) -> list[_QuickSubmit] | None:
    """The frame's submits, if it holds only plain ones that `OrderCreate` takes as they
    are (the rule across fields included); None: the general path answers it."""
    try:
        frame = _quick_frame.decode(text)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included; deep nesting
        return None
    if not isinstance(frame, list):
        frame = [frame]
    if len(frame) > _MAX_BATCH:
        return None
    try:
        for order in frame:
            fits_the_type(order)
    except ValueError:
        return None
    return frame


def _answer(
    started: _Started, caller: Caller, projection: Projection, settings: GatewaySettings
) -> _AckMessage | dict[str, Any]:
    """The answer to an action sent by `_start`, once its reply is in (a done future)."""
    ref, action, reply = started
    try:
        ack = ack_of(reply, settings.engine_timeout)
    except ApiError as exc:
        return _error(ref, exc.reason, exc.message)
    rejected = ack.rejection()
    if rejected is not None:
        return _error(ref, rejected.reason, f"order {ack.order_id}: {rejected.reason}")
    projection.note_write(caller.account, ack.last_seq)
    return _AckMessage("ack", ref, action, ack.order_id, ack.duplicate, ack.last_seq)


class _Frames:
    """One client's frames of actions sent to the engine and not yet answered.

    A frame is answered, whole and in its order, when its replies are in: a callback on
    its last reply does it (the engine answers in the order sent, so the others are in
    by then; when one is not, as when the socket made a send wait, a task waits for the
    rest). A task or a coroutine per frame, or per order, cost more than the answers:
    with one order per frame, the task was most of the frame's cost."""

    def __init__(
        self,
        caller: Caller,
        outbox: _Outbox,
        projection: Projection,
        settings: GatewaySettings,
    ) -> None:
        self.caller = caller
        self.outbox = outbox
        self.projection = projection
        self.settings = settings
        self.actions = 0  # in flight
        self.room = asyncio.Event()
        self.closed = False
        self._waiting: set[asyncio.Task[None]] = set()

    def add(self, started: list[_Started | dict[str, Any]], last: asyncio.Future[Any]) -> None:
        """Answer `started` once `last` (its last reply) is in."""
        self.actions += len(started)
        last.add_done_callback(lambda _: self._last_in(started))

    async def wait_room(self, actions: int) -> None:
        """Until `actions` more fit within `_MAX_IN_FLIGHT` (or nothing is in flight)."""
        while self.actions and self.actions + actions > _MAX_IN_FLIGHT:
            self.room.clear()
            await self.room.wait()

    def close(self) -> None:
        self.closed = True
        for task in list(self._waiting):
            task.cancel()

    def _last_in(self, started: list[_Started | dict[str, Any]]) -> None:
        if self.closed:
            return
        if all(isinstance(s, dict) or s[2].done() for s in started):
            self._answer(started)
            return
        task = asyncio.get_running_loop().create_task(self._wait_then_answer(started))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _wait_then_answer(self, started: list[_Started | dict[str, Any]]) -> None:
        for s in started:
            if not isinstance(s, dict) and not s[2].done():
                with contextlib.suppress(Exception):  # `_answer` reads it from the future
                    await s[2]
        self._answer(started)

    def _answer(self, started: list[_Started | dict[str, Any]]) -> None:
        caller, projection, settings = self.caller, self.projection, self.settings
        self.outbox.push(
            [
                s if isinstance(s, dict) else _answer(s, caller, projection, settings)
                for s in started
            ]
        )
        self.actions -= len(started)
        self.room.set()


async def _read_orders(
    ws: WebSocket,
    caller: Caller,
    outbox: _Outbox,
    engine: EngineClient,
    projection: Projection,
    settings: GatewaySettings,
) -> None:
    """Read frames of actions and send each to the engine as soon as it is read, without
    waiting for the answers of earlier frames (a client pipelines as deep as it likes,
    up to `_MAX_IN_FLIGHT` actions): each frame is answered when its replies are all in,
    so frames may be answered out of order (`ref` says which is which)."""
    frames = _Frames(caller, outbox, projection, settings)
    try:
        while not outbox.slow:
            try:
                text = await ws.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            quick = _quick_submits(text)
            if quick is not None:
                await frames.wait_room(len(quick))
                started: list[_Started | dict[str, Any]] = [
                    _submit(q.ref, q, caller, engine) for q in quick
                ]
            else:
                try:
                    msg = msgspec.json.decode(text)
                except (msgspec.DecodeError, RecursionError):  # nested past the limit too
                    outbox.push([_error(None, "invalid_request", "frames are JSON")])
                    continue
                if isinstance(msg, list):
                    if len(msg) > _MAX_BATCH:
                        error = _error(None, "invalid_request", f"at most {_MAX_BATCH} actions")
                        outbox.push([error])
                        continue
                else:
                    msg = [msg]
                await frames.wait_room(len(msg))
                started = [_start(m, caller, engine) for m in msg]
            last = None
            for s in started:
                if not isinstance(s, dict):
                    last = s[2]
            if last is None:
                outbox.push(started)
            else:
                frames.add(started, last)
    finally:
        frames.close()


@router.websocket("/orders")
async def ws_orders(ws: WebSocket) -> None:
    """The caller's order updates, fills and positions; and order entry."""
    caller = await _authenticated(ws)
    if caller is None:
        return
    projection: Projection = ws.app.state.projection
    settings: GatewaySettings = ws.app.state.settings
    engine: EngineClient = ws.app.state.engine
    outbox = _Outbox(settings.ws_queue_size)
    async with projection.subscribe(
        account=caller.account, queue_size=settings.ws_queue_size
    ) as sub:
        outbox.push([{"type": "authenticated", "account": caller.account}])
        await _serve(
            ws,
            "orders",
            sub,
            outbox,
            _read_orders(ws, caller, outbox, engine, projection, settings),
        )


# -- /ws/market/{symbol} -----------------------------------------------------------------------


async def _read_until_closed(ws: WebSocket) -> None:
    """A market stream takes no messages: read only to notice the client leaving."""
    while True:
        try:
            await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return


@router.websocket("/market/{symbol}")
async def ws_market(ws: WebSocket, symbol: str) -> None:
    """The symbol's top of book (first the current one), L2 deltas, trades and halts.
    Tops and deltas come in md_seq order without a hole from the first top on; numbers
    the engine no longer keeps come as one `gap` message instead."""
    caller = await _authenticated(ws)
    if caller is None:
        return
    engine: EngineClient = ws.app.state.engine
    settings: GatewaySettings = ws.app.state.settings
    try:
        ack = await acked(engine.get_book(symbol, 10), settings.engine_timeout)
    except ApiError as exc:
        await ws.close(POLICY, f"{exc.reason}: {exc.message}"[:120])
        return
    projection: Projection = ws.app.state.projection
    outbox = _Outbox(settings.ws_queue_size)
    async with projection.subscribe_market(symbol, queue_size=settings.ws_queue_size) as sub:
        first = [{"type": "subscribed", "symbol": symbol}]
        if ack.book is not None:
            # the projection's last top (the updates continue it), or the engine's
            first.append({"type": "top", **_levels(projection.market_start(ack.book))})
        outbox.push(first)
        await _serve(ws, "market", sub, outbox, _read_until_closed(ws))
