"""Positions, cash and P&L (tickplane.engine.positions): examples for long, short, adding,
reducing, crossing through zero and self-trades; FIFO exactness against a unit-lot
reference over random trade sequences; snapshots that restore to identical behaviour."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickplane.core.events import PositionChanged, from_dict
from tickplane.engine.positions import Positions, PositionView


def _pos(p: Positions, account: str, symbol: str = "X") -> tuple[int, int, int]:
    v = p.position(account, symbol)
    return v.position, v.cost_basis, v.realized_pnl


# --- examples ------------------------------------------------------------------------------


def test_long_open_add_and_average() -> None:
    p = Positions()
    p.on_trade("X", 100, 5, "a", "b", 1)
    p.on_trade("X", 103, 10, "a", "b", 2)
    v = p.position("a", "X")
    assert (v.position, v.cost_basis, v.realized_pnl) == (15, 1530, 0)
    assert v.avg_price == pytest.approx(102.0)
    assert v.mark == 103
    assert v.unrealized_pnl == 15 * 103 - 1530 == 15


def test_short_open_and_cover_realizes_exactly() -> None:
    p = Positions()
    p.on_trade("X", 100, 4, "b", "a", 1)  # a sells 4 @ 100
    assert _pos(p, "a") == (-4, -400, 0)
    assert p.position("a", "X").avg_price == pytest.approx(100.0)
    p.on_trade("X", 97, 3, "a", "b", 2)  # a buys back 3 @ 97: +3 each
    assert _pos(p, "a") == (-1, -100, 9)
    p.on_trade("X", 101, 1, "a", "b", 3)  # covers the last one @ 101: -1
    assert _pos(p, "a") == (0, 0, 8)
    assert p.position("a", "X").avg_price is None


def test_partial_close_is_fifo() -> None:
    p = Positions()
    p.on_trade("X", 100, 1, "a", "b", 1)
    p.on_trade("X", 110, 1, "a", "b", 2)
    p.on_trade("X", 120, 1, "b", "a", 3)  # closes the oldest lot (100): +20
    assert _pos(p, "a") == (1, 110, 20)
    assert p.position("a", "X").avg_price == 110.0


def test_partial_close_of_one_lot_keeps_its_price() -> None:
    p = Positions()
    p.on_trade("X", 100, 10, "a", "b", 1)
    p.on_trade("X", 105, 4, "b", "a", 2)  # a sells 4 of its one lot: +5 each
    assert _pos(p, "a") == (6, 600, 20)
    assert _pos(p, "b") == (-6, -600, -20)  # b covered 4 of its short at a loss of 5 each


def test_long_five_sell_eight_flips_to_short_three_at_the_trade_price() -> None:
    p = Positions({"a": 10_000})
    p.on_trade("X", 100, 5, "a", "b", 1)
    ev = p.on_trade("X", 110, 8, "b", "a", 2)
    assert _pos(p, "a") == (-3, -330, 50)
    assert p.position("a", "X").avg_price == 110.0
    assert [(e.account, e.position, e.cost_basis, e.realized_pnl) for e in ev] == [
        ("b", 3, 330, -50),
        ("a", -3, -330, 50),
    ]
    assert p.account("a").cash == 10_000 - 500 + 880


def test_short_flips_to_long() -> None:
    p = Positions()
    p.on_trade("X", 50, 2, "b", "a", 1)
    p.on_trade("X", 40, 2, "b", "a", 2)  # short 4, cost -180
    p.on_trade("X", 45, 7, "a", "b", 3)  # covers 4 (+5, -5) and opens long 3 @ 45
    assert _pos(p, "a") == (3, 135, 0)
    p.on_trade("X", 44, 7, "a", "b", 4)
    assert _pos(p, "a") == (10, 443, 0)


def test_self_trade_changes_nothing_but_the_mark() -> None:
    p = Positions({"a": 1_000})
    p.on_trade("X", 100, 5, "a", "b", 1)
    before = p.snapshot()
    assert p.on_trade("X", 100, 3, "a", "a", 2) == []
    assert p.snapshot() == before
    assert p.on_trade("X", 120, 3, "a", "a", 3) == []
    assert _pos(p, "a") == (5, 500, 0)
    assert p.account("a").cash == 500
    assert p.mark_price("X") == 120
    assert p.position("a", "X").unrealized_pnl == 100


def test_self_trade_of_an_account_that_never_traded() -> None:
    p = Positions()
    assert p.on_trade("X", 100, 3, "z", "z", 1) == []
    assert p.accounts() == []
    assert p.position("z", "X") == PositionView("z", "X", 0, 0, 0, 0, 100)


def test_events_are_the_core_event_in_order_with_seq_zero() -> None:
    p = Positions({"b": 7})
    ev = p.on_trade("X", 100, 5, "a", "b", 42)
    assert ev == [
        PositionChanged(0, 42, "a", "X", 5, 500, 0, -500, 0),
        PositionChanged(0, 42, "b", "X", -5, -500, 0, 507, 0),
    ]
    ev[0].seq = 9  # the engine stamps it
    assert from_dict(ev[0].to_dict()) == ev[0]


def test_cash_starts_configured_and_defaults() -> None:
    p = Positions({"rich": 1_000_000}, default_cash=50)
    assert p.account("rich").cash == 1_000_000
    assert p.account("other").cash == 50
    p.on_trade("X", 10, 2, "rich", "other", 1)
    assert p.account("rich").cash == 1_000_000 - 20
    assert p.account("other").cash == 70


def test_account_view_sums_symbols_and_equity() -> None:
    p = Positions({"a": 1_000})
    p.on_trade("X", 100, 2, "a", "b", 1)
    p.on_trade("Y", 10, 5, "b", "a", 2)  # a short 5 Y @ 10
    p.on_trade("X", 105, 1, "b", "a", 3)  # a sells 1 X @ 105: +5
    p.mark("X", 110)
    p.mark("Y", 8)
    acc = p.account("a")
    assert [v.symbol for v in acc.positions] == ["X", "Y"]
    assert acc.realized_pnl == 5
    assert acc.unrealized_pnl == (110 - 100) + (10 - 8) * 5
    assert acc.cash == 1_000 - 200 + 50 + 105
    assert acc.equity == acc.cash + 1 * 110 - 5 * 8
    assert acc.equity == 1_000 + acc.realized_pnl + acc.unrealized_pnl


def test_unknown_account_and_symbol() -> None:
    p = Positions()
    assert p.position("nobody", "X") == PositionView("nobody", "X", 0, 0, 0, 0, None)
    assert p.account("nobody").positions == []
    assert p.net("nobody", "X") == 0
    assert p.mark_price("X") is None


def test_bad_trade_and_mark_raise() -> None:
    p = Positions()
    with pytest.raises(ValueError):
        p.on_trade("X", 100, 0, "a", "b", 1)
    with pytest.raises(ValueError):
        p.on_trade("X", 0, 1, "a", "b", 1)
    with pytest.raises(ValueError):
        p.mark("X", -1)
    assert p.snapshot() == Positions().snapshot()


def test_huge_values_stay_exact() -> None:
    p = Positions()
    big = 10**12
    p.on_trade("X", big, big, "a", "b", 1)
    p.on_trade("X", big + 1, big, "b", "a", 2)
    assert _pos(p, "a") == (0, 0, big)
    q = Positions()
    q.restore(p.snapshot())
    assert q.snapshot() == p.snapshot()


# --- the reference: one lot per unit, FIFO -----------------------------------------------


class UnitLots:
    """Plain FIFO accounting with one entry per lot: the simplest thing that is right."""

    def __init__(self, cash: dict[str, int]) -> None:
        self.start = cash
        self.cash: dict[str, int] = {}
        self.lots: dict[tuple[str, str], deque[tuple[int, int]]] = {}  # (sign, price)
        self.realized: dict[tuple[str, str], int] = {}

    def trade(self, symbol: str, price: int, qty: int, buyer: str, seller: str) -> None:
        if buyer == seller:
            return
        for acct, sign in ((buyer, 1), (seller, -1)):
            self.cash.setdefault(acct, self.start.get(acct, 0))
            self.cash[acct] -= sign * price * qty
            lots = self.lots.setdefault((acct, symbol), deque())
            self.realized.setdefault((acct, symbol), 0)
            for _ in range(qty):
                if lots and lots[0][0] == -sign:
                    lot_sign, lot_price = lots.popleft()
                    self.realized[(acct, symbol)] += lot_sign * (price - lot_price)
                else:
                    lots.append((sign, price))

    def position(self, acct: str, symbol: str) -> tuple[int, int, int]:
        lots = self.lots.get((acct, symbol), deque())
        return (
            sum(s for s, _ in lots),
            sum(s * p for s, p in lots),
            self.realized.get((acct, symbol), 0),
        )


ACCOUNTS = ["a", "b", "c"]
SYMBOLS = ["X", "Y"]
trades = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS),
        st.integers(1, 50),
        st.integers(1, 12),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(ACCOUNTS),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(trades)
def test_fifo_exact_against_unit_lots(seq: list[tuple[str, int, int, str, str]]) -> None:
    start = {"a": 1_000, "b": -7}
    p = Positions(start)
    ref = UnitLots(start)
    for ts, (sym, price, qty, buyer, seller) in enumerate(seq):
        events = p.on_trade(sym, price, qty, buyer, seller, ts)
        ref.trade(sym, price, qty, buyer, seller)
        assert len(events) == (0 if buyer == seller else 2)
        for e in events:
            assert (e.position, e.cost_basis, e.realized_pnl) == ref.position(e.account, sym)
            assert e.cash == ref.cash[e.account]
            assert e.ts_event == ts
            # at the trade's price, which is the mark right after it
            assert e.unrealized_pnl == e.position * price - e.cost_basis
            assert e.unrealized_pnl == p.position(e.account, sym).unrealized_pnl
        for acct in ACCOUNTS:
            for s in SYMBOLS:
                assert _pos(p, acct, s) == ref.position(acct, s)
    for acct in ACCOUNTS:
        view = p.account(acct)
        assert view.cash == ref.cash.get(acct, start.get(acct, 0))
        # equity = starting cash + realized + unrealized, exactly
        assert view.equity == start.get(acct, 0) + view.realized_pnl + view.unrealized_pnl


@settings(max_examples=150, deadline=None)
@given(trades, trades)
def test_snapshot_restore_behaves_identically(
    first: list[tuple[str, int, int, str, str]], then: list[tuple[str, int, int, str, str]]
) -> None:
    p = Positions({"a": 5})
    for ts, t in enumerate(first):
        p.on_trade(*t, ts)
    snap = p.snapshot()
    q = Positions({"a": 5})
    q.restore(snap)
    assert q.snapshot() == snap
    for ts, t in enumerate(then, start=len(first)):
        assert p.on_trade(*t, ts) == q.on_trade(*t, ts)
    assert p.snapshot() == q.snapshot()
    for acct in [*ACCOUNTS, "never"]:
        assert p.account(acct) == q.account(acct)


def test_identical_states_give_identical_bytes() -> None:
    p, q = Positions(), Positions()
    p.on_trade("X", 10, 1, "a", "b", 1)
    p.on_trade("Y", 20, 2, "c", "d", 2)
    q.on_trade("Y", 20, 2, "c", "d", 2)
    q.on_trade("X", 10, 1, "a", "b", 1)
    assert p.snapshot() == q.snapshot()


def test_restore_rejects_bad_snapshots_and_keeps_state() -> None:
    p = Positions()
    p.on_trade("X", 10, 1, "a", "b", 1)
    before = p.snapshot()
    bad = [
        b"not json",
        b'{"version":2,"marks":[],"accounts":[]}',
        # lots that do not add up to the position
        b'{"version":1,"marks":[],"accounts":[["a",0,[["X",2,20,0,[[10,1]]]]]]}',
        # nor to the cost basis
        b'{"version":1,"marks":[],"accounts":[["a",0,[["X",1,11,0,[[10,1]]]]]]}',
        b'{"version":1,"marks":[],"accounts":[["a",0,[["X",0,0,0,[[10,0]]]]]]}',
    ]
    for data in bad:
        with pytest.raises(ValueError):
            p.restore(data)
        assert p.snapshot() == before
