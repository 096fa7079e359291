"""The gateway application: `create_app()` builds it; `uvicorn --factory
tickplane.api.main:create_app` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from tickplane.api.db import connect_pool
from tickplane.api.deps import RateLimiter
from tickplane.api.errors import install_handlers
from tickplane.api.routes import book, health, orders
from tickplane.api.settings import GatewaySettings, get_settings
from tickplane.core.client import EngineClient

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Tickplane's native API. Every endpoint but `/api/v1/health` needs an API key in the
`APCA-API-KEY-ID` and `APCA-API-SECRET-KEY` headers (`tickplane keys create`); an
account sees and touches only its own orders.

Prices are **integer ticks** and quantities **integer lots** (the symbol's tick and lot
sizes turn them into money and shares); either may be sent as a JSON number or a numeric
string, never a boolean. Errors are `{"reason": ..., "message": ...}`: 401 no valid key,
403 refused by risk or a kill switch, 404 not one of your orders, 422 bad input, 429 rate
limited, 503 the engine does not answer.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway for `settings` (default: `get_settings()`, from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await connect_pool(
            settings.database_url,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )
        app.state.engine = EngineClient(
            settings.engine_order_entry, settings.engine_events, timeout=settings.engine_timeout
        )
        app.state.engine.connect()
        app.state.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        try:
            yield
        finally:
            await app.state.engine.close()
            await app.state.pool.close()

    app = FastAPI(
        title="Tickplane gateway",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    install_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(health.router)
    api.include_router(orders.router)
    api.include_router(book.router)
    app.include_router(api)
    return app
