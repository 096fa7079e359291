"""A plain-Python L3 order book: the "what you'd write in an afternoon" baseline.

Orders live in one dict by id; each side maps a price key to a level (total quantity and
an insertion-ordered dict of order id -> quantity, which is the level's FIFO queue), and
keeps its price keys in a sorted list (``bisect``). Bid keys are negated prices so that
on both sides the best level is the smallest key.

It serves the benchmarks three ways: as the pure-Python figure of the replay benchmark,
as the reference state the other books must end in, and (``match``) as the price-time
matcher that pre-simulates the random order flow so that its cancels target live orders.
"""

from __future__ import annotations

from bisect import bisect_left, insort

__all__ = ["BUY", "SELL", "PyBook"]

BUY = 0
SELL = 1


class _Level:
    """One price level: its total quantity and its queue (order id -> qty, oldest first)."""

    __slots__ = ("queue", "total")

    def __init__(self) -> None:
        self.total = 0
        self.queue: dict[int, int] = {}


class PyBook:
    """An L3 book keyed by order id. Side 0 is buy, 1 is sell; prices and sizes are ints."""

    __slots__ = ("_keys", "_levels", "_orders")

    def __init__(self) -> None:
        # id -> [side, price key, qty]
        self._orders: dict[int, list[int]] = {}
        # per side: price key -> level
        self._levels: tuple[dict[int, _Level], dict[int, _Level]] = ({}, {})
        self._keys: tuple[list[int], list[int]] = ([], [])

    # -- market-data operations --------------------------------------------------------

    def add(self, order_id: int, side: int, price: int, qty: int) -> None:
        """Add an order at the back of its price level."""
        if qty <= 0:
            raise ValueError(f"order {order_id}: quantity {qty} is not positive")
        if order_id in self._orders:
            raise ValueError(f"order {order_id} is already in the book")
        key = -price if side == BUY else price
        levels = self._levels[side]
        level = levels.get(key)
        if level is None:
            level = levels[key] = _Level()
            insort(self._keys[side], key)
        level.total += qty
        level.queue[order_id] = qty
        self._orders[order_id] = [side, key, qty]

    def reduce(self, order_id: int, qty: int) -> None:
        """Take ``qty`` off an order (a partial cancel); the order leaves the book at zero."""
        order = self._orders[order_id]
        left = order[2] - qty
        if left < 0:
            raise ValueError(f"order {order_id}: reducing {order[2]} by {qty}")
        side, key = order[0], order[1]
        level = self._levels[side][key]
        level.total -= qty
        if left:
            order[2] = left
            level.queue[order_id] = left
        else:
            self._unlink(order_id, side, key, level)

    execute = reduce

    def delete(self, order_id: int) -> None:
        """Remove an order entirely."""
        side, key, qty = self._orders[order_id]
        level = self._levels[side][key]
        level.total -= qty
        self._unlink(order_id, side, key, level)

    def _unlink(self, order_id: int, side: int, key: int, level: _Level) -> None:
        del self._orders[order_id]
        queue = level.queue
        del queue[order_id]
        if not queue:
            del self._levels[side][key]
            keys = self._keys[side]
            del keys[bisect_left(keys, key)]

    # -- matching (used to pre-simulate random order flow) -----------------------------

    def match(self, side: int, qty: int, limit: int | None) -> list[tuple[int, int]]:
        """Sweep the opposite side for an incoming order; returns ``[(maker id, qty)]``.

        Price-time priority: best level first, oldest order first; stops at ``limit``
        (a buy trades at asks <= limit, a sell at bids >= limit); ``None`` is a market
        order. Filled makers leave the book. The caller decides what happens to the rest.
        """
        other = SELL if side == BUY else BUY
        keys, levels = self._keys[other], self._levels[other]
        fills: list[tuple[int, int]] = []
        while qty and keys:
            key = keys[0]
            price = -key if other == BUY else key
            if limit is not None and (price > limit if side == BUY else price < limit):
                break
            for maker, resting in list(levels[key].queue.items()):
                take = min(qty, resting)
                fills.append((maker, take))
                qty -= take
                self.reduce(maker, take)
                if not qty:
                    break
        return fills

    # -- queries -----------------------------------------------------------------------

    def best_bid(self) -> tuple[int, int] | None:
        """(price, total quantity) of the best bid, or None."""
        keys = self._keys[BUY]
        if not keys:
            return None
        return -keys[0], self._levels[BUY][keys[0]].total

    def best_ask(self) -> tuple[int, int] | None:
        """(price, total quantity) of the best ask, or None."""
        keys = self._keys[SELL]
        if not keys:
            return None
        return keys[0], self._levels[SELL][keys[0]].total

    def depth(self, n: int = 10) -> dict[str, list[tuple[int, int, int]]]:
        """Top-``n`` levels per side, best first: ``(price, total qty, order count)``."""
        out: dict[str, list[tuple[int, int, int]]] = {}
        for name, side in (("bids", BUY), ("asks", SELL)):
            rows = []
            for key in self._keys[side][:n]:
                level = self._levels[side][key]
                rows.append((-key if side == BUY else key, level.total, len(level.queue)))
            out[name] = rows
        return out

    def order(self, order_id: int) -> tuple[int, int, int] | None:
        """(side, price, qty) of a live order, or None."""
        order = self._orders.get(order_id)
        if order is None:
            return None
        side, key, qty = order
        return side, (-key if side == BUY else key), qty

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders
