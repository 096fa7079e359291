"""Pre-trade risk: limits per account and symbol, kill switches and a circuit breaker.

The engine calls `RiskEngine.check_new` / `check_replace` before a command reaches the
matching core, and feeds it what happened afterwards (`on_accepted`, `on_replaced`,
`on_fill`, `on_done`, `on_trade`). docs/risk.md states every limit, the reason codes
and the order in which they are checked.

Units are the engine's: prices int ticks, quantities int lots, notional price * qty in
tick-lots, timestamps int ns from the caller. No clock is read and every figure is an
integer, so a journal replayed through a fresh `RiskEngine` ends in the same state.

Side and order type are the contract's words (`"buy"`, `"sell"`, `"limit"`,
`"market"`, `"stop"`, `"stop_limit"`) or the core's `Side` / `OrderType` values.
Malformed commands (unknown side, non-positive quantity, ...) are the core's to reject
(`bad_side`, `bad_qty`, ...): risk lets them through and never raises on them.

A command rejected here changes nothing. A command that passes spends one token of the
order-rate buckets; nothing else changes until the engine reports what the core did.

Compiled by Cython as it stands (setup.py), with its C declarations in risk.pxd:
`RiskEngine` and its open-order record `_Order` become cdef classes, and the checks and
bookkeeping every command goes through are C calls on typed fields (what that saved:
docs/engine-service.md, "Session seven"). It stays plain Python, checked by mypy and
runnable uncompiled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from tickplane.core.config import CircuitBreakerConfig, RiskLimits
from tickplane.core.events import TAKE_PROFIT, Event, SymbolHalted, SymbolResumed
from tickplane.engine.positions import Positions

__all__ = [
    "CHECK_ORDER",
    "CIRCUIT_BREAKER",
    "KILL_SWITCH",
    "MANUAL",
    "MAX_OPEN_ORDERS",
    "MAX_ORDER_NOTIONAL",
    "MAX_ORDER_QTY",
    "MAX_POSITION",
    "NOTIONAL_CEILING",
    "ORDER_RATE",
    "PRICE_BAND",
    "SNAPSHOT_VERSION",
    "SYMBOL_HALTED",
    "CircuitBreakerConfig",
    "Reject",
    "RiskEngine",
    "RiskLimits",
    "SymbolHalted",
    "SymbolResumed",
    "collar_price",
]

SNAPSHOT_VERSION: Final = 1

# Reason codes, in the order `check_new` checks them (the first failure is the reason).
KILL_SWITCH: Final = "kill_switch"
SYMBOL_HALTED: Final = "symbol_halted"
MAX_ORDER_QTY: Final = "max_order_qty"
MAX_ORDER_NOTIONAL: Final = "max_order_notional"
MAX_POSITION: Final = "max_position"
PRICE_BAND: Final = "price_band"
MAX_OPEN_ORDERS: Final = "max_open_orders"
ORDER_RATE: Final = "order_rate"  # last: the only check that spends something
CHECK_ORDER: Final = (
    KILL_SWITCH,
    SYMBOL_HALTED,
    MAX_ORDER_QTY,
    MAX_ORDER_NOTIONAL,
    MAX_POSITION,
    PRICE_BAND,
    MAX_OPEN_ORDERS,
    ORDER_RATE,
)

# The most an order with a price may be worth (qty * price, tick-lots), whatever the
# limits say: a trade is worth at most its resting order, so every trade, and an
# account's money after some nine thousand of the largest, stays inside the 64-bit
# integers the wire carries (an event that does not fit cannot be sent or logged).
NOTIONAL_CEILING: Final = 10**15

# Why a symbol is halted (`SymbolHalted.reason`).
CIRCUIT_BREAKER: Final = "circuit_breaker"
MANUAL: Final = "manual"

_NS: Final = 1_000_000_000  # one order-rate token, in token-nanoseconds
_BPS: Final = 10_000
_BUY: Final = frozenset({"buy", 0})
_SELL: Final = frozenset({"sell", 1})
_LIMIT: Final = frozenset({"limit", 0})
_NONE: Final[tuple[SymbolHalted | SymbolResumed, ...]] = ()


class Reject(msgspec.Struct, frozen=True):
    """Why risk refused a command: a `reason` code (CHECK_ORDER) and a human message."""

    reason: str
    message: str


def _ceiling_reject(qty: int, price: int) -> Reject:
    return Reject(
        MAX_ORDER_NOTIONAL,
        f"notional {qty * price} tick-lots ({qty} lots at {price}) is above the engine's "
        f"ceiling of {NOTIONAL_CEILING} tick-lots, whatever the limits",
    )


class _Order:
    """An open order as risk sees it: what it could still add to the position. A
    `held` order (a leg or a trailing stop, docs/order-classes.md) stays open at zero
    lots: it ends only with `on_done`. Its fields are C fields once compiled (risk.pxd);
    `_open_order` makes one."""

    account: str
    symbol: str
    buy: bool
    side: int  # 0 if buy else 1: the index into `pair`
    qty: int
    price: int | None
    pair: list[int]  # RiskEngine._pairs[(account, symbol)]: [buy lots, sell lots, orders]
    held: bool

    def __repr__(self) -> str:
        side = "buy" if self.buy else "sell"
        return f"_Order({self.account!r}, {self.symbol!r}, {side}, {self.qty}, {self.price})"


def _open_order(
    account: str, symbol: str, buy: bool, qty: int, price: int | None, pair: list[int]
) -> _Order:
    """A new `_Order`, fields set one by one: calling the class parsed its arguments
    as Python's (~700 instructions of every order accepted); compiled, this is C."""
    o = _Order.__new__(_Order)
    o.account = account
    o.symbol = symbol
    o.buy = buy
    o.side = 0 if buy else 1
    o.qty = qty
    o.price = price
    o.pair = pair
    o.held = False
    return o


