"""The engine's wire protocol: every message that crosses a ZeroMQ socket, in one place.

Sockets (see docs/engine-service.md):
- order entry: the engine binds a ROUTER; clients connect a DEALER and send requests;
  every request gets exactly one reply (`Ack` or `Reject`), correlated by `req`;
- events: the engine binds a PUB; topic `b"e"` carries every trading event with a
  gap-free `seq`, each message a batch of events in seq order (`decode_events`);
  topic `b"m.<SYMBOL>"` carries market data, one message each (`decode_event`): a
  `TopOfBook` (with its turn's trades as anonymous prints, the public tape) and, when
  its levels changed (`TopOfBook.has_delta`), the `BookDelta` of the same `md_seq`;
  topic `b"h"` carries the last seq while the engine is idle (`decode_heartbeat`);
- a consumer that sees a gap sends `Replay(from_seq, to_seq)` on order entry and gets
  the missing events back in `Ack.events`; a gap in a symbol's `md_seq` (market data),
  `ReplayMarketData(symbol, from_md_seq, to_md_seq, deltas)`, answered in `Ack.tops`
  (and `Ack.deltas`): a missed delta is found by its top's `has_delta`;
- a client may send several requests as one `Batch` frame (`encode_batch`); the engine
  handles them in order, exactly as if they had come one frame each, and answers with
  one `Replies` frame holding their replies in the same order (`decode_replies` reads
  either kind of reply frame). Per-frame costs (ZeroMQ, the engine's loop) are then paid
  once per batch: what makes pipelined order entry cheap.

A frame is one version byte (`WIRE_VERSION`) followed by msgpack. Messages are msgspec
structs encoded as arrays with a tag first (compact, fast); the events are those of
`tickplane.core.events`; prices are int ticks and
quantities int lots, as in the engine core. Side, type, tif and reason values are the
words of ../shared/contracts/matching.md (`"buy"`, `"stop_limit"`, `"duplicate_id"`).
An account a request names is an account name by core/accounts.py's rule (the engine
refuses others: `Reject` `bad_account`).
Adding an optional field at the end is compatible; anything else bumps WIRE_VERSION.
A client that needs only an Ack's ids and seqs may read it as an `AckHead` (the same
frame, its events left encoded: `decode_reply_heads`, `EngineClient.send_head`).
`Batch` and `Replies` are new messages within version 1 (an engine that predates them
refuses a `Batch` frame as `bad_frame` with req 0): a client sends one only to an
engine of this version, as every part of one release is.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from tickplane.core.events import (
    BookDelta,
    Event,
    MarketData,
    Message,
    OrderRejected,
    TopOfBook,
)

__all__ = [
    "ENCODER",
    "FRAME_DECODER",
    "MAX_BATCH",
    "VERSION_BYTE",
    "WIRE_VERSION",
    "AccountView",
    "Ack",
    "AckHead",
    "Batch",
    "CancelOrder",
    "Control",
    "GetAccount",
    "GetBook",
    "GetOrder",
    "GetSymbols",
    "ListOrders",
    "MassCancel",
    "NewOrder",
    "OrderView",
    "Ping",
    "PositionView",
    "Reject",
    "ReplaceOrder",
    "Replay",
    "ReplayMarketData",
    "Replies",
    "Reply",
    "ReplyHead",
    "Request",
    "StopLoss",
    "SymbolInfo",
    "TakeProfit",
    "WireError",
    "decode_event",
    "decode_events",
    "decode_frame",
    "decode_heartbeat",
    "decode_replies",
    "decode_reply",
    "decode_reply_heads",
    "decode_request",
    "encode",
    "encode_batch",
    "encode_events",
    "encode_heartbeat",
]

WIRE_VERSION: Final = 1
_VERSION_BYTE: Final = bytes([WIRE_VERSION])
MAX_BATCH: Final = 1024
"""The most requests one `Batch` may hold (the engine refuses each of a longer one)."""


class WireError(ValueError):
    """A frame that is not a valid message of this protocol version."""


class _Msg(Message):
    pass


# --- requests (client -> engine) ---------------------------------------------------------


class NewOrder(_Msg, tag="new"):
    req: int
    account: str
    symbol: str
    side: str
    order_type: str
    qty: int
    price: int | None = None
    stop_price: int | None = None
    tif: str = "gtc"
    post_only: bool = False
    client_order_id: str | None = None
    # Order classes (docs/order-classes.md); the defaults are a plain order.
    order_class: str | None = None  # None/"simple", "bracket", "oto", "oco"
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    trail_price: int | None = None  # order_type "trailing_stop": ticks
    trail_percent: float | None = None  # order_type "trailing_stop": 0 < percent < 100


class TakeProfit(msgspec.Struct, array_like=True, frozen=True):
    """A bracket's, OTO's or OCO's take-profit leg: a limit order at `limit_price`."""

    limit_price: int


