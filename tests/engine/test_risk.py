"""Pre-trade risk (tickplane.engine.risk): every limit with the order that breaks it and
the one just inside it, the order of the checks, the token bucket over the caller's ts,
the circuit breaker, kill switches, replaces, and snapshots that restore to identical
behaviour. A rejected command must leave the state exactly as it was."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickplane.engine.matching import OrderType, Side
from tickplane.engine.positions import Positions
from tickplane.engine.risk import (
    CHECK_ORDER,
    NOTIONAL_CEILING,
    CircuitBreakerConfig,
    Reject,
    RiskEngine,
    RiskLimits,
    SymbolHalted,
    SymbolResumed,
    collar_price,
)

S = 1_000_000_000  # one second in ns


def engine(
    default: RiskLimits | None = None,
    positions: Positions | None = None,
    **kw: Any,
) -> RiskEngine:
    return RiskEngine(positions=positions or Positions(), default=default, **kw)


def reason(r: Reject | None) -> str | None:
    return None if r is None else r.reason


def new(
    risk: RiskEngine,
    qty: int = 1,
    price: int | None = 100,
    *,
    account: str = "a",
    symbol: str = "X",
    side: str | int = "buy",
    type: str | int = "limit",
    ts: int = 0,
) -> str | None:
    return reason(risk.check_new(account, symbol, side, type, qty, price, ts))


# --- limits ---------------------------------------------------------------------------------


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_order_qty"):
        RiskLimits(max_order_qty=-1)
    with pytest.raises(ValueError, match="max_position"):
        RiskLimits(max_position=True)
    with pytest.raises(ValueError, match="move_bps"):
        CircuitBreakerConfig(0, 1, 1)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_qty": 1}, RiskLimits)  # a misspelt key is an error
    assert msgspec.convert({"max_order_qty": 5}, RiskLimits) == RiskLimits(max_order_qty=5)


def test_no_limits_pass_everything_below_the_ceiling() -> None:
    risk = engine()
    assert new(risk, 10**12, NOTIONAL_CEILING // 10**12) is None
    assert new(risk, 10**12, None, type="market") is None


def test_max_order_qty() -> None:
    risk = engine(RiskLimits(max_order_qty=1000))
    assert new(risk, 1000) is None
    r = risk.check_new("a", "X", "buy", "limit", 5000, 100, 0)
    assert r == Reject(
        "max_order_qty", "quantity 5000 is above the limit of 1000 lots for account 'a'"
    )
    assert new(risk, 1001, side="sell", type="market", price=None) == "max_order_qty"


def test_max_order_notional_at_the_limit_price() -> None:
    risk = engine(RiskLimits(max_order_notional=10_000))
    assert new(risk, 100, 100) is None
    assert new(risk, 100, 101) == "max_order_notional"
    assert new(risk, 101, 100) == "max_order_notional"
    assert new(risk, 50, 200, type="stop_limit") is None  # valued at its limit price
    assert new(risk, 50, 201, type="stop_limit") == "max_order_notional"


@pytest.mark.parametrize("limits", [None, RiskLimits(max_order_notional=10**18)])
def test_an_order_with_a_price_is_never_worth_more_than_the_ceiling(
    limits: RiskLimits | None,
) -> None:
    """With no limit, or one above it, the engine's own ceiling holds: a resting order
    bounds every trade against it, so no trade (and no account's money after a few
    thousand of them) leaves the wire's 64-bit integers."""
    risk = engine(limits)
    price = 10**12  # the core's largest price
    most = NOTIONAL_CEILING // price
    assert new(risk, most, price) is None
    assert new(risk, most + 1, price) == "max_order_notional"
    assert new(risk, most + 1, price, side="sell") == "max_order_notional"
    assert new(risk, most + 1, price, type="stop_limit") == "max_order_notional"
    if limits is None:  # no price: valued by the orders it meets (a limit needs a reference)
        assert new(risk, 10**12, None, type="market") is None
    r = risk.check_new("a", "X", "buy", "limit", 2 * most, price, 0)  # under a limit of 10^18
    assert r is not None and "ceiling" in r.message, r
    risk.on_accepted(1, "a", "X", "buy", most, price)
    assert risk.check_replace(1, most + 1, None, 0) is not None  # a replace cannot grow past it
    assert risk.check_replace(1, most - 1, None, 0) is None


