"""The matching contract (shared/contracts/matching.md), rule by rule, with examples.

Every test runs against two implementations through the ``impl`` fixture: ``model``
(the plain-Python reference in ``model.py``) and ``core`` (the compiled engine behind
``tickplane.engine.match.Matcher``). Events are compared after projecting them onto
the contract's required fields, since the core may add fields (seq, account, line...).

Where the contract is silent, the tests pin the decisions the core implements:
- MAX = 10**12 for qty, price and stop_price; an integer is an int and not a bool.
- ``new`` is checked: bad_id, duplicate_id, bad_side, bad_type, bad_qty, bad_price,
  bad_stop_price, bad_tif, bad_post_only, bad_symbol, bad_account, unknown_field.
- ``cancel``: unknown_order, then unknown_field. ``replace``: unknown_order, then
  bad_replace (qty, then price; null means absent), then unknown_field.
- bad_op / bad_json / blank lines, post-only before FOK, FOK counts acceptable prices,
  stop triggering re-evaluated from scratch after each triggered stop.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import pytest

if TYPE_CHECKING:
    from tests.engine.model import MAX, REQUIRED_FIELDS, Model, project
else:  # tests/engine is not a package: import the model as a top-level module
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model import MAX, REQUIRED_FIELDS, Model, project

Cmd = dict[str, Any]
Event = dict[str, Any]


class Impl(Protocol):
    """What both implementations offer."""

    def process(self, cmd: str | dict[str, Any]) -> list[dict[str, Any]]: ...

    def book(self) -> dict[str, Any]: ...


@pytest.fixture(params=["model", "core"])
def impl(request: pytest.FixtureRequest) -> Impl:
    """A fresh engine: the reference model or the compiled core."""
    if request.param == "model":
        return Model()
    match = importlib.import_module("tickplane.engine.match")
    return cast(Impl, match.Matcher())


# --------------------------------------------------------------------------- helpers

_ABSENT: Any = object()


def lim(oid: str, side: str, qty: Any, price: Any, **extra: Any) -> Cmd:
    """A ``new`` limit order on symbol X for account A (``extra`` overrides/adds)."""
    cmd: Cmd = {"op": "new", "id": oid, "account": "A", "symbol": "X", "side": side}
    cmd.update(type="limit", qty=qty, price=price)
    cmd.update(extra)
    return cmd


def mkt(oid: str, side: str, qty: Any, **extra: Any) -> Cmd:
    """A ``new`` market order."""
    cmd: Cmd = {"op": "new", "id": oid, "account": "A", "symbol": "X", "side": side}
    cmd.update(type="market", qty=qty)
    cmd.update(extra)
    return cmd


def stp(oid: str, side: str, qty: Any, stop_price: Any, **extra: Any) -> Cmd:
    """A ``new`` stop (market when triggered)."""
    cmd: Cmd = {"op": "new", "id": oid, "account": "A", "symbol": "X", "side": side}
    cmd.update(type="stop", qty=qty, stop_price=stop_price)
    cmd.update(extra)
    return cmd


def stl(oid: str, side: str, qty: Any, stop_price: Any, price: Any, **extra: Any) -> Cmd:
    """A ``new`` stop_limit."""
    cmd: Cmd = {"op": "new", "id": oid, "account": "A", "symbol": "X", "side": side}
    cmd.update(type="stop_limit", qty=qty, stop_price=stop_price, price=price)
    cmd.update(extra)
    return cmd


def cancel(oid: Any, **extra: Any) -> Cmd:
    return {"op": "cancel", "id": oid, **extra}


def replace(oid: Any, qty: Any = _ABSENT, price: Any = _ABSENT, **extra: Any) -> Cmd:
    cmd: Cmd = {"op": "replace", "id": oid}
    if qty is not _ABSENT:
        cmd["qty"] = qty
    if price is not _ABSENT:
        cmd["price"] = price
    cmd.update(extra)
    return cmd


def acc(oid: str) -> Event:
    return {"type": "accepted", "id": oid}


def rej(oid: Any, reason: str) -> Event:
    return {"type": "rejected", "id": oid, "reason": reason}


def trd(price: int, qty: int, taker: str, maker: str, side: str, symbol: str = "X") -> Event:
    return {
        "type": "trade",
        "symbol": symbol,
        "price": price,
        "qty": qty,
        "taker": taker,
        "maker": maker,
        "taker_side": side,
    }


def cxl(oid: str, remaining: int, reason: str) -> Event:
    return {"type": "canceled", "id": oid, "remaining": remaining, "reason": reason}


def rep(oid: str) -> Event:
    return {"type": "replaced", "id": oid}


def trig(oid: str) -> Event:
    return {"type": "triggered", "id": oid}


def run(impl: Impl, *cmds: str | Cmd) -> list[Event]:
    """Process ``cmds`` in order; all their events, projected on required fields."""
    out: list[Event] = []
    for cmd in cmds:
        out.extend(project(event) for event in impl.process(cmd))
    return out


def setup(impl: Impl, *cmds: Cmd) -> None:
    """Process ``cmds``, which must all be accepted without trading."""
    for cmd in cmds:
        assert run(impl, cmd) == [acc(cmd["id"])], cmd


def side_of(impl: Impl, symbol: str = "X") -> dict[str, Any]:
    """``book()`` of one symbol."""
    book: dict[str, Any] = impl.book()[symbol]
    return book


def as_json(value: Any) -> str:
    """Type-exact comparison key (``True`` is not ``1``, ``1.0`` is not ``1``)."""
    return json.dumps(value)


# ------------------------------------------------------------------ rule 1: validation

# Every field wrong at first; each row fixes one more, so the next check is the first
# failure. The type is stop_limit so price and stop_price are both checked.
_ALL_BAD: Cmd = {
    "op": "new",
    "id": "v",
    "account": "",
    "symbol": "",
    "side": "up",
    "type": "iceberg",
    "qty": 0,
    "price": 0,
    "stop_price": 0,
    "tif": "gtd",
    "post_only": True,
    "colour": "red",
}
_FIXES: list[tuple[str, Any, str]] = [
    ("side", "buy", "bad_side"),
    ("type", "stop_limit", "bad_type"),
    ("qty", 5, "bad_qty"),
    ("price", 100, "bad_price"),
    ("stop_price", 101, "bad_stop_price"),
    ("tif", "day", "bad_tif"),
    ("post_only", False, "bad_post_only"),
    ("symbol", "X", "bad_symbol"),
    ("account", "A", "bad_account"),
]


def test_validation_order_first_failure_is_the_reason(impl: Impl) -> None:
    cmd = dict(_ALL_BAD)
    for n, (key, good, reason) in enumerate(_FIXES):
        cmd["id"] = f"v{n}"
        assert run(impl, cmd) == [rej(f"v{n}", reason)]
        cmd[key] = good
    cmd["id"] = "v-last"
    assert run(impl, cmd) == [rej("v-last", "unknown_field")]
    del cmd["colour"]
    cmd["id"] = "v-ok"
    assert run(impl, cmd) == [acc("v-ok")]
    assert impl.book() == {"X": {"bids": [], "asks": [], "stops": [["v-ok", 5]]}}


@pytest.mark.parametrize(
    "cmd",
    [
        {"op": "new", "side": "up"},
        {"op": "new", "id": None, "side": "up"},
        {"op": "new", "id": "", "side": "up"},
        {"op": "new", "id": 7, "side": "up"},
        {"op": "new", "id": True, "side": "up"},
        {"op": "new", "id": ["a"], "side": "up"},
        {"op": "new", "id": {"a": 1}, "side": "up"},
    ],
)
def test_bad_id_comes_first_and_echoes_the_id(impl: Impl, cmd: Cmd) -> None:
    events = run(impl, cmd)
    assert as_json(events) == as_json([rej(cmd.get("id"), "bad_id")])
    assert impl.book() == {}


def test_duplicate_id_comes_before_every_other_check(impl: Impl) -> None:
    setup(impl, lim("d", "buy", 1, 100))
    assert run(impl, {"op": "new", "id": "d", "side": "up", "qty": -1}) == [
        rej("d", "duplicate_id")
    ]
    assert run(impl, lim("d", "sell", 1, 100)) == [rej("d", "duplicate_id")]
    assert side_of(impl)["bids"] == [[100, [["d", 1]]]]


def test_a_rejected_new_takes_its_id(impl: Impl) -> None:
    assert run(impl, lim("r", "buy", 0, 100)) == [rej("r", "bad_qty")]
    assert run(impl, lim("r", "buy", 1, 100)) == [rej("r", "duplicate_id")]
    assert run(impl, lim("r2", "buy", 1, 100, colour="red")) == [rej("r2", "unknown_field")]
    assert run(impl, lim("r2", "buy", 1, 100)) == [rej("r2", "duplicate_id")]
    assert impl.book() == {}


def test_ids_of_canceled_and_filled_orders_stay_taken(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), lim("c", "sell", 1, 200))
    assert run(impl, cancel("c")) == [cxl("c", 1, "user")]
    assert run(impl, lim("b", "buy", 1, 100)) == [acc("b"), trd(100, 1, "b", "a", "buy")]
    for oid in ("a", "b", "c"):
        assert run(impl, lim(oid, "buy", 1, 1)) == [rej(oid, "duplicate_id")]


@pytest.mark.parametrize("side", ["BUY", "", None, 1, True, ["buy"]])
def test_bad_side(impl: Impl, side: Any) -> None:
    assert run(impl, lim("s", side, 1, 100)) == [rej("s", "bad_side")]


def test_missing_side(impl: Impl) -> None:
    cmd = lim("s", "buy", 1, 100)
    del cmd["side"]
    assert run(impl, cmd) == [rej("s", "bad_side")]


@pytest.mark.parametrize("kind", ["LIMIT", "stop-limit", "iceberg", "", None, 0, False])
def test_bad_type(impl: Impl, kind: Any) -> None:
    assert run(impl, lim("t", "buy", 1, 100, type=kind)) == [rej("t", "bad_type")]


def test_missing_type(impl: Impl) -> None:
    cmd = lim("t", "buy", 1, 100)
    del cmd["type"]
    assert run(impl, cmd) == [rej("t", "bad_type")]


_BAD_NUMBERS: list[Any] = [
    0,
    -1,
    MAX + 1,
    10**30,
    True,
    False,
    1.0,
    2.5,
    "5",
    None,
    [5],
    {"v": 5},
]


@pytest.mark.parametrize("qty", _BAD_NUMBERS)
def test_bad_qty(impl: Impl, qty: Any) -> None:
    assert run(impl, lim("q", "buy", qty, 100)) == [rej("q", "bad_qty")]
    assert run(impl, mkt("q2", "buy", qty)) == [rej("q2", "bad_qty")]
    assert run(impl, stp("q3", "buy", qty, 100)) == [rej("q3", "bad_qty")]


def test_missing_qty(impl: Impl) -> None:
    cmd = lim("q", "buy", 1, 100)
    del cmd["qty"]
    assert run(impl, cmd) == [rej("q", "bad_qty")]


@pytest.mark.parametrize("price", _BAD_NUMBERS)
def test_bad_price_for_limit_and_stop_limit(impl: Impl, price: Any) -> None:
    assert run(impl, lim("p", "buy", 1, price)) == [rej("p", "bad_price")]
    assert run(impl, stl("p2", "buy", 1, 100, price)) == [rej("p2", "bad_price")]


def test_missing_price_for_limit(impl: Impl) -> None:
    cmd = lim("p", "buy", 1, 100)
    del cmd["price"]
    assert run(impl, cmd) == [rej("p", "bad_price")]


@pytest.mark.parametrize("stop_price", _BAD_NUMBERS)
def test_bad_stop_price_for_stop_and_stop_limit(impl: Impl, stop_price: Any) -> None:
    assert run(impl, stp("sp", "buy", 1, stop_price)) == [rej("sp", "bad_stop_price")]
    assert run(impl, stl("sp2", "buy", 1, stop_price, 100)) == [rej("sp2", "bad_stop_price")]


def test_missing_stop_price(impl: Impl) -> None:
    cmd = stp("sp", "sell", 1, 100)
    del cmd["stop_price"]
    assert run(impl, cmd) == [rej("sp", "bad_stop_price")]


def test_max_is_valid_for_qty_price_and_stop_price(impl: Impl) -> None:
    setup(impl, lim("m", "sell", MAX, MAX), stl("m2", "buy", MAX, MAX, MAX))
    assert impl.book() == {"X": {"bids": [], "asks": [[MAX, [["m", MAX]]]], "stops": [["m2", MAX]]}}


@pytest.mark.parametrize("junk", [0, -1, True, "x", None, 1.5, [1]])
def test_price_is_ignored_for_market_and_stop(impl: Impl, junk: Any) -> None:
    setup(impl, lim("ask", "sell", 10, 100))
    assert run(impl, mkt("m", "buy", 1, price=junk)) == [
        acc("m"),
        trd(100, 1, "m", "ask", "buy"),
    ]
    assert run(impl, stp("s", "sell", 1, 50, price=junk)) == [acc("s")]
    assert side_of(impl)["stops"] == [["s", 1]]


@pytest.mark.parametrize("junk", [0, -1, True, "x", None, 1.5])
def test_stop_price_is_ignored_for_limit_and_market(impl: Impl, junk: Any) -> None:
    assert run(impl, lim("l", "buy", 1, 100, stop_price=junk)) == [acc("l")]
    assert run(impl, mkt("m", "sell", 1, stop_price=junk)) == [
        acc("m"),
        trd(100, 1, "m", "l", "sell"),
    ]


@pytest.mark.parametrize("tif", [None, "GTC", "gtd", "", 0, True, ["gtc"]])
def test_bad_tif(impl: Impl, tif: Any) -> None:
    assert run(impl, lim("t", "buy", 1, 100, tif=tif)) == [rej("t", "bad_tif")]
    assert run(impl, mkt("t2", "buy", 1, tif=tif)) == [rej("t2", "bad_tif")]


def test_absent_tif_means_gtc(impl: Impl) -> None:
    setup(impl, lim("g", "buy", 2, 100))
    assert run(impl, lim("s", "sell", 1, 100)) == [acc("s"), trd(100, 1, "s", "g", "sell")]
    assert side_of(impl)["bids"] == [[100, [["g", 1]]]]


@pytest.mark.parametrize("post_only", [None, 0, 1, "true", "false", [True]])
def test_post_only_must_be_a_bool(impl: Impl, post_only: Any) -> None:
    assert run(impl, lim("p", "buy", 1, 100, post_only=post_only)) == [rej("p", "bad_post_only")]


def test_post_only_true_is_for_limit_orders_only(impl: Impl) -> None:
    assert run(impl, mkt("m", "buy", 1, post_only=True)) == [rej("m", "bad_post_only")]
    assert run(impl, stp("s", "buy", 1, 100, post_only=True)) == [rej("s", "bad_post_only")]
    assert run(impl, stl("sl", "buy", 1, 100, 100, post_only=True)) == [rej("sl", "bad_post_only")]
    assert run(impl, lim("l", "buy", 1, 100, post_only=True)) == [acc("l")]


def test_post_only_false_is_fine_on_any_type(impl: Impl) -> None:
    assert run(impl, mkt("m", "buy", 1, post_only=False)) == [
        acc("m"),
        cxl("m", 1, "no_liquidity"),
    ]
    assert run(impl, stp("s", "buy", 1, 100, post_only=False)) == [acc("s")]
    assert run(impl, lim("l", "buy", 1, 100, post_only=False)) == [acc("l")]


@pytest.mark.parametrize("field", ["symbol", "account"])
@pytest.mark.parametrize("value", [_ABSENT, None, "", 5, True, ["X"]])
def test_bad_symbol_and_account(impl: Impl, field: str, value: Any) -> None:
    cmd = lim("o", "buy", 1, 100)
    if value is _ABSENT:
        del cmd[field]
    else:
        cmd[field] = value
    assert run(impl, cmd) == [rej("o", f"bad_{field}")]
    assert impl.book() == {}


def test_unknown_field_is_the_last_check(impl: Impl) -> None:
    assert run(impl, lim("u", "buy", 1, 100, extra=1)) == [rej("u", "unknown_field")]
    assert run(impl, lim("u2", "buy", 1, 100, account="", extra=1)) == [rej("u2", "bad_account")]
    assert impl.book() == {}


def test_a_rejected_new_changes_nothing(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 5, 100))
    before = impl.book()
    assert run(impl, lim("b", "buy", 5, 100, tif="never")) == [rej("b", "bad_tif")]
    assert run(impl, lim("c", "buy", 5, 100, symbol="Y", account="")) == [rej("c", "bad_account")]
    assert impl.book() == before


@pytest.mark.parametrize(
    ("cmd", "echo"),
    [
        ({"op": "modify", "id": "x"}, "x"),
        ({"op": "NEW", "id": "x"}, "x"),
        ({"op": "", "id": 3}, 3),
        ({"id": "x"}, "x"),
        ({"op": None}, None),
        ({"op": 1, "id": None}, None),
        ({"op": True, "id": [1]}, [1]),
        ({"op": ["new"], "id": "x"}, "x"),
        ({}, None),
    ],
)
def test_bad_op(impl: Impl, cmd: Cmd, echo: Any) -> None:
    assert as_json(run(impl, cmd)) == as_json([rej(echo, "bad_op")])
    assert impl.book() == {}


def test_bad_op_does_not_take_the_id(impl: Impl) -> None:
    assert run(impl, {"op": "add", "id": "k"}) == [rej("k", "bad_op")]
    assert run(impl, lim("k", "buy", 1, 100)) == [acc("k")]


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "{",
        '{"op": "new",}',
        "[1, 2]",
        "[]",
        "42",
        '"new"',
        "null",
        "true",
        '{"op": "new", "id": "n", "qty": NaN}',
        "NaN",
        "Infinity",
        '{"op": "cancel"} {"op": "cancel"}',
    ],
)
def test_bad_json(impl: Impl, line: str) -> None:
    assert run(impl, line) == [rej(None, "bad_json")]
    assert impl.book() == {}


def test_absurdly_deep_nesting_is_bad_json_not_a_crash(impl: Impl) -> None:
    assert run(impl, "[" * 100_000) == [rej(None, "bad_json")]
    assert run(impl, '{"op": "new", "id": ' + "[" * 100_000 + "}") == [rej(None, "bad_json")]


@pytest.mark.parametrize("line", ["", " ", "\n", "\r\n", "\t  \n", "\x0c", "\u00a0\n"])
def test_blank_lines_are_skipped(impl: Impl, line: str) -> None:
    assert impl.process(line) == []


def test_a_json_line_is_the_same_as_its_object(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 2, 100))
    line = json.dumps(lim("b", "buy", 1, 100)) + "\n"
    assert run(impl, line) == [acc("b"), trd(100, 1, "b", "a", "buy")]
    assert run(impl, '  {"op": "cancel", "id": "a"}  ') == [cxl("a", 1, "user")]
    assert run(impl, '{"op":"new","id":"c","side":"buy","type":"limit","qty":1.0,"price":100}') == [
        rej("c", "bad_qty")
    ]


# ------------------------------------------------------------------ rule 2: acceptance


def test_accepted_comes_before_anything_the_order_causes(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100))
    assert run(impl, lim("b", "buy", 3, 100, tif="ioc")) == [
        acc("b"),
        trd(100, 1, "b", "a", "buy"),
        cxl("b", 2, "ioc"),
    ]


# -------------------------------------------------------------------- rule 3: priority


def test_price_then_time_priority_and_maker_price(impl: Impl) -> None:
    setup(
        impl,
        lim("s1", "sell", 2, 101),
        lim("s2", "sell", 1, 100),
        lim("s3", "sell", 1, 100),
        lim("s4", "sell", 1, 103),
    )
    assert run(impl, lim("b", "buy", 4, 102)) == [
        acc("b"),
        trd(100, 1, "b", "s2", "buy"),
        trd(100, 1, "b", "s3", "buy"),
        trd(101, 2, "b", "s1", "buy"),
    ]
    assert side_of(impl) == {"bids": [], "asks": [[103, [["s4", 1]]]], "stops": []}


def test_sell_sweeps_highest_bid_first_oldest_first(impl: Impl) -> None:
    setup(
        impl,
        lim("b1", "buy", 1, 98),
        lim("b2", "buy", 2, 99),
        lim("b3", "buy", 2, 99),
        lim("b4", "buy", 1, 97),
    )
    assert run(impl, lim("s", "sell", 4, 98)) == [
        acc("s"),
        trd(99, 2, "s", "b2", "sell"),
        trd(99, 2, "s", "b3", "sell"),
    ]
    assert run(impl, lim("s2", "sell", 3, 97)) == [
        acc("s2"),
        trd(98, 1, "s2", "b1", "sell"),
        trd(97, 1, "s2", "b4", "sell"),
    ]
    assert side_of(impl) == {"bids": [], "asks": [[97, [["s2", 1]]]], "stops": []}


def test_partial_fill_keeps_the_makers_place(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 5, 100), lim("a2", "sell", 5, 100))
    assert run(impl, lim("b", "buy", 2, 100)) == [acc("b"), trd(100, 2, "b", "a1", "buy")]
    assert side_of(impl)["asks"] == [[100, [["a1", 3], ["a2", 5]]]]
    assert run(impl, lim("b2", "buy", 4, 100)) == [
        acc("b2"),
        trd(100, 3, "b2", "a1", "buy"),
        trd(100, 1, "b2", "a2", "buy"),
    ]
    assert side_of(impl)["asks"] == [[100, [["a2", 4]]]]


def test_symbols_never_interact(impl: Impl) -> None:
    setup(impl, lim("x", "sell", 1, 100, symbol="X"))
    assert run(impl, lim("y", "buy", 1, 200, symbol="Y")) == [acc("y")]
    assert run(impl, mkt("ym", "buy", 1, symbol="Y")) == [acc("ym"), cxl("ym", 1, "no_liquidity")]
    assert impl.book() == {
        "X": {"bids": [], "asks": [[100, [["x", 1]]]], "stops": []},
        "Y": {"bids": [[200, [["y", 1]]]], "asks": [], "stops": []},
    }


def test_self_trades_are_allowed(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100, account="same"))
    assert run(impl, lim("b", "buy", 1, 100, account="same")) == [
        acc("b"),
        trd(100, 1, "b", "a", "buy"),
    ]


# ----------------------------------------------------------------------- rule 4: limit


def test_limit_trades_while_it_crosses_then_rests(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 1, 100), lim("a2", "sell", 1, 101), lim("a3", "sell", 1, 102))
    assert run(impl, lim("b", "buy", 5, 101)) == [
        acc("b"),
        trd(100, 1, "b", "a1", "buy"),
        trd(101, 1, "b", "a2", "buy"),
    ]
    assert side_of(impl) == {
        "bids": [[101, [["b", 3]]]],
        "asks": [[102, [["a3", 1]]]],
        "stops": [],
    }


def test_limit_that_does_not_cross_rests(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 101))
    assert run(impl, lim("b", "buy", 1, 100)) == [acc("b")]
    assert run(impl, lim("s", "sell", 1, 101)) == [acc("s")]
    assert side_of(impl) == {
        "bids": [[100, [["b", 1]]]],
        "asks": [[101, [["a", 1], ["s", 1]]]],
        "stops": [],
    }


@pytest.mark.parametrize("tif", ["gtc", "day"])
def test_gtc_and_day_remainders_rest(impl: Impl, tif: str) -> None:
    setup(impl, lim("a", "sell", 1, 100))
    assert run(impl, lim("b", "buy", 3, 100, tif=tif)) == [acc("b"), trd(100, 1, "b", "a", "buy")]
    assert side_of(impl)["bids"] == [[100, [["b", 2]]]]
    assert run(impl, lim("s", "sell", 2, 100)) == [acc("s"), trd(100, 2, "s", "b", "sell")]


def test_ioc_remainder_is_canceled(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100))
    assert run(impl, lim("b", "buy", 3, 100, tif="ioc")) == [
        acc("b"),
        trd(100, 1, "b", "a", "buy"),
        cxl("b", 2, "ioc"),
    ]
    assert run(impl, lim("c", "buy", 4, 100, tif="ioc")) == [acc("c"), cxl("c", 4, "ioc")]
    assert side_of(impl) == {"bids": [], "asks": [], "stops": []}


def test_ioc_that_fills_completely_emits_no_cancel(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 5, 100))
    assert run(impl, lim("b", "buy", 5, 101, tif="ioc")) == [
        acc("b"),
        trd(100, 5, "b", "a", "buy"),
    ]


# ------------------------------------------------------------------------- rule 5: FOK


def test_fok_without_enough_at_acceptable_prices_is_canceled(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 2, 100), lim("a2", "sell", 2, 101), lim("a3", "sell", 9, 102))
    before = impl.book()
    assert run(impl, lim("b", "buy", 5, 101, tif="fok")) == [acc("b"), cxl("b", 5, "fok")]
    assert impl.book() == before


def test_fok_with_enough_fills_completely(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 2, 100), lim("a2", "sell", 2, 101), lim("a3", "sell", 9, 102))
    assert run(impl, lim("b", "buy", 4, 101, tif="fok")) == [
        acc("b"),
        trd(100, 2, "b", "a1", "buy"),
        trd(101, 2, "b", "a2", "buy"),
    ]
    assert run(impl, lim("s", "sell", 3, 1, tif="fok")) == [acc("s"), cxl("s", 3, "fok")]


def test_fok_sell_counts_bids_at_or_above_its_price(impl: Impl) -> None:
    setup(impl, lim("b1", "buy", 1, 100), lim("b2", "buy", 1, 99))
    assert run(impl, lim("s", "sell", 2, 100, tif="fok")) == [acc("s"), cxl("s", 2, "fok")]
    assert run(impl, lim("s2", "sell", 2, 99, tif="fok")) == [
        acc("s2"),
        trd(100, 1, "s2", "b1", "sell"),
        trd(99, 1, "s2", "b2", "sell"),
    ]


def test_market_fok_counts_every_level(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 1, 100), lim("a2", "sell", 1, 500))
    assert run(impl, mkt("m", "buy", 3, tif="fok")) == [acc("m"), cxl("m", 3, "fok")]
    assert run(impl, mkt("m2", "buy", 2, tif="fok")) == [
        acc("m2"),
        trd(100, 1, "m2", "a1", "buy"),
        trd(500, 1, "m2", "a2", "buy"),
    ]


def test_fok_on_an_empty_book(impl: Impl) -> None:
    assert run(impl, lim("b", "buy", 1, 100, tif="fok")) == [acc("b"), cxl("b", 1, "fok")]
    assert run(impl, mkt("m", "sell", 1, tif="fok")) == [acc("m"), cxl("m", 1, "fok")]


# ---------------------------------------------------------------------- rule 6: market


def test_market_trades_at_any_price(impl: Impl) -> None:
    setup(impl, lim("b1", "buy", 1, 100), lim("b2", "buy", 1, 1))
    assert run(impl, mkt("m", "sell", 2)) == [
        acc("m"),
        trd(100, 1, "m", "b1", "sell"),
        trd(1, 1, "m", "b2", "sell"),
    ]


@pytest.mark.parametrize("tif", [_ABSENT, "gtc", "day", "ioc"])
def test_market_remainder_is_canceled_no_liquidity(impl: Impl, tif: Any) -> None:
    extra = {} if tif is _ABSENT else {"tif": tif}
    setup(impl, lim("a", "sell", 2, 100))
    assert run(impl, mkt("m", "buy", 5, **extra)) == [
        acc("m"),
        trd(100, 2, "m", "a", "buy"),
        cxl("m", 3, "no_liquidity"),
    ]
    assert run(impl, mkt("m2", "buy", 1, **extra)) == [acc("m2"), cxl("m2", 1, "no_liquidity")]
    assert side_of(impl) == {"bids": [], "asks": [], "stops": []}


# ------------------------------------------------------------------- rule 7: post-only


def test_post_only_that_would_cross_is_canceled_without_trading(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), lim("b", "buy", 1, 98))
    before = impl.book()
    assert run(impl, lim("p", "buy", 3, 100, post_only=True)) == [
        acc("p"),
        cxl("p", 3, "post_only"),
    ]
    assert run(impl, lim("q", "sell", 2, 98, post_only=True)) == [
        acc("q"),
        cxl("q", 2, "post_only"),
    ]
    assert impl.book() == before


def test_post_only_that_does_not_cross_rests(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), lim("b", "buy", 1, 98))
    assert run(impl, lim("p", "buy", 3, 99, post_only=True)) == [acc("p")]
    assert run(impl, lim("q", "sell", 2, 100, post_only=True)) == [acc("q")]
    assert side_of(impl) == {
        "bids": [[99, [["p", 3]]], [98, [["b", 1]]]],
        "asks": [[100, [["a", 1], ["q", 2]]]],
        "stops": [],
    }


def test_post_only_is_checked_before_fok(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100))
    assert run(impl, lim("p", "buy", 5, 100, post_only=True, tif="fok")) == [
        acc("p"),
        cxl("p", 5, "post_only"),
    ]
    assert run(impl, lim("p2", "buy", 5, 99, post_only=True, tif="fok")) == [
        acc("p2"),
        cxl("p2", 5, "fok"),
    ]
    assert run(impl, lim("p3", "buy", 5, 99, post_only=True, tif="ioc")) == [
        acc("p3"),
        cxl("p3", 5, "ioc"),
    ]


# ----------------------------------------------------------------------- rule 8: stops


def test_stops_are_held_aside_and_invisible(impl: Impl) -> None:
    assert run(impl, stp("s", "sell", 2, 100)) == [acc("s")]
    assert run(impl, stl("sl", "buy", 3, 120, 121)) == [acc("sl")]
    assert run(impl, mkt("m", "buy", 1)) == [acc("m"), cxl("m", 1, "no_liquidity")]
    assert run(impl, lim("b", "buy", 1, 1000)) == [acc("b")]
    assert impl.book() == {
        "X": {"bids": [[1000, [["b", 1]]]], "asks": [], "stops": [["s", 2], ["sl", 3]]}
    }


def test_buy_stop_triggers_when_last_reaches_it_and_enters_as_market(impl: Impl) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 101),
        lim("a3", "sell", 5, 103),
        stp("st", "buy", 3, 101),
    )
    assert run(impl, lim("b1", "buy", 1, 100)) == [acc("b1"), trd(100, 1, "b1", "a1", "buy")]
    assert side_of(impl)["stops"] == [["st", 3]]
    assert run(impl, lim("b2", "buy", 1, 101)) == [
        acc("b2"),
        trd(101, 1, "b2", "a2", "buy"),
        trig("st"),
        trd(103, 3, "st", "a3", "buy"),
    ]
    assert side_of(impl) == {"bids": [], "asks": [[103, [["a3", 2]]]], "stops": []}


def test_sell_stop_triggers_when_last_falls_to_it(impl: Impl) -> None:
    setup(
        impl,
        lim("b1", "buy", 1, 100),
        lim("b2", "buy", 1, 99),
        lim("b3", "buy", 1, 90),
        stp("st", "sell", 2, 99),
    )
    assert run(impl, mkt("m1", "sell", 1)) == [acc("m1"), trd(100, 1, "m1", "b1", "sell")]
    assert run(impl, mkt("m2", "sell", 1)) == [
        acc("m2"),
        trd(99, 1, "m2", "b2", "sell"),
        trig("st"),
        trd(90, 1, "st", "b3", "sell"),
        cxl("st", 1, "no_liquidity"),
    ]


def test_triggers_are_checked_after_the_whole_command(impl: Impl) -> None:
    # The sweep passes through 101 but ends at 100: last is 100 when triggers are
    # checked, so the buy stop at 101 stays held; the sell stop at 100 fires.
    setup(
        impl,
        lim("b1", "buy", 1, 102),
        lim("b2", "buy", 1, 101),
        lim("b3", "buy", 1, 100),
        stp("up", "buy", 1, 101),
        stp("down", "sell", 1, 100),
        lim("b4", "buy", 1, 50),
    )
    assert run(impl, mkt("m", "sell", 3)) == [
        acc("m"),
        trd(102, 1, "m", "b1", "sell"),
        trd(101, 1, "m", "b2", "sell"),
        trd(100, 1, "m", "b3", "sell"),
        trig("down"),
        trd(50, 1, "down", "b4", "sell"),
    ]
    assert side_of(impl)["stops"] == [["up", 1]]


def test_stop_accepted_when_already_reached_triggers_at_once(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), lim("a2", "sell", 5, 105))
    run(impl, lim("b", "buy", 1, 100))
    assert run(impl, stp("s", "buy", 2, 99)) == [
        acc("s"),
        trig("s"),
        trd(105, 2, "s", "a2", "buy"),
    ]
    assert run(impl, stp("s2", "buy", 1, 106)) == [acc("s2")]
    assert run(impl, stp("s3", "sell", 1, 105)) == [
        acc("s3"),
        trig("s3"),
        cxl("s3", 1, "no_liquidity"),
    ]


def test_stop_without_a_last_trade_stays_held(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100))
    assert run(impl, stp("s", "buy", 1, 1)) == [acc("s")]
    assert run(impl, stp("s2", "sell", 1, MAX)) == [acc("s2")]
    assert side_of(impl)["stops"] == [["s", 1], ["s2", 1]]


def test_last_trade_price_is_per_symbol(impl: Impl) -> None:
    setup(
        impl,
        lim("xa", "sell", 1, 100, symbol="X"),
        lim("ya", "sell", 1, 100, symbol="Y"),
        stp("ys", "buy", 1, 100, symbol="Y"),
    )
    assert run(impl, lim("xb", "buy", 1, 100, symbol="X")) == [
        acc("xb"),
        trd(100, 1, "xb", "xa", "buy", symbol="X"),
    ]
    assert run(impl, stp("ys2", "buy", 1, 100, symbol="Y")) == [acc("ys2")]
    assert side_of(impl, "Y")["stops"] == [["ys", 1], ["ys2", 1]]


def test_cascade_oldest_first(impl: Impl) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 101),
        lim("a3", "sell", 1, 102),
        lim("a4", "sell", 1, 103),
        stp("s2", "buy", 1, 101),
        stp("s1", "buy", 1, 100),
        stp("s3", "buy", 1, 102),
    )
    assert run(impl, lim("b", "buy", 1, 100)) == [
        acc("b"),
        trd(100, 1, "b", "a1", "buy"),
        trig("s1"),
        trd(101, 1, "s1", "a2", "buy"),
        trig("s2"),
        trd(102, 1, "s2", "a3", "buy"),
        trig("s3"),
        trd(103, 1, "s3", "a4", "buy"),
    ]
    assert side_of(impl) == {"bids": [], "asks": [], "stops": []}


def test_oldest_qualifying_stop_fires_first(impl: Impl) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 5, 105),
        stp("s1", "buy", 1, 99),
        stp("s2", "buy", 1, 95),
        stp("s3", "buy", 1, 100),
    )
    assert run(impl, lim("b", "buy", 1, 100)) == [
        acc("b"),
        trd(100, 1, "b", "a1", "buy"),
        trig("s1"),
        trd(105, 1, "s1", "a2", "buy"),
        trig("s2"),
        trd(105, 1, "s2", "a2", "buy"),
        trig("s3"),
        trd(105, 1, "s3", "a2", "buy"),
    ]


def test_triggers_are_re_evaluated_with_the_new_last_price(impl: Impl) -> None:
    # Both stops qualify at 100; the buy stop fires first (older) and moves last to
    # 105, so the sell stop no longer qualifies and stays held.
    setup(
        impl,
        stp("up", "buy", 1, 100),
        stp("down", "sell", 1, 100),
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 105),
        lim("b1", "buy", 1, 95),
    )
    assert run(impl, lim("t", "buy", 1, 100)) == [
        acc("t"),
        trd(100, 1, "t", "a1", "buy"),
        trig("up"),
        trd(105, 1, "up", "a2", "buy"),
    ]
    assert side_of(impl) == {"bids": [[95, [["b1", 1]]]], "asks": [], "stops": [["down", 1]]}


def test_triggered_stop_gets_a_fresh_time_priority(impl: Impl) -> None:
    setup(
        impl,
        stl("sl", "sell", 2, 100, 102),
        lim("a", "sell", 1, 100),
        lim("r", "sell", 1, 102),
    )
    assert run(impl, lim("b", "buy", 1, 100)) == [
        acc("b"),
        trd(100, 1, "b", "a", "buy"),
        trig("sl"),
    ]
    assert side_of(impl)["asks"] == [[102, [["r", 1], ["sl", 2]]]]
    assert run(impl, lim("b2", "buy", 2, 102)) == [
        acc("b2"),
        trd(102, 1, "b2", "r", "buy"),
        trd(102, 1, "b2", "sl", "buy"),
    ]


@pytest.mark.parametrize(
    ("tif", "tail"),
    [
        ("gtc", []),
        ("day", []),
        ("ioc", [cxl("sl", 2, "ioc")]),
        ("fok", [cxl("sl", 3, "fok")]),
    ],
)
def test_triggered_stop_limit_keeps_its_tif(impl: Impl, tif: str, tail: list[Event]) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 101),
        lim("a3", "sell", 5, 110),
        stl("sl", "buy", 3, 100, 101, tif=tif),
    )
    fills = [] if tif == "fok" else [trd(101, 1, "sl", "a2", "buy")]
    assert run(impl, lim("b", "buy", 1, 100)) == [
        acc("b"),
        trd(100, 1, "b", "a1", "buy"),
        trig("sl"),
        *fills,
        *tail,
    ]
    rests = [[101, [["sl", 2]]]] if tif in ("gtc", "day") else []
    assert side_of(impl)["bids"] == rests


def test_triggered_stop_market_with_fok(impl: Impl) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 101),
        stp("s", "buy", 2, 100, tif="fok"),
        stp("s2", "buy", 1, 100, tif="fok"),
    )
    assert run(impl, lim("b", "buy", 1, 100)) == [
        acc("b"),
        trd(100, 1, "b", "a1", "buy"),
        trig("s"),
        cxl("s", 2, "fok"),
        trig("s2"),
        trd(101, 1, "s2", "a2", "buy"),
    ]


def test_stop_limit_trigger_can_cascade_through_a_limit(impl: Impl) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 101),
        lim("a3", "sell", 1, 104),
        stl("g", "buy", 3, 100, 102),
        stl("i", "buy", 3, 101, 103, tif="ioc"),
    )
    assert run(impl, lim("b", "buy", 1, 100)) == [
        acc("b"),
        trd(100, 1, "b", "a1", "buy"),
        trig("g"),
        trd(101, 1, "g", "a2", "buy"),
        trig("i"),
        cxl("i", 3, "ioc"),
    ]
    assert side_of(impl) == {
        "bids": [[102, [["g", 2]]]],
        "asks": [[104, [["a3", 1]]]],
        "stops": [],
    }


def test_stops_fire_only_after_trades(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), lim("a2", "sell", 1, 103))
    run(impl, lim("b", "buy", 1, 100))
    assert run(impl, stp("s", "buy", 1, 101)) == [acc("s")]
    assert run(impl, lim("c", "buy", 1, 101)) == [acc("c")]
    assert run(impl, cancel("c")) == [cxl("c", 1, "user")]
    assert side_of(impl)["stops"] == [["s", 1]]


# ---------------------------------------------------------------------- rule 9: cancel


def test_cancel_a_resting_order_gives_its_open_quantity(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 5, 100), lim("a2", "sell", 1, 100))
    run(impl, lim("b", "buy", 2, 100))
    assert run(impl, cancel("a")) == [cxl("a", 3, "user")]
    assert side_of(impl)["asks"] == [[100, [["a2", 1]]]]
    assert run(impl, cancel("a2")) == [cxl("a2", 1, "user")]
    assert side_of(impl) == {"bids": [], "asks": [], "stops": []}


def test_cancel_a_held_stop(impl: Impl) -> None:
    setup(impl, stp("s", "buy", 4, 100), stl("s2", "sell", 2, 90, 89))
    assert run(impl, cancel("s")) == [cxl("s", 4, "user")]
    assert side_of(impl)["stops"] == [["s2", 2]]
    assert run(impl, cancel("s2")) == [cxl("s2", 2, "user")]
    assert side_of(impl)["stops"] == []


def test_cancel_unknown_order(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), lim("gone", "sell", 1, 101))
    run(impl, cancel("gone"))
    run(impl, lim("b", "buy", 1, 100))
    run(impl, lim("bad", "buy", 0, 100))
    for oid in ("nope", "gone", "a", "b", "bad", ""):
        assert run(impl, cancel(oid)) == [rej(oid, "unknown_order")]


@pytest.mark.parametrize("oid", [None, 5, True, 1.5, ["a"], {"id": "a"}])
def test_cancel_with_a_non_string_id_echoes_it(impl: Impl, oid: Any) -> None:
    setup(impl, lim("a", "sell", 1, 100))
    assert as_json(run(impl, cancel(oid))) == as_json([rej(oid, "unknown_order")])


def test_cancel_without_id(impl: Impl) -> None:
    assert run(impl, {"op": "cancel"}) == [rej(None, "unknown_order")]


def test_cancel_unknown_field_comes_after_unknown_order(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), stp("s", "buy", 1, 100))
    assert run(impl, cancel("nope", qty=1)) == [rej("nope", "unknown_order")]
    assert run(impl, cancel("a", qty=1)) == [rej("a", "unknown_field")]
    assert run(impl, cancel("s", why="x")) == [rej("s", "unknown_field")]
    assert side_of(impl) == {"bids": [], "asks": [[100, [["a", 1]]]], "stops": [["s", 1]]}


# --------------------------------------------------------------------- rule 10: replace


def test_replace_only_resting_orders(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 100), stp("s", "sell", 1, 50), lim("c", "sell", 1, 101))
    run(impl, cancel("c"))
    run(impl, lim("b", "buy", 1, 100))
    for oid in ("s", "c", "a", "b", "nope"):
        assert run(impl, replace(oid, qty=1)) == [rej(oid, "unknown_order")]
    assert as_json(run(impl, replace(None, qty=1))) == as_json([rej(None, "unknown_order")])
    assert run(impl, {"op": "replace", "qty": 1}) == [rej(None, "unknown_order")]
    assert side_of(impl)["stops"] == [["s", 1]]


@pytest.mark.parametrize("bad", [0, -1, MAX + 1, True, False, 1.0, 2.5, "3", [3], {"q": 3}])
def test_bad_replace(impl: Impl, bad: Any) -> None:
    setup(impl, lim("a", "sell", 5, 100))
    before = impl.book()
    assert run(impl, replace("a", qty=bad)) == [rej("a", "bad_replace")]
    assert run(impl, replace("a", price=bad)) == [rej("a", "bad_replace")]
    assert run(impl, replace("a", qty=3, price=bad)) == [rej("a", "bad_replace")]
    assert run(impl, replace("a", qty=bad, price=100)) == [rej("a", "bad_replace")]
    assert impl.book() == before


def test_replace_check_order(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 5, 100))
    assert run(impl, replace("nope", qty=0, x=1)) == [rej("nope", "unknown_order")]
    assert run(impl, replace("a", qty=0, x=1)) == [rej("a", "bad_replace")]
    assert run(impl, replace("a", qty=1, x=1)) == [rej("a", "unknown_field")]
    assert run(impl, replace("a", qty=1, side="buy")) == [rej("a", "unknown_field")]
    assert side_of(impl)["asks"] == [[100, [["a", 5]]]]


def test_replace_with_null_or_absent_fields_changes_nothing(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 5, 100), lim("a2", "sell", 5, 100))
    before = impl.book()
    assert run(impl, replace("a1")) == [rep("a1")]
    assert run(impl, replace("a1", qty=None, price=None)) == [rep("a1")]
    assert run(impl, replace("a1", qty=5, price=100)) == [rep("a1")]
    assert impl.book() == before


def test_replace_reducing_qty_in_place_keeps_priority(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 5, 100), lim("a2", "sell", 5, 100))
    assert run(impl, replace("a1", qty=2)) == [rep("a1")]
    assert side_of(impl)["asks"] == [[100, [["a1", 2], ["a2", 5]]]]
    assert run(impl, replace("a1", qty=1, price=None)) == [rep("a1")]
    assert run(impl, mkt("m", "buy", 2)) == [
        acc("m"),
        trd(100, 1, "m", "a1", "buy"),
        trd(100, 1, "m", "a2", "buy"),
    ]


def test_replace_qty_is_the_new_open_quantity(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 5, 100), lim("a2", "sell", 5, 100))
    run(impl, lim("b", "buy", 2, 100))
    assert side_of(impl)["asks"] == [[100, [["a1", 3], ["a2", 5]]]]
    assert run(impl, replace("a1", qty=3)) == [rep("a1")]
    assert side_of(impl)["asks"] == [[100, [["a1", 3], ["a2", 5]]]]
    assert run(impl, replace("a1", qty=4)) == [rep("a1")]
    assert side_of(impl)["asks"] == [[100, [["a2", 5], ["a1", 4]]]]


def test_replace_increasing_qty_loses_priority(impl: Impl) -> None:
    setup(impl, lim("b1", "buy", 1, 100), lim("b2", "buy", 1, 100))
    assert run(impl, replace("b1", qty=2)) == [rep("b1")]
    assert side_of(impl)["bids"] == [[100, [["b2", 1], ["b1", 2]]]]


def test_replace_price_moves_the_order_with_fresh_priority(impl: Impl) -> None:
    setup(impl, lim("b1", "buy", 1, 100), lim("b2", "buy", 1, 99), lim("b3", "buy", 1, 101))
    assert run(impl, replace("b1", price=99)) == [rep("b1")]
    assert run(impl, replace("b3", price=99, qty=1)) == [rep("b3")]
    assert side_of(impl)["bids"] == [[99, [["b2", 1], ["b1", 1], ["b3", 1]]]]
    assert run(impl, replace("b2", price=100)) == [rep("b2")]
    assert run(impl, replace("b2", price=99)) == [rep("b2")]
    assert side_of(impl)["bids"] == [[99, [["b1", 1], ["b3", 1], ["b2", 1]]]]


def test_replace_can_trade_as_an_incoming_limit(impl: Impl) -> None:
    setup(impl, lim("a1", "sell", 2, 101), lim("a2", "sell", 2, 102), lim("b", "buy", 5, 100))
    assert run(impl, replace("b", price=101)) == [rep("b"), trd(101, 2, "b", "a1", "buy")]
    assert side_of(impl)["bids"] == [[101, [["b", 3]]]]
    assert run(impl, replace("b", price=105, qty=1)) == [rep("b"), trd(102, 1, "b", "a2", "buy")]
    assert side_of(impl) == {"bids": [], "asks": [[102, [["a2", 1]]]], "stops": []}


def test_replace_keeps_post_only(impl: Impl) -> None:
    setup(impl, lim("a", "sell", 1, 101), lim("p", "buy", 2, 99, post_only=True))
    assert run(impl, replace("p", price=100, qty=3)) == [rep("p")]
    assert side_of(impl)["bids"] == [[100, [["p", 3]]]]
    assert run(impl, replace("p", price=101, qty=4)) == [rep("p"), cxl("p", 4, "post_only")]
    assert side_of(impl) == {"bids": [], "asks": [[101, [["a", 1]]]], "stops": []}
    assert run(impl, cancel("p")) == [rej("p", "unknown_order")]


def test_replaced_day_order_keeps_resting(impl: Impl) -> None:
    # A resting order is gtc or day (ioc/fok never rest); both rest again after a replace.
    setup(impl, lim("a", "sell", 1, 101), lim("d", "buy", 3, 99, tif="day"))
    assert run(impl, replace("d", price=101)) == [rep("d"), trd(101, 1, "d", "a", "buy")]
    assert side_of(impl)["bids"] == [[101, [["d", 2]]]]


def test_replace_that_trades_checks_stops(impl: Impl) -> None:
    setup(
        impl,
        lim("a1", "sell", 1, 100),
        lim("a2", "sell", 1, 102),
        stp("s", "buy", 1, 100),
        lim("b", "buy", 1, 90),
    )
    assert run(impl, replace("b", price=100)) == [
        rep("b"),
        trd(100, 1, "b", "a1", "buy"),
        trig("s"),
        trd(102, 1, "s", "a2", "buy"),
    ]


# ------------------------------------------------------------------- book() and rule 11


def test_book_shape(impl: Impl) -> None:
    setup(
        impl,
        lim("zb1", "buy", 1, 10, symbol="Z"),
        lim("zb2", "buy", 2, 12, symbol="Z"),
        lim("zb3", "buy", 3, 10, symbol="Z"),
        lim("za1", "sell", 4, 20, symbol="Z"),
        lim("za2", "sell", 5, 15, symbol="Z"),
        stp("zs2", "sell", 6, 5, symbol="Z"),
        stl("zs1", "buy", 7, 30, 31, symbol="Z"),
        lim("e", "buy", 1, 10, symbol="EMPTY"),
        lim("a", "sell", 1, 10, symbol="A"),
    )
    run(impl, cancel("e"))
    run(impl, lim("never", "buy", 0, 10, symbol="NEVER"))
    assert impl.book() == {
        "A": {"bids": [], "asks": [[10, [["a", 1]]]], "stops": []},
        "EMPTY": {"bids": [], "asks": [], "stops": []},
        "Z": {
            "bids": [[12, [["zb2", 2]]], [10, [["zb1", 1], ["zb3", 3]]]],
            "asks": [[15, [["za2", 5]]], [20, [["za1", 4]]]],
            "stops": [["zs2", 6], ["zs1", 7]],
        },
    }
    assert list(impl.book()) == ["A", "EMPTY", "Z"]


def test_book_of_a_fresh_engine_is_empty(impl: Impl) -> None:
    assert impl.book() == {}


def test_symbol_of_a_market_order_appears_in_the_book(impl: Impl) -> None:
    run(impl, mkt("m", "buy", 1, symbol="M"))
    assert impl.book() == {"M": {"bids": [], "asks": [], "stops": []}}


_STREAM: list[str | Cmd] = [
    lim("a1", "sell", 3, 101),
    lim("a2", "sell", 2, 102, account="B"),
    lim("b1", "buy", 4, 99),
    stp("s1", "buy", 2, 101),
    stl("s2", "sell", 1, 98, 97, tif="ioc"),
    lim("x", "buy", 2, 101, tif="ioc"),
    mkt("m", "sell", 5),
    replace("a2", qty=5),
    replace("a1", price=100),
    lim("p", "sell", 1, 98, post_only=True),
    lim("f", "buy", 9, 110, tif="fok"),
    cancel("b1"),
    cancel("nope"),
    '{"op":"new"',
    "",
    {"op": "bogus"},
    lim("y", "buy", 1, 1, symbol="Y"),
    mkt("ym", "sell", 1, symbol="Y"),
    lim("a1", "buy", 1, 1),
]


def test_determinism(impl: Impl) -> None:
    second = type(impl)()
    first_events = [impl.process(cmd) for cmd in _STREAM]
    second_events = [second.process(cmd) for cmd in _STREAM]
    assert as_json(first_events) == as_json(second_events)
    assert as_json(impl.book()) == as_json(second.book())
    assert sum(len(events) for events in first_events) > len(_STREAM)


def test_model_events_have_exactly_the_required_fields_in_order() -> None:
    model = Model()
    events = [event for cmd in _STREAM for event in model.process(cmd)]
    assert {event["type"] for event in events} == set(REQUIRED_FIELDS)
    for event in events:
        assert tuple(event) == REQUIRED_FIELDS[event["type"]], event
