"""The event log behind Replay: batches by seq, torn tails, cutting back for recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tickplane.core import wire
from tickplane.core.events import OrderRejected
from tickplane.engine import eventlog
from tickplane.engine.eventlog import FILE_NAME, OLD_FILE_NAME, EventLog


def ev(seq: int) -> OrderRejected:
    return OrderRejected(seq, seq * 10, seq, "a", "bad_qty")


def test_batches_are_read_back_by_any_range(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append([ev(1), ev(2), ev(3)])
    log.append([ev(4)])
    log.append([ev(5), ev(6)])
    assert [e.seq for e in log.read(2, 5, 100) or []] == [2, 3, 4, 5]
    assert [e.seq for e in log.read(3, 99, 2) or []] == [3, 4]
    assert log.read(7, 9, 10) == []
    log.close()
    again = EventLog(tmp_path)
    assert again.next_seq == 7
    assert again.read(1, 6, 10) == [ev(i) for i in range(1, 7)]


def test_a_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append([ev(1), ev(2)])
    log.append([ev(3)])
    log.close()
    path = tmp_path / FILE_NAME
    data = path.read_bytes()
    for cut in range(len(data) - 1, len(data) - 10, -1):
        path.write_bytes(data[:cut])
        torn = EventLog(tmp_path)
        assert torn.next_seq == 3 and torn.read(1, 9, 9) == [ev(1), ev(2)]
        torn.close()


def test_truncate_after_cuts_inside_a_batch(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append([ev(1), ev(2), ev(3)])
    log.append([ev(4), ev(5)])
    log.truncate_after(2)
    assert log.next_seq == 3 and log.read(1, 9, 9) == [ev(1), ev(2)]
    log.append([ev(3)])
    assert log.read(1, 9, 9) == [ev(1), ev(2), ev(3)]
    log.truncate_after(10)  # nothing after 10: nothing changes
    assert log.next_seq == 4


def test_a_gap_starts_the_log_afresh(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append([ev(1)])
    log.append([ev(5), ev(6)])
    assert log.read(1, 9, 9) is None  # 1 is no longer held
    assert log.read(5, 9, 9) == [ev(5), ev(6)]


def _disk(tmp_path: Path) -> int:
    """The bytes the event log's files take."""
    return sum(
        p.stat().st_size for p in (tmp_path / FILE_NAME, tmp_path / OLD_FILE_NAME) if p.exists()
    )


def record(seq: int) -> int:
    """The bytes of a record of ev(seq), its head included."""
    return len(wire.encode_events([ev(seq)])) + 20


RECORD = record(1)  # the smallest: at most bound // RECORD + 1 records fit a bound
BIG = record(10**6)  # bigger than any record of these tests


def test_retention_bounds_disk_and_index_across_rotation_and_reopen(tmp_path: Path) -> None:
    bound = 100 * RECORD
    log = EventLog(tmp_path, bound)
    for seq in range(1, 1001):
        log.append([ev(seq)])
        log.flush()
        assert _disk(tmp_path) <= bound
        assert log.records <= bound // RECORD + 2
    assert (tmp_path / OLD_FILE_NAME).exists()
    first = log.first_seq
    assert 1 < first <= 1000 - 40  # pruned; at least half the bound kept
    assert log.read(1, 10, 10) is None and log.read(first - 1, first, 9) is None
    # a range across the two files, and every retained event
    assert log.read(first, 1000, 1000) == [ev(s) for s in range(first, 1001)]
    records = log.records
    log.close()
    again = EventLog(tmp_path, bound)
    assert (again.first_seq, again.next_seq, again.records) == (first, 1001, records)
    assert again.read(first, 1000, 1000) == [ev(s) for s in range(first, 1001)]
    again.append([ev(1001), ev(1002)])
    assert again.read(999, 2000, 10) == [ev(999), ev(1000), ev(1001), ev(1002)]
    again.close()


