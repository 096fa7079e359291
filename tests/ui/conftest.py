"""A real platform for the terminal's tests: `tickplane up --no-ui` (engine + gateway) on
free ports with a quiet market (no synthetic flow, so the tests decide who trades with
whom), a "maker" account quoting ten levels a side, and the terminal itself
(`tickplane ui`) for the browser test. Session-scoped: started once, shared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.running import TICKPLANE, auth, free_ports, platform


@dataclass(frozen=True)
class Platform:
    gateway: str
    engine_url: str
    data_dir: Path
    demo: dict[str, str]  # key headers of the demo account

    def key(self, account: str) -> dict[str, str]:
        """A new key for `account`, made as a person would: `tickplane keys create`."""
        out = subprocess.run(
            [
                *TICKPLANE,
                "keys",
                "create",
                "--account",
                account,
                "--data-dir",
                str(self.data_dir),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        made: dict[str, Any] = json.loads(out.stdout)
        assert made["account"] == account
        return {"key_id": made["key_id"], "secret": made["secret"]}

    def http(self, key: dict[str, str]) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway, headers=auth(key["key_id"], key["secret"]), timeout=10
        )


def order(symbol: str, side: str, qty: int, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": side,
        "type": "limit",
        "qty": qty,
        "limit_price": price,
        **extra,
    }


@pytest.fixture(scope="session")
def ui_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("ui-platform")
    with platform(data, "--market", "none") as (_proc, info):
        plat = Platform(
            gateway=info["gateway"],
            engine_url=info["metrics"].removesuffix("/metrics"),
            data_dir=data,
            demo={"key_id": info["key_id"], "secret": info["secret"]},
        )
        # Ten levels a side around 100.00 (ticks of 0.01), sizes varying so the bars do.
        with plat.http(plat.key("maker")) as maker:
            for i in range(10):
                for side, price in (("buy", 9995 - 5 * i), ("sell", 10005 + 5 * i)):
                    r = maker.post(
                        "/api/v1/orders", json=order("GOOG", side, 20 + 15 * (i % 4), price)
                    )
                    assert r.status_code == 201, r.text
        yield plat


@pytest.fixture(scope="session")
def terminal(ui_platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tickplane ui` against the platform; its URL once Streamlit answers its health check."""
    port = free_ports(1)
    log = tmp_path_factory.mktemp("terminal") / "terminal.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *TICKPLANE,
                "ui",
                "--gateway",
                ui_platform.gateway,
                "--port",
                str(port),
                "--engine-url",
                ui_platform.engine_url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"tickplane ui exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"terminal not up: {log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
