"""What routes depend on, as `Annotated` aliases: settings, engine, database, caller."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from tickplane.api import keys
from tickplane.api.errors import ApiError
from tickplane.api.settings import GatewaySettings, get_settings
from tickplane.core.client import EngineClient

__all__ = [
    "Caller",
    "CurrentAccount",
    "DbDep",
    "EngineDep",
    "RateLimiter",
    "SettingsDep",
    "get_current_account",
    "get_db",
    "get_engine",
]

if TYPE_CHECKING:
    Pool = asyncpg.Pool[Any]
else:  # asyncpg's Pool is generic in its stubs only
    Pool = asyncpg.Pool

SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]


def get_engine(request: Request) -> EngineClient:
    engine: EngineClient = request.app.state.engine
    return engine


def get_db(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


EngineDep = Annotated[EngineClient, Depends(get_engine)]
DbDep = Annotated[Pool, Depends(get_db)]

_key_id = APIKeyHeader(
    name="APCA-API-KEY-ID", scheme_name="KeyId", description="API key id", auto_error=False
)
_secret = APIKeyHeader(
    name="APCA-API-SECRET-KEY",
    scheme_name="Secret",
    description="API key secret",
    auto_error=False,
)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the account of the key, the key, its scope."""

    account: str
    key_id: str
    scope: keys.Scope


class RateLimiter:
    """A token bucket per key: `rate` requests per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """0 when the request may go; otherwise seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, then = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


async def get_current_account(
    request: Request,
    db: DbDep,
    key_id: Annotated[str | None, Security(_key_id)],
    secret: Annotated[str | None, Security(_secret)],
) -> Caller:
    """The caller of a key given in `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY`."""
    if not key_id or not secret:
        raise _unauthorized(
            "send an API key in the APCA-API-KEY-ID and APCA-API-SECRET-KEY headers "
            "(create one with `tickplane keys create --account NAME`)"
        )
    key = await keys.authenticate(db, key_id, secret)
    if key is None:
        raise _unauthorized("unknown or revoked API key, or a wrong secret")
    wait = request.app.state.limiter.take(key.key_id)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"more than the key's request rate; retry in {wait:.2f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return Caller(key.account, key.key_id, key.scope)


CurrentAccount = Annotated[Caller, Depends(get_current_account)]
