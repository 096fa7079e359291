"""Bar timeframes as alpaca-py sends them (`TimeFrame.value`: `1Min`, `15Min`, `1Hour`,
`1Day`, `1Week`, `3Month`, the names in any case; Alpaca's one-letter units `T`, `H`,
`D`, `W`, `M` too, in capitals only: `1m` is refused, not a month), with the same
bounds alpaca-py checks: 1-59 minutes, 1-23 hours, one day or week, 1, 2, 3, 6 or 12
months.

Minutes and hours are aligned on midnight UTC (as Alpaca's: a 4Hour bar starts at 00:00,
04:00, ... UTC). Days, weeks and months are the exchange's, in `MARKET_TZ` (New York), as
Alpaca's are: a day bar starts at midnight New York time (04:00 or 05:00 UTC, with DST),
a week on Monday (Alpaca: the week's first trading day; Tickplane's market trades every
day), a month on the 1st (n months: January, then every n months).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from tickplane.api.alpaca.errors import AlpacaError

__all__ = ["MARKET_TZ", "TimeFrame", "market_day", "market_midnight", "parse_timeframe"]

Unit = Literal["Min", "Hour", "Day", "Week", "Month"]

# The units' names, in any case; Alpaca's one-letter forms only as Alpaca writes them
# (capitals): a lowercase `m` would read as a month where most mean a minute.
_NAMES: dict[str, Unit] = {
    "min": "Min",
    "hour": "Hour",
    "day": "Day",
    "week": "Week",
    "month": "Month",
}
_LETTERS: dict[str, Unit] = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}
_FORM = re.compile(r"(\d{1,3})([A-Za-z]+)")
_ALLOWED: dict[Unit, frozenset[int]] = {
    "Min": frozenset(range(1, 60)),
    "Hour": frozenset(range(1, 24)),
    "Day": frozenset({1}),
    "Week": frozenset({1}),
    "Month": frozenset({1, 2, 3, 6, 12}),
}
# The exchange's time zone: days, weeks and months are its (PostgreSQL knows the name).
MARKET_TZ = "America/New_York"
_MARKET = ZoneInfo(MARKET_TZ)
_LENGTH: dict[Unit, timedelta] = {
    "Min": timedelta(minutes=1),
    "Hour": timedelta(hours=1),
    "Day": timedelta(days=1),
    "Week": timedelta(weeks=1),
    "Month": timedelta(days=31),  # the longest month: an upper bound
}


@dataclass(frozen=True)
class TimeFrame:
    """`amount` of `unit` per bar."""

    amount: int
    unit: Unit

    @property
    def local(self) -> bool:
        """Days, weeks and months: the exchange's (`MARKET_TZ`), not UTC's."""
        return self.unit in ("Day", "Week", "Month")

    @property
    def value(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def length(self) -> timedelta:
        """A bar's length in UTC (for months an upper bound: 31 days each), or in New
        York's local time for days and weeks (an hour more or less across DST)."""
        return self.amount * _LENGTH[self.unit]


def parse_timeframe(text: str) -> TimeFrame:
    """The timeframe `text` names; a 422 in Alpaca's shape for anything else."""
    m = _FORM.fullmatch(text.strip())
    unit = (_LETTERS.get(m[2]) or _NAMES.get(m[2].lower())) if m else None
    if m is None or unit is None:
        raise AlpacaError.invalid(
            f"invalid timeframe {text!r}: a number and a unit, e.g. 1Min, 15Min, 1Hour, "
            "1Day, 1Week, 1Month"
        )
    amount = int(m[1])
    if amount not in _ALLOWED[unit]:
        allowed = _ALLOWED[unit]
        bounds = f"{min(allowed)}-{max(allowed)}" if len(allowed) > 5 else sorted(allowed)
        raise AlpacaError.invalid(f"invalid timeframe {text!r}: {unit} takes {bounds}")
    return TimeFrame(amount, unit)


def market_day(ts_ns: int, back: int = 0) -> int:
    """ns since the epoch of the New York midnight that starts the day of `ts_ns`, or
    of the day `back` days before it (a day bar's start)."""
    local = datetime.fromtimestamp(ts_ns // 1_000_000_000, _MARKET).date() - timedelta(days=back)
    return market_midnight(local)


def market_midnight(day: date) -> int:
    """ns since the epoch of the New York midnight that starts `day` (New York's clocks
    change at 02:00, so every day has one)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=_MARKET)
    return int(midnight.astimezone(UTC).timestamp()) * 1_000_000_000
