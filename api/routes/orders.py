"""`/api/v1/orders`: submit, list, read, replace and cancel the caller's orders.

Writes go to the engine; what the answers show is the projection of the engine's
events once it has applied the write (read-your-writes), so a write's answer and any
later read agree. Idempotency by `client_order_id` is the engine's: a retry of the
same order gets the same order back (200) and never a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response, status
from pydantic import ValidationError
from starlette.requests import HTTPConnection
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickplane.api.deps import (
    CurrentAccount,
    EngineDep,
    ProjectionDep,
    SettingsDep,
    authenticate,
)
from tickplane.api.engine import acked, engine_order
from tickplane.api.errors import ERROR_RESPONSES, ApiError
from tickplane.api.projection import (
    OrderRecord,
    Projection,
    apply_order_event,
    order_from_accepted,
    order_from_view,
)
from tickplane.api.schemas import (
    CanceledOrders,
    ClientOrderId,
    OrderClass,
    OrderCreate,
    OrderPage,
    OrderPublic,
    OrderReplace,
    PlainOrderCreate,
    Side,
)
from tickplane.api.settings import GatewaySettings
from tickplane.api.views import order_view
from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import OrderAccepted, OrderCanceled, OrderRejected

__all__ = ["SubmitRoute", "router", "settle"]

router = APIRouter(prefix="/orders", tags=["orders"])

OrderId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the engine's order id")]
MAX_ID = 2**63 - 1


def _ns(when: datetime) -> int:
    if when.tzinfo is None:  # a time without a zone is UTC
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1e9)


def _from_ack(ack: wire.Ack, account: str, order_id: int) -> OrderRecord | None:
    """The order as the reply's own events tell it (when the projection lags)."""
    record: OrderRecord | None = None
    for ev in ack.events:
        if isinstance(ev, OrderAccepted) and ev.id == order_id and ev.account == account:
            record = order_from_accepted(ev)
        elif record is not None:
            changed = apply_order_event(record, ev)
            if changed is not None:
                record = changed[0]
    return record


def _from_view(view: wire.OrderView, order: PlainOrderCreate | None = None) -> OrderPublic:
    """An order as the engine's order view shows it (the projection lags)."""
    if view.total_qty is not None:  # finished: the view says everything
        return order_view(order_from_view(view))
    status_ = {"held": "held", "routed": "pending_new"}.get(view.status, "new")
    return OrderPublic(
        id=view.id,
        client_order_id=order.client_order_id if order else None,
        account=view.account,
        symbol=view.symbol,
        side=view.side,  # type: ignore[arg-type]
        type=view.order_type,  # type: ignore[arg-type]
        qty=view.qty,
        filled_qty=0,
        open_qty=view.qty,
        avg_fill_price=None,
        limit_price=view.price,
        stop_price=view.stop_price,
        time_in_force=order.time_in_force if order else "gtc",
        post_only=order.post_only if order else False,
        status=status_,  # type: ignore[arg-type]
        reason=None,
        created_at=None,
        updated_at=None,
        seq=0,
        order_class=view.order_class,  # type: ignore[arg-type]
        parent_id=view.parent_id,
        leg=view.leg,  # type: ignore[arg-type]
        trail_price=view.trail_price,
        trail_percent=view.trail_percent,
    )


def _pending(order_id: int, account: str, order: PlainOrderCreate) -> OrderPublic:
    """An order handed to an outside venue that has not confirmed it yet."""
    order_class: OrderClass | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    if isinstance(order, OrderCreate):
        trail_price, trail_percent = order.trail_price, order.trail_percent
        if order.type == "trailing_stop":
            order_class = "simple"
        elif order.order_class != "simple":  # a plain order shows none
            order_class = order.order_class
    return OrderPublic(
        id=order_id,
        client_order_id=order.client_order_id,
        account=account,
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        qty=order.qty,
        filled_qty=0,
        open_qty=order.qty,
        avg_fill_price=None,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force,
        post_only=order.post_only,
        status="pending_new",
        reason=None,
        created_at=None,
        updated_at=None,
        seq=0,
        order_class=order_class,
        trail_price=trail_price,
        trail_percent=trail_percent,
    )


async def settle(
    projection: Projection,
    settings: GatewaySettings,
    account: str,
    ack: wire.Ack,
    order_id: int,
    order: PlainOrderCreate | None = None,
) -> OrderPublic:
    """The order after a write the engine acknowledged with `ack`: the reply's own
    refusal as an ApiError, else the projection once it applied the write (else,
    when it lags past the deadline, what the reply itself says)."""
    for ev in ack.events:
        if isinstance(ev, OrderRejected) and ev.id == order_id:
            raise ApiError.from_engine(ev.reason, f"order {order_id}: {ev.reason}")
    projection.note_write(account, ack.last_seq)
    await projection.wait_for(ack.last_seq, settings.read_your_writes_timeout)
    record = projection.order(account, order_id)
    if record is None:
        record = _from_ack(ack, account, order_id)
    if record is not None:
        return order_view(record, projection=projection)
    if ack.order is not None:
        return _from_view(ack.order, order)
    if order is not None:
        return _pending(order_id, account, order)
    raise ApiError(404, "unknown_order", f"no order {order_id}")


