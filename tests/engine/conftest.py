"""Fixtures that run real engine processes on loopback ports."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.process import ServerProcess, http_ok
from tests.services.servers import free_port
from tickplane.core.config import EngineConfig


def engine_settings(
    work: Path, name: str, names: Sequence[str] = ("GOOG", "AAPL"), **settings: Any
) -> dict[str, Any]:
    """An engine's settings: the symbols `names`, free loopback ports, its journal in
    `work`, no CPU pinning; `settings` add to them or override them (`symbols=[...]`)."""
    return {
        "name": name,
        "order_entry": f"tcp://127.0.0.1:{free_port()}",
        "events": f"tcp://127.0.0.1:{free_port()}",
        "http_port": free_port(),
        "journal_dir": str(work / "journal"),
        "symbols": [{"name": s} for s in names],
        "pin_cpu": False,
        **settings,
    }


def inprocess_config(work: Path, name: str, **settings: Any) -> EngineConfig:
    """An `EngineConfig` of `engine_settings` (one symbol, GOOG) for an `EngineService`
    in the test's own process: no HTTP endpoint unless `settings` give a port."""
    data = engine_settings(
        work, name, ("GOOG",), **{"http_port": 0, "snapshot_every": 0, **settings}
    )
    return msgspec.convert(data, EngineConfig, strict=False)


@dataclass
class EngineProcess:
    """A `tickplane engine` subprocess and how to reach it (each start logs to a file of
    its own, `logs`; `env` adds to its environment, for the next start)."""

    workdir: Path
    settings: dict[str, Any]
    logs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _process: ServerProcess | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return str(self.settings["name"])

    @property
    def order_entry(self) -> str:
        return str(self.settings["order_entry"])

    @property
    def events(self) -> str:
        return str(self.settings["events"])

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings['http_port']}"

    @property
    def pid(self) -> int:
        """The running engine's process id."""
        pid = None if self._process is None else self._process.pid
        assert pid is not None, "the engine is not running"
        return pid

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run once it ended (-9 after `kill()`)."""
        return None if self._process is None else self._process.returncode

    def start(self, timeout: float = 30.0) -> None:
        """Start the engine of `settings` (again: the same journal, the same ports) and
        wait until it is ready."""
        cfg = self.workdir / "engine.json"
        cfg.write_text(json.dumps(self.settings))
        log = self.workdir / f"engine-{len(self.logs)}.log"
        self.logs.append(log)
        self._process = ServerProcess("the engine", log)
        self._process.start(
            [sys.executable, "-m", "tickplane.cli.main", "engine", "--config", str(cfg)],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        ready = f"{self.http}/readyz"
        self._process.wait_ready(lambda: http_ok(ready), timeout=timeout, what=ready)

    def kill(self) -> None:
        """kill -9: no chance to flush or snapshot."""
        if self._process is not None:
            self._process.kill()

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit (SIGKILL after 30 s); the exit status."""
        if self._process is None:
            return 0
        self._process.stop(30.0)
        return self._process.returncode or 0

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in self.logs)


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[EngineProcess] = []

    def make(name: str = "e", **settings: Any) -> EngineProcess:
        work = tmp_path / name
        work.mkdir()
        eng = EngineProcess(work, engine_settings(work, name, **settings))
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
