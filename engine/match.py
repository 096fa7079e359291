"""JSON Lines front end of the matching engine (`tickplane match`).

Translates the contract's commands (../shared/contracts/matching.md) into calls on the
compiled `MatchingEngine` and its events back into the contract's JSON objects. It only
maps names to numbers: every rule, including the order of validation, is the core's.
What the contract leaves open is decided here and documented in docs/matching.md:

- a `new` whose `id` is missing, not a string or empty is rejected `bad_id` (it takes
  no id); a missing/empty `symbol` or `account` is `bad_symbol`/`bad_account`, and a key
  the contract does not define is `unknown_field`, both checked after the contract's
  reasons;
- a line that is not a JSON object is rejected `bad_json` with its line number;
- integers are JSON integers (not booleans, not floats) in 1..MAX_VALUE.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from tickplane.engine.matching import (
    KEEP,
    MAX_VALUE,
    EventType,
    MatchingEngine,
    OrderType,
    Reason,
    Side,
    TimeInForce,
)

__all__ = ["Matcher", "run"]

SIDES = {s.name.lower(): int(s) for s in Side}
TYPES = {t.name.lower(): int(t) for t in OrderType}
PRICED = frozenset({int(OrderType.LIMIT), int(OrderType.STOP_LIMIT)})
TIFS = {t.name.lower(): int(t) for t in TimeInForce}
REASONS = {int(r): r.name.lower() for r in Reason}
INVALID = 255  # an enum value no field has: the core rejects it with the field's reason

NEW_FIELDS = frozenset(
    {
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
    }
)
CANCEL_FIELDS = frozenset({"op", "id"})
REPLACE_FIELDS = frozenset({"op", "id", "qty", "price"})

Json = dict[str, Any]


def _enum(value: Any, table: dict[str, int]) -> int:
    return table.get(value, INVALID) if isinstance(value, str) else INVALID


def _number(value: Any) -> int:
    """A valid quantity/price, or -1 (which the core rejects with the field's reason)."""
    if type(value) is int and 0 < value <= MAX_VALUE:
        return value
    return -1


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# orjson reads an integer beyond 64 bits as a float; such lines (rare, and bad input
# anyway) go to the standard parser so an echoed id stays exactly what was sent.
_LONG_DIGITS = re.compile(r"\d{20}")


def _parse(line: str | bytes) -> Any:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    try:
        if _LONG_DIGITS.search(text) is None:
            return orjson.loads(line)
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # orjson's error is a ValueError too
        raise ValueError("not valid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Names:
    """Interns names as dense integers (1-based; 0 means "none")."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = [""]

    def intern(self, name: str) -> int:
        n = self.index.get(name)
        if n is None:
            n = self.index[name] = len(self.names)
            self.names.append(name)
        return n


class Matcher:
    """Feeds contract commands to a `MatchingEngine`; returns contract events."""

    def __init__(self, engine: MatchingEngine | None = None) -> None:
        self.engine = engine if engine is not None else MatchingEngine()
        self._ids = _Names()
        self._symbols = _Names()
        self._accounts = _Names()
        self.line = 0

    # -- commands ------------------------------------------------------------------------

    def process(self, command: str | bytes | Json) -> list[Json]:
        """Process one command (a JSON line or a parsed object); return its events."""
        if isinstance(command, str | bytes):
            self.line += 1
            if not command.strip():
                return []
            try:
                command = _parse(command)
            except ValueError:
                return self._bad_json()
        if not isinstance(command, dict):
            return self._bad_json()
        op = command.get("op")
        raw_id = command.get("id")
        eng = self.engine
        if op == "new":
            n = eng.submit(*self._new_args(command))
        elif op == "cancel":
            extra = command.keys() - CANCEL_FIELDS
            n = eng.cancel(self._known(raw_id), 0, Reason.UNKNOWN_FIELD if extra else 0)
        elif op == "replace":
            extra = command.keys() - REPLACE_FIELDS
            n = eng.replace(
                self._known(raw_id),
                self._change(command.get("qty")),
                self._change(command.get("price")),
                0,
                Reason.UNKNOWN_FIELD if extra else 0,
            )
        else:
            n = eng.reject(0, Reason.BAD_OP)
        return self._events(raw_id) if n else []

    def _new_args(self, c: Json) -> tuple[int, ...]:
        order_id = _name(c.get("id"))
        number = self._ids.intern(order_id) if order_id is not None else 0
        symbol = _name(c.get("symbol"))
        account = _name(c.get("account"))
        if symbol is None:
            reason = Reason.BAD_SYMBOL
        elif account is None:
            reason = Reason.BAD_ACCOUNT
        elif c.keys() - NEW_FIELDS:
            reason = Reason.UNKNOWN_FIELD
        else:
            reason = Reason.NONE
        post_only = c.get("post_only", False)
        order_type = _enum(c.get("type"), TYPES)
        return (
            number,
            self._accounts.intern(account) if account is not None else 0,
            self._symbols.intern(symbol) if symbol is not None else 0,
            _enum(c.get("side"), SIDES),
            order_type,
            _number(c.get("qty")),
            # the contract ignores a market order's or stop's price (the core would
            # take it as a collar)
            _number(c.get("price")) if order_type in PRICED else -1,
            _number(c.get("stop_price")),
            _enum(c.get("tif", "gtc"), TIFS),
            int(post_only) if isinstance(post_only, bool) else INVALID,
            0,
            int(reason),
        )

    def _known(self, raw_id: Any) -> int:
        return self._ids.index.get(raw_id, 0) if isinstance(raw_id, str) else 0

    @staticmethod
    def _change(value: Any) -> int:
        return KEEP if value is None else _number(value)

    def _bad_json(self) -> list[Json]:
        self.engine.reject(0, Reason.BAD_JSON)
        return [
            {
                "type": "rejected",
                "id": None,
                "reason": "bad_json",
                "seq": self.engine.seq,
                "line": self.line,
            }
        ]

    # -- events --------------------------------------------------------------------------

    def _events(self, raw_id: Any) -> list[Json]:
        names = self._ids.names

        def name(n: int) -> Any:
            return names[n] if n else raw_id

        out: list[Json] = []
        for (
            seq,
            _ts,
            oid,
            maker,
            price,
            qty,
            sym,
            _acc,
            _macc,
            etype,
            reason,
            side,
            _ot,
        ) in self.engine.events().tolist():
            if etype == EventType.TRADE:
                out.append(
                    {
                        "type": "trade",
                        "symbol": self._symbols.names[sym],
                        "price": price,
                        "qty": qty,
                        "taker": names[oid],
                        "maker": names[maker],
                        "taker_side": "buy" if side == Side.BUY else "sell",
                        "seq": seq,
                    }
                )
            elif etype == EventType.ACCEPTED:
                out.append({"type": "accepted", "id": names[oid], "seq": seq})
            elif etype == EventType.CANCELED:
                out.append(
                    {
                        "type": "canceled",
                        "id": names[oid],
                        "remaining": qty,
                        "reason": REASONS[reason],
                        "seq": seq,
                    }
                )
            elif etype == EventType.REJECTED:
                out.append(
                    {"type": "rejected", "id": name(oid), "reason": REASONS[reason], "seq": seq}
                )
            elif etype == EventType.REPLACED:
                out.append({"type": "replaced", "id": names[oid], "seq": seq})
            else:
                out.append({"type": "triggered", "id": names[oid], "seq": seq})
        return out

    # -- queries -------------------------------------------------------------------------

    def book(self) -> Json:
        """Every symbol's book in the contract's BOOK.json shape, symbols sorted."""
        names = self._ids.names
        out: Json = {}
        for sym in sorted(self.engine.symbols(), key=lambda s: self._symbols.names[s]):
            snap = self.engine.snapshot(sym)
            out[self._symbols.names[sym]] = {
                side: [[price, [[names[i], q] for i, q in orders]] for price, orders in snap[side]]
                for side in ("bids", "asks")
            } | {"stops": [[names[i], q] for i, q in snap["stops"]]}
        return out

    def depth(self, symbol: str, levels: int = 10) -> Json:
        """Aggregated levels (L2): {"bids": [[price, qty, orders], ...], "asks": ...}."""
        sym = self._symbols.index.get(symbol)
        if sym is None:
            return {"bids": [], "asks": []}
        d = self.engine.depth(sym, levels)
        return {k: [list(level) for level in v] for k, v in d.items()}

    def lookup(self, order_id: str) -> Json | None:
        """A live order or held stop by id: id, symbol, side, price, qty, status."""
        n = self._ids.index.get(order_id)
        o = self.engine.order(n) if n else None
        if o is None:
            return None
        return {
            "id": order_id,
            "symbol": self._symbols.names[int(o["symbol"])],
            "side": "buy" if o["side"] == Side.BUY else "sell",
            "price": o["price"],
            "stop_price": o["stop_price"],
            "qty": o["qty"],
            "status": o["status"],
        }


def run(lines: Iterable[str | bytes]) -> tuple[list[Json], Json]:
    """Process a whole command stream; return (events, book)."""
    m = Matcher()
    events: list[Json] = []
    for line in lines:
        events.extend(m.process(line))
    return events, m.book()


def dumps(event: Json) -> bytes:
    """One event as a JSON line (bytes, newline included)."""
    try:
        return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # an echoed id holding an integer beyond 64 bits
        return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def iter_events(lines: Iterable[str | bytes], matcher: Matcher) -> Iterator[Json]:
    """Events of a stream, one command at a time (for streaming output)."""
    for line in lines:
        yield from matcher.process(line)
