"""`/api/v1/strategies` with the local source, end to end: `tickplane up --strategy` runs
a market maker and a TWAP as live runners on a real engine with a synthetic market; the
gateway lists them per account, pauses (the runner's orders are canceled in the engine)
and resumes them. Plus the runner's own control endpoint, and a runner that is down."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import auth as key_headers
from tests.cli.running import TICKPLANE, auth, free_ports, platform
from tests.ports import free_port
from tickplane.api.strategies import LocalStrategies

pytestmark = pytest.mark.timeout(300)

MM = "market-maker-goog"  # the runner's name: strategy and symbol, lower case, dashed
MM_ACCOUNT = "strategy-market_maker"  # the default account of --strategy market_maker:GOOG
TWAP = "twap-aapl"


class Up:
    """The running platform: its banner and a key maker."""

    def __init__(self, info: dict[str, Any], data: Path) -> None:
        self.info = info
        self.data = data
        self.gateway = info["gateway"]

    def key(self, account: str, scope: str = "trader") -> dict[str, str]:
        out = subprocess.run(
            [
                *TICKPLANE,
                *("keys", "create", "--account", account, "--scope", scope),
                *("--data-dir", str(self.data), "--json"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        made = json.loads(out.stdout)
        return auth(made["key_id"], made["secret"])

    def http(self, headers: dict[str, str]) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, headers=headers, timeout=10)

    def runner(self, name: str) -> str:
        return next(s["url"] for s in self.info["strategies"] if s["name"] == name)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data = tmp_path_factory.mktemp("strategies") / "platform"
    # Seven ports: the engine's five, then one per strategy runner.
    ports = ["--engine-port", str(free_ports(7))]
    strategies = ["--strategy", "market_maker:GOOG", "--strategy", "twap:AAPL:alice"]
    with platform(data, *ports, *strategies) as (_proc, info):
        yield Up(info, data)


def _until(what: str, fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `fn` until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def _open_orders(gw: httpx.Client, symbol: str) -> list[dict[str, Any]]:
    r = gw.get("/api/v1/orders", params={"status": "open", "symbol": symbol})
    assert r.status_code == 200, r.text
    body = r.json()
    orders: list[dict[str, Any]] = body["orders"] if isinstance(body, dict) else body
    return orders


def test_banner_names_the_runners(up: Up) -> None:
    runs = {s["name"]: s for s in up.info["strategies"]}
    assert runs[MM]["account"] == MM_ACCOUNT and runs[MM]["symbol"] == "GOOG"
    assert runs[TWAP]["account"] == "alice" and runs[TWAP]["strategy"] == "twap"


def test_each_account_sees_its_own_strategies_and_admin_sees_all(up: Up) -> None:
    with up.http(up.key(MM_ACCOUNT)) as mm:
        listed = mm.get("/api/v1/strategies")
        assert listed.status_code == 200, listed.text
        [view] = listed.json()
        assert view["name"] == MM and view["account"] == MM_ACCOUNT
        assert view["source"] == "local" and view["strategy"] == "market_maker"
        assert view["symbols"] == ["GOOG"]
        assert view["state"] in ("running", "paused")
        assert isinstance(view["pnl"], float) and isinstance(view["position"], int)
        assert view["params"]["qty"] > 0
    with up.http(up.key("alice")) as alice:
        assert [v["name"] for v in alice.get("/api/v1/strategies").json()] == [TWAP]
    with up.http(up.key("nobody")) as nobody:
        assert nobody.get("/api/v1/strategies").json() == []
    with up.http(up.key("ops", "admin")) as admin:
        assert sorted(v["name"] for v in admin.get("/api/v1/strategies").json()) == [MM, TWAP]
    assert httpx.get(f"{up.gateway}/api/v1/strategies").status_code == 401


def test_pause_cancels_the_runners_orders_and_resume_quotes_again(up: Up) -> None:
    with up.http(up.key(MM_ACCOUNT)) as mm:
        # The market maker quotes both sides of GOOG into the synthetic market.
        _until("the market maker quotes", lambda: _open_orders(mm, "GOOG"))

        r = mm.post(f"/api/v1/strategies/{MM}/pause")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "paused" and r.json()["message"] == "paused by hand"
        # Canceled in the engine: the account's open orders, as the gateway sees them.
        _until("its orders are canceled", lambda: not _open_orders(mm, "GOOG"))
        status = httpx.get(f"{up.runner(MM)}/status").json()
        assert status["state"] == "paused" and status["paused_by"] == "manual"
        assert status["open_orders"] == 0
        [view] = mm.get("/api/v1/strategies").json()
        assert view["state"] == "paused" and view["paused"] is True

        r = mm.post(f"/api/v1/strategies/{MM}/resume")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "running" and r.json()["paused"] is False
        _until("it quotes again", lambda: _open_orders(mm, "GOOG"))


def test_other_accounts_get_404_and_admin_controls_any(up: Up) -> None:
    with up.http(up.key("alice")) as alice:
        for action in ("pause", "resume"):
            r = alice.post(f"/api/v1/strategies/{MM}/{action}")
            assert r.status_code == 404 and r.json()["reason"] == "unknown_strategy"
        assert alice.post("/api/v1/strategies/no-such-thing/pause").status_code == 404
        assert alice.post("/api/v1/strategies/bad%20name/pause").status_code == 422
    assert httpx.get(f"{up.runner(MM)}/status").json()["state"] == "running"

    with up.http(up.key("ops", "admin")) as admin:
        r = admin.post(f"/api/v1/strategies/{TWAP}/pause")
        assert r.status_code == 200 and r.json()["state"] == "paused"
        with up.http(up.key("alice")) as alice:
            [view] = alice.get("/api/v1/strategies").json()
            assert view["state"] == "paused"
        r = admin.post(f"/api/v1/strategies/{TWAP}/resume")
        assert r.status_code == 200 and r.json()["state"] == "running"


def test_the_runner_wants_its_token_for_control_but_not_for_status(up: Up) -> None:
    url = up.runner(MM)
    assert httpx.get(f"{url}/status").status_code == 200
    assert "tickplane_strategy_pnl" in httpx.get(f"{url}/metrics").text
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = httpx.post(f"{url}/pause", headers=headers)
        assert r.status_code == 401 and r.json()["reason"] == "unauthorized"
    assert httpx.get(f"{url}/status").json()["state"] == "running"
    assert httpx.get(f"{url}/pause").status_code == 405


def test_a_runner_without_a_token_refuses_control(up: Up, tmp_path: Path) -> None:
    port = free_ports(1)
    env = {k: v for k, v in os.environ.items() if k != "TICKPLANE_STRATEGY_CONTROL_TOKEN"}
    log = (tmp_path / "runner.log").open("wb")
    proc = subprocess.Popen(
        [
            *TICKPLANE,
            *("strategy", "run", "--strategy", "twap", "--engine", up.info["engine"]),
            *("--account", "solo", "--symbol", "GOOG", "--metrics-port", str(port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def status() -> dict[str, Any] | None:
            try:
                body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/status").json()
                return body
            except httpx.HTTPError:
                return None

        assert _until("the runner answers", status)["name"] == "twap-goog"
        r = httpx.post(
            f"http://127.0.0.1:{port}/pause", headers={"Authorization": "Bearer anything"}
        )
        assert r.status_code == 403 and r.json()["reason"] == "control_disabled"
        assert status() is not None and status()["state"] != "paused"  # type: ignore[index]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_a_runner_that_is_down_is_listed_as_unreachable(
    client: TestClient, make_key: Callable[..., Any]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app: Any = client.app
    before = getattr(app.state, "strategies", None)
    app.state.strategies = LocalStrategies([dead], "token", timeout=0.5)
    try:
        headers = key_headers(make_key(scope="admin"))
        r = client.get("/api/v1/strategies", headers=headers)
        assert r.status_code == 200, r.text
        [view] = r.json()
        assert view["state"] == "unreachable" and view["account"] == ""
        assert dead in view["message"]
        # Nobody's but the admin's to see; pausing what cannot be reached is a 503 with a
        # reason for the admin, never a traceback, and a 404 for a trader (not theirs).
        trader = key_headers(make_key())
        assert client.get("/api/v1/strategies", headers=trader).json() == []
        for who, status in ((headers, 503), (trader, 404)):
            r = client.post(f"/api/v1/strategies/{view['name']}/pause", headers=who)
            assert r.status_code == status, r.text
        assert r.json()["reason"] == "unknown_strategy"
    finally:
        app.state.strategies = before


def test_resume_does_not_override_a_loss_limit_pause(up: Up, tmp_path: Path) -> None:
    # A market maker allowed to lose 1 tick-lot: its first adverse move pauses it.
    port = free_ports(1)
    env = {**os.environ, "TICKPLANE_STRATEGY_CONTROL_TOKEN": "t0ken"}
    log = (tmp_path / "runner.log").open("wb")
    proc = subprocess.Popen(
        [
            *TICKPLANE,
            *("strategy", "run", "--strategy", "market_maker", "--engine", up.info["engine"]),
            *("--account", "fragile", "--symbol", "GOOG", "--metrics-port", str(port)),
            *("--max-loss", "1"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def loss_paused() -> dict[str, Any] | None:
            try:
                body: dict[str, Any] = httpx.get(f"{url}/status").json()
            except httpx.HTTPError:
                return None
            return body if body["paused_by"] == "loss_limit" else None

        status = _until("the loss limit pauses it", loss_paused, timeout=60)
        assert status["state"] == "paused"  # (its P&L moves on with the mark)
        bearer = {"Authorization": "Bearer t0ken"}
        r = httpx.post(f"{url}/resume", headers=bearer)
        assert r.status_code == 409 and r.json()["reason"] == "loss_limit_pause"
        # Pausing it by hand changes nothing either: the limit's pause stays the reason.
        assert httpx.post(f"{url}/pause", headers=bearer).json()["paused_by"] == "loss_limit"
        assert httpx.post(f"{url}/resume", headers=bearer).status_code == 409
        assert httpx.get(f"{url}/status").json()["state"] == "paused"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
