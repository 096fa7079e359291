"""The engine's write-ahead journal and its snapshots (format and guarantees: docs/journal.md).

Every command the engine accepts is appended here before it is acknowledged; on start,
recovery is the newest valid snapshot plus the journal records after it.

- `JournalWriter` appends records to segment files ``journal-<first ordinal>.tpj`` in a
  directory, under an `FsyncPolicy` (`always`, `batch` group commit, `none`), rotates
  segments, prunes old ones and writes snapshots. It holds an exclusive lock on the
  directory; one writer per journal.
- `read` yields every record (`Record`) from an ordinal on, verifying every checksum;
  `read_runs` yields the same records for replay with consecutive COMMAND records merged
  into one numpy array of `COMMAND_DTYPE` (`CommandRun`): no Python object per command.
- `write_snapshot` / `latest_snapshot` write and find snapshots atomically; `recover`
  puts the two together.

Ordinals number records from 1, gap-free across segments. A torn tail (the last record
of the last segment cut short or failing its checksum, with nothing valid after it) is
where a crash stopped a write: readers stop before it and the writer cuts it off when it
re-opens the journal. The records of one request form a group (`begin_group`): each but
the last has the `CONTINUED` bit in its type byte, so a group left unclosed at the end of
the last segment is a request a crash cut short, and part of the torn tail. Anything
else that fails a check raises `JournalCorrupt` with the file and byte offset: nothing
is ever skipped silently.

The writer copies records into the segment through a shared memory map (`mmap`), the
file grown ahead in reserved steps (`posix_fallocate`): a record is in the operating
system's page cache, where a killed process cannot lose it, without a ``write`` system
call before the acknowledgement. A finished segment is cut to its records' length; the
zeros a crash leaves after the last record (space reserved, never written) read as the
end of the records, in any segment (the ordinals of the next segment show that nothing
is missing). The readers are pure Python over ``os`` and ``zlib``; the checksum is zlib's
CRC-32 (the ISO-HDLC/IEEE polynomial).
"""

from __future__ import annotations

import enum
import fcntl
import json
import logging
import mmap
import os
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from tickplane.engine.matching import COMMAND_DTYPE

__all__ = [
    "COMMAND_SIZE",
    "CONTINUED",
    "MAX_PAYLOAD",
    "CommandRun",
    "FsyncPolicy",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalWriter",
    "Record",
    "RecordType",
    "RecordsPruned",
    "Recovery",
    "Segment",
    "latest_snapshot",
    "prune_snapshots",
    "read",
    "read_runs",
    "recover",
    "segments",
    "snapshots",
    "write_snapshot",
]

log = logging.getLogger(__name__)

COMMAND_SIZE: Final[int] = COMMAND_DTYPE.itemsize
"""Bytes per command in a COMMAND payload (56)."""
MAX_PAYLOAD: Final[int] = 64 << 20
"""The largest payload one record may carry (64 MiB)."""

FORMAT_VERSION: Final = 1
SEGMENT_MAGIC: Final = b"TPJOURNL"
SNAPSHOT_MAGIC: Final = b"TPSNAPSH"

# Segment header: magic, version, header size, flags, first ordinal; then the CRC-32 of
# those 24 bytes and 4 reserved zero bytes (32 bytes in all).
_SEG_HEAD: Final = struct.Struct("<8sHHIQ")
_SEG_CRC: Final = struct.Struct("<I4x")
SEGMENT_HEADER_SIZE: Final = _SEG_HEAD.size + _SEG_CRC.size
# Record header: payload length, CRC-32 of (type byte + payload), type.
_REC: Final = struct.Struct("<IIB")
RECORD_HEADER_SIZE: Final = _REC.size
# Snapshot header: magic, version, header size, flags, ordinal, state length; then the
# CRC-32 of the state and the CRC-32 of the 36 bytes before it (40 bytes in all).
_SNAP_HEAD: Final = struct.Struct("<8sHHIQQI")
_SNAP_CRC: Final = struct.Struct("<I")
SNAPSHOT_HEADER_SIZE: Final = _SNAP_HEAD.size + _SNAP_CRC.size

_SEGMENT_RE: Final = re.compile(r"journal-(\d{20})\.tpj")
_SNAPSHOT_RE: Final = re.compile(r"snapshot-(\d{20})\.tps")
_LOCK_NAME: Final = "journal.lock"
_SCAN_CHUNK: Final = 1 << 20
# The writer grows a segment's file this far ahead of its records (at least a page,
# at most this): one fallocate and one remap per step, none per record.
_GROW_MAX: Final = 8 << 20
_UNWRITTEN: Final = "zeros after the last record (space reserved, never written)"


class RecordType(enum.IntEnum):
    """What a record's payload holds."""

    COMMAND = 1
    """One or more raw `COMMAND_DTYPE` structs (a multiple of 56 bytes, at least one)."""
    ACCOUNT = 2
    """An account name, UTF-8, non-empty; the engine interns names in journal order."""
    MARK = 3
    """Anything else (JSON or msgpack bytes: a config hash, a snapshot marker); may be empty."""


CONTINUED: Final = 0x80
"""The type byte's group bit: the next record belongs to the same request (its group is
closed by the first record without it; docs/journal.md, Groups)."""

_TYPES: Final = {int(t): t for t in RecordType}
# zlib.crc32(payload, seed) continues a CRC: the seed is the CRC of the type byte (the
# group bit included: it is checksummed as the type is).
_TYPE_SEED: Final = {
    int(t) | bit: zlib.crc32(bytes([t | bit])) for t in RecordType for bit in (0, CONTINUED)
}
_COMMAND_SEED: Final = _TYPE_SEED[RecordType.COMMAND]


class FsyncPolicy(enum.StrEnum):
    """When appended records reach the disk (docs/journal.md states each guarantee)."""

    ALWAYS = "always"
    """Every `append` writes its record and fsyncs before it returns."""
    BATCH = "batch"
    """Group commit: `append` buffers; `commit` writes the group and fsyncs once."""
    NONE = "none"
    """`commit` writes the group to the operating system, without fsync."""


class JournalError(Exception):
    """A journal cannot be used (base of the journal's own errors)."""


