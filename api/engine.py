"""Talking to the engine: its replies as answers, its events as order states."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from tickplane.api.errors import ApiError
from tickplane.core import wire
from tickplane.core.client import EngineError, EngineUnavailable
from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    StopTriggered,
    Trade,
)

__all__ = ["Outcome", "acked", "outcome"]


async def acked(request: Awaitable[wire.Reply], timeout: float) -> wire.Ack:
    """The engine's Ack, or an ApiError: its Reject (4xx) or no answer (503)."""
    try:
        # The whole request is bounded, the send included: a DEALER with no engine
        # connected waits in send().
        async with asyncio.timeout(timeout):
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


@dataclass
class Outcome:
    """What one reply's events say about one order."""

    status: str
    reason: str | None = None
    filled: int = 0
    rejected: str | None = None  # the reason of an OrderRejected for this order
    price: int | None = None  # a replace's new price
    qty: int | None = None  # a replace's new open quantity
    remaining: int | None = None  # open quantity when canceled


def outcome(events: list[Event], order_id: int, status: str) -> Outcome:
    """The order's state after `events`, starting from `status`."""
    out = Outcome(status)
    for ev in events:
        if isinstance(ev, Trade) and order_id in (ev.taker, ev.maker):
            out.filled += ev.qty
            out.status = "partially_filled"
        elif getattr(ev, "id", None) != order_id:
            continue
        elif isinstance(ev, OrderAccepted):
            out.status = "held" if ev.order_type in ("stop", "stop_limit") else "new"
        elif isinstance(ev, StopTriggered):
            out.status = "new"
        elif isinstance(ev, OrderRejected):
            out.rejected = ev.reason
        elif isinstance(ev, OrderCanceled):
            out.status, out.reason, out.remaining = "canceled", ev.reason, ev.remaining
        elif isinstance(ev, OrderReplaced):
            out.status, out.price, out.qty = "new", ev.price, ev.qty
    return out
