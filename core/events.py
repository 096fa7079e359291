"""Trading events: the past-tense facts an engine publishes, as typed structs.

The compiled matching core writes events as fixed C structs with integer ids; the
engine turns them into these (names for accounts and symbols) to journal-replay,
publish on the wire (`tickplane.core.wire`) and hand to strategies. Each event has a
gap-free `seq` per engine and `ts_event`, the engine's time of the command that caused
it (int ns). `to_dict`/`from_dict` round-trip with a `"type"` discriminator whose values
are the words of ../shared/contracts/matching.md (`accepted`, `trade`, ...).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "STOP_LOSS",
    "TAKE_PROFIT",
    "BookDelta",
    "BookLevel",
    "Event",
    "KillSwitchChanged",
    "MarketData",
    "Message",
    "OrderAccepted",
    "OrderActivated",
    "OrderCanceled",
    "OrderRejected",
    "OrderReplaced",
    "OrderTrailed",
    "PositionChanged",
    "StopTriggered",
    "SymbolHalted",
    "SymbolResumed",
    "TopOfBook",
    "Trade",
    "TradePrint",
    "from_dict",
]

# A leg's role (`OrderAccepted.leg`, `OrderActivated.leg`; docs/order-classes.md).
TAKE_PROFIT: Final = "take_profit"
STOP_LOSS: Final = "stop_loss"


class Message(msgspec.Struct, array_like=True, tag_field="type"):
    """Base of every message: encoded as an array whose first element is its tag."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, `"type"` first."""
        out: dict[str, Any] = {"type": self.__struct_config__.tag}
        for name in self.__struct_fields__:
            out[name] = msgspec.to_builtins(getattr(self, name))
        return out


class OrderAccepted(Message, tag="accepted"):
    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    side: str
    order_type: str
    qty: int
    price: int | None = None  # limit price (limit, stop_limit)
    stop_price: int | None = None  # stop, stop_limit
    tif: str = "gtc"
    post_only: bool = False
    client_order_id: str | None = None
    # Order classes (docs/order-classes.md): "bracket", "oto", "oco" on the parent and
    # its legs, "simple" for a trailing stop, None for a plain order. A leg names its
    # `parent_id` and its `leg` role ("take_profit" or "stop_loss") and is held until
    # activated (`OrderActivated`).
    order_class: str | None = None
    parent_id: int | None = None
    leg: str | None = None
    trail_price: int | None = None  # trailing stop: ticks from the watermark
    trail_percent: float | None = None  # trailing stop: percent of the watermark


class OrderActivated(Message, tag="activated"):
    """A held leg now works `qty` (its quantity after this activation): the parent's
    fills activated it. Its `parent_id` and `leg` repeat the linkage."""

    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    parent_id: int
    leg: str
    qty: int


class OrderRejected(Message, tag="rejected"):
    seq: int
    ts_event: int
    id: int
    account: str
    reason: str


class Trade(Message, tag="trade"):
    seq: int
    ts_event: int
    symbol: str
    price: int
    qty: int
    taker: int
    maker: int
    taker_side: str
    taker_account: str
    maker_account: str


class OrderCanceled(Message, tag="canceled"):
    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    remaining: int
    reason: str


class OrderReplaced(Message, tag="replaced"):
    """An open order's price and/or quantity changed (a user's replace, or its group's
    fills reducing a leg). A trailing stop's carries its trail as it is now (the one
    of the kind it was placed with; the other stays None), on both venues, whether the
    replace changed it or not; every other order's leaves both None. The trail fields
    came after `stop_price` (an older frame has none: they decode as None)."""

    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    price: int  # the new price
    qty: int  # the new open quantity
    stop_price: int | None = None  # a held stop or leg: its stop price now
    trail_price: int | None = None  # a trailing stop: ticks from the watermark, now
    trail_percent: float | None = None  # a trailing stop: percent of the watermark, now


class StopTriggered(Message, tag="triggered"):
    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    stop_price: int


class OrderTrailed(Message, tag="trailed"):
    """A trailing stop's stop price moved with the market (docs/order-classes.md).

    `stop_price` is its stop now and `hwm` the watermark it trails (a sell's highest
    trade price since it was accepted, a buy's lowest: Alpaca's `hwm`). Sent only when
    the stop price changed, at most once per trailing stop per batch of trades (a sweep
    through ten levels moves it once), before any `StopTriggered` those trades cause."""

    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    stop_price: int
    hwm: int


