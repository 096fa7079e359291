"""What the API reads and writes (pydantic), apart from how anything is stored.

Prices are integer ticks and quantities integer lots, as in the engine (a symbol's tick
size and lot size turn them into money and shares; decimal prices come with the
Alpaca-compatible API). A price or quantity may be a JSON number or a numeric string
(`100`, `"100"`, `100.0`), never a boolean, never fractional; a trailing stop's
`trail_percent` the same, but fractional (`1.5`, `"1.5"`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from tickplane.core import wire

__all__ = [
    "AccountPublic",
    "Book",
    "BookLevel",
    "CanceledOrders",
    "ControlResult",
    "ErrorPublic",
    "ExecutionPage",
    "ExecutionPublic",
    "HaltRequest",
    "Health",
    "OrderClass",
    "OrderCreate",
    "OrderPage",
    "OrderPublic",
    "OrderReplace",
    "OrderStatus",
    "OrderType",
    "PlainOrderCreate",
    "PositionPublic",
    "Readiness",
    "Side",
    "StopLoss",
    "Symbol",
    "SymbolPublic",
    "TakeProfit",
    "TimeInForce",
    "TradePage",
    "TradePublic",
]

MAX_INT = 2**62  # within the engine's int64, with room for notional arithmetic


def _decimal(value: Any) -> Decimal:
    """A JSON number or a numeric string as a finite Decimal; anything else is refused."""
    if isinstance(value, bool):
        raise ValueError("booleans are not numbers")
    if not isinstance(value, int | float | str):
        raise ValueError("a number or a numeric string is needed")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _whole_number(value: Any) -> Any:
    """A JSON number or a numeric string as an int; anything else is refused."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _decimal(value)
    if number != number.to_integral_value():
        raise ValueError(f"{value!r}: a whole number of ticks or lots is needed")
    return int(number)


def _finite_number(value: Any) -> Any:
    """A JSON number or a numeric string as a float; anything else is refused."""
    return float(_decimal(value))


_NUMBER_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        {"type": "string", "pattern": r"^\s*[0-9]+(\.0*)?\s*$"},
    ]
}

#: A positive integer given as a number or a numeric string (never a boolean).
Positive = Annotated[
    int,
    BeforeValidator(_whole_number),
    Field(gt=0, le=MAX_INT),
    WithJsonSchema(_NUMBER_SCHEMA),
]

#: A trailing stop's percent of its watermark, 0 < p < 100 (a number or a numeric string).
Percent = Annotated[
    float,
    BeforeValidator(_finite_number),
    Field(gt=0, lt=100),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
                {"type": "string", "pattern": r"^\s*[0-9]*(\.[0-9]*)?\s*$"},
            ]
        }
    ),
]

Side = Literal["buy", "sell"]
PlainOrderType = Literal["market", "limit", "stop", "stop_limit"]
OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
#: docs/order-classes.md: `simple` is a trailing stop's; a plain order has none.
OrderClass = Literal["simple", "bracket", "oto", "oco"]
LegRole = Literal["take_profit", "stop_loss"]
TimeInForce = Literal["gtc", "day", "ioc", "fok"]
OrderStatus = Literal[
    "pending_new",
    "new",
    "held",
    "partially_filled",
    "filled",
    "canceled",
    "rejected",
]
#: A symbol's name as the engine spells it.
Symbol = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._/-]+$")]
ClientOrderId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def _one_price_name(data: Any) -> Any:
    if isinstance(data, dict) and "limit_price" in data and "price" in data:
        raise ValueError("give limit_price or price (the same field), not both")
    return data


class TakeProfit(BaseModel):
    """A bracket's, OTO's or OCO's take-profit leg: a limit order at `limit_price` (ticks)."""

    model_config = ConfigDict(extra="forbid")

    limit_price: Positive


class StopLoss(BaseModel):
    """A stop-loss leg: a stop at `stop_price` (ticks); with `limit_price`, a stop-limit."""

    model_config = ConfigDict(extra="forbid")

    stop_price: Positive
    limit_price: Positive | None = None