class StopLoss(msgspec.Struct, array_like=True, frozen=True):
    """A stop-loss leg: a stop at `stop_price`, a stop-limit with `limit_price`."""

    stop_price: int
    limit_price: int | None = None


class CancelOrder(_Msg, tag="cancel"):
    req: int
    account: str
    order_id: int


class ReplaceOrder(_Msg, tag="replace"):
    req: int
    account: str
    order_id: int
    qty: int | None = None
    price: int | None = None
    stop_price: int | None = None  # a held stop-loss leg's stop (docs/order-classes.md)
    trail_price: int | None = None  # a trailing stop's trail, of the kind it has
    trail_percent: float | None = None


class MassCancel(_Msg, tag="mass_cancel"):
    """Cancel every open order of an account and/or symbol (both None: everything)."""

    req: int
    account: str | None = None
    symbol: str | None = None


class GetOrder(_Msg, tag="get_order"):
    """One of the account's orders by id, open or recently finished (`Ack.order`); or,
    with `client_order_id` (order_id 0), the order the account placed under that id
    (`Ack.order_id`; `Ack.order` while open or recently finished). An order finished
    longer ago than the engine keeps (`EngineConfig.finished_orders`), or another
    account's, is `unknown_order`."""

    req: int
    account: str
    order_id: int
    client_order_id: str | None = None


class GetBook(_Msg, tag="get_book"):
    """A symbol's aggregated levels (L2), best first; the reply's `book` holds them."""

    req: int
    symbol: str
    depth: int = 10


class Replay(_Msg, tag="replay"):
    """Re-send the trading events with from_seq <= seq <= to_seq."""

    req: int
    from_seq: int
    to_seq: int


class ReplayMarketData(_Msg, tag="replay_md"):
    """Re-send `symbol`'s tops of book with from_md_seq <= md_seq <= to_md_seq, and
    with `deltas` their L2 deltas too.

    The reply's `tops` holds those the engine's market-data log has (a page at most),
    and `md_seq` the last number the answer accounts for: every md_seq from from_md_seq
    to it that `tops` lacks is not kept (older than the log, or lost with the engine's
    last milliseconds before a kill -9) and never will be. Ask again from md_seq + 1
    while it is below to_md_seq; `md_seq` < from_md_seq: the symbol has no top that new
    yet. An unknown symbol is `unknown_symbol`; no log, `replay_unavailable`.

    With `deltas`, the reply's `deltas` holds the `BookDelta`s of those tops (one per
    top whose `has_delta` is set: the log keeps a delta exactly when it keeps its top;
    a consumer counts an announced delta that is absent as not kept). Both lists in
    md_seq order. `deltas` came last with a default: a request from before it
    gets the reply it always got, and an engine from before it ignores it and answers
    `deltas` None (it logs no deltas)."""

    req: int
    symbol: str
    from_md_seq: int
    to_md_seq: int
    deltas: bool = False


