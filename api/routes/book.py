"""`/api/v1/book`: a symbol's L2 depth, from the engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tickplane.api.deps import CurrentAccount, EngineDep, SettingsDep
from tickplane.api.engine import acked
from tickplane.api.errors import ApiError
from tickplane.api.routes.orders import _ERRORS
from tickplane.api.schemas import Book, BookLevel

router = APIRouter(prefix="/book", tags=["market data"])


@router.get("/{symbol}", responses=_ERRORS)
async def read_book(
    symbol: str,
    caller: CurrentAccount,
    engine: EngineDep,
    settings: SettingsDep,
    depth: Annotated[int, Query(ge=1, le=1000, description="levels per side")] = 10,
) -> Book:
    """The symbol's aggregated levels (L2), best first: price (ticks), quantity (lots)
    and number of orders per level."""
    try:
        ack = await acked(engine.get_book(symbol, depth), settings.engine_timeout)
    except ApiError as exc:
        if exc.reason == "unknown_symbol":
            exc.status = 404
        raise
    top = ack.book
    assert top is not None
    return Book(
        symbol=top.symbol,
        bids=[BookLevel(price=lv.price, qty=lv.qty, orders=lv.orders) for lv in top.bids],
        asks=[BookLevel(price=lv.price, qty=lv.qty, orders=lv.orders) for lv in top.asks],
        last_price=top.last_price,
        ts_event=top.ts_event,
    )
