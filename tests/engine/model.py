"""A plain-Python reference model of the matching contract.

This is the oracle the compiled core is checked against. It is written from
``shared/contracts/matching.md`` and the decisions recorded in the tests, and it
favours being obviously right over being fast: books are dicts of price -> list of
orders (the list order is the time priority), held stops are one list per symbol in
acceptance order, and every rule is a few lines of straight code.

Events are plain dicts carrying exactly the contract's required fields, in this key
order:

- accepted  ``{type, id}``
- rejected  ``{type, id, reason}``
- trade     ``{type, symbol, price, qty, taker, maker, taker_side}``
- canceled  ``{type, id, remaining, reason}``
- replaced  ``{type, id}``
- triggered ``{type, id}``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX = 10**12
"""Largest valid quantity, price and stop price."""

Event = dict[str, Any]
"""One emitted event."""

SIDES = ("buy", "sell")
TYPES = ("limit", "market", "stop", "stop_limit")
TIFS = ("gtc", "day", "ioc", "fok")

NEW_FIELDS = frozenset(
    (
        "op",
        "id",
        "account",
        "symbol",
        "side",
        "type",
        "qty",
        "price",
        "stop_price",
        "tif",
        "post_only",
    )
)
CANCEL_FIELDS = frozenset(("op", "id"))
REPLACE_FIELDS = frozenset(("op", "id", "qty", "price"))

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "accepted": ("type", "id"),
    "rejected": ("type", "id", "reason"),
    "trade": ("type", "symbol", "price", "qty", "taker", "maker", "taker_side"),
    "canceled": ("type", "id", "remaining", "reason"),
    "replaced": ("type", "id"),
    "triggered": ("type", "id"),
}
"""The contract's required fields of each event type, in the order the model emits them."""


MISSING = "<missing>"
"""Stands for a required field an event lacks, in projected events."""


