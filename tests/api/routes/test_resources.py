"""Listing and reading: orders (filters, paging, by client_order_id), executions,
positions, account, symbols, trades; each isolated by account.

The module runs on an engine of its own and each test on symbols of its own
(`isolated_gateway`, `symbol`): no test's resting orders can cross another's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import IsolatedGateway

H = dict[str, str]
V1 = "/api/v1"
PRICE = 200_000


@pytest.fixture(scope="module")
def client(isolated_gateway: IsolatedGateway) -> Iterator[TestClient]:
    yield isolated_gateway.client


def _order(client: TestClient, h: H, symbol: str, **kw: Any) -> dict[str, Any]:
    body = {"symbol": symbol, "side": "buy", "type": "limit", "qty": 1, **kw}
    r = client.post(f"{V1}/orders", json=body, headers=h)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _trade(
    client: TestClient, symbol: str, seller: H, buyer: H, price: int, qty: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    ask = _order(client, seller, symbol, side="sell", qty=qty + 2, limit_price=price)
    bid = _order(
        client, buyer, symbol, side="buy", qty=qty, limit_price=price, client_order_id="t-1"
    )
    return ask, bid


def test_fills_make_executions_positions_account_and_trades(
    client: TestClient,
    isolated_gateway: IsolatedGateway,
    symbol: str,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
) -> None:
    seller, buyer = headers(make_key()), headers(make_key())
    price = PRICE
    ask, bid = _trade(client, symbol, seller, buyer, price, 3)
    assert bid["status"] == "filled"

    ex = client.get(f"{V1}/executions", headers=buyer).json()["executions"]
    assert [(e["order_id"], e["qty"], e["price"], e["liquidity"]) for e in ex] == [
        (bid["id"], 3, price, "taker")
    ]
    assert ex[0]["client_order_id"] == "t-1"
    mex = client.get(f"{V1}/executions", params={"order_id": ask["id"]}, headers=seller).json()
    assert [e["liquidity"] for e in mex["executions"]] == ["maker"]

    pos = client.get(f"{V1}/positions", headers=buyer).json()
    assert [(p["symbol"], p["qty"], p["cost_basis"]) for p in pos] == [(symbol, 3, 3 * price)]
    assert pos[0]["avg_entry_price"] == price and pos[0]["last_price"] is not None
    one = client.get(f"{V1}/positions/{symbol}", headers=seller).json()
    assert (one["qty"], one["cost_basis"]) == (-3, -3 * price)
    r = client.get(f"{V1}/positions/{isolated_gateway.fresh()}", headers=buyer)
    assert r.status_code == 404 and r.json()["reason"] == "no_position"

    acct = client.get(f"{V1}/account", headers=buyer).json()
    assert acct["cash"] == -3 * price and acct["open_orders"] == 0
    assert acct["positions"][0]["qty"] == 3 and acct["trading_blocked"] is False
    assert acct["equity"] == acct["cash"] + acct["positions"][0]["market_value"]
    sacct = client.get(f"{V1}/account", headers=seller).json()
    assert sacct["open_orders"] == 1 and sacct["cash"] == 3 * price

    trades = client.get(f"{V1}/trades/{symbol}", params={"limit": 50}, headers=buyer).json()
    assert any(t["price"] == price and t["qty"] == 3 for t in trades["trades"])
    assert "taker" not in trades["trades"][0] and "account" not in str(trades)
    r = client.get(f"{V1}/trades/NOPE", headers=buyer)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_symbol"
    client.delete(f"{V1}/orders", headers=seller)


def test_order_lists_filter_and_page(
    client: TestClient, isolated_gateway: IsolatedGateway, symbol: str, trader: H
) -> None:
    price = PRICE
    other = isolated_gateway.fresh()
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [_order(client, trader, symbol, limit_price=price + i)["id"] for i in range(5)]
    sell = _order(client, trader, other, side="sell", limit_price=10**9)["id"]
    gone = _order(client, trader, symbol, limit_price=price, time_in_force="ioc")["id"]

    def listed(**params: Any) -> list[int]:
        r = client.get(f"{V1}/orders", params=params, headers=trader)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["orders"]]

    assert listed() == [sell, *ids[::-1]]  # open by default, newest first
    assert listed(status="closed") == [gone]
    assert listed(status="all") == [gone, sell, *ids[::-1]]
    assert listed(symbol=other) == [sell]
    assert listed(side="buy") == ids[::-1]
    assert listed(status="all", after=before.isoformat()) == [gone, sell, *ids[::-1]]
    assert listed(until=before.isoformat()) == []
    assert listed(limit=2, offset=1) == [ids[4], ids[3]]
    # cursor paging walks every open order once
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get(f"{V1}/orders", params=params, headers=trader).json()
        seen.extend(o["id"] for o in page["orders"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [sell, *ids[::-1]]
    r = client.get(f"{V1}/orders", params={"status": "bogus"}, headers=trader)
    assert r.status_code == 422 and r.json()["reason"] == "invalid_request"
    client.delete(f"{V1}/orders", headers=trader)
    assert listed() == []


def test_order_by_client_order_id(client: TestClient, symbol: str, trader: H) -> None:
    coid = "find-me-" + uuid.uuid4().hex
    made = _order(client, trader, symbol, limit_price=PRICE, client_order_id=coid)
    got = client.get(f"{V1}/orders/by-client-id/{coid}", headers=trader)
    assert got.status_code == 200 and got.json()["id"] == made["id"]
    r = client.get(f"{V1}/orders/by-client-id/nope-{coid}", headers=trader)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_order"
    client.delete(f"{V1}/orders", headers=trader)


def test_symbols(client: TestClient, isolated_gateway: IsolatedGateway, trader: H) -> None:
    r = client.get(f"{V1}/symbols", headers=trader)
    assert r.status_code == 200, r.text
    names = {s["symbol"]: s for s in r.json()}
    assert list(names) == isolated_gateway.symbols  # the engine's, in its order
    assert names["T000"]["lot_size"] >= 1 and names["T000"]["tick_size"]


def test_every_resource_is_isolated_by_account(
    client: TestClient, symbol: str, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    alice, bob = headers(make_key()), headers(make_key())
    price = PRICE
    coid = "mine-" + uuid.uuid4().hex
    seller = headers(make_key())
    _, bid = _trade(client, symbol, seller, alice, price, 2)
    client.delete(f"{V1}/orders", headers=seller)
    rest = _order(client, alice, symbol, limit_price=price - 100, client_order_id=coid)
    oid = rest["id"]
    # another account's order is a 404, exactly like an order that does not exist
    for r in (
        client.get(f"{V1}/orders/{oid}", headers=bob),
        client.get(f"{V1}/orders/{bid['id']}", headers=bob),
        client.patch(f"{V1}/orders/{oid}", json={"qty": 1}, headers=bob),
        client.delete(f"{V1}/orders/{oid}", headers=bob),
        client.get(f"{V1}/orders/by-client-id/{coid}", headers=bob),
        client.get(f"{V1}/orders/by-client-id/t-1", headers=bob),
    ):
        assert r.status_code == 404, r.text
    nothing = client.get(f"{V1}/orders/999999999999", headers=bob)
    assert nothing.json()["reason"] == r.json()["reason"] == "unknown_order"
    assert client.get(f"{V1}/orders", params={"status": "all"}, headers=bob).json() == {
        "orders": [],
        "next_cursor": None,
    }
    assert client.get(f"{V1}/executions", headers=bob).json() == {"executions": []}
    assert client.get(f"{V1}/positions", headers=bob).json() == []
    assert client.get(f"{V1}/positions/{symbol}", headers=bob).status_code == 404
    acct = client.get(f"{V1}/account", headers=bob).json()
    assert (acct["cash"], acct["open_orders"], acct["positions"]) == (0, 0, [])
    assert client.delete(f"{V1}/orders", headers=bob).json() == {"canceled": []}
    # ... and alice still has all of it
    assert client.get(f"{V1}/orders/{oid}", headers=alice).json()["status"] == "new"
    assert len(client.get(f"{V1}/executions", headers=alice).json()["executions"]) == 1
    assert client.get(f"{V1}/positions/{symbol}", headers=alice).json()["qty"] == 2
    client.delete(f"{V1}/orders", headers=alice)
