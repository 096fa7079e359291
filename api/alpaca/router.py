"""The Alpaca-compatible API as one router: `/v2/...` and `/stream`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tickplane.api.alpaca import account, orders, positions, stream
from tickplane.api.alpaca.errors import AlpacaError, AlpacaRoute

__all__ = ["PREFIX", "router"]

PREFIX = "/v2"

router = APIRouter()
_v2 = APIRouter(prefix=PREFIX, route_class=AlpacaRoute)
_v2.include_router(orders.router)
_v2.include_router(positions.router)
_v2.include_router(account.router)


@_v2.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def not_found(path: str, request: Request) -> None:
    """Anything else under /v2: Alpaca's 404 (never the native API's error shape)."""
    raise AlpacaError.not_found(f"endpoint not found: {request.method} /v2/{path}")


router.include_router(_v2)
router.include_router(stream.router)
