"""Tests of the write-ahead journal and snapshots (`tickplane.engine.journal`), on real
files: round trips, fsync policies, torn tails at every byte offset, corruption,
segments, snapshots, and kill -9 of a writing process at random moments."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tickplane.engine import journal
from tickplane.engine.journal import (
    COMMAND_SIZE,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    CommandRun,
    FsyncPolicy,
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalWriter,
    Record,
    RecordsPruned,
    RecordType,
    latest_snapshot,
    prune_snapshots,
    read,
    read_runs,
    recover,
    segments,
    snapshots,
    write_snapshot,
)
from tickplane.engine.matching import COMMAND_DTYPE, MatchingEngine, Op


def commands(first_id: int, n: int) -> npt.NDArray[np.void]:
    """`n` limit orders with ids from `first_id` (distinct field values per command)."""
    arr = np.zeros(n, COMMAND_DTYPE)
    arr["id"] = np.arange(first_id, first_id + n)
    arr["qty"] = np.arange(1, n + 1) * 10
    arr["price"] = 10_000 + np.arange(n) % 7
    arr["ts"] = np.arange(n) * 1000
    arr["account"] = np.arange(n) % 3
    arr["op"] = Op.NEW
    arr["side"] = np.arange(n) % 2
    return arr


def sample(w: JournalWriter) -> list[Record]:
    """Append one record of each kind (and a multi-command one); return what was written."""
    written = [
        (RecordType.ACCOUNT, b"alice"),
        (RecordType.COMMAND, commands(1, 1).tobytes()),
        (RecordType.ACCOUNT, "bob-ü".encode()),
        (RecordType.COMMAND, commands(2, 5).tobytes()),
        (RecordType.MARK, b""),
        (RecordType.MARK, b'{"config":"abc123"}'),
        (RecordType.COMMAND, commands(7, 2).tobytes()),
    ]
    out = []
    for rtype, payload in written:
        out.append(Record(w.append(rtype, payload), rtype, payload))
    w.commit()
    return out


def only_segment(directory: Path) -> Path:
    (seg,) = segments(directory)
    return seg.path


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_round_trip_every_record_type(tmp_path: Path, policy: FsyncPolicy) -> None:
    with JournalWriter(tmp_path / "j", policy) as w:
        written = sample(w)
        assert w.last_ordinal == w.committed_ordinal == len(written)
    assert [r.ordinal for r in written] == list(range(1, 8))
    assert list(read(tmp_path / "j")) == written
    assert list(read(tmp_path / "j", from_ordinal=4)) == written[3:]
    assert list(read(tmp_path / "j", from_ordinal=99)) == []
    assert written[0].account() == "alice"
    assert written[2].account() == "bob-ü"
    assert written[5].mark() == {"config": "abc123"}
    assert (written[3].commands() == commands(2, 5)).all()


def test_read_runs_merges_commands_between_other_records(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, "batch") as w:
        written = sample(w)
    runs = list(read_runs(tmp_path))
    kinds = [(type(r).__name__, r[0]) for r in runs]
    assert kinds == [
        ("Record", 1),
        ("CommandRun", 2),
        ("Record", 3),
        ("CommandRun", 4),
        ("Record", 5),
        ("Record", 6),
        ("CommandRun", 7),
    ]
    assert [r for r in runs if isinstance(r, Record)] == [written[i] for i in (0, 2, 4, 5)]
    run = runs[3]
    assert isinstance(run, CommandRun)
    assert (run.first_ordinal, run.last_ordinal) == (4, 4)
    assert run.commands.dtype == COMMAND_DTYPE and run.commands.flags.writeable
    assert (run.commands == commands(2, 5)).all()


@pytest.mark.parametrize("policy", ["batch", "none"])
def test_abandon_keeps_what_is_committed_and_drops_what_is_not(tmp_path: Path, policy: str) -> None:
    """`abandon` (the engine's loop failed mid-turn) closes as a crash would: the
    committed records stay, the pending ones (commands, an open group) are gone, and
    the journal opens again and appends after the last committed record."""
    cmds = commands(1, 6)
    w = JournalWriter(tmp_path, policy, group_commit_us=10_000_000)
    w.append_account("alice")
    w.append_command(cmds[0].tobytes())
    assert w.commit() == 2
    w.append_command(cmds[1].tobytes())
    w.begin_group()
    w.append_account("bob")
    w.append_mark({"half": "a request"})
    w.abandon()
    assert [r.ordinal for r in read(tmp_path)] == [1, 2]
    with JournalWriter(tmp_path, policy) as again:
        assert again.last_ordinal == 2
        assert again.append_account("carol") == 3
    assert [r.account() for r in read(tmp_path) if r.rtype == RecordType.ACCOUNT] == [
        "alice",
        "carol",
    ]


@pytest.mark.parametrize("policy", ["batch", "none"])
def test_append_command_makes_one_record_per_turn(tmp_path: Path, policy: str) -> None:
    """Consecutive `append_command`s are one COMMAND record, closed by another record or
    a commit, in the order of the calls; nothing is a record before that."""
    cmds = commands(1, 7)
    with JournalWriter(tmp_path, policy, group_commit_us=10_000_000) as w:
        for row in cmds[:3]:
            w.append_command(row.tobytes())
        assert w.last_ordinal == 0 and w.pending_records == 0
        assert w.append_account("alice") == 2  # the three commands became record 1
        for row in cmds[3:5]:
            w.append_command(row.tobytes())
        assert w.commit() == 3 and w.last_ordinal == 3
        for row in cmds[5:]:
            w.append_command(row.tobytes())
        with pytest.raises(ValueError):
            w.append_command(b"short")
    records = list(read(tmp_path))
    assert [(r.ordinal, r.rtype) for r in records] == [
        (1, RecordType.COMMAND),
        (2, RecordType.ACCOUNT),
        (3, RecordType.COMMAND),
        (4, RecordType.COMMAND),  # closed by close()
    ]
    parts = [records[0].commands(), records[2].commands(), records[3].commands()]
    assert (np.concatenate(parts) == cmds).all()


def test_append_command_with_always_is_on_disk_at_once(tmp_path: Path, fsyncs: list[int]) -> None:
    w = JournalWriter(tmp_path, "always")
    fsyncs.clear()
    for k, row in enumerate(commands(1, 3), start=1):
        w.append_command(row.tobytes())
        assert w.committed_ordinal == k and len(fsyncs) == k
    w.close()


def test_read_runs_of_many_records(tmp_path: Path) -> None:
    """Consecutive COMMAND records of different sizes come as one run, in order, from
    any starting ordinal; the result drives the matching engine like the original."""
    sizes = [1, 3, 1, 1, 8, 2, 1, 5]
    parts, first = [], 1
    with JournalWriter(tmp_path, "none") as w:
        for n in sizes:
            parts.append(commands(first, n))
            w.append_commands(parts[-1])
            first += n
        w.append_account("carol")
        w.append_commands(commands(first, 4))
    everything = np.concatenate(parts)
    runs = list(read_runs(tmp_path))
    assert len(runs) == 3
    assert isinstance(runs[0], CommandRun) and (runs[0].commands == everything).all()
    assert (runs[0].first_ordinal, runs[0].last_ordinal) == (1, 8)
    assert runs[1] == Record(9, RecordType.ACCOUNT, b"carol")
    assert isinstance(runs[2], CommandRun) and runs[2].first_ordinal == 10
    for start in range(1, 9):
        (tail, *_) = read_runs(tmp_path, from_ordinal=start)
        assert isinstance(tail, CommandRun)
        assert (tail.commands == np.concatenate(parts[start - 1 :])).all()
    replayed, direct = MatchingEngine(), MatchingEngine()
    assert (replayed.process(runs[0].commands) == direct.process(everything)).all()


def test_append_checks_payloads(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, "always") as w:
        with pytest.raises(ValueError, match="multiple of 56"):
            w.append(RecordType.COMMAND, bytes(COMMAND_SIZE - 1))
        with pytest.raises(ValueError, match="multiple of 56"):
            w.append(RecordType.COMMAND, b"")
        with pytest.raises(ValueError, match="empty ACCOUNT"):
            w.append(RecordType.ACCOUNT, b"")
        with pytest.raises(UnicodeDecodeError):
            w.append(RecordType.ACCOUNT, b"\xff\xfe")
        with pytest.raises(ValueError, match="bad type"):
            w.append(7, b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            w.append_commands(np.zeros(2, np.int64))
        assert w.next_ordinal == 1  # nothing was taken
        assert w.append(RecordType.COMMAND, memoryview(commands(1, 2))) == 1
    assert list(read(tmp_path)) == [Record(1, RecordType.COMMAND, commands(1, 2).tobytes())]


# -- fsync policies ------------------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.fsync call's file descriptor (the real fsync still runs)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_always_fsyncs_every_append(tmp_path: Path, fsyncs: list[int]) -> None:
    seen: list[float] = []
    w = JournalWriter(tmp_path, "always", on_fsync=seen.append)
    fsyncs.clear()
    for k in range(1, 6):
        assert w.append(RecordType.COMMAND, commands(k, 1).tobytes()) == k
        assert len(fsyncs) == k
        assert w.committed_ordinal == k
        assert [r.ordinal for r in read(tmp_path)] == list(range(1, k + 1))
    assert w.commit() == 5 and len(fsyncs) == 5  # nothing pending: no fsync
    w.close()
    assert len(fsyncs) == 5
    assert len(seen) == 5 and all(d >= 0 for d in seen)
    assert list(w.fsync_durations) == seen and w.fsync_count == 5


def test_batch_writes_and_fsyncs_once_per_commit(tmp_path: Path, fsyncs: list[int]) -> None:
    w = JournalWriter(tmp_path, FsyncPolicy.BATCH, group_commit_us=10_000_000)
    fsyncs.clear()
    size = only_segment(tmp_path).stat().st_size
    for k in range(1, 11):
        w.append_commands(commands(k, 1))
    assert w.pending_records == 10 and w.committed_ordinal == 0
    assert only_segment(tmp_path).stat().st_size == size  # nothing written yet
    assert list(read(tmp_path)) == []
    deadline = w.commit_deadline()
    assert deadline is not None and deadline > time.monotonic()
    assert w.commit() == 10
    assert len(fsyncs) == 1 and w.pending_records == 0 and w.commit_deadline() is None
    assert len(list(read(tmp_path))) == 10
    written = w.bytes_written
    assert w.commit() == 10  # nothing pending: no write, no fsync
    assert len(fsyncs) == 1 and w.bytes_written == written
    w.close()
    assert len(fsyncs) == 1


def test_batch_time_and_size_bounds(tmp_path: Path, fsyncs: list[int]) -> None:
    w = JournalWriter(tmp_path / "t", "batch", group_commit_us=20_000)
    w.append_account("a")
    w.append_account("b")
    assert w.committed_ordinal == 0
    time.sleep(0.03)
    w.append_account("c")  # the oldest pending record is past the bound: commit all three
    assert w.committed_ordinal == 3
    w.close()
    w = JournalWriter(tmp_path / "s", "batch", group_commit_us=10**9, max_pending_bytes=1000)
    for k in range(1, 30):
        w.append_commands(commands(k, 1))
        if w.pending_records == 0:
            break
    assert w.committed_ordinal == k == 1000 // (RECORD_HEADER_SIZE + COMMAND_SIZE) + 1
    w.close()


def test_none_writes_on_commit_without_fsync(tmp_path: Path, fsyncs: list[int]) -> None:
    w = JournalWriter(tmp_path, "none", group_commit_us=10**9)
    fsyncs.clear()
    sample(w)
    assert len(list(read(tmp_path))) == 7  # in the file (the OS has it) ...
    assert fsyncs == []  # ... without an fsync
    w.append_account("x")
    assert len(list(read(tmp_path))) == 7
    w.close()  # close commits and fsyncs whatever the policy
    assert len(fsyncs) == 1 and len(list(read(tmp_path))) == 8


def test_failed_fsync_stops_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = JournalWriter(tmp_path, "always")
    w.append_account("a")

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(JournalError, match="fsync failed"):
        w.append_account("b")
    monkeypatch.undo()
    with pytest.raises(JournalError, match="restart the engine"):
        w.append_account("c")
    w.close()
    with pytest.raises(JournalError, match="closed"):
        w.append_account("d")


def test_a_full_disk_stops_the_writer_and_loses_nothing_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is grown ahead with reserved blocks: a full disk fails the commit that
    needs more room (a JournalError, never a SIGBUS), the records before it stay whole,
    and the next writer carries on after them."""
    w = JournalWriter(tmp_path, "none", max_segment_bytes=4096)
    records = sample(w)
    w.commit()

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(JournalError, match=r"write failed.*No space left"):
        for k in range(1, 200):  # until a commit needs the file to grow
            w.append_commands(commands(10_000 + k, 8))
            w.commit()
    monkeypatch.undo()
    with pytest.raises(JournalError, match="restart the engine"):
        w.append_account("after")
    committed = w.committed_ordinal
    w.close()
    got = list(read(tmp_path))
    assert got[: len(records)] == records
    assert [r.ordinal for r in got] == list(range(1, committed + 1))
    with JournalWriter(tmp_path, "none") as again:
        assert again.next_ordinal == committed + 1


def test_one_writer_per_directory(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, "always")
    with pytest.raises(JournalLocked):
        JournalWriter(tmp_path, "always")
    w.close()
    JournalWriter.open(tmp_path, "always").close()


# -- torn tails and corruption ------------------------------------------------------------------


def _journal_with_tail(tmp_path: Path) -> tuple[Path, list[Record], int]:
    """A one-segment journal; its records and the byte offset of the last record."""
    src = tmp_path / "src"
    with JournalWriter(src, "batch") as w:
        records = sample(w)
    path = only_segment(src)
    last = path.stat().st_size - RECORD_HEADER_SIZE - len(records[-1].payload)
    return path, records, last


def test_torn_tail_at_every_byte_is_truncated_on_reopen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, records, last = _journal_with_tail(tmp_path)
    data = path.read_bytes()
    for cut in range(last, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / path.name).write_bytes(data[:cut])
        assert list(read(d)) == records[:-1]
        caplog.clear()
        with caplog.at_level(logging.WARNING), JournalWriter.open(d, "always") as w:
            assert w.next_ordinal == records[-1].ordinal
            assert (d / path.name).stat().st_size == last
            if cut > last:
                assert f"cut {cut - last} bytes" in caplog.text
            w.append(records[-1].rtype, records[-1].payload)
        assert list(read(d)) == records
        shutil.rmtree(d)


def _group(w: JournalWriter) -> None:
    """One request's records as the engine writes a kill switch: a MARK, commands, a MARK;
    then another request's command, which joins the group's open COMMAND record."""
    w.begin_group()
    w.append_mark({"control": "kill"})
    w.append_account("carol")
    for k in range(3):
        w.append_command(commands(20 + k, 1).tobytes())
    w.append_mark({"contingent": "cancel"})
    w.append_command(commands(30, 1).tobytes())
    w.end_group()
    w.append_command(commands(31, 1).tobytes())  # the next request's, in the same record


def test_an_unclosed_group_at_every_byte_reads_as_if_it_never_began(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash inside one request's records (a group) leaves none of them: cut anywhere
    from the group's first byte to its last, the journal reads as before the group, and
    re-opening cuts it off; whole, every record but the group's last continues it."""
    src = tmp_path / "src"
    slow = 10**9  # no commit on time: the same records whatever the machine's speed
    with JournalWriter(src, "batch", slow) as w:
        before = sample(w)
        _group(w)
        w.commit()
    path = only_segment(src)
    data = path.read_bytes()
    start = len(data) - sum(
        RECORD_HEADER_SIZE + len(r.payload) for r in read(src) if r.ordinal > len(before)
    )
    whole = list(read(src))
    assert [r.rtype for r in whole[len(before) :]] == [
        RecordType.MARK,
        RecordType.ACCOUNT,
        RecordType.COMMAND,
        RecordType.MARK,
        RecordType.COMMAND,
    ]
    assert [r.continued for r in whole] == [False] * len(before) + [True] * 4 + [False]
    assert len(whole[-1].commands()) == 2  # the group's last command and the next one
    runs = list(read_runs(src, len(before) + 1))  # a group's COMMAND records run as any
    assert [type(r).__name__ for r in runs] == ["Record", "Record", "CommandRun", "Record",
                                                "CommandRun"]  # fmt: skip
    assert runs[2].commands["id"].tolist() == [20, 21, 22]
    first_whole = start + RECORD_HEADER_SIZE + len(whole[len(before)].payload)
    for cut in range(start, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / path.name).write_bytes(data[:cut])
        assert list(read(d)) == before, cut
        assert sum(1 for _ in read_runs(d)) == len(list(read_runs(src))) - len(runs), cut
        caplog.clear()
        with caplog.at_level(logging.WARNING), JournalWriter.open(d, "batch", slow) as again:
            assert again.next_ordinal == len(before) + 1
            assert (d / path.name).stat().st_size == start
            assert (f"cut {cut - start} bytes" in caplog.text) == (cut > start), cut
            assert ("unclosed group" in caplog.text) == (cut >= first_whole), cut
            _group(again)  # the request again, after the cut
        assert list(read(d)) == whole
        shutil.rmtree(d)


def test_nothing_of_an_open_group_is_committed(tmp_path: Path, fsyncs: list[int]) -> None:
    """The time and size bounds wait for the group's end, `always` buffers it, and a
    commit (so sync, rotate, snapshot) inside it is refused; a nested group joins."""
    with JournalWriter(tmp_path / "b", "batch", group_commit_us=0, max_pending_bytes=1) as w:
        w.begin_group()
        w.append_mark({"a": 1})
        w.begin_group()  # joins the open group
        w.append_account("x")
        w.end_group()
        w.append_account("y")
        assert w.committed_ordinal == 0 and w.pending_records == 3
        for call in (w.commit, w.sync, w.rotate, lambda: w.snapshot(b"s")):
            with pytest.raises(JournalError, match="inside a group"):
                call()
        w.end_group()  # the bounds apply again: committed at once
        assert w.committed_ordinal == 3
        with pytest.raises(JournalError, match="without begin_group"):
            w.end_group()
    assert [r.continued for r in read(tmp_path / "b")] == [True, True, False]
    with JournalWriter(tmp_path / "a", "always") as w:
        fsyncs.clear()  # the new segment's
        w.begin_group()
        w.append_account("x")
        w.append_command(commands(1, 1).tobytes())
        assert w.committed_ordinal == 0 and not fsyncs
        w.end_group()
        assert w.committed_ordinal == 2 and len(fsyncs) == 1  # one fsync for the group
        w.begin_group()
        w.end_group()  # an empty group writes nothing
        assert w.next_ordinal == 3
    assert [r.continued for r in read(tmp_path / "a")] == [True, False]


def test_bad_checksum_in_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    path, records, last = _journal_with_tail(tmp_path)
    data = path.read_bytes()
    for at in range(last, len(data)):
        d = tmp_path / f"flip{at}"
        d.mkdir()
        damaged = bytearray(data)
        damaged[at] ^= 0x40
        (d / path.name).write_bytes(damaged)
        assert list(read(d)) == records[:-1], at
        with JournalWriter(d, "batch") as w:
            assert w.next_ordinal == records[-1].ordinal
        assert (d / path.name).stat().st_size == last
        shutil.rmtree(d)


def test_zeroed_tail_is_a_torn_tail(tmp_path: Path) -> None:
    """A power loss can leave a file longer than its data, the rest zeros."""
    path, records, _ = _journal_with_tail(tmp_path)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(bytes(4096))
    assert list(read(path.parent)) == records
    JournalWriter(path.parent, "always").close()
    assert path.stat().st_size == size


def test_a_writer_left_without_closing_leaves_only_reserved_zeros(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed writer's segment keeps the space reserved ahead of its records: the
    records read back, and re-opening cuts the zeros (at INFO: nothing was torn)."""
    w = JournalWriter(tmp_path, "none")
    records = sample(w)
    w.commit()
    path = only_segment(tmp_path)
    end = w._segment_size  # what close() would cut the file to
    assert path.stat().st_size > end  # the records, then the reserved space
    assert path.read_bytes()[end:].count(0) == path.stat().st_size - end
    assert list(read(tmp_path)) == records
    os.close(w._lock_fd)  # as a killed process's lock goes; its map and fd stay
    w._lock_fd = -1
    with caplog.at_level(logging.INFO), JournalWriter(tmp_path, "none") as again:
        assert again.next_ordinal == records[-1].ordinal + 1
        assert path.stat().st_size == end
    assert "never written" in caplog.text and "WARNING" not in caplog.text
    assert list(read(tmp_path)) == records


def test_reserved_zeros_end_an_earlier_segment_but_a_lost_record_does_not_pass(
    tmp_path: Path,
) -> None:
    with JournalWriter(tmp_path, "batch") as w:
        for k in range(1, 7):
            w.append_commands(commands(k, 1))
            if k == 3:
                w.rotate()
    first = segments(tmp_path)[0].path
    data = first.read_bytes()
    # A crash between a rotation's new segment and the old one's cut (seen as reserved
    # zeros left after its records): its records are all there.
    first.write_bytes(data + bytes(8192))
    assert [r.ordinal for r in read(tmp_path)] == list(range(1, 7))
    # Zeros where its last record was: record 3 is missing, and reading says so.
    last = len(data) - RECORD_HEADER_SIZE - COMMAND_SIZE
    first.write_bytes(data[:last] + bytes(8192))
    with pytest.raises(JournalCorrupt, match="a segment is missing"):
        list(read(tmp_path))


def test_torn_segment_header_is_rewritten(tmp_path: Path) -> None:
    path, _, _ = _journal_with_tail(tmp_path)
    header = path.read_bytes()[:SEGMENT_HEADER_SIZE]
    for cut in range(SEGMENT_HEADER_SIZE):
        path.write_bytes(header[:cut])
        assert list(read(path.parent)) == []
        with JournalWriter(path.parent, "always") as w:
            assert w.append_account("a") == 1
        assert list(read(path.parent)) == [Record(1, RecordType.ACCOUNT, b"a")]
    # A power loss right after creation may leave zeros where the header was.
    path.write_bytes(bytes(SEGMENT_HEADER_SIZE + 100))
    assert list(read(path.parent)) == []
    JournalWriter(path.parent, "always").close()
    assert path.read_bytes() == header
    # Zeros for a header with data after it are not a crash's doing.
    path.write_bytes(bytes(SEGMENT_HEADER_SIZE) + b"data")
    with pytest.raises(JournalCorrupt, match="header cut short or zeroed"):
        list(read(path.parent))


def test_corruption_in_the_middle_raises(tmp_path: Path) -> None:
    path, records, _ = _journal_with_tail(tmp_path)
    data = path.read_bytes()
    second = SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE + len(records[0].payload)
    for at, what in [
        (second + RECORD_HEADER_SIZE + 3, "checksum"),  # payload byte
        (second + 4, "checksum"),  # the stored CRC
        (second + 8, "checksum"),  # type byte
        (second, "checksum"),  # length: now too short
        (second + 3, "past the end"),  # length: now far too long
    ]:
        damaged = bytearray(data)
        damaged[at] ^= 0x10
        path.write_bytes(damaged)
        with pytest.raises(JournalCorrupt, match=what) as err:
            list(read(path.parent))
        assert err.value.path == path and err.value.offset == second
        assert str(path) in str(err.value) and f"offset {second}" in str(err.value)
        with pytest.raises(JournalCorrupt):
            JournalWriter(path.parent, "always")
        assert path.read_bytes() == damaged  # never truncated


def test_scan_for_a_good_record_crosses_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "_SCAN_CHUNK", 5)
    path, _, _ = _journal_with_tail(tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[SEGMENT_HEADER_SIZE + 2] = 0x7F  # the first record claims 8 MiB
    path.write_bytes(damaged)
    with pytest.raises(JournalCorrupt, match="followed by a good record"):
        list(read(path.parent))


def _outcome(path: Path) -> tuple[str, object]:
    data = path.read_bytes()
    try:
        parsed = journal._parse(path, data, 1, last=True)
    except JournalCorrupt as exc:
        return "corrupt", (exc.offset, exc.reason)
    return "ok", (parsed.offsets.tolist(), parsed.end, parsed.torn)


def test_runs_of_same_sized_records_read_like_single_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of same-sized COMMAND records take a vectorised path: on random journals,
    damaged at random or not, it finds exactly what the one-record-at-a-time loop finds."""
    rng = random.Random(99)
    outcomes = set()
    for trial in range(150):
        d = tmp_path / f"t{trial}"
        ordinal = 0
        with JournalWriter(d, "none") as w:
            for _ in range(rng.randrange(1, 12)):
                size = rng.choice([1, 1, 2, 7])
                for _ in range(rng.choice([1, 5, 15, 16, 17, 40, 300])):
                    ordinal = w.append_commands(commands(ordinal + 1, size))
                if rng.random() < 0.5:
                    w.append_account(f"a{ordinal}")
        path = only_segment(d)
        data = bytearray(path.read_bytes())
        damage = rng.choice(["none", "flip", "flip-tail", "cut"])
        if damage == "flip":
            data[rng.randrange(SEGMENT_HEADER_SIZE, len(data))] ^= 1 << rng.randrange(8)
        elif damage == "flip-tail":
            data[rng.randrange(len(data) - 40, len(data))] ^= 0x20
        elif damage == "cut":
            del data[rng.randrange(SEGMENT_HEADER_SIZE, len(data)) :]
        path.write_bytes(data)
        fast = _outcome(path)
        with monkeypatch.context() as m:
            m.setattr(journal, "_RUN_MIN", 10**9)
            slow = _outcome(path)
        assert fast == slow, (trial, damage)
        outcomes.add((damage, fast[0]))
    assert {("none", "ok"), ("flip", "corrupt"), ("flip-tail", "ok"), ("cut", "ok")} <= outcomes


def test_bad_header_and_missing_segment_raise(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, "always") as w:
        for k in range(1, 10):
            w.append_commands(commands(k, 1))
            if k % 3 == 0:
                w.rotate()
    segs = segments(tmp_path)
    assert [s.first_ordinal for s in segs] == [1, 4, 7, 10]
    middle = segs[1].path
    data = middle.read_bytes()
    middle.write_bytes(b"X" + data[1:])
    with pytest.raises(JournalCorrupt, match="not a journal segment") as err:
        list(read(tmp_path))
    assert err.value.path == middle
    middle.write_bytes(data[:-1])  # a torn tail in a segment that is not the last
    with pytest.raises(JournalCorrupt, match="not in the last segment"):
        list(read(tmp_path))
    middle.unlink()
    with pytest.raises(JournalCorrupt, match="segment is missing") as err:
        list(read(tmp_path))
    assert err.value.path == segs[2].path
    assert [r.ordinal for r in read(tmp_path, from_ordinal=7)] == [7, 8, 9]


# -- segments ------------------------------------------------------------------------------------


def test_rotate_and_prune(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, "batch")
    assert w.segment_path.name == f"journal-{1:020d}.tpj"
    assert w.rotate() == w.segment_path  # no records yet: nothing to rotate
    ordinal = 0
    for _ in range(4):
        for _ in range(5):
            ordinal = w.append_commands(commands(ordinal + 1, 2))
        w.rotate()
    assert [s.first_ordinal for s in segments(tmp_path)] == [1, 6, 11, 16, 21]
    assert w.segment_path.name == f"journal-{21:020d}.tpj"
    assert [r.ordinal for r in read(tmp_path)] == list(range(1, 21))
    assert [r.ordinal for r in read(tmp_path, from_ordinal=9)] == list(range(9, 21))
    runs = list(read_runs(tmp_path, from_ordinal=9))
    assert [(r[0], r[1]) for r in runs] == [(9, 10), (11, 15), (16, 20)]
    assert w.prune(5) == []  # segment 1..5 still holds record 5
    segs = segments(tmp_path)
    assert w.prune(11) == [segs[0].path, segs[1].path]  # records 1..5 and 6..10
    assert [s.first_ordinal for s in segments(tmp_path)] == [11, 16, 21]
    assert [r.ordinal for r in read(tmp_path)] == list(range(11, 21))
    with pytest.raises(RecordsPruned):
        list(read(tmp_path, from_ordinal=3))
    w.prune(10**9)  # never the segment being written
    assert [s.first_ordinal for s in segments(tmp_path)] == [21]
    w.append_account("a")
    w.close()
    assert list(read(tmp_path)) == [Record(21, RecordType.ACCOUNT, b"a")]


def test_segments_rotate_by_size(tmp_path: Path) -> None:
    with JournalWriter(tmp_path, "batch", max_segment_bytes=1000) as w:
        for k in range(1, 41):
            w.append_commands(commands(k, 1))
            if k % 4 == 0:
                w.commit()
    assert len(segments(tmp_path)) > 2
    assert all(s.path.stat().st_size <= 1000 + 4 * 65 for s in segments(tmp_path))
    assert [r.ordinal for r in read(tmp_path)] == list(range(1, 41))


# -- snapshots and recovery ----------------------------------------------------------------------


def test_snapshot_round_trip_and_fallback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert latest_snapshot(tmp_path) is None
    assert latest_snapshot(tmp_path / "absent") is None
    write_snapshot(tmp_path, 0, b"")
    write_snapshot(tmp_path, 10, b"state at ten")
    write_snapshot(tmp_path, 20, b"state at twenty" * 1000)
    assert latest_snapshot(tmp_path) == (20, b"state at twenty" * 1000)
    # A crash before the rename leaves a temporary file: it is ignored.
    (tmp_path / f".snapshot-{30:020d}.tps.tmp").write_bytes(b"half a snapshot")
    assert latest_snapshot(tmp_path) == (20, b"state at twenty" * 1000)
    newest = tmp_path / f"snapshot-{20:020d}.tps"
    good = newest.read_bytes()
    for damage in (good[:-1], good[:10], good[:100] + b"!" + good[101:], b""):
        newest.write_bytes(damage)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert latest_snapshot(tmp_path) == (10, b"state at ten")
        assert str(newest) in caplog.text
    # A snapshot renamed to another ordinal is not trusted.
    (tmp_path / f"snapshot-{40:020d}.tps").write_bytes(good)
    assert latest_snapshot(tmp_path) == (10, b"state at ten")
    assert snapshots(tmp_path) == [0, 10, 20, 40]
    assert prune_snapshots(tmp_path, keep=2) == 20
    assert snapshots(tmp_path) == [20, 40]
    assert not list(tmp_path.glob(".snapshot-*"))
    assert latest_snapshot(tmp_path) is None


def test_writer_snapshot_and_recover(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, "batch")
    assert recover(tmp_path).snapshot_ordinal == 0
    for round_ in range(4):
        w.append_account(f"acct{round_}")
        w.append_commands(commands(round_ * 10 + 1, 3))
        assert w.snapshot(f"state{round_}".encode()) == 2 * (round_ + 1)
    w.append_account("late")
    w.append_commands(commands(100, 2))
    w.commit()
    # Two snapshots kept (6 and 8); segments before the older one's records pruned.
    assert snapshots(tmp_path) == [6, 8]
    assert [s.first_ordinal for s in segments(tmp_path)] == [7, 9]
    rec = recover(tmp_path)
    assert (rec.snapshot_ordinal, rec.state) == (8, b"state3")
    runs = list(rec.runs)
    assert runs[0] == Record(9, RecordType.ACCOUNT, b"late")
    assert isinstance(runs[1], CommandRun) and (runs[1].commands == commands(100, 2)).all()
    # The newest snapshot damaged: recovery falls back to the older one and replays more.
    (tmp_path / f"snapshot-{8:020d}.tps").write_bytes(b"garbage")
    rec = recover(tmp_path)
    assert rec.snapshot_ordinal == 6
    assert [r[0] for r in rec.runs] == [7, 8, 9, 10]
    # Both damaged: the journal no longer reaches back far enough.
    (tmp_path / f"snapshot-{6:020d}.tps").write_bytes(b"garbage")
    with pytest.raises(RecordsPruned, match="starts at 7"):
        recover(tmp_path)
    w.close()


def test_recover_without_snapshot(tmp_path: Path) -> None:
    assert recover(tmp_path / "absent").state is None
    with JournalWriter(tmp_path, "always") as w:
        written = sample(w)
    rec = recover(tmp_path)
    assert (rec.snapshot_ordinal, rec.state) == (0, None)
    assert sum(len(r.commands) for r in rec.runs if isinstance(r, CommandRun)) == 8
    assert [r for r in read_runs(tmp_path) if isinstance(r, Record)] == [
        written[i] for i in (0, 2, 4, 5)
    ]


def test_journal_behind_a_snapshot_continues_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Policy `none` after a power loss: the snapshot (fsynced) covers records the journal
    lost. New records must not reuse ordinals the snapshot covers."""
    with JournalWriter(tmp_path, "none") as w:
        sample(w)
    write_snapshot(tmp_path, 12, b"covers up to 12")
    with caplog.at_level(logging.ERROR), JournalWriter(tmp_path, "always") as w:
        assert w.append_account("next") == 13
    assert "exist only in the snapshot" in caplog.text
    rec = recover(tmp_path)
    assert rec.snapshot_ordinal == 12
    assert list(rec.runs) == [Record(13, RecordType.ACCOUNT, b"next")]
    with pytest.raises(JournalCorrupt, match="segment is missing"):
        list(read(tmp_path))


# -- kill -9 ------------------------------------------------------------------------------------

# The child appends records whose content follows from their ordinal and prints each
# ordinal once it is acknowledged (committed under the policy).
CHILD = textwrap.dedent(
    """
    import random, sys
    from tickplane.engine.journal import JournalWriter, RecordType

    def record(ordinal):
        rng = random.Random(ordinal)
        kind = rng.choice([RecordType.COMMAND] * 6 + [RecordType.ACCOUNT, RecordType.MARK])
        if kind == RecordType.COMMAND:
            return kind, rng.randbytes(56 * rng.choice([1, 1, 2, 3, 40, 300]))
        if kind == RecordType.ACCOUNT:
            return kind, f"account-{ordinal}".encode()
        return kind, rng.randbytes(rng.randrange(0, 5000))

    if __name__ == "__main__":
        directory, policy = sys.argv[1], sys.argv[2]
        w = JournalWriter(directory, policy, group_commit_us=300, max_segment_bytes=200_000)
        acked = w.committed_ordinal
        while True:
            w.append(*record(w.next_ordinal))
            if policy == "batch" and random.random() < 0.25:
                w.commit()
            for ordinal in range(acked + 1, w.committed_ordinal + 1):
                sys.stdout.write(f"{ordinal}\\n")
            sys.stdout.flush()
            acked = w.committed_ordinal
    """
)


@pytest.mark.parametrize("policy", ["always", "batch", "none"])
def test_kill_9_loses_no_acknowledged_record(tmp_path: Path, policy: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    namespace: dict[str, object] = {}
    exec(compile(CHILD, str(script), "exec"), namespace)
    expected = namespace["record"]
    assert callable(expected)
    directory = tmp_path / "journal"
    rng = random.Random(1234)
    acked: list[int] = []
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(directory), policy],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        wanted = rng.randrange(1, 400)
        seen = 0
        while seen < wanted:
            line = proc.stdout.readline()
            assert line, "the child stopped on its own"
            acked.append(int(line))
            seen += 1
        time.sleep(rng.random() * 0.005)  # somewhere inside a later append or fsync
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        acked.extend(int(x) for x in rest.split())
        assert proc.returncode == -signal.SIGKILL
        records = list(read(directory))
        assert [r.ordinal for r in records] == list(range(1, len(records) + 1))
        # Every acknowledged record is there (records are gap-free, so this is enough;
        # a record made durable just before a kill but never acknowledged may be too) ...
        assert acked == sorted(set(acked)) and acked[-1] <= len(records)
        for r in records:  # ... intact, and so is everything else that was read back
            assert (r.rtype, r.payload) == expected(r.ordinal)
    assert len(acked) > 6
