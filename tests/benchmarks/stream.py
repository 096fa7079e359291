"""Turn a LOBSTER day into an L3 operation stream that follows the real book.

The replay benchmark feeds every book (Tickplane's, nautilus_trader's, plain Python, the
C floor) the same operations, so each operation must make sense to a book that knows
only what the stream told it: an add of a new id with a positive size, or a reduce /
execute / delete of a live id by at most its size. A LOBSTER file is not such a stream:
the book held orders before the first message, and a level-N file omits every message
about orders outside the top N levels, so later messages touch ids that were never
added, and levels rise into the window with no add at all.

``build`` makes one sequential pass that keeps a book exactly as the known-window replay
does (../shared/contracts/lobster.md, steps 1-4; ``engine/replay.pyx``) and writes down,
as explicit L3 operations, everything that replay does to its book:

1. Seed: row 0 (the book after message 0) becomes one synthetic order per level, each
   with a fresh id from ``SYNTHETIC_ID_BASE`` up. Message 0 is not applied again.
2. Message i (types 1-4; 5 hidden execution and 7 halt change nothing visible):

   - an add of a new id is an ADD; an add whose id is still live (the replay turns it
     into anonymous liquidity at the level) is an ADD of a new synthetic order;
   - a partial cancel / execution / delete of a live id is a REDUCE / EXECUTE /
     DELETE of it, clamped to its size (a delete takes it all);
   - the same on an id the book does not hold acts on the level's aggregate, as the
     replay's ``_reduce_level`` does: the level's synthetic orders first (oldest
     first), then its oldest real orders, each a REDUCE / EXECUTE (or a DELETE when a
     delete message takes a whole order), clamped to what the level holds; with no
     level at that price it is dropped.
3. Window, after message i, per side: a level that fell below the top N is forgotten
   (a DELETE of each of its orders, synthetic or real); when the side then has fewer
   than N levels, each level of row i beyond them is adopted as an ADD of one new
   synthetic order of that level's size (its orders were never reported).

After the operations of message i the stream's book equals row i (its top N levels,
prices and sizes); ``build`` checks this on every row (``rows_matched``) and the
benchmark checks it again on the books it times. An order reduced or executed to zero
leaves the book (every book here removes an order at zero); ``remaining`` (the order's
size after each operation) is returned beside the stream for peers whose update sets
the size (nautilus_trader's UPDATE).

The pass is plain Python and runs once, before any timing (under a second for the GOOG
day's 147,916 messages, so nothing is cached).
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tickplane.engine.lobster import DUMMY_ASK_PRICE, DUMMY_BID_PRICE, LobsterDay

__all__ = [
    "MD_OP_DTYPE",
    "OP_ADD",
    "OP_DELETE",
    "OP_EXECUTE",
    "OP_REDUCE",
    "SYNTHETIC_ID_BASE",
    "ReplayStream",
    "build",
    "row_depth",
]

#: The batch layout of ``tickplane.engine.book.MD_OP_DTYPE`` (checked equal at run time).
MD_OP_DTYPE = np.dtype([("op", "u1"), ("side", "u1"), ("id", "u8"), ("price", "i8"), ("qty", "i8")])
OP_ADD, OP_REDUCE, OP_DELETE, OP_EXECUTE = 1, 2, 3, 4
BUY, SELL = 0, 1
#: Synthetic order ids count up from here (LOBSTER ids are far below it).
SYNTHETIC_ID_BASE = 1 << 40

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReplayStream:
    """The operation stream and what was done to build it.

    Attributes:
        ops: ``MD_OP_DTYPE`` array, in the order the books must apply it.
        remaining: int64, the order's size after each operation (0: it left the book).
        rows: int64, the message (and orderbook row) each operation belongs to (0 for
            the seeds); non-decreasing. After every operation of row ``i`` the book's
            top levels equal orderbook row ``i``.
        levels: the window (levels per side in the orderbook file).
        stats: counts of what the pass did (see ``build``), including ``rows_compared``
            and ``rows_matched``.
    """

    ops: npt.NDArray[np.void]
    remaining: I64
    rows: I64
    levels: int
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ops.shape[0])

    def counts(self) -> dict[str, int]:
        """Operations per kind."""
        ops = self.ops["op"]
        return {
            name: int(np.count_nonzero(ops == code))
            for name, code in (
                ("add", OP_ADD),
                ("reduce", OP_REDUCE),
                ("delete", OP_DELETE),
                ("execute", OP_EXECUTE),
            )
        }

    def summary(self) -> dict[str, int]:
        """Everything about the stream worth printing, as one flat dict."""
        return {"ops": len(self), **self.stats, **{f"{k}s": v for k, v in self.counts().items()}}

    def upto(self, row: int) -> int:
        """How many operations belong to rows ``<= row`` (a prefix of the stream)."""
        return int(np.searchsorted(self.rows, row, side="right"))


def row_depth(orderbook_row: Any, levels: int) -> dict[str, list[tuple[int, int]]]:
    """An orderbook row as ``{"bids"/"asks": [(price, size), ...]}``, best first, without
    LOBSTER's placeholders for missing levels."""
    r = [int(v) for v in orderbook_row]
    out: dict[str, list[tuple[int, int]]] = {}
    for name, off in (("asks", 0), ("bids", 2)):
        side = []
        for j in range(levels):
            price, size = r[4 * j + off], r[4 * j + off + 1]
            if _real(price) and size > 0:
                side.append((price, size))
        out[name] = side
    return out


