"""The compiled MatchingEngine's own interface: per-call vs batch, options beyond the
contract (self-trade prevention, market price band), typed events, sequence numbers.
The contract itself is tested through `Matcher` in test_contract.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    StopTriggered,
    Trade,
    from_dict,
)
from tickplane.engine.events import NUMBERED, from_core, from_rows
from tickplane.engine.events import from_array as _from_array
from tickplane.engine.matching import (
    COMMAND_DTYPE,
    KEEP,
    EventType,
    MatchingEngine,
    Op,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    pack_command,
)

BUY, SELL = Side.BUY, Side.SELL


def from_array(events: np.ndarray) -> list[Event]:
    return _from_array(events, NUMBERED, NUMBERED)


LIMIT, MARKET, STOP = OrderType.LIMIT, OrderType.MARKET, OrderType.STOP
GTC = TimeInForce.GTC


def _random_commands(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.zeros(n, dtype=COMMAND_DTYPE)
    next_id = 1
    for i in range(n):
        r = rng.random()
        if r < 0.65:
            c[i]["op"] = Op.NEW
            c[i]["id"] = next_id
            next_id += 1
            c[i]["account"] = rng.integers(1, 4)
            c[i]["symbol"] = rng.integers(0, 2)
            c[i]["side"] = rng.integers(0, 2)
            c[i]["type"] = rng.choice([0, 0, 0, 1, 2, 3])
            c[i]["qty"] = rng.integers(1, 20)
            c[i]["price"] = 100 + rng.integers(-5, 6)
            c[i]["stop_price"] = 100 + rng.integers(-5, 6)
            c[i]["tif"] = rng.choice([0, 0, 1, 2, 3])
            c[i]["post_only"] = 1 if (c[i]["type"] == 0 and rng.random() < 0.1) else 0
        elif r < 0.85:
            c[i]["op"] = Op.CANCEL
            c[i]["id"] = rng.integers(1, next_id + 1)
        else:
            c[i]["op"] = Op.REPLACE
            c[i]["id"] = rng.integers(1, next_id + 1)
            c[i]["qty"] = rng.integers(1, 20) if rng.random() < 0.7 else KEEP
            c[i]["price"] = 100 + rng.integers(-5, 6) if rng.random() < 0.7 else KEEP
        c[i]["ts"] = i * 1000
    return c


def _per_call(eng: MatchingEngine, commands: np.ndarray) -> np.ndarray:
    out = []
    for c in commands:
        if c["op"] == Op.NEW:
            eng.submit(
                int(c["id"]), int(c["account"]), int(c["symbol"]), int(c["side"]),
                int(c["type"]), int(c["qty"]), int(c["price"]), int(c["stop_price"]),
                int(c["tif"]), int(c["post_only"]), int(c["ts"]),
            )  # fmt: skip
        elif c["op"] == Op.CANCEL:
            eng.cancel(int(c["id"]), int(c["ts"]))
        else:
            eng.replace(int(c["id"]), int(c["qty"]), int(c["price"]), int(c["ts"]))
        out.append(eng.events())
    return np.concatenate(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_and_per_call_give_identical_events_and_books(seed: int) -> None:
    commands = _random_commands(3000, seed)
    a, b = MatchingEngine(), MatchingEngine()
    batch = a.process(commands)
    percall = _per_call(b, commands)
    assert len(batch) > len(commands)  # trades, cancels and triggers happened
    assert (batch["type"] == EventType.TRADE).sum() > 0
    assert (batch["type"] == EventType.TRIGGERED).sum() > 0
    assert batch.tobytes() == percall.tobytes()
    for sym in (0, 1):
        assert a.snapshot(sym) == b.snapshot(sym)


@pytest.mark.parametrize("seed", [4, 5])
def test_typed_events_straight_from_the_core_equal_those_from_its_rows(seed: int) -> None:
    """`from_core` (the engine's path) and `from_rows(event_rows())` name and type every
    event of every command alike, each kind of event included."""
    commands = _random_commands(3000, seed)
    eng = MatchingEngine()
    symbols, accounts = ["AAA", "BBB"], [f"acct-{i}" for i in range(4)]
    kinds: set[type] = set()
    for c in commands:
        _per_call(eng, c[None])
        direct = from_core(eng, symbols, accounts)
        assert direct == from_rows(eng.event_rows(), symbols, accounts)
        kinds.update(type(ev) for ev in direct)
    every = {OrderAccepted, OrderCanceled, OrderRejected, OrderReplaced, StopTriggered, Trade}
    assert every <= kinds


def test_sequence_numbers_are_gap_free_and_timestamps_are_the_commands() -> None:
    commands = _random_commands(500, seed=9)
    eng = MatchingEngine()
    events = eng.process(commands)
    assert events["seq"].tolist() == list(range(1, len(events) + 1))
    assert eng.seq == len(events)
    assert set(events["ts"].tolist()) <= set(commands["ts"].tolist())


def test_ids_must_increase() -> None:
    eng = MatchingEngine()
    assert eng.submit(10, 1, 0, BUY, LIMIT, 1, 100) == 1
    eng.submit(5, 1, 0, BUY, LIMIT, 1, 100)  # below the highest id taken
    assert from_array(eng.events()) == [OrderRejected(2, 0, 5, "1", "duplicate_id")]
    eng.submit(0, 1, 0, BUY, LIMIT, 1, 100)
    assert from_array(eng.events())[0] == OrderRejected(3, 0, 0, "1", "bad_id")


def test_is_held_names_untriggered_stops_only() -> None:
    eng = MatchingEngine()
    eng.submit(1, 7, 0, SELL, LIMIT, 5, 100)  # resting
    eng.submit(2, 8, 0, BUY, STOP, 3, stop_price=110)  # held until a trade at 110
    assert eng.is_held(2) and eng.order(2)["status"] == "held"
    assert not eng.is_held(1) and not eng.is_held(3) and not eng.is_held(0)
    eng.submit(3, 9, 0, BUY, LIMIT, 5, 110)  # takes order 1 at 100: the stop stays held
    assert eng.is_held(2)
    eng.cancel(2)
    assert not eng.is_held(2)


def test_typed_events_round_trip_through_dicts() -> None:
    eng = MatchingEngine()
    eng.submit(1, 7, 0, SELL, LIMIT, 5, 100, ts=11)
    eng.submit(2, 8, 0, BUY, STOP, 3, stop_price=100, ts=12)
    eng.submit(3, 9, 0, BUY, LIMIT, 1, 100, ts=13)
    events = from_array(eng.events())
    assert events == [
        OrderAccepted(3, 13, 3, "9", "0", "buy", "limit", 1, 100),
        Trade(4, 13, "0", 100, 1, 3, 1, "buy", "9", "7"),
        StopTriggered(5, 13, 2, "8", "0", 100),
        Trade(6, 13, "0", 100, 3, 2, 1, "buy", "8", "7"),
    ]
    for ev in events:
        d = ev.to_dict()
        assert d["type"] in {"accepted", "trade", "triggered"}
        assert from_dict(d) == ev
    with pytest.raises(ValueError, match="unknown event type"):
        from_dict({"type": "exploded"})


def _stp_engine(mode: SelfTradePrevention) -> MatchingEngine:
    eng = MatchingEngine(stp=mode)
    eng.submit(1, 1, 0, SELL, LIMIT, 5, 100)  # account 1
    eng.submit(2, 2, 0, SELL, LIMIT, 5, 101)  # account 2
    return eng


def test_self_trade_prevention_is_off_by_default() -> None:
    eng = _stp_engine(SelfTradePrevention.NONE)
    eng.submit(3, 1, 0, BUY, LIMIT, 5, 100)
    assert [type(e) for e in from_array(eng.events())] == [OrderAccepted, Trade]


def test_stp_cancel_newest_cancels_the_taker() -> None:
    eng = _stp_engine(SelfTradePrevention.CANCEL_NEWEST)
    eng.submit(3, 1, 0, BUY, LIMIT, 8, 101)
    ev = from_array(eng.events())
    assert ev[1] == OrderCanceled(ev[1].seq, 0, 3, "1", "0", 8, "self_trade")
    assert eng.order(1) is not None  # the resting order stays


def test_stp_cancel_oldest_cancels_the_resting_order_and_goes_on() -> None:
    eng = _stp_engine(SelfTradePrevention.CANCEL_OLDEST)
    eng.submit(3, 1, 0, BUY, LIMIT, 8, 101)
    ev = from_array(eng.events())
    assert isinstance(ev[1], OrderCanceled) and ev[1].id == 1
    assert ev[1].reason == "self_trade"
    assert isinstance(ev[2], Trade) and ev[2].maker == 2 and ev[2].qty == 5
    assert eng.snapshot(0)["bids"] == [(101, [(3, 3)])]


def test_stp_cancel_both() -> None:
    eng = _stp_engine(SelfTradePrevention.CANCEL_BOTH)
    eng.submit(3, 1, 0, BUY, LIMIT, 8, 101)
    ev = from_array(eng.events())
    assert [(type(e), getattr(e, "id", None)) for e in ev[1:]] == [
        (OrderCanceled, 1),
        (OrderCanceled, 3),
    ]
    assert eng.snapshot(0)["asks"] == [(101, [(2, 5)])]


def test_market_collar_stops_a_sweep() -> None:
    eng = MatchingEngine()
    for i, p in enumerate([100, 101, 102, 103, 110], start=1):
        eng.submit(i, 1, 0, SELL, LIMIT, 1, p)
    eng.submit(9, 2, 0, BUY, MARKET, 10, 102)
    ev = from_array(eng.events())
    assert [e.price for e in ev if isinstance(e, Trade)] == [100, 101, 102]
    assert ev[-1] == OrderCanceled(ev[-1].seq, 0, 9, "2", "0", 7, "market_collar")
    assert eng.snapshot(0)["asks"] == [(103, [(4, 1)]), (110, [(5, 1)])]


def test_market_collar_sell_and_fok() -> None:
    eng = MatchingEngine()
    for i, p in enumerate([100, 99, 90], start=1):
        eng.submit(i, 1, 0, BUY, LIMIT, 1, p)
    eng.submit(8, 2, 0, SELL, MARKET, 3, 99, tif=TimeInForce.FOK)
    assert [type(e) for e in from_array(eng.events())] == [OrderAccepted, OrderCanceled]
    eng.submit(9, 2, 0, SELL, MARKET, 3, 99)
    ev = from_array(eng.events())
    assert [e.price for e in ev if isinstance(e, Trade)] == [100, 99]
    assert ev[-1] == OrderCanceled(ev[-1].seq, 0, 9, "2", "0", 1, "market_collar")


def test_market_collar_with_nothing_left_is_no_liquidity() -> None:
    eng = MatchingEngine()
    eng.submit(1, 1, 0, SELL, LIMIT, 1, 100)
    eng.submit(9, 2, 0, BUY, MARKET, 3, 105)
    ev = from_array(eng.events())
    assert isinstance(ev[-1], OrderCanceled) and ev[-1].reason == "no_liquidity"


def test_triggered_stop_keeps_its_collar() -> None:
    eng = MatchingEngine()
    for i, p in enumerate([100, 101, 108], start=1):
        eng.submit(i, 1, 0, SELL, LIMIT, 1, p)
    eng.submit(5, 2, 0, BUY, STOP, 3, 101, 100)  # collar 101, held until a trade at 100
    eng.submit(6, 3, 0, BUY, LIMIT, 1, 100)
    ev = from_array(eng.events())
    assert [e.price for e in ev if isinstance(e, Trade)] == [100, 101]
    assert ev[-1] == OrderCanceled(ev[-1].seq, 0, 5, "2", "0", 2, "market_collar")


@given(
    asks=st.lists(st.tuples(st.integers(90, 110), st.integers(1, 5)), max_size=12),
    bids=st.lists(st.tuples(st.integers(90, 110), st.integers(1, 5)), max_size=12),
    side=st.sampled_from([BUY, SELL]),
    qty=st.integers(1, 40),
    collar=st.integers(85, 115),
    tif=st.sampled_from([GTC, TimeInForce.FOK]),
)
def test_a_collared_market_order_trades_as_an_ioc_limit_at_its_collar(
    asks: list[tuple[int, int]],
    bids: list[tuple[int, int]],
    side: int,
    qty: int,
    collar: int,
    tif: int,
) -> None:
    """Whatever the book: the same trades as an ioc (fok: a fok) limit at the collar; the
    rest canceled market_collar while the other side still holds orders."""
    runs = []
    for order_type, order_tif in ((MARKET, tif), (LIMIT, TimeInForce.IOC if tif == GTC else tif)):
        eng = MatchingEngine()
        n = 0
        for book_side, levels in ((SELL, asks), (BUY, bids)):
            for price, q in levels:
                n += 1  # a crossing one trades now, the same in both runs
                eng.submit(n, 1, 0, book_side, LIMIT, q, price)
        eng.events()
        eng.submit(100, 2, 0, side, order_type, qty, collar, tif=order_tif)
        runs.append((from_array(eng.events()), eng))
    (market, eng), (limit, _) = runs
    trades = [(e.maker, e.price, e.qty) for e in market if isinstance(e, Trade)]
    assert trades == [(e.maker, e.price, e.qty) for e in limit if isinstance(e, Trade)]
    assert all(p <= collar if side == BUY else p >= collar for _, p, _ in trades)
    rest = [e for e in market if isinstance(e, OrderCanceled)]
    traded = sum(q for _, _, q in trades)
    if traded == qty:
        assert rest == []
    else:
        left = eng.snapshot(0)["asks" if side == BUY else "bids"]
        reason = "fok" if tif == TimeInForce.FOK else "market_collar" if left else "no_liquidity"
        assert [(e.remaining, e.reason) for e in rest] == [(qty - traded, reason)]


def test_market_without_collar_sweeps_everything() -> None:
    eng = MatchingEngine()
    for i, p in enumerate([100, 110], start=1):
        eng.submit(i, 1, 0, SELL, LIMIT, 1, p)
    eng.submit(9, 2, 0, BUY, MARKET, 3)
    ev = from_array(eng.events())
    assert [e.price for e in ev if isinstance(e, Trade)] == [100, 110]
    assert isinstance(ev[-1], OrderCanceled) and ev[-1].reason == "no_liquidity"


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="stp"):
        MatchingEngine(stp=9)
    with pytest.raises(TypeError, match="COMMAND_DTYPE"):
        MatchingEngine().process(np.zeros(2))


def test_queries() -> None:
    eng = MatchingEngine()
    eng.submit(1, 1, 3, BUY, LIMIT, 5, 99)
    eng.submit(2, 1, 3, BUY, LIMIT, 6, 99)
    eng.submit(3, 1, 3, SELL, STOP, 2, stop_price=90, tif=GTC)
    assert eng.symbols() == [3]
    assert eng.depth(3) == {"bids": [(99, 11, 2)], "asks": []}
    assert eng.level_orders(3, BUY, 99) == [(1, 5), (2, 6)]
    assert eng.order(3)["status"] == "held"  # type: ignore[index]
    assert eng.order(1)["status"] == "resting"  # type: ignore[index]
    assert eng.order(4) is None
    assert eng.last_price(3) is None
    assert len(eng) == 3
    assert eng.memory_bytes() > 0


def test_memory_per_resting_order_stays_under_100_bytes() -> None:
    eng = MatchingEngine()
    n = 1_000_000  # as the benchmark measures it
    c = np.zeros(n, dtype=COMMAND_DTYPE)
    c["op"] = Op.NEW
    c["id"] = np.arange(1, n + 1)
    c["account"] = 1
    c["side"] = np.arange(n) % 2
    c["price"] = np.where(c["side"] == 0, 1000 - np.arange(n) % 500, 1001 + np.arange(n) % 500)
    c["qty"] = 1
    eng.process(c)
    assert len(eng) == n
    assert eng.memory_bytes() / n < 100


@pytest.mark.parametrize("seed", [4, 5])
def test_dump_and_load_resume_identically(seed: int) -> None:
    commands = _random_commands(4000, seed)
    first, rest = commands[:2500], commands[2500:]
    straight = MatchingEngine()
    straight.process(first)
    expected = straight.process(rest)
    before = MatchingEngine()
    before.process(first)
    state = before.dump()
    assert len(state["resting"]) + len(state["held"]) == len(before)
    resumed = MatchingEngine()
    resumed.load(state)
    assert resumed.seq == before.seq and resumed.last_id == before.last_id
    for sym in (0, 1):
        assert resumed.snapshot(sym) == before.snapshot(sym)
        assert resumed.last_price(sym) == before.last_price(sym)
    assert resumed.process(rest).tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="fresh engine"):
        resumed.load(state)


_U = [64, 0, 0, 0, 0, 32, 32, 8, 8, 8, 8, 8, 8, 16]  # unsigned bits by field (0: int64)


@given(
    st.tuples(
        *(
            st.integers(0, (1 << bits) - 1) if bits else st.integers(-(1 << 63), (1 << 63) - 1)
            for bits in _U
        )
    )
)
def test_pack_command_is_the_journals_struct(fields: tuple[int, ...]) -> None:
    """`pack_command` writes the bytes `struct.pack("<QqqqqIIBBBBBBH")` does (the
    journal's format, read back as COMMAND_DTYPE rows), for any in-range fields."""
    packed = pack_command(fields)
    assert packed == struct.pack("<QqqqqIIBBBBBBH", *fields)
    assert np.frombuffer(packed, dtype=COMMAND_DTYPE)[0].tolist() == fields


@pytest.mark.parametrize(
    "fields",
    [(-1, *[0] * 13), (0, 0, 0, 0, 0, 1 << 32, *[0] * 8), (*[0] * 8, 256, *[0] * 5), (0,) * 13],
)
def test_pack_command_refuses_what_does_not_fit(fields: tuple[int, ...]) -> None:
    with pytest.raises((OverflowError, ValueError)):
        pack_command(fields)
