"""Turn a LOBSTER day into a self-consistent L3 operation stream, in numpy.

The replay benchmark feeds every book (Tickplane's, nautilus_trader's, plain Python, the
C floor) the same operations, so the stream must make sense to a book that only knows
what the stream told it. A LOBSTER file does not: the book held orders before the first
message, and a level-N file omits messages about orders outside the top N levels, so
later messages reduce or delete ids that were never added. This module fixes that once:

1. Seed: orderbook row 0 (the book after message 0) becomes one synthetic order per
   occupied level, id ``SYNTHETIC_ID_BASE + k``, added first.
2. Messages 1.. of types 1-4 become add / reduce / delete / execute (5 hidden execution
   and 7 halt change nothing visible and are skipped).
3. An operation on an id the stream has not added is rewritten onto the synthetic order of
   its level (same side and price); when that level was not seeded the operation is
   dropped (it concerns liquidity the stream never saw).
4. Quantities are clamped per order so nothing goes negative; an operation that finds its
   order already gone is dropped; an order that reaches zero leaves the book (a reduce
   or execute to zero keeps its code: books must remove an order at zero; a delete of a
   synthetic order that would leave some behind becomes a reduce).

Every operation carries its order's side and price, and ``remaining`` (the order's size
after the operation) is returned beside the stream so that peers with "set the size"
semantics (nautilus_trader's UPDATE) can be fed the same thing.

This is a workload, not a reconstruction: it does not forget levels that fall below the
file's window nor adopt levels that rise into it (the replay contract's steps 3-4, done
by ``tickplane replay lobster``). Orders cancelled while outside the top 10 stay in the
stream's book forever and levels that rise from below are missing, so on the GOOG day its
book leaves LOBSTER's top of book at row 226 and ends crossed, with about 4,000 live
orders. Every book fed the stream still ends in the same state, which the harness checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickplane.engine.lobster import DUMMY_ASK_PRICE, DUMMY_BID_PRICE, LobsterDay

__all__ = ["MD_OP_DTYPE", "OP_ADD", "OP_DELETE", "OP_EXECUTE", "OP_REDUCE", "ReplayStream"]

#: The batch layout of ``tickplane.engine.book.MD_OP_DTYPE`` (checked equal at run time).
MD_OP_DTYPE = np.dtype([("op", "u1"), ("side", "u1"), ("id", "u8"), ("price", "i8"), ("qty", "i8")])
OP_ADD, OP_REDUCE, OP_DELETE, OP_EXECUTE = 1, 2, 3, 4
SYNTHETIC_ID_BASE = 1 << 40

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReplayStream:
    """The operation stream and what was done to build it.

    Attributes:
        ops: ``MD_OP_DTYPE`` array; the first ``seeds`` operations are the synthetic adds.
        remaining: int64, the order's size after each operation (0: it left the book).
        rows: int64, the message (and orderbook row) each operation comes from; 0 for seeds.
        seeds: number of synthetic seed orders.
        source_messages: messages after the first (the ones considered).
        skipped_hidden: type 5 and 7 messages skipped.
        rewritten: operations on unseen ids moved onto their level's synthetic order.
        dropped: operations dropped (unseen id at an unseeded level, or order already gone).
        clamped: operations whose quantity was cut so that no order goes negative.
    """

    ops: npt.NDArray[np.void]
    remaining: I64
    rows: I64
    seeds: int
    source_messages: int
    skipped_hidden: int
    rewritten: int
    dropped: int
    clamped: int

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
        return {
            "ops": len(self),
            "seeds": self.seeds,
            "source_messages": self.source_messages,
            "skipped_hidden_or_halt": self.skipped_hidden,
            "rewritten_to_synthetic": self.rewritten,
            "dropped": self.dropped,
            "clamped": self.clamped,
            **{f"{k}s": v for k, v in self.counts().items()},
        }


def build(day: LobsterDay) -> ReplayStream:
    """Build the stream for ``day`` (see the module docstring for the rules)."""
    if len(day) == 0:
        raise ValueError(f"{day.name}: no messages")

    # 1. Seeds from orderbook row 0: asks then bids, best first, occupied levels only.
    row = day.orderbook[0]
    s_price = np.concatenate([row[0::4], row[2::4]]).astype(np.int64)
    s_size = np.concatenate([row[1::4], row[3::4]]).astype(np.int64)
    s_side = np.repeat(np.array([1, 0], dtype=np.int64), day.levels)
    occupied = (s_size > 0) & (s_price != DUMMY_ASK_PRICE) & (s_price != DUMMY_BID_PRICE)
    s_price, s_size, s_side = s_price[occupied], s_size[occupied], s_side[occupied]
    n_seed = int(s_price.shape[0])
    s_id = SYNTHETIC_ID_BASE + np.arange(n_seed, dtype=np.int64)

    # 2. Messages after the first, visible types only.
    msgs = day.messages[1:]
    visible = np.isin(msgs["type"], (1, 2, 3, 4))
    m = msgs[visible]
    m_row = np.flatnonzero(visible).astype(np.int64) + 1
    n = int(m.shape[0])
    pos = np.arange(n, dtype=np.int64)
    mtype = m["type"].astype(np.int64)
    mid = m["id"].astype(np.int64)
    msize = m["size"].astype(np.int64)
    mprice = m["price"].astype(np.int64)
    mside = np.where(m["direction"] == 1, 0, 1).astype(np.int64)
    if np.any(mid >= SYNTHETIC_ID_BASE):
        raise ValueError(f"{day.name}: order ids reach {SYNTHETIC_ID_BASE}, the synthetic base")

    is_add = mtype == 1
    add_pos = pos[is_add]
    add_id = mid[is_add]
    if np.unique(add_id).shape[0] != add_id.shape[0]:
        raise ValueError(f"{day.name}: an order id is added twice")
    if np.any(msize[is_add] <= 0):
        raise ValueError(f"{day.name}: an add with a non-positive size")

    # Targets: the seeds, then the added orders. Each has an initial size, side, price, id.
    t_size = np.concatenate([s_size, msize[is_add]])
    t_side = np.concatenate([s_side, mside[is_add]])
    t_price = np.concatenate([s_price, mprice[is_add]])
    t_id = np.concatenate([s_id, add_id])

    # 3. Which target each reduce/delete/execute acts on.
    red = ~is_add
    r_pos, r_type, r_id = pos[red], mtype[red], mid[red]
    r_size, r_side, r_price = msize[red], mside[red], mprice[red]
    order = np.argsort(add_id, kind="stable")
    sorted_ids = add_id[order]
    at = np.minimum(np.searchsorted(sorted_ids, r_id), max(sorted_ids.shape[0] - 1, 0))
    if sorted_ids.shape[0]:
        known = (sorted_ids[at] == r_id) & (add_pos[order][at] < r_pos)
    else:
        known = np.zeros(r_id.shape[0], dtype=bool)
    target = np.full(r_id.shape[0], -1, dtype=np.int64)
    target[known] = n_seed + order[at[known]]
    # Unseen ids: the seed at the same (side, price), if any.
    seed_key = s_side * (1 << 40) + s_price
    seed_order = np.argsort(seed_key, kind="stable")
    seed_sorted = seed_key[seed_order]
    unknown = ~known
    u_key = r_side[unknown] * (1 << 40) + r_price[unknown]
    if n_seed:
        u_at = np.minimum(np.searchsorted(seed_sorted, u_key), n_seed - 1)
        hit = seed_sorted[u_at] == u_key
        u_target = np.where(hit, seed_order[u_at], -1)
    else:
        u_target = np.full(u_key.shape[0], -1, dtype=np.int64)
    target[unknown] = u_target
    rewritten = int(np.count_nonzero(u_target >= 0))

    # Amount each operation asks to take off: a delete of a known order takes it all.
    has_target = target >= 0
    safe_target = np.where(has_target, target, 0)
    ask = np.where((r_type == 3) & known, t_size[safe_target], r_size)
    ask = np.maximum(ask, 0)

    # 4. Clamp per target: cumulative asks within each target, in time order.
    keep_idx = np.flatnonzero(has_target)
    grp = target[keep_idx]
    by = np.lexsort((r_pos[keep_idx], grp))
    idx = keep_idx[by]
    g = grp[by]
    a = ask[idx]
    cum = np.cumsum(a)
    starts = np.ones(g.shape[0], dtype=bool)
    starts[1:] = g[1:] != g[:-1]
    base = np.maximum.accumulate(np.where(starts, cum - a, 0))
    cum_in = cum - base
    prev_in = cum_in - a
    q = t_size[g]
    took = np.minimum(cum_in, q) - np.minimum(prev_in, q)
    left = q - np.minimum(cum_in, q)
    live = took > 0
    clamped = int(np.count_nonzero(live & (took < a) & ~((r_type[idx] == 3) & known[idx])))

    # Operation codes: deletes that leave something behind become reduces.
    code = r_type[idx].copy()
    code[(code == 3) & (left > 0)] = OP_REDUCE
    idx, g, took, left, code = idx[live], g[live], took[live], left[live], code[live]
    dropped = int(r_id.shape[0] - idx.shape[0])

    # Merge adds and surviving reductions back in message order, after the seeds.
    n_ops = n_seed + int(add_pos.shape[0]) + int(idx.shape[0])
    ops = np.zeros(n_ops, dtype=MD_OP_DTYPE)
    remaining = np.zeros(n_ops, dtype=np.int64)
    ops["op"][:n_seed] = OP_ADD
    ops["side"][:n_seed] = s_side
    ops["id"][:n_seed] = s_id
    ops["price"][:n_seed] = s_price
    ops["qty"][:n_seed] = s_size
    remaining[:n_seed] = s_size

    ev_pos = np.concatenate([add_pos, r_pos[idx]])
    ev_target = np.concatenate([n_seed + np.arange(add_pos.shape[0]), g])
    ev_code = np.concatenate([np.full(add_pos.shape[0], OP_ADD), code])
    ev_qty = np.concatenate([t_size[n_seed:], took])
    ev_left = np.concatenate([t_size[n_seed:], left])
    sort = np.argsort(ev_pos, kind="stable")
    rest = slice(n_seed, n_ops)
    ops["op"][rest] = ev_code[sort]
    ops["side"][rest] = t_side[ev_target[sort]]
    ops["id"][rest] = t_id[ev_target[sort]]
    ops["price"][rest] = t_price[ev_target[sort]]
    ops["qty"][rest] = ev_qty[sort]
    remaining[rest] = ev_left[sort]
    rows = np.zeros(n_ops, dtype=np.int64)
    rows[rest] = m_row[ev_pos[sort]]
    return ReplayStream(
        ops=ops,
        remaining=remaining,
        rows=rows,
        seeds=n_seed,
        source_messages=int(msgs.shape[0]),
        skipped_hidden=int(msgs.shape[0] - n),
        rewritten=rewritten,
        dropped=dropped,
        clamped=clamped,
    )
