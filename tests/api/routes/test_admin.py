"""Admin routes: kill/revive an account or the engine, halt/resume a symbol; admin
scope only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

H = dict[str, str]
V1 = "/api/v1"
ADMIN_ROUTES = [
    "/admin/accounts/someone/kill",
    "/admin/accounts/someone/revive",
    "/admin/engine/kill",
    "/admin/engine/revive",
    "/admin/symbols/GOOG/halt",
    "/admin/symbols/GOOG/resume",
]
ORDER = {"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 1, "limit_price": 1_000}


@pytest.mark.parametrize("path", ADMIN_ROUTES)
def test_a_trader_key_gets_403(client: TestClient, trader: H, path: str) -> None:
    r = client.post(V1 + path, headers=trader)
    assert r.status_code == 403 and r.json()["reason"] == "admin_scope_required"


def test_kill_and_revive_an_account(
    client: TestClient, admin: H, make_key: Callable[..., Any], headers: Callable[..., H]
) -> None:
    key = make_key()
    h = headers(key)
    resting = client.post(f"{V1}/orders", json=ORDER, headers=h).json()
    account = key.key.account
    r = client.post(f"{V1}/admin/accounts/{account}/kill", headers=admin)
    assert r.status_code == 200, r.text
    events = [(e["type"], e.get("account"), e.get("engaged")) for e in r.json()["events"]]
    assert ("kill_switch", account, True) in events
    assert client.get(f"{V1}/account", headers=h).json()["trading_blocked"] is True
    assert client.get(f"{V1}/orders/{resting['id']}", headers=h).json()["status"] == "canceled"
    r = client.post(f"{V1}/orders", json=ORDER, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "kill_switch"
    assert client.post(f"{V1}/admin/accounts/{account}/revive", headers=admin).status_code == 200
    assert client.get(f"{V1}/account", headers=h).json()["trading_blocked"] is False
    assert client.post(f"{V1}/orders", json=ORDER, headers=h).status_code == 201
    client.delete(f"{V1}/orders", headers=h)
    r = client.post(f"{V1}/admin/accounts/bad name/kill", headers=admin)
    assert r.status_code == 422


def test_kill_and_revive_the_engine(client: TestClient, admin: H, trader: H) -> None:
    try:
        assert client.post(f"{V1}/admin/engine/kill", headers=admin).status_code == 200
        r = client.post(f"{V1}/orders", json=ORDER, headers=trader)
        assert r.status_code == 403 and r.json()["reason"] == "kill_switch"
    finally:
        assert client.post(f"{V1}/admin/engine/revive", headers=admin).status_code == 200
    assert client.post(f"{V1}/orders", json=ORDER, headers=trader).status_code == 201
    client.delete(f"{V1}/orders", headers=trader)


def test_halt_and_resume_a_symbol(client: TestClient, admin: H, trader: H) -> None:
    try:
        r = client.post(f"{V1}/admin/symbols/GOOG/halt", json={"seconds": 60}, headers=admin)
        assert r.status_code == 200, r.text
        assert [e["type"] for e in r.json()["events"]] == ["halted"]
        r = client.post(f"{V1}/orders", json=ORDER, headers=trader)
        assert r.status_code == 403 and r.json()["reason"] == "symbol_halted"
        halted = {
            s["symbol"]: s["halted"] for s in client.get(f"{V1}/symbols", headers=trader).json()
        }
        assert halted["GOOG"] is True and halted["AAPL"] is False
    finally:
        r = client.post(f"{V1}/admin/symbols/GOOG/resume", headers=admin)
        assert r.status_code == 200, r.text
    assert client.post(f"{V1}/orders", json=ORDER, headers=trader).status_code == 201
    client.delete(f"{V1}/orders", headers=trader)
    r = client.post(f"{V1}/admin/symbols/NOPE/halt", headers=admin)
    assert r.status_code == 404 and r.json()["reason"] == "unknown_symbol"
    r = client.post(f"{V1}/admin/symbols/GOOG/halt", json={"seconds": -1}, headers=admin)
    assert r.status_code == 422
