"""`MarketCursors`: where each symbol's market data stands in the gateway's projection,
so that what it passes on is gap-free by `md_seq`, or says where it is not.

The engine numbers each symbol's tops of book by `md_seq` (a `BookDelta`, when a top's
levels changed, has its top's number and follows it: `TopOfBook.has_delta`). The
projection's stream (`EngineClient.events(md_from=...)`) already fills what ZeroMQ
dropped from the engine's market-data log; what reaches the projection can still have
holes: numbers the log no longer keeps (older than it, or an engine's last moments
before a kill -9), and anything missed from an engine without a log. A cursor notices
them, so a subscriber is told (`take` returns the hole) rather than left to guess.

    cursors = MarketCursors()
    passes, hole = cursors.take(md)   # for each TopOfBook / BookDelta, in stream order
    if hole: tell subscribers md_seq hole[0]..hole[1] will not come
    if passes: pass md on
"""

from __future__ import annotations

from dataclasses import dataclass

from tickplane.core.events import BookDelta, TopOfBook

__all__ = ["Hole", "MarketCursors"]

Hole = tuple[int, int]
"""md_seq first..last (inclusive): tops and deltas of these numbers not passed on yet
will not be."""


@dataclass(slots=True)
class _Cursor:
    md_seq: int  # the last top passed on (or adopted)
    delta_due: bool  # that top announced its delta, not passed on yet
    delta_done: bool  # that number's delta was passed on (or cannot be any more)
    adopted: bool  # the top came from the engine's GetBook, ahead of the stream


class MarketCursors:
    """Per symbol: the last top passed on and whether its delta is still due."""

    def __init__(self) -> None:
        self._at: dict[str, _Cursor] = {}

    def resume_at(self, symbol: str) -> int | None:
        """The md_seq a new stream should start from for `symbol` (its `md_from`): the
        next top, or the last top again while its delta is due (that top is then
        skipped as passed on). None: nothing seen of the symbol yet."""
        cur = self._at.get(symbol)
        if cur is None:
            return None
        return cur.md_seq if cur.delta_due else cur.md_seq + 1

    def adopt(self, top: TopOfBook) -> None:
        """Start `top.symbol` at `top`, one the engine answered (GetBook) while the
        stream had nothing of the symbol: until the stream passes it, what it brings up
        to that number is stale and skipped."""
        if top.symbol not in self._at:
            self._at[top.symbol] = _Cursor(top.md_seq, False, True, True)

    def take(self, md: TopOfBook | BookDelta) -> tuple[bool, Hole | None]:
        """Whether to pass `md` on, and the hole just before it (None: none).

        A top passes once, in number order; one with a lower number than the last top
        comes from an engine whose numbering restarted (one without a log, after a
        kill -9: docs/engine-service.md) and starts the symbol over. A delta passes
        right after its top, once; a delta whose top never came is a hole."""
        cur = self._at.get(md.symbol)
        n = md.md_seq
        if type(md) is TopOfBook:
            if cur is None:
                self._at[md.symbol] = _Cursor(n, md.has_delta, False, False)
                return True, None
            if n <= cur.md_seq and (n == cur.md_seq or cur.adopted):
                return False, None  # passed on (or adopted) already
            hole = None
            if n > cur.md_seq:
                first = cur.md_seq if cur.delta_due else cur.md_seq + 1
                if first < n:
                    hole = (first, n - 1)
            cur.md_seq, cur.delta_due, cur.delta_done, cur.adopted = n, md.has_delta, False, False
            return True, hole
        if cur is None:
            return False, None  # no top to apply it to (a stream just started)
        if n == cur.md_seq and not cur.delta_done and not cur.adopted:
            # (a delta no top announced comes from an engine before `has_delta`)
            cur.delta_due, cur.delta_done = False, True
            return True, None
        if n > cur.md_seq:  # its top never came: nothing of this number will
            first = cur.md_seq if cur.delta_due else cur.md_seq + 1
            cur.md_seq, cur.delta_due, cur.delta_done, cur.adopted = n, False, True, False
            return False, (first, n)
        return False, None  # passed on already, or stale
