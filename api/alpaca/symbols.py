"""The engine's symbols with their tick and lot sizes, as `SymbolUnits`.

Fetched from the engine once per gateway (symbols are fixed for an engine's life) and
kept on the app; a gateway started before its engine retries on the next request."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from tickplane.api.alpaca.errors import AlpacaError
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.engine import acked
from tickplane.core.client import EngineClient

__all__ = ["SymbolTable", "symbol_table"]


class SymbolTable:
    """The symbols an engine trades (loaded on first use)."""

    def __init__(self) -> None:
        self._units: dict[str, SymbolUnits] | None = None
        self._lock = asyncio.Lock()

    async def all(self, engine: EngineClient, timeout: float) -> dict[str, SymbolUnits]:
        """Every symbol by name, in the engine's order."""
        if self._units is None:
            async with self._lock:
                if self._units is None:
                    self._units = await _fetch(engine, timeout)
        return self._units

    async def get(self, engine: EngineClient, timeout: float, symbol: str) -> SymbolUnits:
        """One symbol's units; a 422 in Alpaca's shape for a symbol the engine lacks."""
        units = (await self.all(engine, timeout)).get(symbol)
        if units is None:
            raise AlpacaError.invalid(f'asset "{symbol}" not found')
        return units


async def _fetch(engine: EngineClient, timeout: float) -> dict[str, SymbolUnits]:
    ack = await acked(engine.get_symbols(), timeout)
    return {
        s.name: SymbolUnits(s.name, Decimal(s.tick_size), s.lot_size) for s in ack.symbols or []
    }


def symbol_table(state: Any) -> SymbolTable:
    """The app's table (`app.state`), made on first use."""
    table: SymbolTable | None = getattr(state, "alpaca_symbols", None)
    if table is None:
        table = state.alpaca_symbols = SymbolTable()
    return table