class PlainOrderCreate(BaseModel):
    """`OrderCreate` without the order-class fields: what a plain order is validated
    with on the fast paths (`SubmitRoute`, `quick_orders`), so that the order classes
    cost a plain order nothing. Not in the OpenAPI: `OrderCreate` documents the body."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._/-]+$")
    side: Side
    type: PlainOrderType = "limit"
    qty: Positive
    limit_price: Positive | None = Field(
        default=None, validation_alias=AliasChoices("limit_price", "price")
    )
    stop_price: Positive | None = None
    time_in_force: TimeInForce = "gtc"
    post_only: bool = Field(default=False, strict=True)
    client_order_id: ClientOrderId | None = None

    _single_price = model_validator(mode="before")(_one_price_name)

    @model_validator(mode="after")
    def _prices_fit_the_type(self) -> PlainOrderCreate:
        # also the WebSocket fast path's rule (quick_orders.fits_the_type)
        priced = self.type in ("limit", "stop_limit")
        stopped = self.type in ("stop", "stop_limit")
        if priced and self.limit_price is None:
            raise ValueError(f"a {self.type} order needs limit_price")
        if not priced and self.limit_price is not None:
            raise ValueError(f"a {self.type} order takes no limit_price")
        if stopped and self.stop_price is None:
            raise ValueError(f"a {self.type} order needs stop_price")
        if not stopped and self.stop_price is not None:
            raise ValueError(f"a {self.type} order takes no stop_price")
        if self.post_only and self.type != "limit":
            raise ValueError("post_only is for limit orders")
        return self

    def wire_class(self) -> dict[str, Any]:
        """The order-class fields of the engine's `NewOrder`: none for a plain order."""
        return {}


_plain_prices_fit_the_type = PlainOrderCreate.__dict__["_prices_fit_the_type"]


class OrderCreate(PlainOrderCreate):
    """A new order. `limit_price` (alias `price`) for limit and stop-limit orders,
    `stop_price` for stop and stop-limit orders, both in integer ticks; `qty` in lots.

    Order classes (docs/order-classes.md): `order_class` `bracket` (`take_profit` and
    `stop_loss`), `oto` (one of them) or `oco` (a limit order with both; its
    `limit_price` may be left out: it is the take-profit's); a `trailing_stop` takes
    `trail_price` (ticks) or `trail_percent` and no other price. The engine checks how
    they fit together and refuses with a 422 and its reason (`bad_legs`,
    `bad_order_class`, `bad_trail`, `bad_tif`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "symbol": "GOOG",
                    "side": "buy",
                    "type": "limit",
                    "qty": 10,
                    "limit_price": 58000,
                    "time_in_force": "gtc",
                    "client_order_id": "my-order-1",
                },
                {"symbol": "GOOG", "side": "sell", "type": "market", "qty": "5"},
                {
                    "symbol": "AAPL",
                    "side": "sell",
                    "type": "stop_limit",
                    "qty": 3,
                    "stop_price": 18000,
                    "limit_price": 17990,
                },
                {
                    "symbol": "GOOG",
                    "side": "buy",
                    "type": "limit",
                    "qty": 10,
                    "limit_price": 58000,
                    "order_class": "bracket",
                    "take_profit": {"limit_price": 58500},
                    "stop_loss": {"stop_price": 57500, "limit_price": 57450},
                    "client_order_id": "entry-1",
                },
                {
                    "symbol": "GOOG",
                    "side": "buy",
                    "type": "market",
                    "qty": 10,
                    "order_class": "oto",
                    "stop_loss": {"stop_price": 57500},
                },
                {
                    "symbol": "GOOG",
                    "side": "sell",
                    "type": "limit",
                    "qty": 10,
                    "order_class": "oco",
                    "take_profit": {"limit_price": 58500},
                    "stop_loss": {"stop_price": 57500},
                },
                {
                    "symbol": "GOOG",
                    "side": "sell",
                    "type": "trailing_stop",
                    "qty": 5,
                    "trail_price": 100,
                },
                {
                    "symbol": "GOOG",
                    "side": "sell",
                    "type": "trailing_stop",
                    "qty": 5,
                    "trail_percent": "1.5",
                },
            ]
        },
    )

    # wider than the plain part's: a trailing stop is no plain order
    type: OrderType = "limit"  # type: ignore[assignment]
    order_class: OrderClass | None = None
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    trail_price: Positive | None = None
    trail_percent: Percent | None = None

    @model_validator(mode="after")
    def _prices_fit_the_type(self) -> OrderCreate:
        # an OCO's limit is its take-profit's (the engine's rule): filled in first
        oco = self.order_class == "oco" and self.type == "limit"
        if oco and self.limit_price is None and self.take_profit is not None:
            self.limit_price = self.take_profit.limit_price
        _plain_prices_fit_the_type(self)
        return self

    def wire_class(self) -> dict[str, Any]:
        """The order-class fields of the engine's `NewOrder` (none for a plain order)."""
        if (
            self.order_class is None
            and self.take_profit is None
            and self.stop_loss is None
            and self.trail_price is None
            and self.trail_percent is None
            and self.type != "trailing_stop"
        ):
            return {}
        tp, sl = self.take_profit, self.stop_loss
        return {
            "order_class": self.order_class,
            "take_profit": None if tp is None else wire.TakeProfit(tp.limit_price),
            "stop_loss": None if sl is None else wire.StopLoss(sl.stop_price, sl.limit_price),
            "trail_price": self.trail_price,
            "trail_percent": self.trail_percent,
        }


