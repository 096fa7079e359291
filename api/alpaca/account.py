"""`/v2/account`, `/v2/clock` and `/v2/assets`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fastapi import APIRouter

from tickplane.api.alpaca import rendering
from tickplane.api.alpaca.deps import CtxDep
from tickplane.api.alpaca.errors import AlpacaError, AlpacaRoute
from tickplane.api.alpaca.ids import account_uuid, asset_uuid
from tickplane.api.alpaca.orders import ERRORS
from tickplane.api.alpaca.schemas import AlpacaAccount, AlpacaAsset, AlpacaClock
from tickplane.api.deps import CurrentAccount

__all__ = ["router"]

router = APIRouter(route_class=AlpacaRoute, tags=["alpaca account"])


@router.get("/account", responses=ERRORS)
async def get_account(ctx: CtxDep) -> AlpacaAccount:
    """The caller's account: cash and positions' market value in currency.

    Cash is what the engine reports (starting cash moved by every fill); market values
    use each symbol's last trade price. Tickplane has no margin: buying power is cash."""
    every = await ctx.all_units()
    if not every:
        raise AlpacaError.not_found("the engine trades no symbols")
    # The engine keeps cash in tick-lots; the first symbol's units give it in currency.
    money = next(iter(every.values()))
    cash = Decimal(money.money(ctx.projection.cash(ctx.account)))
    long_value = short_value = Decimal(0)
    for p in ctx.projection.positions(ctx.account):
        units = every.get(p.symbol)
        last = ctx.projection.last_price(p.symbol)
        if units is None or not p.qty:
            continue
        value = Decimal(units.money(p.qty * (last if last is not None else 0)))
        if value >= 0:
            long_value += value
        else:
            short_value += value
    equity = cash + long_value + short_value
    as_text = money.decimal_string
    return AlpacaAccount(
        id=account_uuid(ctx.account),
        account_number=ctx.account,
        cash=as_text(cash),
        buying_power=as_text(max(cash, Decimal(0))),
        regt_buying_power=as_text(max(cash, Decimal(0))),
        daytrading_buying_power="0",
        non_marginable_buying_power=as_text(max(cash, Decimal(0))),
        portfolio_value=as_text(equity),
        equity=as_text(equity),
        last_equity=as_text(equity),
        long_market_value=as_text(long_value),
        short_market_value=as_text(short_value),
        trading_blocked=ctx.projection.killed(ctx.account),
    )


@router.get("/clock", responses=ERRORS)
async def get_clock(caller: CurrentAccount) -> AlpacaClock:
    """Tickplane's market never closes: open now, the next session boundary at the
    next midnight UTC."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

    def stamp(t: datetime) -> str:
        return t.isoformat(timespec="microseconds").replace("+00:00", "Z")

    return AlpacaClock(
        timestamp=stamp(now), is_open=True, next_open=stamp(midnight), next_close=stamp(midnight)
    )


@router.get("/assets", responses=ERRORS, response_model_by_alias=True)
async def list_assets(
    ctx: CtxDep,
    status: str | None = None,
    asset_class: str | None = None,
    exchange: str | None = None,
) -> list[AlpacaAsset]:
    """The engine's symbols as Alpaca assets (all active `us_equity` on one exchange)."""
    if status not in (None, "active") or asset_class not in (None, "us_equity"):
        return []
    if exchange not in (None, rendering.EXCHANGE):
        return []
    return [
        rendering.asset(u, u.symbol not in ctx.projection.halted)
        for u in (await ctx.all_units()).values()
    ]


@router.get("/assets/{symbol_or_asset_id}", responses=ERRORS, response_model_by_alias=True)
async def get_asset(symbol_or_asset_id: str, ctx: CtxDep) -> AlpacaAsset:
    """One symbol as an Alpaca asset, by symbol or asset id."""
    for u in (await ctx.all_units()).values():
        if symbol_or_asset_id in (u.symbol, asset_uuid(u.symbol)):
            return rendering.asset(u, u.symbol not in ctx.projection.halted)
    raise AlpacaError.not_found(f"asset not found for {symbol_or_asset_id}")