def _real(price: int) -> bool:
    return price != DUMMY_ASK_PRICE and price != DUMMY_BID_PRICE and price > 0


class _Level:
    """A level of the pass's book: its total and two FIFO queues (id -> size)."""

    __slots__ = ("real", "synth", "total")

    def __init__(self) -> None:
        self.total = 0
        self.synth: dict[int, int] = {}
        self.real: dict[int, int] = {}


class _Pass:
    """The book the known-window replay keeps, writing each change down as an op."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        # per side: price key -> level; keys sorted best first (bids: -price)
        self.book: tuple[dict[int, _Level], dict[int, _Level]] = ({}, {})
        self.keys: tuple[list[int], list[int]] = ([], [])
        self.live: dict[int, tuple[int, int]] = {}  # real id -> (side, price)
        self.next_sid = SYNTHETIC_ID_BASE
        self.row = 0
        self.out: list[tuple[int, int, int, int, int, int, int]] = []
        self.n = {
            "seeds": 0,
            "adopted": 0,
            "reused_id_adds": 0,
            "window_deletes": 0,
            "on_level": 0,
            "spilled_to_real": 0,
            "dropped": 0,
            "clamped": 0,
        }

    # -- the book ----------------------------------------------------------------------

    def add(self, side: int, price: int, oid: int, qty: int, synthetic: bool) -> None:
        key = -price if side == BUY else price
        book = self.book[side]
        level = book.get(key)
        if level is None:
            level = book[key] = _Level()
            insort(self.keys[side], key)
        level.total += qty
        if synthetic:
            level.synth[oid] = qty
        else:
            level.real[oid] = qty
            self.live[oid] = (side, price)
        self.out.append((OP_ADD, side, oid, price, qty, qty, self.row))

    def add_synthetic(self, side: int, price: int, qty: int) -> None:
        oid = self.next_sid
        self.next_sid += 1
        self.add(side, price, oid, qty, True)

    def take(
        self,
        side: int,
        price: int,
        level: _Level,
        queue: dict[int, int],
        oid: int,
        qty: int,
        code: int,
    ) -> int:
        """Take up to ``qty`` off one order; returns what was taken."""
        have = queue[oid]
        took = qty if qty < have else have
        left = have - took
        op = code
        if code == OP_DELETE and left:
            op = OP_REDUCE
        self.out.append((op, side, oid, price, took, left, self.row))
        level.total -= took
        if left:
            queue[oid] = left
        else:
            del queue[oid]
            self.live.pop(oid, None)
            if not level.real and not level.synth:
                key = -price if side == BUY else price
                del self.book[side][key]
                self.keys[side].remove(key)
        return took

    def on_level(self, side: int, price: int, qty: int, code: int) -> None:
        """An operation on an id the book does not hold: the level's aggregate."""
        level = self.book[side].get(-price if side == BUY else price)
        if level is None:
            self.n["dropped"] += 1
            return
        self.n["on_level"] += 1
        if qty > level.total:
            self.n["clamped"] += 1
        for queue, spill in ((level.synth, False), (level.real, True)):
            for oid in list(queue):
                if qty <= 0:
                    return
                if spill:
                    self.n["spilled_to_real"] += 1
                qty -= self.take(side, price, level, queue, oid, qty, code)

    # -- one message, then the window -------------------------------------------------

    def message(self, mtype: int, oid: int, size: int, price: int, side: int) -> None:
        if size <= 0 or mtype not in (1, 2, 3, 4):
            return  # 5 hidden execution, 7 halt: nothing visible
        if mtype == 1:
            if oid != 0 and oid not in self.live:
                self.add(side, price, oid, size, False)
            else:  # the id is still live: the replay makes it the level's liquidity
                self.n["reused_id_adds"] += 1
                self.add_synthetic(side, price, size)
            return
        where = self.live.get(oid) if oid != 0 else None
        if where is None:
            self.on_level(side, price, size, mtype)
            return
        o_side, o_price = where  # a known id acts on its own order, wherever it rests
        level = self.book[o_side][-o_price if o_side == BUY else o_price]
        if mtype == OP_DELETE:
            size = level.real[oid]
        elif size > level.real[oid]:
            self.n["clamped"] += 1
        self.take(o_side, o_price, level, level.real, oid, size, mtype)

    def window(self, row: list[int]) -> None:
        for side, off in ((BUY, 2), (SELL, 0)):
            keys, book = self.keys[side], self.book[side]
            while len(keys) > self.levels:
                key = keys.pop()
                level = book.pop(key)
                price = -key if side == BUY else key
                for queue in (level.synth, level.real):
                    for oid, qty in queue.items():
                        self.out.append((OP_DELETE, side, oid, price, qty, 0, self.row))
                        self.live.pop(oid, None)
                        self.n["window_deletes"] += 1
            for j in range(len(keys), self.levels):
                price, size = row[4 * j + off], row[4 * j + off + 1]
                if _real(price) and size > 0:
                    self.n["adopted" if self.row else "seeds"] += 1
                    self.add_synthetic(side, price, size)

    def matches(self, row: list[int]) -> bool:
        """Does the book's top equal the row (prices and sizes, placeholders for none)?"""
        for side, off, dummy in ((BUY, 2, DUMMY_BID_PRICE), (SELL, 0, DUMMY_ASK_PRICE)):
            keys, book = self.keys[side], self.book[side]
            sign = -1 if side == BUY else 1
            for j in range(self.levels):
                if j < len(keys):
                    key = keys[j]
                    price, total = sign * key, book[key].total
                else:
                    price, total = dummy, 0
                if row[4 * j + off] != price or row[4 * j + off + 1] != total:
                    return False
        return True