async def _submit(
    order: PlainOrderCreate,
    caller_account: str,
    engine: EngineClient,
    projection: Projection,
    settings: GatewaySettings,
) -> tuple[bool, OrderPublic]:
    """Submit `order` for the account; (a duplicate of an earlier one, the order)."""
    ack = await acked(
        engine.submit(
            caller_account,
            order.symbol,
            order.side,
            order.type,
            order.qty,
            price=order.limit_price,
            stop_price=order.stop_price,
            tif=order.time_in_force,
            post_only=order.post_only,
            client_order_id=order.client_order_id,
            **order.wire_class(),
        ),
        settings.engine_timeout,
    )
    if ack.order_id is None:
        raise ApiError(503, "engine_unavailable", "the engine acknowledged no order id")
    duplicate = bool(getattr(ack, "duplicate", False))
    return duplicate, await settle(projection, settings, caller_account, ack, ack.order_id, order)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": OrderPublic, "description": "a retry (same client_order_id): the order"},
        **ERROR_RESPONSES,
    },
)
async def create_order(
    order: OrderCreate,
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
    response: Response,
) -> OrderPublic:
    """Submit an order (prices in integer ticks, quantities in lots): plain, a trailing
    stop, or a bracket, OTO or OCO with its legs (docs/order-classes.md).

    With a `client_order_id`, a retry of the same order returns that order (200) and
    never submits a second one; the same id for a different order is a 422
    `client_order_id_reused`."""
    duplicate, answer = await _submit(order, caller.account, engine, projection, settings)
    if duplicate:
        response.status_code = status.HTTP_200_OK
    return answer


@router.get("", responses=ERROR_RESPONSES)
async def list_orders(
    caller: CurrentAccount,
    projection: ProjectionDep,
    settings: SettingsDep,
    status_: Annotated[
        Literal["open", "closed", "all"],
        Query(alias="status", description="open (default), closed or all"),
    ] = "open",
    symbol: Annotated[str | None, Query(max_length=32)] = None,
    side: Side | None = None,
    after: Annotated[datetime | None, Query(description="created after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="the next_cursor of the page before")
    ] = None,
) -> OrderPage:
    """The caller's orders, newest first, filtered; paged by `cursor` (or `offset`).

    The gateway keeps the last `max_closed_orders` closed orders per account (and every
    open one); older history is the recorder's."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    found = projection.orders(
        caller.account,
        status=status_,
        symbol=symbol,
        side=side,
        after_ns=None if after is None else _ns(after),
        until_ns=None if until is None else _ns(until),
    )
    if cursor is not None:
        found = [o for o in found if o.id < cursor]
    page = found[offset : offset + limit]
    more = len(found) > offset + limit
    return OrderPage(
        orders=[order_view(o, projection=projection) for o in page],
        next_cursor=page[-1].id if more and page else None,
    )


@router.get("/by-client-id/{client_order_id}", responses=ERROR_RESPONSES)
async def read_order_by_client_id(
    client_order_id: Annotated[ClientOrderId, Path()],
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """The caller's order with this `client_order_id` (one the projection no longer
    holds, as the engine keeps it: see `GET /orders/{order_id}`)."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    record = projection.order_by_client_id(caller.account, client_order_id)
    if record is None:
        record = await engine_order(
            engine, caller.account, settings.engine_timeout, client_order_id=client_order_id
        )
    if record is None:
        raise ApiError(404, "unknown_order", f"no order with client_order_id {client_order_id!r}")
    return order_view(record, projection=projection)


