"""Talking to the engine: its replies as answers (an Ack, or an ApiError)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from tickplane.api.errors import ApiError
from tickplane.api.projection import OrderRecord, order_from_view
from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineError, EngineUnavailable

__all__ = ["ack_of", "acked", "engine_order"]


async def acked(request: Awaitable[wire.Reply], timeout: float) -> wire.Ack:
    """The engine's Ack, or an ApiError: its Reject (4xx) or no answer (503).

    `timeout` is the engine client's own (the gateway makes its client with
    `engine_timeout`), which bounds the whole request, the send included; a second
    timer here cost ~8% of a WebSocket order's CPU."""
    try:
        reply = await request
    except (TimeoutError, EngineError) as exc:
        raise _unavailable(exc, timeout) from None
    return _ack(reply)


def ack_of(reply: asyncio.Future[wire.ReplyHead], timeout: float) -> wire.AckHead:
    """`acked` for a reply already in (a done future) and read as a head
    (`EngineClient.send_head`), without a coroutine: WebSocket order entry answers a
    frame's orders together once their replies are in."""
    try:
        done = reply.result()
    except (TimeoutError, EngineError) as exc:
        raise _unavailable(exc, timeout) from None
    return _ack(done)


async def engine_order(
    engine: EngineClient,
    account: str,
    timeout: float,
    order_id: int = 0,
    client_order_id: str | None = None,
) -> OrderRecord | None:
    """The account's order as the engine answers `GetOrder` (by id, or by client order
    id): open or recently finished. For a read the projection cannot answer (it dropped
    a closed order, or began after the engine's replay let its events go); None when
    the engine does not know it for this account (never, another's, or finished longer
    ago than it keeps). No answer is a 503, as in `acked`."""
    if client_order_id is None:
        request = engine.get_order(account, order_id)
    else:
        request = engine.get_order_by_client_id(account, client_order_id)
    try:
        reply = await request
    except (TimeoutError, EngineError) as exc:
        raise _unavailable(exc, timeout) from None
    if isinstance(reply, wire.Reject) or reply.order is None:
        return None
    return order_from_view(reply.order)


def _unavailable(exc: TimeoutError | EngineError, timeout: float) -> ApiError:
    if isinstance(exc, TimeoutError | EngineUnavailable):
        return ApiError(
            503,
            "engine_unavailable",
            f"the engine did not answer within {timeout:g} s; retry later",
            headers={"Retry-After": "1"},
        )
    return ApiError(503, "engine_unavailable", str(exc))


_A = TypeVar("_A", wire.Ack, wire.AckHead)


def _ack(reply: _A | wire.Reject) -> _A:
    if isinstance(reply, wire.Reject):
        raise ApiError.from_engine(reply.reason, reply.message)
    return reply
