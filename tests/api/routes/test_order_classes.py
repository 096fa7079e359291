"""Order classes in the native API: `/api/v1/orders` shows a bracket's, OTO's and OCO's
class and legs, and a trailing stop's trail, for orders placed through the engine (the
Alpaca-compatible API places them; the projection keeps them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import IsolatedGateway
from tickplane.core import wire

H = dict[str, str]
ORDERS = "/api/v1/orders"


@pytest.fixture(scope="module")
def client(isolated_gateway: IsolatedGateway) -> Iterator[TestClient]:
    yield isolated_gateway.client


def placed(
    run: Callable[..., Any],
    client: TestClient,
    account: str,
    *a: Any,
    seen_by: str | None = None,
    **kw: Any,
) -> int:
    """Submit through the engine and note the write for the reads of the account (and
    of `seen_by`, whose orders it changes), as the Alpaca API does; the order's id."""
    state = client.app.state  # type: ignore[attr-defined]
    reply = run(state.engine.submit, account, *a, **kw)
    assert isinstance(reply, wire.Ack) and reply.order_id is not None, reply
    for reader in {account, seen_by or account}:
        state.projection.note_write(reader, reply.last_seq)
    return int(reply.order_id)


def replaced(
    run: Callable[..., Any], client: TestClient, account: str, order_id: int, **change: Any
) -> None:
    """Replace through the engine (as the Alpaca API does) and note the write."""
    state = client.app.state  # type: ignore[attr-defined]
    reply = run(state.engine.replace, account, order_id, **change)
    assert isinstance(reply, wire.Ack), reply
    state.projection.note_write(account, reply.last_seq)


def legs_of(order: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            leg["id"], leg["leg"], leg["type"], leg["side"], leg["limit_price"],
            leg["stop_price"], leg["status"], leg["parent_id"], leg["order_class"],
        )
        for leg in order["legs"]
    ]  # fmt: skip


def test_a_bracket_shows_its_class_and_legs(
    client: TestClient,
    symbol: str,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
    run: Callable[..., Any],
) -> None:
    key = make_key()
    h, account = headers(key), key.key.account
    pid = placed(
        run, client, account, symbol, "buy", "limit", 10, price=5_000, order_class="bracket",
        take_profit=wire.TakeProfit(5_100), stop_loss=wire.StopLoss(4_900, 4_890),
    )  # fmt: skip
    got = client.get(f"{ORDERS}/{pid}", headers=h).json()
    assert (got["order_class"], got["parent_id"], got["leg"]) == ("bracket", None, None)
    assert legs_of(got) == [
        (pid + 1, "take_profit", "limit", "sell", 5_100, None, "held", pid, "bracket"),
        (pid + 2, "stop_loss", "stop_limit", "sell", 4_890, 4_900, "held", pid, "bracket"),
    ]
    # a leg read on its own names its parent and has no legs; the list shows all three
    leg = client.get(f"{ORDERS}/{pid + 1}", headers=h).json()
    assert (leg["parent_id"], leg["leg"], leg["legs"]) == (pid, "take_profit", None)
    listed = client.get(ORDERS, headers=h).json()["orders"]
    assert [o["id"] for o in listed] == [pid + 2, pid + 1, pid]
    assert legs_of(listed[2]) == legs_of(got)
    # the entry fills 4: the take-profit works 4 in the book, the stop-loss stays held
    taker = make_key()
    placed(run, client, taker.key.account, symbol, "sell", "limit", 4, price=5_000, seen_by=account)
    got = client.get(f"{ORDERS}/{pid}", headers=h).json()
    assert (got["status"], got["filled_qty"]) == ("partially_filled", 4)
    assert [(g["status"], g["open_qty"]) for g in got["legs"]] == [("new", 4), ("held", 4)]
    # cancel-all answers with the parent (its legs in it) and the legs
    canceled = client.delete(ORDERS, headers=h).json()["canceled"]
    parent = next(o for o in canceled if o["id"] == pid)
    assert parent["order_class"] == "bracket" and [g["id"] for g in parent["legs"]] == [
        pid + 1,
        pid + 2,
    ]


def test_oto_and_oco_show_their_class_and_leg(
    client: TestClient,
    symbol: str,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
    run: Callable[..., Any],
) -> None:
    key = make_key()
    h, account = headers(key), key.key.account
    oto = placed(
        run, client, account, symbol, "buy", "limit", 3, price=2_000, order_class="oto",
        stop_loss=wire.StopLoss(1_900),
    )  # fmt: skip
    got = client.get(f"{ORDERS}/{oto}", headers=h).json()
    assert got["order_class"] == "oto"
    assert legs_of(got) == [(oto + 1, "stop_loss", "stop", "sell", None, 1_900, "held", oto, "oto")]
    oco = placed(
        run, client, account, symbol, "sell", "limit", 2, price=3_000, order_class="oco",
        take_profit=wire.TakeProfit(3_000), stop_loss=wire.StopLoss(1_500),
    )  # fmt: skip
    got = client.get(f"{ORDERS}/{oco}", headers=h).json()
    assert (got["order_class"], got["type"], got["limit_price"]) == ("oco", "limit", 3_000)
    # an OCO's stop-loss works at once (held only until its stop is reached)
    assert legs_of(got) == [(oco + 1, "stop_loss", "stop", "sell", None, 1_500, "held", oco, "oco")]
    assert got["legs"][0]["open_qty"] == 2
    client.delete(ORDERS, headers=h)