class PositionChanged(Message, tag="position"):
    """An account's position in a symbol after a trade (money in tick-lots).

    `unrealized_pnl` is `position * price - cost_basis` at the price of the trade that
    changed it: the mark at that moment (the engine marks a symbol at its last trade),
    so it is stale as soon as the symbol trades again; `GetAccount` values positions at
    the mark now. It came after `cash` (an older frame has none: it decodes as None)."""

    seq: int
    ts_event: int
    account: str
    symbol: str
    position: int  # signed lots
    cost_basis: int  # tick-lots paid for the open position (signed like the position)
    realized_pnl: int  # tick-lots
    cash: int  # tick-lots
    unrealized_pnl: int | None = None  # tick-lots, at the trade's price (docstring)


class SymbolHalted(Message, tag="halted"):
    """A symbol stopped taking new orders and replaces (cancels still pass).

    `seq` is 0 until the engine stamps it. `until` is the ts (ns) the halt ends, None
    for a manual halt without end. A circuit-breaker halt names the trade `price` and
    the window's extreme it moved from (`from_price`).
    """

    seq: int
    ts_event: int
    symbol: str
    reason: str  # "circuit_breaker" or "manual"
    until: int | None
    price: int | None = None
    from_price: int | None = None


class SymbolResumed(Message, tag="resumed"):
    """A halted symbol takes orders again (`ts_event` is when its halt ended)."""

    seq: int
    ts_event: int
    symbol: str


class KillSwitchChanged(Message, tag="kill_switch"):
    """An account's (or, with `account` None, the whole engine's) kill switch was
    engaged (no new orders; open ones canceled) or released."""

    seq: int
    ts_event: int
    account: str | None
    engaged: bool


Event = (
    OrderAccepted
    | OrderRejected
    | Trade
    | OrderCanceled
    | OrderReplaced
    | StopTriggered
    | PositionChanged
    | SymbolHalted
    | SymbolResumed
    | KillSwitchChanged
    | OrderActivated
    | OrderTrailed
)


class BookLevel(msgspec.Struct, array_like=True, frozen=True):
    price: int
    qty: int
    orders: int


class TradePrint(msgspec.Struct, array_like=True, frozen=True):
    """A trade on the public tape: what `Trade` says minus who traded (no accounts, no
    order ids). `taker_side` is the aggressor's; `ts_event` the trade's own time."""

    price: int
    qty: int
    taker_side: str
    ts_event: int


class TopOfBook(Message, tag="top"):
    """Market data: a symbol's top levels after a turn touched it (`md_seq` counts per
    symbol), with the turn's `trades` of the symbol in the order they happened.

    The engine publishes one for every turn that changed or traded the symbol, so
    `trades` is its gap-free public tape: a consumer that fills an md_seq gap by
    replaying tops gets the trades too. (symbol, md_seq, index in `trades`) names a
    print. `trades` came last, with a default: an older frame decodes with none, and
    an older reader ignores it (a trailing element); a top without trades costs one
    byte more than before it existed (an empty array: msgspec omits no defaults of
    an array-like struct).

    `has_delta`: the `BookDelta` of the same md_seq follows it (its levels changed), so
    a consumer that does not get that delta knows it missed one and replays it
    (`wire.ReplayMarketData`). Last, with a default, for the same reasons as `trades`:
    a top from before it says no delta follows, whose consumer cannot tell one was lost
    (its engine did not log deltas either)."""

    md_seq: int
    ts_event: int
    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    last_price: int | None
    trades: list[TradePrint] = []
    has_delta: bool = False


class BookDelta(Message, tag="delta"):
    """Market data: the levels of a symbol's top that changed since its previous
    TopOfBook (qty 0: the level left the top). Sent right after the TopOfBook with the
    same `md_seq` (which says so: `TopOfBook.has_delta`), for consumers that keep their
    own book; logged and replayed with it."""

    md_seq: int
    ts_event: int
    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]


MarketData = TopOfBook | BookDelta

_BY_TAG: dict[str, type[Message]] = {
    c.__struct_config__.tag: c  # type: ignore[misc]
    for c in (
        OrderAccepted,
        OrderRejected,
        Trade,
        OrderCanceled,
        OrderReplaced,
        StopTriggered,
        PositionChanged,
        SymbolHalted,
        SymbolResumed,
        KillSwitchChanged,
        OrderActivated,
        OrderTrailed,
        TopOfBook,
        BookDelta,
    )
}


def from_dict(d: dict[str, Any]) -> Event | MarketData:
    """Rebuild an event from `to_dict` output (validated: wrong types raise ValueError)."""
    cls = _BY_TAG.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {d.get('type')!r}")
    row: list[Any] = [d["type"]]
    for f in msgspec.structs.fields(cls):
        if f.name in d:
            row.append(d[f.name])
        elif f.required:
            raise ValueError(f"{d['type']} event without {f.name!r}")
        elif f.default_factory is not msgspec.NODEFAULT:  # a list's default: []
            row.append(f.default_factory())
        else:
            row.append(f.default)
    try:
        event: Event | MarketData = msgspec.convert(row, Event | MarketData)
        return event
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
