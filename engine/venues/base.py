"""The venue interface: how the engine process hands orders to an outside venue.

The engine loop is a single thread polling ZeroMQ sockets; it must never block on a venue.
So every `Venue` call returns at once (the request is queued to the venue's own worker
threads) and every outcome comes back later as a `VenueEvent` passed to the `emit`
callable given to `Venue.start`. `emit` is called from the venue's threads, never from
the caller's; the engine wires it to a thread-safe hand-off (an inproc PUSH socket or a
queue plus a wakeup).

Prices cross this interface as integer ticks and quantities as integer lots, as everywhere
in the engine; a `SymbolSpec` converts ticks to and from the venue's decimal prices
exactly (`decimal.Decimal`, never `float`).
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "EARLY_UPDATES_DROPPED",
    "HandBack",
    "OffTickPrice",
    "OrderClass",
    "OrderType",
    "Request",
    "Side",
    "SymbolSpec",
    "TimeInForce",
    "Venue",
    "VenueAccepted",
    "VenueCanceled",
    "VenueEvent",
    "VenueFilled",
    "VenueOrder",
    "VenueRejected",
    "VenueReplaced",
    "VenueStatus",
    "VenueTrailed",
]

Side: TypeAlias = Literal["buy", "sell"]
OrderType: TypeAlias = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
OrderClass: TypeAlias = Literal["simple", "bracket", "oto", "oco"]
TimeInForce: TypeAlias = Literal["gtc", "day", "ioc", "fok"]
Request: TypeAlias = Literal["submit", "cancel", "replace"]


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order the engine routes to a venue.

    `order_id` is the engine's id (the key of every event about this order). An empty
    `client_order_id` lets the venue choose one (the Alpaca adapter uses
    ``f"{prefix}{order_id}"``). `limit_price` is read for ``limit``/``stop_limit`` and
    `stop_price` for ``stop``/``stop_limit``, both in ticks; `qty` is in lots.

    Order classes (docs/order-classes.md, docs/venues.md): a ``trailing_stop`` has
    `trail_price` (ticks) or `trail_percent`; a ``bracket``, ``oto`` or ``oco`` has
    `take_profit` (its limit, ticks) and/or `stop_loss_stop` (and `stop_loss_limit` for
    a stop-limit stop-loss), and `legs`: the engine ids of its legs, the take-profit's
    first (an OCO's take-profit is the order itself: its one leg is the stop-loss). The
    venue reports each leg's fills and close under its engine id.
    """

    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    limit_price: int | None
    stop_price: int | None
    tif: TimeInForce
    order_class: OrderClass = "simple"
    take_profit: int | None = None
    stop_loss_stop: int | None = None
    stop_loss_limit: int | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    legs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class HandBack:
    """An order the engine hands back to its venue after a restart (`Venue.resume`,
    `Venue.watch_orphans`), with what it booked of it before.

    `lots`: the lots it booked as filled (None: all the venue filled, the order is
    closed for the engine: a group's parent whose legs are handed back). `notional`:
    what those lots cost, in ticks*lots (the sum of price*qty over the fills it
    booked), so the venue can price a fill it finds missing at what that fill really
    cost; None: unknown (state recovered from a snapshot or journal written before the
    engine kept it), and the venue values the booked lots at its own average price.
    """

    order: VenueOrder
    lots: int | None
    notional: int | None = None


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class VenueAccepted:
    """The venue took the order; `venue_order_id` is its own id for it. A trailing
    stop's `stop_price` and `hwm` (ticks) are the venue's when it took it (None: no
    watermark yet, or not a trailing stop)."""

    order_id: int
    venue_order_id: str
    stop_price: int | None = None
    hwm: int | None = None


@dataclass(frozen=True, slots=True)
class VenueRejected:
    """A request about `order_id` failed.

    `request` says which: ``"submit"`` means the order does not exist at the venue (it
    is dead for the engine); ``"cancel"``/``"replace"`` mean the order is unchanged and
    still live. `reason` is a short code (see docs/venues.md), `message` the venue's
    own words.

    `maybe_placed` (a submit only): the request may have reached the venue all the
    same (a timeout, a 5xx). The order is an *orphan*: the venue looks for it, cancels
    it if it shows up, reports the fills it got before that as `VenueFilled` (late
    fills, which the engine books) and ends the watch with a `VenueCanceled`.
    """

    order_id: int
    reason: str
    message: str
    request: Request = "submit"
    maybe_placed: bool = False


@dataclass(frozen=True, slots=True)
class VenueFilled:
    """An execution: `qty` lots at `price` ticks.

    `ts_event` is the venue's time of the fill in ns since the epoch, `execution_id` is
    unique per execution (duplicates are suppressed by the adapter), `leaves_qty` is the
    open quantity left on the order after this fill (0: the order is done).
    """

    order_id: int
    price: int
    qty: int
    ts_event: int
    execution_id: str
    leaves_qty: int


