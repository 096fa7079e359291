"""The baseline of `bench_gateway`: the gateway's auth and `OrderCreate` validation in a
bare FastAPI app that answers 201 without an engine (`uvicorn --factory
bare_gateway:create_app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, status

from tickplane.api import keys
from tickplane.api.deps import CurrentAccount, RateLimiter
from tickplane.api.errors import install_handlers
from tickplane.api.schemas import OrderCreate
from tickplane.api.settings import get_settings

__all__ = ["create_app"]


def create_app() -> FastAPI:
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await keys.open_store(None, settings.data_dir)
        app.state.auth = keys.Authenticator(store, settings.key_cache_seconds)
        app.state.limiter = RateLimiter(0, 1)
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(lifespan=lifespan)
    install_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/orders", status_code=status.HTTP_201_CREATED)
    async def create(order: OrderCreate, caller: CurrentAccount) -> dict[str, Any]:
        return {"id": 1, "account": caller.account, **order.model_dump()}

    return app
