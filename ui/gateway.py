"""`GatewayClient`: the terminal's only way to the platform, the gateway's HTTP API.

Every call either returns typed data or raises one of three errors the pages turn into
banners, never tracebacks:

- `GatewayDown`: no answer (connection refused, timeout) or a 5xx/503 (the gateway is
  up but the engine behind it is not);
- `NotAvailable`: this gateway has no such endpoint (yet): the page says so;
- `Rejected`: the gateway refused the request (401 bad key, 404 unknown order, 422 bad
  input, 403 risk, 429 rate) with its `reason` and `message`.

Prices stay in integer ticks and quantities in integer lots here, as the API sends them;
`tickplane.ui.units.SymbolSpec` turns them into decimal prices and shares for people.
The parsers accept the shapes the native API documents and tolerate missing optional
fields (a gateway a version behind still renders).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from tickplane.ui.units import SymbolSpec

__all__ = [
    "Account",
    "Book",
    "Execution",
    "GatewayClient",
    "GatewayDown",
    "GatewayError",
    "Level",
    "NotAvailable",
    "Order",
    "Position",
    "Rejected",
    "Strategy",
    "Trade",
]

API = "/api/v1"
KEY_ID_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"


class GatewayError(Exception):
    """Anything that kept a call from returning data; `message` is for people."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class GatewayDown(GatewayError):
    """The gateway (or the engine behind it) did not answer."""


class NotAvailable(GatewayError):
    """This gateway does not serve that endpoint."""


class Rejected(GatewayError):
    """The gateway answered with a 4xx: `reason` is its machine-readable reason."""


# -- what the API returns ---------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    """An ISO 8601 string or integer nanoseconds since the epoch, as an aware datetime."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1e9 if value > 1e12 else float(value)
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _int(value: Any, default: int = 0) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return default


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _opt_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _first(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


@dataclass(frozen=True)
class Order:
    """One order; prices in ticks, quantities in lots."""

    id: int
    symbol: str
    side: str
    type: str
    qty: int
    filled_qty: int
    open_qty: int
    limit_price: int | None
    stop_price: int | None
    time_in_force: str
    status: str
    reason: str | None
    client_order_id: str | None
    avg_fill_price: float | None
    created_at: datetime | None
    updated_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "held", "partially_filled", "pending_new", "accepted")

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Order:
        return cls(
            id=_int(_first(row, "id", "order_id")),
            symbol=str(row.get("symbol", "")),
            side=str(row.get("side", "")),
            type=str(_first(row, "type", "order_type") or "limit"),
            qty=_int(row.get("qty")),
            filled_qty=_int(row.get("filled_qty")),
            open_qty=_int(row.get("open_qty")),
            limit_price=_opt_int(_first(row, "limit_price", "price")),
            stop_price=_opt_int(row.get("stop_price")),
            time_in_force=str(row.get("time_in_force") or "gtc"),
            status=str(row.get("status", "")),
            reason=row.get("reason"),
            client_order_id=row.get("client_order_id"),
            avg_fill_price=_opt_float(row.get("avg_fill_price")),
            created_at=_time(_first(row, "created_at", "created_ns", "submitted_at")),
            updated_at=_time(_first(row, "updated_at", "updated_ns")),
        )


@dataclass(frozen=True)
class Execution:
    """One fill of one of the account's orders."""

    order_id: int
    symbol: str
    side: str
    price: int
    qty: int
    liquidity: str
    time: datetime | None
    seq: int | None

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Execution:
        return cls(
            order_id=_int(_first(row, "order_id", "id")),
            symbol=str(row.get("symbol", "")),
            side=str(row.get("side", "")),
            price=_int(row.get("price")),
            qty=_int(row.get("qty")),
            liquidity=str(row.get("liquidity") or ""),
            time=_time(_first(row, "ts", "time", "timestamp", "ts_event", "executed_at")),
            seq=_opt_int(row.get("seq")),
        )


@dataclass(frozen=True)
class Position:
    """A position: signed lots, the average entry price and last price (ticks), market
    value and P&L (tick-lots; unrealized None while the symbol has no last price)."""

    symbol: str
    qty: int
    avg_entry_price: float | None
    realized_pnl: int
    unrealized_pnl: float | None
    last_price: int | None = None
    market_value: int | None = None

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Position:
        qty = _int(row.get("qty"))
        avg = _opt_float(_first(row, "avg_entry_price", "avg_price"))
        cost = _opt_float(row.get("cost_basis"))
        if avg is None and cost is not None and qty:
            avg = cost / qty
        return cls(
            symbol=str(row.get("symbol", "")),
            qty=qty,
            avg_entry_price=avg,
            realized_pnl=_int(row.get("realized_pnl")),
            unrealized_pnl=_opt_float(row.get("unrealized_pnl")),
            last_price=_opt_int(row.get("last_price")),
            market_value=_opt_int(row.get("market_value")),
        )