class JournalCorrupt(JournalError):
    """A record, segment or header fails a check somewhere a crash cannot explain."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"{path}: {reason} at byte offset {offset}; the journal is damaged before its "
            "tail and was not read further (restore the directory from a copy, or truncate "
            "the file at that offset if losing what follows is acceptable)"
        )


class JournalLocked(JournalError):
    """Another process holds the journal directory's lock."""


class RecordsPruned(JournalError):
    """Records were asked for that the journal no longer holds."""


class Record(NamedTuple):
    """One journal record."""

    ordinal: int
    rtype: RecordType
    payload: bytes
    continued: bool = False
    """The next record belongs to the same group (the same request)."""

    def commands(self) -> npt.NDArray[np.void]:
        """A COMMAND record's commands (a read-only view of the payload)."""
        return np.frombuffer(self.payload, COMMAND_DTYPE)

    def account(self) -> str:
        """An ACCOUNT record's name."""
        return self.payload.decode("utf-8")

    def mark(self) -> Any:
        """A MARK record's value, when it was appended as JSON (`JournalWriter.append_mark`)."""
        return json.loads(self.payload)


class CommandRun(NamedTuple):
    """Consecutive COMMAND records ``first_ordinal..last_ordinal`` of one segment, merged."""

    first_ordinal: int
    last_ordinal: int
    commands: npt.NDArray[np.void]
    """Every command of the run in journal order: a writable `COMMAND_DTYPE` array."""


class Segment(NamedTuple):
    """A segment file and the ordinal of its first record (from its name)."""

    first_ordinal: int
    path: Path


def segments(directory: str | os.PathLike[str]) -> list[Segment]:
    """The directory's segment files, oldest first (names only; nothing is read)."""
    d = Path(directory)
    found: list[Segment] = []
    with os.scandir(d) as it:
        for entry in it:
            m = _SEGMENT_RE.fullmatch(entry.name)
            if m:
                found.append(Segment(int(m.group(1)), d / entry.name))
    found.sort()
    return found


# -- reading -----------------------------------------------------------------------------------


