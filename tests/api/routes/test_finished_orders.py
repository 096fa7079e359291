"""A closed order the gateway's projection no longer holds (beyond its
`max_closed_orders`, here 1 per account) still reads with its final state: the gateway
asks the engine, which keeps its recently finished orders (engine/finished.py).

The module runs on an engine of its own (`isolated_gateway`), its gateway keeping one
closed order per account."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import IsolatedGateway
from tickplane.api.settings import GatewaySettings

H = dict[str, str]
ORDERS = "/api/v1/orders"


@pytest.fixture(scope="module")
def settings(settings: GatewaySettings) -> GatewaySettings:
    return settings.model_copy(update={"max_closed_orders": 1})


@pytest.fixture(scope="module")
def client(isolated_gateway: IsolatedGateway) -> Iterator[TestClient]:
    yield isolated_gateway.client


def test_a_closed_order_the_gateway_dropped_reads_from_the_engine(
    client: TestClient, symbol: str, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    maker, taker = headers(make_key()), headers(make_key())
    sell = {"symbol": symbol, "side": "sell", "type": "limit", "qty": 8, "limit_price": 500}
    ask = client.post(ORDERS, json=sell, headers=maker).json()
    buy = {**sell, "side": "buy", "qty": 3, "client_order_id": "fin-1"}
    bought = client.post(ORDERS, json=buy, headers=taker).json()
    assert bought["status"] == "filled"
    r = client.delete(f"{ORDERS}/{ask['id']}", headers=maker)  # 3 filled, 5 canceled
    assert r.status_code == 200, r.text
    # each account closes one more order: the gateway keeps only that one
    for h in (maker, taker):
        low = {"symbol": symbol, "side": "buy", "type": "limit", "qty": 1, "limit_price": 1}
        later = client.post(ORDERS, json=low, headers=h).json()
        assert client.delete(f"{ORDERS}/{later['id']}", headers=h).status_code == 200
    projection = client.app.state.projection  # type: ignore[attr-defined]
    assert projection.order(bought["account"], bought["id"]) is None  # dropped
    assert projection.order(ask["account"], ask["id"]) is None

    got = client.get(f"{ORDERS}/{bought['id']}", headers=taker)
    assert got.status_code == 200, got.text
    g = got.json()
    assert (g["status"], g["qty"], g["filled_qty"], g["open_qty"], g["avg_fill_price"]) == (
        "filled", 3, 3, 0, 500
    )  # fmt: skip
    assert (g["client_order_id"], g["limit_price"], g["symbol"]) == ("fin-1", 500, symbol)
    assert g["created_at"] is not None and g["updated_at"] is not None
    by_coid = client.get(f"{ORDERS}/by-client-id/fin-1", headers=taker)
    assert by_coid.status_code == 200 and by_coid.json() == g
    canceled = client.get(f"{ORDERS}/{ask['id']}", headers=maker).json()
    assert (canceled["status"], canceled["reason"], canceled["qty"]) == ("canceled", "user", 8)
    assert (canceled["filled_qty"], canceled["avg_fill_price"]) == (3, 500)
    # another account's is a 404, as any order it does not own
    r = client.get(f"{ORDERS}/{bought['id']}", headers=maker)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_order"
    assert client.get(f"{ORDERS}/by-client-id/fin-1", headers=maker).status_code == 404
