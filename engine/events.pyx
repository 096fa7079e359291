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
from tickplane.engine.matching import OrderType, Reason, Side

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
ORDER_TYPES = {int(t): t.name.lower() for t in OrderType}
REASONS = {int(r): r.name.lower() for r in Reason}
# The same names indexed by the core's uint8 codes (a list index, not a dict lookup).
cdef list _SIDE_NAMES = [SIDES.get(i, str(i)) for i in range(256)]
cdef list _TYPE_NAMES = [ORDER_TYPES.get(i, str(i)) for i in range(256)]
cdef list _REASON_NAMES = [REASONS.get(i, str(i)) for i in range(256)]
REASON_NAMES = tuple(_REASON_NAMES)  # the same, for Python callers (recovery)


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
    cdef CoreEvent e
    cdef list out = []
    for (
        e.seq,
        e.ts,
        e.id,
        e.maker,
        e.price,
        e.qty,
        e.symbol,
        e.account,
        e.maker_account,
        e.type,
        e.reason,
        e.side,
        e.order_type,
    ) in rows:
        out.append(_typed(&e, symbols, accounts))
    return out


def from_core(MatchingEngine core, symbols, accounts):
    """The typed events of the core's last per-call command, in order: what
    `from_rows(core.event_rows(), symbols, accounts)` gives."""
    cdef Py_ssize_t i
    cdef list out = []
    for i in range(core.n_events):
        out.append(_typed(&core.evbuf[i], symbols, accounts))
    return out


cdef object _typed(const CoreEvent* e, symbols, accounts):
    """One core event as its typed event, names from the caller's tables."""
    if e.type == EV_TRADE:
        return Trade(
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
    if e.type == EV_ACCEPTED:
        return OrderAccepted(
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
    if e.type == EV_CANCELED:
        return OrderCanceled(
            e.seq, e.ts, e.id, accounts[e.account], symbols[e.symbol], e.qty,
            _REASON_NAMES[e.reason],
        )  # fmt: skip
    if e.type == EV_REJECTED:
        return OrderRejected(e.seq, e.ts, e.id, accounts[e.account], _REASON_NAMES[e.reason])
    if e.type == EV_REPLACED:
        return OrderReplaced(
            e.seq, e.ts, e.id, accounts[e.account], symbols[e.symbol], e.price, e.qty
        )
    if e.type == EV_TRIGGERED:
        return StopTriggered(e.seq, e.ts, e.id, accounts[e.account], symbols[e.symbol], e.price)
    raise ValueError(f"event {e.seq}: unknown type {e.type}")