class Control(_Msg, tag="control"):
    """Operator actions (the gateway allows them to the admin scope only):
    `kill` / `revive` an account's kill switch (account None: the whole engine; a kill
    also cancels the open orders it covers), `halt` / `resume` a symbol (`duration_ns`
    None: until resumed)."""

    req: int
    action: str
    account: str | None = None
    symbol: str | None = None
    duration_ns: int | None = None


class Ping(_Msg, tag="ping"):
    req: int


class GetSymbols(_Msg, tag="get_symbols"):
    """The symbols this engine trades; the reply's `symbols` holds them."""

    req: int


class GetAccount(_Msg, tag="get_account"):
    """An account's cash, P&L, positions and kill switch; the reply's `account`."""

    req: int
    account: str


class ListOrders(_Msg, tag="list_orders"):
    """An account's open orders (resting, held, routed), by id; the reply's `orders`."""

    req: int
    account: str
    symbol: str | None = None


Request = (
    NewOrder
    | CancelOrder
    | ReplaceOrder
    | MassCancel
    | GetOrder
    | GetBook
    | Replay
    | ReplayMarketData
    | Control
    | Ping
    | GetSymbols
    | GetAccount
    | ListOrders
)


# --- replies (engine -> client) ---------------------------------------------------------------


class OrderView(msgspec.Struct, array_like=True, frozen=True):
    """An order of the account that asked: open (`status` "resting", "held" or
    "routed"), or recently finished ("filled", "canceled", "rejected": engine/finished.py
    keeps the last `EngineConfig.finished_orders`)."""

    id: int
    account: str
    symbol: str
    side: str
    order_type: str
    # open: "resting" | "held" (a stop not yet triggered) | "routed" (at an outside
    # venue); finished: "filled" | "canceled" | "rejected" (a venue refused it)
    status: str
    price: int | None
    stop_price: int | None
    qty: int  # open quantity
    tif: str = "gtc"
    client_order_id: str | None = None
    order_class: str | None = None  # as in OrderAccepted
    parent_id: int | None = None
    leg: str | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    filled_qty: int = 0  # legs, trailing stops and finished orders: lots filled so far
    hwm: int | None = None  # a trailing stop: the watermark its stop trails (Alpaca's hwm)
    # A finished order (status "filled", "canceled" or "rejected"; `qty` 0): its fills'
    # average price (ticks), why it was canceled or rejected, when it was accepted and
    # finished (the engine's ns), and its quantity (filled + open, after replaces; a
    # leg's is its parent's). None on an open order.
    avg_fill_price: float | None = None
    reason: str | None = None
    created_ns: int | None = None
    finished_ns: int | None = None
    total_qty: int | None = None


class SymbolInfo(msgspec.Struct, array_like=True, frozen=True):
    """A traded symbol: prices in ticks of `tick_size` (a decimal string), quantities in
    lots of `lot_size`; the price that risk bands use, the last trade, halted or not."""

    name: str
    tick_size: str
    lot_size: int
    reference_price: int | None
    last_price: int | None
    halted: bool


class PositionView(msgspec.Struct, array_like=True, frozen=True):
    """An account's position in a symbol: `qty` signed lots; money in tick-lots.
    `avg_price` (ticks) is `cost_basis / qty`, for display; `cost_basis` is exact."""

    symbol: str
    qty: int
    avg_price: float | None
    cost_basis: int
    realized_pnl: int
    unrealized_pnl: int  # against `last_price` (0 before the symbol's first trade)
    last_price: int | None


class AccountView(msgspec.Struct, array_like=True, frozen=True):
    """An account's money (tick-lots), P&L totals, positions, open orders, and whether
    a kill switch (its own or the engine's) stops its new orders."""

    account: str
    cash: int
    equity: int
    realized_pnl: int
    unrealized_pnl: int
    positions: list[PositionView]
    open_orders: int
    kill_switch: bool


