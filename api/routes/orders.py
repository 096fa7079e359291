"""`/api/v1/orders`: submit, read, replace and cancel the caller's orders."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Response, status

from tickplane.api import crud
from tickplane.api.deps import CurrentAccount, DbDep, EngineDep, SettingsDep
from tickplane.api.engine import acked, outcome
from tickplane.api.errors import ApiError
from tickplane.api.schemas import (
    CanceledOrders,
    ErrorPublic,
    OrderCreate,
    OrderPublic,
    OrderReplace,
)
from tickplane.core import wire
from tickplane.core.events import OrderCanceled

router = APIRouter(prefix="/orders", tags=["orders"])

OrderId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the engine's order id")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "no key, or an unknown or revoked one"},
    403: {"model": ErrorPublic, "description": "refused by risk: a limit, a halt, a kill switch"},
    404: {"model": ErrorPublic, "description": "no such order of this account"},
    422: {"model": ErrorPublic, "description": "bad input (the reason says which)"},
    429: {"model": ErrorPublic, "description": "rate limited"},
    503: {"model": ErrorPublic, "description": "the engine did not answer"},
}
_PENDING_POLL = 0.02
_TERMINAL = frozenset({"filled", "canceled", "closed"})


def _public(row: asyncpg.Record, open_qty: int | None = None) -> OrderPublic:
    st = row["status"]
    if open_qty is None:
        open_qty = 0 if st in _TERMINAL else max(row["qty"] - row["filled_qty"], 0)
    return OrderPublic(
        id=row["order_id"],
        client_order_id=row["client_order_id"],
        account=row["account"],
        symbol=row["symbol"],
        side=row["side"],
        type=row["type"],
        qty=row["qty"],
        filled_qty=row["filled_qty"],
        open_qty=open_qty,
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        time_in_force=row["time_in_force"],
        post_only=row["post_only"],
        status=st,
        reason=row["reason"],
        created_at=row["created_at"],
    )


def _from_view(view: wire.OrderView) -> OrderPublic:
    """An open order the gateway has no record of (entered another way)."""
    return OrderPublic(
        id=view.id,
        client_order_id=None,
        account=view.account,
        symbol=view.symbol,
        side=view.side,  # type: ignore[arg-type]
        type=view.order_type,  # type: ignore[arg-type]
        qty=view.qty,
        filled_qty=0,
        open_qty=view.qty,
        limit_price=view.price,
        stop_price=view.stop_price,
        time_in_force="gtc",
        post_only=False,
        status="held" if view.status == "held" else "new",
        reason=None,
        created_at=None,
    )


async def _existing(db: DbDep, account: str, order: OrderCreate, wait: float) -> OrderPublic:
    """The order a retry with the same client_order_id refers to."""
    assert order.client_order_id is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        row = await crud.get_reservation(db, account, order.client_order_id)
        if row is None:  # the first submission was refused meanwhile: nothing to return
            raise ApiError(409, "client_order_id_in_flight", "the first submission failed; retry")
        if row["fingerprint"] != crud.fingerprint(order):
            raise ApiError(
                422,
                "client_order_id_reused",
                f"client_order_id {order.client_order_id!r} was used for another order",
            )
        if row["order_id"] is not None:
            return _public(row)
        if loop.time() > deadline:
            raise ApiError(
                409,
                "client_order_id_in_flight",
                "an order with this client_order_id is being submitted; retry",
            )
        await asyncio.sleep(_PENDING_POLL)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": OrderPublic, "description": "a retry: the same order"}, **_ERRORS},
)
async def create_order(
    order: OrderCreate,
    caller: CurrentAccount,
    engine: EngineDep,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
) -> OrderPublic:
    """Submit an order (prices in integer ticks, quantities in lots).

    With a `client_order_id`, a retry of the same order returns that order (200) and
    never submits a second one; the same id for a different order is a 422."""
    account = caller.account
    coid = order.client_order_id
    if coid is not None and not await crud.reserve(db, account, order):
        response.status_code = status.HTTP_200_OK
        return await _existing(db, account, order, settings.engine_timeout * 2)
    try:
        ack = await acked(
            engine.submit(
                account,
                order.symbol,
                order.side,
                order.type,
                order.qty,
                price=order.limit_price,
                stop_price=order.stop_price,
                tif=order.time_in_force,
                post_only=order.post_only,
                client_order_id=coid,
            ),
            settings.engine_timeout,
        )
        assert ack.order_id is not None
        result = outcome(ack.events, ack.order_id, "pending_new")
        if result.rejected is not None:
            raise ApiError.from_engine(result.rejected)
    except BaseException:
        if coid is not None:
            await asyncio.shield(crud.cancel_reservation(db, account, coid))
        raise
    if result.status == "partially_filled" and result.filled >= order.qty:
        result.status = "filled"
    if coid is not None:
        row = await crud.set_submitted(
            db, account, coid, ack.order_id, result.status, result.reason, result.filled
        )
    else:
        row = await crud.insert_order(
            db, account, order, ack.order_id, result.status, result.reason, result.filled
        )
    return _public(row, 0 if result.remaining is not None else None)


@router.get("/{order_id}", responses=_ERRORS)
async def read_order(
    order_id: OrderId,
    caller: CurrentAccount,
    engine: EngineDep,
    db: DbDep,
    settings: SettingsDep,
) -> OrderPublic:
    """One of the caller's orders: live from the engine while open, else as recorded."""
    row = await crud.get_order(db, caller.account, order_id)
    try:
        ack = await acked(engine.get_order(caller.account, order_id), settings.engine_timeout)
    except ApiError as exc:
        if exc.reason != "unknown_order" or row is None:
            raise
        if row["status"] not in _TERMINAL:
            row = await crud.update_order(db, caller.account, order_id, status="closed")
            assert row is not None
        return _public(row)
    assert ack.order is not None
    if row is None:
        return _from_view(ack.order)
    public = _public(row, ack.order.qty)
    if ack.order.status == "held":
        public.status = "held"
    elif public.status in ("held", "pending_new"):
        public.status = "new"
    return public


