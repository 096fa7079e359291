"""The market-data log behind ReplayMarketData: reads by (symbol, md_seq), bounds,
torn tails, and numbers that never repeat after a restart; deltas beside their tops."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tickplane.core import wire
from tickplane.core.events import BookDelta, BookLevel, MarketData, TopOfBook
from tickplane.engine.mdlog import FILE_NAME, OLD_FILE_NAME, RESERVE, MarketDataLog


def top(symbol: str, md_seq: int) -> TopOfBook:
    return TopOfBook(
        md_seq, md_seq * 10, symbol, [BookLevel(100 - md_seq % 5, md_seq, 1)], [], None
    )


def put(log: MarketDataLog, t: TopOfBook) -> None:
    log.append(t, wire.encode(t))


def test_tops_are_read_back_by_symbol_and_range(tmp_path: Path) -> None:
    log = MarketDataLog(tmp_path, 1 << 20)
    for i in range(1, 11):
        put(log, top("GOOG", i))
        if i % 2:
            put(log, top("AAPL", (i + 1) // 2))
    assert log.read("GOOG", 3, 6, 100) == [top("GOOG", i) for i in range(3, 7)]
    assert log.read("GOOG", 8, 99, 2) == [top("GOOG", 8), top("GOOG", 9)]
    assert log.read("AAPL", 1, 99, 100) == [top("AAPL", i) for i in range(1, 6)]
    assert log.read("MSFT", 1, 99, 100) == []
    log.close({"GOOG": 10, "AAPL": 5})
    again = MarketDataLog(tmp_path, 1 << 20)
    assert again.read("GOOG", 1, 99, 100) == [top("GOOG", i) for i in range(1, 11)]
    # A clean close gave back the reserved numbers: a restart goes on without a jump.
    assert again.resume_md_seq("GOOG") == 10 and again.resume_md_seq("AAPL") == 5
    again.close()


def test_after_a_kill_numbers_resume_past_the_reservation(tmp_path: Path) -> None:
    log = MarketDataLog(tmp_path, 1 << 20)
    for i in range(1, 4):
        put(log, top("GOOG", i))
    log.flush()
    # No close (a kill -9): the tops of the unflushed buffer are lost, but the
    # reservation written before the first top was published is in the file.
    put(log, top("GOOG", 4))
    again = MarketDataLog(tmp_path, 1 << 20)
    assert again.resume_md_seq("GOOG") == RESERVE  # past 4, which was published
    assert [t.md_seq for t in again.read("GOOG", 1, 99, 100)] == [1, 2, 3]
    again.close()


def test_a_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    log = MarketDataLog(tmp_path, 1 << 20)
    for i in range(1, 4):
        put(log, top("GOOG", i))
    log.flush()
    log.close({"GOOG": 3})  # the release: a block of its own
    path = tmp_path / FILE_NAME
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # the release's block, torn
    torn = MarketDataLog(tmp_path, 1 << 20)
    assert path.stat().st_size < len(data) - 3  # the torn block was cut
    torn.close()
    path.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])  # one bit flipped
    torn = MarketDataLog(tmp_path, 1 << 20)
    assert [t.md_seq for t in torn.read("GOOG", 1, 9, 9)] == [1, 2, 3]
    assert torn.resume_md_seq("GOOG") == RESERVE  # the reservation before it counts
    put(torn, top("GOOG", RESERVE + 1))
    assert [t.md_seq for t in torn.read("GOOG", 1, RESERVE + 9, 9)] == [1, 2, 3, RESERVE + 1]
    torn.close()


def test_the_log_is_bounded_and_keeps_the_latest(tmp_path: Path) -> None:
    size = 1 << 20
    log = MarketDataLog(tmp_path, size)
    n = 30_000  # ~60 bytes a record: several rotations of half a MiB
    for i in range(1, n + 1):
        put(log, top("GOOG", i))
    on_disk = sum(p.stat().st_size for p in (tmp_path / FILE_NAME, tmp_path / OLD_FILE_NAME))
    assert on_disk <= size  # each file within its half
    first = log.first_md_seq("GOOG")
    assert first is not None and 1 < first < n - 5000
    held = log.read("GOOG", 1, n, n)
    assert [t.md_seq for t in held] == list(range(first, n + 1))
    assert held[-1] == top("GOOG", n)
    log.close({"GOOG": n})
    again = MarketDataLog(tmp_path, size)
    assert again.first_md_seq("GOOG") == first
    assert again.read("GOOG", 1, n, n) == held
    assert again.resume_md_seq("GOOG") == n
    again.close()


def delta(symbol: str, md_seq: int) -> BookDelta:
    """The delta published after `top(symbol, md_seq)`."""
    return BookDelta(md_seq, md_seq * 10, symbol, [BookLevel(100 - md_seq % 5, md_seq, 1)], [])


def turn(log: MarketDataLog, symbol: str, md_seq: int) -> list[MarketData]:
    """What the engine logs after a turn: the top, then its delta when md_seq is odd
    (its levels changed; the top says so)."""
    t = top(symbol, md_seq)
    t.has_delta = md_seq % 2 == 1
    out: list[MarketData] = [t, delta(symbol, md_seq)] if t.has_delta else [t]
    for md in out:
        put(log, md)
    return out


def records(path: Path) -> list[tuple[int, str, bytes]]:
    """Every record of a log file as (md_seq, symbol, frame), read with the layout of
    the module docstring, the one logs had before deltas were logged."""
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        length, _crc = struct.unpack_from("<II", data, pos)
        at, pos = pos + 8, pos + 8 + length
        while at < pos:
            md_seq, n_sym, n_frame = struct.unpack_from("<QHI", data, at)
            at += 14
            out.append(
                (md_seq, data[at : at + n_sym].decode(), data[at + n_sym : at + n_sym + n_frame])
            )
            at += n_sym + n_frame
    return out


def test_deltas_are_logged_after_their_tops_and_read_apart(tmp_path: Path) -> None:
    log = MarketDataLog(tmp_path, 1 << 20)
    published = [md for i in range(1, 11) for md in turn(log, "GOOG", i)]
    published += turn(log, "AAPL", 1)
    tops = [md for md in published if isinstance(md, TopOfBook) and md.symbol == "GOOG"]
    deltas = [md for md in published if isinstance(md, BookDelta) and md.symbol == "GOOG"]
    assert log.read("GOOG", 1, 99, 100) == tops  # tops alone, as before deltas were logged
    assert log.read("GOOG", 1, 99, 100, deltas=True) == deltas
    assert log.read("GOOG", 4, 7, 100, deltas=True) == [delta("GOOG", 5), delta("GOOG", 7)]
    # `limit` counts tops, as a page of a replay does: the deltas of tops 2 and 3
    assert log.read("GOOG", 2, 99, 2, deltas=True) == [delta("GOOG", 3)]
    assert log.read("AAPL", 1, 1, 9, deltas=True) == [delta("AAPL", 1)]
    assert log.read("MSFT", 1, 9, 9, deltas=True) == []
    frames = log.frames("GOOG", 1, 99, 100, deltas=True)
    assert frames == [wire.encode(d) for d in deltas]  # as published: sent on unchanged
    log.close({"GOOG": 10, "AAPL": 1})
    # The file holds the records in publication order, a delta right after its top with
    # its md_seq, in the header layout from before deltas: an engine from then skips
    # them, as it skips any record that does not raise its symbol's md_seq.
    logged = [(m, s, wire.decode_event(f)) for m, s, f in records(tmp_path / FILE_NAME) if f]
    assert [md for _m, _s, md in logged] == published
    assert all(m == md.md_seq and s == md.symbol for m, s, md in logged)
    again = MarketDataLog(tmp_path, 1 << 20)
    assert again.read("GOOG", 1, 99, 100) == tops
    assert again.read("GOOG", 1, 99, 100, deltas=True) == deltas
    assert again.resume_md_seq("GOOG") == 10  # deltas reserve no numbers of their own
    again.close()


def test_a_torn_tail_loses_a_top_and_its_delta_together(tmp_path: Path) -> None:
    """A delta is buffered right after its top and a flush comes only before a top, so
    the two are in one block: a kill -9 that tears it loses both, never the delta
    alone (which its top, kept, would announce) nor the top alone."""
    log = MarketDataLog(tmp_path, 1 << 20)
    kept = [md for i in (1, 2, 3) for md in turn(log, "GOOG", i)]
    log.flush()
    size = (tmp_path / FILE_NAME).stat().st_size
    turn(log, "GOOG", 5)  # 5: a top and its delta, one block
    log.flush()
    data = (tmp_path / FILE_NAME).read_bytes()
    log.close()
    for cut in (len(data) - 3, len(data) - 60, size + 20):  # in the delta, in the top, ...
        (tmp_path / FILE_NAME).write_bytes(data[:cut])
        torn = MarketDataLog(tmp_path, 1 << 20)
        assert (tmp_path / FILE_NAME).stat().st_size == size  # cut back to the block before
        tops = torn.read("GOOG", 1, 9, 9)
        assert tops + torn.read("GOOG", 1, 9, 9, deltas=True) == (
            [md for md in kept if isinstance(md, TopOfBook)]
            + [md for md in kept if isinstance(md, BookDelta)]
        )
        torn.close()


def test_a_delta_not_right_after_its_top_is_refused(tmp_path: Path) -> None:
    """Its place in the log is its top's next record: a delta of another top, or one
    after a flush, is a caller's error that changes nothing."""
    log = MarketDataLog(tmp_path, 1 << 20)
    turn(log, "GOOG", 1)
    put(log, top("GOOG", 2))
    put(log, top("AAPL", 1))
    for wrong in (delta("GOOG", 2), delta("AAPL", 2)):
        with pytest.raises(ValueError, match="not right after its top"):
            put(log, wrong)
    log.flush()
    with pytest.raises(ValueError, match="not right after its top"):
        put(log, delta("AAPL", 1))
    assert log.read("GOOG", 1, 9, 9, deltas=True) == [delta("GOOG", 1)]
    assert log.read("AAPL", 1, 9, 9, deltas=True) == []
    log.close()