@dataclass(frozen=True, slots=True)
class VenueCanceled:
    """The order is closed with `remaining` lots unfilled.

    `reason` is ``"canceled"`` (by request or by the venue), ``"expired"`` (its time in
    force ran out) or ``"venue_rejected"`` (the venue refused it after accepting it).
    For an orphan (`VenueRejected.maybe_placed`) it says the venue stopped looking for
    it: closed at the venue, or never arrived (reason ``"orphan_closed"``); no fill of
    it follows.
    """

    order_id: int
    remaining: int
    reason: str


@dataclass(frozen=True, slots=True)
class VenueReplaced:
    """A replace took effect: the order now has `qty` open lots at `limit_price` ticks
    (``None``: the order has no limit price) under the venue id `new_venue_order_id`.

    A trailing stop's replace carries its trail after it (`trail_price` ticks or
    `trail_percent`, the kind it was placed with) and the venue's stop and watermark
    for it (`stop_price`, `hwm`; None before the first watermark)."""

    order_id: int
    new_venue_order_id: str
    qty: int
    limit_price: int | None
    stop_price: int | None = None  # a stop's (a stop-loss leg's) stop after the replace
    hwm: int | None = None
    trail_price: int | None = None
    trail_percent: float | None = None


@dataclass(frozen=True, slots=True)
class VenueTrailed:
    """A trailing stop's stop moved at the venue: its stop is now `stop_price` ticks and
    its watermark `hwm` (a sell's highest price since it was placed, a buy's lowest).
    Reported when the venue's values differ from the last ones reported (a venue that
    pushes nothing when its stop trails is polled for them)."""

    order_id: int
    stop_price: int
    hwm: int


@dataclass(frozen=True, slots=True)
class VenueStatus:
    """The venue's health changed: `connected` is true only when orders can be routed
    and their outcomes are being received; `detail` says what changed. `degraded`, when
    set, names a way the venue works worse than it should while it may be connected
    (`EARLY_UPDATES_DROPPED`); every status says it until one clears it."""

    connected: bool
    detail: str
    degraded: str | None = None


#: `VenueStatus.degraded` while the Alpaca adapter's store of updates of unknown legs
#: is past `early_updates_max`: it keeps none, and reads the orders waiting by REST.
EARLY_UPDATES_DROPPED = "early_updates_max"

VenueEvent: TypeAlias = (
    VenueAccepted
    | VenueRejected
    | VenueFilled
    | VenueCanceled
    | VenueReplaced
    | VenueTrailed
    | VenueStatus
)
"""Everything a venue reports through `emit`."""


# --------------------------------------------------------------------------- the protocol


@runtime_checkable
class Venue(Protocol):
    """What the engine process needs from a venue.

    Every method but `start` and `stop` returns immediately: the work happens on the
    venue's own threads and the outcome arrives through `emit`. For one order, events
    arrive in the order they happened (accepted before any fill, fills in sequence).
    """

    @property
    def name(self) -> str:
        """A short name for logs and metrics (``"alpaca"``)."""
        ...

    @property
    def connected(self) -> bool:
        """True when the venue is reachable (the last `VenueStatus` said so)."""
        ...

    @property
    def pending(self) -> int:
        """Requests queued for the venue's threads, not yet taken up (a metric's
        queue depth: read from another thread, so an instant's count)."""
        ...

    def start(self, emit: Callable[[VenueEvent], None]) -> None:
        """Start the venue's threads; events go to `emit` from now on."""
        ...

    def stop(self) -> None:
        """Stop the venue's threads (requests still queued are dropped)."""
        ...

    def submit(self, order: VenueOrder) -> None:
        """Route a new order: `VenueAccepted` or `VenueRejected` follows."""
        ...

    def cancel(self, order_id: int) -> None:
        """Ask to cancel: `VenueCanceled` (or a fill) or `VenueRejected` follows."""
        ...

    def replace(
        self,
        order_id: int,
        qty: int | None,
        limit_price: int | None,
        stop_price: int | None = None,
        *,
        trail_price: int | None = None,
        trail_percent: float | None = None,
    ) -> None:
        """Ask to change the open quantity, limit price and/or stop price, or a
        trailing stop's trail of the kind it has (`trail_price` ticks or
        `trail_percent`) (``None``: unchanged): `VenueReplaced` or `VenueRejected`
        follows."""
        ...

    def expect_hand_back(self, order_ids: Collection[int]) -> None:
        """Name, before `start`, the orders the engine will hand back after a restart
        (`resume`, `watch_orphans`: its open routed orders and groups, and its orphans,
        recovered from its journal). The venue may hold what it hears of these before
        they are handed back, all of it, and nothing of other orders placed before
        the restart."""
        ...

    def resume(self, orders: Sequence[HandBack]) -> None:
        """Follow an order the engine routed before this process started (it recovered
        it from its journal): `orders` is the order, then its legs, each with the lots
        the engine has already booked as filled and what they cost (`HandBack`). The
        venue reports what happened meanwhile (fills, closes) and then follows it as if
        it had been submitted here: a fill it finds missing is reported at the price
        that, with what the engine paid for the booked lots, makes the venue's filled
        quantity cost what the venue says it cost."""
        ...

    def watch_orphans(self, orders: Sequence[HandBack]) -> None:
        """Look again for orders the engine was told were rejected although their
        submit may have reached the venue (`VenueRejected.maybe_placed`), recovered from
        its journal after a restart, each with the lots the engine has booked of it and
        what they cost (`HandBack`; `lots` is never None here): as for an orphan of
        this process, fills beyond those are reported (priced as `resume` does), one found
        open is canceled, and the end of each watch is a `VenueCanceled`. A bracket's,
        OTO's or OCO's legs are orphans with their parent, which names them (`legs`),
        all in this call; their watch ends before the parent's. The engine
        calls it once, after its `resume` calls and even with no orphans: it ends the
        hand-off, and the venue may hold reports of orders placed before the restart
        until then (an order handed back by neither is not followed)."""
        ...


