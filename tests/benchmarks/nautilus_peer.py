"""nautilus_trader's ``OrderBook`` fed the replay stream, as a peer of Tickplane's book.

The stream becomes nautilus objects once, before timing: an add is an ``ADD``; a reduce
or execute is an ``UPDATE`` carrying the order's new size, or a ``DELETE`` when nothing is
left; a delete is a ``DELETE``. The book is ``BookType.L3_MBO``, so orders are kept one by
one with their ids, as in Tickplane's market-data book.

Three ways of applying them are timed:

- ``run_batch``: one ``apply_deltas(OrderBookDeltas)`` call (the deltas are copied into
  Rust memory when the ``OrderBookDeltas`` is built, before timing);
- ``run_percall``: the same Python loop as Tickplane's per-call figure: one tuple per
  operation, unpacked, an ``if/elif`` on the stream's operation code, and one call of
  the book's method for it (``add`` / ``update`` / ``delete`` with a pre-built
  ``BookOrder``, the event time and the sequence number);
- ``run_apply_delta``: a loop of ``apply_delta`` over pre-built ``OrderBookDelta``
  objects (nautilus' own per-delta entry point; no dispatch in Python, reported as a
  detail).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.benchmarks.stream import OP_ADD, OP_DELETE, ReplayStream

__all__ = [
    "NautilusDeltas",
    "available",
    "build",
    "run_apply_delta",
    "run_batch",
    "run_percall",
    "top",
]

INSTRUMENT = "GOOG.XNAS"
PRICE_PRECISION = 4  # LOBSTER prices are dollars x 10,000


def available() -> str | None:
    """The installed nautilus_trader version, or None when it cannot be imported."""
    try:
        import nautilus_trader.model.book  # noqa: F401
    except ImportError:
        return None
    return metadata.version("nautilus_trader")


@dataclass(frozen=True)
class NautilusDeltas:
    """The stream as nautilus objects: the deltas (for ``apply_delta``), the batch (Rust
    memory) and the per-call rows ``(code, order, ts_event, sequence)`` whose code is the
    stream's (1 add, 2 reduce, 3 delete, 4 execute; a reduce or execute to zero is 3)."""

    deltas: list[Any]
    calls: list[tuple[int, Any, int, int]]
    batch: Any
    instrument_id: Any


def build(stream: ReplayStream, ts_ns: npt.NDArray[np.int64]) -> NautilusDeltas:
    """Convert the stream; ``ts_ns`` is each operation's event time in nanoseconds."""
    from nautilus_trader.model import objects
    from nautilus_trader.model.data import BookOrder, OrderBookDelta, OrderBookDeltas
    from nautilus_trader.model.enums import BookAction, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId

    iid = InstrumentId.from_str(INSTRUMENT)
    price_scale = 10 ** (objects.FIXED_PRECISION - PRICE_PRECISION)
    qty_scale = 10**objects.FIXED_PRECISION
    sides = (OrderSide.BUY, OrderSide.SELL)
    add, update, delete = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE
    price_from_raw, qty_from_raw = objects.Price.from_raw, objects.Quantity.from_raw
    zero = objects.Quantity.from_raw(0, 0)

    ops = stream.ops
    columns = zip(
        ops["op"].tolist(),
        ops["side"].tolist(),
        ops["id"].tolist(),
        ops["price"].tolist(),
        ops["qty"].tolist(),
        stream.remaining.tolist(),
        ts_ns.tolist(),
        strict=True,
    )
    deltas: list[Any] = []
    calls: list[tuple[int, Any, int, int]] = []
    prices: dict[int, Any] = {}
    for seq, (op, side, oid, price, qty, left, ts) in enumerate(columns, start=1):
        px = prices.get(price)
        if px is None:
            px = prices[price] = price_from_raw(price * price_scale, PRICE_PRECISION)
        code = op
        if op == OP_ADD:
            action, size = add, qty_from_raw(qty * qty_scale, 0)
        elif op == OP_DELETE or left == 0:
            action, size, code = delete, zero, OP_DELETE
        else:
            action, size = update, qty_from_raw(left * qty_scale, 0)
        order = BookOrder(sides[side], px, size, oid)
        deltas.append(OrderBookDelta(iid, action, order, 0, seq, ts, ts))
        calls.append((code, order, ts, seq))
    return NautilusDeltas(
        deltas=deltas, calls=calls, batch=OrderBookDeltas(iid, deltas), instrument_id=iid
    )


def _new_book(iid: Any) -> Any:
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType

    return OrderBook(iid, BookType.L3_MBO)


def run_batch(data: NautilusDeltas) -> tuple[float, Any]:
    """Apply the whole stream with one ``apply_deltas``; (seconds, book)."""
    book = _new_book(data.instrument_id)
    t0 = time.perf_counter()
    book.apply_deltas(data.batch)
    return time.perf_counter() - t0, book


def run_percall(data: NautilusDeltas) -> tuple[float, Any]:
    """Apply the stream one method call at a time, dispatched in Python on the stream's
    operation code exactly as Tickplane's per-call loop is; (seconds, book)."""
    book = _new_book(data.instrument_id)
    add, update, delete = book.add, book.update, book.delete
    calls = data.calls
    t0 = time.perf_counter()
    for op, order, ts, seq in calls:
        if op == 1:
            add(order, ts, 0, seq)
        elif op == 3:
            delete(order, ts, 0, seq)
        elif op == 2:
            update(order, ts, 0, seq)
        else:
            update(order, ts, 0, seq)
    return time.perf_counter() - t0, book


def run_apply_delta(data: NautilusDeltas) -> tuple[float, Any]:
    """Apply the stream one ``apply_delta`` call at a time; (seconds, book)."""
    book = _new_book(data.instrument_id)
    apply = book.apply_delta
    deltas = data.deltas
    t0 = time.perf_counter()
    for delta in deltas:
        apply(delta)
    return time.perf_counter() - t0, book


def top(book: Any, n: int = 10) -> dict[str, list[tuple[int, int, int]]]:
    """Top-``n`` levels per side, best first: (price in 1/10,000, size, order count)."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for name, levels in (("bids", book.bids()), ("asks", book.asks())):
        rows = []
        for level in levels[:n]:
            price = round(level.price.as_double() * 10**PRICE_PRECISION)
            rows.append((int(price), round(level.size()), len(level.orders())))
        out[name] = rows
    return out
