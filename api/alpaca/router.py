"""The Alpaca-compatible API as one router: `/v2/...`, `/stream` (trade updates) and
`/v2/iex`, `/v2/sip` (the market-data stream)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Route, compile_path
from starlette.types import Receive, Scope, Send

from tickplane.api.alpaca import (
    account,
    activities,
    market_data,
    market_stream,
    orders,
    positions,
    stream,
)
from tickplane.api.alpaca.errors import METHOD_NOT_ALLOWED, AlpacaError, AlpacaRoute

__all__ = ["PREFIX", "router"]

PREFIX = "/v2"

router = APIRouter()
_v2 = APIRouter(prefix=PREFIX, route_class=AlpacaRoute)
_PARTS = (orders.router, positions.router, account.router, activities.router, market_data.router)
for _part in _PARTS:
    _v2.include_router(_part)


def _known_paths() -> list[tuple[re.Pattern[str], set[str]]]:
    """Each /v2 path's pattern and the methods it serves."""
    methods: dict[str, set[str]] = {}
    for part in _PARTS:
        for route in part.routes:
            if isinstance(route, APIRoute):
                methods.setdefault(PREFIX + route.path, set()).update(route.methods or ())
    return [(compile_path(path)[0], allowed) for path, allowed in methods.items()]


_KNOWN = _known_paths()


def _elsewhere(request: Request) -> Response:
    """Anything else under /v2, in Alpaca's shape (never the native API's): a 405 for a
    known path with another method (any method, even one Starlette does not know), else
    a 404."""
    path = request.url.path
    allowed = sorted({m for pattern, ms in _KNOWN if pattern.match(path) for m in ms})
    if allowed:
        listed = ", ".join(allowed)
        error = AlpacaError(
            405,
            METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {path} (allowed: {listed})",
            headers={"Allow": listed},
        )
        return error.response()
    return AlpacaError.not_found(f"endpoint not found: {request.method} {path}").response()


class _ElsewhereApp:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _elsewhere(Request(scope, receive))(scope, receive, send)


# An ASGI app (not a function) with methods=None takes every method, so no request under
# /v2 reaches Starlette's own 404/405 (a function endpoint would default to GET only).
_v2.routes.append(
    Route(PREFIX + "/{path:path}", _ElsewhereApp(), methods=None, include_in_schema=False)
)

router.include_router(_v2)
router.include_router(stream.router)
router.include_router(market_stream.router)
