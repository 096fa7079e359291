"""Type stubs for the compiled `tickplane.engine.replay` (see replay.pyx)."""

from typing import TypedDict

import numpy as np
import numpy.typing as npt

from tickplane.engine.book import Book

class ReplayCounts(TypedDict):
    rows_compared: int
    rows_matched: int
    first_mismatch: int
    seconds: float

def known_window_replay(
    book: Book,
    types: npt.NDArray[np.int8],
    ids: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    prices: npt.NDArray[np.int64],
    directions: npt.NDArray[np.int8],
    orderbook: npt.NDArray[np.int64],
    levels: int,
    compare: bool = True,
    start: int = 0,
    stop: int = -1,
) -> ReplayCounts: ...

class Stepper:
    applied: bool
    top_changed: bool
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    def __init__(
        self,
        book: Book,
        types: npt.NDArray[np.int8],
        ids: npt.NDArray[np.int64],
        sizes: npt.NDArray[np.int64],
        prices: npt.NDArray[np.int64],
        directions: npt.NDArray[np.int8],
        ts: npt.NDArray[np.int64],
        orderbook: npt.NDArray[np.int64],
        levels: int,
    ) -> None: ...
    def seed(self) -> None: ...
    def run(
        self,
        i: int,
        until_ts: int,
        bid_lo: int,
        bid_hi: int,
        ask_lo: int,
        ask_hi: int,
        every: bool = False,
        any_bid_lo: int = 1,
        any_bid_hi: int = 0,
        any_ask_lo: int = 1,
        any_ask_hi: int = 0,
    ) -> int: ...