def test_market_orders_are_valued_at_the_reference_price() -> None:
    risk = engine(RiskLimits(max_order_notional=10_000))
    r = risk.check_new("a", "X", "buy", "market", 1, None, 0)
    assert reason(r) == "max_order_notional" and r is not None
    assert "no reference price" in r.message
    risk.set_reference("X", 250)
    assert new(risk, 40, None, type="market") is None
    assert new(risk, 41, None, type="market") == "max_order_notional"
    assert new(risk, 41, 0, type="stop") == "max_order_notional"  # price 0 counts as none
    risk.on_trade("X", 200, 1)  # a trade replaces the reference
    assert new(risk, 50, None, type="market") is None
    assert new(risk, 51, None, type="market", side="sell") == "max_order_notional"


def test_max_position_counts_open_orders_on_the_same_side() -> None:
    pos = Positions()
    risk = engine(RiskLimits(max_position=100), positions=pos)
    pos.on_trade("X", 100, 40, "a", "b", 0)  # a is long 40
    risk.on_accepted(1, "a", "X", "buy", 30, 99)
    risk.on_accepted(2, "a", "X", "sell", 500, 101)  # sells do not count for a buy
    assert new(risk, 30) is None  # 40 + 30 + 30 = 100
    r = risk.check_new("a", "X", "buy", "limit", 31, 100, 0)
    assert reason(r) == "max_position" and r is not None
    assert "101 lots long (position 40, other open buys 30)" in r.message
    # the sell side: 500 open sells + this, minus the long 40
    risk.on_done(2)
    assert new(risk, 140, side="sell") is None  # 140 - 40 = 100 short
    assert new(risk, 141, side="sell") == "max_position"
    # fills move lots from the open order into the position: the worst case stays
    risk.on_fill(1, 10)
    pos.on_trade("X", 99, 10, "a", "c", 1)
    assert new(risk, 30) is None
    assert new(risk, 31) == "max_position"
    risk.on_done(1)  # canceled: its 20 open lots no longer count
    assert new(risk, 50) is None
    assert new(risk, 51) == "max_position"


def test_max_position_lets_risk_reducing_orders_through() -> None:
    pos = Positions()
    risk = engine(RiskLimits(max_position=10), positions=pos)
    pos.on_trade("X", 100, 50, "a", "b", 0)  # far above the limit (e.g. limit lowered)
    assert new(risk, 1) == "max_position"
    assert new(risk, 60, side="sell") is None  # ends at short 10 at worst
    assert new(risk, 61, side="sell") == "max_position"
    # b is short 50: a buy of 60 ends at long 10 at worst, of 61 at long 11
    assert new(risk, 60, side="buy", account="b") is None
    assert new(risk, 61, side="buy", account="b") == "max_position"


def test_max_position_zero_and_core_side_values() -> None:
    pos = Positions()
    risk = engine(RiskLimits(max_position=0), positions=pos)
    assert new(risk, 1, side=Side.BUY) == "max_position"
    assert new(risk, 1, side=Side.SELL) == "max_position"
    pos.on_trade("X", 100, 3, "a", "b", 0)
    assert new(risk, 3, side=Side.SELL) is None
    assert new(risk, 1, side="nonsense") is None  # the core rejects it bad_side


def test_price_band() -> None:
    risk = engine(RiskLimits(price_band_bps=100))  # 1%
    assert new(risk, 1, 1_000_000) is None  # no reference: not checked
    risk.on_trade("X", 10_000, 1)
    assert new(risk, 1, 10_100) is None
    assert new(risk, 1, 9_900, side="sell") is None
    r = risk.check_new("a", "X", "buy", "limit", 1, 10_101, 0)
    assert r == Reject(
        "price_band",
        "price 10101 is 101 bps from the reference price 10000 of X, outside the band of 100 bps",
    )
    assert new(risk, 1, 9_899) == "price_band"
    assert new(risk, 1, None, type="market") is None  # market orders have no price
    assert new(risk, 1, 20_000, type="stop_limit") is None  # stops are banded by nobody
    assert new(risk, 1, 10_101, type=OrderType.LIMIT) == "price_band"
    assert new(risk, 1, 10_101, symbol="Y") is None  # Y has no reference


def test_market_collar_is_its_own_limit_else_the_price_band() -> None:
    risk = engine(
        RiskLimits(price_band_bps=1_000),
        per_account={"tight": RiskLimits(price_band_bps=1_000, market_collar_bps=200)},
        per_symbol={
            ("tight", "Y"): RiskLimits(),
            ("free", "X"): RiskLimits(price_band_bps=1_000, market_collar_bps=0),
        },
    )
    assert risk.market_collar("a", "X") == 1_000  # the band's width
    assert risk.market_collar("tight", "X") == 200
    assert risk.market_collar("tight", "Y") is None  # the pair sets neither
    assert risk.market_collar("free", "X") == 0  # only at the reference itself
    assert engine().market_collar("a", "X") is None


