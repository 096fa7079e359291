"""Random command streams: the compiled core against the plain-Python model.

``test_core_agrees_with_reference_on_random_streams`` runs long random streams (every
command type, valid and invalid input, JSON lines and parsed objects) through both and
requires identical events (projected on the contract's required fields, compared
type-exactly) after every command, and an identical final book.

``test_invariants_hold_after_every_command`` checks structural invariants of the book,
``depth`` and ``lookup`` after every command of a random stream.

``TICKPLANE_HYPOTHESIS_EXAMPLES`` raises the number of streams tried (default 60).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from tests.engine.model import MAX, Model, project
else:  # tests/engine is not a package: import the model as a top-level module
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model import MAX, Model, project

EXAMPLES = int(os.environ.get("TICKPLANE_HYPOTHESIS_EXAMPLES", "60"))

Cmd = dict[str, Any]
Line = str | Cmd


class Engine(Protocol):
    """What the tests here use of an implementation."""

    def process(self, cmd: str | dict[str, Any]) -> list[dict[str, Any]]: ...

    def book(self) -> dict[str, Any]: ...

    def depth(self, symbol: str, levels: int) -> dict[str, Any]: ...

    def lookup(self, order_id: str) -> dict[str, Any] | None: ...


def core() -> Engine:
    """A fresh compiled core (imported lazily: it may not be built yet)."""
    match = importlib.import_module("tickplane.engine.match")
    return cast(Engine, match.Matcher())


def as_json(value: Any) -> str:
    """Type-exact comparison key (``True`` is not ``1``, ``1.0`` is not ``1``)."""
    return json.dumps(value)


# ------------------------------------------------------------------------ the streams

SYMBOLS = ["X", "Y"]
ACCOUNTS = ["A", "B", "C"]
LOW, HIGH = 97, 103  # a narrow price band, so orders cross often

# Values that are not a valid quantity or price (0 and MAX + 1 are the boundaries).
BAD_NUMBERS: list[Any] = [
    0,
    -1,
    MAX + 1,
    10**20,
    True,
    False,
    1.0,
    2.5,
    "3",
    None,
    [2],
    {"q": 1},
]
# Values that are valid but far from the band.
EDGE_NUMBERS: list[Any] = [1, MAX, MAX - 1]
# Anything at all, for fields that must be strings or bools.
JUNK: list[Any] = [None, "", 0, 1, True, False, 1.5, "BUY", "x", [], {}, ["buy"]]
# Raw lines that are blank or not a JSON object.
RAW_LINES = [
    "",
    "   ",
    "\n",
    "\t\r\n",
    "\x0c\u00a0",
    "{",
    "}",
    "not json",
    "[1, 2]",
    "[]",
    "null",
    "true",
    "17",
    '"new"',
    '{"op": "new",}',
    '{"op": "cancel", "id": "o1"} {"op": "cancel"}',
    '{"op": "new", "id": "nan", "qty": NaN}',
    "Infinity",
    "{'op': 'new'}",
]
# Values that JSON text cannot carry the same way through every parser (orjson turns
# integers beyond 64 bits into floats): such commands are always sent as objects.
TEXT_INT_LIMIT = 2**63


@dataclass
class Ids:
    """What a stream has handed out so far: every id of a ``new``, and a model run
    alongside generation, so cancels and replaces can aim at live orders."""

    all: list[str] = field(default_factory=list)
    model: Model = field(default_factory=Model)

    def live(self, stops: bool) -> list[str]:
        """Ids resting now (and held stops, if ``stops``), in a stable order."""
        ids = sorted(self.model.resting)
        if stops:
            ids += sorted(self.model.held)
        return ids


def percent(draw: st.DrawFn) -> int:
    """A roll in 0..99 (shrinks to 0, so put the ordinary case first)."""
    return draw(st.integers(0, 99))


def number(draw: st.DrawFn, low: int, high: int, bad_percent: int) -> Any:
    """Mostly an integer in ``low..high``; sometimes an edge or an invalid value."""
    roll = percent(draw)
    if roll < 100 - bad_percent:
        return draw(st.integers(low, high))
    if roll < 100 - bad_percent // 2:
        return draw(st.sampled_from(EDGE_NUMBERS))
    return draw(st.sampled_from(BAD_NUMBERS))


def choice(draw: st.DrawFn, good: list[Any], bad_percent: int) -> Any:
    """Mostly one of ``good``; sometimes junk."""
    if percent(draw) < 100 - bad_percent:
        return draw(st.sampled_from(good))
    return draw(st.sampled_from(JUNK))


def new_command(draw: st.DrawFn, ids: Ids, serial: int) -> Cmd:
    """A ``new``: mostly valid, every field sometimes wrong or missing."""
    roll = percent(draw)
    order_id: Any
    if roll < 90 or not ids.all:
        order_id = f"o{serial}"
    elif roll < 96:
        order_id = draw(st.sampled_from(ids.all))  # duplicate
    else:
        order_id = draw(st.sampled_from([None, "", 7, True, ["o1"]]))
    kind = draw(st.sampled_from(["limit", "limit", "limit", "market", "stop", "stop_limit"]))
    cmd: Cmd = {
        "op": "new",
        "id": order_id,
        "account": choice(draw, ACCOUNTS, 2),
        "symbol": choice(draw, SYMBOLS, 2),
        "side": choice(draw, ["buy", "sell"], 2),
        "type": choice(draw, [kind], 3),
        "qty": number(draw, 1, 6, 6),
    }
    if kind in ("limit", "stop_limit") or percent(draw) < 5:
        cmd["price"] = number(draw, LOW, HIGH, 5)
    if kind in ("stop", "stop_limit") or percent(draw) < 5:
        cmd["stop_price"] = number(draw, LOW - 1, HIGH + 1, 5)
    if percent(draw) < 60:
        cmd["tif"] = choice(draw, ["gtc", "day", "ioc", "fok"], 4)
    roll = percent(draw)
    if (roll < 15 and kind == "limit") or roll < 1:
        cmd["post_only"] = True
    elif 15 <= roll < 25:
        cmd["post_only"] = False
    elif roll == 25:
        cmd["post_only"] = draw(st.sampled_from(JUNK))
    roll = percent(draw)
    if roll < 3:
        cmd[draw(st.sampled_from(["colour", "client_id", "Qty", ""]))] = 1
    elif roll < 6:
        del cmd[draw(st.sampled_from(sorted(set(cmd) - {"op"})))]
    return cmd


def existing_or_unknown_id(draw: st.DrawFn, ids: Ids, stops: bool = True) -> Any:
    """Mostly a live id (a resting order; a held stop too if ``stops``); else any id
    of an earlier ``new`` (live or not), an unknown id, or not a string at all."""
    roll = percent(draw)
    live = ids.live(stops)
    if roll < 60 and live:
        return draw(st.sampled_from(live))
    if roll < 85 and ids.all:
        return draw(st.sampled_from(ids.all))
    if roll < 93:
        return draw(st.sampled_from(["zz", "o", "O1", ""]))
    return draw(st.sampled_from([None, 1, True, ["o1"], {"id": "o1"}]))


def cancel_command(draw: st.DrawFn, ids: Ids) -> Cmd:
    cmd: Cmd = {"op": "cancel", "id": existing_or_unknown_id(draw, ids)}
    roll = percent(draw)
    if roll < 3:
        del cmd["id"]
    elif roll < 6:
        cmd[draw(st.sampled_from(["qty", "reason", "x"]))] = 1
    return cmd


def replace_command(draw: st.DrawFn, ids: Ids) -> Cmd:
    cmd: Cmd = {"op": "replace", "id": existing_or_unknown_id(draw, ids, stops=False)}
    roll = percent(draw)
    if roll < 45:
        cmd["qty"] = number(draw, 1, 8, 8)
    elif roll < 50:
        cmd["qty"] = None
    roll = percent(draw)
    if roll < 55:
        cmd["price"] = number(draw, LOW, HIGH, 8)
    elif roll < 60:
        cmd["price"] = None
    roll = percent(draw)
    if roll < 3:
        del cmd["id"]
    elif roll < 6:
        cmd[draw(st.sampled_from(["side", "tif", "stop_price", "x"]))] = 1
    return cmd


def bad_op_command(draw: st.DrawFn, ids: Ids) -> Cmd:
    cmd: Cmd = {"id": existing_or_unknown_id(draw, ids)}
    roll = percent(draw)
    if roll < 80:
        cmd["op"] = draw(st.sampled_from(["modify", "NEW", "Cancel", "", None, 1, True, ["new"]]))
    if percent(draw) < 30:
        cmd.update(side="buy", type="limit", qty=1, price=100, symbol="X", account="A")
    return cmd


def fits_in_text(value: Any) -> bool:
    """True if every JSON parser reads ``json.dumps(value)`` back as ``value``."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return True
    if isinstance(value, int):
        return abs(value) < TEXT_INT_LIMIT
    if isinstance(value, list):
        return all(fits_in_text(item) for item in value)
    if isinstance(value, dict):
        return all(fits_in_text(item) for item in value.values())
    return False


