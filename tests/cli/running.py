"""A running `tickplane up` for tests: child processes, free ports, a parsed JSON banner."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.ports import free_ports

__all__ = ["TICKPLANE", "auth", "free_ports", "platform"]

TICKPLANE = [sys.executable, "-m", "tickplane.cli.main"]


def _read_line(proc: subprocess.Popen[str], timeout: float, stderr: Path) -> str:
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
    said = stderr.read_text(errors="replace")[-4000:]
    if proc.poll() is None:
        raise AssertionError(f"tickplane up printed nothing within {timeout:.0f} s:\n{said}")
    raise AssertionError(f"tickplane up exited with {proc.poll()}:\n{said}")


@contextmanager
def platform(data_dir: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """`tickplane up --no-ui --json` on free ports; yields the process and its banner."""
    engine_port = free_ports(5)
    api_port = free_ports(1)
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr = data_dir.parent / f"{data_dir.name}.up.stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [
                *TICKPLANE,
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
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        info = json.loads(_read_line(proc, 120, stderr))
        yield proc, info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def auth(key_id: str, secret: str) -> dict[str, str]:
    """The gateway's key headers."""
    return {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}
