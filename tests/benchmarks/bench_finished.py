"""The engine's finished orders (engine/finished.py): CPU time per order, before and at
the bound.

An order is accepted, then canceled and finished (`observe` of its two events, the
cancel with risk's report of its end), `ORDERS` a round, with the store filling up to
`CAPACITY` and then at it, where each finished order drops the oldest. The figure that
matters is the ratio: the cost at the bound over the cost while filling (the same run),
~1 when dropping the oldest is O(1). It was ~10 with a plain dict whose oldest entry was
found by scanning the slots its earlier deletions left (15.4 against 1.5 us an order,
100,000 kept, 2026-12-06). Median of `ROUNDS` rounds each. Run:
`python -m tests.benchmarks.bench_finished` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import time
from statistics import median
from typing import Any

from tickplane.core.events import OrderAccepted, OrderCanceled
from tickplane.engine.finished import FinishedOrders

CAPACITY = 100_000
ORDERS = 20_000
ROUNDS = 5


def _round(store: FinishedOrders, first: int) -> float:
    """CPU microseconds per order for `ORDERS` orders from id `first`."""
    t0 = time.thread_time_ns()
    for oid in range(first, first + ORDERS):
        store.observe([OrderAccepted(0, 1, oid, "a", "GOOG", "buy", "limit", 1, 100)], [])
        store.observe([OrderCanceled(0, 2, oid, "a", "GOOG", 1, "user")], [oid])
    return (time.thread_time_ns() - t0) / ORDERS / 1e3


def run() -> dict[str, Any]:
    store = FinishedOrders(CAPACITY)
    oid = 1
    filling: list[float] = []
    while oid + ORDERS <= CAPACITY + 1:
        filling.append(_round(store, oid))
        oid += ORDERS
    at_bound: list[float] = []
    for _ in range(ROUNDS):
        at_bound.append(_round(store, oid))
        oid += ORDERS
    assert len(store.done) == CAPACITY and store.dropped == ROUNDS * ORDERS
    fill_us, bound_us = median(filling), median(at_bound)
    return {
        "finished_filling_us_per_order": round(fill_us, 3),
        "finished_at_bound_us_per_order": round(bound_us, 3),
        "at_bound_vs_filling": round(bound_us / fill_us, 2),
        "capacity": CAPACITY,
        "command": "python -m tests.benchmarks.bench_finished",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