@pytest.mark.parametrize("bps", [0, 1, 99, 100, 1_000, 10_000, 25_000])
@pytest.mark.parametrize("ref", [1, 7, 100, 9_999, 10_000, 123_457])
def test_collar_price_is_the_band_edge(ref: int, bps: int) -> None:
    """A market order trades as far as a limit order passes the band of the same width,
    and not one tick further (a sell: never below one tick)."""
    risk = engine(RiskLimits(price_band_bps=bps))
    risk.set_reference("X", ref)
    up, down = collar_price(ref, bps, True), collar_price(ref, bps, False)
    assert new(risk, 1, up) is None and new(risk, 1, up + 1) == "price_band"
    assert down >= 1 and new(risk, 1, down, side="sell") is None
    if down > 1:
        assert new(risk, 1, down - 1, side="sell") == "price_band"


def test_price_band_uses_set_reference_until_a_trade() -> None:
    risk = engine(RiskLimits(price_band_bps=500))
    risk.set_reference("X", 1_000)
    assert risk.reference("X") == 1_000
    assert new(risk, 1, 1_051) == "price_band"
    risk.on_trade("X", 1_100, 1)
    assert new(risk, 1, 1_155) is None
    with pytest.raises(ValueError):
        risk.set_reference("X", 0)


def test_max_open_orders_counts_the_account_across_symbols() -> None:
    risk = engine(RiskLimits(max_open_orders=3))
    risk.on_accepted(1, "a", "X", "buy", 1, 100)
    risk.on_accepted(2, "a", "Y", "sell", 1, 100)
    assert new(risk) is None
    risk.on_accepted(3, "a", "Z", "buy", 1, None)  # a held stop counts too
    r = risk.check_new("a", "W", "buy", "limit", 1, 100, 0)
    assert r == Reject("max_open_orders", "account 'a' already has 3 open orders, its limit")
    assert new(risk, account="b") is None
    risk.on_fill(2, 1)  # filled: done
    assert risk.open_order_count("a") == 2
    assert new(risk) is None


def test_per_account_and_per_pair_limits() -> None:
    risk = engine(
        RiskLimits(max_order_qty=10, max_open_orders=5),
        per_account={"big": RiskLimits(max_order_qty=1000)},
        per_symbol={("a", "THIN"): RiskLimits(max_order_qty=2, max_open_orders=1)},
    )
    assert new(risk, 11) == "max_order_qty"
    assert new(risk, 1000, account="big") is None
    assert new(risk, 1001, account="big") == "max_order_qty"
    assert new(risk, 3, symbol="THIN") == "max_order_qty"
    r = risk.check_new("a", "THIN", "buy", "limit", 3, 100, 0)
    assert r is not None and "for account 'a' on THIN" in r.message
    assert new(risk, 2, symbol="THIN") is None
    risk.on_accepted(1, "a", "THIN", "buy", 2, 100)
    assert new(risk, 1, symbol="THIN") == "max_open_orders"  # the pair's own count
    assert new(risk, 1, symbol="X") is None
    for i in range(2, 6):
        risk.on_accepted(i, "a", "X", "buy", 1, 100)
    assert new(risk, 1, symbol="X") == "max_open_orders"  # 5 on the account


# --- order rate ------------------------------------------------------------------------------


