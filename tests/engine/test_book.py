"""The market-data `Book`: an L3 mirror of an exchange feed, by order id."""

from __future__ import annotations

import numpy as np
import pytest

from tickplane.engine.book import MD_ADD, MD_DELETE, MD_EXECUTE, MD_OP_DTYPE, MD_REDUCE, Book

BUY, SELL = 0, 1


def test_levels_aggregate_orders_in_fifo_order() -> None:
    b = Book()
    assert b.add(1, BUY, 100, 5)
    assert b.add(2, BUY, 100, 7)
    assert b.add(3, BUY, 101, 1)
    assert b.add(4, SELL, 105, 2)
    assert b.best_bid() == (101, 1)
    assert b.best_ask() == (105, 2)
    assert b.depth(5) == {"bids": [(101, 1, 1), (100, 12, 2)], "asks": [(105, 2, 1)]}
    assert b.level_orders(BUY, 100) == [(1, 5), (2, 7)]
    assert b.order(2) == (BUY, 100, 7)
    assert len(b) == 4


def test_duplicate_and_invalid_adds_are_refused_and_change_nothing() -> None:
    b = Book()
    assert b.add(1, BUY, 100, 5)
    assert not b.add(1, SELL, 99, 5)  # duplicate id
    assert not b.add(0, BUY, 100, 5)  # 0 is never an id
    assert not b.add(2, 7, 100, 5)  # bad side
    assert not b.add(3, BUY, 100, 0)  # no quantity
    assert b.depth() == {"bids": [(100, 5, 1)], "asks": []}


def test_reduce_execute_delete_by_id() -> None:
    b = Book()
    b.add(1, SELL, 100, 10)
    b.add(2, SELL, 100, 4)
    assert b.reduce(1, 3)
    assert b.level_orders(SELL, 100) == [(1, 7), (2, 4)]  # priority kept
    assert b.execute(1, 7)  # fully executed: gone
    assert b.order(1) is None
    assert b.delete(2)
    assert b.depth() == {"bids": [], "asks": []}
    assert b.levels(SELL) == 0


def test_unknown_ids_act_on_the_level_aggregate() -> None:
    b = Book()
    b.seed(BUY, 100, 50)  # liquidity from before the feed began
    b.add(7, BUY, 100, 10)
    assert b.depth() == {"bids": [(100, 60, 1)], "asks": []}
    assert b.reduce(999, 20, BUY, 100)  # an order the book never saw
    assert b.anonymous(BUY, 100) == 30
    assert b.delete(998, BUY, 100, 30)  # deleting an unseen order of size 30
    assert b.depth() == {"bids": [(100, 10, 1)], "asks": []}
    assert b.level_orders(BUY, 100) == [(7, 10)]
    assert not b.reduce(997, 5, SELL, 500)  # no level there: nothing to act on


def test_anonymous_shortfall_takes_the_oldest_orders() -> None:
    b = Book()
    b.seed(SELL, 200, 5)
    b.add(1, SELL, 200, 5)
    b.add(2, SELL, 200, 5)
    assert b.execute(123, 8, SELL, 200)
    assert b.level_orders(SELL, 200) == [(1, 2), (2, 5)]
    assert b.depth()["asks"] == [(200, 7, 2)]


def test_trim_forgets_levels_below_the_window_with_their_orders() -> None:
    b = Book()
    for i, p in enumerate([100, 99, 98, 97], start=1):
        b.add(i, BUY, p, 1)
    b.trim(BUY, 2)
    assert [lv[0] for lv in b.depth()["bids"]] == [100, 99]
    assert b.order(3) is None and b.order(4) is None
    assert len(b) == 2
    assert b.add(3, BUY, 98, 1)  # the id is free again


def _random_ops(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ops = np.zeros(n, dtype=MD_OP_DTYPE)
    live: list[tuple[int, int, int]] = []
    next_id = 1
    for i in range(n):
        r = rng.random()
        if r < 0.5 or not live:
            side = int(rng.integers(0, 2))
            price = int(100 + rng.integers(-10, 10))
            ops[i] = (MD_ADD, side, next_id, price, int(rng.integers(1, 50)))
            live.append((next_id, side, price))
            next_id += 1
        else:
            j = int(rng.integers(0, len(live)))
            oid, side, price = live[j]
            op = (MD_REDUCE, MD_DELETE, MD_EXECUTE)[int(rng.integers(0, 3))]
            ops[i] = (op, side, oid, price, int(rng.integers(1, 30)))
            if op == MD_DELETE:
                live[j] = live[-1]
                live.pop()
    return ops


def test_batch_apply_equals_per_call() -> None:
    ops = _random_ops(5000, seed=3)
    batch, percall = Book(), Book()
    applied = batch.apply(ops)
    ok = 0
    for op, side, oid, price, qty in ops.tolist():
        if op == MD_ADD:
            ok += percall.add(oid, side, price, qty)
        elif op == MD_DELETE:
            ok += percall.delete(oid, side, price, qty)
        else:
            ok += percall.reduce(oid, qty, side, price)
    assert applied == ok
    assert batch.depth(100) == percall.depth(100)
    for side in (BUY, SELL):
        for price, _, _ in batch.depth(100)["bids" if side == BUY else "asks"]:
            assert batch.level_orders(side, price) == percall.level_orders(side, price)


def test_apply_rejects_a_wrong_dtype() -> None:
    with pytest.raises(TypeError, match="MD_OP_DTYPE"):
        Book().apply(np.zeros(3, dtype=np.int64))


def test_many_orders_grow_pools_and_maps() -> None:
    b = Book(capacity=16)
    n = 50_000
    for i in range(1, n + 1):
        assert b.add(i, i % 2, 1000 + (i % 97) * (1 if i % 2 else -1), 1)
    assert len(b) == n
    for i in range(1, n + 1, 2):
        assert b.delete(i)
    assert len(b) == n // 2
    assert all(b.order(i) is None for i in range(1, n + 1, 2))
    assert all(b.order(i) is not None for i in range(2, n + 1, 2))
    assert sum(q for _, q, _ in b.depth(1000)["bids"]) == n // 2