# --------------------------------------------------------------------------- prices


class OffTickPrice(ValueError):
    """A decimal price that is not a whole number of ticks."""


_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation])


class SymbolSpec:
    """How one symbol's integer ticks map to the venue's decimal prices (immutable).

    `tick_size` is the price of one tick in the venue's currency (``Decimal("0.01")``
    for a US equity quoted in cents). Give it as a `Decimal`, an `int` or a decimal
    string; a `float` is refused because it is already inexact.
    """

    __slots__ = ("tick_size",)
    tick_size: Decimal

    def __init__(self, tick_size: Decimal | int | str = Decimal("0.01")) -> None:
        raw: object = tick_size
        if isinstance(raw, bool) or not isinstance(raw, Decimal | int | str):
            raise TypeError(f"tick_size must be a Decimal, int or str, not {type(raw).__name__}")
        try:
            tick = Decimal(tick_size)
        except decimal.InvalidOperation:
            raise ValueError(f"tick_size {raw!r} is not a decimal number") from None
        if not tick.is_finite() or tick <= 0:
            raise ValueError(f"tick_size must be a positive finite number, got {raw!r}")
        object.__setattr__(self, "tick_size", tick)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SymbolSpec is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolSpec) and other.tick_size == self.tick_size

    def __hash__(self) -> int:
        return hash(self.tick_size)

    def __repr__(self) -> str:
        return f"SymbolSpec(tick_size=Decimal({str(self.tick_size)!r}))"

    def to_price(self, ticks: int) -> Decimal:
        """The exact decimal price of `ticks` ticks."""
        if isinstance(ticks, bool) or not isinstance(ticks, int):
            raise TypeError(f"ticks must be an int, not {type(ticks).__name__}")
        return _EXACT.multiply(Decimal(ticks), self.tick_size)

    def price_text(self, ticks: int) -> str:
        """`to_price` as plain decimal text with no exponent (``"123.45"``)."""
        return format(self.to_price(ticks), "f")

    def to_ticks(self, price: Decimal | str | int | float, rounding: str | None = None) -> int:
        """The number of ticks in `price`.

        A `float` is read through its shortest repr (``123.45`` is ``Decimal("123.45")``),
        which is exact for any price written with at most 15 significant digits. A price
        off the tick grid raises `OffTickPrice` unless a `decimal` rounding mode (for
        example ``decimal.ROUND_HALF_EVEN``) is given.
        """
        if isinstance(price, bool):
            raise TypeError("a price cannot be a bool")
        if isinstance(price, float):
            value = Decimal(repr(price))
        elif isinstance(price, Decimal | int | str):
            try:
                value = Decimal(price)
            except decimal.InvalidOperation:
                raise ValueError(f"{price!r} is not a decimal price") from None
        else:
            raise TypeError(f"a price must be a Decimal, str, int or float, not {type(price)}")
        if not value.is_finite():
            raise ValueError(f"{price!r} is not a finite price")
        ctx = decimal.Context(prec=60)
        quotient = ctx.divide(value, self.tick_size)
        whole = quotient.to_integral_value(rounding=decimal.ROUND_FLOOR)
        if quotient != whole:
            if rounding is None:
                raise OffTickPrice(
                    f"price {value} is not a multiple of the tick size {self.tick_size}"
                )
            whole = quotient.to_integral_value(rounding=rounding)
        return int(whole)