def test_a_trailing_stop_shows_its_trail(
    client: TestClient,
    symbol: str,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
    run: Callable[..., Any],
) -> None:
    key = make_key()
    h, account = headers(key), key.key.account
    a, b = make_key().key.account, make_key().key.account

    def cross(price: int) -> None:
        placed(run, client, a, symbol, "sell", "limit", 1, price=price)
        placed(run, client, b, symbol, "buy", "limit", 1, price=price, seen_by=account)

    cross(1_000)
    tid = placed(run, client, account, symbol, "sell", "trailing_stop", 2, trail_price=5)
    got = client.get(f"{ORDERS}/{tid}", headers=h).json()
    assert (got["type"], got["order_class"], got["trail_price"], got["trail_percent"]) == (
        "trailing_stop",
        "simple",
        5,
        None,
    )
    assert (got["stop_price"], got["hwm"], got["legs"]) == (995, None, None)
    cross(1_010)  # the watermark rises: the stop follows
    got = client.get(f"{ORDERS}/{tid}", headers=h).json()
    assert (got["stop_price"], got["hwm"], got["status"]) == (1_005, 1_010, "held")
    pct = placed(run, client, account, symbol, "sell", "trailing_stop", 1, trail_percent=1.5)
    listed = {o["id"]: o for o in client.get(ORDERS, headers=h).json()["orders"]}
    assert (listed[pct]["trail_price"], listed[pct]["trail_percent"]) == (None, 1.5)
    # a replaced trail shows (OrderReplaced carries it), open and then closed
    replaced(run, client, account, tid, trail_price=8)
    replaced(run, client, account, pct, trail_percent=2.25)
    got = client.get(f"{ORDERS}/{tid}", headers=h).json()
    assert (got["trail_price"], got["trail_percent"], got["stop_price"]) == (8, None, 1_002)
    listed = {o["id"]: o for o in client.get(ORDERS, headers=h).json()["orders"]}
    assert (listed[pct]["trail_price"], listed[pct]["trail_percent"]) == (None, 2.25)
    client.delete(ORDERS, headers=h)
    got = client.get(f"{ORDERS}/{tid}", headers=h).json()
    assert (got["status"], got["trail_price"], got["trail_percent"]) == ("canceled", 8, None)


def test_patch_replaces_a_trail_and_a_stop_loss_legs_stop(
    client: TestClient,
    symbol: str,
    make_key: Callable[..., Any],
    headers: Callable[..., H],
    run: Callable[..., Any],
) -> None:
    key = make_key()
    h, account = headers(key), key.key.account
    tid = placed(run, client, account, symbol, "sell", "trailing_stop", 2, trail_price=5)
    r = client.patch(f"{ORDERS}/{tid}", json={"trail_price": 7, "qty": 3}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["trail_price"], r.json()["qty"]) == (7, 3)
    # a trail of the other kind, or a price, is the engine's refusal; a bad percent the
    # schema's: nothing changes either way
    for body, reason in (
        ({"trail_percent": "1.5"}, "bad_replace"),
        ({"limit_price": 900}, "bad_replace"),
        ({"trail_percent": 100}, "invalid_request"),
        ({"trail_price": 0}, "invalid_request"),
    ):
        r = client.patch(f"{ORDERS}/{tid}", json=body, headers=h)
        assert r.status_code == 422 and r.json()["reason"] == reason, (body, r.text)
    got = client.get(f"{ORDERS}/{tid}", headers=h).json()
    assert (got["trail_price"], got["trail_percent"], got["qty"]) == (7, None, 3)
    # a bracket's held stop-loss takes a new stop price (its take-profit has none)
    pid = placed(
        run, client, account, symbol, "buy", "limit", 1, price=500, order_class="bracket",
        take_profit=wire.TakeProfit(600), stop_loss=wire.StopLoss(450),
    )  # fmt: skip
    r = client.patch(f"{ORDERS}/{pid + 2}", json={"stop_price": 440}, headers=h)
    assert r.status_code == 200 and r.json()["stop_price"] == 440, r.text
    r = client.patch(f"{ORDERS}/{pid + 1}", json={"stop_price": 590}, headers=h)
    assert r.status_code == 422 and r.json()["reason"] == "bad_replace", r.text
    # a stop moved onto its take-profit's side is the submission's refusal, bad_legs
    r = client.patch(f"{ORDERS}/{pid + 2}", json={"stop_price": 600}, headers=h)
    assert r.status_code == 422 and r.json()["reason"] == "bad_legs", r.text
    assert client.get(f"{ORDERS}/{pid + 2}", headers=h).json()["stop_price"] == 440
    client.delete(ORDERS, headers=h)


def test_the_openapi_examples_show_each_kind(client: TestClient) -> None:
    """The OpenAPI's order examples: a plain order (no class), a bracket with its
    legs, a trailing stop with its trail; each a valid answer."""
    from tickplane.api.schemas import OrderPublic

    schema = client.get("/openapi.json").json()["components"]["schemas"]["OrderPublic"]
    examples = schema["examples"]
    assert [e.get("order_class") for e in examples] == [None, "bracket", "simple"]
    assert [leg["leg"] for leg in examples[1]["legs"]] == ["take_profit", "stop_loss"]
    assert examples[2]["type"] == "trailing_stop" and examples[2]["trail_price"] == 100
    for field in ("order_class", "parent_id", "leg", "legs", "trail_price", "hwm"):
        assert field in schema["properties"]
    # (the OpenAPI leaves out the examples' nulls: validate the ones the schema holds)
    extra = OrderPublic.model_config["json_schema_extra"]
    assert isinstance(extra, dict)
    for example in extra["examples"]:  # type: ignore[union-attr]
        OrderPublic.model_validate(example)