class OrderReplace(BaseModel):
    """What a replace changes (at least one field): a resting order's quantity (the new
    open quantity) and/or `limit_price`; a held stop-loss leg's `stop_price`; a
    trailing stop's quantity and/or trail, of the kind it was placed with (`trail_price`
    ticks or `trail_percent`). The engine checks what the order takes
    (docs/order-classes.md) and refuses the rest with `bad_replace`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"qty": 5, "limit_price": 58010}, {"trail_price": 80}]},
    )

    qty: Positive | None = None
    limit_price: Positive | None = Field(
        default=None, validation_alias=AliasChoices("limit_price", "price")
    )
    stop_price: Positive | None = None
    trail_price: Positive | None = None
    trail_percent: Percent | None = None

    _single_price = model_validator(mode="before")(_one_price_name)

    @model_validator(mode="after")
    def _something_to_change(self) -> OrderReplace:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("give qty, limit_price, stop_price, trail_price and/or trail_percent")
        return self


class OrderPublic(BaseModel):
    """An order of the caller's account, as the engine's events tell it.

    `status`: `pending_new` (routed to an outside venue, not yet confirmed), `new`
    (resting), `held` (a stop not yet triggered, or a bracket's/OTO's leg waiting for
    its parent's fills), `partially_filled` (resting after some fills), `filled`,
    `canceled` (`reason`: `user`, `ioc`, `fok`, `no_liquidity`, `market_collar`, `post_only`,
    `kill_switch`...). `qty` is the total quantity (after a replace: the filled
    quantity plus the new open one), `open_qty` what still rests, `avg_fill_price` the
    quantity-weighted price of the fills (ticks).

    Order classes (docs/order-classes.md; placed through either API, `OrderCreate`):
    `order_class` is `bracket`, `oto` or `oco` on a parent and on its legs, `simple`
    on a trailing stop, null on a plain order. A parent lists its `legs` (each a full
    order, also listed on its own); a leg names its `parent_id` and its `leg` role
    (`take_profit`, `stop_loss`). A trailing stop (`type` `trailing_stop`) has
    `trail_price` (ticks) or `trail_percent`, `stop_price` its current stop and `hwm`
    the watermark it trails (null before the symbol's first trade after it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "client_order_id": "my-order-1",
                    "account": "alice",
                    "symbol": "GOOG",
                    "side": "buy",
                    "type": "limit",
                    "qty": 10,
                    "filled_qty": 4,
                    "open_qty": 6,
                    "avg_fill_price": 58000.0,
                    "limit_price": 58000,
                    "stop_price": None,
                    "time_in_force": "gtc",
                    "post_only": False,
                    "status": "partially_filled",
                    "reason": None,
                    "created_at": "2026-01-05T14:30:00Z",
                    "updated_at": "2026-01-05T14:30:01Z",
                    "seq": 1234,
                },
                {
                    "id": 50,
                    "client_order_id": "entry-1",
                    "account": "alice",
                    "symbol": "GOOG",
                    "side": "buy",
                    "type": "limit",
                    "qty": 10,
                    "filled_qty": 0,
                    "open_qty": 10,
                    "avg_fill_price": None,
                    "limit_price": 58000,
                    "stop_price": None,
                    "time_in_force": "gtc",
                    "post_only": False,
                    "status": "new",
                    "reason": None,
                    "created_at": "2026-01-05T14:31:00Z",
                    "updated_at": "2026-01-05T14:31:00Z",
                    "seq": 1300,
                    "order_class": "bracket",
                    "legs": [
                        {
                            "id": 51,
                            "client_order_id": None,
                            "account": "alice",
                            "symbol": "GOOG",
                            "side": "sell",
                            "type": "limit",
                            "qty": 10,
                            "filled_qty": 0,
                            "open_qty": 0,
                            "avg_fill_price": None,
                            "limit_price": 58500,
                            "stop_price": None,
                            "time_in_force": "gtc",
                            "post_only": False,
                            "status": "held",
                            "reason": None,
                            "created_at": "2026-01-05T14:31:00Z",
                            "updated_at": "2026-01-05T14:31:00Z",
                            "seq": 1300,
                            "order_class": "bracket",
                            "parent_id": 50,
                            "leg": "take_profit",
                        },
                        {
                            "id": 52,
                            "client_order_id": None,
                            "account": "alice",
                            "symbol": "GOOG",
                            "side": "sell",
                            "type": "stop",
                            "qty": 10,
                            "filled_qty": 0,
                            "open_qty": 0,
                            "avg_fill_price": None,
                            "limit_price": None,
                            "stop_price": 57500,
                            "time_in_force": "gtc",
                            "post_only": False,
                            "status": "held",
                            "reason": None,
                            "created_at": "2026-01-05T14:31:00Z",
                            "updated_at": "2026-01-05T14:31:00Z",
                            "seq": 1300,
                            "order_class": "bracket",
                            "parent_id": 50,
                            "leg": "stop_loss",
                        },
                    ],
                },
                {
                    "id": 60,
                    "client_order_id": None,
                    "account": "alice",
                    "symbol": "GOOG",
                    "side": "sell",
                    "type": "trailing_stop",
                    "qty": 5,
                    "filled_qty": 0,
                    "open_qty": 5,
                    "avg_fill_price": None,
                    "limit_price": None,
                    "stop_price": 57900,
                    "time_in_force": "gtc",
                    "post_only": False,
                    "status": "held",
                    "reason": None,
                    "created_at": "2026-01-05T14:32:00Z",
                    "updated_at": "2026-01-05T14:33:10Z",
                    "seq": 1420,
                    "order_class": "simple",
                    "trail_price": 100,
                    "hwm": 58000,
                },
            ]
        }
    )

    id: int
    client_order_id: str | None
    account: str
    symbol: str
    side: Side
    type: OrderType
    qty: int
    filled_qty: int
    open_qty: int
    avg_fill_price: float | None
    limit_price: int | None
    stop_price: int | None
    time_in_force: TimeInForce
    post_only: bool
    status: OrderStatus
    reason: str | None
    created_at: datetime | None
    updated_at: datetime | None
    seq: int = Field(description="the engine seq of the last event that changed the order")
    order_class: OrderClass | None = None
    parent_id: int | None = Field(default=None, description="a leg's parent order")
    leg: LegRole | None = None
    legs: list[OrderPublic] | None = Field(
        default=None, description="a bracket's, OTO's or OCO's legs (kept ones), by id"
    )
    trail_price: int | None = None
    trail_percent: float | None = None
    hwm: int | None = Field(default=None, description="a trailing stop's watermark")


