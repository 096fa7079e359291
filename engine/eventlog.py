"""The engine's published events on disk, so `Replay` can serve a recent range.

Every batch of events the engine publishes is appended as one record: the first seq,
the count and the wire frame (`wire.encode_events`). The file is derived data (the
journal is the truth), so it is written without fsync except when a snapshot is taken;
on start, recovery keeps what the log holds up to the recovered last seq and appends
the events that re-applying the journal tail produces after the log's end. An
in-memory index (the first seq and the place of every record, two `array`s: 16 bytes
a record) makes a lookup one bisect and one read.

- **Bounded**: two files, `events.tpe` and `events.old.tpe`, each at most half of
  `max_bytes`, so together at most `max_bytes`. When the next record would take
  `events.tpe` past its half, it becomes `events.old.tpe` first (the previous old one is
  deleted) and the record starts a new `events.tpe`, so the log holds the latest
  `max_bytes / 2` (less a record) to `max_bytes` of events, and the index only theirs;
  a range older than that is answered as no longer kept (`read` gives None, `Replay` a
  `replay_unavailable` reject). A batch whose record alone is larger than half is
  written as several records, each of a part of its events (an event is well under
  1 KB, the bound at least 1 MiB, so every part fits): the bound holds whatever the
  turn, and a range replays the same.
- **Buffered**: a batch's record goes to the file with the next `flush`, which `append`
  does itself once the buffer is `FLUSH_SECONDS` old or `FLUSH_BYTES` big, and the
  engine does when it is idle, before a snapshot and on shutdown (a write per batch was
  a syscall on every order's path). A kill -9 loses the buffer; recovery re-derives it.
- **Opened a chunk at a time**: the files are read `SCAN_CHUNK` bytes at a time to build
  the index, so starting costs memory for the index (bounded by `max_bytes`), not for
  the log, and time for the retained events, not for the engine's whole history.

Record: u64 first_seq, u32 count, u32 length, u32 crc32(frame), frame. A record follows
the one before it (its first seq is the previous one's first + count; the old file's
last is followed by the current file's first): the log never holds a gap. On open, a
torn or damaged record ends the current file (it is cut); a current file that does not
follow the old one makes the old one go.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
import time
import zlib
from array import array
from pathlib import Path

from tickplane.core import wire
from tickplane.core.events import Event

__all__ = ["EventLog"]

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<QIII")
FILE_NAME = "events.tpe"
OLD_FILE_NAME = "events.old.tpe"
DEFAULT_MAX_BYTES = 256 << 20  # core.config.EngineConfig.event_log_bytes's default
FLUSH_SECONDS = 0.01
FLUSH_BYTES = 1 << 20
SCAN_CHUNK = 1 << 20  # bytes read at a time when the log is opened


class EventLog:
    """Append-only, bounded log of published event batches (see the module docstring)."""

    def __init__(
        self, directory: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.path = Path(directory) / FILE_NAME
        self.old_path = Path(directory) / OLD_FILE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._firsts: array[int] = array("q")  # first seq of each record, ascending
        self._offsets: array[int] = array("q")  # where each record starts in its file
        self._split = 0  # records [0, _split) are in the old file, the rest in the current
        self.next_seq = 1
        self._size = 0  # bytes in the current file and the buffer
        self._buffer: list[bytes] = []
        self._buffered = 0  # bytes in the buffer
        self._since = 0.0  # time.monotonic() of the oldest buffered record
        self._old_fd = -1
        if self.old_path.exists():
            self._old_fd = os.open(self.old_path, os.O_RDWR)
            self._scan(self._old_fd, current=False)
            self._split = len(self._firsts)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = self._scan(self._fd, current=True)

    def _scan(self, fd: int, *, current: bool) -> int:
        """Index one file's records, `SCAN_CHUNK` bytes read at a time; return where its
        sound records end. A torn or damaged tail of the current file is cut (the file
        is derived data); if its first record does not follow the old file's last, the
        old file goes."""
        size = os.fstat(fd).st_size
        data = b""  # the file's bytes from `base` on
        base = at = 0  # `at`: the next record's place in `data`
        head = _HEAD.size
        while True:
            if at + head <= len(data):
                first, count, length, crc = _HEAD.unpack_from(data, at)
                end = at + head + length
                if base + end > size:
                    break  # torn
                if end <= len(data):
                    if zlib.crc32(data[at + head : end]) != crc or count == 0:
                        break
                    if self._firsts and first != self.next_seq:
                        if not (current and base + at == 0):
                            break  # not a continuation: treat as damage
                        log.warning(
                            "event log: %s does not follow %s: events before %d are no "
                            "longer replayable",
                            self.path.name,
                            self.old_path.name,
                            first,
                        )
                        self._drop_old()
                    self._firsts.append(first)
                    self._offsets.append(base + at)
                    self.next_seq = first + count
                    at = end
                    continue
                want = end - len(data) + SCAN_CHUNK  # the rest of this record and more
            else:
                want = SCAN_CHUNK
            more = os.pread(fd, want, base + len(data))
            if not more:
                break
            data = data[at:] + more
            base += at
            at = 0
        pos = base + at
        if pos != size:
            if current:
                log.warning("event log: cut a damaged tail of %d bytes", size - pos)
                os.ftruncate(fd, pos)
            else:
                log.warning(
                    "event log: %s ends in %d damaged bytes", self.old_path.name, size - pos
                )
        return pos

    def _drop_old(self) -> None:
        """Forget the old file and its records (they no longer lead to the current)."""
        del self._firsts[: self._split], self._offsets[: self._split]
        self._split = 0
        if self._old_fd >= 0:
            os.close(self._old_fd)
            self._old_fd = -1
        self.old_path.unlink(missing_ok=True)

    def _rotate(self) -> None:
        """The current file becomes the old one; the old one's records leave the index."""
        self.flush()
        if self._old_fd >= 0:
            os.close(self._old_fd)
        os.replace(self.path, self.old_path)
        self._old_fd = self._fd
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0
        del self._firsts[: self._split], self._offsets[: self._split]
        self._split = len(self._firsts)

    def _end(self, k: int) -> int:
        """The seq after record k's last."""
        return self._firsts[k + 1] if k + 1 < len(self._firsts) else self.next_seq

    def truncate_after(self, seq: int) -> None:
        """Forget every event after `seq` (recovery re-appends them from the journal)."""
        self.flush()
        k = bisect.bisect_right(self._firsts, seq)  # records [0, k) start at or before seq
        keep: list[Event] = []
        if k > 0 and self._end(k - 1) - 1 > seq:
            keep = [e for e in self._read_record(k - 1) if e.seq <= seq]  # a straddler
            k -= 1
        if k == len(self._firsts):
            return
        cut = self._firsts[k]  # the first seq forgotten
        if k >= self._split:
            os.ftruncate(self._fd, self._offsets[k])
            self._size = self._offsets[k]
        else:  # the cut is in the old file: the current one goes whole
            os.ftruncate(self._fd, 0)
            self._size = 0
            os.ftruncate(self._old_fd, self._offsets[k])
            self._split = k
        del self._firsts[k:], self._offsets[k:]
        self.next_seq = cut if self._firsts else 1
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
            self._drop_old()
            del self._firsts[:], self._offsets[:]
        if frame is None:
            frame = wire.encode_events(events)
        record = _HEAD.pack(first, len(events), len(frame), zlib.crc32(frame)) + frame
        half = self.max_bytes // 2
        if self._size + len(record) > half:  # the current file would pass its half
            if len(record) > half and len(events) > 1:
                # no file could hold it within the bound: as records of half the events
                split = len(events) // 2
                self.append(events[:split])
                self.append(events[split:])
                return
            if self._size:
                self._rotate()
        if not self._buffer:
            self._since = time.monotonic()
        self._buffer.append(record)
        self._buffered += len(record)
        self._firsts.append(first)
        self._offsets.append(self._size)
        self._size += len(record)
        self.next_seq = first + len(events)
        if self._buffered >= FLUSH_BYTES or time.monotonic() - self._since >= FLUSH_SECONDS:
            self.flush()

    @property
    def buffered(self) -> int:
        """Records appended but not yet written (they are at the next flush)."""
        return len(self._buffer)

    @property
    def records(self) -> int:
        """Records in the index (those of the two files): bounded by `max_bytes`."""
        return len(self._firsts)

    @property
    def first_seq(self) -> int:
        """The oldest seq the log holds (`next_seq` when it holds none)."""
        return self._firsts[0] if self._firsts else self.next_seq

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
        """Flush and fsync the current file (before a snapshot)."""
        self.flush()
        os.fsync(self._fd)

    def _read_record(self, k: int) -> list[Event]:
        self.flush()
        fd = self._old_fd if k < self._split else self._fd
        head = os.pread(fd, _HEAD.size, self._offsets[k])
        _first, _count, length, _crc = _HEAD.unpack(head)
        frame = os.pread(fd, length, self._offsets[k] + _HEAD.size)
        return wire.decode_events(frame)

    def read(self, from_seq: int, to_seq: int, limit: int) -> list[Event] | None:
        """Events from_seq..to_seq (at most `limit`); None if the log no longer (or
        never) held from_seq."""
        if from_seq >= self.next_seq:
            return []
        if not self._firsts or from_seq < self._firsts[0]:
            return None
        k = bisect.bisect_right(self._firsts, from_seq) - 1
        out: list[Event] = []
        while k < len(self._firsts) and len(out) < limit:
            if self._firsts[k] > to_seq:
                break
            for e in self._read_record(k):
                if from_seq <= e.seq <= to_seq and len(out) < limit:
                    out.append(e)
            k += 1
        return out

    def close(self) -> None:
        """Flush and close the files."""
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1
        if self._old_fd >= 0:
            os.close(self._old_fd)
            self._old_fd = -1
