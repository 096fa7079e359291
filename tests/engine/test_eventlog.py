"""The event log behind Replay: batches by seq, torn tails, cutting back for recovery."""

from __future__ import annotations

from pathlib import Path

from tickplane.core.events import OrderRejected
from tickplane.engine.eventlog import FILE_NAME, EventLog


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