@st.composite
def streams(draw: st.DrawFn, min_size: int = 100, max_size: int = 400) -> list[Line]:
    """A random command stream; each command is a parsed object or a JSON line."""
    size = draw(st.integers(min_size, max_size))
    ids = Ids()
    out: list[Line] = []
    for serial in range(size):
        roll = percent(draw)
        cmd: Cmd
        if roll < 62:
            cmd = new_command(draw, ids, serial)
            order_id = cmd.get("id")
            if isinstance(order_id, str) and order_id and order_id not in ids.all:
                ids.all.append(order_id)
        elif roll < 76:
            cmd = cancel_command(draw, ids)
        elif roll < 93:
            cmd = replace_command(draw, ids)
        elif roll < 96:
            cmd = bad_op_command(draw, ids)
        else:
            out.append(draw(st.sampled_from(RAW_LINES)))
            continue
        ids.model.process(cmd)
        if percent(draw) < 25 and fits_in_text(cmd):
            out.append(json.dumps(cmd))
        else:
            out.append(cmd)
    return out


# ---------------------------------------------------------------------------- the tests


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,  # long streams are the point
    ],
)
@given(stream=streams())
def test_core_agrees_with_reference_on_random_streams(stream: list[Line]) -> None:
    reference = Model()
    engine = core()
    before: dict[str, Any] = {}
    for step, cmd in enumerate(stream):
        expected = reference.process(cmd)
        got = [project(event) for event in engine.process(cmd)]
        if as_json(got) != as_json(expected):
            so_far = "\n".join(f"  {n}: {c!r}" for n, c in enumerate(stream) if n <= step)
            pytest.fail(
                f"step {step}: {cmd!r}\n"
                f"core:  {as_json(got)}\nmodel: {as_json(expected)}\n"
                f"book before (model): {as_json(before)}\nstream so far:\n{so_far}"
            )
        before = reference.book()
    assert as_json(engine.book()) == as_json(reference.book())


