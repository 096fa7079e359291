"""The seeded random order flow of the matching benchmark, pre-simulated in Python.

Knowing the book the flow leaves behind lets the harness check the engine's final book
(so a figure cannot come from an engine that skipped work), and lets every cancel target
an order that is still live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.benchmarks import pybook

__all__ = ["MATCH_SEED", "MID", "Flow", "make_flow"]

MATCH_SEED = 20120621
MID = 100_000  # ticks
Depth = dict[str, list[tuple[int, int, int]]]


@dataclass(frozen=True)
class Flow:
    """A pre-generated command flow and the book it must leave behind."""

    kind: list[int]  # 0 submit, 1 cancel
    oid: list[int]
    account: list[int]
    side: list[int]
    otype: list[int]  # 0 limit, 1 market
    qty: list[int]
    price: list[int]
    tif: list[int]  # 0 gtc, 2 ioc
    ts: list[int]
    final: Depth
    live_orders: int
    trades: int

    def __len__(self) -> int:
        return len(self.kind)


def make_flow(n: int, seed: int = MATCH_SEED) -> Flow:
    """Generate ``n`` commands, simulating them on ``PyBook`` to know which orders live.

    60% limit orders 1-20 ticks behind the mid (never crossing), 25% cancels of a random
    live order, 15% taking orders: half market (IOC), half limit orders 2 ticks through
    the opposite best (GTC, the rest rests).
    """
    rng = np.random.default_rng(seed)
    roll = rng.random(n).tolist()
    sides = rng.integers(0, 2, n).tolist()
    offsets = (1 + np.minimum(rng.geometric(0.25, n), 20) - 1).tolist()
    sizes = rng.integers(1, 101, n).tolist()
    big = rng.integers(1, 201, n).tolist()
    accounts = rng.integers(1, 17, n).tolist()
    picks = rng.random(n).tolist()
    book = pybook.PyBook()
    live: list[int] = []
    where: dict[int, int] = {}
    out: dict[str, list[int]] = {
        k: [] for k in ("kind", "oid", "account", "side", "otype", "qty", "price", "tif")
    }
    next_id = 1
    trades = 0

    def drop(order_id: int) -> None:
        i = where.pop(order_id)
        last = live.pop()
        if last != order_id:
            live[i] = last
            where[last] = i

    def emit(
        kind: int, oid: int, acct: int, side: int, otype: int, qty: int, px: int, tif: int
    ) -> None:
        for key, value in zip(out, (kind, oid, acct, side, otype, qty, px, tif), strict=True):
            out[key].append(value)

    for i in range(n):
        r = roll[i]
        if 0.60 <= r < 0.85 and live:
            victim = live[int(picks[i] * len(live))]
            book.delete(victim)
            drop(victim)
            emit(1, victim, 0, 0, 0, 0, 0, 0)
            continue
        side = sides[i]
        bid, ask = book.best_bid(), book.best_ask()
        oid = next_id
        next_id += 1
        if r < 0.85:  # a resting limit order near the mid
            if bid and ask:
                mid = (bid[0] + ask[0]) // 2
            else:
                mid = bid[0] if bid else ask[0] if ask else MID
            price = mid - offsets[i] if side == 0 else max(mid + offsets[i], (bid or (0,))[0] + 1)
            if side == 0 and ask:
                price = min(price, ask[0] - 1)
            qty = sizes[i]
            fills = book.match(side, qty, price)
            assert not fills, "a passive order crossed"
            book.add(oid, side, price, qty)
            live.append(oid)
            where[oid] = len(live) - 1
            emit(0, oid, accounts[i], side, 0, qty, price, 0)
            continue
        qty = big[i]
        market = r >= 0.925
        opposite = ask if side == 0 else bid
        if market or opposite is None:
            fills = book.match(side, qty, None)
            emit(0, oid, accounts[i], side, 1, qty, 0, 2)
        else:
            price = opposite[0] + 2 if side == 0 else opposite[0] - 2
            fills = book.match(side, qty, price)
            left = qty - sum(f for _, f in fills)
            if left:
                book.add(oid, side, price, left)
                live.append(oid)
                where[oid] = len(live) - 1
            emit(0, oid, accounts[i], side, 0, qty, price, 0)
        trades += len(fills)
        for maker, _ in fills:
            if maker not in book:
                drop(maker)
    return Flow(
        ts=[1_000 * (i + 1) for i in range(n)],
        final=book.depth(10),
        live_orders=len(book),
        trades=trades,
        **out,
    )
