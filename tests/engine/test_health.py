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
from tickplane.core.config import EngineConfig
from tickplane.engine.service import EngineService


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _SlowRecovery(EngineService):
    """An engine whose recovery waits for the test (a subclass: the compiled class's
    methods cannot be patched on it)."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.recovering, self.finish = threading.Event(), threading.Event()

    def _recover(self) -> int:
        self.recovering.set()
        assert self.finish.wait(30), "the test never let recovery finish"
        return super()._recover()


def test_alive_and_not_ready_while_recovering(tmp_path: Path) -> None:
    config = inprocess_config(tmp_path, "probe", http_port=free_port())
    port = config.http_port
    svc = _SlowRecovery(config)
    recovering, finish = svc.recovering, svc.finish
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
