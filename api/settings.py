"""The gateway's settings: defaults, then `TICKPLANE_GATEWAY_<SETTING>` variables.

Built on demand (`get_settings()`, cached), never at import time, so tests and
`create_app(settings)` can give their own.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings", "get_settings"]


class GatewaySettings(BaseSettings):
    """Where the engine and the key store are, and how the gateway serves."""

    model_config = SettingsConfigDict(env_prefix="TICKPLANE_GATEWAY_", extra="forbid")

    # The engine's ZeroMQ endpoints (its `order_entry` and `events` settings).
    engine_order_entry: str = "tcp://127.0.0.1:5555"
    engine_events: str = "tcp://127.0.0.1:5556"
    # Seconds to wait for the engine's reply before answering 503.
    engine_timeout: float = Field(default=2.0, gt=0)

    # The engine's name in the recorder's tables (its `--engine-name`): the Alpaca
    # market-data history reads that engine's rows from `database_url`.
    engine_name: str = "engine-0"

    # API keys: in PostgreSQL (asyncpg DSN) when set, else in `<data_dir>/keys.sqlite`.
    database_url: str | None = None
    data_dir: Path = Path(".tickplane")
    database_pool_min: int = Field(default=1, ge=0)
    database_pool_max: int = Field(default=10, ge=1)
    # Seconds a verified key is trusted without reading the store again: a revocation
    # takes effect within this bound.
    key_cache_seconds: float = Field(default=1.0, ge=0)

    # Per-key rate limit (token bucket): sustained requests per second and burst size.
    # 0 requests per second turns the limit off.
    rate_limit_per_second: float = Field(default=100.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)

    # The projection of the engine's events: what it keeps per account / symbol.
    max_closed_orders: int = Field(default=10_000, ge=1)
    max_executions: int = Field(default=10_000, ge=1)
    max_trades: int = Field(default=1_000, ge=1)
    # Seconds a read waits for the projection to reach the caller's last write.
    read_your_writes_timeout: float = Field(default=1.0, gt=0)

    # WebSockets: updates queued per client before a slow client is dropped.
    ws_queue_size: int = Field(default=1_000, ge=1)

    # Strategies (api/strategies.py): `local` asks the runners at `strategy_runners` (base
    # URLs of their metrics ports, a JSON list; `tickplane up` fills them in) and controls
    # them with `strategy_control_token`; `kubernetes` reads and patches the `Strategy`
    # resources of `strategies_namespace` (default: the pod's own namespace), in-cluster
    # or through `strategies_kubeconfig`.
    strategies_source: Literal["local", "kubernetes"] = "local"
    strategy_runners: list[str] = Field(default_factory=list)
    strategy_control_token: SecretStr | None = None
    strategy_timeout: float = Field(default=1.0, gt=0)
    strategies_namespace: str | None = None
    strategies_kubeconfig: Path | None = None

    # Where `uvicorn` binds, and the Prometheus metrics port (0: no metrics server).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    metrics_port: int = Field(default=9108, ge=0, le=65535)


@lru_cache
def get_settings() -> GatewaySettings:
    """The process's settings, read once from the environment."""
    return GatewaySettings()