def test_rotation_keeps_a_delta_with_its_top(tmp_path: Path) -> None:
    """The file rotates before a top, never between it and its delta, so the bound
    drops them together: every top held that announces a delta has it, and no delta is
    held without its top, across rotations and a reopening."""
    size = 1 << 18
    log = MarketDataLog(tmp_path, size)
    n = 6_000  # ~60 and ~45 bytes a record: several rotations of 128 KiB
    for i in range(1, n + 1):
        turn(log, "GOOG", i)

    def check(held: MarketDataLog) -> None:
        tops = held.read("GOOG", 1, n, n)
        deltas = held.read("GOOG", 1, n, n, deltas=True)
        assert 1 < tops[0].md_seq < n - 1000  # rotated: the oldest went
        announced = [t.md_seq for t in tops if isinstance(t, TopOfBook) and t.has_delta]
        assert [d.md_seq for d in deltas] == announced

    check(log)
    log.close({"GOOG": n})
    again = MarketDataLog(tmp_path, size)
    check(again)
    again.close()


def test_a_symbol_quiet_through_two_rotations_is_logged_again(tmp_path: Path) -> None:
    """A symbol whose every top the rotations let go (it was quiet while another traded)
    keeps an empty index; its next top is logged and read back (it raised IndexError,
    which killed the engine's loop)."""
    log = MarketDataLog(tmp_path, 1 << 20)
    put(log, top("MSFT", 1))
    for i in range(1, 30_001):  # ~60 bytes a record: rotations of half a MiB
        put(log, top("GOOG", i))
    assert log.first_md_seq("MSFT") is None  # let go
    put(log, top("MSFT", 2))
    assert log.read("MSFT", 1, 2, 10) == [top("MSFT", 2)]
    log.close({"MSFT": 2, "GOOG": 30_000})
    again = MarketDataLog(tmp_path, 1 << 20)
    assert again.read("MSFT", 1, 2, 10) == [top("MSFT", 2)]
    again.close()


