"""`/api/v1/orders` and `/api/v1/book` against a real engine (orders are the projection of
its events; idempotency is the engine's).

The module runs on an engine of its own and each test on symbols of its own
(`isolated_gateway`, `symbol`): no test's resting orders can cross another's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import IsolatedGateway
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

H = dict[str, str]
ORDERS = "/api/v1/orders"


@pytest.fixture(scope="module")
def client(isolated_gateway: IsolatedGateway) -> Iterator[TestClient]:
    yield isolated_gateway.client


def limit(symbol: str = "T000", **kw: Any) -> dict[str, Any]:
    """A limit order's body (the default symbol only for bodies the engine never sees)."""
    body = {"symbol": symbol, "side": "buy", "type": "limit", "qty": 10, "limit_price": 50_000}
    body.update(kw)
    return body


def test_submit_read_replace_cancel(client: TestClient, symbol: str, trader: H) -> None:
    r = client.post(ORDERS, json=limit(symbol, qty="10", limit_price="40000"), headers=trader)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "new" and order["qty"] == 10 and order["limit_price"] == 40_000
    oid = order["id"]

    got = client.get(f"{ORDERS}/{oid}", headers=trader).json()
    assert (got["id"], got["status"], got["open_qty"]) == (oid, "new", 10)

    r = client.patch(f"{ORDERS}/{oid}", json={"qty": 4, "price": 40_001}, headers=trader)
    assert r.status_code == 200, r.text
    assert (r.json()["limit_price"], r.json()["open_qty"]) == (40_001, 4)
    assert client.get(f"{ORDERS}/{oid}", headers=trader).json()["open_qty"] == 4

    r = client.delete(f"{ORDERS}/{oid}", headers=trader)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reason"]) == ("canceled", "user")
    assert client.get(f"{ORDERS}/{oid}", headers=trader).json()["status"] == "canceled"
    r = client.delete(f"{ORDERS}/{oid}", headers=trader)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_order"


def test_fills_between_two_accounts(
    client: TestClient, symbol: str, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    maker, taker = headers(make_key()), headers(make_key())
    ask = client.post(
        ORDERS, json=limit(symbol, side="sell", qty=5, limit_price=77_777), headers=maker
    ).json()
    r = client.post(
        ORDERS, json={"symbol": symbol, "side": "buy", "type": "market", "qty": 5}, headers=taker
    )
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["filled_qty"]) == ("filled", 5)
    assert r.json()["avg_fill_price"] == 77_777
    # the maker's order was filled by another account's order: the projection knows
    got = client.get(f"{ORDERS}/{ask['id']}", headers=maker).json()
    assert (got["status"], got["open_qty"], got["filled_qty"]) == ("filled", 0, 5)


