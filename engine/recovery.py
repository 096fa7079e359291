"""Re-applying journaled commands on start, without a Python event per command.

`EngineState.apply` turns each command's core events into typed events, books them
into risk and positions, numbers them and keeps them for replay: ~10 us a command, most
of it building and handling event objects that recovery then throws away, because the
event log (`eventlog.py`) already holds every event published before the crash. So
`replay_commands` runs a whole chunk of commands through the core in one call
(`MatchingEngine.process_rows`), books the event rows straight into risk and positions
(the same calls, in the same order, as `EngineState.absorb`), numbers them by counting,
and builds typed events only from `materialize_from` on, the events the log lacks (those
go through `absorb` itself).

It takes this path only where core + `absorb` is the whole of `apply`: no order-rate
limits (their checks spend tokens and must re-run) and no order classes in flight
(contingent.py reacts to events). Otherwise every command goes through `apply` as
before. tests/engine/test_recovery.py checks that both paths give the same state and
the same events on random flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tickplane.core.events import Event, OrderAccepted, OrderReplaced, StopTriggered
from tickplane.engine.events import ORDER_TYPES, REASON_NAMES, SIDES, from_rows
from tickplane.engine.matching import EventType, Op, OrderType

if TYPE_CHECKING:
    from tickplane.engine.state import EngineState

__all__ = ["CHUNK", "fast_path_allowed", "replay_commands"]

CHUNK = 65_536  # commands per core call: bounds the rows held at once
_NEW = int(Op.NEW)
_ACCEPTED, _TRADE = int(EventType.ACCEPTED), int(EventType.TRADE)
_CANCELED, _REPLACED = int(EventType.CANCELED), int(EventType.REPLACED)
_REJECTED, _TRIGGERED = int(EventType.REJECTED), int(EventType.TRIGGERED)
_PRICED = frozenset({int(OrderType.LIMIT), int(OrderType.STOP_LIMIT)})


def fast_path_allowed(state: EngineState) -> bool:
    """Whether booking core rows directly is exactly what `apply` would do now."""
    held = state.contingent
    return not state.checks_spend and not held.busy and not held.aliases


def replay_commands(
    state: EngineState, commands: npt.NDArray[np.void], materialize_from: int
) -> list[Event]:
    """Re-apply `commands` (a journal run, COMMAND_DTYPE) to `state`; return the typed
    events with seq >= `materialize_from`, in order (those before it are not built)."""
    from tickplane.engine.state import Command  # state.py imports what imports this

    out: list[Event] = []
    for start in range(0, len(commands), CHUNK):
        chunk = commands[start : start + CHUNK]
        if fast_path_allowed(state):
            out += _replay_chunk(state, chunk, materialize_from)
            continue
        for row in chunk.tolist():
            events = state.apply(Command._make(row), check=True)
            out += [e for e in events if e.seq >= materialize_from]
    return out


def _replay_chunk(
    state: EngineState, chunk: npt.NDArray[np.void], materialize_from: int
) -> list[Event]:
    from tickplane.engine.state import Command

    out: list[Event] = []
    rows, counts = state.core.process_rows(chunk)
    risk, positions = state.risk, state.positions
    symbols, accounts = state.symbols, state.accounts
    coids = state.client_order_ids
    expire, on_accepted, on_done = risk.expire, risk.on_accepted, risk.on_done
    on_fill, on_replaced, on_trade = risk.on_fill, risk.on_replaced, risk.on_trade
    position_trade = positions.on_trade
    # No halt now and no circuit breaker to make one: `expire` has nothing to end in
    # this chunk (control records, the other way to halt, are not commands).
    quiet = not risk.halts() and state.config.risk.circuit_breaker is None
    stamps = [] if quiet else chunk["ts"].tolist()
    # Finished orders (finished.py) learn the same facts `observe` reads from events.
    finished = state.finished if state.risk.ended is not None else None
    ended: list[int] = state.risk.ended if state.risk.ended is not None else []
    # the command fields an acceptance lacks, as columns (not whole rows: cheaper)
    stops, tifs, posts = (
        (chunk["stop_price"].tolist(), chunk["tif"].tolist(), chunk["post_only"].tolist())
        if finished is not None
        else ([], [], [])
    )
    seq = state.seq
    pos = 0
    for i, n in enumerate(counts):
        end = pos + n
        if seq + 1 >= materialize_from:  # the log lacks these: as `apply` does
            c = Command._make(chunk[i].tolist())
            made: list[Event] = list(expire(c.ts))
            state.absorb(from_rows(rows[pos:end], symbols, accounts), made, c)
            state.seq = seq
            out += state._number(made)
            seq = state.seq
            pos = end
            continue
        if not quiet:
            for ev in expire(stamps[i]):
                seq += 1
                ev.seq = seq
        # EVENT_DTYPE order: seq, ts, id, maker, price, qty, symbol, account,
        # maker_account, type, reason, side, order_type
        ts = 0
        for (
            _s, ts, oid, maker, price, qty, sym, acc, macc, etype, why, side, otype
        ) in rows[pos:end]:  # fmt: skip
            seq += 1
            if etype == _ACCEPTED:
                on_accepted(
                    oid, accounts[acc], symbols[sym], side, qty, price if otype in _PRICED else None
                )
                if finished is not None:
                    accepted = OrderAccepted(
                        seq, ts, oid, accounts[acc], symbols[sym], SIDES[side],
                        ORDER_TYPES[otype], qty, price if otype in _PRICED else None,
                    )  # fmt: skip
                    state.complete_accepted(accepted, stops[i], otype, tifs[i], posts[i])
                    finished.open[oid] = accepted
            elif etype == _TRADE:
                taker_name, maker_name, name = accounts[acc], accounts[macc], symbols[sym]
                buy = side == 0
                for change in position_trade(
                    name,
                    price,
                    qty,
                    taker_name if buy else maker_name,
                    maker_name if buy else taker_name,
                    ts,
                ):
                    seq += 1
                    change.seq = seq
                on_fill(oid, qty)
                on_fill(maker, qty)
                for halt in on_trade(name, price, ts):
                    seq += 1
                    halt.seq = seq
                if finished is not None:
                    finished.fill(oid, qty, price, ts)
                    finished.fill(maker, qty, price, ts)
            elif etype == _CANCELED:
                on_done(oid)
                coids.pop(oid, None)
                if finished is not None:
                    finished.end(oid, "canceled", REASON_NAMES[why], ts)
            elif etype == _REPLACED:
                on_replaced(oid, qty, price)
                if finished is not None:
                    finished.changed(OrderReplaced(seq, ts, oid, "", "", price, qty))
            elif etype == _TRIGGERED and finished is not None:
                finished.changed(StopTriggered(seq, ts, oid, "", "", price))
            elif etype == _REJECTED:
                coid = coids.pop(oid, None)
                if coid is not None:
                    c = Command._make(chunk[i].tolist())
                    if c.op == _NEW and c.id == oid:
                        # a refused order does not keep its client order id
                        state.idempotency.forget(c.account, coid, c.id)
                # no finished order: the core refuses a new order before accepting it,
                # and a refused cancel or replace leaves the order open
        if ended and finished is not None:
            finished.settle(ended, ts)
        pos = end
    state.seq = seq
    return out
