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
    """The caller's account as the engine keeps it: cash (starting cash moved by every
    fill), positions at their symbols' last trade prices. Tickplane has no margin:
    buying power is the cash."""
    every = await ctx.all_units()
    if not every:
        raise AlpacaError.not_found("the engine trades no symbols")
    view = await ctx.account_view()
    # The engine keeps money in tick-lots; the first symbol's units give it in currency
    # (every symbol of an engine shares them in practice; README: Decisions).
    money = next(iter(every.values()))
    long_value = short_value = Decimal(0)
    for p in view.positions:
        units = every.get(p.symbol)
        if units is None or not p.qty or p.last_price is None:
            continue
        value = Decimal(units.money(p.qty * p.last_price))
        if value >= 0:
            long_value += value
        else:
            short_value += value
    cash = Decimal(money.money(view.cash))
    equity = Decimal(money.money(view.equity))
    spendable = money.decimal_string(max(cash, Decimal(0)))
    as_text = money.decimal_string
    return AlpacaAccount(
        id=account_uuid(ctx.account),
        account_number=ctx.account,
        cash=as_text(cash),
        buying_power=spendable,
        regt_buying_power=spendable,
        daytrading_buying_power="0",
        non_marginable_buying_power=spendable,
        portfolio_value=as_text(equity),
        equity=as_text(equity),
        last_equity=as_text(equity),
        long_market_value=as_text(long_value),
        short_market_value=as_text(short_value),
        trading_blocked=view.kill_switch,
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
