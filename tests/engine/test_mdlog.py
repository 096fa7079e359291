"""The market-data log behind ReplayMarketData: reads by (symbol, md_seq), bounds,
torn tails, and numbers that never repeat after a restart."""

from __future__ import annotations

from pathlib import Path

from tickplane.core import wire
from tickplane.core.events import BookLevel, TopOfBook
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
    assert on_disk <= size + 2 * 100  # each file: half, plus the record that crossed it
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
