"""What routes depend on, as `Annotated` aliases: settings, engine, projection, key store,
and the caller (authenticated, rate limited)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection

from tickplane.api import keys
from tickplane.api.errors import ApiError
from tickplane.api.projection import Projection
from tickplane.api.settings import GatewaySettings, get_settings
from tickplane.core.client import EngineClient

__all__ = [
    "KEY_ID_HEADER",
    "SECRET_HEADER",
    "AdminAccount",
    "Caller",
    "CurrentAccount",
    "EngineDep",
    "KeyStoreDep",
    "ProjectionDep",
    "RateLimiter",
    "SettingsDep",
    "authenticate",
    "get_current_account",
    "get_engine",
    "get_projection",
]

KEY_ID_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"

# Every dependency here is `async def`: FastAPI runs a plain `def` one in a worker
# thread, a hand-off that cost more than the whole order path.


async def get_app_settings(conn: HTTPConnection) -> GatewaySettings:
    """The settings the app was made with (`create_app(settings)`)."""
    settings: GatewaySettings | None = getattr(conn.app.state, "settings", None)
    return settings if settings is not None else get_settings()


# Not `dependency_overrides`: FastAPI re-analyses an overridden dependency on every
# request, which cost more than the rest of an order's path.
SettingsDep = Annotated[GatewaySettings, Depends(get_app_settings)]


async def get_engine(conn: HTTPConnection) -> EngineClient:
    engine: EngineClient = conn.app.state.engine
    return engine


async def get_projection(conn: HTTPConnection) -> Projection:
    projection: Projection = conn.app.state.projection
    return projection


async def get_key_store(conn: HTTPConnection) -> keys.KeyStore:
    store: keys.KeyStore = conn.app.state.keys
    return store


EngineDep = Annotated[EngineClient, Depends(get_engine)]
ProjectionDep = Annotated[Projection, Depends(get_projection)]
KeyStoreDep = Annotated[keys.KeyStore, Depends(get_key_store)]

_key_id = APIKeyHeader(
    name=KEY_ID_HEADER, scheme_name="KeyId", description="API key id", auto_error=False
)
_secret = APIKeyHeader(
    name=SECRET_HEADER,
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


async def authenticate(
    conn: HTTPConnection, key_id: str | None, secret: str | None, *, limit: bool = True
) -> Caller:
    """The caller of a key id and secret (ApiError 401, or 429 when rate limited).

    Shared by the HTTP routes (headers), the WebSockets (headers or a first message)
    and the Alpaca-compatible API."""
    if not key_id or not secret:
        raise _unauthorized(
            f"send an API key in the {KEY_ID_HEADER} and {SECRET_HEADER} headers "
            "(create one with `tickplane keys create --account NAME`)"
        )
    auth: keys.Authenticator = conn.app.state.auth
    key = await auth.authenticate(key_id, secret)
    if key is None:
        raise _unauthorized("unknown or revoked API key, or a wrong secret")
    if limit:
        wait = conn.app.state.limiter.take(key.key_id)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"more than the key's request rate; retry in {wait:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    return Caller(key.account, key.key_id, key.scope)


async def get_current_account(
    request: Request,
    key_id: Annotated[str | None, Security(_key_id)],
    secret: Annotated[str | None, Security(_secret)],
) -> Caller:
    """The caller of a key given in `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY`."""
    return await authenticate(request, key_id, secret)


CurrentAccount = Annotated[Caller, Depends(get_current_account)]


async def get_admin(caller: CurrentAccount) -> Caller:
    """A caller whose key has the admin scope (403 otherwise)."""
    if caller.scope != "admin":
        raise ApiError(403, "admin_scope_required", "this route needs a key of scope admin")
    return caller


AdminAccount = Annotated[Caller, Depends(get_admin)]
