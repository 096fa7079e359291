"""`tickplane up` end to end: a real engine and gateway as child processes, no services."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.running import TICKPLANE, auth, free_ports, platform


def test_up_serves_orders_and_recovers_them_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "platform"
    with platform(data) as (proc, info):
        assert info["account"] == "demo"
        demo = auth(info["key_id"], info["secret"])
        gw = httpx.Client(base_url=info["gateway"], timeout=10)
        assert gw.get("/api/v1/orders").status_code == 401  # no key, no data
        r = gw.post(
            "/api/v1/orders",
            headers=demo,
            json={"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 3, "limit_price": 1},
        )
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]

        # A key made by another process while the platform runs works at once.
        made = subprocess.run(
            [*TICKPLANE, "keys", "create", "--account", "bob", "--data-dir", str(data), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        bob = json.loads(made.stdout)
        assert bob["account"] == "bob"
        bob_auth = auth(bob["key_id"], bob["secret"])
        assert gw.get(f"/api/v1/orders/{order_id}", headers=bob_auth).status_code == 404

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert (data / "journal").is_dir()

    with platform(data) as (proc, info2):
        gw = httpx.Client(base_url=info2["gateway"], timeout=10)
        # The old demo key was revoked at the restart; the new one sees the recovered order.
        assert gw.get("/api/v1/orders", headers=demo).status_code == 401
        r = gw.get(f"/api/v1/orders/{order_id}", headers=auth(info2["key_id"], info2["secret"]))
        assert r.status_code == 200, r.text
        assert r.json()["qty"] == 3
        assert r.json()["status"] == "new"


def test_up_fails_loudly_when_a_part_cannot_start(tmp_path: Path) -> None:
    # The engine port is taken: the engine cannot bind, and `up` says so and exits non-zero.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = int(blocker.getsockname()[1])
        ports = ["--engine-port", str(port), "--api-port", str(free_ports(1))]
        out = subprocess.run(
            [*TICKPLANE, "up", "--data-dir", str(tmp_path), "--no-ui", "--json", *ports],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1
    assert "the engine exited" in out.stderr
    assert out.stdout == ""


pytestmark = pytest.mark.timeout(300)


def test_up_with_services_keeps_keys_in_postgres_and_records_the_stream(
    tmp_path: Path, postgres: Any, redis: Any
) -> None:
    dsn = postgres.create_database("up")
    name = dsn.rsplit("/", 1)[1]
    services = ["--database-url", dsn, "--redis-url", redis.url]
    with platform(tmp_path / "platform", *services) as (_proc, info):
        assert info["recorder_metrics"]
        headers = auth(info["key_id"], info["secret"])
        r = httpx.post(
            f"{info['gateway']}/api/v1/orders",
            headers=headers,
            json={"symbol": "AAPL", "side": "sell", "type": "limit", "qty": 7, "limit_price": 999},
        )
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]
        # The key lives in PostgreSQL (no SQLite file), hashed: the secret is nowhere in it.
        assert not (tmp_path / "platform" / "keys.sqlite").exists()
        stored = postgres.psql(
            f"SELECT account FROM api_keys WHERE key_id = '{info['key_id']}'", database=name
        )
        assert stored.strip() == "demo"
        assert info["secret"] not in postgres.psql("SELECT * FROM api_keys", database=name)
        # The recorder writes the engine's stream: the order arrives in its table.
        deadline = time.monotonic() + 30
        row = ""
        while time.monotonic() < deadline:
            row = postgres.psql(
                "SELECT account, symbol, qty FROM orders"
                f" WHERE engine = 'local' AND id = {order_id}",
                database=name,
            ).strip()
            if row:
                break
            time.sleep(0.2)
        assert row == "demo|AAPL|7"
        # The gateway reads that history as Alpaca market data (its engine name is the
        # recorder's): the resting sell's top of book is a quote.
        quotes: list[Any] = []
        while time.monotonic() < deadline and not quotes:
            page = httpx.get(
                f"{info['gateway']}/v2/stocks/quotes",
                params={"symbols": "AAPL", "limit": 10_000},
                headers=headers,
            )
            assert page.status_code == 200, page.text
            quotes = page.json()["quotes"].get("AAPL", [])
            time.sleep(0.2)
        assert quotes, "no AAPL quotes in the gateway's market-data history"


def test_up_runs_strategies_and_stops_them_before_the_engine(tmp_path: Path) -> None:
    data = tmp_path / "platform"
    account = "strategy-market_maker"
    ports = ["--engine-port", str(free_ports(6))]  # the engine's five, then the runner's
    with platform(data, *ports, "--strategy", "market_maker:GOOG") as (proc, info):
        [run] = info["strategies"]
        assert (run["name"], run["symbol"], run["account"]) == (
            "market-maker-goog", "GOOG", account,
        )  # fmt: skip
        made = subprocess.run(
            [*TICKPLANE, "keys", "create", "--account", account, "--data-dir", str(data), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(made.stdout)
        mm = httpx.Client(
            base_url=info["gateway"], headers=auth(key["key_id"], key["secret"]), timeout=10
        )
        # It trades on the engine `up` started: its quotes rest there, as its account's.
        deadline = time.monotonic() + 30
        while not mm.get("/api/v1/orders").json()["orders"]:
            assert time.monotonic() < deadline, "the market maker never quoted"
            time.sleep(0.1)
        assert httpx.get(f"{run['url']}/status").json()["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0

    # The runner stopped while the engine still ran, so its quotes were canceled: the
    # engine, recovered from its journal, has none of them open.
    with platform(data, "--market", "none") as (_proc, info2):
        r = httpx.get(
            f"{info2['gateway']}/api/v1/orders", headers=auth(key["key_id"], key["secret"])
        )
        assert r.status_code == 200, r.text
        assert r.json()["orders"] == []
        assert info2["strategies"] == []


def test_up_refuses_strategies_it_cannot_run(tmp_path: Path) -> None:
    for flag, said in [
        ("nope:GOOG", "expected NAME:SYMBOL[:ACCOUNT]"),
        ("twap:MSFT", "the engine trades only"),
        ("twap:GOOG:bad account", "not a valid account name"),
    ]:
        out = subprocess.run(
            [*TICKPLANE, "up", "--data-dir", str(tmp_path), "--no-ui", "--strategy", flag],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, out
        assert said in out.stderr + out.stdout
    assert not (tmp_path / "journal").exists()  # nothing was started
