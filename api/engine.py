"""Talking to the engine: its replies as answers (an Ack, or an ApiError)."""

from __future__ import annotations

from collections.abc import Awaitable

from tickplane.api.errors import ApiError
from tickplane.core import wire
from tickplane.core.client import EngineError, EngineUnavailable

__all__ = ["acked"]


async def acked(request: Awaitable[wire.Reply], timeout: float) -> wire.Ack:
    """The engine's Ack, or an ApiError: its Reject (4xx) or no answer (503).

    `timeout` is the engine client's own (the gateway makes its client with
    `engine_timeout`), which bounds the whole request, the send included; a second
    timer here cost ~8% of a WebSocket order's CPU."""
    try:
        reply = await request
    except (TimeoutError, EngineUnavailable):
        raise ApiError(
            503,
            "engine_unavailable",
            f"the engine did not answer within {timeout:g} s; retry later",
            headers={"Retry-After": "1"},
        ) from None
    except EngineError as exc:
        raise ApiError(503, "engine_unavailable", str(exc)) from None
    if isinstance(reply, wire.Reject):
        raise ApiError.from_engine(reply.reason, reply.message)
    return reply
