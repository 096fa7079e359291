"""`POST /api/v1/orders` is served by the lean `SubmitRoute` and answers exactly as the
FastAPI route does: the same statuses and JSON for orders, retries, refusals and every
kind of bad input (which the lean route hands over to the FastAPI route)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.routes import orders
from tickplane.api.settings import GatewaySettings

H = dict[str, str]
ORDERS = "/api/v1/orders"
# what differs between two otherwise identical orders
VARYING = ("id", "seq", "created_at", "updated_at", "client_order_id")


@pytest.fixture(scope="module")
def fastapi_only(settings: GatewaySettings) -> Iterator[TestClient]:
    """The gateway without the lean route: every POST goes through FastAPI."""
    app = create_app(settings)
    app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, orders.SubmitRoute)]
    with TestClient(app) as c:
        yield c


@pytest.fixture(autouse=True)
def no_orders_left(client: TestClient, trader: H) -> Iterator[None]:
    """Cancel what a test left resting: other tests trade in the same books."""
    yield
    assert client.delete(ORDERS, headers=trader).status_code == 200


@pytest.fixture
def lean_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the lean route took each POST it saw (False: handed over)."""
    seen: list[bool] = []
    original = orders._order

    def spy(body: bytes, content_type: bytes | None) -> Any:
        order = original(body, content_type)
        seen.append(order is not None)
        return order

    monkeypatch.setattr(orders, "_order", spy)
    return seen


def _same(a: Any, b: Any) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    ja, jb = a.json(), b.json()
    if isinstance(ja, dict) and "id" in ja:
        for k in VARYING:
            ja.pop(k, None), jb.pop(k, None)
    assert ja == jb
    assert a.headers.get("retry-after") == b.headers.get("retry-after")


def test_a_valid_order_is_taken_by_the_lean_route(
    client: TestClient,
    fastapi_only: TestClient,
    trader: H,
    lean_taken: list[bool],
) -> None:
    body = {"symbol": "GOOG", "side": "buy", "type": "limit", "qty": "3", "limit_price": 1}
    lean = client.post(ORDERS, json={**body, "time_in_force": "gtc"}, headers=trader)
    assert lean_taken == [True]
    plain = fastapi_only.post(ORDERS, json={**body, "time_in_force": "gtc"}, headers=trader)
    assert lean_taken == [True]  # the FastAPI-only app never reached the lean route
    assert lean.status_code == 201, lean.text
    _same(lean, plain)
    assert lean.headers["content-type"] == "application/json"
    # the lean answer is what a read shows
    assert client.get(f"{ORDERS}/{lean.json()['id']}", headers=trader).json() == lean.json()


def test_retries_and_engine_refusals_answer_alike(
    client: TestClient, fastapi_only: TestClient, trader: H
) -> None:
    for c in (client, fastapi_only):
        cid = f"r-{uuid.uuid4().hex[:12]}"
        body = {"symbol": "GOOG", "side": "sell", "qty": 1, "price": 99_999_000}
        body["client_order_id"] = cid
        first = c.post(ORDERS, json=body, headers=trader)
        retry = c.post(ORDERS, json=body, headers=trader)
        assert (first.status_code, retry.status_code) == (201, 200)
        assert retry.json()["id"] == first.json()["id"]
        reused = c.post(ORDERS, json={**body, "qty": 2}, headers=trader)
        assert (reused.status_code, reused.json()["reason"]) == (422, "client_order_id_reused")
    unknown = {"symbol": "NOPE", "side": "buy", "qty": 1, "limit_price": 1}
    _same(
        client.post(ORDERS, json=unknown, headers=trader),
        fastapi_only.post(ORDERS, json=unknown, headers=trader),
    )


VALID = b'{"symbol":"GOOG","side":"buy","qty":1,"limit_price":5}'
BAD_BODIES: list[tuple[str, bytes, str | None]] = [
    (
        "no type price",
        b'{"symbol":"GOOG","side":"buy","type":"market","qty":1,"limit_price":5}',
        None,
    ),
    ("fraction", b'{"symbol":"GOOG","side":"buy","qty":1.5,"limit_price":5}', None),
    ("boolean", b'{"symbol":"GOOG","side":"buy","qty":true,"limit_price":5}', None),
    ("extra", b'{"symbol":"GOOG","side":"buy","qty":1,"limit_price":5,"x":1}', None),
    ("both prices", b'{"symbol":"GOOG","side":"buy","qty":1,"limit_price":5,"price":5}', None),
    ("NaN", b'{"symbol":"GOOG","side":"buy","qty":NaN,"limit_price":5}', None),
    ("huge", b'{"symbol":"GOOG","side":"buy","qty":1,"limit_price":' + b"9" * 30 + b"}", None),
    ("array", b"[1, 2]", None),
    ("empty", b"", None),
    ("not json", b"{nope", None),
    ("text", VALID, "text/plain"),
    (
        "charset",
        b'{"symbol":"GOOG","side":"buy","qty":1,"limit_price":5}',
        "application/json; charset=utf-8",
    ),
]


@pytest.mark.parametrize(("name", "body", "ctype"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_what_the_lean_route_does_not_take_answers_as_fastapi_does(
    client: TestClient,
    fastapi_only: TestClient,
    trader: H,
    lean_taken: list[bool],
    name: str,
    body: bytes,
    ctype: str | None,
) -> None:
    h = {**trader, "content-type": ctype or "application/json"}
    lean = client.post(ORDERS, content=body, headers=h)
    assert lean_taken == [False]
    plain = fastapi_only.post(ORDERS, content=body, headers=h)
    if ctype and ctype.startswith("application/json;"):  # JSON all the same: an order
        assert lean.status_code == plain.status_code == 201, lean.text
        return
    assert lean.status_code in (422, 400), lean.text
    _same(lean, plain)


@pytest.mark.parametrize("which", ["none", "wrong secret", "unknown id", "revoked"])
def test_keys_are_checked_alike(
    client: TestClient,
    fastapi_only: TestClient,
    make_key: Callable[..., keys.NewKey],
    which: str,
) -> None:
    key = make_key()
    h = {"APCA-API-KEY-ID": key.key.key_id, "APCA-API-SECRET-KEY": key.secret}
    if which == "none":
        h = {}
    elif which == "wrong secret":
        h["APCA-API-SECRET-KEY"] += "x"
    elif which == "unknown id":
        h["APCA-API-KEY-ID"] = "TP" + "A" * 18
    else:
        store: keys.KeyStore = client.app.state.keys  # type: ignore[attr-defined]
        assert client.portal is not None
        assert client.portal.call(store.revoke, key.key.key_id) is not None
    body = {"symbol": "GOOG", "side": "buy", "qty": 1, "limit_price": 1}
    lean = client.post(ORDERS, json=body, headers=h)
    plain = fastapi_only.post(ORDERS, json=body, headers=h)
    assert lean.status_code == 401, lean.text
    _same(lean, plain)
