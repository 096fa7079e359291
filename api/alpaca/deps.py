"""What the `/v2` routes depend on: the caller, engine, projection and symbols in one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tickplane.api.alpaca.errors import UNAVAILABLE, AlpacaError
from tickplane.api.alpaca.symbols import SymbolTable, symbol_table
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.deps import CurrentAccount, EngineDep, ProjectionDep, SettingsDep
from tickplane.api.engine import acked
from tickplane.api.projection import Projection
from tickplane.core import wire
from tickplane.core.client import EngineClient

__all__ = ["Ctx", "CtxDep", "get_ctx"]


@dataclass
class Ctx:
    """One `/v2` request's caller and what it reaches: engine, projection, symbols."""

    account: str
    engine: EngineClient
    projection: Projection
    symbols: SymbolTable
    timeout: float  # for the engine's replies
    catch_up_timeout: float  # for the projection to reach the caller's last write

    async def units(self, symbol: str) -> SymbolUnits:
        return await self.symbols.get(self.engine, self.timeout, symbol)

    async def all_units(self) -> dict[str, SymbolUnits]:
        return await self.symbols.all(self.engine, self.timeout)

    async def caught_up(self, seq: int) -> None:
        """Read-your-writes: wait until the projection has applied `seq`."""
        await self.projection.wait_for(seq, self.catch_up_timeout)

    async def account_view(self) -> wire.AccountView:
        """The caller's cash, positions and kill switch, from the engine."""
        ack = await acked(self.engine.get_account(self.account), self.timeout)
        if ack.account is None:
            raise AlpacaError(503, UNAVAILABLE, "the engine sent no account")
        return ack.account


async def get_ctx(
    request: Request,
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> Ctx:
    return Ctx(
        caller.account,
        engine,
        projection,
        symbol_table(request.app.state),
        settings.engine_timeout,
        settings.read_your_writes_timeout,
    )


CtxDep = Annotated[Ctx, Depends(get_ctx)]