class OrderPage(BaseModel):
    """A page of orders, newest first; `next_cursor` (pass it as `cursor`) fetches the
    next page, None on the last."""

    orders: list[OrderPublic]
    next_cursor: int | None


class CanceledOrders(BaseModel):
    """The orders a cancel-all canceled."""

    canceled: list[OrderPublic]


class BookLevel(BaseModel):
    price: int
    qty: int
    orders: int


class Book(BaseModel):
    """A symbol's aggregated levels (L2), best first; prices in ticks, sizes in lots."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "GOOG",
                    "bids": [{"price": 58000, "qty": 10, "orders": 2}],
                    "asks": [{"price": 58010, "qty": 4, "orders": 1}],
                    "last_price": 58005,
                    "ts_event": 1767623400000000000,
                }
            ]
        }
    )

    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    last_price: int | None
    ts_event: int


class ErrorPublic(BaseModel):
    """Every error: a machine-readable `reason` and a message for people."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "unknown_order", "message": "no open order 42"}]}
    )

    reason: str
    message: str
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Ready: the engine answers and the projection has caught up with it."""

    status: Literal["ready", "not_ready"]


class ExecutionPublic(BaseModel):
    """One fill of one of the caller's orders (price in ticks, qty in lots);
    `liquidity`: `taker` (the order took resting liquidity) or `maker`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 1234,
                    "order_id": 42,
                    "client_order_id": "my-order-1",
                    "symbol": "GOOG",
                    "side": "buy",
                    "price": 58000,
                    "qty": 4,
                    "liquidity": "taker",
                    "ts": "2026-01-05T14:30:01Z",
                }
            ]
        }
    )

    seq: int
    order_id: int
    client_order_id: str | None
    symbol: str
    side: Side
    price: int
    qty: int
    liquidity: Literal["taker", "maker"]
    ts: datetime


