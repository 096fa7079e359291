"""Trades, quotes and bars in the shapes of Alpaca's market-data API.

Shared by the REST routes (`market_data.py`: JSON, timestamps as RFC 3339 strings) and the
stream (`market_stream.py`: msgpack, timestamps as msgpack Timestamp extensions): each
builder takes the timestamp's encoding as `stamp`. Prices are JSON numbers (as Alpaca
sends them; a tick multiple prints exactly), sizes whole shares, both converted from
the engine's ticks and lots with the symbol's `SymbolUnits`.

Tickplane is one venue: every trade and quote names the exchange `Q` (NASDAQ, as the
assets do) and the tape `C`; there are no trade or quote conditions.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from tickplane.api.alpaca.units import SymbolUnits

__all__ = [
    "EXCHANGE",
    "TAPE",
    "Stamp",
    "bar",
    "msgpack_time",
    "quote",
    "rfc3339",
    "trade",
]

EXCHANGE = "Q"
TAPE = "C"

Stamp = Callable[[int], Any]
"""A timestamp (ns since the epoch, UTC) in a wire's encoding."""

_NS = 1_000_000_000


def rfc3339(ts_ns: int) -> str:
    """`2026-12-06T13:04:56.334320128Z`: to the nanosecond, as Alpaca writes them."""
    seconds, nanos = divmod(ts_ns, _NS)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z" if nanos else f"{base}Z"


def msgpack_time(ts_ns: int) -> msgspec.msgpack.Ext:
    """The msgpack Timestamp extension (type -1, the 96-bit form: exact nanoseconds)."""
    seconds, nanos = divmod(ts_ns, _NS)
    return msgspec.msgpack.Ext(-1, struct.pack(">Iq", nanos, seconds))


def _price(units: SymbolUnits, ticks: int) -> float:
    return float(ticks * units.tick)


def trade(
    units: SymbolUnits, seq: int, ts_ns: int, price: int, qty: int, stamp: Stamp
) -> dict[str, Any]:
    """A trade print; its id is the engine's sequence number of the trade."""
    return {
        "t": stamp(ts_ns),
        "x": EXCHANGE,
        "p": _price(units, price),
        "s": qty * units.lot,
        "c": [],
        "i": seq,
        "z": TAPE,
    }


def quote(
    units: SymbolUnits,
    ts_ns: int,
    bid: tuple[int, int] | None,
    ask: tuple[int, int] | None,
    stamp: Stamp,
) -> dict[str, Any]:
    """The best bid and ask ((price ticks, qty lots) each); an empty side is 0 at 0, as
    Alpaca sends it."""
    bid_price, bid_qty = bid or (0, 0)
    ask_price, ask_qty = ask or (0, 0)
    return {
        "t": stamp(ts_ns),
        "bx": EXCHANGE,
        "bp": _price(units, bid_price),
        "bs": bid_qty * units.lot,
        "ax": EXCHANGE,
        "ap": _price(units, ask_price),
        "as": ask_qty * units.lot,
        "c": [],
        "z": TAPE,
    }


def bar(
    units: SymbolUnits,
    ts_ns: int,
    ohlc: tuple[int, int, int, int],
    volume: int,
    count: int,
    notional: int | Decimal,
    stamp: Stamp,
) -> dict[str, Any]:
    """A bar starting at `ts_ns`: open, high, low, close in ticks, `volume` in lots,
    `count` trades, `notional` the sum of price x qty (tick-lots) for the VWAP."""
    o, h, low, c = ohlc
    vwap = Decimal(notional) / volume * units.tick if volume else Decimal(0)
    return {
        "t": stamp(ts_ns),
        "o": _price(units, o),
        "h": _price(units, h),
        "l": _price(units, low),
        "c": _price(units, c),
        "v": volume * units.lot,
        "n": count,
        "vw": round(float(vwap), 6),
    }