def test_accounts_are_isolated(
    client: TestClient, symbol: str, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    alice, bob = headers(make_key()), headers(make_key())
    oid = client.post(ORDERS, json=limit(symbol, limit_price=30_000), headers=alice).json()["id"]
    for r in (
        client.get(f"{ORDERS}/{oid}", headers=bob),
        client.delete(f"{ORDERS}/{oid}", headers=bob),
        client.patch(f"{ORDERS}/{oid}", json={"qty": 1}, headers=bob),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["reason"] == "unknown_order"
    assert client.delete(ORDERS, headers=bob).json() == {"canceled": []}
    assert client.get(f"{ORDERS}/{oid}", headers=alice).json()["status"] == "new"
    # a second key of the same account sees the order
    same = headers(make_key(client.get(f"{ORDERS}/{oid}", headers=alice).json()["account"]))
    assert client.get(f"{ORDERS}/{oid}", headers=same).status_code == 200


def test_cancel_all_cancels_only_the_callers_orders(
    client: TestClient, symbol: str, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    alice, bob = headers(make_key()), headers(make_key())
    mine = [
        client.post(ORDERS, json=limit(symbol, limit_price=20_000 + i), headers=alice).json()["id"]
        for i in range(3)
    ]
    theirs = client.post(ORDERS, json=limit(symbol, limit_price=20_000), headers=bob).json()["id"]
    r = client.delete(ORDERS, headers=alice)
    assert r.status_code == 200, r.text
    assert sorted(o["id"] for o in r.json()["canceled"]) == mine
    assert all(o["status"] == "canceled" for o in r.json()["canceled"])
    assert client.get(f"{ORDERS}/{theirs}", headers=bob).json()["status"] == "new"
    # by symbol: one the engine does not trade is refused with its reason, nothing canceled
    r = client.delete(ORDERS, params={"symbol": "NOPE"}, headers=bob)
    assert r.status_code == 422 and r.json()["reason"] == "unknown_symbol", r.text
    assert client.get(f"{ORDERS}/{theirs}", headers=bob).json()["status"] == "new"
    r = client.delete(ORDERS, params={"symbol": symbol}, headers=bob)
    assert [o["id"] for o in r.json()["canceled"]] == [theirs]
    # an account with no orders cancels nothing, and that is not an error
    assert client.delete(ORDERS, params={"symbol": symbol}, headers=bob).json() == {"canceled": []}


def test_client_order_id_is_idempotent(client: TestClient, symbol: str, trader: H) -> None:
    coid = "retry-" + uuid.uuid4().hex
    first = client.post(
        ORDERS, json=limit(symbol, limit_price=10_000, client_order_id=coid), headers=trader
    )
    again = client.post(
        ORDERS, json=limit(symbol, limit_price=10_000, client_order_id=coid), headers=trader
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["client_order_id"] == coid
    # the engine got one order: cancel-all finds exactly one
    assert [o["id"] for o in client.delete(ORDERS, headers=trader).json()["canceled"]] == [
        first.json()["id"]
    ]
    other = client.post(
        ORDERS, json=limit(symbol, limit_price=10_001, client_order_id=coid), headers=trader
    )
    assert other.status_code == 422 and other.json()["reason"] == "client_order_id_reused"


def test_client_order_id_is_per_account(
    client: TestClient, symbol: str, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    coid = "shared-" + uuid.uuid4().hex
    a = client.post(
        ORDERS,
        json=limit(symbol, client_order_id=coid, limit_price=100),
        headers=headers(make_key()),
    )
    b = client.post(
        ORDERS,
        json=limit(symbol, client_order_id=coid, limit_price=100),
        headers=headers(make_key()),
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty": True}, "qty"),
        ({"qty": False}, "qty"),
        ({"qty": -5}, "qty"),
        ({"qty": 0}, "qty"),
        ({"qty": "ten"}, "qty"),
        ({"qty": "1.5"}, "qty"),
        ({"qty": None}, "qty"),
        ({"limit_price": True}, "limit_price"),
        ({"limit_price": "abc"}, "limit_price"),
        ({"limit_price": -1}, "limit_price"),
        ({"limit_price": "NaN"}, "limit_price"),
        ({"stop_price": 5}, ""),
        ({"side": "long"}, "side"),
        ({"type": "trailing"}, "type"),
        ({"time_in_force": "forever"}, "time_in_force"),
        ({"post_only": "yes"}, "post_only"),
        ({"leverage": 10}, "leverage"),
        ({"price": 5}, ""),  # limit_price and price together
        ({"symbol": ""}, "symbol"),
        ({"qty": 2**70}, "qty"),
    ],
)
def test_bad_input_is_422_with_a_reason(
    client: TestClient, trader: H, change: dict[str, Any], field: str
) -> None:
    r = client.post(ORDERS, json=limit(**change), headers=trader)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "invalid_request" and body["message"]
    assert body["errors"][0]["field"] == field


def test_bad_json_and_bad_replace_are_422(client: TestClient, symbol: str, trader: H) -> None:
    r = client.post(
        ORDERS, content=b"{not json", headers={**trader, "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["reason"] == "invalid_request"
    oid = client.post(ORDERS, json=limit(symbol, limit_price=1_000), headers=trader).json()["id"]
    for body in ({}, {"qty": True}, {"qty": 1, "extra": 1}):
        r = client.patch(f"{ORDERS}/{oid}", json=body, headers=trader)
        assert r.status_code == 422 and r.json()["reason"] == "invalid_request", r.text
    r = client.get(f"{ORDERS}/abc", headers=trader)
    assert r.status_code == 422 and r.json()["reason"] == "invalid_request"


def test_engine_refusals_keep_the_engines_reason(
    client: TestClient,
    symbol: str,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
    run: Callable[..., Any],
) -> None:
    key = make_key()
    h = headers(key)
    r = client.post(ORDERS, json=limit("NOPE"), headers=h)
    assert r.status_code == 422 and r.json()["reason"] == "unknown_symbol", r.text
    r = client.get(f"{ORDERS}/999999999", headers=h)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_order"
    stop = {"symbol": symbol, "side": "buy", "type": "stop", "qty": 1, "stop_price": 10**9}
    held = client.post(ORDERS, json=stop, headers=h).json()
    assert held["status"] == "held"
    assert client.get(f"{ORDERS}/{held['id']}", headers=h).json()["status"] == "held"
    engine = client.app.state.engine  # type: ignore[attr-defined]
    run(engine.control, "kill", account=key.key.account)
    try:
        r = client.post(ORDERS, json=limit(symbol), headers=h)
        assert r.status_code == 403 and r.json()["reason"] == "kill_switch", r.text
        # the kill canceled the held stop
        got = client.get(f"{ORDERS}/{held['id']}", headers=h).json()
        assert got["status"] == "canceled"
    finally:
        run(engine.control, "revive", account=key.key.account)
    assert client.post(ORDERS, json=limit(symbol), headers=h).status_code == 201


def test_book(client: TestClient, symbol: str, trader: H) -> None:
    for price, qty in ((90_000, 2), (90_000, 3), (89_990, 1)):
        body = limit(symbol, limit_price=price, qty=qty)
        assert client.post(ORDERS, json=body, headers=trader).status_code == 201
    r = client.get(f"/api/v1/book/{symbol}", params={"depth": 50}, headers=trader)
    assert r.status_code == 200, r.text
    bids = r.json()["bids"]
    assert {"price": 90_000, "qty": 5, "orders": 2} in bids
    assert [b["price"] for b in bids] == sorted((b["price"] for b in bids), reverse=True)
    assert (
        client.get(f"/api/v1/book/{symbol}", params={"depth": 1}, headers=trader).json()["bids"][0][
            "price"
        ]
        >= 90_000
    )
    r = client.get("/api/v1/book/NOPE", headers=trader)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_symbol"
    r = client.get(f"/api/v1/book/{symbol}", params={"depth": 0}, headers=trader)
    assert r.status_code == 422
    client.delete(ORDERS, headers=trader)


def test_engine_down_is_503(
    client: TestClient,
    symbol: str,
    settings: GatewaySettings,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
) -> None:
    h = headers(make_key())
    with socket_free() as port:
        down = settings.model_copy(
            update={"engine_order_entry": f"tcp://127.0.0.1:{port}", "engine_timeout": 0.3}
        )
    with TestClient(create_app(down)) as c:
        coid = "down-" + uuid.uuid4().hex
        for r in (
            c.post(ORDERS, json=limit(symbol, client_order_id=coid), headers=h),
            c.delete(f"{ORDERS}/1", headers=h),
            c.patch(f"{ORDERS}/1", json={"qty": 1}, headers=h),
            c.delete(ORDERS, headers=h),
            c.get(f"/api/v1/book/{symbol}", headers=h),
        ):
            assert r.status_code == 503, r.text
            assert r.json()["reason"] == "engine_unavailable" and r.json()["message"]
        r = c.get("/api/v1/ready")
        assert r.status_code == 503 and r.json() == {"status": "not_ready"}
        assert c.get("/api/v1/health").status_code == 200
    # nothing was kept of the refused submission: the same client_order_id works later
    r = client.post(ORDERS, json=limit(symbol, client_order_id=coid), headers=h)
    assert r.status_code == 201, r.text
    client.delete(ORDERS, headers=h)


def test_concurrent_retries_make_one_order(client: TestClient, symbol: str, trader: H) -> None:
    coid = "race-" + uuid.uuid4().hex
    body = limit(symbol, limit_price=12_345, client_order_id=coid)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post(ORDERS, json=body, headers=trader), range(8)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 7 + [201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(client.delete(ORDERS, headers=trader).json()["canceled"]) == 1


class socket_free:
    """A loopback port nobody listens on (bound while inside, released after)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_form_post_is_told_to_send_json(client: TestClient, trader: H) -> None:
    """curl -d without a Content-Type posts a form: the 422 says what to send."""
    form = {**trader, "content-type": "application/x-www-form-urlencoded"}
    r = client.post(ORDERS, content=b'{"symbol":"GOOG"}', headers=form)
    assert r.status_code == 422
    assert r.json()["reason"] == "invalid_request"
    assert "Content-Type: application/json" in r.json()["message"]