def test_token_bucket_over_the_callers_ts() -> None:
    risk = engine(RiskLimits(max_orders_per_second=10))  # burst 10, one token per 100 ms
    t0 = 5 * S
    assert all(new(risk, ts=t0) is None for _ in range(10))
    r = risk.check_new("a", "X", "buy", "limit", 1, 100, t0)
    assert r == Reject("order_rate", "account 'a' is over its order rate of 10 orders/s (burst 10)")
    assert new(risk, ts=t0 + S // 10 - 1) == "order_rate"
    assert new(risk, ts=t0 + S // 10) is None
    assert new(risk, ts=t0 + S // 10) == "order_rate"
    assert new(risk, account="b", ts=t0) is None  # each account has its bucket
    # a long pause refills to the burst, no more
    t1 = t0 + 3600 * S
    assert all(new(risk, ts=t1) is None for _ in range(10))
    assert new(risk, ts=t1) == "order_rate"
    # a ts earlier than the last refills nothing
    assert new(risk, ts=t0) == "order_rate"


def test_token_bucket_burst_and_fractional_refill() -> None:
    risk = engine(RiskLimits(max_orders_per_second=3, order_burst=2))
    assert new(risk, ts=0) is None
    assert new(risk, ts=0) is None
    assert new(risk, ts=0) == "order_rate"
    # 1/3 s per token: exactly 333_333_334 ns (rounding up) gives one back
    assert new(risk, ts=333_333_333) == "order_rate"
    assert new(risk, ts=333_333_334) is None
    assert new(risk, ts=666_666_667) is None
    assert new(risk, ts=666_666_667) == "order_rate"


def test_rejected_orders_spend_no_token() -> None:
    risk = engine(RiskLimits(max_orders_per_second=1, max_order_qty=5))
    for _ in range(5):
        assert new(risk, 6) == "max_order_qty"
    assert new(risk, 5) is None
    assert new(risk, 5) == "order_rate"


def test_pair_rate_applies_on_top_of_the_account_rate() -> None:
    risk = engine(
        RiskLimits(max_orders_per_second=3),
        per_symbol={("a", "X"): RiskLimits(max_orders_per_second=1)},
    )
    assert new(risk, symbol="X") is None
    r = risk.check_new("a", "X", "buy", "limit", 1, 100, 0)
    assert r is not None and r.reason == "order_rate" and "on X" in r.message
    assert new(risk, symbol="Y") is None  # the X reject took nothing from the account
    assert new(risk, symbol="Y") is None
    assert new(risk, symbol="Y") == "order_rate"
    assert new(risk, symbol="X", ts=S) is None


# --- the order of the checks ----------------------------------------------------------------


def _violating_all(skip: set[str]) -> RiskEngine:
    """An engine where the order below breaks every check not in `skip`."""
    pos = Positions()
    lim = RiskLimits(
        max_order_qty=None if "max_order_qty" in skip else 5,
        max_order_notional=None if "max_order_notional" in skip else 500,
        max_position=None if "max_position" in skip else 5,
        price_band_bps=None if "price_band" in skip else 100,
        max_orders_per_second=None if "order_rate" in skip else 1,
        order_burst=None if "order_rate" in skip else 0,  # an empty bucket
        max_open_orders=None if "max_open_orders" in skip else 1,
    )
    risk = RiskEngine(positions=pos, default=lim)
    risk.on_trade("X", 100, 0)
    risk.on_accepted(1, "a", "X", "sell", 1, 100)
    if "kill_switch" not in skip:
        risk.kill("a")
    if "symbol_halted" not in skip:
        risk.halt("X", 0)
    return risk


def test_checks_run_in_the_documented_order() -> None:
    assert CHECK_ORDER == (
        "kill_switch",
        "symbol_halted",
        "max_order_qty",
        "max_order_notional",
        "max_position",
        "price_band",
        "max_open_orders",
        "order_rate",
    )
    for i, expected in enumerate(CHECK_ORDER):
        risk = _violating_all(set(CHECK_ORDER[:i]))
        assert new(risk, 10, 200, ts=1) == expected
    risk = _violating_all(set(CHECK_ORDER))
    assert new(risk, 10, 200, ts=1) is None


def test_kill_switch_and_halt_come_first() -> None:
    risk = engine(RiskLimits(max_order_qty=1))
    risk.kill("a")
    risk.halt("X", 0)
    assert new(risk, 5) == "kill_switch"
    risk.revive("a")
    assert new(risk, 5) == "symbol_halted"


# --- kill switches --------------------------------------------------------------------------


def test_kill_switches() -> None:
    risk = engine()
    assert not risk.killed() and not risk.killed("a")
    assert risk.kill("a") is True
    assert risk.kill("a") is False
    assert risk.killed("a") and not risk.killed("b") and not risk.killed()
    r = risk.check_new("a", "X", "buy", "limit", 1, 100, 0)
    assert r == Reject("kill_switch", "account 'a' is stopped by its kill switch")
    assert new(risk, account="b") is None
    assert risk.kill() is True
    assert risk.killed() and risk.killed("b")
    r = risk.check_new("b", "X", "buy", "limit", 1, 100, 0)
    assert r == Reject("kill_switch", "trading is stopped by the global kill switch")
    assert risk.revive("a") is True
    assert risk.killed("a")  # the global switch is still on
    assert risk.revive() is True
    assert risk.revive() is False
    assert not risk.killed("a")
    assert new(risk) is None


def test_kill_switch_stops_replaces_but_not_reductions() -> None:
    risk = engine()
    risk.on_accepted(7, "a", "X", "buy", 10, 100)
    risk.kill("a")
    assert reason(risk.check_replace(7, 11, None, 0)) == "kill_switch"
    assert reason(risk.check_replace(7, None, 101, 0)) == "kill_switch"
    assert risk.check_replace(7, 4, None, 0) is None  # a reduction is a partial cancel
    assert risk.check_replace(7, 4, 100, 0) is None
    assert risk.open_orders("a") == [7]  # for the engine's mass cancel


def test_open_orders_listing() -> None:
    risk = engine()
    risk.on_accepted(3, "a", "Y", "buy", 1)
    risk.on_accepted(1, "a", "X", "buy", 1)
    risk.on_accepted(2, "b", "X", "sell", 1)
    assert risk.open_orders() == [1, 2, 3]
    assert risk.open_orders("a") == [1, 3]
    assert risk.open_orders(symbol="X") == [1, 2]
    assert risk.open_orders("a", "Y") == [3]
    assert risk.open_exposure("a", "X") == (1, 0, 1)
    with pytest.raises(ValueError):
        risk.on_accepted(1, "a", "X", "buy", 1)


# --- replaces --------------------------------------------------------------------------------


def test_replace_checks_the_new_quantity_and_price() -> None:
    pos = Positions()
    risk = engine(
        RiskLimits(
            max_order_qty=100,
            max_order_notional=20_000,
            max_position=150,
            price_band_bps=1_000,
            max_open_orders=1,
        ),
        positions=pos,
    )
    risk.on_trade("X", 100, 0)
    risk.on_accepted(1, "a", "X", "buy", 50, 100)
    assert risk.check_replace(999, 10**9, 10**9, 0) is None  # unknown: the core says so
    assert risk.check_replace(1, 100, None, 0) is None  # max_open_orders not counted
    assert reason(risk.check_replace(1, 101, None, 0)) == "max_order_qty"
    assert risk.check_replace(1, 100, 110, 0) is None
    assert reason(risk.check_replace(1, 100, 111, 0)) == "price_band"
    assert reason(risk.check_replace(1, 100, 201, 0)) == "max_order_notional"
    # the position check counts the new quantity instead of the order's own 50
    pos.on_trade("X", 100, 60, "a", "b", 0)
    assert risk.check_replace(1, 90, None, 0) is None  # 60 + 90 = 150
    assert reason(risk.check_replace(1, 91, None, 0)) == "max_position"


def test_replace_bookkeeping_and_halt() -> None:
    risk = engine(RiskLimits(max_position=20))
    risk.on_accepted(1, "a", "X", "sell", 10, 100)
    risk.on_replaced(1, 15, 99)
    assert risk.open_exposure("a", "X") == (0, 15, 1)
    assert new(risk, 5, side="sell") is None
    assert new(risk, 6, side="sell") == "max_position"
    risk.halt("X", 0, 10)
    assert reason(risk.check_replace(1, 16, None, 5)) == "symbol_halted"
    assert reason(risk.check_replace(1, 15, 98, 5)) == "symbol_halted"  # a new price
    assert risk.check_replace(1, 15, 99, 5) is None  # no change at all
    assert risk.check_replace(1, 16, None, 10) is None  # the halt is over
    risk.on_replaced(1, 0)  # nothing open: gone
    assert risk.open_exposure("a", "X") == (0, 0, 0)
    assert risk.open_orders() == []


def test_replace_spends_a_token_and_a_reduction_does_not() -> None:
    risk = engine(RiskLimits(max_orders_per_second=1))
    risk.on_accepted(1, "a", "X", "buy", 10, 100)
    assert risk.check_replace(1, 5, None, 0) is None
    assert risk.check_replace(1, 20, None, 0) is None
    assert reason(risk.check_replace(1, 20, None, 0)) == "order_rate"
    assert risk.check_replace(1, 5, None, 0) is None
    assert new(risk) == "order_rate"


def test_replace_of_held_orders() -> None:
    """A held order at zero lots (a leg not yet released) is replaced like any other:
    `max_open_orders` is not counted (it adds no order); a leg's moved price passes
    the per-order limits at its quantity, its lots unchanged; a trailing stop's raise
    counts its new quantity in the worst case."""
    risk = engine(
        RiskLimits(max_order_notional=1_000, max_position=10, max_open_orders=2),
        positions=Positions(),
    )
    risk.on_held(1, "a", "X", "sell", 0)  # a take-profit, held
    risk.on_held(2, "a", "X", "sell", 4)  # a trailing stop of 4
    assert risk.check_replace(1, None, None, 0, leg=("take_profit", 9, 111)) is None
    r = risk.check_replace(1, None, None, 0, leg=("take_profit", 9, 112))
    assert reason(r) == "max_order_notional" and r is not None
    assert r.message.startswith("the take_profit leg's notional 1008")
    assert risk.open_exposure("a", "X") == (0, 4, 2)
    risk.set_reference("X", 50)  # a stop is valued at the reference
    assert risk.check_replace(2, 10, None, 0) is None
    assert reason(risk.check_replace(2, 11, None, 0)) == "max_position"
    risk.on_replaced(1, 3)  # released: it works 3 lots; 3 + 8 > 10
    assert reason(risk.check_replace(2, 8, None, 0)) == "max_position"
    assert risk.check_replace(1, None, None, 0, leg=("take_profit", 9, 100)) is None


def test_fills_and_done_bookkeeping() -> None:
    risk = engine()
    risk.on_accepted(1, "a", "X", "buy", 10, 100)
    risk.on_fill(1, 4)
    assert risk.open_exposure("a", "X") == (6, 0, 1)
    risk.on_fill(1, 6)
    assert risk.open_exposure("a", "X") == (0, 0, 0)
    assert risk.open_order_count("a") == 0
    risk.on_done(1)  # already done: ignored
    risk.on_fill(42, 1)  # unknown (e.g. a market order never registered): ignored
    risk.on_replaced(42, 1)


# --- circuit breaker -------------------------------------------------------------------------

CB = CircuitBreakerConfig(move_bps=500, window_ns=S, halt_ns=10 * S)


def test_circuit_breaker_trips_beyond_the_move_and_resumes() -> None:
    risk = engine(circuit_breaker=CB)
    assert risk.on_trade("X", 100, 0) == ()
    assert risk.on_trade("X", 105, 1) == ()  # exactly 5%: inside
    events = risk.on_trade("X", 106, 2)  # 6% above the window's low
    assert events == (SymbolHalted(0, 2, "X", "circuit_breaker", 2 + 10 * S, 106, 100),)
    assert risk.halted("X", 2) and risk.halted("X", 10 * S + 1)
    assert not risk.halted("X", 10 * S + 2) and not risk.halted("Y", 2)
    r = risk.check_new("a", "X", "buy", "limit", 1, 100, 3)
    assert r == Reject("symbol_halted", f"X is halted until ts {2 + 10 * S} ns")
    assert new(risk, symbol="Y", ts=3) is None
    assert new(risk, ts=10 * S + 2) is None
    # trades during the halt (the rest of a sweep) set the reference and nothing else
    assert risk.on_trade("X", 200, 4) == ()
    assert risk.reference("X") == 200
    # the next trade after the halt says it ended (at its end time), and starts afresh
    assert risk.on_trade("X", 150, 11 * S) == (SymbolResumed(0, 2 + 10 * S, "X"),)
    assert risk.on_trade("X", 157, 11 * S + 1) == ()  # 4.67%: inside
    assert risk.halts() == {}


def test_circuit_breaker_measures_from_the_window_extremes() -> None:
    risk = engine(circuit_breaker=CB)
    for ts, price in enumerate([100, 104, 99]):  # 99 is 4.8% below the high 104
        assert risk.on_trade("X", price, ts) == ()
    (halt,) = risk.on_trade("X", 104, 3)  # 5.05% above the low 99 (not the start, 100)
    assert isinstance(halt, SymbolHalted) and halt.from_price == 99
    risk = engine(circuit_breaker=CB)
    for ts, price in enumerate([100, 103, 102]):
        assert risk.on_trade("X", price, ts) == ()
    (halt,) = risk.on_trade("X", 97, 3)  # 5.8% below the high 103
    assert isinstance(halt, SymbolHalted) and halt.from_price == 103


def test_circuit_breaker_window_slides() -> None:
    risk = engine(circuit_breaker=CB)
    assert risk.on_trade("X", 100, 0) == ()
    assert risk.on_trade("X", 104, S // 2) == ()
    assert risk.on_trade("X", 106, S) == ()  # 100 is exactly one window old: gone
    assert risk.on_trade("X", 110, S + S // 2 - 1) != ()  # 104 still in: 5.8%


def test_expire_and_manual_halts() -> None:
    risk = engine(circuit_breaker=CB)
    assert risk.halt("Y", 5, 10) == SymbolHalted(0, 5, "Y", "manual", 15)
    assert risk.halt("X", 5) == SymbolHalted(0, 5, "X", "manual", None)
    assert risk.halted("X", 10**18)
    r = risk.check_new("a", "X", "buy", "limit", 1, 100, 10**18)
    assert r == Reject("symbol_halted", "X is halted until it is resumed")
    assert risk.expire(14) == []
    assert risk.expire(100) == [SymbolResumed(0, 15, "Y")]
    assert risk.halts() == {"X": None}
    assert risk.on_trade("X", 100, 200) == ()  # no end: stays halted
    assert risk.resume("X", 300) == SymbolResumed(0, 300, "X")
    assert risk.resume("X", 300) is None
    assert new(risk, ts=300) is None
    risk.halt("Z", 0, 10)
    assert risk.resume("Z", 50) == SymbolResumed(0, 10, "Z")  # it had already ended


def test_no_circuit_breaker_only_sets_references() -> None:
    risk = engine()
    assert risk.on_trade("X", 100, 0) == ()
    assert risk.on_trade("X", 1_000, 1) == ()
    assert risk.reference("X") == 1_000 and not risk.halted("X", 1)


# --- state: rejections change nothing, snapshots restore behaviour -----------------------

LIMITS = RiskLimits(
    max_order_qty=30,
    max_order_notional=2_500,
    max_position=60,
    price_band_bps=800,
    max_orders_per_second=20,
    order_burst=5,
    max_open_orders=6,
)
PAIR = {("b", "Y"): RiskLimits(max_order_qty=10, max_open_orders=2, max_orders_per_second=3)}
CB_SMALL = CircuitBreakerConfig(move_bps=600, window_ns=50_000_000, halt_ns=200_000_000)

op = st.one_of(
    st.tuples(
        st.just("new"),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["X", "Y"]),
        st.sampled_from(["buy", "sell"]),
        st.sampled_from(["limit", "limit", "market", "stop", "stop_limit"]),
        st.integers(1, 40),
        st.integers(85, 115),
    ),
    st.tuples(st.just("replace"), st.integers(0, 40), st.integers(0, 35), st.integers(85, 115)),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("fill"), st.integers(0, 40), st.integers(1, 40)),
    st.tuples(st.just("trade"), st.sampled_from(["X", "Y"]), st.integers(85, 115)),
    st.tuples(st.just("kill"), st.sampled_from([None, "a", "b"]), st.booleans()),
    st.tuples(
        st.just("expire"),
    ),
)


class Driver:
    """Drives a RiskEngine + Positions as the engine would, with a crude book: accepted
    orders rest; 'fill' trades part of one against account 'mm'."""

    def __init__(self, step_ns: int = 7_000_000) -> None:
        self.step_ns = step_ns
        self.pos = Positions()
        self.risk = RiskEngine(
            positions=self.pos, default=LIMITS, per_symbol=PAIR, circuit_breaker=CB_SMALL
        )
        self.ts = 0
        self.next_id = 1
        self.open: dict[int, tuple[str, str, str, int]] = {}  # id -> account, sym, side, qty

    def restored(self) -> Driver:
        d = Driver(self.step_ns)
        d.pos.restore(self.pos.snapshot())
        d.risk.restore(self.risk.snapshot())
        d.ts, d.next_id, d.open = self.ts, self.next_id, dict(self.open)
        return d

    def state(self) -> tuple[bytes, bytes]:
        return self.risk.snapshot(), self.pos.snapshot()

    def run(self, o: tuple[Any, ...]) -> Any:
        self.ts += self.step_ns
        ts, risk = self.ts, self.risk
        if o[0] == "new":
            _, acct, sym, side, typ, qty, px = o
            price = px if typ in ("limit", "stop_limit") else None
            before = self.state()
            r = risk.check_new(acct, sym, side, typ, qty, price, ts)
            if r is not None:
                assert self.state() == before, "a rejected order changed the state"
                return r
            oid = self.next_id
            self.next_id += 1
            risk.on_accepted(oid, acct, sym, side, qty, price)
            self.open[oid] = (acct, sym, side, qty)
            return oid
        if o[0] == "replace":
            _, oid, qty, px = o
            before = self.state()
            r = risk.check_replace(oid, qty or None, px if qty % 2 else None, ts)
            if r is not None:
                assert self.state() == before, "a rejected replace changed the state"
                return r
            if oid in self.open and qty:
                acct, sym, side, _ = self.open[oid]
                self.open[oid] = (acct, sym, side, qty)
                risk.on_replaced(oid, qty, px if qty % 2 else None)
            return None
        if o[0] == "cancel":
            self.open.pop(o[1], None)
            risk.on_done(o[1])
            return None
        if o[0] == "fill":
            _, oid, qty = o
            if oid not in self.open:
                return None
            acct, sym, side, left = self.open[oid]
            qty = min(qty, left)
            px = risk.reference(sym) or 100
            buyer, seller = (acct, "mm") if side == "buy" else ("mm", acct)
            events: list[Any] = list(self.pos.on_trade(sym, px, qty, buyer, seller, ts))
            risk.on_fill(oid, qty)
            if qty == left:
                del self.open[oid]
            else:
                self.open[oid] = (acct, sym, side, left - qty)
            return [*events, *risk.on_trade(sym, px, ts)]
        if o[0] == "trade":
            self.pos.mark(o[1], o[2])
            return risk.on_trade(o[1], o[2], ts)
        if o[0] == "kill":
            return risk.kill(o[1]) if o[2] else risk.revive(o[1])
        return risk.expire(ts)


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=60), st.lists(op, max_size=60))
def test_snapshot_restore_behaves_identically(first: list[Any], then: list[Any]) -> None:
    d = Driver()
    for o in first:
        d.run(o)
    e = d.restored()
    assert e.state() == d.state()
    for o in then:
        assert d.run(o) == e.run(o)
    assert e.state() == d.state()


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=80))
def test_exposure_matches_the_open_orders(ops: list[Any]) -> None:
    d = Driver()
    for o in ops:
        d.run(o)
        for acct in ("a", "b", "c"):
            for sym in ("X", "Y"):
                mine = [v for v in d.open.values() if v[0] == acct and v[1] == sym]
                buys = sum(q for _, _, s, q in mine if s == "buy")
                sells = sum(q for _, _, s, q in mine if s == "sell")
                assert d.risk.open_exposure(acct, sym) == (buys, sells, len(mine))
            assert d.risk.open_order_count(acct) == sum(1 for v in d.open.values() if v[0] == acct)


