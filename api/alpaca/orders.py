"""`/v2/orders`: Alpaca's order endpoints over the engine and the projection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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
from tickplane.api.alpaca.schemas import (
    AlpacaErrorBody,
    AlpacaOrder,
    CancelResult,
    OrderCreate,
    OrderReplace,
)
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.engine import acked
from tickplane.api.errors import ApiError
from tickplane.api.projection import OrderRecord, apply_order_event, order_from_accepted
from tickplane.core import wire
from tickplane.core.events import OrderAccepted, OrderCanceled, OrderRejected

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


def _refused(reason: str) -> AlpacaError:
    return from_api_error(ApiError.from_engine(reason))


def _check_prices(body: OrderCreate, units: SymbolUnits) -> tuple[int | None, int | None]:
    """The order's limit and stop prices in ticks (each present exactly when its type
    uses it)."""
    limit = stop = None
    if body.type in _PRICED:
        if body.limit_price is None:
            raise AlpacaError.invalid(f"limit_price is required for {body.type} orders")
        limit = units.ticks(body.limit_price, "limit_price")
    elif body.limit_price is not None:
        raise AlpacaError.invalid(f"limit_price is not allowed for {body.type} orders")
    if body.type in _STOPPED:
        if body.stop_price is None:
            raise AlpacaError.invalid(f"stop_price is required for {body.type} orders")
        stop = units.ticks(body.stop_price, "stop_price")
    elif body.stop_price is not None:
        raise AlpacaError.invalid(f"stop_price is not allowed for {body.type} orders")
    return limit, stop


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
) -> OrderRecord:
    """Submit one order to the engine and return it as the projection sees it; an
    engine refusal is raised as an AlpacaError."""
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
        ),
        ctx.timeout,
    )
    assert ack.order_id is not None
    for ev in ack.events:
        if isinstance(ev, OrderRejected) and ev.id == ack.order_id:
            raise _refused(ev.reason)
    return await _settled(ctx, ack, ack.order_id)


@router.post("/orders", responses=ERRORS)
async def submit_order(body: OrderCreate, ctx: CtxDep) -> AlpacaOrder:
    """Submit an order (Alpaca's `POST /v2/orders`): quantities in whole shares, prices
    as decimals on the symbol's tick. A `client_order_id` already used for the same
    order returns that order; used for another order, it is a 422."""
    units = await ctx.units(body.symbol)
    if body.order_class not in (None, "simple"):
        raise AlpacaError.invalid(f"order_class {body.order_class} is not supported")
    if body.type == "trailing_stop":
        raise AlpacaError.invalid("trailing_stop orders are not supported")
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
    record = await place_order(
        ctx,
        units,
        body.side,
        body.type,
        lots,
        tif=tif,
        limit=limit,
        stop=stop,
        client_order_id=body.client_order_id,
    )
    return rendering.order(record, units)


def _parse_time(text: str | None, field: str) -> int | None:
    """An RFC 3339 time (or a date) as int ns; naive times are UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AlpacaError.invalid(f"{field} must be an RFC 3339 time, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


@router.get("/orders", responses=ERRORS)
async def list_orders(
    ctx: CtxDep,
    order_status: Annotated[
        Literal["open", "closed", "all"], Query(alias="status", description="default open")
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="submitted after (RFC 3339)")] = None,
    until: Annotated[str | None, Query(description="submitted until (RFC 3339)")] = None,
    direction: Literal["asc", "desc"] = "desc",
    nested: bool = False,
    symbols: Annotated[str | None, Query(description="comma-separated")] = None,
    side: Literal["buy", "sell"] | None = None,
) -> list[AlpacaOrder]:
    """The caller's orders, newest first by default (`direction=asc`: oldest first),
    at most `limit`. `nested` is accepted (Tickplane's orders have no legs)."""
    wanted = {s.strip() for s in symbols.split(",") if s.strip()} if symbols else None
    records = ctx.projection.orders(
        ctx.account,
        status=order_status,
        side=side,
        after_ns=_parse_time(after, "after"),
        until_ns=_parse_time(until, "until"),
    )
    if wanted is not None:
        records = [r for r in records if r.symbol in wanted]
    records.sort(key=lambda r: (r.created_ns, r.id), reverse=direction == "desc")
    every = await ctx.all_units()
    return [rendering.order(r, every[r.symbol]) for r in records[:limit] if r.symbol in every]


def _own(ctx: Ctx, order_id: str) -> OrderRecord:
    """The caller's order with this UUID, or a 404."""
    oid = engine_order_id(order_id)
    record = None if oid is None else ctx.projection.order(ctx.account, oid)
    if record is None:
        raise AlpacaError.not_found(f"order not found for {order_id}")
    return record


@router.get("/orders:by_client_order_id", responses=ERRORS)
async def get_order_by_client_order_id(client_order_id: str, ctx: CtxDep) -> AlpacaOrder:
    """The caller's order with this `client_order_id`."""
    record = ctx.projection.order_by_client_id(ctx.account, client_order_id)
    if record is None:
        raise AlpacaError.not_found(f"order not found for client_order_id {client_order_id}")
    return rendering.order(record, await ctx.units(record.symbol))


@router.get("/orders/{order_id}", responses=ERRORS)
async def get_order(order_id: str, ctx: CtxDep, nested: bool = False) -> AlpacaOrder:
    """One of the caller's orders by id."""
    record = _own(ctx, order_id)
    return rendering.order(record, await ctx.units(record.symbol))


def _not_open(record: OrderRecord) -> AlpacaError:
    return AlpacaError(
        422, UNPROCESSABLE, f'order is already in "{rendering.order_status(record)}" state'
    )


@router.patch("/orders/{order_id}", responses=ERRORS)
async def replace_order(order_id: str, change: OrderReplace, ctx: CtxDep) -> AlpacaOrder:
    """Replace an open order's quantity (the new total, in shares) and/or limit price.

    Tickplane replaces in place: the answer keeps the order's id (Alpaca issues a new
    one). Changes the engine cannot make in place (stop price, time in force, trail,
    a new client_order_id) are refused with a 422 unless they repeat the current value."""
    record = _own(ctx, order_id)
    units = await ctx.units(record.symbol)
    if not record.is_open:
        raise _not_open(record)
    if change.time_in_force is not None and change.time_in_force != record.time_in_force:
        raise AlpacaError.invalid("time_in_force cannot be replaced; cancel and resubmit")
    if change.trail is not None:
        raise AlpacaError.invalid("trail applies to trailing_stop orders only")
    if change.client_order_id not in (None, record.client_order_id):
        raise AlpacaError.invalid("a replace keeps the order's client_order_id")
    if (
        change.stop_price is not None
        and units.ticks(change.stop_price, "stop_price") != record.stop_price
    ):
        raise AlpacaError.invalid("stop_price cannot be replaced; cancel and resubmit")
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
    if price is None and open_qty is None:
        raise AlpacaError.invalid("nothing to replace: send qty and/or limit_price")
    try:
        ack = await acked(
            ctx.engine.replace(ctx.account, record.id, qty=open_qty, price=price), ctx.timeout
        )
    except ApiError as exc:
        if exc.reason == "unknown_order":  # it closed meanwhile
            raise _not_open(ctx.projection.order(ctx.account, record.id) or record) from None
        raise
    for ev in ack.events:
        if isinstance(ev, OrderRejected) and ev.id == record.id:
            raise _refused(ev.reason)
    return rendering.order(await _settled(ctx, ack, record.id), units)


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
    response_model=list[CancelResult],
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
            body = rendering.order(record, every[record.symbol]).model_dump(mode="json")
        out.append(CancelResult(id=order_uuid(ev.id), status=200, body=body).model_dump())
    return JSONResponse(out, status_code=207)
