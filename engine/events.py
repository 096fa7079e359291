"""Typed engine events: the past-tense facts the matching engine emits.

The compiled core writes events as fixed 64-byte structs (a numpy array of
`EVENT_DTYPE`); nothing in the hot path builds Python objects. These classes are the
typed view for code that wants objects (the engine process, strategies, tests):
`from_array` converts a batch, `to_dict`/`from_dict` round-trip with a `"type"`
discriminator that is the contract's word (`accepted`, `trade`, ...).

Ids, symbols and accounts are the core's integers; a front end maps them to names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from tickplane.engine.matching import EventType, OrderType, Reason, Side

__all__ = [
    "Event",
    "OrderAccepted",
    "OrderCanceled",
    "OrderRejected",
    "OrderReplaced",
    "StopTriggered",
    "Trade",
    "from_array",
    "from_dict",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Common to every event: its gap-free sequence number and timestamp (ns)."""

    TYPE: ClassVar[str] = ""

    seq: int
    ts_event: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, `"type"` first."""
        d: dict[str, Any] = {"type": self.TYPE}
        for k, v in asdict(self).items():
            d[k] = v.name.lower() if isinstance(v, Side | OrderType | Reason) else v
        return d


@dataclass(frozen=True, slots=True)
class OrderAccepted(Event):
    TYPE: ClassVar[str] = "accepted"

    id: int
    symbol: int
    account: int
    side: Side
    order_type: OrderType
    price: int  # limit price; 0 for market and stop orders
    qty: int


@dataclass(frozen=True, slots=True)
class OrderRejected(Event):
    TYPE: ClassVar[str] = "rejected"

    id: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class Trade(Event):
    TYPE: ClassVar[str] = "trade"

    symbol: int
    price: int
    qty: int
    taker: int
    maker: int
    taker_side: Side
    taker_account: int
    maker_account: int


@dataclass(frozen=True, slots=True)
class OrderCanceled(Event):
    TYPE: ClassVar[str] = "canceled"

    id: int
    symbol: int
    account: int
    remaining: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class OrderReplaced(Event):
    TYPE: ClassVar[str] = "replaced"

    id: int
    symbol: int
    account: int
    price: int  # the new price
    qty: int  # the new open quantity


@dataclass(frozen=True, slots=True)
class StopTriggered(Event):
    TYPE: ClassVar[str] = "triggered"

    id: int
    symbol: int
    account: int
    stop_price: int


_BY_TYPE: dict[str, type[Event]] = {
    c.TYPE: c
    for c in (OrderAccepted, OrderRejected, Trade, OrderCanceled, OrderReplaced, StopTriggered)
}
_ENUMS: dict[str, type[Side] | type[OrderType] | type[Reason]] = {
    "side": Side,
    "taker_side": Side,
    "order_type": OrderType,
    "reason": Reason,
}


def from_dict(d: dict[str, Any]) -> Event:
    """Rebuild an event from `Event.to_dict` output."""
    cls = _BY_TYPE.get(d.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {d.get('type')!r}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        v = d[f.name]
        enum = _ENUMS.get(f.name)
        kwargs[f.name] = enum[v.upper()] if enum is not None and isinstance(v, str) else v
    return cls(**kwargs)


def from_array(events: npt.NDArray[np.void]) -> list[Event]:
    """Typed events from the core's event array (EVENT_DTYPE)."""
    out: list[Event] = []
    for (
        seq,
        ts,
        oid,
        maker,
        price,
        qty,
        sym,
        acc,
        macc,
        etype,
        reason,
        side,
        otype,
    ) in events.tolist():
        if etype == EventType.TRADE:
            out.append(Trade(seq, ts, sym, price, qty, oid, maker, Side(side), acc, macc))
        elif etype == EventType.ACCEPTED:
            out.append(
                OrderAccepted(seq, ts, oid, sym, acc, Side(side), OrderType(otype), price, qty)
            )
        elif etype == EventType.CANCELED:
            out.append(OrderCanceled(seq, ts, oid, sym, acc, qty, Reason(reason)))
        elif etype == EventType.REJECTED:
            out.append(OrderRejected(seq, ts, oid, Reason(reason)))
        elif etype == EventType.REPLACED:
            out.append(OrderReplaced(seq, ts, oid, sym, acc, price, qty))
        elif etype == EventType.TRIGGERED:
            out.append(StopTriggered(seq, ts, oid, sym, acc, price))
        else:
            raise ValueError(f"event {seq}: unknown type {etype}")
    return out
