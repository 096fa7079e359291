"""`/v2/account/activities`: the account's fills as Alpaca's FILL activities, parsed
by alpaca-py's own TradeActivity model (alpaca-py's TradingClient has no call for them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests
from alpaca.trading.enums import ActivityType, OrderSide, OrderStatus, TradeActivityType
from alpaca.trading.models import TradeActivity

from .conftest import Gateway, Trader
from .test_orders import limit


def activities(gateway: Gateway, trader: Trader, path: str = "", **params: Any) -> Any:
    r = requests.get(
        f"{gateway.url}/v2/account/activities{path}",
        params=params,
        headers=trader.headers,
        timeout=10,
    )
    return r.status_code, r.json()


def test_fills_are_fill_activities(gateway: Gateway, trader: Trader, other: Trader) -> None:
    # BRK trades in lots of 10 shares and ticks of 0.05: shares and decimals on the way out
    sell = other.client.submit_order(limit("BRK", "sell", 30, 412.35))
    first = trader.client.submit_order(limit("BRK", "buy", 20, 412.35))
    second = trader.client.submit_order(limit("BRK", "buy", 10, 412.35))
    assert (first.status, second.status) == (OrderStatus.FILLED, OrderStatus.FILLED)

    status, body = activities(gateway, other, direction="asc")
    assert status == 200, body
    fills = [TradeActivity(**a) for a in body]
    assert [(f.type, f.qty, f.cum_qty, f.leaves_qty) for f in fills] == [
        (TradeActivityType.PARTIAL_FILL, 20, 20, 10),
        (TradeActivityType.FILL, 10, 30, 0),
    ]
    for f in fills:
        assert (f.activity_type, f.symbol, f.side, f.price) == (
            ActivityType.FILL,
            "BRK",
            OrderSide.SELL,
            412.35,
        )
        assert str(f.order_id) == str(sell.id)
    assert [f.order_status for f in fills] == [OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
    assert fills[0].id < fills[1].id  # ids sort by time, as Alpaca's

    # the buyer sees its own two fills only, newest first
    status, body = activities(gateway, trader)
    mine = [TradeActivity(**a) for a in body]
    assert [str(f.order_id) for f in mine] == [str(second.id), str(first.id)]
    assert {f.side for f in mine} == {OrderSide.BUY}

    # pages: page_token is the last id of the previous page
    _, page = activities(gateway, trader, page_size=1)
    _, after = activities(gateway, trader, page_size=1, page_token=page[0]["id"])
    _, done = activities(gateway, trader, page_size=1, page_token=after[0]["id"])
    assert [page[0]["order_id"], after[0]["order_id"], done] == [str(second.id), str(first.id), []]

    # by type, by date
    assert activities(gateway, trader, "/FILL")[1] == body
    assert activities(gateway, trader, activity_types="FILL,DIV")[1] == body
    assert activities(gateway, trader, "/DIV") == (200, [])
    assert activities(gateway, trader, activity_types="DIV") == (200, [])
    today = datetime.now(UTC).date().isoformat()
    assert activities(gateway, trader, date=today)[1] == body
    assert activities(gateway, trader, date="2000-01-01") == (200, [])
    assert activities(gateway, trader, until="2000-01-01T00:00:00Z") == (200, [])


def test_bad_activity_queries_are_422(gateway: Gateway, trader: Trader) -> None:
    for path, params in (
        ("/NOPE", {}),
        ("", {"activity_types": "FILL,NOPE"}),
        ("", {"date": "yesterday"}),
        ("", {"after": "soon"}),
        ("", {"page_token": "20000101000000000::nope"}),
        ("", {"page_size": 101}),
    ):
        status, body = activities(gateway, trader, path, **params)
        assert status == 422, (path, params, body)
        assert set(body) == {"code", "message"} and body["code"] == 40010001, body
