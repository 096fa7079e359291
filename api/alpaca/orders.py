"""`/v2/orders`: Alpaca's order endpoints over the engine and the projection."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from tickplane.api.alpaca import rendering
from tickplane.api.alpaca.deps import Ctx, CtxDep
from tickplane.api.alpaca.errors import (
    UNAVAILABLE,
    UNPROCESSABLE,
    AlpacaError,
    AlpacaRoute,
    from_api_error,
)
from tickplane.api.alpaca.ids import engine_order_id, order_uuid
from tickplane.api.alpaca.rendering import Link
from tickplane.api.alpaca.schemas import (
    AlpacaCancelResult,
    AlpacaErrorBody,
    AlpacaOrder,
    AlpacaOrderCreate,
    AlpacaOrderReplace,
)
from tickplane.api.alpaca.times import parse_time
from tickplane.api.alpaca.units import SymbolUnits, decimal_of
from tickplane.api.engine import acked, engine_order
from tickplane.api.errors import ApiError
from tickplane.api.projection import OrderRecord, apply_order_event, order_from_accepted
from tickplane.core import wire
from tickplane.core.events import Event, OrderAccepted, OrderCanceled, OrderRejected

__all__ = ["place_order", "router"]

router = APIRouter(route_class=AlpacaRoute, tags=["alpaca orders"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": AlpacaErrorBody, "description": what}
    for code, what in (
        (401, "no key, or an unknown or revoked one"),
        (403, "refused: a risk limit, a halt, a kill switch"),
        (404, "no such order of this account"),
        (422, "bad input, or an order in a state that refuses the request"),
        (503, "the engine did not answer"),
    )
}
_TIFS = {"day": "day", "gtc": "gtc", "ioc": "ioc", "fok": "fok"}
_PRICED = {"limit", "stop_limit"}
_STOPPED = {"stop", "stop_limit"}
_CLASSES = {"bracket", "oto", "oco"}  # the classes whose orders have legs


def _refused(reason: str) -> AlpacaError:
    return from_api_error(ApiError.from_engine(reason))


def _check_prices(body: AlpacaOrderCreate, units: SymbolUnits) -> tuple[int | None, int | None]:
    """The order's limit and stop prices in ticks (each present exactly when its type
    uses it; an OCO's limit may be left out: it is its take-profit's)."""
    limit = stop = None
    if body.type in _PRICED:
        if body.limit_price is not None:
            limit = units.ticks(body.limit_price, "limit_price")
        elif body.order_class != "oco":
            raise AlpacaError.invalid(f"limit_price is required for {body.type} orders")
    elif body.limit_price is not None:
        raise AlpacaError.invalid(f"limit_price is not allowed for {body.type} orders")
    if body.type in _STOPPED:
        if body.stop_price is None:
            raise AlpacaError.invalid(f"stop_price is required for {body.type} orders")
        stop = units.ticks(body.stop_price, "stop_price")
    elif body.stop_price is not None:
        raise AlpacaError.invalid(f"stop_price is not allowed for {body.type} orders")
    return limit, stop


@dataclass(frozen=True)
class OrderClass:
    """What makes an order more than a plain one, in the engine's units
    (docs/order-classes.md): its class and legs, or its trail."""

    order_class: str | None = None
    take_profit: wire.TakeProfit | None = None
    stop_loss: wire.StopLoss | None = None
    trail_price: int | None = None
    trail_percent: float | None = None


def _order_class(body: AlpacaOrderCreate, units: SymbolUnits) -> OrderClass:
    """The request's class, legs and trail; the engine checks how they fit together
    (a 422 with its reason when they do not)."""
    take_profit = stop_loss = None
    if body.take_profit is not None:
        take_profit = wire.TakeProfit(
            units.ticks(body.take_profit.limit_price, "take_profit.limit_price")
        )
    if body.stop_loss is not None:
        leg = body.stop_loss
        stop_loss = wire.StopLoss(
            units.ticks(leg.stop_price, "stop_loss.stop_price"),
            None
            if leg.limit_price is None
            else units.ticks(leg.limit_price, "stop_loss.limit_price"),
        )
    trail_price = trail_percent = None
    if body.trail_price is not None:
        trail_price = units.ticks(body.trail_price, "trail_price")
    if body.trail_percent is not None:
        trail_percent = float(decimal_of(body.trail_percent, "trail_percent"))
    if body.type == "trailing_stop" and (trail_price is None) == (trail_percent is None):
        raise AlpacaError.invalid("a trailing_stop order takes trail_price or trail_percent")
    return OrderClass(
        None if body.order_class in (None, "simple") else body.order_class,
        take_profit,
        stop_loss,
        trail_price,
        trail_percent,
    )


def _folded(events: list[Any], order_id: int) -> OrderRecord | None:
    """The order as its submission's own events tell it (when the projection lags)."""
    record = None
    for ev in events:
        if isinstance(ev, OrderAccepted) and ev.id == order_id:
            record = order_from_accepted(ev)
        elif record is not None:
            changed = apply_order_event(record, ev)
            if changed is not None:
                record = changed[0]
    return record


