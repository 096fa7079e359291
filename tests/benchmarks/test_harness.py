"""Tests of the benchmark harness's own parts: the stream, the Python book, the C floor,
the nautilus conversion and the random flow. Quick (the 3,000-row excerpt, small flows).

Not part of the default test run (pytest skips tests/benchmarks unless named):
``python -m pytest tests/benchmarks``.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from tests.benchmarks import bench_book, flow, nautilus_peer, pybook, stream
from tickplane.engine.lobster import MESSAGE_DTYPE, LobsterDay, excerpt_paths, load


def apply_all(book: pybook.PyBook, s: stream.ReplayStream) -> None:
    """Apply a stream to the Python book, checking ``remaining`` after every op."""
    for k, (op, side, oid, price, qty) in enumerate(s.ops.tolist()):
        if op == stream.OP_ADD:
            book.add(oid, side, price, qty)
        elif op == stream.OP_DELETE:
            book.delete(oid)
        else:
            book.reduce(oid, qty)
        live = book.order(oid)
        assert (live[2] if live else 0) == s.remaining[k]
        if live:
            assert live[:2] == (side, price)


def tiny_day(messages: list[tuple[float, int, int, int, int, int]], row0: list[int]) -> LobsterDay:
    msgs = np.array(messages, dtype=MESSAGE_DTYPE)
    book = np.tile(np.array(row0, dtype=np.int64), (len(messages), 1))
    return LobsterDay(messages=msgs, orderbook=book, levels=len(row0) // 4, name="tiny")


# --- stream ---------------------------------------------------------------------------


def test_excerpt_stream_is_consistent() -> None:
    day = load(zip_path=excerpt_paths()[10])
    s = stream.build(day)
    assert s.ops.dtype == stream.MD_OP_DTYPE
    assert s.seeds == 20
    assert np.all(s.ops["id"][: s.seeds] >= stream.SYNTHETIC_ID_BASE)
    assert np.all(s.ops["qty"] > 0)
    assert np.all(np.diff(s.rows) >= 0)
    assert sum(s.counts().values()) == len(s)
    apply_all(pybook.PyBook(), s)


def test_stream_rules_on_a_tiny_day() -> None:
    # row 0: ask 101 x 50, bid 100 x 30 (two levels, the second empty)
    row0 = [101, 50, 100, 30, 9_999_999_999, 0, -9_999_999_999, 0]
    day = tiny_day(
        [
            (1.0, 1, 7, 10, 100, 1),  # message 0: already in row 0, skipped
            (2.0, 1, 8, 20, 99, 1),  # add 8
            (3.0, 2, 7, 5, 100, 1),  # unseen id 7 -> reduce the bid seed by 5
            (4.0, 4, 9, 40, 101, -1),  # unseen id 9 -> execute 40 of the ask seed
            (5.0, 3, 9, 40, 101, -1),  # unseen id 9 delete 40 -> clamped to the 10 left
            (6.0, 2, 5, 3, 98, 1),  # unseen id at an unseeded level -> dropped
            (7.0, 5, 0, 9, 100, 1),  # hidden execution -> skipped
            (8.0, 2, 8, 25, 99, 1),  # reduce 25 of order 8's 20 -> clamped, order leaves
            (9.0, 3, 8, 20, 99, 1),  # order 8 is gone -> dropped
        ],
        row0,
    )
    s = stream.build(day)
    base = stream.SYNTHETIC_ID_BASE
    assert s.ops.tolist() == [
        (1, 1, base, 101, 50),
        (1, 0, base + 1, 100, 30),
        (1, 0, 8, 99, 20),
        (2, 0, base + 1, 100, 5),
        (4, 1, base, 101, 40),
        (3, 1, base, 101, 10),
        (2, 0, 8, 99, 20),
    ]
    assert s.remaining.tolist() == [50, 30, 20, 25, 10, 0, 0]
    assert s.rows.tolist() == [0, 0, 1, 2, 3, 4, 7]
    assert (s.rewritten, s.dropped, s.clamped, s.skipped_hidden) == (3, 2, 2, 1)
    book = pybook.PyBook()
    apply_all(book, s)
    assert book.best_bid() == (100, 25)
    assert book.best_ask() is None


# --- the Python book ------------------------------------------------------------------


def test_pybook_levels_and_fifo_matching() -> None:
    book = pybook.PyBook()
    book.add(1, pybook.BUY, 100, 10)
    book.add(2, pybook.BUY, 100, 5)
    book.add(3, pybook.BUY, 99, 7)
    book.add(4, pybook.SELL, 102, 4)
    assert book.best_bid() == (100, 15)
    assert book.depth(5) == {"bids": [(100, 15, 2), (99, 7, 1)], "asks": [(102, 4, 1)]}
    assert book.match(pybook.SELL, 12, 100) == [(1, 10), (2, 2)]
    assert book.depth(5)["bids"] == [(100, 3, 1), (99, 7, 1)]
    assert book.match(pybook.SELL, 20, None) == [(2, 3), (3, 7)]
    assert book.best_bid() is None
    book.execute(4, 4)
    assert len(book) == 0
    with pytest.raises(ValueError, match="already in the book"):
        book.add(5, pybook.BUY, 1, 1)
        book.add(5, pybook.BUY, 1, 1)
    with pytest.raises(ValueError, match="reducing 1 by 2"):
        book.reduce(5, 2)


# --- the C floor -----------------------------------------------------------------------


def test_cfloor_matches_the_python_book(tmp_path: object) -> None:
    try:
        binary = bench_book._build_cfloor()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no C compiler: {exc}")
    s = stream.build(load(zip_path=excerpt_paths()[10]))
    path = bench_book._cache_dir() / "test-ops.bin"
    path.write_bytes(b"TPOPS01\0" + np.uint64(len(s)).tobytes() + s.ops.tobytes())
    try:
        done = subprocess.run(
            [str(binary), str(path), "2"], capture_output=True, text=True, check=True
        )
    finally:
        path.unlink()
    result = json.loads(done.stdout)
    book = pybook.PyBook()
    apply_all(book, s)
    assert result["ops"] == len(s)
    assert result["live_orders"] == len(book)
    assert bench_book._depth_of(result) == book.depth(10)
    assert result["ops_per_sec"] > 0


# --- nautilus ---------------------------------------------------------------------------


def test_nautilus_conversion_ends_in_the_same_book() -> None:
    if nautilus_peer.available() is None:
        pytest.skip("nautilus_trader is not installed")
    day = load(zip_path=excerpt_paths()[10])
    s = stream.build(day)
    ts = np.rint(day.messages["time"][s.rows] * 1e9).astype(np.int64)
    data = nautilus_peer.build(s, ts)
    assert len(data.deltas) == len(s)
    book = pybook.PyBook()
    apply_all(book, s)
    for run in (nautilus_peer.run_batch, nautilus_peer.run_percall):
        seconds, nbook = run(data)
        assert seconds > 0
        assert nautilus_peer.top(nbook, 10) == book.depth(10)


# --- the random flow ----------------------------------------------------------------------


def test_flow_is_seeded_and_cancels_live_orders() -> None:
    a, b = flow.make_flow(5_000), flow.make_flow(5_000)
    assert a == b
    assert len(a) == 5_000
    share = sum(a.kind) / len(a)
    assert 0.2 < share < 0.3
    submits = [i for i, k in zip(a.oid, a.kind, strict=True) if k == 0]
    assert submits == sorted(submits) and len(set(submits)) == len(submits)
    # replay on a fresh book: every cancel hits a live order
    book = pybook.PyBook()
    for i in range(len(a)):
        if a.kind[i]:
            assert a.oid[i] in book
            book.delete(a.oid[i])
            continue
        limit = None if a.otype[i] == 1 else a.price[i]
        fills = book.match(a.side[i], a.qty[i], limit)
        left = a.qty[i] - sum(q for _, q in fills)
        if left and a.otype[i] == 0:
            book.add(a.oid[i], a.side[i], a.price[i], left)
    assert book.depth(10) == a.final
    assert len(book) == a.live_orders