@router.patch("/{order_id}", responses=_ERRORS)
async def replace_order(
    order_id: OrderId,
    change: OrderReplace,
    caller: CurrentAccount,
    engine: EngineDep,
    db: DbDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Replace a resting limit order's quantity (the new open quantity) and/or price."""
    ack = await acked(
        engine.replace(caller.account, order_id, qty=change.qty, price=change.limit_price),
        settings.engine_timeout,
    )
    result = outcome(ack.events, order_id, "new")
    if result.rejected is not None:
        raise ApiError.from_engine(result.rejected, f"order {order_id}: {result.rejected}")
    row = await crud.get_order(db, caller.account, order_id)
    if row is None:
        got = await acked(engine.get_order(caller.account, order_id), settings.engine_timeout)
        assert got.order is not None
        return _from_view(got.order)
    new_qty = None if result.qty is None else row["filled_qty"] + result.filled + result.qty
    row = await crud.update_order(
        db,
        caller.account,
        order_id,
        status=result.status,
        reason=result.reason,
        add_filled=result.filled,
        qty=new_qty,
        limit_price=result.price,
    )
    assert row is not None
    return _public(row, result.qty)


@router.delete("/{order_id}", responses=_ERRORS)
async def cancel_order(
    order_id: OrderId,
    caller: CurrentAccount,
    engine: EngineDep,
    db: DbDep,
    settings: SettingsDep,
) -> OrderPublic:
    """Cancel one of the caller's open orders."""
    known = await crud.get_order(db, caller.account, order_id)
    view = None
    if known is None:  # entered another way (a strategy): what the engine knows of it
        got = await acked(engine.get_order(caller.account, order_id), settings.engine_timeout)
        view = got.order
    ack = await acked(engine.cancel(caller.account, order_id), settings.engine_timeout)
    result = outcome(ack.events, order_id, "pending_cancel")
    if result.rejected is not None:
        raise ApiError.from_engine(result.rejected, f"order {order_id}: {result.rejected}")
    if view is not None:
        public = _from_view(view)
        public.status, public.reason, public.open_qty = result.status, result.reason, 0  # type: ignore[assignment]
        return public
    row = await crud.update_order(
        db, caller.account, order_id, status=result.status, reason=result.reason
    )
    assert row is not None
    return _public(row, 0)


@router.delete("", responses=_ERRORS)
async def cancel_orders(
    caller: CurrentAccount,
    engine: EngineDep,
    db: DbDep,
    settings: SettingsDep,
) -> CanceledOrders:
    """Cancel every open order of the caller's account."""
    ack = await acked(engine.mass_cancel(caller.account), settings.engine_timeout)
    canceled: list[OrderPublic] = []
    for ev in ack.events:
        if not isinstance(ev, OrderCanceled) or ev.account != caller.account:
            continue
        row = await crud.update_order(
            db, caller.account, ev.id, status="canceled", reason=ev.reason
        )
        if row is not None:
            canceled.append(_public(row, 0))
    return CanceledOrders(canceled=canceled)
