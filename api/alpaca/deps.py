"""What the `/v2` routes depend on: the projection, the symbols, and shorthands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tickplane.api.alpaca.errors import UNAVAILABLE, AlpacaError
from tickplane.api.alpaca.symbols import SymbolTable, symbol_table
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.deps import CurrentAccount, EngineDep, SettingsDep
from tickplane.api.projection import Projection
from tickplane.core.client import EngineClient

__all__ = ["Ctx", "CtxDep", "get_ctx"]


@dataclass
class Ctx:
    """One `/v2` request's caller and what it reaches: engine, projection, symbols."""

    account: str
    engine: EngineClient
    projection: Projection
    symbols: SymbolTable
    timeout: float

    async def units(self, symbol: str) -> SymbolUnits:
        return await self.symbols.get(self.engine, self.timeout, symbol)

    async def all_units(self) -> dict[str, SymbolUnits]:
        return await self.symbols.all(self.engine, self.timeout)

    async def caught_up(self, seq: int) -> None:
        """Read-your-writes: wait until the projection has applied `seq`."""
        await self.projection.wait_for(seq, self.timeout)


async def get_ctx(
    request: Request, caller: CurrentAccount, engine: EngineDep, settings: SettingsDep
) -> Ctx:
    projection: Projection | None = getattr(request.app.state, "projection", None)
    if projection is None:
        raise AlpacaError(503, UNAVAILABLE, "the gateway's view of the engine is not running")
    return Ctx(
        caller.account, engine, projection, symbol_table(request.app.state), settings.engine_timeout
    )


CtxDep = Annotated[Ctx, Depends(get_ctx)]
