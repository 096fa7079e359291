"""`/api/v1/health` (is the process up; no key) and `/api/v1/ready` (can it serve)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from tickplane.api.deps import CurrentAccount, DbDep, EngineDep, SettingsDep
from tickplane.api.engine import acked
from tickplane.api.errors import ApiError
from tickplane.api.routes.orders import _ERRORS
from tickplane.api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/health")
async def read_health() -> Health:
    """The gateway process answers (no key needed)."""
    return Health()


@router.get(
    "/ready",
    responses={503: {"model": Readiness, "description": "engine or database down"}, **_ERRORS},
)
async def read_ready(
    caller: CurrentAccount,
    engine: EngineDep,
    db: DbDep,
    settings: SettingsDep,
    response: Response,
) -> Readiness:
    """Whether the engine and the database answer."""
    engine_state = database_state = "ok"
    try:
        await acked(engine.ping(), settings.engine_timeout)
    except ApiError as exc:
        engine_state = exc.message
    try:
        async with asyncio.timeout(settings.engine_timeout):
            await db.fetchval("SELECT 1")
    except (OSError, TimeoutError) as exc:
        database_state = f"unavailable: {exc}"
    ready = engine_state == database_state == "ok"
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="ready" if ready else "not_ready", engine=engine_state, database=database_state
    )
