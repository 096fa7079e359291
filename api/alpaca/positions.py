"""`/v2/positions`: the caller's positions (as the engine keeps them), and closing them
with market orders."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from tickplane.api.alpaca import rendering
from tickplane.api.alpaca.deps import Ctx, CtxDep
from tickplane.api.alpaca.errors import AlpacaError, AlpacaRoute
from tickplane.api.alpaca.ids import asset_uuid
from tickplane.api.alpaca.orders import ERRORS, place_order
from tickplane.api.alpaca.schemas import AlpacaClosePositionResult, AlpacaOrder, AlpacaPosition
from tickplane.api.alpaca.units import SymbolUnits, decimal_of
from tickplane.api.engine import acked
from tickplane.core import wire

__all__ = ["router"]

router = APIRouter(route_class=AlpacaRoute, tags=["alpaca positions"])


def _closing_lots(ctx: Ctx, p: wire.PositionView) -> int:
    """Lots the caller's open orders on the closing side would take off the position."""
    closing = "sell" if p.qty > 0 else "buy"
    return sum(
        o.open_qty
        for o in ctx.projection.orders(ctx.account, status="open", symbol=p.symbol)
        if o.side == closing
    )


def _view(ctx: Ctx, p: wire.PositionView, units: SymbolUnits) -> AlpacaPosition:
    return rendering.position(p, units, _closing_lots(ctx, p))


async def _find(ctx: Ctx, symbol_or_asset_id: str) -> tuple[wire.PositionView, SymbolUnits]:
    """The caller's open position in a symbol named by symbol or asset id, or a 404."""
    for p in (await ctx.account_view()).positions:
        if p.qty and symbol_or_asset_id in (p.symbol, asset_uuid(p.symbol)):
            return p, await ctx.units(p.symbol)
    raise AlpacaError.not_found("position does not exist")


@router.get("/positions", responses=ERRORS)
async def list_positions(ctx: CtxDep) -> list[AlpacaPosition]:
    """The caller's open (non-flat) positions."""
    every = await ctx.all_units()
    return [
        _view(ctx, p, every[p.symbol])
        for p in (await ctx.account_view()).positions
        if p.qty and p.symbol in every
    ]


@router.get("/positions/{symbol_or_asset_id}", responses=ERRORS)
async def get_position(symbol_or_asset_id: str, ctx: CtxDep) -> AlpacaPosition:
    """The caller's position in one symbol (404 when flat)."""
    p, units = await _find(ctx, symbol_or_asset_id)
    return _view(ctx, p, units)


def _lots_to_close(
    p: wire.PositionView, units: SymbolUnits, qty: str | None, pct: str | None
) -> int:
    held = abs(p.qty)
    if qty is not None and pct is not None:
        raise AlpacaError.invalid("send qty or percentage, not both")
    if qty is not None:
        lots = units.lots(qty)
        if lots > held:
            raise AlpacaError.forbidden(
                f"insufficient qty available for order (requested: {qty}, "
                f"available: {units.shares(held)})"
            )
        return lots
    if pct is not None:
        share = decimal_of(pct, "percentage")
        if not 0 < share <= 100:
            raise AlpacaError.invalid("percentage must be above 0 and at most 100")
        lots = math.floor(Decimal(held) * share / 100)
        if lots == 0:
            raise AlpacaError.invalid(
                f"{pct}% of {units.shares(held)} shares is less than one lot "
                f"({units.lot} shares); Tickplane trades whole lots"
            )
        return lots
    return held


async def _close(ctx: Ctx, p: wire.PositionView, units: SymbolUnits, lots: int) -> AlpacaOrder:
    side = "sell" if p.qty > 0 else "buy"
    record, _ = await place_order(ctx, units, side, "market", lots, tif="day")
    return rendering.order(record, units)


@router.delete("/positions/{symbol_or_asset_id}", responses=ERRORS)
async def close_position(
    symbol_or_asset_id: str,
    ctx: CtxDep,
    qty: Annotated[str | None, Query(description="shares to close")] = None,
    percentage: Annotated[str | None, Query(description="percent of the position")] = None,
) -> AlpacaOrder:
    """Close (all or part of) a position with a market order; the answer is that order
    (a market order that finds no liquidity comes back canceled)."""
    p, units = await _find(ctx, symbol_or_asset_id)
    return await _close(ctx, p, units, _lots_to_close(p, units, qty, percentage))


@router.delete(
    "/positions", status_code=207, response_model=list[AlpacaClosePositionResult], responses=ERRORS
)
async def close_all_positions(ctx: CtxDep, cancel_orders: bool = False) -> JSONResponse:
    """Close every open position with market orders (207: one entry per symbol);
    `cancel_orders=true` cancels the caller's open orders first."""
    if cancel_orders:
        ack = await acked(ctx.engine.mass_cancel(ctx.account), ctx.timeout)
        await ctx.caught_up(ack.last_seq)
    out = []
    for p in (await ctx.account_view()).positions:
        if not p.qty:
            continue
        units = await ctx.units(p.symbol)
        try:
            order = await _close(ctx, p, units, abs(p.qty))
        except AlpacaError as exc:
            body = {"code": exc.code, "message": exc.message, "symbol": p.symbol}
            out.append(AlpacaClosePositionResult(symbol=p.symbol, status=exc.status, body=body))
            continue
        placed = order.model_dump(mode="json")
        out.append(AlpacaClosePositionResult(symbol=p.symbol, status=200, body=placed))
    return JSONResponse([r.model_dump() for r in out], status_code=207)
