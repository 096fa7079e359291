"""The terminal's Strategies page through Streamlit's AppTest, against a running
`tickplane up --strategy market_maker:GOOG` (a live market maker on a synthetic market):
the table shows state, P&L and position; Pause cancels its quotes, Resume brings them
back; another account sees none of it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import tickplane.ui
from tests.cli.running import TICKPLANE, free_ports, platform

APP = str(Path(tickplane.ui.__file__).resolve().parent / "app.py")
MM = "market-maker-goog"
MM_ACCOUNT = "strategy-market_maker"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("ui-strategies") / "platform"
    extra = ["--engine-port", str(free_ports(6)), "--strategy", "market_maker:GOOG"]
    with platform(data, *extra) as (_proc, info):
        yield {**info, "data_dir": str(data)}


def _key(up: dict[str, Any], account: str) -> dict[str, str]:
    out = subprocess.run(
        [
            *TICKPLANE,
            "keys",
            "create",
            "--account",
            account,
            "--data-dir",
            up["data_dir"],
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    made = json.loads(out.stdout)
    return {"key_id": made["key_id"], "secret": made["secret"]}


def _page(up: dict[str, Any], key: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("TICKPLANE_UI_GATEWAY_URL", up["gateway"])
    monkeypatch.setenv("TICKPLANE_UI_ENGINE_URL", "")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["key_id"] = key["key_id"]
    at.session_state["secret"] = key["secret"]
    at.run()
    at.sidebar.radio(key="page").set_value("Strategies").run()
    assert not at.exception, at.exception
    return at


def _until(what: str, fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)
    return value


def _runner(up: dict[str, Any]) -> dict[str, Any]:
    url = next(s["url"] for s in up["strategies"] if s["name"] == MM)
    status: dict[str, Any] = httpx.get(f"{url}/status").json()
    return status


def _row(at: AppTest) -> dict[str, Any]:
    [table] = at.dataframe
    rows = table.value.to_dict("records")
    [row] = [r for r in rows if r["name"] == MM]
    return dict(row)


def test_the_page_lists_the_strategy_and_pauses_and_resumes_it(
    up: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _until("the market maker quotes", lambda: _runner(up)["open_orders"])
    at = _page(up, _key(up, MM_ACCOUNT), monkeypatch)
    row = _row(at)
    assert row["account"] == MM_ACCOUNT and row["symbols"] == "GOOG"
    assert row["state"] == "running"
    assert isinstance(row["position (lots)"], int) and row["P&L (tick-lots)"] is not None

    at.selectbox(key="strategy_pick").set_value(MM)
    at.button(key="strategy_pause").click().run()
    assert not at.exception, at.exception
    assert f"Paused {MM}" in "\n".join(str(e.value) for e in at.success)
    assert _row(at)["state"] == "paused"  # the table is read after the action
    status = _runner(up)
    assert status["state"] == "paused" and status["open_orders"] == 0

    at.button(key="strategy_resume").click().run()
    assert f"Resumed {MM}" in "\n".join(str(e.value) for e in at.success)
    assert _row(at)["state"] == "running"
    _until("it quotes again", lambda: _runner(up)["open_orders"])


def test_another_account_sees_no_strategies(
    up: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _page(up, _key(up, "someone-else"), monkeypatch)
    assert not at.dataframe
    assert any("No strategies for this account" in str(e.value) for e in at.info)
    assert not [b for b in at.button if (b.key or "").startswith("strategy_")]
