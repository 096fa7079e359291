"""Fixtures of the recorder's tests: real engines, PostgreSQL, Redis and Kafka.

The recorder's outage tests stop and restart PostgreSQL and Kafka, so these tests have a
PostgreSQL and a Kafka broker of their own (started once for this folder) rather than
the session's shared ones; Redis is the session's, isolated by key prefix (every test
records an engine of its own name).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kafka.broker import KafkaBroker, fetch_libs
from tests.services.servers import PostgresServer, free_port

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Engine:
    """A running `tickplane engine` process."""

    name: str
    order_entry: str
    events: str
    http_port: int
    proc: subprocess.Popen[bytes]


def start_engine(work: Path, name: str, symbols: list[str]) -> Engine:
    http_port = free_port()
    cfg: dict[str, object] = {
        "name": name,
        "order_entry": f"tcp://127.0.0.1:{free_port()}",
        "events": f"tcp://127.0.0.1:{free_port()}",
        "http_port": http_port,
        "journal_dir": str(work / "journal"),
        "symbols": [{"name": s} for s in symbols],
        "pin_cpu": False,
        "fsync": "none",
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "engine.json").write_text(json.dumps(cfg))
    return launch_engine(work, name, str(cfg["order_entry"]), str(cfg["events"]), http_port)


def launch_engine(work: Path, name: str, order_entry: str, events: str, http_port: int) -> Engine:
    """Start the engine of `work/engine.json` (again, after a kill: same journal, same
    ports) and wait until it is ready."""
    with (work / "engine.log").open("ab") as log:
        cmd = [sys.executable, "-m", "tickplane.cli.main", "engine"]
        proc = subprocess.Popen(
            [*cmd, "--config", str(work / "engine.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited: {(work / 'engine.log').read_text()}")
        try:
            url = f"http://127.0.0.1:{http_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"engine not ready: {(work / 'engine.log').read_text()}")
        time.sleep(0.05)  # another process: nothing to await
    return Engine(name, order_entry, events, http_port, proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine (GOOG and AAPL) with a name of its own."""
    eng = start_engine(tmp_path / "engine", "rec-" + uuid.uuid4().hex[:8], ["GOOG", "AAPL"])
    try:
        yield eng
    finally:
        stop_process(eng.proc)


@pytest.fixture(scope="session")
def rec_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """The recorder tests' own PostgreSQL (the outage test stops it)."""
    with PostgresServer(tmp_path_factory.mktemp("recorder-pg")) as server:
        yield server


@pytest.fixture
def database_url(rec_postgres: PostgresServer) -> str:
    """A fresh database for one test."""
    return rec_postgres.create_database("rec")


@pytest.fixture(scope="session")
def rec_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The recorder tests' own Kafka broker (the outage test stops and restarts it)."""
    broker = KafkaBroker(fetch_libs(echo=False), tmp_path_factory.mktemp("recorder-kafka"))
    with broker:
        yield broker


@pytest.fixture
def recorder_cmd(
    engine: Engine, database_url: str, redis: object, rec_kafka: KafkaBroker
) -> Callable[..., list[str]]:
    """The `tickplane recorder` command line for this test's engine and sinks."""

    def cmd(*extra: str) -> list[str]:
        return [
            sys.executable, "-m", "tickplane.cli.main", "recorder",
            "--engine-name", engine.name,
            "--engine-order-entry", engine.order_entry,
            "--engine-events", engine.events,
            "--symbols", "GOOG,AAPL",
            "--database-url", database_url,
            "--redis-url", str(redis.url),  # type: ignore[attr-defined]
            "--kafka", rec_kafka.bootstrap,
            *extra,
        ]  # fmt: skip

    return cmd