def test_random_stream_rejects_for_every_reason_and_replays_identically() -> None:
    rng = random.Random(7)
    ops: list[Any] = []
    for _ in range(3_000):
        k = rng.random()
        if k < 0.55:
            ops.append(
                (
                    "new",
                    rng.choice("abc"),
                    rng.choice("XY"),
                    rng.choice(["buy", "sell"]),
                    rng.choice(["limit", "limit", "market", "stop_limit"]),
                    rng.randint(1, 40),
                    rng.randint(85, 115),
                )
            )
        elif k < 0.65:
            ops.append(("replace", rng.randint(0, 400), rng.randint(0, 35), rng.randint(85, 115)))
        elif k < 0.75:
            ops.append(("cancel", rng.randint(0, 400)))
        elif k < 0.9:
            ops.append(("fill", rng.randint(0, 400), rng.randint(1, 40)))
        elif k < 0.97:
            ops.append(("trade", rng.choice("XY"), rng.randint(85, 115)))
        else:
            ops.append(("kill", rng.choice([None, "a", "b"]), rng.random() < 0.3))
    d1, d2 = Driver(1_000_000), Driver(1_000_000)
    out1 = [d1.run(o) for o in ops]
    out2 = [d2.run(o) for o in ops]
    assert out1 == out2
    assert d1.state() == d2.state()
    seen = {r.reason for r in out1 if isinstance(r, Reject)}
    assert seen == set(CHECK_ORDER)


