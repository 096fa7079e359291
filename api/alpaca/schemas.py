"""What `/v2` reads and writes, shaped as Alpaca's trading API (field names, strings
for decimals, RFC 3339 times), so that alpaca-py's models parse every answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "AlpacaAccount",
    "AlpacaAsset",
    "AlpacaCancelResult",
    "AlpacaClock",
    "AlpacaClosePositionResult",
    "AlpacaErrorBody",
    "AlpacaOrder",
    "AlpacaOrderCreate",
    "AlpacaOrderReplace",
    "AlpacaPosition",
    "AlpacaStopLoss",
    "AlpacaTakeProfit",
    "AlpacaTradeActivity",
]

OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["day", "gtc", "opg", "cls", "ioc", "fok"]
OrderClass = Literal["simple", "bracket", "oco", "oto"]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number or a numeric string, not a boolean")
    return value


# Numbers arrive as JSON numbers or strings; units.py checks them against the symbol.
Number = Annotated[int | float | str, BeforeValidator(_not_bool)]


class _Request(BaseModel):
    # Alpaca's clients send fields Tickplane has no use for (position_intent, ...).
    model_config = ConfigDict(extra="ignore")


class AlpacaTakeProfit(_Request):
    limit_price: Number


class AlpacaStopLoss(_Request):
    stop_price: Number
    limit_price: Number | None = None


class AlpacaOrderCreate(_Request):
    """`POST /v2/orders`: Alpaca's order request."""

    symbol: str = Field(min_length=1, max_length=32)
    qty: Number | None = None
    notional: Number | None = None
    side: Literal["buy", "sell"]
    type: OrderType
    time_in_force: TimeInForce
    limit_price: Number | None = None
    stop_price: Number | None = None
    trail_price: Number | None = None
    trail_percent: Number | None = None
    extended_hours: bool = False
    client_order_id: str | None = Field(default=None, min_length=1, max_length=128)
    order_class: OrderClass | None = None
    take_profit: AlpacaTakeProfit | None = None
    stop_loss: AlpacaStopLoss | None = None


class AlpacaOrderReplace(_Request):
    """`PATCH /v2/orders/{id}`: the fields Alpaca lets a replace change."""

    qty: Number | None = None
    time_in_force: TimeInForce | None = None
    limit_price: Number | None = None
    stop_price: Number | None = None
    trail: Number | None = None
    client_order_id: str | None = Field(default=None, min_length=1, max_length=128)


class AlpacaErrorBody(BaseModel):
    code: int
    message: str


class AlpacaOrder(BaseModel):
    """An order as Alpaca shows it (quantities in shares, prices as decimal strings)."""

    id: str
    client_order_id: str
    created_at: str
    updated_at: str
    submitted_at: str
    filled_at: str | None = None
    expired_at: str | None = None
    canceled_at: str | None = None
    failed_at: str | None = None
    replaced_at: str | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    asset_id: str
    symbol: str
    asset_class: str = "us_equity"
    notional: str | None = None
    qty: str
    filled_qty: str
    filled_avg_price: str | None = None
    order_class: str = "simple"
    order_type: str
    type: str
    side: str
    time_in_force: str
    limit_price: str | None = None
    stop_price: str | None = None
    status: str
    extended_hours: bool = False
    legs: list[AlpacaOrder] | None = None
    trail_percent: str | None = None
    trail_price: str | None = None
    hwm: str | None = None


class AlpacaCancelResult(BaseModel):
    """One entry of `DELETE /v2/orders` (HTTP 207)."""

    id: str
    status: int
    body: dict[str, Any] | None = None


class AlpacaClosePositionResult(BaseModel):
    """One entry of `DELETE /v2/positions` (HTTP 207)."""

    symbol: str
    status: int
    body: dict[str, Any]


class AlpacaPosition(BaseModel):
    asset_id: str
    symbol: str
    exchange: str
    asset_class: str = "us_equity"
    asset_marginable: bool = False
    avg_entry_price: str
    qty: str
    qty_available: str
    side: Literal["long", "short"]
    market_value: str | None = None
    cost_basis: str
    unrealized_pl: str | None = None
    unrealized_plpc: str | None = None
    current_price: str | None = None


class AlpacaAccount(BaseModel):
    id: str
    account_number: str
    status: str = "ACTIVE"
    crypto_status: str = "INACTIVE"
    currency: str = "USD"
    cash: str
    buying_power: str
    regt_buying_power: str
    daytrading_buying_power: str
    non_marginable_buying_power: str
    portfolio_value: str
    equity: str
    last_equity: str
    long_market_value: str
    short_market_value: str
    initial_margin: str = "0"
    maintenance_margin: str = "0"
    multiplier: str = "1"
    pattern_day_trader: bool = False
    trading_blocked: bool
    transfers_blocked: bool = True
    account_blocked: bool = False
    trade_suspended_by_user: bool = False
    shorting_enabled: bool = True
    daytrade_count: int = 0
    created_at: str | None = None


class AlpacaClock(BaseModel):
    timestamp: str
    is_open: bool
    next_open: str
    next_close: str


class AlpacaAsset(BaseModel):
    id: str
    # Alpaca names this field `class`, a Python keyword.
    asset_class: str = Field(default="us_equity", serialization_alias="class")
    exchange: str
    symbol: str
    name: str
    status: Literal["active", "inactive"] = "active"
    tradable: bool
    marginable: bool = False
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = False
    min_order_size: str
    min_trade_increment: str
    price_increment: str
    attributes: list[str] = Field(default_factory=list)


class AlpacaTradeActivity(BaseModel):
    """A `FILL` account activity: one fill of one of the account's orders (Alpaca's
    TradeActivity). `cum_qty` and `leaves_qty` are the order's right after the fill."""

    id: str  # "<UTC time to the millisecond>::<uuid>", sortable like Alpaca's
    account_id: str
    activity_type: Literal["FILL"] = "FILL"
    transaction_time: str
    type: Literal["fill", "partial_fill"]
    price: str
    qty: str
    side: Literal["buy", "sell"]
    symbol: str
    leaves_qty: str
    order_id: str
    cum_qty: str
    order_status: Literal["filled", "partially_filled"]
