"""The terminal's page logic through Streamlit's AppTest, against a real gateway (or a
port where nothing listens): login, the gateway-down banner, ticket validation, the
cancel and replace flow."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import tickplane.ui
from tests.cli.running import free_ports
from tests.ui.conftest import Platform, order

APP = str(Path(tickplane.ui.__file__).resolve().parent / "app.py")
PAGES = ["Trade", "Orders", "Executions", "Positions", "Strategies", "Monitoring"]


def _app(
    gateway: str,
    monkeypatch: pytest.MonkeyPatch,
    key: dict[str, str] | None = None,
    engine_url: str = "",
) -> AppTest:
    monkeypatch.setenv("TICKPLANE_UI_GATEWAY_URL", gateway)
    monkeypatch.setenv("TICKPLANE_UI_ENGINE_URL", engine_url)
    at = AppTest.from_file(APP, default_timeout=30)
    if key is not None:  # logged in already, as after the login form
        at.session_state["key_id"] = key["key_id"]
        at.session_state["secret"] = key["secret"]
    return at


def _texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


_accounts = itertools.count(1)


@pytest.fixture()
def alice(ui_platform: Platform) -> Iterator[dict[str, str]]:
    """A fresh account per test (a trader with no history), its key."""
    key = ui_platform.key(f"alice{next(_accounts)}")
    yield key
    with ui_platform.http(key) as gw:
        gw.delete("/api/v1/orders")


def test_gateway_down_is_a_banner_on_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = f"http://127.0.0.1:{free_ports(1)}"
    at = _app(nowhere, monkeypatch)
    at.run()
    at.text_input(key="login_key_id").input("TPXXXX")
    at.text_input(key="login_secret").input("secret")
    at.button(key="login_submit").click().run()
    assert not at.exception
    assert "Cannot log in" in _texts(at, "error")
    assert "key_id" not in at.session_state

    at = _app(nowhere, monkeypatch, {"key_id": "TPXXXX", "secret": "s"})
    for page in PAGES:
        at.run() if page == "Trade" else at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, page
        errors = _texts(at, "error")
        assert "Gateway unavailable" in errors, (page, errors)
        assert "Traceback" not in errors


def test_login_keeps_a_good_key_and_refuses_a_bad_one(
    ui_platform: Platform, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(ui_platform.gateway, monkeypatch)
    at.run()
    at.text_input(key="login_key_id").input(alice["key_id"])
    at.text_input(key="login_secret").input("not-the-secret")
    at.button(key="login_submit").click().run()
    assert "refused this key" in _texts(at, "error")
    assert "key_id" not in at.session_state
    at.text_input(key="login_secret").input(alice["secret"])
    at.button(key="login_submit").click().run()
    assert not at.exception
    assert at.session_state["account"].startswith("alice")
    assert at.sidebar.radio(key="page").value == "Trade"

    at.sidebar.button(key="logout").click().run()
    assert not at.exception
    assert "key_id" not in at.session_state and "secret" not in at.session_state
    assert at.text_input(key="login_secret").value == ""


def test_the_ticket_refuses_bad_input_and_sends_exact_ticks(
    ui_platform: Platform, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _app(ui_platform.gateway, monkeypatch, alice)
    at.run()
    assert not at.exception
    at.text_input(key="ticket_qty").input("1.5")
    at.text_input(key="ticket_limit").input("1.005")
    at.button(key="ticket_send").click().run()
    errors = _texts(at, "error")
    assert "Not sent" in errors
    assert "lot size 1" in errors and "tick size 0.01" in errors
    with ui_platform.http(alice) as gw:
        assert gw.get("/api/v1/orders", params={"status": "all"}).json()["orders"] == []

    at.text_input(key="ticket_qty").input("7")
    at.text_input(key="ticket_limit").input("1.01")
    at.button(key="ticket_send").click().run()
    assert not at.exception
    sent = _texts(at, "success")
    assert "buy 7 GOOG limit 1.01 gtc" in sent
    with ui_platform.http(alice) as gw:
        (placed,) = gw.get("/api/v1/orders").json()["orders"]
    assert f"order #{placed['id']}" in sent
    assert (placed["qty"], placed["limit_price"], placed["side"]) == (7, 101, "buy")


def test_cancel_and_replace_in_place(
    ui_platform: Platform, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ui_platform.http(alice) as gw:
        first = gw.post("/api/v1/orders", json=order("GOOG", "buy", 4, 150)).json()["id"]
        second = gw.post("/api/v1/orders", json=order("GOOG", "buy", 6, 160)).json()["id"]
    at = _app(ui_platform.gateway, monkeypatch, alice)
    at.session_state["page"] = "Orders"
    at.run()
    assert not at.exception
    pick = at.selectbox(key="order_pick")
    assert set(pick.options) >= {
        f"#{first} buy 4 GOOG limit @ 1.50",
        f"#{second} buy 6 GOOG limit @ 1.60",
    }

    pick.set_value(second)
    at.text_input(key="order_new_price").input("1.55")
    at.text_input(key="order_new_qty").input("5")
    at.button(key="order_replace").click().run()
    assert not at.exception
    assert f"Replaced #{second}: 5 @ 1.55" in _texts(at, "success")

    at.selectbox(key="order_pick").set_value(first)
    at.button(key="order_cancel").click().run()
    assert not at.exception
    assert f"Canceled #{first}" in _texts(at, "success")
    with ui_platform.http(alice) as gw:
        assert gw.get(f"/api/v1/orders/{first}").json()["status"] == "canceled"
        replaced = gw.get(f"/api/v1/orders/{second}").json()
    assert (replaced["open_qty"], replaced["limit_price"]) == (5, 155)
    assert [o for o in at.selectbox(key="order_pick").options if o.startswith(f"#{first} ")] == []

    # A replace typed wrong is refused in the terminal and changes nothing.
    at.selectbox(key="order_pick").set_value(second)
    at.text_input(key="order_new_price").input("1.555")
    at.button(key="order_replace").click().run()
    assert "tick size" in _texts(at, "warning")
    with ui_platform.http(alice) as gw:
        assert gw.get(f"/api/v1/orders/{second}").json()["limit_price"] == 155


def test_order_history_filters(
    ui_platform: Platform, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ui_platform.http(alice) as gw:
        kept = gw.post("/api/v1/orders", json=order("GOOG", "sell", 2, 20000)).json()["id"]
        gone = gw.post("/api/v1/orders", json=order("GOOG", "buy", 1, 120)).json()["id"]
        assert gw.delete(f"/api/v1/orders/{gone}").status_code == 200
    at = _app(ui_platform.gateway, monkeypatch, alice)
    at.session_state["page"] = "Orders"
    at.run()
    history = at.dataframe[-1].value
    assert {kept, gone} <= set(history["id"])
    at.selectbox(key="hist_status").set_value("closed").run()
    assert set(at.dataframe[-1].value["id"]) == {gone}
    at.selectbox(key="hist_status").set_value("all").run()
    at.selectbox(key="hist_side").set_value("sell").run()
    sells = at.dataframe[-1].value
    assert set(sells["id"]) == {kept}
    assert list(sells["limit"]) == ["200.00"]
    assert not at.exception


def test_flatten_all_closes_positions_and_shows_pnl(
    ui_platform: Platform, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ui_platform.http(alice) as gw:
        bought = gw.post("/api/v1/orders", json=order("GOOG", "buy", 2, 10005)).json()
        assert bought["status"] == "filled", bought
    at = _app(ui_platform.gateway, monkeypatch, alice)
    at.session_state["page"] = "Positions"
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["symbol"]) == ["GOOG"] and list(table["qty"]) == [2]
    assert list(table["avg price"]) == ["100.0500"]

    at.button(key="flatten_all").click().run()
    assert not at.exception
    assert "GOOG: sell 2 lot(s)" in _texts(at, "info")
    with ui_platform.http(alice) as gw:
        (pos,) = gw.get("/api/v1/positions").json()
    assert pos["qty"] == 0
    table = at.dataframe[0].value
    assert list(table["qty"]) == [0]
    # Bought at 100.05, sold into the best bid 99.95: 2 shares x -0.10.
    assert list(table["realized P&L"]) == ["-0.20"]


def test_monitoring_shows_the_engine_status(
    ui_platform: Platform, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status = httpx.get(f"{ui_platform.engine_url}/status", timeout=5).json()
    at = _app(ui_platform.gateway, monkeypatch, alice, engine_url=ui_platform.engine_url)
    at.session_state["page"] = "Monitoring"
    at.run()
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Gateway"] == "up"
    assert shown["Engine (via gateway)"] == "ready"
    assert shown["Engine"] == status["engine"]
    assert shown["CPUs"] == ",".join(str(c) for c in status["cpus"])
    assert int(shown["Last seq"]) >= status["last_seq"]