class ExecutionPage(BaseModel):
    executions: list[ExecutionPublic]


class PositionPublic(BaseModel):
    """A position: signed lots (short < 0), its cost (tick-lots, signed like it), the
    average entry price (ticks), the last price, realized and unrealized P&L (tick-lots;
    unrealized is None while the symbol has no last price)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "GOOG",
                    "qty": 10,
                    "cost_basis": 580000,
                    "avg_entry_price": 58000.0,
                    "last_price": 58010,
                    "market_value": 580100,
                    "unrealized_pnl": 100,
                    "realized_pnl": 0,
                }
            ]
        }
    )

    symbol: str
    qty: int
    cost_basis: int
    avg_entry_price: float | None
    last_price: int | None
    market_value: int | None
    unrealized_pnl: int | None
    realized_pnl: int


class AccountPublic(BaseModel):
    """The caller's account: cash (tick-lots; buying spends it), P&L, positions and
    whether a kill switch stops it trading."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account": "alice",
                    "cash": -580000,
                    "realized_pnl": 0,
                    "unrealized_pnl": 100,
                    "equity": 100,
                    "open_orders": 1,
                    "trading_blocked": False,
                    "positions": [],
                }
            ]
        }
    )

    account: str
    cash: int
    realized_pnl: int
    unrealized_pnl: int
    equity: int = Field(description="cash plus the market value of the positions")
    open_orders: int
    trading_blocked: bool
    positions: list[PositionPublic]


class TradePublic(BaseModel):
    """A trade on a symbol (anonymous: no accounts, no order ids)."""

    seq: int
    price: int
    qty: int
    taker_side: Side
    ts: datetime


class TradePage(BaseModel):
    symbol: str
    trades: list[TradePublic]


class ControlResult(BaseModel):
    """What an admin action did: the engine's events, as `{"type": ...}` dicts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "action": "kill",
                    "account": "alice",
                    "symbol": None,
                    "events": [{"type": "kill_switch", "account": "alice", "engaged": True}],
                }
            ]
        }
    )

    action: Literal["kill", "revive", "halt", "resume"]
    account: str | None
    symbol: str | None
    events: list[dict[str, Any]]


class HaltRequest(BaseModel):
    """How long a halt lasts (seconds; none: until resumed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"seconds": 300}]})

    seconds: float | None = Field(default=None, gt=0, le=86400 * 7)


class SymbolPublic(BaseModel):
    """A symbol the engine trades: prices are integer ticks of `tick_size` (a decimal
    string), quantities lots of `lot_size` shares; the reference price (risk bands) and
    the last trade in ticks; whether it is halted."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "GOOG",
                    "tick_size": "0.01",
                    "lot_size": 1,
                    "reference_price": 58000,
                    "last_price": 58005,
                    "halted": False,
                }
            ]
        }
    )

    symbol: str
    tick_size: str
    lot_size: int
    reference_price: int | None
    last_price: int | None
    halted: bool