def test_the_files_never_pass_the_bound(tmp_path: Path) -> None:
    """Each file stays within half the bound after every append, with no slack: a top
    that (with its reservation and block header) would pass it rotates first, a delta
    that would takes its top along to the new file, and each file keeps room for the
    reservations a clean close writes. (They passed it by the top and delta that
    reached it.) Tops and deltas of many sizes, symbols coming along, reservations."""
    size = 1 << 16
    log = MarketDataLog(tmp_path, size)
    old = tmp_path / OLD_FILE_NAME

    def within() -> None:
        # the current file as it is once its buffer is written, and the old one
        assert log._size <= size // 2, log._size
        assert (old.stat().st_size if old.exists() else 0) <= size // 2

    seqs: dict[str, int] = {}
    published: dict[str, list[MarketData]] = {}
    for i in range(1, 4_000):
        symbol = f"S{i % (2 + i // 400)}" if i % 7 else "GOOG"  # new symbols keep coming
        # every 50th top of a symbol jumps past its reservation (a new one is written)
        md_seq = seqs[symbol] = seqs.get(symbol, 0) + (RESERVE if i % 50 == 0 else 1)
        levels = [BookLevel(100 + k, k + 1, 1) for k in range(i * 7 % 23)]
        t = TopOfBook(md_seq, i, symbol, levels[:10], levels[:10], None, has_delta=i % 3 > 0)
        put(log, t)
        within()
        out: list[MarketData] = [t]
        if t.has_delta:  # deltas of 0 to 22 levels a side: up to ~10 times a top
            d = BookDelta(md_seq, i, symbol, levels, levels)
            log.append(d, wire.encode(d))
            within()
            out.append(d)
        published.setdefault(symbol, []).extend(out)
        if i % 5 == 0:
            log.flush()
            assert (tmp_path / FILE_NAME).stat().st_size == log._size
    assert old.exists()

    def check(held: MarketDataLog) -> None:
        """What is held is what was published, each announced delta with its top."""
        for symbol, mds in published.items():
            tops = held.read(symbol, 1, 1 << 40, 1 << 20)
            deltas = held.read(symbol, 1, 1 << 40, 1 << 20, deltas=True)
            if tops:
                kept = [md for md in mds if md.md_seq >= tops[0].md_seq]
                assert tops + deltas == [md for md in kept if isinstance(md, TopOfBook)] + [
                    md for md in kept if isinstance(md, BookDelta)
                ]

    check(log)
    log.close(seqs)  # gives back the reserved numbers: within the room kept for it
    assert sum(p.stat().st_size for p in (tmp_path / FILE_NAME, old)) <= size
    again = MarketDataLog(tmp_path, size)
    check(again)
    assert all(again.resume_md_seq(s) == n for s, n in seqs.items())
    again.close()


def test_a_clean_close_stays_within_the_bound(tmp_path: Path) -> None:
    """A clean close writes a reservation per symbol (the numbers it gives back): each
    file keeps room for them, so a close at any point, right before a rotation
    included, leaves both files within their half, and a restart goes on without a
    jump."""
    size = 1 << 13
    names = [f"SYMBOL-{k:02}-{'X' * 20}" for k in range(20)]  # 42 bytes of reservation each
    for n in range(1, 250):
        where = tmp_path / str(n)
        log = MarketDataLog(where, size)
        seqs: dict[str, int] = {}
        for i in range(n):
            symbol = names[i % len(names)]
            seqs[symbol] = seqs.get(symbol, 0) + 1
            put(log, top(symbol, seqs[symbol]))
        log.close(seqs)
        for path in (where / FILE_NAME, where / OLD_FILE_NAME):
            assert not path.exists() or path.stat().st_size <= size // 2, (n, path)
        again = MarketDataLog(where, size)
        assert all(again.resume_md_seq(s) == last for s, last in seqs.items())
        again.close()
