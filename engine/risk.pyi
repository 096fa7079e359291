"""Type stubs for the compiled `tickplane.engine.risk` (see risk.pyx)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from tickplane.core.config import (
    CircuitBreakerConfig as CircuitBreakerConfig,
)
from tickplane.core.config import (
    RiskLimits as RiskLimits,
)
from tickplane.core.events import (
    Event,
)
from tickplane.core.events import (
    SymbolHalted as SymbolHalted,
)
from tickplane.core.events import (
    SymbolResumed as SymbolResumed,
)
from tickplane.engine.positions import Positions

SNAPSHOT_VERSION: Final[int]
KILL_SWITCH: Final[str]
SYMBOL_HALTED: Final[str]
MAX_ORDER_QTY: Final[str]
MAX_ORDER_NOTIONAL: Final[str]
MAX_POSITION: Final[str]
PRICE_BAND: Final[str]
MAX_OPEN_ORDERS: Final[str]
ORDER_RATE: Final[str]
CHECK_ORDER: Final[tuple[str, ...]]
CIRCUIT_BREAKER: Final[str]
MANUAL: Final[str]

class Reject(msgspec.Struct, frozen=True):
    reason: str
    message: str

class RiskEngine:
    ended: list[int] | None
    def __init__(
        self,
        *,
        positions: Positions,
        default: RiskLimits | None = None,
        per_account: Mapping[str, RiskLimits] | None = None,
        per_symbol: Mapping[tuple[str, str], RiskLimits] | None = None,
        circuit_breaker: CircuitBreakerConfig | None = None,
    ) -> None: ...
    def check_new(
        self,
        account: str,
        symbol: str,
        side: str | int,
        type: str | int,
        qty: int,
        price: int | None,
        ts: int,
        legs: Sequence[tuple[str, int, int]] = (),
    ) -> Reject | None: ...
    def check_replace(
        self,
        order_id: int,
        qty: int | None,
        price: int | None,
        ts: int,
        leg: tuple[str, int, int] | None = None,
    ) -> Reject | None: ...
    def on_accepted(
        self,
        order_id: int,
        account: str,
        symbol: str,
        side: str | int,
        qty: int,
        price: int | None = None,
    ) -> None: ...
    def on_held(
        self, order_id: int, account: str, symbol: str, side: str | int, qty: int
    ) -> None: ...
    def market_collar(self, account: str, symbol: str) -> int | None: ...
    def position_limit(self, account: str, symbol: str) -> int | None: ...
    def check_release(
        self, order_id: int, qty: int, group: Iterable[int], limit: int | None
    ) -> Reject | None: ...
    def open_qty(self, order_id: int) -> int: ...
    def on_replaced(self, order_id: int, qty: int, price: int | None = None) -> None: ...
    def on_fill(self, order_id: int, qty: int) -> None: ...
    def on_done(self, order_id: int) -> None: ...
    def on_trade(
        self, symbol: str, price: int, ts: int
    ) -> tuple[SymbolHalted | SymbolResumed, ...]: ...
    def halted(self, symbol: str, ts: int) -> bool: ...
    def halt(self, symbol: str, ts: int, duration_ns: int | None = None) -> SymbolHalted: ...
    def resume(self, symbol: str, ts: int) -> SymbolResumed | None: ...
    def expire(self, ts: int) -> list[Event]: ...
    def halts(self) -> dict[str, int | None]: ...
    def reference(self, symbol: str) -> int | None: ...
    def set_reference(self, symbol: str, price: int) -> None: ...
    def kill(self, account: str | None = None) -> bool: ...
    def revive(self, account: str | None = None) -> bool: ...
    def killed(self, account: str | None = None) -> bool: ...
    def kill_switches(self) -> int: ...
    def open_orders(self, account: str | None = None, symbol: str | None = None) -> list[int]: ...
    def open_exposure(self, account: str, symbol: str) -> tuple[int, int, int]: ...
    def open_order_count(self, account: str) -> int: ...
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> None: ...

def collar_price(base: int, bps: int, buy: bool) -> int: ...