class Ack(_Msg, tag="ack"):
    """The request was processed: the events it caused, in order (journaled)."""

    req: int
    order_id: int | None = None
    events: list[Event] = msgspec.field(default_factory=list)
    order: OrderView | None = None
    last_seq: int = 0  # the engine's last event seq when it replied
    book: TopOfBook | None = None
    # A NewOrder whose (account, client_order_id) the engine already accepted with the
    # same fields: `order_id` is that order's, `order` its view while open or recently
    # finished, nothing ran.
    duplicate: bool = False
    symbols: list[SymbolInfo] | None = None  # GetSymbols
    account: AccountView | None = None  # GetAccount
    orders: list[OrderView] | None = None  # ListOrders
    tops: list[TopOfBook] | None = None  # ReplayMarketData
    md_seq: int | None = None  # ReplayMarketData: the last md_seq the answer covers
    deltas: list[BookDelta] | None = None  # ReplayMarketData asked with deltas


class Reject(_Msg, tag="reject"):
    """The request was refused and changed nothing."""

    req: int
    reason: str
    message: str = ""


Reply = Ack | Reject


class AckHead(_Msg, tag="ack"):
    """An `Ack` read only as far as order entry's caller needs it: ids, `last_seq` and
    `duplicate`, its `events` (and `order`, `book`) left encoded. The same frame as an
    Ack (array-like, so read by position; the fields after `duplicate` are not read):
    no request whose reply is read so carries them (NewOrder, CancelOrder,
    ReplaceOrder). `rejection()` decodes the events only when they may hold an
    `OrderRejected`. `EngineClient.send_head` asks for one: decoding a whole Ack was
    ~11% of the gateway's instructions per WebSocket order (api/README.md)."""

    req: int
    order_id: int | None = None
    events: msgspec.Raw = msgspec.Raw(b"\x90")  # an empty array
    order: msgspec.Raw = msgspec.Raw(b"\xc0")  # nil
    last_seq: int = 0
    book: msgspec.Raw = msgspec.Raw(b"\xc0")
    duplicate: bool = False

    def rejection(self) -> OrderRejected | None:
        """The `OrderRejected` of the reply's order among its events, if any: the engine
        refused the order after accepting the request (a venue's refusal, post-only)."""
        if _find_rejected(self.events) is None:  # nothing could be one: not decoded
            return None
        for ev in _event_batches.decode(self.events):
            if type(ev) is OrderRejected and ev.id == self.order_id:
                return ev
        return None


ReplyHead = AckHead | Reject


# --- batches (one frame, many requests; docs/engine-service.md) ------------------------------


class Batch(_Msg, tag="batch"):
    """Requests sent as one frame, handled in order as if sent one by one; answered by
    one `Replies` frame. 1 to `MAX_BATCH` requests; a batch holds no batch."""

    requests: list[Request]


class Replies(_Msg, tag="replies"):
    """The replies to a `Batch`, one per request, in the batch's order."""

    replies: list[Reply]


class _ReplyHeads(_Msg, tag="replies"):
    """A `Replies` frame read as `AckHead`s."""

    replies: list[ReplyHead]


# --- codec -------------------------------------------------------------------------------------

_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)
_frames = msgspec.msgpack.Decoder(Request | Batch)
# The codec itself, for a compiled hot loop (the engine's service) to call without the
# functions below: a call to one of them runs an interpreted frame, ~1.5k instructions
# of the ~40k an order costs the engine. A caller does what `encode` and
# `decode_frame` do (the version byte), and leaves errors to `decode_frame`.
ENCODER: Final = _encoder
FRAME_DECODER: Final = _frames
VERSION_BYTE: Final = _VERSION_BYTE
_replies = msgspec.msgpack.Decoder(Reply)
_reply_frames = msgspec.msgpack.Decoder(Reply | Replies)
_events = msgspec.msgpack.Decoder(Event | MarketData)
_event_batches = msgspec.msgpack.Decoder(list[Event])
_head_frames = msgspec.msgpack.Decoder(ReplyHead | _ReplyHeads)
# How msgpack spells OrderRejected's tag (a fixstr of 8): events without these bytes
# hold no OrderRejected (with them, maybe: an account may be named so; decoded then).
_REJECTED_TAG: Final = b"\xa8rejected"
assert msgspec.msgpack.encode(OrderRejected.__struct_config__.tag) == _REJECTED_TAG
# (a regex reads the Raw's buffer as it is: `in` needed a bytes copy first, twice the cost)
_find_rejected = re.compile(re.escape(_REJECTED_TAG)).search


