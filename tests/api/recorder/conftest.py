"""Fixtures of the recorder's tests: real engines, PostgreSQL, Redis and Kafka.

The recorder's outage tests stop and restart PostgreSQL and Kafka, so these tests have a
PostgreSQL and a Kafka broker of their own (started once for this folder) rather than
the session's shared ones; Redis is the session's, isolated by key prefix (every test
records an engine of its own name).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import EngineProcess, engine_settings
from tests.kafka.broker import KafkaBroker, fetch_libs
from tests.services.servers import PostgresServer

REPO = Path(__file__).resolve().parents[3]


def start_engine(work: Path, name: str, symbols: list[str]) -> EngineProcess:
    """A running engine named `name` trading `symbols`, its journal and logs in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    engine = EngineProcess(work, engine_settings(work, name, symbols, fsync="none"))
    engine.start()
    return engine


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """A fresh engine (GOOG and AAPL) with a name of its own."""
    eng = start_engine(tmp_path / "engine", "rec-" + uuid.uuid4().hex[:8], ["GOOG", "AAPL"])
    try:
        yield eng
    finally:
        eng.stop()


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
    engine: EngineProcess, database_url: str, redis: object, rec_kafka: KafkaBroker
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
