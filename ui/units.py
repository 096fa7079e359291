"""Ticks and lots to money and shares, exactly, and the order ticket's validation.

The native API speaks integer ticks and integer lots; traders speak decimal prices and
share counts. Every conversion here is exact (`Decimal`): a price that is not a whole
number of ticks, or a quantity that is not a whole number of lots, is refused with a
message, never rounded behind the trader's back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

__all__ = [
    "ORDER_TYPES",
    "SIDES",
    "TIFS",
    "OrderTicket",
    "SymbolSpec",
    "TicketError",
    "validate_ticket",
]

SIDES = ("buy", "sell")
ORDER_TYPES = ("limit", "market", "stop", "stop_limit")
TIFS = ("gtc", "day", "ioc", "fok")


@dataclass(frozen=True)
class SymbolSpec:
    """A tradable symbol: prices are whole multiples of `tick_size`, quantities of
    `lot_size` shares."""

    name: str
    tick_size: Decimal = Decimal("0.01")
    lot_size: int = 1

    def price(self, ticks: int | float | None) -> Decimal | None:
        """Ticks as a decimal price (a float tick count, an average, is kept exact
        as far as the float goes)."""
        if ticks is None:
            return None
        return Decimal(repr(ticks) if isinstance(ticks, float) else ticks) * self.tick_size

    @property
    def places(self) -> int:
        """Decimal places a price of this symbol needs (0.01 -> 2, 0.005 -> 3)."""
        exponent = self.tick_size.normalize().as_tuple().exponent
        return max(0, -int(exponent))

    def show(self, ticks: int | float | None, extra: int = 0) -> str:
        """Ticks as a price string with the symbol's decimals (`extra` more for
        averages); '' for None."""
        value = self.price(ticks)
        if value is None:
            return ""
        return f"{value:,.{self.places + extra}f}"

    def shares(self, lots: int | None) -> int | None:
        return None if lots is None else lots * self.lot_size

    def money(self, tick_lots: int | float | None) -> Decimal | None:
        """An amount in tick-lots (price in ticks times quantity in lots) as money."""
        if tick_lots is None:
            return None
        raw = Decimal(repr(tick_lots) if isinstance(tick_lots, float) else tick_lots)
        return raw * self.tick_size * self.lot_size

    def ticks(self, price: Decimal) -> int:
        """A decimal price as whole ticks; ValueError if it falls between two ticks."""
        count = price / self.tick_size
        if count != count.to_integral_value():
            raise ValueError(f"{price} is not a multiple of the tick size {self.tick_size}")
        return int(count)

    def lots(self, shares: Decimal) -> int:
        """A share quantity as whole lots; ValueError if it is not a whole number of lots."""
        count = shares / self.lot_size
        if count != count.to_integral_value():
            raise ValueError(f"{shares} is not a multiple of the lot size {self.lot_size}")
        return int(count)


class TicketError(ValueError):
    """An order ticket that cannot be sent; `problems` says every reason, field by field."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class OrderTicket:
    """A valid order in the native API's units (ticks and lots), and as the trader typed
    it (`shares`, `limit`, `stop`) for the confirmation."""

    symbol: SymbolSpec
    side: str
    type: str
    qty: int
    limit_price: int | None
    stop_price: int | None
    time_in_force: str
    post_only: bool
    shares: Decimal
    limit: Decimal | None = None
    stop: Decimal | None = None
    client_order_id: str | None = field(default=None)

    def body(self) -> dict[str, object]:
        """The JSON body of `POST /api/v1/orders`."""
        body: dict[str, object] = {
            "symbol": self.symbol.name,
            "side": self.side,
            "type": self.type,
            "qty": self.qty,
            "time_in_force": self.time_in_force,
        }
        if self.limit_price is not None:
            body["limit_price"] = self.limit_price
        if self.stop_price is not None:
            body["stop_price"] = self.stop_price
        if self.post_only:
            body["post_only"] = True
        if self.client_order_id is not None:
            body["client_order_id"] = self.client_order_id
        return body

    def describe(self) -> str:
        """The order in a trader's words: `buy 10 GOOG limit 580.10 gtc`."""
        words = [self.side, str(self.shares), self.symbol.name]
        if self.type == "market":
            words.append("market")
        if self.stop is not None:
            words.append(f"stop {self.stop}")
        if self.limit is not None:
            words.append(f"limit {self.limit}")
        words.append(self.time_in_force)
        if self.post_only:
            words.append("post-only")
        return " ".join(words)


def _decimal(text: str | float | int | Decimal | None) -> Decimal | None:
    if text is None:
        return None
    if isinstance(text, str):
        text = text.strip().replace(",", "")
        if not text:
            return None
    if isinstance(text, bool):
        raise ValueError("not a number")
    try:
        value = Decimal(repr(text) if isinstance(text, float) else text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


def validate_ticket(
    symbol: SymbolSpec,
    side: str,
    order_type: str,
    quantity: str | float | int | Decimal | None,
    limit_price: str | float | int | Decimal | None = None,
    stop_price: str | float | int | Decimal | None = None,
    time_in_force: str = "gtc",
    post_only: bool = False,
) -> OrderTicket:
    """Check a ticket as typed (shares, decimal prices) and convert it to ticks and
    lots; raises `TicketError` naming every problem."""
    problems: dict[str, str] = {}
    if side not in SIDES:
        problems["side"] = f"choose one of {', '.join(SIDES)}"
    if order_type not in ORDER_TYPES:
        problems["type"] = f"choose one of {', '.join(ORDER_TYPES)}"
    if time_in_force not in TIFS:
        problems["time_in_force"] = f"choose one of {', '.join(TIFS)}"

    lots = 0
    shares: Decimal | None = None
    try:
        shares = _decimal(quantity)
        if shares is None:
            problems["quantity"] = "enter a quantity"
        elif shares <= 0:
            problems["quantity"] = "must be more than 0"
        else:
            lots = symbol.lots(shares)
    except ValueError as exc:
        problems["quantity"] = str(exc)

    def price(name: str, text: str | float | int | Decimal | None, needed: bool) -> Decimal | None:
        if not needed:
            # A price the order type does not take is dropped, not sent: the ticket keeps
            # the trader's last typed value while they switch between types.
            return None
        try:
            value = _decimal(text)
        except ValueError as exc:
            problems[name] = str(exc)
            return None
        if value is None:
            problems[name] = f"a {order_type.replace('_', '-')} order needs a {name}"
            return None
        if value <= 0:
            problems[name] = "must be more than 0"
            return None
        try:
            symbol.ticks(value)
        except ValueError as exc:
            problems[name] = str(exc)
            return None
        return value

    limit = price("limit price", limit_price, order_type in ("limit", "stop_limit"))
    stop = price("stop price", stop_price, order_type in ("stop", "stop_limit"))
    if post_only and order_type != "limit":
        problems["post_only"] = "post-only is for limit orders"
    if problems:
        raise TicketError(problems)
    assert shares is not None
    return OrderTicket(
        symbol=symbol,
        side=side,
        type=order_type,
        qty=lots,
        limit_price=None if limit is None else symbol.ticks(limit),
        stop_price=None if stop is None else symbol.ticks(stop),
        time_in_force=time_in_force,
        post_only=post_only,
        shares=shares,
        limit=limit,
        stop=stop,
    )