def encode(msg: msgspec.Struct) -> bytes:
    """One frame: the version byte, then the message."""
    return _VERSION_BYTE + _encoder.encode(msg)


_SLICE_MAX = 2048  # below this a copy of the body is cheaper than a memoryview of it


def _body(frame: bytes) -> bytes | memoryview:
    if not frame:
        raise WireError("empty frame")
    if frame[0] != WIRE_VERSION:
        raise WireError(f"wire version {frame[0]} (this side speaks {WIRE_VERSION})")
    # An order frame is ~50 bytes: slicing it costs half what making a memoryview does.
    return frame[1:] if len(frame) <= _SLICE_MAX else memoryview(frame)[1:]


def decode_request(frame: bytes) -> Request:
    """Decode a request frame; WireError says what is wrong with it."""
    try:
        request: Request = _requests.decode(_body(frame))
        return request
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # UTF-8; deep nesting
        raise WireError(str(exc)) from None


def decode_frame(frame: bytes) -> Request | Batch:
    """Decode what arrives on order entry: one request or a `Batch` of them."""
    try:
        msg: Request | Batch = _frames.decode(_body(frame))
        return msg
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # UTF-8; deep nesting
        raise WireError(str(exc)) from None


def encode_batch(requests: list[Request]) -> bytes:
    """One frame for `requests`: a plain request frame for one, a `Batch` for more."""
    if len(requests) == 1:
        return encode(requests[0])
    return encode(Batch(requests))


def _replies_of(
    frame: bytes, decoder: msgspec.msgpack.Decoder[Any], many: type[Replies | _ReplyHeads]
) -> list[Any]:
    """The replies a frame holds, as `decoder` reads them: one reply, or the `replies` of
    a `many` (`Replies`, or its head form)."""
    try:
        msg: Any = decoder.decode(_body(frame))
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # UTF-8; deep nesting
        raise WireError(str(exc)) from None
    replies: list[Any] = msg.replies if isinstance(msg, many) else [msg]
    return replies


def decode_replies(frame: bytes) -> list[Reply]:
    """The replies a frame holds: one `Ack`/`Reject`, or the replies of a `Replies`."""
    return _replies_of(frame, _reply_frames, Replies)


def decode_reply_heads(frame: bytes) -> list[ReplyHead]:
    """`decode_replies`, each Ack read as an `AckHead` (its events left encoded)."""
    return _replies_of(frame, _head_frames, _ReplyHeads)


def decode_reply(frame: bytes) -> Reply:
    try:
        reply: Reply = _replies.decode(_body(frame))
        return reply
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # UTF-8; deep nesting
        raise WireError(str(exc)) from None


def encode_events(events: list[Event]) -> bytes:
    """One frame holding a batch of trading events (what topic `e` carries)."""
    return _VERSION_BYTE + _encoder.encode(events)


def decode_events(frame: bytes) -> list[Event]:
    """The events of a topic-`e` frame, in seq order."""
    try:
        events: list[Event] = _event_batches.decode(_body(frame))
        return events
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise WireError(str(exc)) from None


def encode_heartbeat(last_seq: int) -> bytes:
    """What topic `h` carries while the engine is idle: its last event seq, so a
    subscriber that lost the last messages notices without waiting for new ones."""
    return _VERSION_BYTE + _encoder.encode(last_seq)


def decode_heartbeat(frame: bytes) -> int:
    try:
        seq = msgspec.msgpack.decode(_body(frame), type=int)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise WireError(str(exc)) from None
    return seq


def decode_event(frame: bytes) -> Event | MarketData:
    try:
        event: Event | MarketData = _events.decode(_body(frame))
        return event
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # UTF-8; deep nesting
        raise WireError(str(exc)) from None
