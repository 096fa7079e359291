"""Small LOBSTER days built by hand, with orderbook rows computed from the messages."""

from __future__ import annotations

import numpy as np

from tickplane.engine.backtest.data import LobsterData
from tickplane.engine.lobster import DUMMY_ASK_PRICE, DUMMY_BID_PRICE, MESSAGE_DTYPE, LobsterDay

# (time s, type, id, size, price, direction)
Msg = tuple[float, int, int, int, int, int]


def day(messages: list[Msg], levels: int = 5) -> LobsterData:
    """A LobsterData whose orderbook rows follow `messages` (all ids known)."""
    orders: dict[int, list[int]] = {}  # id -> [direction, price, size]
    rows = []
    for _, t, oid, size, price, d in messages:
        if t == 1:
            orders[oid] = [d, price, size]
        elif t in (2, 4):
            orders[oid][2] -= size
            if orders[oid][2] <= 0:
                del orders[oid]
        elif t == 3:
            del orders[oid]
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for d_, p, q in orders.values():
            side = bids if d_ == 1 else asks
            side[p] = side.get(p, 0) + q
        row: list[int] = []
        b = sorted(bids.items(), reverse=True)
        a = sorted(asks.items())
        for k in range(levels):
            row += list(a[k]) if k < len(a) else [DUMMY_ASK_PRICE, 0]
            row += list(b[k]) if k < len(b) else [DUMMY_BID_PRICE, 0]
        rows.append(row)
    msgs = np.array(messages, dtype=MESSAGE_DTYPE)
    book = np.array(rows, dtype=np.int64)
    return LobsterData(LobsterDay(msgs, book, levels, "TEST_day"), "TEST", "synthetic")
