"""Liveness and readiness around recovery: the engine's HTTP endpoint answers from
before recovery starts (alive, not ready) to the end of its shutdown (not ready)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.engine.conftest import inprocess_config
from tests.ports import free_port
from tickplane.core.config import EngineConfig
from tickplane.engine import metrics
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


class _StallingLoop(EngineService):
    """An engine whose idle wake can be made to hang, as a stuck loop would."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config)
        self.stall, self.stalled, self.release = (threading.Event() for _ in range(3))

    def _idle(self) -> None:
        if self.stall.is_set():
            self.stalled.set()
            assert self.release.wait(30), "the test never released the loop"
            self.stall.clear()
        super()._idle()


def _wait_for(url: str, want: int, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET `url` until it answers `want` (or the time is up): the last answer."""
    deadline = time.monotonic() + timeout
    answer = _get(url)
    while answer[0] != want and time.monotonic() < deadline:
        time.sleep(0.05)  # polling an HTTP endpoint: there is no event to wait on
        answer = _get(url)
    return answer


def test_liveness_fails_when_the_loop_stops_turning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "LOOP_STALE_SECONDS", 0.5)  # not the 30 s a pod gets
    config = inprocess_config(tmp_path, "stuck", http_port=free_port())
    base = f"http://127.0.0.1:{config.http_port}"
    svc = _StallingLoop(config)
    svc.open()
    assert svc.loop_beat_ns == 0 and _get(base + "/healthz") == (200, b"ok\n")  # not looping
    looping = threading.Thread(target=svc.loop)
    looping.start()
    try:
        assert _wait_for(base + "/status", 200)[0] == 200
        deadline = time.monotonic() + 10
        while svc.loop_beat_ns == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _get(base + "/healthz") == (200, b"ok\n")
        svc.stall.set()
        assert svc.stalled.wait(10)
        status, body = _wait_for(base + "/healthz", 503)
        assert status == 503 and body.startswith(b"loop stalled: no turn for"), body
        assert json.loads(_get(base + "/status")[1])["loop_age_seconds"] > 0.5
        svc.release.set()
        assert _wait_for(base + "/healthz", 200) == (200, b"ok\n")  # turning again
    finally:
        svc.release.set()
        svc.stopping = True
        looping.join(10)
        svc.close()
    assert not looping.is_alive()


def test_stopping_is_not_ready_anywhere(tmp_path: Path) -> None:
    config = inprocess_config(tmp_path, "leaving", http_port=free_port())
    base = f"http://127.0.0.1:{config.http_port}"
    svc = EngineService(config)
    svc.open()
    try:
        assert json.loads(_get(base + "/status")[1])["ready"] is True
        svc.stopping = True  # as SIGTERM does, before the loop has ended
        assert _get(base + "/readyz") == (503, b"stopping\n")
        assert json.loads(_get(base + "/status")[1])["ready"] is False
        assert b"tickplane_engine_ready 0.0" in _get(base + "/metrics")[1]
    finally:
        svc.close()
