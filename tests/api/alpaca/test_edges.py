"""Extreme numbers and odd shapes: refused in Alpaca's shape, never a 5xx."""

from __future__ import annotations

import pytest
import requests

from .conftest import Gateway, Trader
from .test_orders import limit
from .test_positions import cross


@pytest.mark.parametrize(
    "change",
    [
        {"qty": "1e30"},
        {"qty": 2**70},
        {"limit_price": "1e30"},
        {"limit_price": 1e300},
        {"limit_price": "1e-999999999"},
        {"qty": "-0"},
        {"type": "trailing_stop", "limit_price": None, "trail_price": "1e30"},
        {"type": "trailing_stop", "limit_price": None, "trail_percent": "1e30"},
        {"type": "trailing_stop", "limit_price": None, "trail_percent": "150"},
        {"order_class": "oto", "stop_loss": {"stop_price": "1e30"}},
        {"order_class": "bracket", "take_profit": {"limit_price": 5}, "stop_loss": {}},
        {"symbol": ""},
        {"symbol": None},
        {"take_profit": "nope"},
    ],
)
def test_extreme_orders_are_4xx(
    gateway: Gateway, trader: Trader, change: dict[str, object]
) -> None:
    order = {
        "symbol": "GOOG",
        "qty": 1,
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": "10.00",
        **change,
    }
    url = f"{gateway.url}/v2/orders"
    answer = requests.post(url, json=order, headers=trader.headers, timeout=10)
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"code", "message"}


@pytest.mark.parametrize(
    "query",
    ["qty=1e30", "percentage=1e30", "percentage=-5", "qty=abc", "qty=1&percentage=5"],
)
def test_extreme_closes_are_4xx(
    gateway: Gateway, trader: Trader, other: Trader, query: str
) -> None:
    cross(trader, other, "AAPL", 1, 12.00)
    url = f"{gateway.url}/v2/positions/AAPL?{query}"
    answer = requests.delete(url, headers=trader.headers, timeout=10)
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"code", "message"}
    assert trader.client.get_open_position("AAPL").qty == "1"


def test_extreme_replaces_are_4xx(gateway: Gateway, trader: Trader) -> None:
    order = trader.client.submit_order(limit("GOOG", "buy", 1, 9))
    url = f"{gateway.url}/v2/orders/{order.id}"
    for change in ({"qty": "1e30"}, {"limit_price": "1e30"}, {"stop_price": 5}, {}):
        answer = requests.patch(url, json=change, headers=trader.headers, timeout=10)
        assert 400 <= answer.status_code < 500, (change, answer.text)
        assert set(answer.json()) == {"code", "message"}
    assert trader.client.get_order_by_id(order.id).limit_price == "9.00"
    trader.client.cancel_orders()


def test_openapi_schema_names_are_plain_and_alpacas_are_prefixed(gateway: Gateway) -> None:
    """The native API and `/v2` share one OpenAPI: no schema name is module-qualified
    (FastAPI qualifies names that two models share), and `/v2`'s request bodies are the
    Alpaca* models."""
    spec = requests.get(gateway.url + "/openapi.json", timeout=10).json()
    names = set(spec["components"]["schemas"])
    assert not [n for n in names if "__" in n], sorted(names)

    def body(path: str, method: str) -> str:
        op = spec["paths"][path][method]
        return str(op["requestBody"]["content"]["application/json"]["schema"]["$ref"])

    assert body("/v2/orders", "post").endswith("/AlpacaOrderCreate")
    assert body("/v2/orders/{order_id}", "patch").endswith("/AlpacaOrderReplace")
    assert body("/api/v1/orders", "post").endswith("/OrderCreate")
    assert body("/api/v1/orders/{order_id}", "patch").endswith("/OrderReplace")
