"""Fixtures that run real engine processes on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.services.servers import free_port


@dataclass
class EngineProcess:
    """A `tickplane engine` subprocess and how to reach it."""

    workdir: Path
    settings: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def order_entry(self) -> str:
        return str(self.settings["order_entry"])

    @property
    def events(self) -> str:
        return str(self.settings["events"])

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings['http_port']}"

    def start(self, timeout: float = 30.0) -> None:
        cfg = self.workdir / "engine.json"
        cfg.write_text(json.dumps(self.settings))
        log = self.workdir / f"engine-{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickplane.cli.main", "engine", "--config", str(cfg)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited {self.proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(self.http + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.02)  # polling readiness: there is nothing to await across processes
        raise RuntimeError(f"engine not ready after {timeout}s:\n{log.read_text()}")

    def kill(self) -> None:
        """kill -9: no chance to flush or snapshot."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        return int(self.proc.returncode)

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in self.logs)


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[EngineProcess] = []

    def make(name: str = "e", **settings: Any) -> EngineProcess:
        work = tmp_path / name
        work.mkdir()
        base = {
            "name": name,
            "order_entry": f"tcp://127.0.0.1:{free_port()}",
            "events": f"tcp://127.0.0.1:{free_port()}",
            "http_port": free_port(),
            "journal_dir": str(work / "journal"),
            "symbols": [{"name": "GOOG"}, {"name": "AAPL"}],
            "pin_cpu": False,
        }
        base.update(settings)
        eng = EngineProcess(work, base)
        started.append(eng)
        return eng

    yield make
    for eng in started:
        eng.kill()


@pytest.fixture
def engine(engine_factory: Any) -> Iterator[EngineProcess]:
    eng: EngineProcess = engine_factory()
    eng.start()
    yield eng
    eng.stop()