async def _settled(ctx: Ctx, ack: wire.Ack, order_id: int) -> OrderRecord:
    """The order after the engine's reply, read from the projection once it caught up."""
    await ctx.caught_up(ack.last_seq)
    record = ctx.projection.order(ctx.account, order_id) or _folded(ack.events, order_id)
    if record is None:
        raise AlpacaError(
            503, UNAVAILABLE, f"order {order_id} was accepted but is not visible yet; retry"
        )
    return record


class Renderer:
    """Renders the caller's orders with their class, legs and trail: the projection's
    records carry them (open or closed); the engine's views of the open orders (one
    ListOrders) add a trailing stop's current stop, and a submission's OrderAccepted
    events what the projection may not have applied yet."""

    def __init__(self, ctx: Ctx, links: dict[int, Link], every: dict[str, SymbolUnits]):
        self.ctx = ctx
        self.links = links
        self.every = every

    @classmethod
    async def load(cls, ctx: Ctx, events: list[Event] | None = None) -> Renderer:
        ack = await acked(ctx.engine.list_orders(ctx.account), ctx.timeout)
        links = {v.id: Link.of(v) for v in ack.orders or []}
        for ev in events or []:
            if isinstance(ev, OrderAccepted) and ev.id not in links:
                links[ev.id] = Link.of(ev)
        return cls(ctx, links, await ctx.all_units())

    def render(self, record: OrderRecord, *, nested: bool = False) -> AlpacaOrder:
        units = self.every[record.symbol]
        link = self.links.get(record.id) or Link.of(record)
        legs = None
        if nested and record.order_class in _CLASSES and not record.is_leg:
            kept = self.ctx.projection.legs(self.ctx.account, record.id)
            legs = [self.render(leg) for leg in kept] or None
        held = rendering.waiting_leg(record)
        return rendering.order(record, units, link, held=held, legs=legs)


async def place_order(
    ctx: Ctx,
    units: SymbolUnits,
    side: str,
    order_type: str,
    lots: int,
    *,
    tif: str,
    limit: int | None = None,
    stop: int | None = None,
    client_order_id: str | None = None,
    extra: OrderClass | None = None,
) -> tuple[OrderRecord, list[Event]]:
    """Submit one order to the engine: the order as the projection sees it, and the
    events of the submission; an engine refusal is raised as an AlpacaError."""
    extra = extra or OrderClass()
    ack = await acked(
        ctx.engine.submit(
            ctx.account,
            units.symbol,
            side,
            order_type,
            lots,
            price=limit,
            stop_price=stop,
            tif=tif,
            client_order_id=client_order_id or str(uuid.uuid4()),
            order_class=extra.order_class,
            take_profit=extra.take_profit,
            stop_loss=extra.stop_loss,
            trail_price=extra.trail_price,
            trail_percent=extra.trail_percent,
        ),
        ctx.timeout,
    )
    assert ack.order_id is not None
    for ev in ack.events:
        if isinstance(ev, OrderRejected) and ev.id == ack.order_id:
            raise _refused(ev.reason)
    return await _settled(ctx, ack, ack.order_id), ack.events


@router.post("/orders", responses=ERRORS)
async def submit_order(body: AlpacaOrderCreate, ctx: CtxDep) -> AlpacaOrder:
    """Submit an order (Alpaca's `POST /v2/orders`): quantities in whole shares, prices
    as decimals on the symbol's tick. A `client_order_id` already used for the same
    order returns that order; used for another order, it is a 422."""
    units = await ctx.units(body.symbol)
    if body.notional is not None:
        raise AlpacaError.invalid(
            "notional orders are not supported: Tickplane trades whole shares; send qty"
        )
    if body.qty is None:
        raise AlpacaError.invalid("qty is required")
    tif = _TIFS.get(body.time_in_force)
    if tif is None:
        raise AlpacaError.invalid(f"time_in_force {body.time_in_force} is not supported")
    lots = units.lots(body.qty)
    limit, stop = _check_prices(body, units)
    extra = _order_class(body, units)
    record, events = await place_order(
        ctx,
        units,
        body.side,
        body.type,
        lots,
        tif=tif,
        limit=limit,
        stop=stop,
        client_order_id=body.client_order_id,
        extra=extra,
    )
    if extra == OrderClass():
        return rendering.order(record, units)
    return (await Renderer.load(ctx, events)).render(record, nested=True)


