"""The engine's published events on disk, so `Replay` can serve any range.

Every batch of events the engine publishes is appended as one record: the first seq,
the count and the wire frame (`wire.encode_events`). The file is derived data (the
journal is the truth), so it is written without fsync except when a snapshot is taken;
on start, recovery keeps what the file holds up to the recovered last seq and appends
the events that re-applying the journal tail produces after the file's end. An
in-memory index (first seq -> offset of every record) makes a lookup one bisect and one
read.

Appends are buffered: a batch's record goes to the file with the next `flush`, which
`append` does itself once the buffer is `FLUSH_SECONDS` old or `FLUSH_BYTES` big, and the
engine does when it is idle, before a snapshot and on shutdown (a write per batch was a
syscall on every order's path). A kill -9 loses the buffer; recovery re-derives it.

Record: u64 first_seq, u32 count, u32 length, u32 crc32(frame), frame.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import time
import zlib
from pathlib import Path

from tickplane.core import wire
from tickplane.core.events import Event

__all__ = ["EventLog"]

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<QIII")
FILE_NAME = "events.tpe"
FLUSH_SECONDS = 0.01
FLUSH_BYTES = 1 << 20


class EventLog:
    """Append-only log of published event batches (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / FILE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._firsts: list[int] = []  # first seq of each record
        self._counts: list[int] = []
        self._offsets: list[int] = []
        self.next_seq = 1
        self._size = 0  # bytes in the file and the buffer
        self._buffer: list[bytes] = []
        self._buffered = 0  # bytes in the buffer
        self._since = 0.0  # time.monotonic() of the oldest buffered record
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._scan()

    def _scan(self) -> None:
        """Index the records; cut a torn or damaged tail (the file is derived data)."""
        data = self.path.read_bytes()
        pos = 0
        while pos + _HEAD.size <= len(data):
            first, count, length, crc = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length
            if end > len(data) or zlib.crc32(data[pos + _HEAD.size : end]) != crc:
                break
            if self._firsts and first != self.next_seq:
                break  # not a continuation: treat as damage
            self._firsts.append(first)
            self._counts.append(count)
            self._offsets.append(pos)
            self.next_seq = first + count
            pos = end
        if pos != len(data):
            os.ftruncate(self._fd, pos)
        self._size = pos

    def truncate_after(self, seq: int) -> None:
        """Forget every event after `seq` (recovery re-appends them from the journal)."""
        self.flush()
        k = bisect.bisect_right(self._firsts, seq)  # records [0, k) start at or before seq
        keep: list[Event] = []
        if k > 0 and self._firsts[k - 1] + self._counts[k - 1] - 1 > seq:
            keep = [e for e in self._read_record(k - 1) if e.seq <= seq]  # a straddler
            k -= 1
        if k == len(self._firsts):
            return
        os.ftruncate(self._fd, self._offsets[k])
        self._size = self._offsets[k]
        del self._firsts[k:], self._offsets[k:], self._counts[k:]
        self.next_seq = self._firsts[-1] + self._counts[-1] if self._firsts else 1
        self.append(keep)

    def append(self, events: list[Event], frame: bytes | None = None) -> None:
        """Append a batch of consecutive events (`frame`: `wire.encode_events(events)`,
        when the caller has it already). A batch that does not follow the last one
        (after a lost tail the engine could not re-derive) starts the log afresh: the
        log never holds a gap."""
        if not events:
            return
        first = events[0].seq
        if self._firsts and first != self.next_seq:
            log.warning(
                "event log: events %d.. do not follow its last (%d): it starts afresh, "
                "older events are no longer replayable",
                first,
                self.next_seq - 1,
            )
            self._buffer.clear()
            self._buffered = 0
            os.ftruncate(self._fd, 0)
            self._size = 0
            self._firsts.clear()
            self._offsets.clear()
            self._counts.clear()
        if frame is None:
            frame = wire.encode_events(events)
        record = _HEAD.pack(first, len(events), len(frame), zlib.crc32(frame)) + frame
        if not self._buffer:
            self._since = time.monotonic()
        self._buffer.append(record)
        self._buffered += len(record)
        self._firsts.append(first)
        self._offsets.append(self._size)
        self._counts.append(len(events))
        self._size += len(record)
        self.next_seq = first + len(events)
        if self._buffered >= FLUSH_BYTES or time.monotonic() - self._since >= FLUSH_SECONDS:
            self.flush()

    @property
    def buffered(self) -> int:
        """Records appended but not yet written (they are at the next flush)."""
        return len(self._buffer)

    def flush(self) -> None:
        """Write the buffered records (one write)."""
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        self.flush()
        os.fsync(self._fd)

    def _read_record(self, k: int) -> list[Event]:
        self.flush()
        head = os.pread(self._fd, _HEAD.size, self._offsets[k])
        _first, _count, length, _crc = _HEAD.unpack(head)
        frame = os.pread(self._fd, length, self._offsets[k] + _HEAD.size)
        return wire.decode_events(frame)

    def read(self, from_seq: int, to_seq: int, limit: int) -> list[Event] | None:
        """Events from_seq..to_seq (at most `limit`); None if the log does not hold
        from_seq."""
        if from_seq >= self.next_seq:
            return []
        if not self._firsts or from_seq < self._firsts[0]:
            return None
        k = bisect.bisect_right(self._firsts, from_seq) - 1
        out: list[Event] = []
        while k < len(self._firsts) and len(out) < limit:
            for e in self._read_record(k):
                if from_seq <= e.seq <= to_seq and len(out) < limit:
                    out.append(e)
            if self._firsts[k] > to_seq:
                break
            k += 1
        return out

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1
