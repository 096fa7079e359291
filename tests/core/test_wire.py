"""The wire protocol: every message round-trips; no byte string crashes a decoder."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickplane.core import wire
from tickplane.core.events import (
    BookDelta,
    BookLevel,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    PositionChanged,
    StopTriggered,
    TopOfBook,
    Trade,
    TradePrint,
    from_dict,
)

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
names = st.text(max_size=12)
maybe = st.none() | ints

requests = st.one_of(
    st.builds(
        wire.NewOrder,
        ints,
        names,
        names,
        names,
        names,
        ints,
        maybe,
        maybe,
        names,
        st.booleans(),
        st.none() | names,
    ),
    st.builds(wire.CancelOrder, ints, names, ints),
    st.builds(wire.ReplaceOrder, ints, names, ints, maybe, maybe),
    st.builds(wire.MassCancel, ints, st.none() | names, st.none() | names),
    st.builds(wire.GetOrder, ints, names, ints),
    st.builds(wire.GetBook, ints, names, ints),
    st.builds(wire.Replay, ints, ints, ints),
    st.builds(wire.Ping, ints),
)
events = st.one_of(
    st.builds(
        OrderAccepted,
        ints,
        ints,
        ints,
        names,
        names,
        names,
        names,
        ints,
        maybe,
        maybe,
        names,
        st.booleans(),
        st.none() | names,
    ),
    st.builds(OrderRejected, ints, ints, ints, names, names),
    st.builds(Trade, ints, ints, names, ints, ints, ints, ints, names, names, names),
    st.builds(OrderCanceled, ints, ints, ints, names, names, ints, names),
    st.builds(
        OrderReplaced,
        ints,
        ints,
        ints,
        names,
        names,
        ints,
        ints,
        maybe,
        maybe,
        st.none() | st.floats(allow_nan=False),
    ),
    st.builds(StopTriggered, ints, ints, ints, names, names, ints),
    st.builds(OrderTrailed, ints, ints, ints, names, names, ints, ints),
    st.builds(PositionChanged, ints, ints, names, names, ints, ints, ints, ints),
)
levels = st.lists(st.builds(BookLevel, ints, ints, ints), max_size=3)
prints = st.lists(st.builds(TradePrint, ints, ints, st.sampled_from(["buy", "sell"]), ints))
tops = st.builds(TopOfBook, ints, ints, names, levels, levels, maybe, prints)


@given(requests)
def test_requests_round_trip(msg: wire.Request) -> None:
    assert wire.decode_request(wire.encode(msg)) == msg


@given(st.lists(requests, min_size=1, max_size=5))
def test_batches_round_trip(msgs: list[wire.Request]) -> None:
    frame = wire.encode_batch(msgs)
    decoded = wire.decode_frame(frame)
    if len(msgs) == 1:  # one request needs no batch: its own frame
        assert decoded == msgs[0] and frame == wire.encode(msgs[0])
    else:
        assert decoded == wire.Batch(msgs)
    replies: list[wire.Reply] = [wire.Ack(m.req) for m in msgs]
    assert wire.decode_replies(wire.encode(wire.Replies(replies))) == replies
    assert wire.decode_replies(wire.encode(replies[0])) == replies[:1]


def test_a_batch_holds_no_batch_and_single_request_decoders_refuse_one() -> None:
    inner = wire.Batch([wire.Ping(1), wire.Ping(2)])
    nested = wire.encode(wire.Batch([inner]))  # type: ignore[list-item]
    with pytest.raises(wire.WireError):
        wire.decode_frame(nested)
    with pytest.raises(wire.WireError):
        wire.decode_request(wire.encode(inner))
    with pytest.raises(wire.WireError):
        wire.decode_reply(wire.encode(wire.Replies([wire.Ack(1)])))


@given(events | tops)
def test_events_round_trip_on_the_wire_and_as_dicts(ev: object) -> None:
    assert isinstance(ev, msgspec.Struct)
    assert wire.decode_event(wire.encode(ev)) == ev
    d = ev.to_dict()  # type: ignore[attr-defined]
    assert d["type"] == ev.__struct_config__.tag
    assert from_dict(d) == ev


@given(st.lists(events, max_size=6))
def test_event_batches_round_trip(evs: list[object]) -> None:
    assert wire.decode_events(wire.encode_events(evs)) == evs  # type: ignore[arg-type]


@given(st.lists(events, max_size=4), ints, maybe)
def test_replies_round_trip(evs: list[object], req: int, order_id: int | None) -> None:
    ack = wire.Ack(req, order_id, evs)  # type: ignore[arg-type]
    assert wire.decode_reply(wire.encode(ack)) == ack
    rej = wire.Reject(req, "bad_frame", "why")
    assert wire.decode_reply(wire.encode(rej)) == rej


@given(st.lists(events, max_size=4), ints, maybe, ints, st.booleans(), maybe)
def test_reply_heads_read_what_an_ack_says_and_find_its_rejection(
    evs: list[object],
    req: int,
    order_id: int | None,
    last_seq: int,
    dup: bool,
    rejected: int | None,
) -> None:
    """An Ack read as a head: the same ids and seqs, its events the same when decoded,
    and `rejection()` the OrderRejected of its order, exactly when there is one (also
    when the bytes of the tag occur elsewhere: an account named "rejected")."""
    if rejected is not None:
        evs = [*evs, OrderRejected(1, 2, rejected, "rejected", "post_only")]
    ack = wire.Ack(req, order_id, evs, None, last_seq, None, dup)  # type: ignore[arg-type]
    rej = wire.Reject(req + 1, "bad_frame", "why")
    for frame in (wire.encode(wire.Replies([ack, rej])), wire.encode(ack)):
        head = wire.decode_reply_heads(frame)[0]
        assert isinstance(head, wire.AckHead)
        assert (head.req, head.order_id, head.last_seq, head.duplicate) == (
            req,
            order_id,
            last_seq,
            dup,
        )
        assert wire.decode_events(bytes([wire.WIRE_VERSION]) + bytes(head.events)) == evs
        want = [e for e in evs if type(e) is OrderRejected and e.id == order_id]
        assert head.rejection() == (want[0] if want else None)
    assert wire.decode_reply_heads(wire.encode(wire.Replies([ack, rej])))[1] == rej
    with pytest.raises(wire.WireError):
        wire.decode_reply_heads(b"\x01\xc1")
    named = OrderCanceled(1, 2, 3, "rejected", "GOOG", 0, "rejected")  # the tag's bytes
    other = wire.Ack(1, 3, [named], last_seq=1)
    head = wire.decode_reply_heads(wire.encode(other))[0]
    assert isinstance(head, wire.AckHead) and head.rejection() is None


class _ReplacedBeforeTrails(msgspec.Struct, array_like=True, tag_field="type", tag="replaced"):
    """OrderReplaced as a reader of the release before its trail fields decodes it."""

    seq: int
    ts_event: int
    id: int
    account: str
    symbol: str
    price: int
    qty: int
    stop_price: int | None = None


def test_order_replaced_frames_before_and_after_its_trail_fields_decode() -> None:
    """The trail fields came last, with defaults: a frame of an engine from before them
    (and from before `stop_price`) decodes with no trail; a frame with them decodes in
    a reader from before them (trailing elements it does not know are ignored)."""
    old = ["replaced", 7, 1, 42, "alice", "GOOG", 101, 4]
    for row, stop in ((old, None), ([*old, 99], 99)):
        frame = bytes([wire.WIRE_VERSION]) + msgspec.msgpack.encode([row])
        (ev,) = wire.decode_events(frame)
        assert ev == OrderReplaced(7, 1, 42, "alice", "GOOG", 101, 4, stop)
        assert isinstance(ev, OrderReplaced) and (ev.trail_price, ev.trail_percent) == (None, None)
        assert wire.decode_event(bytes([wire.WIRE_VERSION]) + msgspec.msgpack.encode(row)) == ev
    keys = ["type", "seq", "ts_event", "id", "account", "symbol", "price", "qty"]
    as_dict = dict(zip(keys, old, strict=True))
    assert from_dict(as_dict) == OrderReplaced(7, 1, 42, "alice", "GOOG", 101, 4)
    for trail in ((3, None), (None, 1.5)):
        new = OrderReplaced(7, 1, 42, "alice", "GOOG", 99, 4, 99, *trail)
        frame = wire.encode_events([new])
        assert wire.decode_events(frame) == [new]
        older = msgspec.msgpack.decode(frame[1:], type=list[_ReplacedBeforeTrails])
        assert older == [_ReplacedBeforeTrails(7, 1, 42, "alice", "GOOG", 99, 4, 99)]


class _PositionBeforeUnrealized(msgspec.Struct, array_like=True, tag_field="type", tag="position"):
    """PositionChanged as a reader of the release before `unrealized_pnl` decodes it."""

    seq: int
    ts_event: int
    account: str
    symbol: str
    position: int
    cost_basis: int
    realized_pnl: int
    cash: int


def test_position_changed_frames_before_and_after_unrealized_pnl_decode() -> None:
    """`unrealized_pnl` came last, with a default: an older engine's frame decodes with
    None, and a frame with it decodes in a reader from before it."""
    old = ["position", 7, 1, "alice", "GOOG", 3, 300, -30, 99_670]
    frame = bytes([wire.WIRE_VERSION]) + msgspec.msgpack.encode([old])
    (ev,) = wire.decode_events(frame)
    assert ev == PositionChanged(7, 1, "alice", "GOOG", 3, 300, -30, 99_670)
    assert isinstance(ev, PositionChanged) and ev.unrealized_pnl is None
    keys = ["type", "seq", "ts_event", "account", "symbol", "position", "cost_basis",
            "realized_pnl", "cash"]  # fmt: skip
    assert from_dict(dict(zip(keys, old, strict=True))) == ev
    new = PositionChanged(7, 1, "alice", "GOOG", 3, 300, -30, 99_670, -30)
    frame = wire.encode_events([new])
    assert wire.decode_events(frame) == [new]
    assert from_dict(new.to_dict()) == new
    older = msgspec.msgpack.decode(frame[1:], type=list[_PositionBeforeUnrealized])
    assert older == [_PositionBeforeUnrealized(7, 1, "alice", "GOOG", 3, 300, -30, 99_670)]


class _ViewBeforeFinished(msgspec.Struct, array_like=True, frozen=True):
    """OrderView as a reader of the release before finished orders decodes it."""

    id: int
    account: str
    symbol: str
    side: str
    order_type: str
    status: str
    price: int | None
    stop_price: int | None
    qty: int
    tif: str = "gtc"
    client_order_id: str | None = None
    order_class: str | None = None
    parent_id: int | None = None
    leg: str | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    filled_qty: int = 0
    hwm: int | None = None


def test_order_views_of_finished_orders_decode_both_ways() -> None:
    """A finished order's fields came last, with defaults: an older engine's view
    decodes with None for them, and a finished view decodes in a reader from before
    them (status and fills, without the rest)."""
    old = _ViewBeforeFinished(5, "alice", "GOOG", "buy", "limit", "resting", 99, None, 3)
    reply = bytes([wire.WIRE_VERSION]) + msgspec.msgpack.encode(["ack", 1, 5, [], old])
    got = wire.decode_reply(reply)
    assert isinstance(got, wire.Ack) and got.order is not None
    assert got.order == wire.OrderView(5, "alice", "GOOG", "buy", "limit", "resting", 99, None, 3)
    assert (got.order.avg_fill_price, got.order.reason, got.order.total_qty) == (None,) * 3
    done = wire.OrderView(5, "alice", "GOOG", "buy", "limit", "canceled", 99, None, 0,
                          filled_qty=2, avg_fill_price=98.5, reason="user", created_ns=1,
                          finished_ns=2, total_qty=3)  # fmt: skip
    frame = wire.encode(wire.Ack(1, 5, order=done))
    assert wire.decode_reply(frame) == wire.Ack(1, 5, order=done)
    older = msgspec.msgpack.decode(frame[1:])[4]
    assert msgspec.convert(older, _ViewBeforeFinished) == _ViewBeforeFinished(
        5, "alice", "GOOG", "buy", "limit", "canceled", 99, None, 0, filled_qty=2
    )  # fmt: skip


class _TopBeforeTrades(msgspec.Struct, array_like=True, tag_field="type", tag="top"):
    """TopOfBook as a reader of the release before its `trades` decodes it."""

    md_seq: int
    ts_event: int
    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    last_price: int | None


def test_top_of_book_frames_before_and_after_its_trades_decode() -> None:
    """`trades` came last, with a default: an older top decodes with no trades; a top
    with or without trades decodes in a reader from before them (it ignores the
    tail); no trades cost one byte (an empty array), and `has_delta` after them one."""
    bids, asks = [BookLevel(99, 5, 1)], [BookLevel(101, 3, 2)]
    old = _TopBeforeTrades(4, 10, "GOOG", bids, asks, 100)
    plain = TopOfBook(4, 10, "GOOG", bids, asks, 100)
    assert len(wire.encode(plain)) == len(wire.encode(old)) + 2
    assert msgspec.msgpack.decode(wire.encode(plain)[1:], type=_TopBeforeTrades) == old
    decoded = wire.decode_event(wire.encode(old))
    assert decoded == plain and isinstance(decoded, TopOfBook) and decoded.trades == []
    d = plain.to_dict()
    del d["trades"], d["has_delta"]
    assert from_dict(d) == plain
    traded = TopOfBook(4, 10, "GOOG", bids, asks, 100, [TradePrint(101, 2, "buy", 9)])
    frame = wire.encode(traded)
    assert len(frame) > len(wire.encode(plain))
    assert wire.decode_event(frame) == traded
    assert msgspec.msgpack.decode(frame[1:], type=_TopBeforeTrades) == old
    assert traded.to_dict()["trades"] == [[101, 2, "buy", 9]]


class _TopBeforeHasDelta(_TopBeforeTrades, tag="top"):
    """TopOfBook as a reader of the release before its `has_delta` decodes it."""

    trades: list[TradePrint] = []


class _ReplayMdBeforeDeltas(msgspec.Struct, array_like=True, tag_field="type", tag="replay_md"):
    """ReplayMarketData as an engine from before its `deltas` decodes it."""

    req: int
    symbol: str
    from_md_seq: int
    to_md_seq: int


def test_deltas_in_market_data_replay_are_compatible_both_ways() -> None:
    """`TopOfBook.has_delta`, `ReplayMarketData.deltas` and `Ack.deltas` came last with
    defaults: a top or a request from before them decodes as announcing no delta and
    asking for none, and a reader from before them reads the new frames, ignoring the
    new tail (wire.py's rule: an optional field added at the end)."""
    bids, asks = [BookLevel(99, 5, 1)], [BookLevel(101, 3, 2)]
    prints = [TradePrint(101, 2, "buy", 9)]
    old_top = _TopBeforeHasDelta(4, 10, "GOOG", bids, asks, 100, prints)
    top = wire.decode_event(wire.encode(old_top))
    assert isinstance(top, TopOfBook) and top.trades == prints and top.has_delta is False
    announcing = TopOfBook(4, 10, "GOOG", bids, asks, 100, prints, has_delta=True)
    assert wire.decode_event(wire.encode(announcing)) == announcing
    assert msgspec.msgpack.decode(wire.encode(announcing)[1:], type=_TopBeforeHasDelta) == (old_top)
    old_request = wire.encode(_ReplayMdBeforeDeltas(7, "GOOG", 1, 9))
    assert wire.decode_request(old_request) == wire.ReplayMarketData(7, "GOOG", 1, 9, False)
    asking = wire.encode(wire.ReplayMarketData(7, "GOOG", 1, 9, True))
    assert msgspec.msgpack.decode(asking[1:], type=_ReplayMdBeforeDeltas) == (
        _ReplayMdBeforeDeltas(7, "GOOG", 1, 9)
    )
    delta = BookDelta(4, 10, "GOOG", [BookLevel(99, 0, 0)], [])
    reply = wire.Ack(7, tops=[announcing], md_seq=4, deltas=[delta])
    assert wire.decode_reply(wire.encode(reply)) == reply
    # What a reader from before `Ack.deltas` sees: the reply it knew, and one trailing
    # element more, which it ignores (as the old request reader above does).
    new = msgspec.msgpack.decode(wire.encode(reply)[1:])
    without = msgspec.msgpack.decode(wire.encode(wire.Ack(7, tops=[announcing], md_seq=4))[1:])
    assert new[:-1] == without[:-1] and without[-1] is None


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_wire_error(frame: bytes) -> None:
    for decode in (
        wire.decode_request,
        wire.decode_frame,
        wire.decode_reply,
        wire.decode_replies,
        wire.decode_event,
        wire.decode_events,
    ):
        with contextlib.suppress(wire.WireError):
            decode(frame)


@given(requests, st.integers(min_value=0, max_value=40), st.binary(min_size=1, max_size=3))
def test_corrupted_frames_decode_or_raise_wire_error(
    msg: wire.Request, at: int, junk: bytes
) -> None:
    for whole in (wire.encode(msg), wire.encode_batch([msg, msg])):
        frame = bytearray(whole)
        pos = min(at, len(frame) - 1)
        frame[pos : pos + len(junk)] = junk
        with contextlib.suppress(wire.WireError):
            wire.decode_request(bytes(frame))
        with contextlib.suppress(wire.WireError):
            wire.decode_frame(bytes(frame))


def test_other_versions_are_refused_with_a_reason() -> None:
    frame = bytes([wire.WIRE_VERSION + 1]) + wire.encode(wire.Ping(1))[1:]
    try:
        wire.decode_request(frame)
    except wire.WireError as exc:
        assert "version" in str(exc)
    else:
        raise AssertionError("a frame of another version decoded")
