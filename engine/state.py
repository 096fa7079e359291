"""The engine's deterministic state machine: commands in, typed events out.

`EngineState.apply(command)` is the only thing that changes trading state. The live
process calls it for each decoded request, after validation and risk checks, and
journals the same command; recovery calls it again for each journaled command, so the
recovered state (books, ids, accounts, event sequence numbers, positions) is the one
before the crash. It never reads the clock: a command carries its timestamp.

A `Command` is the core's fixed 56-byte record (`COMMAND_DTYPE`), which is also what
the journal stores.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from tickplane.core.config import EngineConfig
from tickplane.core.events import (
    BookLevel,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionChanged,
    TopOfBook,
    Trade,
)
from tickplane.engine.events import from_array
from tickplane.engine.matching import (
    COMMAND_DTYPE,
    MatchingEngine,
    Op,
    OrderType,
    Side,
    TimeInForce,
)

__all__ = ["COMMAND", "Command", "EngineState", "StateSnapshot"]

# The layout of COMMAND_DTYPE, for packing one command without numpy.
COMMAND = struct.Struct("<QqqqqIIBBBBBBH")
assert COMMAND.size == COMMAND_DTYPE.itemsize

SIDES = {s.name.lower(): int(s) for s in Side}
ORDER_TYPES = {t.name.lower(): int(t) for t in OrderType}
TIFS = {t.name.lower(): int(t) for t in TimeInForce}
SIDE_NAMES = {v: k for k, v in SIDES.items()}
TYPE_NAMES = {v: k for k, v in ORDER_TYPES.items()}
TIF_NAMES = {v: k for k, v in TIFS.items()}
INVALID = 255  # an enum value no field has: the core rejects it with the field's reason


@dataclass(frozen=True, slots=True)
class Command:
    """One command for the core (the journal's record), ids and names as integers."""

    op: int
    id: int
    account: int
    symbol: int
    ts: int
    side: int = 0
    order_type: int = 0
    qty: int = 0
    price: int = 0
    stop_price: int = 0
    tif: int = 0
    post_only: int = 0

    def pack(self) -> bytes:
        return COMMAND.pack(
            self.id,
            self.qty,
            self.price,
            self.stop_price,
            self.ts,
            self.account,
            self.symbol,
            self.op,
            self.side,
            self.order_type,
            self.tif,
            self.post_only,
            0,
            0,
        )

    @classmethod
    def unpack(cls, raw: bytes | memoryview) -> Command:
        i, q, p, sp, ts, acc, sym, op, side, ot, tif, po, _r, _pad = COMMAND.unpack(raw)
        return cls(op, i, acc, sym, ts, side, ot, q, p, sp, tif, po)


class StateSnapshot(msgspec.Struct):
    """Everything `EngineState` needs to resume, besides the core's arrays."""

    accounts: list[str]
    client_order_ids: dict[int, str]
    seq: int
    md_seq: dict[str, int]
    positions: dict[str, dict[str, list[int]]]
    cash: dict[str, int]
    core: bytes  # numpy .npz of MatchingEngine.dump()


@dataclass
class _Position:
    qty: int = 0
    cost: int = 0  # tick-lots paid for the open position, signed like qty
    realized: int = 0


@dataclass
class EngineState:
    """Books, names, sequence numbers and positions of one engine (module docstring)."""

    config: EngineConfig
    core: MatchingEngine = field(default_factory=MatchingEngine)
    accounts: list[str] = field(default_factory=lambda: [""])
    account_index: dict[str, int] = field(default_factory=dict)
    client_order_ids: dict[int, str] = field(default_factory=dict)
    seq: int = 0
    md_seq: dict[str, int] = field(default_factory=dict)
    positions: dict[str, dict[str, _Position]] = field(default_factory=dict)
    cash: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.symbols = [s.name for s in self.config.symbols]
        self.symbol_index = {name: i for i, name in enumerate(self.symbols)}
        self.recent = EventRing(self.config.replay_buffer)

    # -- names -----------------------------------------------------------------------------

    def account_id(self, name: str) -> int | None:
        return self.account_index.get(name)

    def add_account(self, name: str) -> int:
        """Intern an account (journal it before the command that uses it)."""
        n = self.account_index.get(name)
        if n is None:
            n = self.account_index[name] = len(self.accounts)
            self.accounts.append(name)
            self.cash[name] = self.config.starting_cash
        return n

    # -- the state machine -----------------------------------------------------------------

    def apply(self, c: Command) -> list[Event]:
        """Run one command through the core; return its events, numbered."""
        core = self.core
        if c.op == Op.NEW:
            core.submit(
                c.id,
                c.account,
                c.symbol,
                c.side,
                c.order_type,
                c.qty,
                c.price,
                c.stop_price,
                c.tif,
                c.post_only,
                c.ts,
            )
        elif c.op == Op.CANCEL:
            core.cancel(c.id, c.ts)
        else:
            core.replace(c.id, c.qty, c.price, c.ts)
        events = from_array(core.events(), self.symbols, self.accounts)
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, OrderAccepted):
                ev.stop_price = c.stop_price if c.order_type >= OrderType.STOP else None
                ev.tif = TIF_NAMES.get(c.tif, "gtc")
                ev.post_only = bool(c.post_only)
                ev.client_order_id = self.client_order_ids.get(ev.id)
            elif isinstance(ev, OrderCanceled | OrderRejected):
                self.client_order_ids.pop(ev.id, None)
            self.seq += 1
            ev.seq = self.seq
            out.append(ev)
            if isinstance(ev, Trade):
                out.extend(self._fill(ev))
        self.recent.extend(out)
        return out

    def _fill(self, t: Trade) -> Iterable[PositionChanged]:
        for account, signed in ((t.taker_account, 1), (t.maker_account, -1)):
            if t.taker_side == "sell":
                signed = -signed
            self._trade(account, t.symbol, signed * t.qty, t.price)
        accounts = [t.taker_account]
        if t.maker_account != t.taker_account:
            accounts.append(t.maker_account)
        for account in accounts:
            pos = self.positions[account][t.symbol]
            self.seq += 1
            yield PositionChanged(
                self.seq,
                t.ts_event,
                account,
                t.symbol,
                pos.qty,
                pos.cost,
                pos.realized,
                self.cash[account],
            )

    def _trade(self, account: str, symbol: str, qty: int, price: int) -> None:
        """Apply a signed fill (+ bought, - sold) to a position; exact integer P&L."""
        pos = self.positions.setdefault(account, {}).setdefault(symbol, _Position())
        self.cash[account] = self.cash.get(account, 0) - qty * price
        if pos.qty == 0 or (pos.qty > 0) == (qty > 0):
            pos.qty += qty
            pos.cost += qty * price
            return
        closing = min(abs(qty), abs(pos.qty))
        sign = 1 if pos.qty > 0 else -1
        # Cost of the closed part at the average entry, kept exact with integer division
        # only where the position closes entirely.
        closed_cost = pos.cost * closing // abs(pos.qty) if closing < abs(pos.qty) else pos.cost
        pos.realized += sign * closing * price - closed_cost
        pos.cost -= closed_cost
        pos.qty += qty
        if pos.qty != 0 and (pos.qty > 0) != (sign > 0):  # flipped through zero
            pos.cost = pos.qty * price

    def top_of_book(self, symbol: int, ts: int) -> TopOfBook:
        """The market-data message for `symbol` (numbered in its own md_seq)."""
        name = self.symbols[symbol]
        self.md_seq[name] = self.md_seq.get(name, 0) + 1
        return self.book(symbol, self.config.top_levels, ts)

    def book(self, symbol: int, levels: int, ts: int) -> TopOfBook:
        """`levels` aggregated levels a side, best first (md_seq: the symbol's last)."""
        name = self.symbols[symbol]
        n = self.md_seq.get(name, 0)
        depth = self.core.depth(symbol, levels)
        return TopOfBook(
            n,
            ts,
            name,
            [BookLevel(*lv) for lv in depth["bids"]],
            [BookLevel(*lv) for lv in depth["asks"]],
            self.core.last_price(symbol),
        )

    # -- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **self.core.dump())
        snap = StateSnapshot(
            accounts=self.accounts,
            client_order_ids=self.client_order_ids,
            seq=self.seq,
            md_seq=self.md_seq,
            positions={
                a: {s: [p.qty, p.cost, p.realized] for s, p in by_sym.items()}
                for a, by_sym in self.positions.items()
            },
            cash=self.cash,
            core=buf.getvalue(),
        )
        return msgspec.msgpack.encode(snap)

    def restore(self, raw: bytes) -> None:
        """Resume from `snapshot()` bytes (on a fresh state)."""
        snap = msgspec.msgpack.decode(raw, type=StateSnapshot)
        with np.load(io.BytesIO(snap.core), allow_pickle=False) as z:
            self.core.load({k: z[k] for k in z.files})
        self.accounts = snap.accounts
        self.account_index = {a: i for i, a in enumerate(self.accounts) if i}
        self.client_order_ids = snap.client_order_ids
        self.seq = snap.seq
        self.md_seq = snap.md_seq
        self.positions = {
            a: {s: _Position(*v) for s, v in by_sym.items()} for a, by_sym in snap.positions.items()
        }
        self.cash = snap.cash

    # -- queries ---------------------------------------------------------------------------

    def replay(self, from_seq: int, to_seq: int, limit: int) -> list[Event] | None:
        """Events from_seq..to_seq (at most `limit`) from memory; None if too old."""
        return self.recent.range(from_seq, min(to_seq, self.seq), limit)


class EventRing:
    """The last `capacity` events by seq, with O(1) access for gap fills."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: list[Event | None] = [None] * capacity
        self.first = 1  # seq of the oldest event held
        self.next = 1  # seq the next event will have

    def extend(self, events: Iterable[Event]) -> None:
        if self.capacity == 0:
            return
        for ev in events:
            if ev.seq != self.next:  # after a restore the ring starts where the state is
                self.first = self.next = ev.seq
            self._items[ev.seq % self.capacity] = ev
            self.next = ev.seq + 1
            if self.next - self.first > self.capacity:
                self.first = self.next - self.capacity

    def range(self, from_seq: int, to_seq: int, limit: int) -> list[Event] | None:
        if from_seq >= self.next:
            return []
        if from_seq < self.first or self.capacity == 0:
            return None
        stop = min(to_seq + 1, self.next, from_seq + limit)
        out: list[Event] = []
        for seq in range(from_seq, stop):
            ev = self._items[seq % self.capacity]
            assert ev is not None
            out.append(ev)
        return out