@pytest.fixture(params=["model", "core"])
def make_engine(request: pytest.FixtureRequest) -> Callable[[], Engine]:
    """How to build a fresh engine: the reference model or the compiled core."""
    if request.param == "model":
        return Model
    return core


def check_invariants(engine: Engine, live_ever: set[str]) -> None:
    """The book is uncrossed and consistent with ``depth`` and ``lookup``."""
    book = engine.book()
    live: set[str] = set()
    for symbol, sides in book.items():
        bids, asks = sides["bids"], sides["asks"]
        if bids and asks:
            assert bids[0][0] < asks[0][0], f"{symbol} crossed: {bids[0][0]} >= {asks[0][0]}"
        assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
        assert [p for p, _ in asks] == sorted({p for p, _ in asks})
        depth = engine.depth(symbol, 1000)
        for name, side in (("bids", "buy"), ("asks", "sell")):
            levels = sides[name]
            expected = [[price, sum(q for _, q in orders), len(orders)] for price, orders in levels]
            assert [list(row) for row in depth[name]] == expected, f"{symbol} {name}"
            for price, orders in levels:
                assert orders, f"{symbol} empty level {price}"
                for order_id, qty in orders:
                    assert qty > 0, f"{order_id} has qty {qty}"
                    live.add(order_id)
                    found = engine.lookup(order_id)
                    assert found is not None, order_id
                    assert (found["id"], found["status"], found["qty"]) == (
                        order_id,
                        "resting",
                        qty,
                    )
                    assert (found["symbol"], found["side"], found["price"]) == (symbol, side, price)
        for order_id, qty in sides["stops"]:
            assert qty > 0, f"stop {order_id} has qty {qty}"
            live.add(order_id)
            found = engine.lookup(order_id)
            assert found is not None, order_id
            assert (found["id"], found["status"], found["qty"]) == (order_id, "held", qty)
            assert found["symbol"] == symbol
    for order_id in live_ever - live:
        assert engine.lookup(order_id) is None, order_id
    assert engine.lookup("never-seen") is None


@settings(
    max_examples=max(EXAMPLES // 3, 5),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,  # the fixture is a stateless factory
    ],
)
@given(stream=streams(min_size=50, max_size=250))
def test_invariants_hold_after_every_command(
    make_engine: Callable[[], Engine], stream: list[Line]
) -> None:
    engine = make_engine()
    live_ever: set[str] = set()
    for cmd in stream:
        for event in engine.process(cmd):
            if event["type"] == "accepted":
                live_ever.add(event["id"])
        check_invariants(engine, live_ever)
