"""`/api/v1/account`, `/positions`, `/executions`: the caller's account as the engine's
events tell it (the projection)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from tickplane.api.deps import CurrentAccount, ProjectionDep, SettingsDep
from tickplane.api.errors import ERROR_RESPONSES, ApiError
from tickplane.api.schemas import (
    AccountPublic,
    ExecutionPage,
    PositionPublic,
    Symbol,
)
from tickplane.api.views import account_view, execution_view, position_view

__all__ = ["router"]

router = APIRouter(tags=["account"])


@router.get("/account", responses=ERROR_RESPONSES)
async def read_account(
    caller: CurrentAccount, projection: ProjectionDep, settings: SettingsDep
) -> AccountPublic:
    """Cash, P&L (tick-lots), open orders, positions and whether a kill switch blocks
    trading. An account that never traded reads all zeros."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    return account_view(projection, caller.account)


@router.get("/positions", responses=ERROR_RESPONSES)
async def list_positions(
    caller: CurrentAccount, projection: ProjectionDep, settings: SettingsDep
) -> list[PositionPublic]:
    """The caller's positions, flat ones included (they carry realized P&L)."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    return [
        position_view(p, projection.last_price(p.symbol))
        for p in projection.positions(caller.account)
    ]


@router.get("/positions/{symbol}", responses=ERROR_RESPONSES)
async def read_position(
    symbol: Annotated[Symbol, Path()],
    caller: CurrentAccount,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> PositionPublic:
    """The caller's position in `symbol` (404 if it never traded it)."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    for p in projection.positions(caller.account):
        if p.symbol == symbol:
            return position_view(p, projection.last_price(symbol))
    raise ApiError(404, "no_position", f"no position in {symbol}")


@router.get("/executions", responses=ERROR_RESPONSES)
async def list_executions(
    caller: CurrentAccount,
    projection: ProjectionDep,
    settings: SettingsDep,
    symbol: Annotated[Symbol | None, Query()] = None,
    order_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ExecutionPage:
    """The caller's fills, newest first (the last `max_executions` per account)."""
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    found = projection.executions(caller.account, symbol=symbol)
    if order_id is not None:
        found = [e for e in found if e.order_id == order_id]
    return ExecutionPage(executions=[execution_view(e) for e in found[offset : offset + limit]])
