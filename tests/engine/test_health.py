"""Liveness and readiness around recovery: the engine's HTTP endpoint answers from
before recovery starts (alive, not ready) to the end of its shutdown (not ready)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.engine.conftest import inprocess_config
from tests.ports import free_port
from tickplane.engine.service import EngineService


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_alive_and_not_ready_while_recovering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = inprocess_config(tmp_path, "probe", http_port=free_port())
    port = config.http_port
    svc = EngineService(config)
    recovering, finish = threading.Event(), threading.Event()
    real = EngineService._recover

    def slow_recover(self: EngineService) -> int:
        recovering.set()
        assert finish.wait(30), "the test never let recovery finish"
        return real(self)

    monkeypatch.setattr(EngineService, "_recover", slow_recover)
    opening = threading.Thread(target=svc.open)
    opening.start()
    try:
        assert recovering.wait(30)
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/healthz") == (200, b"ok\n")
        assert _get(base + "/readyz") == (503, b"recovering\n")
        status, body = _get(base + "/status")
        assert status == 200 and json.loads(body)["ready"] is False
        status, body = _get(base + "/metrics")
        assert status == 200 and b"tickplane_engine_ready 0.0" in body
    finally:
        finish.set()
        opening.join(30)
    assert not opening.is_alive()
    try:
        assert _get(base + "/readyz") == (200, b"ready\n")
    finally:
        svc.close()
    with pytest.raises(urllib.error.URLError):  # closed with the engine, port freed
        urllib.request.urlopen(base + "/healthz", timeout=5)