class _Window:
    """The circuit breaker's window: monotonic deques of (ts, price), so that the lowest
    (`lo[0]`) and highest (`hi[0]`) price of the window are O(1) and updates amortized
    O(1)."""

    __slots__ = ("hi", "lo")

    def __init__(self) -> None:
        self.lo: deque[tuple[int, int]] = deque()
        self.hi: deque[tuple[int, int]] = deque()


# --- snapshot layout ------------------------------------------------------------------------


class _OrderState(msgspec.Struct, array_like=True):
    id: int
    account: str
    symbol: str
    side: str
    qty: int
    price: int | None
    held: bool = False


class _BucketState(msgspec.Struct, array_like=True):
    account: str
    symbol: str | None  # None: the account's bucket
    level: int
    last_ts: int


class _WindowState(msgspec.Struct, array_like=True):
    symbol: str
    lo: list[tuple[int, int]]
    hi: list[tuple[int, int]]


class _Snapshot(msgspec.Struct):
    version: int
    kill_all: bool
    killed: list[str]
    halts: list[tuple[str, int | None]]
    references: list[tuple[str, int]]
    windows: list[_WindowState]
    buckets: list[_BucketState]
    orders: list[_OrderState]


_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode
_encode = msgspec.json.Encoder().encode


def _on(account: str, symbol: str, pair: bool) -> str:
    return f"account {account!r} on {symbol}" if pair else f"account {account!r}"


def _refill(bucket: list[int] | None, rate: int, burst: int | None, ts: int) -> int:
    """A token bucket's level at `ts` in token-nanoseconds (one token is 10^9): it
    holds up to `burst` tokens (None: `rate`) and refills `rate` tokens per second of the
    caller's ts, in exact integers. A ts before the bucket's last refills nothing."""
    cap = (rate if burst is None else burst) * _NS
    if bucket is None:
        return cap
    elapsed = ts - bucket[1]
    level = bucket[0] + rate * elapsed if elapsed > 0 else bucket[0]
    return cap if level > cap else level


def _take(bucket: list[int], level: int, ts: int) -> None:
    bucket[0] = level - _NS
    if ts > bucket[1]:
        bucket[1] = ts


def _rate_reject(where: str, rate: int, burst: int | None) -> Reject:
    burst = rate if burst is None else burst
    return Reject(ORDER_RATE, f"{where} is over its order rate of {rate} orders/s (burst {burst})")