@router.get("/orders", responses=ERRORS)
async def list_orders(
    ctx: CtxDep,
    order_status: Annotated[
        Literal["open", "closed", "all"], Query(alias="status", description="default open")
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[
        str | None, Query(description="submitted after (RFC 3339, or a date: New York midnight)")
    ] = None,
    until: Annotated[
        str | None, Query(description="submitted until (RFC 3339, or a date: New York midnight)")
    ] = None,
    direction: Literal["asc", "desc"] = "desc",
    nested: bool = False,
    symbols: Annotated[str | None, Query(description="comma-separated")] = None,
    side: Literal["buy", "sell"] | None = None,
) -> list[AlpacaOrder]:
    """The caller's orders, newest first by default (`direction=asc`: oldest first),
    at most `limit`. With `nested`, the legs of a bracket, OTO or OCO come inside their
    parent rather than as entries of their own."""
    wanted = {s.strip() for s in symbols.split(",") if s.strip()} if symbols else None
    records = ctx.projection.orders(
        ctx.account,
        status=order_status,
        side=side,
        after_ns=None if after is None else parse_time(after, "after"),
        until_ns=None if until is None else parse_time(until, "until"),
    )
    renderer = await Renderer.load(ctx)
    records = [r for r in records if r.symbol in renderer.every]
    if wanted is not None:
        records = [r for r in records if r.symbol in wanted]
    if nested:  # legs come inside their parents
        records = [r for r in records if not r.is_leg]
    records.sort(key=lambda r: (r.created_ns, r.id), reverse=direction == "desc")
    return [renderer.render(r, nested=nested) for r in records[:limit]]


def _projected(ctx: Ctx, order_id: str) -> tuple[int | None, OrderRecord | None]:
    """The engine's id of this UUID (None: not one of ours) and the caller's order the
    projection holds under it."""
    oid = engine_order_id(order_id)
    return oid, None if oid is None else ctx.projection.order(ctx.account, oid)


def _not_found(order_id: str) -> AlpacaError:
    return AlpacaError.not_found(f"order not found for {order_id}")


def _own(ctx: Ctx, order_id: str) -> OrderRecord:
    """The caller's order with this UUID, or a 404."""
    record = _projected(ctx, order_id)[1]
    if record is None:
        raise _not_found(order_id)
    return record


@router.get("/orders:by_client_order_id", responses=ERRORS)
async def get_order_by_client_order_id(client_order_id: str, ctx: CtxDep) -> AlpacaOrder:
    """The caller's order with this `client_order_id` (one the gateway no longer holds
    as the engine keeps it: see `GET /orders/{order_id}`)."""
    record = ctx.projection.order_by_client_id(ctx.account, client_order_id)
    if record is None:
        record = await engine_order(
            ctx.engine, ctx.account, ctx.timeout, client_order_id=client_order_id
        )
    if record is None:
        raise AlpacaError.not_found(f"order not found for client_order_id {client_order_id}")
    return (await Renderer.load(ctx)).render(record, nested=True)


@router.get("/orders/{order_id}", responses=ERRORS)
async def get_order(order_id: str, ctx: CtxDep, nested: bool = False) -> AlpacaOrder:
    """One of the caller's orders by id. A closed order the gateway no longer holds
    (beyond `max_closed_orders`, or from before its event history) comes from the
    engine, which keeps the last `finished_orders` finished ones."""
    oid, record = _projected(ctx, order_id)
    if record is None and oid is not None:
        record = await engine_order(ctx.engine, ctx.account, ctx.timeout, oid)
    if record is None:
        raise _not_found(order_id)
    return (await Renderer.load(ctx)).render(record, nested=nested)


def _not_open(record: OrderRecord) -> AlpacaError:
    return AlpacaError(
        422, UNPROCESSABLE, f'order is already in "{rendering.order_status(record)}" state'
    )


@router.patch("/orders/{order_id}", responses=ERRORS)
async def replace_order(order_id: str, change: AlpacaOrderReplace, ctx: CtxDep) -> AlpacaOrder:
    """Replace an open order's quantity (the new total, in shares) and/or limit price.

    Tickplane replaces in place: the answer keeps the order's id (Alpaca issues a new
    one). A stop price is replaced where the engine allows it (a held stop-loss leg), a
    trailing stop's `trail` in its own terms (a price, or a percent); what the engine
    cannot change in place (time in force, a new client_order_id) is refused with a 422
    unless it repeats the current value."""
    record = _own(ctx, order_id)
    units = await ctx.units(record.symbol)
    if not record.is_open:
        raise _not_open(record)
    if change.time_in_force is not None and change.time_in_force != record.time_in_force:
        raise AlpacaError.invalid("time_in_force cannot be replaced; cancel and resubmit")
    renderer = await Renderer.load(ctx)
    trail_price = trail_percent = None
    if change.trail is not None:
        link = renderer.links.get(record.id)
        if record.type != "trailing_stop" or link is None:
            raise AlpacaError.invalid("trail applies to trailing_stop orders only")
        if link.trail_percent is not None:
            trail_percent = float(decimal_of(change.trail, "trail"))
        else:
            trail_price = units.ticks(change.trail, "trail")
    if change.client_order_id not in (None, record.client_order_id):
        raise AlpacaError.invalid("a replace keeps the order's client_order_id")
    stop = None
    if change.stop_price is not None:
        if record.stop_price is None and record.type not in _STOPPED:
            raise AlpacaError.invalid(f"a {record.type} order has no stop_price")
        stop = units.ticks(change.stop_price, "stop_price")
    price = None
    if change.limit_price is not None:
        if record.limit_price is None:
            raise AlpacaError.invalid(f"a {record.type} order has no limit_price")
        price = units.ticks(change.limit_price, "limit_price")
    open_qty = None
    if change.qty is not None:
        open_qty = units.lots(change.qty) - record.filled_qty
        if open_qty <= 0:
            raise AlpacaError.invalid(
                f"qty must exceed the {units.shares(record.filled_qty)} shares already filled"
            )
    if (price, open_qty, stop, trail_price, trail_percent) == (None,) * 5:
        raise AlpacaError.invalid("nothing to replace: send qty, limit_price, stop_price or trail")
    try:
        ack = await acked(
            ctx.engine.replace(
                ctx.account,
                record.id,
                qty=open_qty,
                price=price,
                stop_price=stop,
                trail_price=trail_price,
                trail_percent=trail_percent,
            ),
            ctx.timeout,
        )
    except ApiError as exc:
        if exc.reason == "unknown_order":  # it closed meanwhile
            raise _not_open(ctx.projection.order(ctx.account, record.id) or record) from None
        raise
    for ev in ack.events:
        if isinstance(ev, OrderRejected) and ev.id == record.id:
            raise _refused(ev.reason)
    settled = await _settled(ctx, ack, record.id)
    return (await Renderer.load(ctx, ack.events)).render(settled, nested=True)


@router.delete(
    "/orders/{order_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERRORS,
)
async def cancel_order(order_id: str, ctx: CtxDep) -> Response:
    """Cancel one of the caller's open orders (204; 422 when it is no longer open)."""
    record = _own(ctx, order_id)
    if not record.is_open:
        raise _not_open(record)
    try:
        ack = await acked(ctx.engine.cancel(ctx.account, record.id), ctx.timeout)
    except ApiError as exc:
        if exc.reason == "unknown_order":
            raise _not_open(ctx.projection.order(ctx.account, record.id) or record) from None
        raise
    for ev in ack.events:
        if isinstance(ev, OrderRejected) and ev.id == record.id:
            raise _refused(ev.reason)
    await ctx.caught_up(ack.last_seq)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/orders",
    status_code=207,
    response_model=list[AlpacaCancelResult],
    responses=ERRORS,
)
async def cancel_all_orders(ctx: CtxDep) -> JSONResponse:
    """Cancel every open order of the caller (207: one entry per order)."""
    ack = await acked(ctx.engine.mass_cancel(ctx.account), ctx.timeout)
    await ctx.caught_up(ack.last_seq)
    every = await ctx.all_units()
    out = []
    for ev in ack.events:
        if not isinstance(ev, OrderCanceled) or ev.account != ctx.account:
            continue
        record = ctx.projection.order(ctx.account, ev.id)
        body = None
        if record is not None and record.symbol in every:
            rendered = rendering.order(record, every[record.symbol], Link.of(record))
            body = rendered.model_dump(mode="json")
        out.append(AlpacaCancelResult(id=order_uuid(ev.id), status=200, body=body).model_dump())
    return JSONResponse(out, status_code=207)
