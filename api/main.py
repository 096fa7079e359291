"""The gateway application: `create_app()` builds it; `uvicorn --factory
tickplane.api.main:create_app` serves it."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tickplane.api import keys, metrics
from tickplane.api.alpaca.router import router as alpaca_router
from tickplane.api.deps import RateLimiter
from tickplane.api.errors import install_handlers
from tickplane.api.projection import Projection
from tickplane.api.routes import account, admin, health, market, orders, strategies, ws
from tickplane.api.settings import GatewaySettings, get_settings
from tickplane.core.client import EngineClient

__all__ = ["API_PREFIX", "create_app"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Tickplane's native API. Every endpoint but `/api/v1/health` and `/api/v1/ready` needs
an API key in the `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY` headers (`tickplane keys
create`); an account sees and touches only its own orders (another account's order is a
404, like no order at all). Admin routes need a key of scope `admin`.

Prices are **integer ticks** and quantities **integer lots** (the symbol's tick and lot
sizes turn them into money and shares); either may be sent as a JSON number or a numeric
string, never a boolean. Errors are `{"reason": ..., "message": ...}`: 401 no valid key,
403 refused by risk, a kill switch or a missing admin scope, 404 not one of your orders,
422 bad input, 429 rate limited, 503 the engine does not answer.

WebSockets: `/api/v1/ws/orders` (your order updates and fills; order entry) and
`/api/v1/ws/market/{symbol}` (top of book, L2 deltas, trades); see api/README.md.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway for `settings` (default: `get_settings()`, from the environment)."""
    settings = settings or get_settings()
    gateway_metrics = metrics.GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await keys.open_store(
            settings.database_url,
            settings.data_dir,
            pool_min=settings.database_pool_min,
            pool_max=settings.database_pool_max,
        )
        app.state.keys = store
        app.state.auth = keys.Authenticator(store, settings.key_cache_seconds)
        engine = EngineClient(
            settings.engine_order_entry, settings.engine_events, timeout=settings.engine_timeout
        )
        engine.connect()
        app.state.engine = engine
        projection = Projection(
            engine,
            max_closed_orders=settings.max_closed_orders,
            max_executions=settings.max_executions,
            max_trades=settings.max_trades,
            queue_size=settings.ws_queue_size,
        )
        app.state.projection = projection
        gateway_metrics.watch_projection(lambda: projection.seq, lambda: projection.lag)
        projection.on_gap = gateway_metrics.market_gap
        await projection.start()
        app.state.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        stop_metrics = None
        if settings.metrics_port:
            try:
                stop_metrics = metrics.serve(gateway_metrics, settings.metrics_port, settings.host)
            except OSError as exc:  # another worker of this host serves them already
                log.warning("metrics port %d: %s", settings.metrics_port, exc)
        restore_gc = _tune_gc()
        try:
            yield
        finally:
            restore_gc()
            if stop_metrics is not None:
                stop_metrics()
            await projection.stop()
            await engine.close()
            await store.close()

    app = FastAPI(
        title="Tickplane gateway",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # No OpenTelemetry here (metrics are Prometheus): FastAPI's native telemetry
        # otherwise asks the global providers on every request whether it is on.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = gateway_metrics
    install_handlers(app)
    app.add_middleware(metrics.MetricsMiddleware, metrics=gateway_metrics)
    # Straight into the app, not through an /api/v1 router: each level of nested routers
    # is walked again on every request.
    for part in (health, orders, account, market, admin, strategies, ws):
        app.include_router(part.router, prefix=API_PREFIX)
    app.include_router(alpaca_router)  # Alpaca-compatible: /v2 and /stream
    _serve_submit_lean(app)
    return app


# Under WebSocket order entry the collector took a fifth of a worker's time with
# CPython's defaults (700 allocations per young collection; every full one walking the
# ~100k objects that FastAPI, pydantic and the modules leave behind): each order leaves
# a few short-lived dicts and futures, and orders in flight survive into the old
# generations. Long-lived startup objects are frozen out of the collections and young
# collections come 50x less often; what is cyclic garbage is still found, later.
GC_THRESHOLDS = (35_000, 10, 10)


def _tune_gc() -> Callable[[], None]:
    """Once started: move what exists now out of the collector's walks (`gc.freeze`) and
    collect the young generation less often (`GC_THRESHOLDS`); returns the undo (for a
    process that goes on after the app, as tests do)."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

    def restore() -> None:
        gc.unfreeze()
        gc.set_threshold(*before)

    return restore


def _serve_submit_lean(app: FastAPI) -> None:
    """Put `orders.SubmitRoute` ahead of every route: it takes `POST /api/v1/orders` and
    hands what it does not take back to the router, to the FastAPI route (which stays,
    for the OpenAPI and for those requests)."""
    app.router.routes.insert(0, orders.SubmitRoute(f"{API_PREFIX}/orders", app.router))
