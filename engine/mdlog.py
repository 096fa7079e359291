"""The engine's published market data on disk, tops of book and their L2 deltas, so
`ReplayMarketData` can serve them by (symbol, md_seq) range, and so a symbol's `md_seq`
never repeats after a restart.

Market data is not in the sequenced event stream (a top per symbol per turn would add
events to every order's path and to recovery's count); it has its own numbering per
symbol, `md_seq`. A consumer that missed tops or deltas (a recorder down, a slow
subscriber whose messages ZeroMQ dropped) fetches them from here, as it fetches events
from the event log.
A `BookDelta` has its top's md_seq and is logged right after it, in the same block (the
top's `has_delta` says it exists): the two are kept or lost together, and the delta
needs no index entry of its own, only a bit in its top's (it is the next record).

- **Bounded**: two files, `md.tpm` and `md.old.tpm`, each at most half of `max_bytes`,
  so together at most `max_bytes`, a kill -9 included. When a top (with the
  reservation and block header it may bring) would take `md.tpm` past its half, it
  becomes `md.old.tpm` first (the previous old one is deleted) and the top starts a new
  `md.tpm`; when its delta would, the top is taken back out of the buffer and the two
  start the new file together (a delta's size is not known when its top is logged).
  Each file keeps room for the records a clean `close` writes (a block of one
  reservation per symbol). So the log holds the latest `max_bytes / 2` (less a top and
  its delta) to `max_bytes` of market data; older ranges are answered as no longer
  kept.
- **Buffered**, like the event log: records reach the file with the next `flush` (due
  every `FLUSH_SECONDS` or at `FLUSH_BYTES`, done before the next top is buffered; when
  the loop is idle; before a replay; on close), so a top and its delta are always in
  one block. A kill -9 loses the buffer: the market data of its last few milliseconds
  is not replayable (the journal does not hold it: it depends on how requests were
  batched into turns).
- **Reservations** keep `md_seq` from repeating: before a symbol's top goes past the
  number reserved for it, a record reserving the next `RESERVE` numbers is written (not
  buffered: it reaches the OS before the top is published). A restart resumes each
  symbol after its last reservation, so after a kill -9 the numbers jump (a gap that
  `ReplayMarketData` accounts for as not kept) but never name a second, different top.
  A clean `close` writes each symbol's real last md_seq instead, so a clean restart
  goes on without a jump.

The file is a sequence of blocks, one per `flush`: u32 length, u32 crc32 of the
records that follow. A record: u64 md_seq, u16 symbol length, u32 frame length, the
symbol, the frame (`wire.encode(top)` or `wire.encode(delta)`); a frame length of 0 is a
reservation up to md_seq. A delta's record is the one right after its top's, with the
same md_seq, told from a top's by its frame's tag (every wire frame is the version
byte, a fixarray header, then the tag); the header is as it was before deltas were
logged, so an engine from then reading this log skips them (it ignores a record that
does not raise its symbol's md_seq) rather than misreading a new header. One checksum
per block, not per record: zlib's crc32 costs ~0.5 µs a call on a 170-byte record here
and 0.4 ns a byte on a block. On open, a block that is torn or fails its checksum ends
the file (it is cut).
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

import msgspec

from tickplane.core import wire
from tickplane.core.events import BookDelta, MarketData, TopOfBook

__all__ = ["MarketDataLog"]

log = logging.getLogger(__name__)

_BLOCK = struct.Struct("<II")  # length, crc32 of the records
_HEAD = struct.Struct("<QHI")  # a record's md_seq, symbol length, frame length
_pack_head = _HEAD.pack
# their sizes as C constants (mdlog.pxd): `append` adds them up for every top
_BLOCK_SIZE = _BLOCK.size
_HEAD_SIZE = _HEAD.size
FILE_NAME = "md.tpm"
OLD_FILE_NAME = "md.old.tpm"
FLUSH_SECONDS = 0.01
FLUSH_BYTES = 1 << 20
RESERVE = 4096
_OFFSET_BITS = 40  # an index entry: generation << 40 | offset in that generation's file
_HAS_DELTA = 1 << 39  # ... | this bit when the top's delta is the next record
_OFFSET = _HAS_DELTA - 1  # the offset's bits (a file stays far below 512 GiB)
_SPAN = 1 << 20  # a replay reads records this close together in one pread
# A delta's frame: the version byte, a fixarray header (< 16 fields), then this tag.
_DELTA_TAG = msgspec.msgpack.encode(BookDelta.__struct_config__.tag)
_TAG_AT = 2


def _record(symbol: bytes, md_seq: int, frame: bytes) -> bytes:
    return b"".join((_pack_head(md_seq, len(symbol), len(frame)), symbol, frame))


class MarketDataLog:
    """Append-only, bounded log of published market data (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        # What md.tpm may hold before a top's or delta's records: its half, less what a
        # clean `close` adds (a block of a reservation per symbol; lowered in `append`
        # as symbols come), so a comparison with it keeps every file within its half.
        self._limit = max_bytes // 2 - _BLOCK.size
        # Per symbol: the md_seq of every top held and where it is (| _HAS_DELTA), both
        # ascending.
        self._seqs: dict[str, array[int]] = {}
        self._locs: dict[str, array[int]] = {}
        self._reserved: dict[str, int] = {}  # the last reservation per symbol, file order
        self._last: dict[str, int] = {}  # the last md_seq held per symbol
        self._names: dict[str, bytes] = {}  # symbol -> its encoded name
        self._gen = 1  # the current file's generation (the old one's is _gen - 1)
        self._buffer: list[bytes] = []
        self._top: str | None = None  # the last record buffered is this symbol's top
        self._buffered = 0
        self._since = 0.0
        self._old_fd = -1
        old = self.dir / OLD_FILE_NAME
        if old.exists():
            self._old_fd = os.open(old, os.O_RDONLY)
            self._scan(old, 0, truncate=False)
        self._fd = os.open(self.dir / FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = self._scan(self.dir / FILE_NAME, self._gen, truncate=True)
        for symbol in self._reserved:
            self._limit -= _HEAD.size + len(symbol.encode())

    def _scan(self, path: Path, gen: int, *, truncate: bool) -> int:
        """Index one file's records; cut a torn or damaged tail of the current one."""
        data = path.read_bytes()
        pos = 0
        unpack, head, startswith = _HEAD.unpack_from, _HEAD.size, data.startswith
        base = gen << _OFFSET_BITS
        top_end, top_symbol = -1, ""  # where the last top indexed ends: its delta starts there
        while pos + _BLOCK.size <= len(data):
            length, crc = _BLOCK.unpack_from(data, pos)
            end = pos + _BLOCK.size + length
            if end > len(data) or zlib.crc32(data[pos + _BLOCK.size : end]) != crc:
                break
            at = pos + _BLOCK.size
            while at < end:  # ~1.5 million records at the default bound: kept tight
                md_seq, n_sym, n_frame = unpack(data, at)
                start = at + head
                symbol = data[start : start + n_sym].decode()
                start += n_sym
                if n_frame == 0:
                    self._reserved[symbol] = md_seq
                elif not startswith(_DELTA_TAG, start + _TAG_AT):
                    if self._index(symbol, md_seq, base | at):
                        top_end, top_symbol = start + n_frame, symbol
                elif at == top_end and symbol == top_symbol and self._last[symbol] == md_seq:
                    self._locs[symbol][-1] |= _HAS_DELTA  # its top's, right before it
                at = start + n_frame
            pos = end
        if truncate and pos != len(data):
            log.warning("market-data log: cut a damaged tail of %d bytes", len(data) - pos)
            os.ftruncate(self._fd, pos)
        return pos

    def _index(self, symbol: str, md_seq: int, loc: int) -> bool:
        """Index a top; False if it is not past the symbol's last (then ignored)."""
        seqs = self._seqs.get(symbol)
        if seqs is None:
            seqs = self._seqs[symbol] = array("q")
            self._locs[symbol] = array("q")
        elif seqs and md_seq <= seqs[-1]:  # (empty: a rotation let every top go)
            return False  # never written so (numbers only go up); ignore, not misindex
        seqs.append(md_seq)
        self._locs[symbol].append(loc)
        self._last[symbol] = md_seq
        return True

    def resume_md_seq(self, symbol: str) -> int:
        """The md_seq a restarted engine goes on from: past every number the log may
        have handed out (a reservation, or the last top held)."""
        return max(self._reserved.get(symbol, 0), self._last.get(symbol, 0))

    def append(self, md: MarketData, frame: bytes) -> None:
        """Log a top, or its delta right after it, about to be published (`frame`:
        `wire.encode(md)`)."""
        if type(md) is BookDelta:
            # (each branch reads the attributes itself: one type per site keeps
            # CPython's specialized attribute loads)
            symbol, md_seq = md.symbol, md.md_seq
            # The next record after its top's, in the same buffer (a flush comes before
            # a top only): its place is its top's index entry and the bit.
            if self._top != symbol or self._last[symbol] != md_seq:
                raise ValueError(f"a delta of {symbol} {md_seq} not right after its top")
            self._top = None
            encoded = self._names[symbol]
            record = b"".join((_pack_head(md_seq, len(encoded), len(frame)), encoded, frame))
            if self._size + len(record) > self._limit:  # it would pass the file's half
                self._rotate_with_top(symbol)
            self._buffer.append(record)
            self._buffered += len(record)
            self._size += len(record)
            self._locs[symbol][-1] |= _HAS_DELTA
            return
        symbol, md_seq = md.symbol, md.md_seq
        if self._buffer and (
            self._buffered >= FLUSH_BYTES or time.monotonic() - self._since >= FLUSH_SECONDS
        ):
            self.flush()
        name = self._names.get(symbol)
        if name is None:
            name = self._names[symbol] = symbol.encode()
        record = b"".join((_pack_head(md_seq, len(name), len(frame)), name, frame))
        # The file after this top: its record in a block of its own at most, and before
        # it, when one is due, a reservation (flushed alone: at most a block too).
        after = self._size + _BLOCK_SIZE + len(record)
        reserve = md_seq > self._reserved.get(symbol, 0)
        if reserve:
            after += _BLOCK_SIZE + _HEAD_SIZE + len(name)
            if symbol not in self._reserved:  # room for its reservation at `close`
                self._limit -= _HEAD_SIZE + len(name)
        if after > self._limit:
            self._rotate()
        if reserve:
            upto = self._reserved[symbol] = md_seq + RESERVE - 1
            self._buffer_record(_record(name, upto, b""))
            self.flush()  # in the OS before the top it covers is published
        if not self._buffer:
            self._since = time.monotonic()
            self._size += _BLOCK_SIZE  # the block header `flush` puts first
        loc = self._gen << _OFFSET_BITS | self._size
        seqs = self._seqs.get(symbol)
        # the usual case, inlined from _index (empty: rotations let the symbol's tops go)
        if seqs and md_seq > seqs[-1]:
            seqs.append(md_seq)
            self._locs[symbol].append(loc)
            self._last[symbol] = md_seq
        else:
            self._index(symbol, md_seq, loc)
        self._buffer.append(record)
        self._buffered += len(record)
        self._size += len(record)
        self._top = symbol

    def _buffer_record(self, record: bytes) -> None:
        if not self._buffer:
            self._since = time.monotonic()
            self._size += _BLOCK_SIZE
        self._buffer.append(record)
        self._buffered += len(record)
        self._size += len(record)

    def _rotate_with_top(self, symbol: str) -> None:
        """Rotate with `symbol`'s top, the last record buffered, taken out first and
        buffered again in the new file, where its delta follows it (same block)."""
        top = self._buffer.pop()
        self._buffered -= len(top)
        self._size -= len(top)
        if not self._buffer:
            self._size -= _BLOCK_SIZE  # its block is not written now
        self._rotate()
        self._buffer_record(top)
        self._locs[symbol][-1] = self._gen << _OFFSET_BITS | (self._size - len(top))

    def _rotate(self) -> None:
        """The current file becomes the old one; the old one's records leave the index."""
        self.flush()
        if self._old_fd >= 0:
            os.close(self._old_fd)
        os.replace(self.dir / FILE_NAME, self.dir / OLD_FILE_NAME)
        self._old_fd = self._fd
        self._fd = os.open(self.dir / FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0
        dropped = (self._gen - 1) << _OFFSET_BITS | ((1 << _OFFSET_BITS) - 1)
        for symbol, locs in self._locs.items():
            k = bisect.bisect_right(locs, dropped)
            if k:
                del locs[:k], self._seqs[symbol][:k]
        self._gen += 1
        for symbol, upto in self._reserved.items():  # the reservations survive the rotation
            self._buffer_record(_record(symbol.encode(), upto, b""))
        self.flush()

    def flush(self) -> None:
        """Write the buffered records (one write)."""
        self._top = None  # a delta goes in its top's block (`append`)
        if not self._buffer:
            return
        body = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        view = memoryview(_BLOCK.pack(len(body), zlib.crc32(body)) + body)
        while view:
            view = view[os.write(self._fd, view) :]

    def frames(
        self, symbol: str, from_md_seq: int, to_md_seq: int, limit: int, *, deltas: bool = False
    ) -> list[bytes]:
        """The wire frames (`wire.encode(top)`) of the tops held with from_md_seq <=
        md_seq <= to_md_seq, at most `limit`, in md_seq order (numbers the log does not
        hold are simply absent); with `deltas`, the frames of those tops' deltas
        instead. Records near each other are read with one `pread`."""
        seqs = self._seqs.get(symbol)
        if not seqs:
            return []
        self.flush()
        locs = self._locs[symbol]
        k = bisect.bisect_left(seqs, from_md_seq)
        end = min(bisect.bisect_right(seqs, to_md_seq), k + limit)
        out: list[bytes] = []
        unpack, head = _HEAD.unpack_from, _HEAD.size
        while k < end:
            gen, first = locs[k] >> _OFFSET_BITS, locs[k] & _OFFSET
            j = k + 1  # records [k, j) of one file within _SPAN bytes: one read
            while (
                j < end and locs[j] >> _OFFSET_BITS == gen and (locs[j] & _OFFSET) - first < _SPAN
            ):
                j += 1
            fd = self._fd if gen == self._gen else self._old_fd
            last = locs[j - 1] & _OFFSET
            _md, n_sym, n_frame = _HEAD.unpack(os.pread(fd, head, last))
            stop = last + head + n_sym + n_frame
            if deltas and locs[j - 1] & _HAS_DELTA:  # and the last top's delta after it
                _md, n_sym, n_frame = _HEAD.unpack(os.pread(fd, head, stop))
                stop += head + n_sym + n_frame
            data = os.pread(fd, stop - first, first)
            for i in range(k, j):
                if deltas and not locs[i] & _HAS_DELTA:
                    continue
                at = (locs[i] & _OFFSET) - first
                _md, n_sym, n_frame = unpack(data, at)
                start = at + head + n_sym
                if deltas:  # the record after the top's
                    at = start + n_frame
                    _md, n_sym, n_frame = unpack(data, at)
                    start = at + head + n_sym
                out.append(data[start : start + n_frame])
            k = j
        return out

    def read(
        self, symbol: str, from_md_seq: int, to_md_seq: int, limit: int, *, deltas: bool = False
    ) -> list[MarketData]:
        """As `frames`, decoded."""
        out: list[MarketData] = []
        for frame in self.frames(symbol, from_md_seq, to_md_seq, limit, deltas=deltas):
            md = wire.decode_event(frame)
            assert isinstance(md, BookDelta if deltas else TopOfBook)
            out.append(md)
        return out

    def first_md_seq(self, symbol: str) -> int | None:
        """The oldest md_seq of `symbol` the log holds (None: none)."""
        seqs = self._seqs.get(symbol)
        return seqs[0] if seqs else None

    def close(self, last: dict[str, int] | None = None) -> None:
        """Flush; with `last` (each symbol's real last md_seq, on a clean stop), give
        back the numbers reserved beyond it so the next start goes on without a jump."""
        if self._fd < 0:
            return
        for symbol, md_seq in (last or {}).items():
            if self._reserved.get(symbol, 0) > md_seq:
                self._reserved[symbol] = md_seq
                self._buffer_record(_record(symbol.encode(), md_seq, b""))
        self.flush()
        os.close(self._fd)
        self._fd = -1
        if self._old_fd >= 0:
            os.close(self._old_fd)
            self._old_fd = -1
