"""Tests of the benchmark harness's own parts: the stream, the Python book, the C floor,
the nautilus conversion, the replay section and the random flow. Quick (the 3,000-row
excerpt, small flows).

Not part of the default test run (pytest skips tests/benchmarks unless named):
``python -m pytest tests/benchmarks``.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.benchmarks import bench_book, flow, nautilus_peer, pybook, stream
from tickplane.engine.lobster import (
    DUMMY_ASK_PRICE,
    DUMMY_BID_PRICE,
    MESSAGE_DTYPE,
    LobsterDay,
    excerpt_paths,
    load,
)

Side2 = tuple[list[tuple[int, int]], list[tuple[int, int]]]


def apply_all(book: pybook.PyBook, s: stream.ReplayStream, day: LobsterDay | None = None) -> None:
    """Apply a stream to the Python book, checking every op is valid and ``remaining``
    after it; with ``day``, also that the book equals each orderbook row after its ops."""
    ops = s.ops.tolist()
    rows = s.rows.tolist()
    for k, (op, side, oid, price, qty) in enumerate(ops):
        assert qty > 0
        if op == stream.OP_ADD:
            assert oid not in book
            book.add(oid, side, price, qty)
        else:
            live = book.order(oid)
            assert live is not None and live[:2] == (side, price)
            if op == stream.OP_DELETE:
                assert qty == live[2]
                book.delete(oid)
            else:
                assert qty <= live[2]
                book.reduce(oid, qty)
        live = book.order(oid)
        assert (live[2] if live else 0) == s.remaining[k]
        if day is not None and (k + 1 == len(ops) or rows[k + 1] != rows[k]):
            want = stream.row_depth(day.orderbook[rows[k]], day.levels)
            assert bench_book._top(book.depth(day.levels)) == want, f"row {rows[k]}"


def tiny_day(
    messages: list[tuple[float, int, int, int, int, int]], rows: list[Side2]
) -> LobsterDay:
    """A 2-level day; each row is ``(asks, bids)``, each side a list of (price, size)."""
    book = []
    for asks, bids in rows:
        row = []
        for j in range(2):
            ask = asks[j] if j < len(asks) else (DUMMY_ASK_PRICE, 0)
            bid = bids[j] if j < len(bids) else (DUMMY_BID_PRICE, 0)
            row += [*ask, *bid]
        book.append(row)
    return LobsterDay(
        messages=np.array(messages, dtype=MESSAGE_DTYPE),
        orderbook=np.array(book, dtype=np.int64),
        levels=2,
        name="tiny",
    )


# --- stream ---------------------------------------------------------------------------


def test_excerpt_stream_follows_the_book_on_every_row() -> None:
    day = load(zip_path=excerpt_paths()[10])
    s = stream.build(day)
    assert s.ops.dtype == stream.MD_OP_DTYPE
    assert s.stats["seeds"] == 20
    assert s.stats["rows_matched"] == s.stats["rows_compared"] == len(day) - 1
    assert np.all(s.ops["id"][:20] >= stream.SYNTHETIC_ID_BASE)
    assert np.all(np.diff(s.rows) >= 0)
    assert sum(s.counts().values()) == len(s)
    assert s.stats["window_deletes"] > 0 and s.stats["adopted"] > 0
    book = pybook.PyBook()
    apply_all(book, s, day)
    assert len(book) == s.stats["live_orders_at_end"]


def test_stream_rules_on_a_tiny_day() -> None:
    a0, b0 = [(10100, 50), (10200, 10)], [(10000, 30), (9900, 20)]
    b1 = [(10050, 20), (10000, 30)]
    b2 = [(10050, 20), (10000, 25)]
    a3 = [(10200, 10), (10300, 70)]
    b6 = [(10000, 25), (9900, 20)]
    b8 = [(10000, 25), (9900, 30)]
    a9, a10 = [(10200, 15), (10300, 70)], [(10200, 3), (10300, 70)]
    b11 = [(10000, 25), (9900, 2)]
    day = tiny_day(
        [
            (1.0, 1, 7, 10, 10000, 1),  # 0: already in row 0, not applied
            (2.0, 1, 8, 20, 10050, 1),  # 1: add 8; bid 9900 falls out of the window
            (3.0, 2, 7, 5, 10000, 1),  # 2: unseen id 7: reduce the bid seed at 10000
            (4.0, 4, 9, 60, 10100, -1),  # 3: unseen 9: execute the ask seed (clamped); adopt
            (5.0, 3, 5, 3, 9800, 1),  # 4: unseen id, no level: dropped
            (6.0, 5, 0, 9, 10000, 1),  # 5: hidden execution: nothing
            (7.0, 2, 8, 25, 10050, 1),  # 6: reduce 8 by 25 > 20: clamped, it leaves; adopt
            (8.0, 3, 8, 20, 10050, 1),  # 7: 8 is gone and no level at 10050: dropped
            (9.0, 1, 8, 10, 9900, 1),  # 8: id 8 added again (it was gone): a real add
            (10.0, 1, 8, 5, 10200, -1),  # 9: id 8 is live: a synthetic add
            (11.0, 3, 11, 12, 10200, -1),  # 10: unseen: the level's synthetics, oldest first
            (12.0, 4, 12, 28, 9900, 1),  # 11: unseen: the synthetic, then real order 8
        ],
        [
            (a0, b0),
            (a0, b1),
            (a0, b2),
            (a3, b2),
            (a3, b2),
            (a3, b2),
            (a3, b6),
            (a3, b6),
            (a3, b8),
            (a9, b8),
            (a10, b8),
            (a10, b11),
        ],
    )
    s = stream.build(day)
    b = stream.SYNTHETIC_ID_BASE
    assert s.ops.tolist() == [
        (1, 0, b, 10000, 30),
        (1, 0, b + 1, 9900, 20),
        (1, 1, b + 2, 10100, 50),
        (1, 1, b + 3, 10200, 10),
        (1, 0, 8, 10050, 20),
        (3, 0, b + 1, 9900, 20),
        (2, 0, b, 10000, 5),
        (4, 1, b + 2, 10100, 50),
        (1, 1, b + 4, 10300, 70),
        (2, 0, 8, 10050, 20),
        (1, 0, b + 5, 9900, 20),
        (1, 0, 8, 9900, 10),
        (1, 1, b + 6, 10200, 5),
        (3, 1, b + 3, 10200, 10),
        (2, 1, b + 6, 10200, 2),
        (4, 0, b + 5, 9900, 20),
        (4, 0, 8, 9900, 8),
    ]
    assert s.remaining.tolist() == [30, 20, 50, 10, 20, 0, 25, 0, 70, 0, 20, 10, 5, 0, 3, 0, 2]
    assert s.rows.tolist() == [0, 0, 0, 0, 1, 1, 2, 3, 3, 6, 6, 8, 9, 10, 10, 11, 11]
    st = s.stats
    assert (st["rows_matched"], st["rows_compared"]) == (11, 11)
    assert (st["seeds"], st["adopted"], st["reused_id_adds"], st["window_deletes"]) == (4, 2, 1, 1)
    assert (st["on_level"], st["dropped"], st["clamped"], st["spilled_to_real"]) == (4, 2, 2, 1)
    assert (st["skipped_hidden_or_halt"], st["live_orders_at_end"]) == (1, 4)
    book = pybook.PyBook()
    apply_all(book, s, day)
    assert book.depth(2) == {
        "bids": [(10000, 25, 1), (9900, 2, 1)],
        "asks": [(10200, 3, 1), (10300, 70, 1)],
    }


def test_a_wrong_row_is_counted_as_a_mismatch() -> None:
    a, b = [(10100, 50)], [(10000, 30)]
    day = tiny_day(
        [(1.0, 1, 7, 10, 10000, 1), (2.0, 2, 9, 5, 10000, 1), (3.0, 5, 0, 1, 10000, 1)],
        [(a, b), (a, [(10000, 25)]), (a, [(10000, 24)])],  # row 2 says 24: no message did it
    )
    s = stream.build(day)
    assert (s.stats["rows_matched"], s.stats["rows_compared"]) == (1, 2)


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


def test_cfloor_matches_the_python_book_and_the_last_row() -> None:
    try:
        binary = bench_book._build_cfloor()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no C compiler: {exc}")
    day = load(zip_path=excerpt_paths()[10])
    s = stream.build(day)
    result = bench_book.run_cfloor(binary, s, repeats=3, min_seconds=0.02)
    book = pybook.PyBook()
    apply_all(book, s)
    assert result["ops"] == len(s)
    assert result["capacity"] == s.stats["peak_live_orders"]
    assert result["live_orders"] == len(book)
    assert bench_book._depth_of(result) == book.depth(10)
    assert bench_book._top(book.depth(10)) == stream.row_depth(day.orderbook[-1], 10)
    assert len(result["all_ops_per_sec"]) == len(result["passes"]) == 3
    assert all(k >= 1 for k in result["passes"]) and result["ops_per_sec"] > 0
    # more orders live at once than the capacity given: an error, not a wrong book
    small = stream.ReplayStream(s.ops, s.remaining, s.rows, s.levels, {"peak_live_orders": 5})
    with pytest.raises(RuntimeError, match="more than 5 orders live"):
        bench_book.run_cfloor(binary, small, repeats=1, min_seconds=0.0)


# --- nautilus ---------------------------------------------------------------------------


def test_nautilus_conversion_ends_in_the_same_book() -> None:
    if nautilus_peer.available() is None:
        pytest.skip("nautilus_trader is not installed")
    day = load(zip_path=excerpt_paths()[10])
    s = stream.build(day)
    ts = np.rint(day.messages["time"][s.rows] * 1e9).astype(np.int64)
    data = nautilus_peer.build(s, ts)
    assert len(data.deltas) == len(data.calls) == len(s)
    book = pybook.PyBook()
    apply_all(book, s)
    for run in (nautilus_peer.run_batch, nautilus_peer.run_percall, nautilus_peer.run_apply_delta):
        seconds, nbook = run(data)
        assert seconds > 0
        assert nautilus_peer.top(nbook, 10) == book.depth(10)


# --- the harness ---------------------------------------------------------------------------


def test_replay_section_on_the_excerpt() -> None:
    path = excerpt_paths()[10]
    result = bench_book.run(
        True, 1, replay_zip=path, min_seconds=0.0, sections=("replay",), command="test"
    )
    s = stream.build(load(zip_path=path))
    assert result["replay_ops"] == len(s)
    assert f"{len(s):,} L3 ops" in result["stream"]
    for name in ("replay_batch_ops_per_sec", "replay_percall_ops_per_sec", "python_ops_per_sec"):
        assert result[name] > 0
    details = result["details"]
    assert len(details["replay_stream"]["checkpoint_rows"]) == bench_book.CHECKPOINTS
    assert (
        details["replay_stream"]["checkpoint_rows"][-1] == details["replay_stream"]["messages"] - 1
    )
    assert result["match_orders_per_sec"] is None  # not run


def test_checkpoints_catch_a_wrong_stream() -> None:
    day = load(zip_path=excerpt_paths()[10])
    s = stream.build(day)
    rows = [tuple(r) for r in s.ops.tolist()]
    assert bench_book._checkpoints(s, rows, day.orderbook, 20)[-1] == len(day) - 1
    # the first seed one lot too big: the book differs from row 0 on
    op, side, oid, price, qty = rows[0]
    bad = [(op, side, oid, price, qty + 1), *rows[1:]]
    with pytest.raises(bench_book.StateMismatch, match="differs from orderbook row"):
        bench_book._checkpoints(s, bad, day.orderbook, 20)


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