def build(day: LobsterDay) -> ReplayStream:
    """Build the stream for ``day`` (see the module docstring for the rules)."""
    n = len(day)
    if n == 0:
        raise ValueError(f"{day.name}: no messages")
    m = day.messages
    types = m["type"].tolist()
    ids = m["id"].tolist()
    sizes = m["size"].tolist()
    prices = m["price"].tolist()
    sides = np.where(m["direction"] == 1, BUY, SELL).tolist()
    if max(ids) >= SYNTHETIC_ID_BASE:
        raise ValueError(f"{day.name}: order ids reach {SYNTHETIC_ID_BASE}, the synthetic base")
    ob = day.orderbook
    p = _Pass(day.levels)
    p.window(ob[0].tolist())
    matched = 0
    message, window, matches = p.message, p.window, p.matches
    for i in range(1, n):
        p.row = i
        message(types[i], ids[i], sizes[i], prices[i], sides[i])
        row = ob[i].tolist()
        window(row)
        matched += matches(row)

    out = p.out
    ops = np.zeros(len(out), dtype=MD_OP_DTYPE)
    cols = list(zip(*out, strict=True)) if out else [()] * 7
    for name, col in zip(("op", "side", "id", "price", "qty"), cols[:5], strict=True):
        ops[name] = col
    remaining = np.asarray(cols[5], dtype=np.int64)
    change = np.where(ops["op"] == OP_ADD, 1, np.where(remaining == 0, -1, 0))
    stats = {
        "source_messages": n - 1,
        "skipped_hidden_or_halt": sum(1 for t in types[1:] if t not in (1, 2, 3, 4)),
        "rows_compared": n - 1,
        "rows_matched": matched,
        "live_orders_at_end": sum(
            len(lv.real) + len(lv.synth) for b in p.book for lv in b.values()
        ),
        "peak_live_orders": int(np.cumsum(change).max(initial=0)),
        **p.n,
    }
    return ReplayStream(
        ops=ops,
        remaining=remaining,
        rows=np.asarray(cols[6], dtype=np.int64),
        levels=day.levels,
        stats=stats,
    )