@dataclass(frozen=True)
class Account:
    """The account's cash and P&L (tick-lots where the gateway gives them)."""

    account: str
    cash: int | None
    realized_pnl: int | None
    unrealized_pnl: int | None
    equity: int | None
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Account:
        return cls(
            account=str(_first(row, "account", "id") or ""),
            cash=_opt_int(row.get("cash")),
            realized_pnl=_opt_int(row.get("realized_pnl")),
            unrealized_pnl=_opt_int(row.get("unrealized_pnl")),
            equity=_opt_int(row.get("equity")),
            raw=row,
        )


@dataclass(frozen=True)
class Level:
    price: int
    qty: int
    orders: int


@dataclass(frozen=True)
class Book:
    """A symbol's L2 depth, best level first on each side."""

    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    last_price: int | None

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Book:
        def levels(side: Any) -> tuple[Level, ...]:
            return tuple(
                Level(_int(lv.get("price")), _int(lv.get("qty")), _int(lv.get("orders")))
                for lv in side or ()
            )

        return cls(
            symbol=str(row.get("symbol", "")),
            bids=levels(row.get("bids")),
            asks=levels(row.get("asks")),
            last_price=_opt_int(row.get("last_price")),
        )

    @property
    def best_bid(self) -> int | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> int | None:
        return self.asks[0].price if self.asks else None


@dataclass(frozen=True)
class Trade:
    """One trade on a symbol (anyone's): price in ticks, quantity in lots."""

    price: int
    qty: int
    time: datetime | None
    aggressor: str | None

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Trade:
        return cls(
            price=_int(row.get("price")),
            qty=_int(row.get("qty")),
            time=_time(_first(row, "ts", "time", "timestamp", "ts_event")),
            aggressor=_first(row, "taker_side", "aggressor", "aggressor_side", "side"),
        )


@dataclass(frozen=True)
class Strategy:
    """A strategy the platform knows of, as the gateway describes it."""

    name: str
    state: str
    pnl: int | None
    raw: Mapping[str, Any]
    account: str = ""
    symbols: tuple[str, ...] = ()
    position: int | None = None
    open_orders: int | None = None
    message: str | None = None

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> Strategy:
        pnl = _opt_float(_first(row, "pnl", "realized_pnl"))
        symbols = row.get("symbols")
        return cls(
            name=str(_first(row, "name", "id") or "?"),
            state=str(_first(row, "state", "phase", "status") or "unknown"),
            pnl=None if pnl is None else round(pnl),
            raw=row,
            account=str(row.get("account") or ""),
            symbols=tuple(str(s) for s in symbols) if isinstance(symbols, list) else (),
            position=_opt_int(row.get("position")),
            open_orders=_opt_int(row.get("open_orders")),
            message=str(row["message"]) if row.get("message") else None,
        )


def _items(body: Any, *keys: str) -> list[Mapping[str, Any]]:
    """A list answer, bare or wrapped (`{"orders": [...]}`, `{"items": [...]}`)."""
    if isinstance(body, Mapping):
        for key in (*keys, "items", "data"):
            if isinstance(body.get(key), list):
                body = body[key]
                break
        else:
            return []
    if not isinstance(body, list):
        return []
    return [row for row in body if isinstance(row, Mapping)]


# -- the client -------------------------------------------------------------------------------


