"""How the gateway's Alpaca routes read a time parameter (`start`/`end` of market
data, `after`/`until` of orders and activities): one parser, so a value means the same
on every route.

RFC 3339 (`2026-12-06T13:04:56.123456789Z`, an offset, or none: UTC, as alpaca-py's
naive datetimes are), to the nanosecond; or a date, `YYYY-MM-DD`, which is a New York
day, the market's (`timeframe.MARKET_TZ`: Alpaca's days, day bars and default start
are its). Anything else, or a time outside what the engine's int64 nanoseconds hold
(1970-2262), is Alpaca's 422 naming the parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from tickplane.api.alpaca.errors import AlpacaError
from tickplane.api.alpaca.timeframe import market_midnight

__all__ = ["FIRST_NS", "LAST_NS", "parse_time"]

# Timestamps the engine's int64 nanoseconds can hold.
FIRST_NS, LAST_NS = 0, 2**63 - 1
_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?"
    r"([Zz]|[+-]\d{2}:?\d{2})?)?"
)


def parse_time(text: str, field: str, *, day_end: bool = False) -> int:
    """RFC 3339 (`2026-12-06T13:04:56.123456789Z`, an offset, or none: UTC) or a date,
    as ns since the epoch; a 422 naming `field` for anything else. A date is a New York
    day, the market's (Alpaca's day bars and default start are its; its documentation
    does not say how it reads a date): its midnight, or with `day_end` (market data's
    inclusive `end`) its last nanosecond, so a date as both ends is that whole day.
    Orders' `after` and `until` are times, not days: a date is its midnight for both."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise AlpacaError.invalid(f"{field}: {text!r} is not an RFC 3339 time or a date")
    day, clock, fraction, offset = m.groups()
    try:
        if clock is None:
            local = date.fromisoformat(day)
            if day_end:  # the next day's midnight, less a nanosecond
                ns = market_midnight(local + timedelta(days=1)) - 1
            else:
                ns = market_midnight(local)
        else:
            zone = "+00:00" if offset in (None, "Z", "z") else offset
            when = datetime.fromisoformat(f"{day}T{clock}{zone}")
            seconds = int((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
            ns = seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))
    except OverflowError:  # the day after 9999-12-31
        ns = LAST_NS + 1
    except ValueError as exc:
        raise AlpacaError.invalid(f"{field}: {text!r} is not a valid time ({exc})") from None
    if not FIRST_NS <= ns <= LAST_NS:
        raise AlpacaError.invalid(f"{field}: {text!r} is outside 1970-2262")
    return ns
