"""The gateway's settings: defaults, then `TICKPLANE_GATEWAY_<SETTING>` variables.

Built on demand (`get_settings()`, cached), never at import time, so tests and
`create_app(settings)` can give their own.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings", "get_settings"]


class GatewaySettings(BaseSettings):
    """Where the engine and the database are, and how the gateway serves."""

    model_config = SettingsConfigDict(env_prefix="TICKPLANE_GATEWAY_", extra="forbid")

    # The engine's ZeroMQ endpoints (its `order_entry` and `events` settings).
    engine_order_entry: str = "tcp://127.0.0.1:5555"
    engine_events: str | None = "tcp://127.0.0.1:5556"
    # Seconds to wait for the engine's reply before answering 503.
    engine_timeout: float = Field(default=2.0, gt=0)

    # PostgreSQL (asyncpg DSN): API keys, the gateway's order records, migrations.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/tickplane"
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=10, ge=1)

    # Per-key rate limit (token bucket): sustained requests per second and burst size.
    # 0 requests per second turns the limit off.
    rate_limit_per_second: float = Field(default=100.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)

    # Where `uvicorn` binds.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


@lru_cache
def get_settings() -> GatewaySettings:
    """The process's settings, read once from the environment."""
    return GatewaySettings()