@router.get("/{order_id}", responses=ERROR_RESPONSES)
async def read_order(
    order_id: OrderId,
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """One of the caller's orders (another account's is a 404, like no order). A closed
    order the gateway no longer holds (beyond `max_closed_orders`, or from before its
    event history) comes from the engine, which keeps the last `finished_orders`
    finished ones: its final status, fills and reason (`seq` 0)."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    record = projection.order(caller.account, order_id)
    if record is None:
        record = await engine_order(engine, caller.account, settings.engine_timeout, order_id)
    if record is None:
        raise ApiError(404, "unknown_order", f"no order {order_id}")
    return order_view(record, projection=projection)


@router.patch("/{order_id}", responses=ERROR_RESPONSES)
async def replace_order(
    order_id: OrderId,
    change: OrderReplace,
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Replace an open order's quantity (the new open quantity) and/or limit price; a
    held stop-loss leg's stop price; a trailing stop's quantity and/or trail."""
    ack = await acked(
        engine.replace(
            caller.account,
            order_id,
            qty=change.qty,
            price=change.limit_price,
            stop_price=change.stop_price,
            trail_price=change.trail_price,
            trail_percent=change.trail_percent,
        ),
        settings.engine_timeout,
    )
    return await settle(projection, settings, caller.account, ack, order_id)


@router.delete("/{order_id}", responses=ERROR_RESPONSES)
async def cancel_order(
    order_id: OrderId,
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Cancel one of the caller's open orders."""
    ack = await acked(engine.cancel(caller.account, order_id), settings.engine_timeout)
    return await settle(projection, settings, caller.account, ack, order_id)


@router.delete("", responses=ERROR_RESPONSES)
async def cancel_orders(
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
    symbol: Annotated[str | None, Query(max_length=32, description="only this symbol's")] = None,
) -> CanceledOrders:
    """Cancel every open order of the caller's account (of `symbol`, if given)."""
    ack = await acked(engine.mass_cancel(caller.account, symbol), settings.engine_timeout)
    projection.note_write(caller.account, ack.last_seq)
    await projection.wait_for(ack.last_seq, settings.read_your_writes_timeout)
    canceled: list[OrderPublic] = []
    for ev in ack.events:
        if isinstance(ev, OrderCanceled) and ev.account == caller.account:
            record = projection.order(caller.account, ev.id) or _from_ack(ack, ev.account, ev.id)
            if record is not None:
                canceled.append(order_view(record, "canceled", projection))
    return CanceledOrders(canceled=canceled)


# -- the hot path: POST /orders without FastAPI's request machinery ---------------------------

_JSON = b"application/json"
_KEY_ID = b"apca-api-key-id"
_SECRET = b"apca-api-secret-key"
_CONTENT_TYPE = b"content-type"
_HANDED_OVER = "tickplane.submit_handed_over"


class SubmitRoute(Route):
    """`POST /api/v1/orders` served ahead of its FastAPI route, for speed.

    FastAPI's dependency resolution, request and response objects and answer
    validation cost several times the engine round trip and the projection together.
    This route reads the body itself and validates a plain order with `OrderCreate`'s
    plain part, `PlainOrderCreate` (pydantic, in Python mode, as FastAPI does),
    authenticates with the same `authenticate()` and answers the same `OrderPublic`
    JSON. Anything it does not take for certain (an order class or a trailing stop
    included) goes back, untouched, through `router` to the FastAPI route, which
    answers as it always did: a body that does not parse or validate (so every 422
    keeps its exact shape), a content type other than `application/json`. Other
    methods never match here. It is not in the OpenAPI (the FastAPI route documents
    the endpoint)."""

    def __init__(self, path: str, router: ASGIApp) -> None:
        super().__init__(path, self._never_called, methods=["POST"], include_in_schema=False)
        self.router = router

    @staticmethod
    async def _never_called() -> None:  # pragma: no cover - `handle` is overridden
        raise NotImplementedError

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "POST" or _HANDED_OVER in scope:
            return Match.NONE, {}
        if scope["path"] == self.path and not scope.get("root_path"):
            # what Route.matches would find, without its regex and path rebuilding
            return Match.FULL, {"endpoint": self.endpoint, "path_params": {}, "route": self}
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        child["route"] = self  # the metrics label it by template
        return match, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        content_type = key_id = secret = None
        for name, value in scope["headers"]:
            if name == _CONTENT_TYPE and content_type is None:
                content_type = value
            elif name == _KEY_ID and key_id is None:
                key_id = value.decode("latin-1")
            elif name == _SECRET and secret is None:
                secret = value.decode("latin-1")
        order = _order(bytes(body), content_type)
        if order is None:
            scope[_HANDED_OVER] = True
            await self.router(scope, _replay(bytes(body), receive), send)
            return
        state = scope["app"].state
        try:
            caller = await authenticate(HTTPConnection(scope), key_id, secret)
            duplicate, answer = await _submit(
                order, caller.account, state.engine, state.projection, state.settings
            )
        except ApiError as exc:
            err = orjson.dumps({"reason": exc.reason, "message": exc.message})
            await _answer(send, exc.status, err, exc.headers)
            return
        await _answer(send, 200 if duplicate else 201, answer.model_dump_json().encode())


def _order(body: bytes, content_type: bytes | None) -> PlainOrderCreate | None:
    """The plain order in `body`, or None when FastAPI's route should answer it: a
    content type it might read otherwise, JSON that Python's `json` might read otherwise
    (orjson refuses NaN, huge integers, lone surrogates), an invalid order, or an order
    class or trailing stop (rare: OrderCreate's fields would cost every plain order)."""
    if content_type is not None and content_type != _JSON:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    try:
        return PlainOrderCreate.model_validate(data)
    except ValidationError:
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` with the body, already read, given back first."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _answer(
    send: Send, status_code: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": body})