class RiskEngine:
    """Pre-trade checks and the state they need, for one engine (single-threaded).

    `default` applies to every account without an entry in `per_account`. An entry of
    `per_symbol` keyed `(account, symbol)` replaces the account's per-order and
    position limits for that symbol; its `max_open_orders` and order-rate limits count
    only that pair's orders, on top of the account's (which count all its symbols).
    `positions` is the engine's `Positions`: `max_position` reads the live position.
    Limits are configuration, not state: `snapshot` does not carry them.
    """

    def __init__(
        self,
        *,
        positions: Positions,
        default: RiskLimits | None = None,
        per_account: Mapping[str, RiskLimits] | None = None,
        per_symbol: Mapping[tuple[str, str], RiskLimits] | None = None,
        circuit_breaker: CircuitBreakerConfig | None = None,
    ) -> None:
        self._positions = positions
        self._default = default if default is not None else RiskLimits()
        self._per_account: dict[str, RiskLimits] = dict(per_account or {})
        self._per_symbol: dict[tuple[str, str], RiskLimits] = dict(per_symbol or {})
        self._breaker = circuit_breaker
        # Ids of the orders `on_done` let go since the owner last emptied it (None: not
        # recorded): the engine's finished orders (finished.py) learn of every end here.
        self.ended: list[int] | None = None
        self._reset()

    def _reset(self) -> None:
        self._kill_all = False
        self._killed: set[str] = set()
        self._halts: dict[str, int | None] = {}  # symbol -> end ts (None: until resumed)
        self._refs: dict[str, int] = {}  # symbol -> reference price
        self._windows: dict[str, _Window] = {}
        # order-rate buckets: [level in token-ns, ts of the last token taken]
        self._acct_buckets: dict[str, list[int]] = {}
        self._pair_buckets: dict[tuple[str, str], list[int]] = {}
        self._orders: dict[int, _Order] = {}
        # (account, symbol) -> [open buy lots, open sell lots, open orders]
        self._pairs: dict[tuple[str, str], list[int]] = {}
        self._acct_count: dict[str, int] = {}  # account -> open orders

    # --- checks ---------------------------------------------------------------------------

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
    ) -> Reject | None:
        """Check a new order; None if it may go to the core (it then spends a rate token).

        `price` is the limit price (limit, stop_limit) or None/0 (market, stop). Orders
        without a price are valued at the symbol's reference price for the notional
        check; without a reference they fail it when `max_order_notional` is set.

        `legs` are the held legs a bracket, OTO or OCO brings with it, as (role, qty,
        price): each passes `max_order_qty` and `max_order_notional` at its own price
        (right after the order's own), a take-profit `price_band` at its limit (right
        after the order's own), and `max_open_orders` counts them with the order
        (docs/risk.md, "Order classes").
        """
        buy = True if side in _BUY else False if side in _SELL else None
        if legs:
            return self._check(account, symbol, buy, type in _LIMIT, qty, price, None, ts, legs)
        return self._check(account, symbol, buy, type in _LIMIT, qty, price, None, ts)

    def check_replace(
        self,
        order_id: int,
        qty: int | None,
        price: int | None,
        ts: int,
        leg: tuple[str, int, int] | None = None,
        banded: bool = True,
    ) -> Reject | None:
        """Check a replace of an open order to open quantity `qty` at `price` (None:
        unchanged). None if it may go to the core (or to the venue that holds it).
        `banded`: whether its price is held to the price band, as a new order's is (a
        limit order's; False for a stop-limit's, whose price belongs to the market
        that triggers it).

        A pure reduction (same price, quantity not above the open quantity) passes
        always and spends no rate token, like a cancel. Otherwise the checks of a new
        order apply to the new quantity and price, in the same order, except
        `max_open_orders` (a replace adds no order); the position check counts the new
        quantity instead of the order's current open quantity. An order risk does not
        know passes (the core rejects it `unknown_order`).

        `leg`: a held leg whose price the replace moves, as (role, qty, new price),
        the price it is valued at (`check_new`'s `legs`): it passes `max_order_qty`,
        `max_order_notional` and (a take-profit) `price_band` as at submission, at the
        new price; the lots it counts stay as they are (`qty` and `price` are not read).
        """
        o = self._orders.get(order_id)
        if o is None:
            return None
        if leg is not None:
            return self._check(o.account, o.symbol, o.buy, False, 0, leg[2], 0, ts, (leg,))
        new_qty = o.qty if qty is None else qty
        new_price = o.price if price is None else price
        if new_qty <= o.qty and new_price == o.price:
            return None
        return self._check(o.account, o.symbol, o.buy, banded, new_qty, new_price, o.qty, ts)

    def _check(
        self,
        account: str,
        symbol: str,
        buy: bool | None,
        is_limit: bool,
        qty: int,
        price: int | None,
        replaced: int | None,
        ts: int,
        legs: Sequence[tuple[str, int, int]] = (),
    ) -> Reject | None:
        """The checks in CHECK_ORDER. `buy` is None for a side the core will reject;
        `replaced` is the open quantity of the order a replace changes (None for a new
        order, the only one `max_open_orders` counts); `legs` as in check_new."""
        if self._kill_all or account in self._killed:
            return self._killed_reject(account)
        if self._halts:
            r = self._halted_reject(symbol, ts)
            if r is not None:
                return r
        acct = self._per_account.get(account, self._default)
        pair = self._per_symbol.get((account, symbol)) if self._per_symbol else None
        lim = acct if pair is None else pair
        is_pair = pair is not None

        max_qty = lim.max_order_qty
        if max_qty is not None and qty > max_qty:
            return Reject(
                MAX_ORDER_QTY,
                f"quantity {qty} is above the limit of {max_qty} lots "
                f"for {_on(account, symbol, is_pair)}",
            )
        if lim.max_order_notional is not None:
            r = self._notional_reject(lim.max_order_notional, account, symbol, is_pair, qty, price)
            if r is not None:
                return r
        if price and qty * price > NOTIONAL_CEILING:
            return _ceiling_reject(qty, price)
        if legs:
            r = self._legs_reject(lim, account, symbol, is_pair, legs)
            if r is not None:
                return r
        if lim.max_position is not None and buy is not None:
            r = self._position_reject(
                lim.max_position, account, symbol, is_pair, buy, qty, replaced or 0
            )
            if r is not None:
                return r
        band = lim.price_band_bps
        if band is not None:
            if price and is_limit:
                r = self._band_reject(band, symbol, price)
                if r is not None:
                    return r
            if legs:
                r = self._legs_band_reject(band, symbol, legs)
                if r is not None:
                    return r
        if legs and replaced is None:
            r = self._open_with_legs_reject(acct, pair, account, symbol, len(legs))
            if r is not None:
                return r
        elif replaced is None:
            max_open = acct.max_open_orders
            if max_open is not None and self._acct_count.get(account, 0) >= max_open:
                return Reject(
                    MAX_OPEN_ORDERS,
                    f"account {account!r} already has {max_open} open orders, its limit",
                )
            if pair is not None and pair.max_open_orders is not None:
                p = self._pairs.get((account, symbol))
                if (p[2] if p else 0) >= pair.max_open_orders:
                    return Reject(
                        MAX_OPEN_ORDERS,
                        f"account {account!r} already has {pair.max_open_orders} open "
                        f"orders on {symbol}, its limit there",
                    )
        if acct.max_orders_per_second is not None or (
            pair is not None and pair.max_orders_per_second is not None
        ):
            return self._take_token(acct, pair, account, symbol, ts)
        return None

    def _legs_reject(
        self,
        lim: RiskLimits,
        account: str,
        symbol: str,
        is_pair: bool,
        legs: Sequence[tuple[str, int, int]],
    ) -> Reject | None:
        """An order's held legs against the per-order limits, each at its own price."""
        max_qty = lim.max_order_qty
        for role, leg_qty, leg_price in legs:
            if max_qty is not None and leg_qty > max_qty:
                return Reject(
                    MAX_ORDER_QTY,
                    f"the {role} leg's quantity {leg_qty} is above the limit of {max_qty} "
                    f"lots for {_on(account, symbol, is_pair)}",
                )
            if lim.max_order_notional is not None:
                r = self._notional_reject(
                    lim.max_order_notional, account, symbol, is_pair, leg_qty, leg_price
                )
                if r is not None:
                    return Reject(r.reason, f"the {role} leg's {r.message}")
            if leg_price and leg_qty * leg_price > NOTIONAL_CEILING:
                r = _ceiling_reject(leg_qty, leg_price)
                return Reject(r.reason, f"the {role} leg's {r.message}")
        return None

    def _legs_band_reject(
        self, band: int, symbol: str, legs: Sequence[tuple[str, int, int]]
    ) -> Reject | None:
        """An order's held legs against the price band: a take-profit works as a limit
        order at its price, so it is banded as one; a stop-loss is not, as no stop is
        (its prices belong to the market that triggers it)."""
        for role, _, leg_price in legs:
            if role == TAKE_PROFIT:
                r = self._band_reject(band, symbol, leg_price)
                if r is not None:
                    return Reject(r.reason, f"the {role} leg's {r.message}")
        return None

    def _open_with_legs_reject(
        self, acct: RiskLimits, pair: RiskLimits | None, account: str, symbol: str, n: int
    ) -> Reject | None:
        """`max_open_orders` for an order that brings `n` held legs (open orders from
        its acceptance too): it needs `1 + n` free slots."""
        brings = f"and this order brings {n + 1} with its legs"
        have = self._acct_count.get(account, 0)
        max_open = acct.max_open_orders
        if max_open is not None and have + n >= max_open:
            return Reject(
                MAX_OPEN_ORDERS,
                f"account {account!r} already has {have} open orders {brings}, its limit "
                f"is {max_open}",
            )
        if pair is not None and pair.max_open_orders is not None:
            p = self._pairs.get((account, symbol))
            have = p[2] if p else 0
            if have + n >= pair.max_open_orders:
                return Reject(
                    MAX_OPEN_ORDERS,
                    f"account {account!r} already has {have} open orders on {symbol} "
                    f"{brings}, its limit there is {pair.max_open_orders}",
                )
        return None

    def _killed_reject(self, account: str) -> Reject:
        if self._kill_all:
            return Reject(KILL_SWITCH, "trading is stopped by the global kill switch")
        return Reject(KILL_SWITCH, f"account {account!r} is stopped by its kill switch")

    def _halted_reject(self, symbol: str, ts: int) -> Reject | None:
        if symbol not in self._halts:
            return None
        until = self._halts[symbol]
        if until is None:
            return Reject(SYMBOL_HALTED, f"{symbol} is halted until it is resumed")
        if ts < until:
            return Reject(SYMBOL_HALTED, f"{symbol} is halted until ts {until} ns")
        return None

    def _notional_reject(
        self,
        limit: int,
        account: str,
        symbol: str,
        is_pair: bool,
        qty: int,
        price: int | None,
    ) -> Reject | None:
        at = price if price else self._refs.get(symbol)
        if at is None:
            return Reject(
                MAX_ORDER_NOTIONAL,
                f"an order without a price cannot be valued: {symbol} has no reference "
                f"price yet, and {_on(account, symbol, is_pair)} has a notional limit",
            )
        notional = qty * at
        if notional > limit:
            how = "" if price else " (valued at the reference price)"
            return Reject(
                MAX_ORDER_NOTIONAL,
                f"notional {notional} tick-lots ({qty} lots at {at}){how} is above the "
                f"limit of {limit} for {_on(account, symbol, is_pair)}",
            )
        return None

    def _position_reject(
        self,
        limit: int,
        account: str,
        symbol: str,
        is_pair: bool,
        buy: bool,
        qty: int,
        replaced: int,
    ) -> Reject | None:
        """Worst case: every open order of the account on this symbol and side fills,
        and so does this one (`replaced`: the open lots this order already counts)."""
        pos = self._positions.net(account, symbol)
        p = self._pairs.get((account, symbol))
        if buy:
            open_same = p[0] if p else 0
            worst = pos + open_same - replaced + qty
        else:
            open_same = p[1] if p else 0
            worst = -(pos - open_same + replaced - qty)
        if worst > limit:
            verb, side = ("buy", "long") if buy else ("sell", "short")
            others = open_same - replaced
            return Reject(
                MAX_POSITION,
                f"a {verb} of {qty} could take the position to {worst} lots {side} "
                f"(position {pos}, other open {verb}s {others}), above the limit of "
                f"{limit} for {_on(account, symbol, is_pair)}",
            )
        return None

    def _band_reject(self, band: int, symbol: str, price: int) -> Reject | None:
        ref = self._refs.get(symbol)
        if ref is None:
            return None
        away = price - ref if price >= ref else ref - price
        if away * _BPS > band * ref:
            return Reject(
                PRICE_BAND,
                f"price {price} is {away * _BPS // ref} bps from the reference price {ref} "
                f"of {symbol}, outside the band of {band} bps",
            )
        return None

    def _take_token(
        self, acct: RiskLimits, pair: RiskLimits | None, account: str, symbol: str, ts: int
    ) -> Reject | None:
        """The order-rate check, last of all: take one token from the account's bucket
        and from the pair's (each when its limits set a rate), or from neither and reject.
        """
        a_rate = acct.max_orders_per_second
        a_b = a_level = None
        if a_rate is not None:
            a_b = self._acct_buckets.get(account)
            a_level = _refill(a_b, a_rate, acct.order_burst, ts)
            if a_level < _NS:
                return _rate_reject(f"account {account!r}", a_rate, acct.order_burst)
        p_rate = None if pair is None else pair.max_orders_per_second
        if pair is not None and p_rate is not None:
            key = (account, symbol)
            p_b = self._pair_buckets.get(key)
            p_level = _refill(p_b, p_rate, pair.order_burst, ts)
            if p_level < _NS:
                return _rate_reject(f"account {account!r} on {symbol}", p_rate, pair.order_burst)
            if p_b is None:
                self._pair_buckets[key] = [p_level - _NS, ts]
            else:
                _take(p_b, p_level, ts)
        if a_level is not None:
            if a_b is None:
                self._acct_buckets[account] = [a_level - _NS, ts]
            else:
                _take(a_b, a_level, ts)
        return None

    # --- what the core did ----------------------------------------------------------------

    def on_accepted(
        self,
        order_id: int,
        account: str,
        symbol: str,
        side: str | int,
        qty: int,
        price: int | None = None,
    ) -> None:
        """An order was accepted with open quantity `qty` (limit price `price`, if any):
        it counts as open (and towards the worst-case position) until `on_done` or
        fills take its open quantity to zero."""
        buy = side in _BUY
        if order_id in self._orders:
            raise ValueError(f"order {order_id} is already open")
        p = self._pairs.get((account, symbol))
        if p is None:
            p = self._pairs[(account, symbol)] = [0, 0, 0]
        self._orders[order_id] = _open_order(account, symbol, buy, qty, price, p)
        p[0 if buy else 1] += qty
        p[2] += 1
        self._acct_count[account] = self._acct_count.get(account, 0) + 1

    def on_held(self, order_id: int, account: str, symbol: str, side: str | int, qty: int) -> None:
        """A held order was accepted (a leg or a trailing stop, docs/order-classes.md):
        it counts as an open order, with `qty` lots, until `on_done`, whatever its lots
        come to meanwhile (`on_replaced` sets them, fills take from them)."""
        self.on_accepted(order_id, account, symbol, side, qty)
        self._orders[order_id].held = True

    def market_collar(self, account: str, symbol: str) -> int | None:
        """The market collar, in bps, that applies to the account on the symbol now:
        its `market_collar_bps`, else its `price_band_bps` (None: no collar)."""
        pair = self._per_symbol.get((account, symbol)) if self._per_symbol else None
        lim = self._per_account.get(account, self._default) if pair is None else pair
        return lim.price_band_bps if lim.market_collar_bps is None else lim.market_collar_bps

    def position_limit(self, account: str, symbol: str) -> int | None:
        """The `max_position` that applies to the account on the symbol now."""
        pair = self._per_symbol.get((account, symbol)) if self._per_symbol else None
        lim = self._per_account.get(account, self._default) if pair is None else pair
        return lim.max_position

    def check_release(
        self, order_id: int, qty: int, group: Iterable[int], limit: int | None
    ) -> Reject | None:
        """Whether a held leg may work `qty` lots now (in the book, or at the venue
        that holds it): the `max_position` check of a new order of that size against
        `limit` (the leg keeps the limit in force when it was accepted: configuration
        may change before a recovery replays the release), except that the lots its
        group already has open on its side are not counted twice: its own and those of
        the orders in `group` (its siblings, an OCO's limit), which its fills would take
        from. None for no limit, or an order risk does not hold."""
        o = self._orders.get(order_id)
        if o is None or limit is None:
            return None
        counted = o.qty + sum(self.open_qty(i) for i in group if i != order_id)
        is_pair = bool(self._per_symbol) and (o.account, o.symbol) in self._per_symbol
        return self._position_reject(limit, o.account, o.symbol, is_pair, o.buy, qty, counted)

    def open_qty(self, order_id: int) -> int:
        """The open lots risk counts for an order (0 for one it does not hold)."""
        o = self._orders.get(order_id)
        return 0 if o is None else o.qty

    def on_replaced(self, order_id: int, qty: int, price: int | None = None) -> None:
        """An open order now has open quantity `qty` (and limit price `price`, if given);
        at zero it is done, unless it is held."""
        o = self._orders.get(order_id)
        if o is None:
            return
        qty = max(qty, 0)
        o.pair[o.side] += qty - o.qty
        o.qty = qty
        if price is not None:
            o.price = price
        if qty == 0 and not o.held:
            self.on_done(order_id)

    def on_fill(self, order_id: int, qty: int) -> None:
        """An open order traded `qty` lots; at zero open quantity it is done (a held
        order stays, at zero lots)."""
        o = self._orders.get(order_id)
        if o is None:
            return
        if qty < o.qty:
            o.pair[o.side] -= qty
            o.qty -= qty
        elif o.held:
            o.pair[o.side] -= o.qty
            o.qty = 0
        else:
            self.on_done(order_id)

    def on_done(self, order_id: int) -> None:
        """An order left the book (filled, canceled, expired); unknown ids are ignored."""
        o = self._orders.pop(order_id, None)
        if o is None:
            return
        if self.ended is not None:
            self.ended.append(order_id)
        p = o.pair
        p[o.side] -= o.qty
        p[2] -= 1
        if p[2] == 0:
            del self._pairs[(o.account, o.symbol)]
        account = o.account
        n = self._acct_count[account] - 1
        if n:
            self._acct_count[account] = n
        else:
            del self._acct_count[account]

    def on_trade(
        self, symbol: str, price: int, ts: int
    ) -> tuple[SymbolHalted | SymbolResumed, ...]:
        """A trade printed: it becomes the symbol's reference price and the circuit
        breaker sees it. Returns the halt/resume events it caused (usually none)."""
        self._refs[symbol] = price
        cb = self._breaker
        if cb is None:
            return _NONE
        events = _NONE
        halts = self._halts
        if symbol in halts:
            until = halts[symbol]
            if until is None or ts < until:
                return _NONE  # halted: the trade still sets the reference, nothing else
            del halts[symbol]
            events = (SymbolResumed(0, until, symbol),)
        w = self._windows.get(symbol)
        if w is None:
            w = self._windows[symbol] = _Window()
        lo, hi = w.lo, w.hi
        edge = ts - cb.window_ns
        while lo and lo[0][0] <= edge:
            lo.popleft()
        while hi and hi[0][0] <= edge:
            hi.popleft()
        if lo:
            move = cb.move_bps
            low = lo[0][1]
            high = hi[0][1]
            if (price - low) * _BPS > move * low:
                start = low
            elif (high - price) * _BPS > move * high:
                start = high
            else:
                start = 0
            if start:
                until = ts + cb.halt_ns
                halts[symbol] = until
                lo.clear()
                hi.clear()
                return (*events, SymbolHalted(0, ts, symbol, CIRCUIT_BREAKER, until, price, start))
        while lo and lo[-1][1] >= price:
            lo.pop()
        lo.append((ts, price))
        while hi and hi[-1][1] <= price:
            hi.pop()
        hi.append((ts, price))
        return events

    # --- halts, references, kill switches -------------------------------------------------

    def halted(self, symbol: str, ts: int) -> bool:
        """Whether the symbol takes no new orders at `ts`."""
        if symbol not in self._halts:
            return False
        until = self._halts[symbol]
        return until is None or ts < until

    def halt(self, symbol: str, ts: int, duration_ns: int | None = None) -> SymbolHalted:
        """Halt a symbol by hand at `ts`, for `duration_ns` (None: until `resume`)."""
        until = None if duration_ns is None else ts + duration_ns
        self._halts[symbol] = until
        self._windows.pop(symbol, None)  # the breaker starts afresh after the halt
        return SymbolHalted(0, ts, symbol, MANUAL, until)

    def resume(self, symbol: str, ts: int) -> SymbolResumed | None:
        """End a symbol's halt at `ts`; None if it had none. A halt whose time was
        already up at `ts` resumes at its end time, as `expire` would say."""
        if symbol not in self._halts:
            return None
        until = self._halts.pop(symbol)
        return SymbolResumed(0, until if until is not None and until <= ts else ts, symbol)

    def expire(self, ts: int) -> list[Event]:
        """End the halts whose time is up at `ts`; one event each (at its end time),
        in symbol order. The engine calls it from its timer; checks never need it."""
        if not self._halts:  # the usual case, on every command
            return []
        done = sorted([(s, u) for s, u in self._halts.items() if u is not None and u <= ts])
        for s, _ in done:
            del self._halts[s]
        # list[Event]: the engine appends the command's events to it
        return [SymbolResumed(0, u, s) for s, u in done]

    def halts(self) -> dict[str, int | None]:
        """Every symbol halt not yet expired or resumed: symbol -> end ts (None: open)."""
        return dict(sorted(self._halts.items()))

    def reference(self, symbol: str) -> int | None:
        """The symbol's reference price (last trade, or `set_reference`), if any."""
        return self._refs.get(symbol)

    def set_reference(self, symbol: str, price: int | None) -> None:
        """Give a symbol a reference price before it trades (a mid, the last close);
        the next trade replaces it. None: it has none (until it trades)."""
        if price is None:
            self._refs.pop(symbol, None)
            return
        if price <= 0:
            raise ValueError(f"reference price of {symbol} must be > 0, not {price}")
        self._refs[symbol] = price

    def kill(self, account: str | None = None) -> bool:
        """Stop new orders and replaces of an account (None: of every account). Cancels
        still pass. True if the switch changed."""
        if account is None:
            changed = not self._kill_all
            self._kill_all = True
            return changed
        if account in self._killed:
            return False
        self._killed.add(account)
        return True

    def revive(self, account: str | None = None) -> bool:
        """Undo `kill` (None: the global switch; an account's own switch is separate).
        True if the switch changed."""
        if account is None:
            changed = self._kill_all
            self._kill_all = False
            return changed
        if account not in self._killed:
            return False
        self._killed.discard(account)
        return True

    def killed(self, account: str | None = None) -> bool:
        """Whether the global switch (None) or the account's (own or global) is on."""
        return self._kill_all or (account is not None and account in self._killed)

    def kill_switches(self) -> int:
        """How many kill switches are on: the accounts', plus 1 for the global one (read
        by the metrics thread: one len and one flag, each read whole under the GIL)."""
        return len(self._killed) + self._kill_all

    # --- open orders ----------------------------------------------------------------------

    def open_orders(self, account: str | None = None, symbol: str | None = None) -> list[int]:
        """Ids of the open orders risk knows, sorted, filtered by account and/or symbol
        (for a mass cancel after a kill)."""
        return sorted(
            i
            for i, o in self._orders.items()
            if (account is None or o.account == account) and (symbol is None or o.symbol == symbol)
        )

    def open_exposure(self, account: str, symbol: str) -> tuple[int, int, int]:
        """(open buy lots, open sell lots, open orders) of the account on the symbol."""
        p = self._pairs.get((account, symbol))
        return (p[0], p[1], p[2]) if p else (0, 0, 0)

    def open_order_count(self, account: str) -> int:
        """How many open orders the account has across its symbols."""
        return self._acct_count.get(account, 0)

    # --- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The state (not the limits) as JSON bytes; identical states, identical bytes."""
        snap = _Snapshot(
            SNAPSHOT_VERSION,
            self._kill_all,
            sorted(self._killed),
            sorted(self._halts.items(), key=lambda kv: kv[0]),
            sorted(self._refs.items()),
            [
                _WindowState(s, list(w.lo), list(w.hi))
                for s, w in sorted(self._windows.items(), key=lambda kv: kv[0])
                if w.lo
            ],
            sorted(
                [_BucketState(a, None, b[0], b[1]) for a, b in self._acct_buckets.items()]
                + [_BucketState(a, s, b[0], b[1]) for (a, s), b in self._pair_buckets.items()],
                key=lambda b: (b.account, b.symbol is not None, b.symbol or ""),
            ),
            [
                _OrderState(
                    i, o.account, o.symbol, "buy" if o.buy else "sell", o.qty, o.price, o.held
                )
                for i, o in sorted(self._orders.items(), key=lambda kv: kv[0])
            ],
        )
        return _encode(snap)

    def restore(self, data: bytes) -> None:
        """Replace the state with a `snapshot()`'s (limits stay as constructed);
        ValueError if it is not one, and then the current state is left untouched."""
        try:
            snap = _decode_snapshot(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a risk snapshot: {exc}") from None
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"risk snapshot version {snap.version}, not {SNAPSHOT_VERSION}")
        for o in snap.orders:
            if o.side not in ("buy", "sell") or o.qty < 0 or (o.qty == 0 and not o.held):
                raise ValueError(f"risk snapshot: order {o.id} has side {o.side!r}, qty {o.qty}")
        if len({o.id for o in snap.orders}) != len(snap.orders):
            raise ValueError("risk snapshot: an order id appears twice")
        self._reset()
        self._kill_all = snap.kill_all
        self._killed = set(snap.killed)
        self._halts = dict(snap.halts)
        self._refs = dict(snap.references)
        for ws in snap.windows:
            w = self._windows[ws.symbol] = _Window()
            w.lo.extend(ws.lo)
            w.hi.extend(ws.hi)
        for bs in snap.buckets:
            if bs.symbol is None:
                self._acct_buckets[bs.account] = [bs.level, bs.last_ts]
            else:
                self._pair_buckets[(bs.account, bs.symbol)] = [bs.level, bs.last_ts]
        for o in snap.orders:
            self.on_accepted(o.id, o.account, o.symbol, o.side, o.qty, o.price)
            self._orders[o.id].held = o.held


def collar_price(base: int, bps: int, buy: bool) -> int:
    """The furthest price a market order may trade at, `bps` from `base` (the reference
    price, or a triggered stop's stop price): the last price a limit order passes the
    price band of `bps` at, so the band and the collar agree. At least one tick."""
    reach = base * bps // _BPS
    return base + reach if buy else max(base - reach, 1)
