"""`/api/v1/symbols` and `/api/v1/book/{symbol}` (from the engine: L2 depth) and
`/api/v1/trades/{symbol}` (recent trades, from the projection)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from tickplane.api.deps import CurrentAccount, EngineDep, ProjectionDep, SettingsDep
from tickplane.api.engine import acked
from tickplane.api.errors import ERROR_RESPONSES, ApiError
from tickplane.api.schemas import Book, BookLevel, Symbol, SymbolPublic, TradePage
from tickplane.api.views import trade_view
from tickplane.core import wire
from tickplane.core.client import EngineClient

__all__ = ["router"]

router = APIRouter(tags=["market data"])

SymbolPath = Annotated[Symbol, Path(description="the symbol, as the engine names it")]


async def _book(engine: EngineClient, symbol: str, depth: int, timeout: float) -> wire.Ack:
    try:
        return await acked(engine.get_book(symbol, depth), timeout)
    except ApiError as exc:
        if exc.reason == "unknown_symbol":
            exc.status = 404
        raise


@router.get("/symbols", responses=ERROR_RESPONSES)
async def list_symbols(
    caller: CurrentAccount, engine: EngineDep, settings: SettingsDep
) -> list[SymbolPublic]:
    """The symbols the engine trades, with their tick and lot sizes."""
    ack = await acked(engine.get_symbols(), settings.engine_timeout)
    return [
        SymbolPublic(
            symbol=s.name,
            tick_size=s.tick_size,
            lot_size=s.lot_size,
            reference_price=s.reference_price,
            last_price=s.last_price,
            halted=s.halted,
        )
        for s in ack.symbols or []
    ]


@router.get("/book/{symbol}", responses=ERROR_RESPONSES)
async def read_book(
    symbol: SymbolPath,
    caller: CurrentAccount,
    engine: EngineDep,
    settings: SettingsDep,
    depth: Annotated[int, Query(ge=1, le=1000, description="levels per side")] = 10,
) -> Book:
    """The symbol's aggregated levels (L2), best first: price (ticks), quantity (lots)
    and number of orders per level."""
    top = (await _book(engine, symbol, depth, settings.engine_timeout)).book
    assert top is not None
    return Book(
        symbol=top.symbol,
        bids=[BookLevel(price=lv.price, qty=lv.qty, orders=lv.orders) for lv in top.bids],
        asks=[BookLevel(price=lv.price, qty=lv.qty, orders=lv.orders) for lv in top.asks],
        last_price=top.last_price,
        ts_event=top.ts_event,
    )


@router.get("/trades/{symbol}", responses=ERROR_RESPONSES)
async def list_trades(
    symbol: SymbolPath,
    caller: CurrentAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TradePage:
    """The symbol's last trades, newest first (anonymous: no accounts or order ids;
    the gateway keeps the last `max_trades` per symbol)."""
    await _book(engine, symbol, 1, settings.engine_timeout)  # 404 for a symbol not traded
    await projection.caught_up(caller.account, settings.read_your_writes_timeout)
    return TradePage(
        symbol=symbol, trades=[trade_view(t) for t in projection.trades(symbol, limit)]
    )
