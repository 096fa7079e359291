"""`tickplane up` end to end: a real engine and gateway as child processes, no services."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

_TICKPLANE = [sys.executable, "-m", "tickplane.cli.main"]


def _free_ports(n: int) -> int:
    """A base port with `n` free consecutive ports after it."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n >= 65535:
            continue
        try:
            socks = []
            for p in range(base, base + n):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
        return base
    raise RuntimeError("no run of free ports")


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line `proc` prints, awaited (never a fixed sleep)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if line:
                return line
        if proc.poll() is not None:
            break
    raise AssertionError(f"tickplane up printed nothing (exit {proc.poll()})")


@contextmanager
def platform(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    engine_port = _free_ports(3)
    api_port = _free_ports(1)
    proc = subprocess.Popen(
        [
            *_TICKPLANE,
            "up",
            "--data-dir",
            str(data_dir),
            "--no-ui",
            "--json",
            "--api-port",
            str(api_port),
            "--engine-port",
            str(engine_port),
            "--market-rate",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(_read_line(proc, 120))
        yield proc, info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _auth(key_id: str, secret: str) -> dict[str, str]:
    return {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}


def test_up_serves_orders_and_recovers_them_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "platform"
    with platform(data) as (proc, info):
        assert info["account"] == "demo"
        demo = _auth(info["key_id"], info["secret"])
        gw = httpx.Client(base_url=info["gateway"], timeout=10)
        assert gw.get("/api/v1/orders").status_code == 401  # no key, no data
        r = gw.post(
            "/api/v1/orders",
            headers=demo,
            json={"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 3, "limit_price": 1},
        )
        assert r.status_code == 201, r.text
        order_id = r.json()["order_id"]

        # A key made by another process while the platform runs works at once.
        made = subprocess.run(
            [*_TICKPLANE, "keys", "create", "--account", "bob", "--data-dir", str(data), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        bob = json.loads(made.stdout)
        assert bob["account"] == "bob"
        bob_auth = _auth(bob["key_id"], bob["secret"])
        assert gw.get(f"/api/v1/orders/{order_id}", headers=bob_auth).status_code == 404

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert (data / "journal").is_dir()

    with platform(data) as (proc, info2):
        gw = httpx.Client(base_url=info2["gateway"], timeout=10)
        # The old demo key was revoked at the restart; the new one sees the recovered order.
        assert gw.get("/api/v1/orders", headers=demo).status_code == 401
        r = gw.get(f"/api/v1/orders/{order_id}", headers=_auth(info2["key_id"], info2["secret"]))
        assert r.status_code == 200, r.text
        assert r.json()["qty"] == 3
        assert r.json()["status"] == "new"


def test_up_fails_loudly_when_a_part_cannot_start(tmp_path: Path) -> None:
    # The engine port is taken: the engine cannot bind, and `up` says so and exits non-zero.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = int(blocker.getsockname()[1])
        ports = ["--engine-port", str(port), "--api-port", str(_free_ports(1))]
        out = subprocess.run(
            [*_TICKPLANE, "up", "--data-dir", str(tmp_path), "--no-ui", "--json", *ports],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1
    assert "the engine exited" in out.stderr
    assert out.stdout == ""


pytestmark = pytest.mark.timeout(300)
