"""Replay a LOBSTER day through the compiled market-data `Book` and check it row by row
against the day's orderbook file (../shared/contracts/lobster.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from tickplane.engine.book import Book
from tickplane.engine.lobster import LobsterDay
from tickplane.engine.replay import known_window_replay

if TYPE_CHECKING:
    from tickplane.engine.replay import ReplayCounts

__all__ = ["Columns", "ReplayResult", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found. `apply_seconds` times applying the messages (and keeping the
    level-N window) with no comparison and no parsing; `check_seconds` the checked run."""

    name: str
    levels: int
    messages: int
    rows_compared: int
    rows_matched: int
    first_mismatch: int
    apply_seconds: float
    check_seconds: float

    @property
    def msgs_per_sec(self) -> float:
        return (self.messages - 1) / self.apply_seconds if self.apply_seconds > 0 else 0.0

    @property
    def match_ratio(self) -> float:
        return self.rows_matched / self.rows_compared if self.rows_compared else 1.0

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.name,
            "levels": self.levels,
            "messages": self.messages,
            "rows_compared": self.rows_compared,
            "rows_matched": self.rows_matched,
            "first_mismatch": self.first_mismatch,
            "apply_seconds": round(self.apply_seconds, 6),
            "msgs_per_sec": round(self.msgs_per_sec),
        }


class Columns(NamedTuple):
    """The contiguous columns the compiled loop reads (prepared outside any timing)."""

    types: npt.NDArray[np.int8]
    ids: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.int64]
    prices: npt.NDArray[np.int64]
    directions: npt.NDArray[np.int8]
    orderbook: npt.NDArray[np.int64]

    @classmethod
    def of(cls, day: LobsterDay) -> Columns:
        m = day.messages
        return cls(
            np.ascontiguousarray(m["type"], dtype=np.int8),
            np.ascontiguousarray(m["id"], dtype=np.int64),
            np.ascontiguousarray(m["size"], dtype=np.int64),
            np.ascontiguousarray(m["price"], dtype=np.int64),
            np.ascontiguousarray(m["direction"], dtype=np.int8),
            np.ascontiguousarray(day.orderbook, dtype=np.int64),
        )

    def replay(
        self, book: Book, levels: int, compare: bool, start: int = 0, stop: int = -1
    ) -> ReplayCounts:
        return known_window_replay(
            book,
            self.types,
            self.ids,
            self.sizes,
            self.prices,
            self.directions,
            self.orderbook,
            levels,
            compare,
            start,
            stop,
        )


def replay(
    day: LobsterDay,
    *,
    chunk: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay `day` twice on fresh books: once timed without comparing (apply_seconds),
    once comparing every row. With `chunk`, the checked run goes `chunk` messages at a
    time and calls `on_progress(done)` after each (for progress bars)."""
    cols = Columns.of(day)
    n = len(day)
    timed = cols.replay(Book(), day.levels, compare=False)
    book = Book()
    step = chunk if chunk > 0 else max(n, 1)
    compared = matched = 0
    first = -1
    seconds = 0.0
    for start in range(0, max(n, 1), step):
        r = cols.replay(book, day.levels, True, start, min(start + step, n))
        compared += r["rows_compared"]
        matched += r["rows_matched"]
        seconds += r["seconds"]
        if first < 0:
            first = r["first_mismatch"]
        if on_progress is not None:
            on_progress(min(start + step, n))
    return ReplayResult(
        name=day.name,
        levels=day.levels,
        messages=n,
        rows_compared=compared,
        rows_matched=matched,
        first_mismatch=first,
        apply_seconds=timed["seconds"],
        check_seconds=seconds,
    )
