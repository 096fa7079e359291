"""`/api/v1/health` (liveness) and `/api/v1/ready` (readiness): no key needed, as
Kubernetes probes send none, and nothing revealed but the status."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status

from tickplane.api.deps import EngineDep, ProjectionDep
from tickplane.api.engine import acked
from tickplane.api.errors import ApiError
from tickplane.api.schemas import Health, Readiness

__all__ = ["router"]

router = APIRouter(tags=["health"])

# How long readiness waits for the engine's answer, then for the projection to reach
# the engine's seq.
PING_SECONDS = 0.5
CATCH_UP_SECONDS = 0.4


@router.get("/health")
async def read_health() -> Health:
    """The gateway process answers (liveness; no key needed)."""
    return Health()


@router.get(
    "/ready",
    responses={503: {"model": Readiness, "description": "engine down or projection behind"}},
)
async def read_ready(engine: EngineDep, projection: ProjectionDep, response: Response) -> Readiness:
    """Ready when the engine answers and the projection has applied every event the
    engine had written when it answered (no key needed)."""
    try:
        async with asyncio.timeout(PING_SECONDS):  # probes give up after 1 s by default
            ping = await acked(engine.ping(), PING_SECONDS)
        ready = projection.running and await projection.wait_for(ping.last_seq, CATCH_UP_SECONDS)
        projection.observe(ping.last_seq)
    except (ApiError, TimeoutError):
        ready = False
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="ready" if ready else "not_ready")