class _Parsed(NamedTuple):
    """Where a segment's good records are, and where they end."""

    offsets: npt.NDArray[np.int64]  # each good record's header offset, in order
    end: int  # offset just past the last good record (0 when the header itself is torn)
    torn: str | None  # why the bytes from `end` on were rejected as a torn tail

    @property
    def records(self) -> int:
        return len(self.offsets)

    def layout(
        self, buf: bytes
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(types, payload offsets, payload lengths) of the good records."""
        offsets = self.offsets
        starts = offsets + RECORD_HEADER_SIZE
        lengths = np.empty_like(offsets)
        if len(offsets):
            lengths[:-1] = offsets[1:] - starts[:-1]
            lengths[-1] = self.end - starts[-1]
        types = np.frombuffer(buf, np.uint8)[offsets + (RECORD_HEADER_SIZE - 1)]
        return types, starts, lengths


def _segment_header(first: int) -> bytes:
    head = _SEG_HEAD.pack(SEGMENT_MAGIC, FORMAT_VERSION, SEGMENT_HEADER_SIZE, 0, first)
    return head + _SEG_CRC.pack(zlib.crc32(head))


def _record_problem(buf: bytes, mv: memoryview, pos: int) -> str | None:
    """Why the record at `pos` is not a good record, or None when it is."""
    size = len(buf)
    if pos + RECORD_HEADER_SIZE > size:
        return f"partial record header ({size - pos} of {RECORD_HEADER_SIZE} bytes)"
    n, crc, t = _REC.unpack_from(buf, pos)
    stop = pos + RECORD_HEADER_SIZE + n
    if n > MAX_PAYLOAD or stop > size:
        return f"record of {n} payload bytes runs past the end of the file ({size} bytes)"
    if zlib.crc32(mv[pos + RECORD_HEADER_SIZE - 1 : stop]) != crc:
        return "record checksum mismatch"
    return _type_problem(t, n)


def _type_problem(t: int, n: int) -> str | None:
    base = t & ~CONTINUED
    if base == RecordType.COMMAND:
        if n == 0 or n % COMMAND_SIZE:
            return f"COMMAND record of {n} bytes (not a positive multiple of {COMMAND_SIZE})"
    elif base == RecordType.ACCOUNT:
        if n == 0:
            return "empty ACCOUNT record"
    elif base != RecordType.MARK:
        return f"unknown record type {t}"
    return None


def _check_payload(rtype: int, payload: bytes) -> None:
    """Raise ValueError (UnicodeDecodeError for an ACCOUNT name) for a payload that a
    record of type `rtype` cannot carry."""
    if rtype not in _TYPES:
        raise ValueError(f"bad type {rtype!r}")
    problem = _type_problem(rtype, len(payload))
    if problem is not None:
        raise ValueError(problem)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    if rtype == RecordType.ACCOUNT:
        payload.decode("utf-8")


def _next_good_record(buf: bytes, start: int) -> int | None:
    """The offset of the first good record at or after `start`, trying every offset.

    Used only after a bad record, to tell a torn tail (nothing good after it) from damage
    in the middle. Candidate offsets are filtered with numpy (a known type byte, a length
    that fits) a chunk at a time; only candidates get a checksum.
    """
    size = len(buf)
    arr = np.frombuffer(buf, np.uint8)
    mv = memoryview(buf)
    lo = start
    while lo + RECORD_HEADER_SIZE <= size:
        hi = min(lo + _SCAN_CHUNK, size - RECORD_HEADER_SIZE + 1)
        pos = np.arange(lo, hi, dtype=np.int64)
        types = arr[pos + RECORD_HEADER_SIZE - 1] & ~np.uint8(CONTINUED)
        pos = pos[(types >= 1) & (types <= 3)]
        b = [arr[pos + k].astype(np.int64) for k in range(4)]
        n = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)
        pos = pos[pos + RECORD_HEADER_SIZE + n <= size]
        for p in pos.tolist():
            if _record_problem(buf, mv, p) is None:
                return int(p)
        lo = hi
    return None


_RUN_MIN: Final = 16
_RUN_MAX: Final = 4096
_HEADER_DTYPE: Final = np.dtype([("n", "<u4"), ("crc", "<u4"), ("t", "u1")])


def _command_run(buf: bytes, mv: memoryview, pos: int, n: int) -> int:
    """How many good COMMAND records of `n` payload bytes follow each other from `pos`
    (at most _RUN_MAX; 0 when fewer than _RUN_MIN have that shape).

    The headers are read as one strided numpy view; the checksums are still computed
    one record at a time, but in a list comprehension instead of the general loop."""
    stride = RECORD_HEADER_SIZE + n
    k = min(_RUN_MAX, (len(buf) - pos) // stride)
    if k < _RUN_MIN or not n or n % COMMAND_SIZE or n > MAX_PAYLOAD:
        return 0
    heads = np.ndarray((k,), dtype=_HEADER_DTYPE, buffer=buf, offset=pos, strides=(stride,))
    same = (heads["n"] == n) & (heads["t"] == RecordType.COMMAND)
    m = k if same.all() else int(same.argmin())
    if m < _RUN_MIN:
        return 0
    first = pos + RECORD_HEADER_SIZE - 1
    crc32 = zlib.crc32
    got = [crc32(mv[p : p + n + 1]) for p in range(first, first + m * stride, stride)]
    ok = np.array(got, dtype=np.uint32) == heads["crc"][:m]
    return m if ok.all() else int(ok.argmin())


def _parse(path: Path, buf: bytes, first: int, last: bool) -> _Parsed:
    """Check a segment's header and every record; find its torn tail if it is the last.

    Raises JournalCorrupt for a bad header, or for a bad record that is not a torn tail:
    one in a segment other than the last, or one followed by a good record.
    """
    size = len(buf)
    if size < SEGMENT_HEADER_SIZE or (
        last and buf.count(0, 0, SEGMENT_HEADER_SIZE) == SEGMENT_HEADER_SIZE
    ):
        # A crash while the segment was being created (its header is fsynced before any
        # record is written, so nothing can follow a torn header).
        if last and buf.count(0, SEGMENT_HEADER_SIZE) == max(0, size - SEGMENT_HEADER_SIZE):
            return _Parsed(np.empty(0, np.int64), 0, f"torn segment header ({size} bytes)")
        raise JournalCorrupt(path, 0, f"segment header cut short or zeroed ({size} bytes)")
    head = buf[: _SEG_HEAD.size]
    magic, version, hsize, _flags, hfirst = _SEG_HEAD.unpack(head)
    (hcrc,) = _SEG_CRC.unpack_from(buf, _SEG_HEAD.size)
    if magic != SEGMENT_MAGIC:
        raise JournalCorrupt(path, 0, f"not a journal segment (magic {magic!r})")
    if zlib.crc32(head) != hcrc:
        raise JournalCorrupt(path, 0, "segment header checksum mismatch")
    if version != FORMAT_VERSION or hsize != SEGMENT_HEADER_SIZE:
        raise JournalCorrupt(path, 0, f"unsupported segment format {version} (size {hsize})")
    if hfirst != first:
        raise JournalCorrupt(path, 0, f"header says first ordinal {hfirst}, name says {first}")

    chunks: list[npt.NDArray[np.int64]] = []
    offsets: list[int] = []
    keep = offsets.append
    unpack, crc32, mv = _REC.unpack_from, zlib.crc32, memoryview(buf)
    pos = SEGMENT_HEADER_SIZE
    hs = RECORD_HEADER_SIZE
    problem: str | None = None
    prev_n = -1
    slow = 0  # records to take one at a time before trying a run again
    # The hot loop of recovery: one unpack, one slice and one CRC per record, or, for a
    # run of same-sized COMMAND records (the engine's usual pattern), `_command_run`.
    while pos < size:
        if pos + hs > size:
            problem = _record_problem(buf, mv, pos)
            break
        n, crc, t = unpack(buf, pos)
        if n == prev_n and not slow:
            run = _command_run(buf, mv, pos, n)
            if run >= _RUN_MIN:
                if offsets:
                    chunks.append(np.array(offsets, dtype=np.int64))
                    offsets.clear()
                chunks.append(np.arange(pos, pos + run * (hs + n), hs + n, dtype=np.int64))
                pos += run * (hs + n)
                continue
            slow = 64
        elif slow:
            slow -= 1
        prev_n = n
        stop = pos + hs + n
        if stop > size or crc32(mv[pos + hs - 1 : stop]) != crc:
            problem = _record_problem(buf, mv, pos)
            break
        if t != 1 or n % COMMAND_SIZE or not n:
            problem = _type_problem(t, n)
            if problem is not None:
                break
        keep(pos)
        pos = stop
    chunks.append(np.array(offsets, dtype=np.int64))
    found = np.concatenate(chunks)
    if problem is None:
        parsed = _Parsed(found, pos, None)
        return _unclosed_group(buf, parsed) if last else parsed
    if buf.count(0, pos) == size - pos:
        # The writer's reserved space after its last record (a crash before the segment
        # was cut to length). In the last segment the writer cuts it on re-opening; in an
        # earlier one the next segment's first ordinal proves no record was lost there.
        if not last:
            return _Parsed(found, pos, None)
        return _unclosed_group(buf, _Parsed(found, pos, _UNWRITTEN))
    if not last:
        raise JournalCorrupt(path, pos, problem + " (not in the last segment)")
    after = _next_good_record(buf, pos + 1)
    if after is not None:
        raise JournalCorrupt(
            path, pos, f"{problem}, followed by a good record at byte offset {after}"
        )
    return _unclosed_group(buf, _Parsed(found, pos, problem))


def _unclosed_group(buf: bytes, parsed: _Parsed) -> _Parsed:
    """The last segment's records without a group the crash left unclosed at their end.

    Its records (the trailing ones with the `CONTINUED` bit) are good, but the request
    they began was never acknowledged (the writer commits nothing of an open group, and
    the acknowledgement follows the commit): they join the torn tail. Only the tail is
    looked at, so this costs nothing per record."""
    offsets = parsed.offsets
    k = len(offsets)
    while k and buf[int(offsets[k - 1]) + RECORD_HEADER_SIZE - 1] & CONTINUED:
        k -= 1
    if k == len(offsets):
        return parsed
    why = f"an unclosed group of {len(offsets) - k} record(s): a request cut short"
    if parsed.torn is not None and parsed.torn != _UNWRITTEN:
        why += f", then {parsed.torn}"
    return _Parsed(offsets[:k], int(offsets[k]), why)


def _read_segments(
    directory: str | os.PathLike[str], from_ordinal: int
) -> Iterator[tuple[Segment, bytes, _Parsed]]:
    """Each segment that may hold records >= from_ordinal, parsed, checking continuity."""
    segs = segments(directory)
    if not segs:
        return
    if from_ordinal > 0 and from_ordinal < segs[0].first_ordinal:
        raise RecordsPruned(
            f"{directory}: records from {from_ordinal} were asked for, but the journal "
            f"starts at {segs[0].first_ordinal} (older segments were pruned)"
        )
    i = 0
    while i + 1 < len(segs) and segs[i + 1].first_ordinal <= from_ordinal:
        i += 1
    expected: Segment | None = None
    for k in range(i, len(segs)):
        seg = segs[k]
        if expected is not None and seg.first_ordinal != expected.first_ordinal:
            raise JournalCorrupt(
                seg.path,
                0,
                f"segment starts at ordinal {seg.first_ordinal}, but {expected.path.name} "
                f"ends at {expected.first_ordinal - 1} (a segment is missing)",
            )
        try:
            buf = seg.path.read_bytes()
        except FileNotFoundError:
            raise RecordsPruned(f"{seg.path} was pruned while it was being read") from None
        parsed = _parse(seg.path, buf, seg.first_ordinal, last=k == len(segs) - 1)
        yield seg, buf, parsed
        expected = Segment(seg.first_ordinal + parsed.records, seg.path)


def read(directory: str | os.PathLike[str], from_ordinal: int = 0) -> Iterator[Record]:
    """Every record with ordinal >= `from_ordinal`, in order, each checksum verified.

    `from_ordinal` 0 means from the oldest record still kept; a positive ordinal older
    than that raises `RecordsPruned`. Reading stops before a torn tail; damage anywhere
    else raises `JournalCorrupt`. Safe while a writer appends (it sees what was written).
    """
    for seg, buf, parsed in _read_segments(directory, from_ordinal):
        skip = max(0, from_ordinal - seg.first_ordinal)
        types, starts, lengths = parsed.layout(buf)
        ordinal = seg.first_ordinal + skip
        for t, s, n in zip(
            types[skip:].tolist(), starts[skip:].tolist(), lengths[skip:].tolist(), strict=True
        ):
            yield Record(ordinal, _TYPES[t & ~CONTINUED], buf[s : s + n], t >= CONTINUED)
            ordinal += 1


def read_runs(
    directory: str | os.PathLike[str], from_ordinal: int = 0
) -> Iterator[Record | CommandRun]:
    """The records of `read`, for replay: consecutive COMMAND records (within a segment)
    come merged as one `CommandRun`; ACCOUNT and MARK records come as `Record`s between
    the runs, in journal order, so the engine applies each before the commands after it.
    """
    for seg, buf, parsed in _read_segments(directory, from_ordinal):
        skip = max(0, from_ordinal - seg.first_ordinal)
        count = parsed.records
        if skip >= count:
            continue
        flagged, starts, lengths = parsed.layout(buf)
        types = flagged & ~np.uint8(CONTINUED)  # a group's COMMAND records join runs too
        # Each non-COMMAND record ends a run of COMMAND records (possibly empty).
        i = skip
        for j in [*(np.flatnonzero(types[skip:] != RecordType.COMMAND) + skip).tolist(), count]:
            if j > i:
                yield CommandRun(
                    seg.first_ordinal + i,
                    seg.first_ordinal + j - 1,
                    _gather(buf, starts[i:j], lengths[i:j]),
                )
            if j < count:
                s, n = int(starts[j]), int(lengths[j])
                yield Record(
                    seg.first_ordinal + j,
                    _TYPES[int(types[j])],
                    buf[s : s + n],
                    bool(flagged[j] & CONTINUED),
                )
            i = j + 1


def _gather(
    buf: bytes, starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.void]:
    """The COMMAND payloads at `starts` as one new COMMAND_DTYPE array, in one numpy
    gather: the buffer is viewed as a 56-byte item at every byte offset and indexed by
    each command's offset."""
    counts = lengths // COMMAND_SIZE
    total = int(counts.sum())
    if total == len(starts):
        offsets = starts
    else:  # records of several commands: the offset of every command in each
        before = np.cumsum(counts) - counts
        offsets = np.repeat(starts - COMMAND_SIZE * before, counts)
        offsets += COMMAND_SIZE * np.arange(total, dtype=np.int64)
    items: npt.NDArray[np.void] = np.ndarray(
        (len(buf) - COMMAND_SIZE + 1,), dtype=np.dtype(f"V{COMMAND_SIZE}"), buffer=buf, strides=(1,)
    )
    return items[offsets].view(COMMAND_DTYPE)


# -- snapshots ---------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def snapshots(directory: str | os.PathLike[str]) -> list[int]:
    """The ordinals of the directory's snapshot files, oldest first (names only)."""
    out: list[int] = []
    with os.scandir(directory) as it:
        for entry in it:
            m = _SNAPSHOT_RE.fullmatch(entry.name)
            if m:
                out.append(int(m.group(1)))
    return sorted(out)


def _snapshot_path(directory: Path, ordinal: int) -> Path:
    return directory / f"snapshot-{ordinal:020d}.tps"


def write_snapshot(directory: str | os.PathLike[str], ordinal: int, state: bytes) -> Path:
    """Write `state` as the snapshot at `ordinal` (it covers records 1..ordinal), atomically.

    The bytes go to a hidden temporary file that is fsynced, renamed into place and the
    directory fsynced: a crash leaves either the whole snapshot or none (a leftover
    temporary file is ignored by readers and removed by `prune_snapshots`).
    """
    d = Path(directory)
    if ordinal < 0:
        raise ValueError(f"snapshot ordinal must be >= 0, not {ordinal}")
    view = memoryview(state).cast("B")
    head = _SNAP_HEAD.pack(
        SNAPSHOT_MAGIC,
        FORMAT_VERSION,
        SNAPSHOT_HEADER_SIZE,
        0,
        ordinal,
        len(view),
        zlib.crc32(view),
    )
    final = _snapshot_path(d, ordinal)
    tmp = d / f".{final.name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, head + _SNAP_CRC.pack(zlib.crc32(head)))
        _write_all(fd, view)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(d)
    return final


def _snapshot_header(ordinal: int, data: bytes) -> tuple[int, int] | str:
    """(state length, state CRC) from a snapshot file's first bytes, or what is wrong."""
    if len(data) < SNAPSHOT_HEADER_SIZE:
        return f"header cut short ({len(data)} bytes)"
    head = data[: _SNAP_HEAD.size]
    magic, version, hsize, _flags, hordinal, length, scrc = _SNAP_HEAD.unpack(head)
    (hcrc,) = _SNAP_CRC.unpack_from(data, _SNAP_HEAD.size)
    if magic != SNAPSHOT_MAGIC:
        return f"not a snapshot (magic {magic!r})"
    if zlib.crc32(head) != hcrc:
        return "header checksum mismatch"
    if version != FORMAT_VERSION or hsize != SNAPSHOT_HEADER_SIZE:
        return f"unsupported snapshot format {version} (size {hsize})"
    if hordinal != ordinal:
        return f"header says ordinal {hordinal}, name says {ordinal}"
    return length, scrc


def _load_snapshot(path: Path, ordinal: int) -> bytes | str:
    """A snapshot's state, or what is wrong with the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read it ({exc})"
    header = _snapshot_header(ordinal, data)
    if isinstance(header, str):
        return header
    length, scrc = header
    if len(data) != SNAPSHOT_HEADER_SIZE + length:
        return f"{len(data) - SNAPSHOT_HEADER_SIZE} state bytes, header says {length}"
    state = data[SNAPSHOT_HEADER_SIZE:]
    if zlib.crc32(state) != scrc:
        return "state checksum mismatch"
    return state


def latest_snapshot(directory: str | os.PathLike[str]) -> tuple[int, bytes] | None:
    """(ordinal, state) of the newest valid snapshot, or None when there is none.

    A newer snapshot that fails its checks is skipped with a warning in the log.
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    for ordinal in reversed(snapshots(d)):
        path = _snapshot_path(d, ordinal)
        state = _load_snapshot(path, ordinal)
        if isinstance(state, bytes):
            return ordinal, state
        log.warning("skipping snapshot %s: %s; trying an older one", path, state)
    return None


def prune_snapshots(directory: str | os.PathLike[str], keep: int = 2) -> int | None:
    """Delete all but the newest `keep` snapshot files, and leftover temporary files.

    Returns the oldest kept snapshot's ordinal (None when there is none): journal records
    up to it are no longer needed, so ``writer.prune(that + 1)`` may follow. Keep two so
    a damaged newest snapshot still has a fallback with its journal records.
    """
    if keep < 1:
        raise ValueError("keep at least one snapshot")
    d = Path(directory)
    ordinals = snapshots(d)
    kept = ordinals[-keep:]
    for ordinal in ordinals[:-keep]:
        _snapshot_path(d, ordinal).unlink(missing_ok=True)
    for leftover in d.glob(".snapshot-*.tps.tmp"):
        leftover.unlink(missing_ok=True)
    return kept[0] if kept else None


class Recovery(NamedTuple):
    """What `recover` found: the snapshot to load, then the journal records to replay."""

    snapshot_ordinal: int
    """The snapshot's ordinal (records up to it are in `state`); 0 without a snapshot."""
    state: bytes | None
    runs: Iterator[Record | CommandRun]
    """`read_runs` from ``snapshot_ordinal + 1``."""


def recover(directory: str | os.PathLike[str]) -> Recovery:
    """The newest valid snapshot and the journal records after it.

    Raises `RecordsPruned` at once when the journal no longer reaches back to that
    snapshot (a fallback to an older snapshot whose records were already pruned), and
    `JournalCorrupt` while iterating `runs` if the journal is damaged.
    """
    snap = latest_snapshot(directory)
    ordinal, state = snap if snap is not None else (0, None)
    if Path(directory).is_dir():
        segs = segments(directory)
        if segs and segs[0].first_ordinal > ordinal + 1:
            raise RecordsPruned(
                f"{directory}: the newest valid snapshot covers records up to {ordinal}, "
                f"but the journal starts at {segs[0].first_ordinal}"
            )
        runs = read_runs(directory, ordinal + 1)
    else:
        runs = iter(())
    return Recovery(ordinal, state, runs)


# -- writing -----------------------------------------------------------------------------------


def _copy_records(m: mmap.mmap, pos: int, parts: tuple[bytes, ...]) -> None:
    """Copy `parts` into the segment's map from `pos`, in order, one copy each
    (`JournalWriter._write`). A module function, looked up at each call: the crash
    test's hook (tests/engine/crashhook) replaces it to stop part-way through a commit,
    as a kill -9 inside the copy would; the writer, compiled, has no methods to patch."""
    for part in parts:
        stop = pos + len(part)
        m[pos:stop] = part
        pos = stop


class JournalWriter:
    """Appends records to a journal directory (created if absent) under one `FsyncPolicy`.

    Opening repairs what a crash left: a torn tail of the last segment is truncated (and
    logged); a torn segment header is rewritten. Damage elsewhere in the last segment
    raises `JournalCorrupt`. Not thread-safe: the engine's single loop owns it.

    - ``fsync``: the policy; ``group_commit_us``: with `batch` and `none`, the longest a
      record may wait in the buffer: an `append` finding the oldest pending record older
      than that commits (the engine also commits after each group of commands it acks,
      and may use `commit_deadline` as its poll timeout). ``max_pending_bytes`` bounds
      the buffer the same way.
    - ``max_segment_bytes``: a commit that leaves the segment larger rotates.
    - ``on_fsync``: called with each fsync's duration in seconds (e.g. a Prometheus
      histogram's ``observe``); `fsync_durations` keeps the most recent ones too.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        fsync: FsyncPolicy | str,
        group_commit_us: int = 1000,
        *,
        max_pending_bytes: int = 4 << 20,
        max_segment_bytes: int = 256 << 20,
        on_fsync: Callable[[float], None] | None = None,
        fsync_history: int = 1024,
    ) -> None:
        self.directory = Path(directory)
        self.policy = FsyncPolicy(fsync)
        self._always = self.policy is FsyncPolicy.ALWAYS
        if group_commit_us < 0:
            raise ValueError("group_commit_us must be >= 0")
        self.group_commit_ns = group_commit_us * 1000
        self.max_pending_bytes = max_pending_bytes
        self.max_segment_bytes = max_segment_bytes
        self.on_fsync = on_fsync
        self.fsync_durations: deque[float] = deque(maxlen=fsync_history)
        """The most recent fsync durations, in seconds."""
        self.fsync_count = 0
        self.bytes_written = 0
        # What recovery would replay one by one, appended by this writer: commands (each,
        # not the records they are merged into) and every other record; the engine's
        # `snapshot_every` counts these
        self.entries = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._run: list[bytes] = []  # commands of the open COMMAND record (append_command)
        self._run_limit = max(1, max_pending_bytes // COMMAND_SIZE)
        self._group = 0  # open begin_group calls: records get the CONTINUED bit
        self._group_first = 0  # the ordinal of the open group's first record
        self._group_due = False  # a bound was reached inside the group: commit at its end
        self._pending_since = 0
        self._dirty = False  # written since the last fsync
        self._failed: BaseException | None = None
        self._fd = -1
        self._map: mmap.mmap | None = None  # the segment's file, mapped (see _grow)
        self._mapped = 0  # bytes of the file mapped: the records, then reserved zeros
        page = mmap.PAGESIZE
        self._grow_step = min(_GROW_MAX, -(-max(max_segment_bytes, 1) // page) * page)
        self._lock_fd = -1
        self._open()

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        fsync: FsyncPolicy | str,
        group_commit_us: int = 1000,
        **options: Any,
    ) -> JournalWriter:
        """The same as the constructor (which always opens or creates, repairing a torn
        tail): a name for the call site that re-opens a journal after a crash."""
        return cls(directory, fsync, group_commit_us, **options)

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> None:
        d = self.directory
        if not d.is_dir():
            d.mkdir(parents=True)
            _fsync_dir(d.parent)
        self._lock_fd = os.open(d / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise JournalLocked(f"{d} is locked by another journal writer") from None
        try:
            self._open_locked()
        except BaseException:
            self.close()
            raise

    def _open_locked(self) -> None:
        segs = segments(self.directory)
        if not segs:
            self._new_segment(1)
        else:
            first, path = segs[-1]
            buf = path.read_bytes()
            parsed = _parse(path, buf, first, last=True)
            if parsed.end == 0:
                log.warning("journal: %s has a torn header (%s): rewriting it", path, parsed.torn)
                path.unlink()
                self._new_segment(first)
            else:
                if parsed.torn is not None:
                    log.log(
                        logging.INFO if parsed.torn == _UNWRITTEN else logging.WARNING,
                        "journal: truncating %s at byte offset %d after record %d: cut %d "
                        "bytes of a torn tail (%s)",
                        path,
                        parsed.end,
                        first + parsed.records - 1,
                        len(buf) - parsed.end,
                        parsed.torn,
                    )
                    os.truncate(path, parsed.end)
                self._attach(first, path, parsed.end, first + parsed.records)
                if parsed.torn is not None:
                    self._sync()
        # A snapshot never covers records the journal lacks (docs/journal.md: a journal
        # with policy `none` may lose its tail on a power loss while a snapshot survives).
        snap = self._newest_snapshot_ordinal()
        if snap >= self._next:
            log.error(
                "journal: it ends at record %d but snapshot %d covers records up to %d; "
                "records %d..%d exist only in the snapshot. New records start at %d.",
                self._next - 1,
                snap,
                snap,
                self._next,
                snap,
                snap + 1,
            )
            os.close(self._fd)
            self._fd = -1
            if self._next == self._segment_first:  # an empty segment: replace it
                self._segment_path.unlink()
            self._new_segment(snap + 1)

    def _newest_snapshot_ordinal(self) -> int:
        """The ordinal of the newest snapshot whose header checks out (0 if none)."""
        for ordinal in reversed(snapshots(self.directory)):
            path = _snapshot_path(self.directory, ordinal)
            try:
                with path.open("rb") as f:
                    head = f.read(SNAPSHOT_HEADER_SIZE)
            except OSError:
                continue
            if not isinstance(_snapshot_header(ordinal, head), str):
                return ordinal
        return 0

    def _attach(self, first: int, path: Path, size: int, next_ordinal: int) -> None:
        self._fd = os.open(path, os.O_RDWR)  # read too: a shared map needs it
        self._segment_first = first
        self._segment_path = path
        self._segment_size = size
        self._next = next_ordinal
        self._committed = next_ordinal - 1

    def _new_segment(self, first: int) -> None:
        """Create the segment starting at `first`, its header fsynced, and append to it."""
        path = self.directory / f"journal-{first:020d}.tpj"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, _segment_header(first))
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.directory)
        self._attach(first, path, SEGMENT_HEADER_SIZE, first)

    # -- state ---------------------------------------------------------------------------------

    @property
    def next_ordinal(self) -> int:
        """The ordinal the next appended record gets."""
        return self._next

    @property
    def last_ordinal(self) -> int:
        """The last appended record's ordinal (0 before the first)."""
        return self._next - 1

    @property
    def committed_ordinal(self) -> int:
        """The last record covered by the policy's guarantee: on disk (`always`, `batch`)
        or written to the operating system (`none`). Acknowledge up to here."""
        return self._committed

    @property
    def pending_records(self) -> int:
        """Records appended but not yet committed."""
        return self._next - 1 - self._committed

    @property
    def segment_path(self) -> Path:
        """The segment being appended to."""
        return self._segment_path

    def commit_deadline(self) -> float | None:
        """When (``time.monotonic()`` seconds) pending records are due for a commit, or
        None when nothing is pending."""
        if not self._pending:
            return None
        return (self._pending_since + self.group_commit_ns) / 1e9

    # -- appending -----------------------------------------------------------------------------

    def _check(self) -> None:
        if self._fd < 0:
            raise JournalError(f"{self.directory}: the journal writer is closed")
        if self._failed is not None:
            raise JournalError(
                f"{self.directory}: an earlier write or fsync failed ({self._failed}); "
                "the journal takes no more records: restart the engine to recover"
            ) from self._failed

    def append(self, rtype: RecordType, payload: bytes | bytearray | memoryview) -> int:
        """Append one record; return its ordinal.

        With `always` it is on disk when this returns; with `batch` and `none` it waits
        for `commit` (or the time and size bounds). ``payload``: any bytes-like object.
        """
        if self._failed is not None or self._fd < 0:
            self._check()
        if self._run:
            self._close_run()
        if rtype != 1:  # commands are counted as they come (append_command(s))
            self.entries += 1
        if type(payload) is not bytes:
            payload = bytes(payload)  # buffered records must not change under us
        n = len(payload)
        seed = _TYPE_SEED.get(rtype)
        if seed is None or rtype != 1 or not n or n % COMMAND_SIZE or n > MAX_PAYLOAD:
            _check_payload(rtype, payload)  # anything but a well-formed COMMAND
            seed = _TYPE_SEED[rtype]
        t: int = rtype
        if self._group:
            t |= CONTINUED  # end_group takes it off the group's last record
            seed = _TYPE_SEED[t]
        header = _REC.pack(n, zlib.crc32(payload, seed), t)
        ordinal = self._next
        self._next = ordinal + 1
        if self._always and not self._group:
            self._write(header + payload)
            self._sync()
            self._committed = ordinal
            if self._segment_size >= self.max_segment_bytes:
                self.rotate()
            return ordinal
        pending = self._pending
        now = time.monotonic_ns()
        if not pending:
            self._pending_since = now
        pending.append(header)
        pending.append(payload)
        self._pending_bytes += RECORD_HEADER_SIZE + n
        if (
            self._pending_bytes >= self.max_pending_bytes
            or now - self._pending_since >= self.group_commit_ns
        ):
            if self._group:  # a group is committed whole: at its end
                self._group_due = True
            else:
                self.commit()
        return ordinal

    def append_commands(self, commands: npt.NDArray[np.void]) -> int:
        """Append a COMMAND record holding `commands` (a non-empty 1-d `COMMAND_DTYPE`
        array); return its ordinal."""
        if commands.dtype != COMMAND_DTYPE or commands.ndim != 1:
            raise TypeError("commands must be a 1-d numpy array of COMMAND_DTYPE")
        self.entries += len(commands)
        return self.append(RecordType.COMMAND, commands.tobytes())

    def append_command(self, command: bytes) -> None:
        """Add one command (`COMMAND_SIZE` bytes, one `COMMAND_DTYPE` struct) to the open
        COMMAND record: consecutive commands become one record when anything else is
        appended, on `commit` and `sync`, or at `max_pending_bytes`; until then they are
        not counted in `last_ordinal` and the like. With `always` each command is its own
        record, on disk when this returns.

        One record per turn of the engine rather than per command: a 9-byte header and a
        checksum call per turn, and recovery reads runs of commands, not records."""
        self.entries += 1
        if self._always:
            self.append(RecordType.COMMAND, command)
            return
        if type(command) is not bytes or len(command) != COMMAND_SIZE:
            raise ValueError(f"a command is {COMMAND_SIZE} bytes of bytes")
        run = self._run
        run.append(command)
        if len(run) >= self._run_limit:
            self._close_run()

    def _close_run(self) -> None:
        payload = b"".join(self._run)
        self._run.clear()
        self.append(RecordType.COMMAND, payload)

    def begin_group(self) -> None:
        """Start the records of one request: those appended until `end_group` stand or
        fall together. A crash that leaves the group unclosed (its last record not on
        disk) makes every record of it part of the torn tail: readers stop before the
        group and re-opening cuts it (docs/journal.md, Groups).

        Nothing of an open group is committed: the bounds wait for `end_group`, `always`
        buffers too, and `commit` (so `sync`, `rotate`, `snapshot`, `close`) refuses. A
        `begin_group` inside a group joins it (the outer `end_group` closes it). The
        open COMMAND record is closed first: its commands are earlier requests'."""
        if self._group:
            self._group += 1
            return
        if self._run:
            self._close_run()
        self._group = 1
        self._group_first = self._next

    def end_group(self) -> None:
        """Close the group `begin_group` opened: its last record (already appended, or
        the open COMMAND record, which later commands of other requests may still join)
        is the one without the `CONTINUED` bit. A commit that a bound called for inside
        the group happens now (`always` commits the group, fsynced)."""
        if not self._group:
            raise JournalError("end_group without begin_group")
        self._group -= 1
        if self._group:
            return
        if not self._run and self._next > self._group_first:
            # The group's last record is the last one pending (nothing of a group is
            # written before it closes): its header again, without the bit.
            n, _, t = _REC.unpack(self._pending[-2])
            t &= ~CONTINUED
            self._pending[-2] = _REC.pack(n, zlib.crc32(self._pending[-1], _TYPE_SEED[t]), t)
        if self._group_due or (self._always and self._pending):
            self._group_due = False
            self.commit()

    def append_account(self, name: str) -> int:
        """Append an ACCOUNT record for `name`; return its ordinal."""
        return self.append(RecordType.ACCOUNT, name.encode("utf-8"))

    def append_mark(self, value: Mapping[str, Any]) -> int:
        """Append a MARK record holding `value` as compact JSON; return its ordinal."""
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return self.append(RecordType.MARK, data)

    def commit(self) -> int:
        """Write the pending records as one group (fsynced with `batch`); return
        `committed_ordinal`. Costs nothing when nothing is pending (always, with `always`).
        Raises `JournalError` inside a group (`begin_group`)."""
        if self._group:
            raise JournalError(
                f"{self.directory}: commit inside a group: a request's records are "
                "committed whole, after end_group"
            )
        run = self._run
        if run and not self._pending and self._failed is None and self._fd >= 0:
            # The engine's usual turn: its commands alone, one record in one write
            # (what `_close_run` and the general path below write, without the
            # pending list's round trip: a quarter of a one-request commit).
            payload = run[0] if len(run) == 1 else b"".join(run)
            run.clear()
            n = len(payload)
            if n <= MAX_PAYLOAD:
                self._next += 1
                self._write(_REC.pack(n, zlib.crc32(payload, _COMMAND_SEED), 1) + payload)
                if self.policy is FsyncPolicy.BATCH:
                    self._sync()
                self._committed = self._next - 1
                if self._segment_size >= self.max_segment_bytes:
                    self.rotate()
                return self._committed
            self.append(RecordType.COMMAND, payload)
        if run:
            self._close_run()
        if not self._pending:
            return self._committed
        self._check()
        parts = self._pending
        self._pending = []
        self._pending_bytes = 0
        self._write(*parts)
        if self.policy is not FsyncPolicy.NONE:  # `always`: a group, written at its end
            self._sync()
        self._committed = self._next - 1
        if self._segment_size >= self.max_segment_bytes:
            self.rotate()
        return self._committed

    def sync(self) -> int:
        """Commit, then fsync whatever is not yet on disk, whatever the policy."""
        self.commit()
        if self._dirty:
            self._sync()
        return self._committed

    def _write(self, *parts: bytes) -> None:
        """Copy `parts` after the segment's records, in order, one copy each.

        One copy per record at most, never one for several: a copy may store its bytes
        in any order (memcpy does), so a kill inside it leaves that record torn, but a
        record after it could otherwise be whole, and a torn record followed by a good
        one reads as damage, not as a torn tail."""
        pos = self._segment_size
        end = pos + sum(map(len, parts))
        try:
            if end > self._mapped:
                self._grow(end)
            m = self._map
            assert m is not None
            _copy_records(m, pos, parts)
        except OSError as exc:
            self._failed = exc
            raise JournalError(f"{self._segment_path}: write failed: {exc}") from exc
        self.bytes_written += end - self._segment_size
        self._segment_size = end
        self._dirty = True

    def _grow(self, end: int) -> None:
        """Reserve the file's blocks up to past `end` and map them. Reserved, not sparse:
        a full disk fails here, as an OSError, not later as a SIGBUS on a store into the
        map."""
        page = mmap.PAGESIZE
        size = -(-(end + self._grow_step) // page) * page
        os.posix_fallocate(self._fd, 0, size)
        if self._map is None:
            self._map = mmap.mmap(self._fd, size)
        else:
            self._map.resize(size)
        self._mapped = size

    def _cut(self) -> None:
        """Unmap the segment and cut its file to its records (the reserved zeros go)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._mapped:
            os.ftruncate(self._fd, self._segment_size)
            self._mapped = 0

    def _sync(self) -> None:
        t0 = time.perf_counter()
        try:
            os.fsync(self._fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing
            # written since the last good fsync can be trusted, so stop taking records.
            self._failed = exc
            raise JournalError(f"{self._segment_path}: fsync failed: {exc}") from exc
        dt = time.perf_counter() - t0
        self._dirty = False
        self.fsync_count += 1
        self.fsync_durations.append(dt)
        if self.on_fsync is not None:
            self.on_fsync(dt)

    # -- segments and snapshots ----------------------------------------------------------------

    def rotate(self) -> Path:
        """Commit, fsync (whatever the policy) and start a new segment at `next_ordinal`;
        return its path. Nothing happens when the current segment has no records."""
        self.sync()
        if self._next == self._segment_first:
            return self._segment_path
        self._cut()
        os.close(self._fd)
        self._fd = -1
        self._new_segment(self._next)
        return self._segment_path

    def prune(self, before_ordinal: int) -> list[Path]:
        """Delete the segments whose records all have ordinals < `before_ordinal` (never
        the one being appended to); return the deleted paths."""
        segs = segments(self.directory)
        removed = []
        for k in range(len(segs) - 1):
            if segs[k + 1].first_ordinal <= before_ordinal and segs[k].path != self._segment_path:
                segs[k].path.unlink()
                removed.append(segs[k].path)
        if removed:
            _fsync_dir(self.directory)
        return removed

    def snapshot(self, state: bytes, keep: int | None = 2) -> int:
        """Snapshot the engine's state after every record appended so far.

        In order: commit and fsync the journal (so the journal is never behind the
        snapshot), `write_snapshot` at `last_ordinal`, `rotate`; then, unless `keep` is
        None, `prune_snapshots(keep)` and, once `keep` snapshots exist, prune the segments
        the oldest of them covers: every kept snapshot has all the records after it, so a
        damaged newest snapshot falls back to an older one. Returns the snapshot's ordinal.
        """
        self._check()
        self.sync()
        ordinal = self._next - 1
        write_snapshot(self.directory, ordinal, state)
        self.rotate()
        if keep is not None:
            oldest = prune_snapshots(self.directory, keep)
            if oldest is not None and len(snapshots(self.directory)) >= keep:
                self.prune(oldest + 1)
        return ordinal

    # -- closing -------------------------------------------------------------------------------

    def abandon(self) -> None:
        """Close as a crash would have: drop what is pending (appended, not committed:
        no request of it was acknowledged), keep what is committed (fsynced now), release
        the lock. For a writer whose caller failed mid-request: committing its records
        could journal a command the caller could not finish (docs/journal.md)."""
        self._run.clear()
        self._pending = []
        self._pending_bytes = 0
        self._group = 0
        self._group_due = False
        self._next = self._committed + 1
        self.close()

    def close(self) -> None:
        """Commit and fsync what is pending (unless a write failed), release the lock."""
        try:
            if self._fd >= 0 and self._failed is None:
                self.sync()
        finally:
            if self._fd >= 0:
                try:
                    self._cut()
                finally:
                    os.close(self._fd)
                    self._fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
