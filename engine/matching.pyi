"""Type stubs for the compiled `tickplane.engine.matching` (see matching.pyx)."""

from enum import IntEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

MAX_VALUE: Final[int]
KEEP: Final[int]
EVENT_DTYPE: Final[np.dtype[np.void]]
COMMAND_DTYPE: Final[np.dtype[np.void]]
RESTING_DTYPE: Final[np.dtype[np.void]]
HELD_DTYPE: Final[np.dtype[np.void]]
MARKET_DTYPE: Final[np.dtype[np.void]]

def pack_command(c: tuple[int, ...]) -> bytes:
    """A command's 14 fields (COMMAND_DTYPE's order) as its journal bytes."""

class Side(IntEnum):
    BUY = 0
    SELL = 1

class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1
    STOP = 2
    STOP_LIMIT = 3

class TimeInForce(IntEnum):
    GTC = 0
    DAY = 1
    IOC = 2
    FOK = 3

class Op(IntEnum):
    NEW = 1
    CANCEL = 2
    REPLACE = 3

class EventType(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELED = 4
    REPLACED = 5
    TRIGGERED = 6

class SelfTradePrevention(IntEnum):
    NONE = 0
    CANCEL_NEWEST = 1
    CANCEL_OLDEST = 2
    CANCEL_BOTH = 3

class Reason(IntEnum):
    NONE = 0
    BAD_ID = 1
    DUPLICATE_ID = 2
    BAD_SIDE = 3
    BAD_TYPE = 4
    BAD_QTY = 5
    BAD_PRICE = 6
    BAD_STOP_PRICE = 7
    BAD_TIF = 8
    BAD_POST_ONLY = 9
    BAD_SYMBOL = 10
    BAD_ACCOUNT = 11
    UNKNOWN_FIELD = 12
    BAD_OP = 13
    BAD_JSON = 14
    UNKNOWN_ORDER = 15
    BAD_REPLACE = 16
    OUT_OF_MEMORY = 17
    USER = 32
    IOC = 33
    FOK = 34
    NO_LIQUIDITY = 35
    POST_ONLY = 36
    SELF_TRADE = 37
    MARKET_COLLAR = 38
    KILL_SWITCH = 39

class MatchingEngine:
    stp: Final[int]
    seq: Final[int]
    last_id: Final[int]
    def __init__(self, *, stp: int = 0, capacity: int = 1024) -> None: ...
    def submit(
        self,
        id: int,
        account: int,
        symbol: int,
        side: int,
        type: int,
        qty: int,
        price: int = 0,
        stop_price: int = 0,
        tif: int = 0,
        post_only: int = 0,
        ts: int = 0,
        reason: int = 0,
    ) -> int: ...
    def cancel(self, id: int, ts: int = 0, reason: int = 0) -> int: ...
    def replace(
        self, id: int, qty: int = ..., price: int = ..., ts: int = 0, reason: int = 0
    ) -> int: ...
    def reject(self, id: int, reason: int, ts: int = 0) -> int: ...
    def events(self) -> npt.NDArray[np.void]: ...
    def event_rows(self) -> list[tuple[int, ...]]: ...
    def process(self, commands: npt.NDArray[np.void]) -> npt.NDArray[np.void]: ...
    def process_rows(
        self, commands: npt.NDArray[np.void]
    ) -> tuple[list[tuple[int, ...]], list[int]]: ...
    def __len__(self) -> int: ...
    def symbols(self) -> list[int]: ...
    def last_price(self, symbol: int) -> int | None: ...
    def depth(self, symbol: int, n: int = 10) -> dict[str, list[tuple[int, int, int]]]: ...
    def level_orders(self, symbol: int, side: int, price: int) -> list[tuple[int, int]]: ...
    def snapshot(self, symbol: int) -> dict[str, list[Any]]: ...
    def order(self, id: int) -> dict[str, int | str] | None: ...
    def is_held(self, id: int) -> bool: ...
    def owner(self, id: int) -> tuple[int, int] | None: ...
    def dump(self) -> dict[str, npt.NDArray[Any]]: ...
    def load(self, state: dict[str, npt.NDArray[Any]]) -> None: ...
    def memory_bytes(self) -> int: ...
