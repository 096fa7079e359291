"""alpaca-py's TradingClient against the gateway: orders, end to end through the engine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)

from .conftest import MAX_ORDER_QTY, Gateway, Trader

NEW_YORK = ZoneInfo("America/New_York")


def limit(
    symbol: str, side: str, qty: float, price: float, coid: str | None = None
) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol=symbol,
        qty=qty,
        side=OrderSide(side),
        time_in_force=TimeInForce.GTC,
        limit_price=price,
        client_order_id=coid,
    )


def error_of(exc: pytest.ExceptionInfo[APIError]) -> tuple[int, int, str]:
    """(HTTP status, Alpaca code, message) of an APIError, from the JSON body."""
    err = exc.value
    assert err.status_code is not None
    return err.status_code, err.code, err.message  # type: ignore[return-value]


def test_a_limit_order_lives_its_life(trader: Trader) -> None:
    coid = "life-" + uuid.uuid4().hex
    order = trader.client.submit_order(limit("GOOG", "buy", 5, 100.25, coid))
    assert isinstance(order, Order)
    assert order.status == OrderStatus.NEW
    assert (order.symbol, order.qty, order.filled_qty) == ("GOOG", "5", "0")
    assert order.limit_price == "100.25" and order.stop_price is None
    assert order.client_order_id == coid
    assert order.time_in_force == TimeInForce.GTC

    assert trader.client.get_order_by_id(order.id).id == order.id
    assert trader.client.get_order_by_client_id(coid).id == order.id
    open_ids = [o.id for o in trader.client.get_orders()]
    assert open_ids == [order.id]

    replaced = trader.client.replace_order_by_id(
        order.id, ReplaceOrderRequest(qty=8, limit_price=100.5)
    )
    assert (replaced.qty, replaced.limit_price) == ("8", "100.50")
    assert replaced.status == OrderStatus.NEW

    trader.client.cancel_order_by_id(order.id)
    done = trader.client.get_order_by_id(order.id)
    assert done.status == OrderStatus.CANCELED
    assert done.canceled_at is not None
    assert trader.client.get_orders() == []

    with pytest.raises(APIError) as again:
        trader.client.cancel_order_by_id(order.id)
    status, code, message = error_of(again)
    assert (status, code) == (422, 42210000) and "canceled" in message


def test_a_retried_client_order_id_is_one_order(trader: Trader) -> None:
    coid = "retry-" + uuid.uuid4().hex
    first = trader.client.submit_order(limit("AAPL", "buy", 1, 10.00, coid))
    second = trader.client.submit_order(limit("AAPL", "buy", 1, 10.00, coid))
    assert second.id == first.id
    with pytest.raises(APIError) as other:
        trader.client.submit_order(limit("AAPL", "buy", 2, 10.00, coid))
    assert error_of(other)[:2] == (422, 40010001)
    assert len(trader.client.get_orders()) == 1
    trader.client.cancel_orders()


def test_stop_orders_wait_as_new_with_their_prices(trader: Trader) -> None:
    stop = trader.client.submit_order(
        StopOrderRequest(
            symbol="GOOG", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, stop_price=900
        )
    )
    assert (stop.type, stop.status, stop.stop_price, stop.limit_price) == (
        "stop",
        OrderStatus.NEW,
        "900.00",
        None,
    )
    stop_limit = trader.client.submit_order(
        StopLimitOrderRequest(
            symbol="GOOG",
            qty=2,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=1.5,
            limit_price=1.25,
        )
    )
    assert (stop_limit.type, stop_limit.stop_price, stop_limit.limit_price) == (
        "stop_limit",
        "1.50",
        "1.25",
    )
    results = trader.client.cancel_orders()
    assert sorted(str(r.id) for r in results) == sorted([str(stop.id), str(stop_limit.id)])
    assert all(r.status == 200 for r in results)
    assert trader.client.get_orders() == []


def test_a_market_order_fills_against_another_account(trader: Trader, other: Trader) -> None:
    maker = other.client.submit_order(limit("AAPL", "sell", 3, 150.05))
    taker = trader.client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert taker.status == OrderStatus.FILLED
    assert (taker.filled_qty, taker.filled_avg_price) == ("3", "150.05")
    assert taker.filled_at is not None
    filled = other.client.get_order_by_id(maker.id)
    assert (filled.status, filled.filled_qty) == (OrderStatus.FILLED, "3")


def test_a_partial_fill_shows_on_the_resting_order(trader: Trader, other: Trader) -> None:
    resting = trader.client.submit_order(limit("AAPL", "buy", 10, 140.10))
    other.client.submit_order(limit("AAPL", "sell", 4, 140.10))
    seen = trader.client.get_order_by_id(resting.id)
    assert (seen.status, seen.filled_qty, seen.qty) == (OrderStatus.PARTIALLY_FILLED, "4", "10")
    with pytest.raises(APIError) as too_small:
        trader.client.replace_order_by_id(resting.id, ReplaceOrderRequest(qty=4))
    assert error_of(too_small)[:2] == (422, 40010001)
    trader.client.cancel_orders()


def test_a_risk_refusal_is_403_and_changes_nothing(trader: Trader) -> None:
    with pytest.raises(APIError) as refused:
        trader.client.submit_order(limit("GOOG", "buy", MAX_ORDER_QTY + 1, 10))
    status, code, message = error_of(refused)
    assert (status, code) == (403, 40310000) and "max_order_qty" in message
    assert trader.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_coarse_units_are_decimals_and_lots(trader: Trader) -> None:
    """BRK trades in ticks of 0.05 and lots of 10 shares."""
    order = trader.client.submit_order(limit("BRK", "buy", 30, 10.05))
    assert (order.qty, order.limit_price) == ("30", "10.05")
    for qty, price, words in ((15, 10.05, "lot size"), (30, 10.02, "tick size")):
        with pytest.raises(APIError) as bad:
            trader.client.submit_order(limit("BRK", "buy", qty, price))
        status, code, message = error_of(bad)
        assert (status, code) == (422, 40010001) and words in message
    trader.client.cancel_orders()


def test_list_filters(trader: Trader) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    goog = trader.client.submit_order(limit("GOOG", "buy", 1, 50))
    aapl = trader.client.submit_order(limit("AAPL", "sell", 1, 9000))
    trader.client.cancel_order_by_id(goog.id)
    client = trader.client

    def ids(**kw: object) -> list[str]:
        return [str(o.id) for o in client.get_orders(GetOrdersRequest(**kw))]  # type: ignore[arg-type]

    assert ids() == [str(aapl.id)]  # open by default
    assert ids(status=QueryOrderStatus.CLOSED) == [str(goog.id)]
    assert ids(status=QueryOrderStatus.ALL) == [str(aapl.id), str(goog.id)]  # newest first
    assert ids(status=QueryOrderStatus.ALL, direction="asc") == [str(goog.id), str(aapl.id)]
    assert ids(status=QueryOrderStatus.ALL, limit=1) == [str(aapl.id)]
    assert ids(status=QueryOrderStatus.ALL, symbols=["GOOG"]) == [str(goog.id)]
    assert ids(status=QueryOrderStatus.ALL, side=OrderSide.SELL) == [str(aapl.id)]
    assert ids(status=QueryOrderStatus.ALL, nested=True) == [str(aapl.id), str(goog.id)]
    assert ids(status=QueryOrderStatus.ALL, after=start) == [str(aapl.id), str(goog.id)]
    assert ids(status=QueryOrderStatus.ALL, until=start) == []
    client.cancel_orders()


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def test_a_date_in_after_or_until_is_a_new_york_midnight(
    gateway: Gateway, trader: Trader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`after`/`until` read a date as the market-data routes read one: its New York
    midnight (they read it as midnight UTC, four or five hours early), so `until` a date
    lists what was submitted before that day; alpaca-py sends datetimes, read as before.
    An order's submission time is the engine's clock, so what the route asks of the
    projection is recorded (and answered as usual) to see the bounds to the nanosecond."""
    projection = gateway.app.state.projection
    asked: list[tuple[int | None, int | None]] = []
    orders = projection.orders

    def recorded(account: str, **filters: Any) -> Any:
        asked.append((filters["after_ns"], filters["until_ns"]))
        return orders(account, **filters)

    monkeypatch.setattr(projection, "orders", recorded)
    order = trader.client.submit_order(limit("GOOG", "buy", 1, 50))

    def listed(**params: str) -> list[str]:
        answer = requests.get(
            f"{gateway.url}/v2/orders",
            params={"status": "all", **params},
            headers=trader.headers,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return [o["id"] for o in answer.json()]

    def bounds(**params: str) -> tuple[int | None, int | None]:
        listed(**params)
        return asked[-1]

    winter, summer = datetime(2026, 2, 28, tzinfo=NEW_YORK), datetime(2026, 3, 9, tzinfo=NEW_YORK)
    assert bounds(after="2026-02-28", until="2026-03-09") == (_ns(winter), _ns(summer))
    assert _ns(winter) % 86_400_000_000_000 == 5 * 3_600_000_000_000  # 05:00 UTC (EST)
    assert _ns(summer) % 86_400_000_000_000 == 4 * 3_600_000_000_000  # 04:00 UTC (EDT)
    assert bounds(until="2026-03-09") == (None, _ns(summer))  # a time, not a day: its start
    assert bounds(after="2026-03-01T03:00:00.123456789Z") == (
        _ns(winter) + 22 * 3600 * 10**9 + 123456789,
        None,
    )
    # the order, submitted now, in the New York day it was submitted in
    today = datetime.now(NEW_YORK).date()
    assert listed(after=today.isoformat(), until=(today + timedelta(days=1)).isoformat()) == [
        str(order.id)
    ]
    assert listed(after=(today + timedelta(days=1)).isoformat()) == []

    def sdk(**kw: datetime) -> tuple[int | None, int | None]:
        trader.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, **kw))  # type: ignore[arg-type]
        return asked[-1]

    utc = datetime(2026, 3, 1, 3, 4, 5, 678901, tzinfo=UTC)
    assert sdk(after=utc, until=utc.astimezone(NEW_YORK)) == (_ns(utc), _ns(utc))
    assert sdk(after=utc.replace(tzinfo=None)) == (_ns(utc), None)  # naive: UTC
    for bad in ({"after": "2026-02-30"}, {"until": "28/02/2026"}, {"until": "1969-12-31"}):
        answer = requests.get(
            f"{gateway.url}/v2/orders", params=bad, headers=trader.headers, timeout=10
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()
        assert error["code"] == 40010001 and next(iter(bad)) in error["message"]
    trader.client.cancel_orders()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"qty": 1.5}, "fractional"),
        ({"qty": True}, "boolean"),
        ({"qty": "abc"}, "number"),
        ({"qty": None, "notional": 100}, "notional"),
        ({"symbol": "NOPE"}, "not found"),
        ({"limit_price": "10.001"}, "tick size"),
        ({"limit_price": None}, "limit_price is required"),
        ({"type": "market"}, "limit_price is not allowed"),
        ({"time_in_force": "opg"}, "time_in_force"),
        ({"side": "short"}, "side"),
        ({"order_class": "bracket"}, "take_profit and stop_loss"),
        ({"order_class": "triangle"}, "order_class"),
        ({"type": "trailing_stop", "limit_price": None}, "trail_price or trail_percent"),
        ({"client_order_id": "x" * 129}, "client_order_id"),
    ],
)
def test_bad_orders_get_alpacas_error_shape(
    gateway: Gateway, trader: Trader, body: dict[str, object], words: str
) -> None:
    order = {
        "symbol": "GOOG",
        "qty": 1,
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "10.00",
        **body,
    }
    answer = requests.post(
        f"{gateway.url}/v2/orders", json=order, headers=trader.headers, timeout=10
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert set(error) == {"code", "message"}
    assert error["code"] == 40010001 and words in error["message"]
    assert trader.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_malformed_requests_get_alpacas_error_shape(gateway: Gateway, trader: Trader) -> None:
    url = gateway.url + "/v2"
    answers = [
        requests.post(f"{url}/orders", data="{not json", headers=trader.headers, timeout=10),
        requests.get(f"{url}/orders?limit=0", headers=trader.headers, timeout=10),
        requests.get(f"{url}/orders?status=weird", headers=trader.headers, timeout=10),
        requests.get(f"{url}/orders?after=yesterday", headers=trader.headers, timeout=10),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == 40010001
    missing = requests.get(f"{url}/orders/{uuid.uuid4()}", headers=trader.headers, timeout=10)
    assert (missing.status_code, missing.json()["code"]) == (404, 40410000)
    nowhere = requests.get(f"{url}/watchlists", headers=trader.headers, timeout=10)
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, 40410000)
    put = requests.put(f"{url}/orders", headers=trader.headers, timeout=10)
    assert (put.status_code, put.json()["code"]) == (405, 40510000)
    assert put.headers["Allow"] == "DELETE, GET, POST"


def test_every_route_needs_a_key(gateway: Gateway, trader: Trader) -> None:
    url = gateway.url + "/v2"
    bad = {"APCA-API-KEY-ID": trader.key_id, "APCA-API-SECRET-KEY": "wrong"}
    for method, path in [
        ("GET", "/orders"),
        ("POST", "/orders"),
        ("GET", "/account"),
        ("GET", "/positions"),
        ("DELETE", "/positions"),
        ("GET", "/clock"),
        ("GET", "/assets"),
    ]:
        for headers in ({}, bad):
            answer = requests.request(method, url + path, headers=headers, timeout=10)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["code"] == 40110000


def test_accounts_are_isolated(trader: Trader, other: Trader) -> None:
    coid = "mine-" + uuid.uuid4().hex
    mine = trader.client.submit_order(limit("GOOG", "buy", 1, 20, coid))
    for call in (
        lambda: other.client.get_order_by_id(mine.id),
        lambda: other.client.get_order_by_client_id(coid),
        lambda: other.client.cancel_order_by_id(mine.id),
        lambda: other.client.replace_order_by_id(mine.id, ReplaceOrderRequest(qty=2)),
    ):
        with pytest.raises(APIError) as denied:
            call()
        assert error_of(denied)[:2] == (404, 40410000)
    assert other.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []
    assert other.client.cancel_orders() == []
    assert trader.client.get_order_by_id(mine.id).status == OrderStatus.NEW
    trader.client.cancel_orders()
