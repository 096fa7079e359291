"""From the compiled core's event array to typed events (`tickplane.core.events`).

The core writes 64-byte structs with integer ids, symbols and accounts (a numpy array
of `EVENT_DTYPE`); nothing on its hot path builds Python objects. `from_array` turns a
batch into the shared typed events, naming symbols and accounts through the caller's
tables (the engine process interns names; tests may use `NUMBERED`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    StopTriggered,
    Trade,
)
from tickplane.engine.matching import EventType, OrderType, Reason, Side

__all__ = ["NUMBERED", "Names", "from_array", "from_rows"]

SIDES = {int(s): s.name.lower() for s in Side}
ORDER_TYPES = {int(t): t.name.lower() for t in OrderType}
REASONS = {int(r): r.name.lower() for r in Reason}
_PRICED = {int(OrderType.LIMIT), int(OrderType.STOP_LIMIT)}
# Plain ints: comparing with an IntEnum member costs ~5x an int's (once per row each).
_TRADE, _ACCEPTED, _CANCELED = (
    int(EventType.TRADE),
    int(EventType.ACCEPTED),
    int(EventType.CANCELED),
)
_REJECTED, _REPLACED, _TRIGGERED = (
    int(EventType.REJECTED),
    int(EventType.REPLACED),
    int(EventType.TRIGGERED),
)


class Names(Protocol):
    """Index -> name (a list of interned names, or anything indexable)."""

    def __getitem__(self, index: int, /) -> str: ...


class _Numbered:
    """Names that are the numbers themselves ("0", "1", ...): for tests and tools."""

    def __getitem__(self, index: int, /) -> str:
        return str(index)


NUMBERED: Names = _Numbered()


def from_array(
    events: npt.NDArray[np.void], symbols: Names | Sequence[str], accounts: Names | Sequence[str]
) -> list[Event]:
    """Typed events from the core's event array (EVENT_DTYPE), in order."""
    return from_rows(events.tolist(), symbols, accounts)


def from_rows(
    rows: Iterable[tuple[int, ...]],
    symbols: Names | Sequence[str],
    accounts: Names | Sequence[str],
) -> list[Event]:
    """Typed events from rows in EVENT_DTYPE's field order (`MatchingEngine.event_rows`)."""
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
    ) in rows:
        if etype == _TRADE:
            out.append(
                Trade(
                    seq,
                    ts,
                    symbols[sym],
                    price,
                    qty,
                    oid,
                    maker,
                    SIDES[side],
                    accounts[acc],
                    accounts[macc],
                )
            )
        elif etype == _ACCEPTED:
            out.append(
                OrderAccepted(
                    seq,
                    ts,
                    oid,
                    accounts[acc],
                    symbols[sym],
                    SIDES[side],
                    ORDER_TYPES[otype],
                    qty,
                    price if otype in _PRICED else None,
                )
            )
        elif etype == _CANCELED:
            out.append(
                OrderCanceled(seq, ts, oid, accounts[acc], symbols[sym], qty, REASONS[reason])
            )
        elif etype == _REJECTED:
            out.append(OrderRejected(seq, ts, oid, accounts[acc], REASONS[reason]))
        elif etype == _REPLACED:
            out.append(OrderReplaced(seq, ts, oid, accounts[acc], symbols[sym], price, qty))
        elif etype == _TRIGGERED:
            out.append(StopTriggered(seq, ts, oid, accounts[acc], symbols[sym], price))
        else:
            raise ValueError(f"event {seq}: unknown type {etype}")
    return out
