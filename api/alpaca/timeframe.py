"""Bar timeframes as alpaca-py sends them (`TimeFrame.value`: `1Min`, `15Min`, `1Hour`,
`1Day`, `1Week`, `3Month`; Alpaca's short units `T`, `H`, `D`, `W`, `M` too), with the
same bounds alpaca-py checks: 1-59 minutes, 1-23 hours, one day or week, 1, 2, 3, 6 or
12 months.

Buckets are in UTC (Tickplane's market never closes; its clock's day ends at midnight
UTC): minutes and hours are aligned on midnight, weeks start on Monday, months on the
1st (n months: January, then every n months).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from tickplane.api.alpaca.errors import AlpacaError

__all__ = ["TimeFrame", "parse_timeframe"]

Unit = Literal["Min", "Hour", "Day", "Week", "Month"]

_UNITS: dict[str, Unit] = {
    "min": "Min",
    "t": "Min",
    "hour": "Hour",
    "h": "Hour",
    "day": "Day",
    "d": "Day",
    "week": "Week",
    "w": "Week",
    "month": "Month",
    "m": "Month",
}
_FORM = re.compile(r"(\d{1,3})([A-Za-z]+)")
_ALLOWED: dict[Unit, frozenset[int]] = {
    "Min": frozenset(range(1, 60)),
    "Hour": frozenset(range(1, 24)),
    "Day": frozenset({1}),
    "Week": frozenset({1}),
    "Month": frozenset({1, 2, 3, 6, 12}),
}
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
    def value(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def length(self) -> timedelta:
        """A bar's length (for months an upper bound: 31 days each)."""
        return self.amount * _LENGTH[self.unit]


def parse_timeframe(text: str) -> TimeFrame:
    """The timeframe `text` names; a 422 in Alpaca's shape for anything else."""
    m = _FORM.fullmatch(text.strip())
    unit = _UNITS.get(m[2].lower()) if m else None
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