def test_restore_rejects_bad_snapshots_and_keeps_state() -> None:
    risk = engine()
    risk.on_accepted(1, "a", "X", "buy", 5, 100)
    risk.kill("b")
    before = risk.snapshot()
    good = msgspec.json.decode(before)
    bad = [
        b"[]",
        msgspec.json.encode({**good, "version": 99}),
        msgspec.json.encode({**good, "orders": [[1, "a", "X", "up", 5, 100]]}),
        msgspec.json.encode({**good, "orders": [[1, "a", "X", "buy", 0, 100]]}),
        msgspec.json.encode({**good, "orders": good["orders"] * 2}),
    ]
    for data in bad:
        with pytest.raises(ValueError):
            risk.restore(data)
        assert risk.snapshot() == before


def test_snapshot_bytes_do_not_depend_on_history_order() -> None:
    r1, r2 = (
        engine(RiskLimits(max_orders_per_second=5)),
        engine(RiskLimits(max_orders_per_second=5)),
    )
    r1.on_trade("X", 10, 0)
    r1.on_trade("Y", 20, 0)
    r1.kill("b")
    r1.kill("a")
    assert new(r1, account="b", ts=1) == "kill_switch"
    r2.kill("a")
    r2.on_trade("Y", 20, 0)
    r2.kill("b")
    r2.on_trade("X", 10, 0)
    assert r1.snapshot() == r2.snapshot()


@given(st.integers(1, 10**6), st.integers(0, 10_000), st.integers(1, 10**6))
def test_band_edge_is_exact(ref: int, bps: int, price: int) -> None:
    risk = engine(RiskLimits(price_band_bps=bps))
    risk.set_reference("X", ref)
    inside = abs(price - ref) * 10_000 <= bps * ref
    assert (new(risk, 1, price) is None) == inside