class GatewayClient:
    """A synchronous client of one gateway, for one API key (or none: health only).

    `transport` lets tests hand in an in-process transport; the terminal itself always
    speaks HTTP to the URL it was given."""

    def __init__(
        self,
        base_url: str,
        key_id: str | None = None,
        secret: str | None = None,
        *,
        timeout: float = 3.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {}
        if key_id and secret:
            headers = {KEY_ID_HEADER: key_id, SECRET_HEADER: secret}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # One place turns HTTP outcomes into the three errors.
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            resp = self._http.request(method, API + path, params=query, json=json)
        except httpx.TimeoutException:
            raise GatewayDown(f"the gateway at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise GatewayDown(f"cannot reach the gateway at {self.base_url} ({exc})") from None
        body: Any
        try:
            body = resp.json()
        except ValueError:
            body = None
        reason = str(body.get("reason", "")) if isinstance(body, Mapping) else ""
        message = str(body.get("message", "")) if isinstance(body, Mapping) else ""
        if resp.status_code >= 500:
            raise GatewayDown(
                message or f"the gateway answered {resp.status_code}",
                status=resp.status_code,
                reason=reason,
            )
        if resp.status_code in (404, 405) and reason in ("not_found", "method_not_allowed", ""):
            raise NotAvailable(
                f"this gateway has no {method} {API}{path}", status=resp.status_code, reason=reason
            )
        if resp.status_code >= 400:
            raise Rejected(
                message or reason or f"refused ({resp.status_code})",
                status=resp.status_code,
                reason=reason,
            )
        return body

    # -- health and identity --------------------------------------------------------------

    def health(self) -> bool:
        """Whether the gateway process answers (no key needed)."""
        body = self._call("GET", "/health")
        return isinstance(body, Mapping) and body.get("status") == "ok"

    def ready(self) -> Mapping[str, Any]:
        """The readiness answer (engine reachable, projection caught up); a not-ready
        gateway raises GatewayDown with its reason."""
        body = self._call("GET", "/ready")
        return body if isinstance(body, Mapping) else {}

    def check_key(self) -> str | None:
        """Raise Rejected (401) if the key is refused; the account when the gateway says."""
        try:
            return self.account().account or None
        except NotAvailable:
            pass
        try:  # a gateway without /account: any authenticated read tells a good key
            self._call("GET", "/orders/1")
        except Rejected as exc:
            if exc.status == 401:
                raise
        return None

    # -- reference and market data --------------------------------------------------------

    def symbols(self) -> list[SymbolSpec]:
        out = []
        for row in _items(self._call("GET", "/symbols"), "symbols"):
            name = _first(row, "symbol", "name")
            if not name:
                continue
            tick = Decimal(str(row.get("tick_size") or "0.01"))
            out.append(SymbolSpec(str(name), tick, _int(row.get("lot_size"), 1) or 1))
        return out

    def book(self, symbol: str, depth: int = 10) -> Book:
        return Book.parse(self._call("GET", f"/book/{symbol}", params={"depth": depth}))

    def trades(self, symbol: str, limit: int = 200) -> list[Trade]:
        body = self._call("GET", f"/trades/{symbol}", params={"limit": min(limit, 1000)})
        trades = [Trade.parse(row) for row in _items(body, "trades")]
        # Oldest first, whatever order the gateway sends.
        return sorted(trades, key=lambda t: t.time or datetime.min.replace(tzinfo=UTC))

    # -- the account -------------------------------------------------------------------

    def account(self) -> Account:
        body = self._call("GET", "/account")
        return Account.parse(body if isinstance(body, Mapping) else {})

    def orders(
        self,
        status: str = "open",
        symbol: str | None = None,
        side: str | None = None,
        limit: int = 200,
    ) -> list[Order]:
        body = self._call(
            "GET",
            "/orders",
            params={"status": status, "symbol": symbol, "side": side, "limit": min(limit, 500)},
        )
        return [Order.parse(row) for row in _items(body, "orders")]

    def order(self, order_id: int) -> Order:
        return Order.parse(self._call("GET", f"/orders/{order_id}"))

    def submit(self, body: Mapping[str, Any]) -> Order:
        return Order.parse(self._call("POST", "/orders", json=dict(body)))

    def replace(self, order_id: int, qty: int | None, limit_price: int | None) -> Order:
        change: dict[str, int] = {}
        if qty is not None:
            change["qty"] = qty
        if limit_price is not None:
            change["limit_price"] = limit_price
        return Order.parse(self._call("PATCH", f"/orders/{order_id}", json=change))

    def cancel(self, order_id: int) -> Order:
        return Order.parse(self._call("DELETE", f"/orders/{order_id}"))

    def cancel_all(self) -> list[Order]:
        body = self._call("DELETE", "/orders")
        return [Order.parse(row) for row in _items(body, "canceled", "orders")]

    def executions(self, symbol: str | None = None, limit: int = 500) -> list[Execution]:
        body = self._call(
            "GET", "/executions", params={"symbol": symbol, "limit": min(limit, 1000)}
        )
        fills = [Execution.parse(row) for row in _items(body, "executions", "fills")]
        return sorted(fills, key=lambda f: (f.seq or 0, f.time or datetime.min.replace(tzinfo=UTC)))

    def positions(self) -> list[Position]:
        return [Position.parse(row) for row in _items(self._call("GET", "/positions"), "positions")]

    def strategies(self) -> list[Strategy]:
        body = self._call("GET", "/strategies")
        return [Strategy.parse(row) for row in _items(body, "strategies")]

    def strategy_action(self, name: str, action: str) -> None:
        """Pause or resume a strategy."""
        self._call("POST", f"/strategies/{name}/{action}")


def fetch_text(url: str, timeout: float = 2.0) -> str:
    """A plain GET of a URL outside the API (the engine's /metrics), as text."""
    try:
        resp = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise GatewayDown(f"cannot reach {url} ({exc})") from None
    if resp.status_code >= 400:
        raise GatewayDown(f"{url} answered {resp.status_code}", status=resp.status_code)
    return resp.text