def project(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` reduced to its type's required fields (extra fields are allowed).

    An event of an unknown type is returned unchanged, so a comparison shows it whole;
    a missing required field shows as ``MISSING`` rather than as null.
    """
    event_type = event.get("type")
    keys = REQUIRED_FIELDS.get(event_type) if isinstance(event_type, str) else None
    if keys is None:
        return dict(event)
    return {key: event.get(key, MISSING) for key in keys}


def is_valid_int(value: object) -> bool:
    """True if ``value`` is a JSON integer (an int, not a bool) in ``1..MAX``."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX


def is_name(value: object) -> bool:
    """True if ``value`` is a non-empty string (ids, symbols, accounts)."""
    return isinstance(value, str) and value != ""


def _reject_constant(name: str) -> float:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``: they are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def accepted(order_id: str) -> Event:
    """An ``accepted`` event."""
    return {"type": "accepted", "id": order_id}


def rejected(order_id: object, reason: str) -> Event:
    """A ``rejected`` event; ``order_id`` is echoed as given (any JSON value)."""
    return {"type": "rejected", "id": order_id, "reason": reason}


def canceled(order_id: str, remaining: int, reason: str) -> Event:
    """A ``canceled`` event."""
    return {"type": "canceled", "id": order_id, "remaining": remaining, "reason": reason}


@dataclass
class Order:
    """A limit order resting in a book, or an incoming order being matched."""

    id: str
    account: str
    symbol: str
    side: str
    price: int | None  # None only for an incoming market order
    qty: int  # open quantity
    tif: str
    post_only: bool


@dataclass
class Stop:
    """A held stop or stop-limit order."""

    id: str
    account: str
    symbol: str
    side: str
    type: str  # "stop" or "stop_limit"
    qty: int
    price: int | None  # the limit price of a stop_limit, None for a stop
    stop_price: int
    tif: str


@dataclass
class Book:
    """One symbol's state: two sides of price levels, held stops, last trade price."""

    bids: dict[int, list[Order]] = field(default_factory=dict)
    asks: dict[int, list[Order]] = field(default_factory=dict)
    stops: list[Stop] = field(default_factory=list)
    last: int | None = None

    def side(self, side: str) -> dict[int, list[Order]]:
        """The levels of ``side`` ("buy" -> bids, "sell" -> asks)."""
        return self.bids if side == "buy" else self.asks

    def best(self, side: str) -> int | None:
        """Best price on ``side``: highest bid or lowest ask; None if empty."""
        levels = self.side(side)
        if not levels:
            return None
        return max(levels) if side == "buy" else min(levels)


class Model:
    """Reference matching engine: ``process`` commands, read the ``book``."""

    def __init__(self) -> None:
        self.books: dict[str, Book] = {}
        self.taken_ids: set[str] = set()
        self.resting: dict[str, Order] = {}
        self.held: dict[str, Stop] = {}

    # ----------------------------------------------------------------- commands

    def process(self, cmd: str | dict[str, Any]) -> list[Event]:
        """Apply one command (a JSONL line or a parsed object); return its events."""
        if isinstance(cmd, str):
            if cmd.strip() == "":  # blank: only whitespace (str.isspace), no event
                return []
            try:
                parsed = json.loads(cmd, parse_constant=_reject_constant)
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                return [rejected(None, "bad_json")]
            if not isinstance(parsed, dict):
                return [rejected(None, "bad_json")]
            cmd = parsed
        op = cmd.get("op")
        if op == "new":
            return self._new(cmd)
        if op == "cancel":
            return self._cancel(cmd)
        if op == "replace":
            return self._replace(cmd)
        return [rejected(cmd.get("id"), "bad_op")]

    def _validate_new(self, cmd: dict[str, Any]) -> str | None:
        """The rejection reason of a ``new`` (first failure wins), or None if valid.

        Takes the id as a side effect once the id itself is well formed.
        """
        order_id = cmd.get("id")
        if not is_name(order_id):
            return "bad_id"
        assert isinstance(order_id, str)
        if order_id in self.taken_ids:
            return "duplicate_id"
        self.taken_ids.add(order_id)
        side = cmd.get("side")
        if not isinstance(side, str) or side not in SIDES:
            return "bad_side"
        otype = cmd.get("type")
        if not isinstance(otype, str) or otype not in TYPES:
            return "bad_type"
        if not is_valid_int(cmd.get("qty")):
            return "bad_qty"
        if otype in ("limit", "stop_limit") and not is_valid_int(cmd.get("price")):
            return "bad_price"
        if otype in ("stop", "stop_limit") and not is_valid_int(cmd.get("stop_price")):
            return "bad_stop_price"
        if "tif" in cmd:
            tif = cmd["tif"]
            if not isinstance(tif, str) or tif not in TIFS:
                return "bad_tif"
        if "post_only" in cmd:
            post_only = cmd["post_only"]
            if not isinstance(post_only, bool) or (post_only and otype != "limit"):
                return "bad_post_only"
        if not is_name(cmd.get("symbol")):
            return "bad_symbol"
        if not is_name(cmd.get("account")):
            return "bad_account"
        if any(key not in NEW_FIELDS for key in cmd):
            return "unknown_field"
        return None

    def _new(self, cmd: dict[str, Any]) -> list[Event]:
        reason = self._validate_new(cmd)
        if reason is not None:
            return [rejected(cmd.get("id"), reason)]
        order_id: str = cmd["id"]
        symbol: str = cmd["symbol"]
        otype: str = cmd["type"]
        tif: str = cmd.get("tif", "gtc")
        book = self.books.setdefault(symbol, Book())
        events = [accepted(order_id)]
        if otype in ("stop", "stop_limit"):
            stop = Stop(
                id=order_id,
                account=cmd["account"],
                symbol=symbol,
                side=cmd["side"],
                type=otype,
                qty=cmd["qty"],
                price=cmd["price"] if otype == "stop_limit" else None,
                stop_price=cmd["stop_price"],
                tif=tif,
            )
            book.stops.append(stop)
            self.held[order_id] = stop
            if book.last is not None:
                self._check_triggers(symbol, events)
            return events
        order = Order(
            id=order_id,
            account=cmd["account"],
            symbol=symbol,
            side=cmd["side"],
            price=cmd["price"] if otype == "limit" else None,
            qty=cmd["qty"],
            tif=tif,
            post_only=cmd.get("post_only", False),
        )
        if self._execute(order, events):
            self._check_triggers(symbol, events)
        return events

    def _cancel(self, cmd: dict[str, Any]) -> list[Event]:
        order_id = cmd.get("id")
        if not isinstance(order_id, str) or (
            order_id not in self.resting and order_id not in self.held
        ):
            return [rejected(order_id, "unknown_order")]
        if any(key not in CANCEL_FIELDS for key in cmd):
            return [rejected(order_id, "unknown_field")]
        if order_id in self.resting:
            order = self._remove_resting(order_id)
            return [canceled(order_id, order.qty, "user")]
        stop = self.held.pop(order_id)
        self.books[stop.symbol].stops.remove(stop)
        return [canceled(order_id, stop.qty, "user")]

    def _replace(self, cmd: dict[str, Any]) -> list[Event]:
        order_id = cmd.get("id")
        if not isinstance(order_id, str) or order_id not in self.resting:
            return [rejected(order_id, "unknown_order")]
        new_qty = cmd.get("qty")
        new_price = cmd.get("price")
        if new_qty is not None and not is_valid_int(new_qty):
            return [rejected(order_id, "bad_replace")]
        if new_price is not None and not is_valid_int(new_price):
            return [rejected(order_id, "bad_replace")]
        if any(key not in REPLACE_FIELDS for key in cmd):
            return [rejected(order_id, "unknown_field")]
        events: list[Event] = [{"type": "replaced", "id": order_id}]
        order = self.resting[order_id]
        qty: int = order.qty if new_qty is None else new_qty
        price: int | None = order.price if new_price is None else new_price
        if price == order.price and qty <= order.qty:
            order.qty = qty  # reduced in place: priority kept
            return events
        self._remove_resting(order_id)
        order.price = price
        order.qty = qty
        if self._execute(order, events):
            self._check_triggers(order.symbol, events)
        return events

    # ----------------------------------------------------------------- matching

    def _execute(self, order: Order, events: list[Event]) -> bool:
        """Run ``order`` as an incoming limit (price set) or market (price None) order.

        Appends the events it causes and returns True if it traded at least once.
        """
        book = self.books[order.symbol]
        opposite = "sell" if order.side == "buy" else "buy"
        levels = book.side(opposite)

        def acceptable(level_price: int) -> bool:
            if order.price is None:
                return True
            if order.side == "buy":
                return level_price <= order.price
            return level_price >= order.price

        best = book.best(opposite)
        if order.post_only and best is not None and acceptable(best):
            events.append(canceled(order.id, order.qty, "post_only"))
            return False
        if order.tif == "fok":
            available = sum(
                maker.qty
                for level_price, queue in levels.items()
                if acceptable(level_price)
                for maker in queue
            )
            if available < order.qty:
                events.append(canceled(order.id, order.qty, "fok"))
                return False
        traded = False
        while order.qty > 0:
            best = book.best(opposite)
            if best is None or not acceptable(best):
                break
            queue = levels[best]
            maker = queue[0]
            fill = min(order.qty, maker.qty)
            events.append(
                {
                    "type": "trade",
                    "symbol": order.symbol,
                    "price": best,
                    "qty": fill,
                    "taker": order.id,
                    "maker": maker.id,
                    "taker_side": order.side,
                }
            )
            traded = True
            book.last = best
            order.qty -= fill
            maker.qty -= fill
            if maker.qty == 0:
                self._remove_resting(maker.id)
        if order.qty > 0:
            if order.price is None:
                events.append(canceled(order.id, order.qty, "no_liquidity"))
            elif order.tif in ("ioc", "fok"):
                events.append(canceled(order.id, order.qty, order.tif))
            else:
                self._rest(order)
        return traded

    def _check_triggers(self, symbol: str, events: list[Event]) -> None:
        """Fire qualifying held stops of ``symbol`` one at a time, oldest first."""
        book = self.books[symbol]
        while book.last is not None:
            last = book.last
            due = [
                stop
                for stop in book.stops
                if (stop.side == "buy" and last >= stop.stop_price)
                or (stop.side == "sell" and last <= stop.stop_price)
            ]
            if not due:
                return
            stop = due[0]
            book.stops.remove(stop)
            del self.held[stop.id]
            events.append({"type": "triggered", "id": stop.id})
            order = Order(
                id=stop.id,
                account=stop.account,
                symbol=stop.symbol,
                side=stop.side,
                price=stop.price,
                qty=stop.qty,
                tif=stop.tif,
                post_only=False,
            )
            self._execute(order, events)

    def _rest(self, order: Order) -> None:
        """Put ``order`` at the back of its price level."""
        assert order.price is not None
        self.books[order.symbol].side(order.side).setdefault(order.price, []).append(order)
        self.resting[order.id] = order

    def _remove_resting(self, order_id: str) -> Order:
        """Take a resting order out of its book, dropping its level if emptied."""
        order = self.resting.pop(order_id)
        assert order.price is not None
        levels = self.books[order.symbol].side(order.side)
        queue = levels[order.price]
        queue.remove(order)
        if not queue:
            del levels[order.price]
        return order

    # ------------------------------------------------------------------ queries

    def book(self) -> dict[str, Any]:
        """The final book in the contract's BOOK.json shape, symbols sorted."""
        out: dict[str, Any] = {}
        for symbol in sorted(self.books):
            book = self.books[symbol]
            out[symbol] = {
                "bids": [
                    [price, [[o.id, o.qty] for o in book.bids[price]]]
                    for price in sorted(book.bids, reverse=True)
                ],
                "asks": [
                    [price, [[o.id, o.qty] for o in book.asks[price]]]
                    for price in sorted(book.asks)
                ],
                "stops": [[s.id, s.qty] for s in book.stops],
            }
        return out

    def depth(self, symbol: str, levels: int) -> dict[str, list[list[int]]]:
        """Up to ``levels`` levels a side: ``[price, total_qty, n_orders]``, best first."""
        book = self.books.get(symbol, Book())

        def rows(side: dict[int, list[Order]], reverse: bool) -> list[list[int]]:
            prices = sorted(side, reverse=reverse)[:levels]
            return [[p, sum(o.qty for o in side[p]), len(side[p])] for p in prices]

        return {"bids": rows(book.bids, True), "asks": rows(book.asks, False)}

    def lookup(self, order_id: str) -> dict[str, Any] | None:
        """A live order (resting or held stop) by id, or None.

        For a held stop, ``price`` is its limit price (None for a plain stop).
        """
        if order_id in self.resting:
            o = self.resting[order_id]
            status, symbol, side, price, qty = "resting", o.symbol, o.side, o.price, o.qty
        elif order_id in self.held:
            s = self.held[order_id]
            status, symbol, side, price, qty = "held", s.symbol, s.side, s.price, s.qty
        else:
            return None
        return {
            "id": order_id,
            "symbol": symbol,
            "side": side,
            "price": price,
            "qty": qty,
            "status": status,
        }
