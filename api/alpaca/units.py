"""Alpaca's decimal prices and share quantities <-> the engine's ticks and lots.

A symbol's prices are whole multiples of its `tick_size` (a decimal string) and its
quantities whole multiples of its `lot_size` (shares per lot). Alpaca's clients send
decimals (JSON numbers or strings); anything that is not an exact multiple is refused
rather than rounded, because a silently rounded price is a different order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tickplane.api.alpaca.errors import AlpacaError

__all__ = ["SymbolUnits", "decimal_of"]

# What the engine's wire carries (signed 64-bit); the engine's own bounds are tighter
# and come back as its reasons (bad_qty, bad_price).
_LARGEST = 2**63 - 1


def decimal_of(value: Any, field: str) -> Decimal:
    """A finite decimal from a JSON number or a numeric string (never a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise AlpacaError.invalid(f"{field} must be a number or a numeric string")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise AlpacaError.invalid(f"{field} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise AlpacaError.invalid(f"{field} must be a finite number")
    return number


@dataclass(frozen=True)
class SymbolUnits:
    """One symbol's tick size (currency per tick) and lot size (shares per lot)."""

    symbol: str
    tick: Decimal
    lot: int

    @property
    def places(self) -> int:
        """Decimal places of a price (those of the tick size, at least 2 as Alpaca's)."""
        exponent = self.tick.normalize().as_tuple().exponent
        return max(2, -exponent if isinstance(exponent, int) else 2)

    def ticks(self, value: Any, field: str) -> int:
        """A price in ticks; it must be positive and a whole number of ticks."""
        price = decimal_of(value, field)
        if price <= 0:
            raise AlpacaError.invalid(f"{field} must be positive")
        if price > _LARGEST * self.tick:
            raise AlpacaError.invalid(f"{field} {price} is too large")
        ticks, rest = divmod(price, self.tick)
        if rest != 0 or ticks == 0:
            raise AlpacaError.invalid(
                f"{field} {price} is not a multiple of {self.symbol}'s tick size {self.tick}"
            )
        return int(ticks)

    def price(self, ticks: int | None) -> str | None:
        """Ticks as Alpaca's decimal string (None stays None)."""
        if ticks is None:
            return None
        return self.decimal_string(ticks * self.tick)

    def decimal_string(self, value: Decimal) -> str:
        return f"{value.quantize(Decimal(1).scaleb(-self.places)):f}"

    def lots(self, value: Any, field: str = "qty") -> int:
        """A share quantity in lots: positive whole shares, a whole number of lots."""
        qty = decimal_of(value, field)
        if qty != qty.to_integral_value():
            raise AlpacaError.invalid(
                f"fractional {field} {qty}: {self.symbol} trades whole shares only"
            )
        if qty <= 0:
            raise AlpacaError.invalid(f"{field} must be positive")
        if qty > _LARGEST:
            raise AlpacaError.invalid(f"{field} {qty} is too large")
        lots, rest = divmod(int(qty), self.lot)
        if rest:
            raise AlpacaError.invalid(
                f"{field} {qty} is not a multiple of {self.symbol}'s lot size {self.lot}"
            )
        return lots

    def shares(self, lots: int) -> str:
        """Lots as Alpaca's share quantity string."""
        return str(lots * self.lot)

    def money(self, tick_lots: int | Decimal) -> str:
        """A tick-lot amount (price in ticks * qty in lots) in currency, 2+ places."""
        return self.decimal_string(Decimal(tick_lots) * self.tick * self.lot)
