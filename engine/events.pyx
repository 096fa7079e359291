# cython: annotation_typing=False
"""From the compiled core's event array to typed events (`tickplane.core.events`).

The core writes 64-byte structs with integer ids, symbols and accounts (a numpy array
of `EVENT_DTYPE`); nothing on its hot path builds Python objects. `from_array` turns a
batch into the shared typed events, naming symbols and accounts through the caller's
tables (the engine process interns names; tests may use `NUMBERED`); `from_core` does
the same for the core's last command straight from its event buffer.

Compiled (the engine turns every command's events into objects here): `from_core` reads
the core's C structs with no row tuple in between, a third of the Python version's
`from_rows(core.event_rows())` on an order's one event.
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

from tickplane.engine.matching cimport (
    EV_ACCEPTED,
    EV_CANCELED,
    EV_REJECTED,
    EV_REPLACED,
    EV_TRADE,
    EV_TRIGGERED,
    OT_LIMIT,
    OT_STOP_LIMIT,
    MatchingEngine,
)
from tickplane.engine.matching cimport Event as CoreEvent

__all__ = ["NUMBERED", "Names", "from_array", "from_core", "from_rows"]

SIDES = {int(s): s.name.lower() for s in Side}
cdef list _SIDE_NAMES = [SIDES.get(i, str(i)) for i in range(256)]
cdef list _TYPE_NAMES = [{int(t): t.name.lower() for t in OrderType}.get(i, str(i)) for i in range(256)]
cdef list _REASON_NAMES = [{int(r): r.name.lower() for r in Reason}.get(i, str(i)) for i in range(256)]
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


def from_core(MatchingEngine core, symbols, accounts):
    """The typed events of the core's last per-call command, in order: what
    `from_rows(core.event_rows(), symbols, accounts)` gives."""
    cdef Py_ssize_t i
    cdef CoreEvent* e
    cdef list out = []
    for i in range(core.n_events):
        e = &core.evbuf[i]
        if e.type == EV_TRADE:
            out.append(
                Trade(
                    e.seq,
                    e.ts,
                    symbols[e.symbol],
                    e.price,
                    e.qty,
                    e.id,
                    e.maker,
                    _SIDE_NAMES[e.side],
                    accounts[e.account],
                    accounts[e.maker_account],
                )
            )
        elif e.type == EV_ACCEPTED:
            out.append(
                OrderAccepted(
                    e.seq,
                    e.ts,
                    e.id,
                    accounts[e.account],
                    symbols[e.symbol],
                    _SIDE_NAMES[e.side],
                    _TYPE_NAMES[e.order_type],
                    e.qty,
                    e.price if e.order_type == OT_LIMIT or e.order_type == OT_STOP_LIMIT else None,
                )
            )
        elif e.type == EV_CANCELED:
            out.append(
                OrderCanceled(
                    e.seq,
                    e.ts,
                    e.id,
                    accounts[e.account],
                    symbols[e.symbol],
                    e.qty,
                    _REASON_NAMES[e.reason],
                )
            )
        elif e.type == EV_REJECTED:
            out.append(OrderRejected(e.seq, e.ts, e.id, accounts[e.account], _REASON_NAMES[e.reason]))
        elif e.type == EV_REPLACED:
            out.append(
                OrderReplaced(
                    e.seq, e.ts, e.id, accounts[e.account], symbols[e.symbol], e.price, e.qty
                )
            )
        elif e.type == EV_TRIGGERED:
            out.append(
                StopTriggered(e.seq, e.ts, e.id, accounts[e.account], symbols[e.symbol], e.price)
            )
        else:
            raise ValueError(f"event {e.seq}: unknown type {e.type}")
    return out
