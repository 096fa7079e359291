"""Placing order classes through the native API (`POST /api/v1/orders` and WebSocket
order entry): a bracket, an OTO, an OCO and trailing stops, in the native API's units
(integer ticks, numeric strings allowed, never booleans); bad input is a 422 with a
reason and places nothing; a retry with the same `client_order_id` gets the same
order back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import IsolatedGateway
from tickplane.api.schemas import OrderCreate

H = dict[str, str]
ORDERS = "/api/v1/orders"


@pytest.fixture(scope="module")
def client(isolated_gateway: IsolatedGateway) -> Iterator[TestClient]:
    yield isolated_gateway.client


@pytest.fixture
def trader(make_key: Callable[..., Any], headers: Callable[..., H]) -> H:
    """The headers of a fresh account (nothing open)."""
    return headers(make_key())


def legs_of(order: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (leg["id"] - order["id"], leg["leg"], leg["type"], leg["side"], leg["qty"],
         leg["limit_price"], leg["stop_price"], leg["status"], leg["order_class"])
        for leg in order["legs"] or []
    ]  # fmt: skip


def open_ids(client: TestClient, h: H) -> list[int]:
    return [o["id"] for o in client.get(ORDERS, headers=h).json()["orders"]]


def test_a_bracket(client: TestClient, symbol: str, trader: H) -> None:
    body = {
        "symbol": symbol, "side": "buy", "type": "limit", "qty": 10, "limit_price": "5000",
        "order_class": "bracket", "take_profit": {"limit_price": 5_100},
        "stop_loss": {"stop_price": "4900", "limit_price": 4_890},
    }  # fmt: skip
    r = client.post(ORDERS, json=body, headers=trader)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["order_class"], got["type"], got["limit_price"], got["status"]) == (
        "bracket",
        "limit",
        5_000,
        "new",
    )
    assert legs_of(got) == [
        (1, "take_profit", "limit", "sell", 10, 5_100, None, "held", "bracket"),
        (2, "stop_loss", "stop_limit", "sell", 10, 4_890, 4_900, "held", "bracket"),
    ]
    pid = got["id"]
    assert sorted(open_ids(client, trader)) == [pid, pid + 1, pid + 2]
    assert client.get(f"{ORDERS}/{pid}", headers=trader).json()["legs"] == got["legs"]
    client.delete(ORDERS, headers=trader)


def test_an_oto(client: TestClient, symbol: str, trader: H) -> None:
    body = {
        "symbol": symbol, "side": "sell", "type": "limit", "qty": 3, "limit_price": 2_000,
        "order_class": "oto", "take_profit": {"limit_price": 1_900},
    }  # fmt: skip
    r = client.post(ORDERS, json=body, headers=trader)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["order_class"] == "oto"
    assert legs_of(got) == [(1, "take_profit", "limit", "buy", 3, 1_900, None, "held", "oto")]
    client.delete(ORDERS, headers=trader)


def test_an_oco_takes_its_limit_from_its_take_profit(
    client: TestClient, symbol: str, trader: H
) -> None:
    body = {
        "symbol": symbol, "side": "sell", "type": "limit", "qty": 2, "order_class": "oco",
        "take_profit": {"limit_price": 3_000}, "stop_loss": {"stop_price": 1_500},
    }  # fmt: skip
    r = client.post(ORDERS, json=body, headers=trader)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["order_class"], got["limit_price"], got["status"]) == ("oco", 3_000, "new")
    assert legs_of(got) == [(1, "stop_loss", "stop", "sell", 2, None, 1_500, "held", "oco")]
    # the same with the limit given (it must be the take-profit's)
    r = client.post(ORDERS, json={**body, "limit_price": 3_000}, headers=trader)
    assert r.status_code == 201 and r.json()["limit_price"] == 3_000
    r = client.post(ORDERS, json={**body, "limit_price": 3_001}, headers=trader)
    assert (r.status_code, r.json()["reason"]) == (422, "bad_legs")
    client.delete(ORDERS, headers=trader)


@pytest.mark.parametrize(
    ("trail", "shown"),
    [
        ({"trail_price": 5}, (5, None)),
        ({"trail_price": "7"}, (7, None)),
        ({"trail_percent": 1.5}, (None, 1.5)),
        ({"trail_percent": "2.25"}, (None, 2.25)),
    ],
)
def test_a_trailing_stop(
    client: TestClient,
    symbol: str,
    trader: H,
    trail: dict[str, Any],
    shown: tuple[Any, Any],
) -> None:
    body = {"symbol": symbol, "side": "sell", "type": "trailing_stop", "qty": 2, **trail}
    r = client.post(ORDERS, json=body, headers=trader)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["type"], got["order_class"], got["legs"]) == ("trailing_stop", "simple", None)
    assert (got["trail_price"], got["trail_percent"]) == shown
    assert open_ids(client, trader) == [got["id"]]
    client.delete(ORDERS, headers=trader)


LIMIT = {"side": "buy", "type": "limit", "qty": 1, "limit_price": 5_000}
BRACKET = {
    **LIMIT,
    "order_class": "bracket",
    "take_profit": {"limit_price": 5_100},
    "stop_loss": {"stop_price": 4_900},
}
TRAILING = {"side": "sell", "type": "trailing_stop", "qty": 1}


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        # the schema's: types and shapes, with the field
        ({**BRACKET, "take_profit": {"limit_price": True}}, "invalid_request", "take_profit"),
        ({**BRACKET, "take_profit": {"limit_price": 5_100.5}}, "invalid_request", "whole"),
        ({**BRACKET, "stop_loss": {"stop_price": 4_900, "x": 1}}, "invalid_request", "stop_loss"),
        ({**BRACKET, "take_profit": 5_100}, "invalid_request", "take_profit"),
        ({**BRACKET, "order_class": "otoco"}, "invalid_request", "order_class"),
        ({**TRAILING, "trail_percent": True}, "invalid_request", "boolean"),
        ({**TRAILING, "trail_percent": 100}, "invalid_request", "trail_percent"),
        ({**TRAILING, "trail_percent": "NaN"}, "invalid_request", "finite"),
        ({**TRAILING, "trail_price": 0}, "invalid_request", "trail_price"),
        ({**TRAILING, "trail_price": 5, "limit_price": 10}, "invalid_request", "limit_price"),
        ({**TRAILING, "trail_price": 5, "stop_price": 10}, "invalid_request", "stop_price"),
        # the engine's: how they fit together (the same reasons on every API)
        ({k: v for k, v in BRACKET.items() if k != "stop_loss"}, "bad_legs", "stop_loss"),
        ({**BRACKET, "order_class": "oto"}, "bad_legs", "one of them"),
        ({**BRACKET, "take_profit": {"limit_price": 4_800}}, "bad_legs", "take_profit"),
        ({**BRACKET, "order_class": None}, "bad_order_class", "order_class"),
        ({**BRACKET, "time_in_force": "ioc"}, "bad_tif", "gtc or day"),
        (
            {**BRACKET, "side": "sell", "order_class": "oco", "type": "market"}
            | {"limit_price": None},
            "bad_order_class",
            "limit order",
        ),
        ({**LIMIT, "trail_price": 5}, "bad_trail", "trailing_stop"),
        (TRAILING, "bad_trail", "trail_price or trail_percent"),
        ({**TRAILING, "trail_price": 5, "trail_percent": 1}, "bad_trail", "trail_price"),
        ({**TRAILING, "trail_price": 5, "order_class": "bracket"}, "bad_order_class", "simple"),
    ],
)
def test_bad_input_is_a_422_with_its_reason_and_places_nothing(
    client: TestClient,
    symbol: str,
    trader: H,
    body: dict[str, Any],
    reason: str,
    says: str,
) -> None:
    body = {k: v for k, v in body.items() if v is not None or k == "order_class"}
    r = client.post(ORDERS, json={"symbol": symbol, **body}, headers=trader)
    assert r.status_code == 422, r.text
    got = r.json()
    assert got["reason"] == reason and says in got["message"], got
    assert open_ids(client, trader) == []


def test_a_retry_with_the_same_client_order_id_gets_the_same_order(
    client: TestClient, symbol: str, trader: H
) -> None:
    coid = "bracket-" + uuid.uuid4().hex
    body = {"symbol": symbol, **BRACKET, "client_order_id": coid}
    first = client.post(ORDERS, json=body, headers=trader)
    assert first.status_code == 201, first.text
    # the same order, its numbers spelled as strings: the same order back, nothing new
    again = {
        **body, "qty": "1", "limit_price": "5000", "take_profit": {"limit_price": "5100"},
    }  # fmt: skip
    second = client.post(ORDERS, json=again, headers=trader)
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert legs_of(second.json()) == legs_of(first.json())
    pid = first.json()["id"]
    assert sorted(open_ids(client, trader)) == [pid, pid + 1, pid + 2]
    # the same id for other legs is another order: refused
    other = {**body, "stop_loss": {"stop_price": 4_800}}
    r = client.post(ORDERS, json=other, headers=trader)
    assert (r.status_code, r.json()["reason"]) == (422, "client_order_id_reused")
    # a plain order under that id too
    plain = {"symbol": symbol, **LIMIT, "client_order_id": coid}
    r = client.post(ORDERS, json=plain, headers=trader)
    assert (r.status_code, r.json()["reason"]) == (422, "client_order_id_reused")
    assert sorted(open_ids(client, trader)) == [pid, pid + 1, pid + 2]
    client.delete(ORDERS, headers=trader)


def test_websocket_order_entry_places_a_class(client: TestClient, symbol: str, trader: H) -> None:
    def answer(ws: Any, ref: str) -> dict[str, Any]:
        for _ in range(50):
            got = json.loads(ws.receive_text())
            for msg in got if isinstance(got, list) else [got]:  # a frame may hold several
                if msg.get("ref") == ref:
                    return dict(msg)
        raise AssertionError(f"no answer to {ref}")

    with client.websocket_connect("/api/v1/ws/orders", headers=trader) as ws:
        ws.send_text(json.dumps({"action": "submit", "ref": "b", "symbol": symbol, **BRACKET}))
        ack = answer(ws, "b")
        assert ack["type"] == "ack", ack
        bad = {**BRACKET, "take_profit": {"limit_price": 4_800}}
        ws.send_text(json.dumps({"action": "submit", "ref": "x", "symbol": symbol, **bad}))
        assert answer(ws, "x")["reason"] == "bad_legs"
        ws.send_text(json.dumps({"action": "submit", "ref": "t", "symbol": symbol, **TRAILING}))
        assert answer(ws, "t")["reason"] == "bad_trail"
    pid = ack["order_id"]
    got = client.get(f"{ORDERS}/{pid}", headers=trader).json()
    assert got["order_class"] == "bracket" and [g["leg"] for g in got["legs"]] == [
        "take_profit",
        "stop_loss",
    ]
    assert sorted(open_ids(client, trader)) == [pid, pid + 1, pid + 2]
    client.delete(ORDERS, headers=trader)


def test_the_openapi_examples_show_each_class(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["OrderCreate"]
    examples = schema["examples"]
    kinds = {(e.get("order_class"), e.get("type", "limit")) for e in examples}
    for kind in (("bracket", "limit"), ("oto", "market"), ("oco", "limit")):
        assert kind in kinds
    trailing = [e for e in examples if e.get("type") == "trailing_stop"]
    assert {k for e in trailing for k in e if k.startswith("trail_")} == {
        "trail_price",
        "trail_percent",
    }
    for field in ("order_class", "take_profit", "stop_loss", "trail_price", "trail_percent"):
        assert field in schema["properties"]
    for example in examples:
        OrderCreate.model_validate(example)