def test_batches_of_any_size_keep_the_files_within_the_bound(tmp_path: Path) -> None:
    """A record that would take the current file past half the bound rotates it first,
    so the two files never pass the bound together (they did by up to a record each); a
    batch too big for a file goes in as records of its parts, read back as one."""
    bound = 40 * RECORD
    log = EventLog(tmp_path, bound)
    seq = 1
    for n in [1, 17, 9, 19, 3, 14, 18, 6, 11, 16] * 6:  # records of up to ~half the bound
        log.append([ev(s) for s in range(seq, seq + n)])
        seq += n
        log.flush()
        assert _disk(tmp_path) <= bound
    assert (tmp_path / OLD_FILE_NAME).exists()
    kept = log.first_seq
    assert log.read(kept, seq, 10_000) == [ev(s) for s in range(kept, seq)]
    big = [ev(s) for s in range(seq, seq + 150)]  # several times the bound in one batch
    log.append(big)
    seq += 150
    log.flush()
    assert _disk(tmp_path) <= bound
    first = log.first_seq
    assert big[0].seq < first < seq - 10  # its oldest events pruned, the newest kept
    assert log.read(first - 1, seq, 999) is None
    assert log.read(first, seq, 999) == [ev(s) for s in range(first, seq)]
    log.close()
    again = EventLog(tmp_path, bound)  # its parts are a sound log: nothing cut on open
    assert (again.first_seq, again.next_seq) == (first, seq)
    assert again.read(first, seq, 999) == [ev(s) for s in range(first, seq)]
    again.close()


def test_the_index_and_start_up_reads_do_not_grow_with_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening reads the files a chunk at a time and indexes only the retained records,
    however long the engine's history."""
    bound = 200 * RECORD
    indexed: list[int] = []
    reads: list[int] = []
    real = os.pread

    def pread(fd: int, n: int, at: int) -> bytes:
        reads.append(n)
        return real(fd, n, at)

    seq = 1
    for turns in (1_000, 10_000):
        log = EventLog(tmp_path, bound)
        for _ in range(turns):
            log.append([ev(seq)])
            seq += 1
        log.close()
        reads.clear()
        monkeypatch.setattr(eventlog, "SCAN_CHUNK", 4096)
        monkeypatch.setattr(os, "pread", pread)
        again = EventLog(tmp_path, bound)
        monkeypatch.undo()
        assert again.next_seq == seq and 0 < max(reads) <= 4096 + BIG
        indexed.append(again.records)
        again.close()
    assert max(indexed) <= bound // RECORD + 2  # 11,000 records held without a bound


def test_truncate_after_into_the_old_file(tmp_path: Path) -> None:
    bound = 20 * RECORD
    log = EventLog(tmp_path, bound)
    for seq in range(1, 26):
        log.append([ev(seq)])
    first = log.first_seq
    assert (tmp_path / OLD_FILE_NAME).exists() and first < 20 < 21 <= log.next_seq - 1
    log.truncate_after(first + 2)  # in the old file: the current one empties
    assert log.next_seq == first + 3 and log.read(first, 99, 99) == [
        ev(s) for s in range(first, first + 3)
    ]
    log.append([ev(first + 3)])
    log.close()
    again = EventLog(tmp_path, bound)
    assert again.read(first, 99, 99) == [ev(s) for s in range(first, first + 4)]
    again.close()


def test_a_current_file_that_does_not_follow_the_old_one_drops_it(tmp_path: Path) -> None:
    bound = 20 * RECORD
    log = EventLog(tmp_path, bound)
    for seq in range(1, 16):
        log.append([ev(seq)])
    log.close()
    assert (tmp_path / OLD_FILE_NAME).exists()
    (tmp_path / FILE_NAME).unlink()  # the old file's follower lost
    fresh = EventLog(tmp_path / "other", bound)
    fresh.append([ev(40), ev(41)])
    fresh.close()
    os.replace(tmp_path / "other" / FILE_NAME, tmp_path / FILE_NAME)
    again = EventLog(tmp_path, bound)
    assert not (tmp_path / OLD_FILE_NAME).exists()
    assert again.first_seq == 40 and again.next_seq == 42 and again.read(1, 9, 9) is None
    again.close()
