"""Session-wide real servers: PostgreSQL, Redis, and Prometheus instances on demand.

A pytest plugin: `tests/services/conftest.py` loads it for the tests in this folder;
the top-level `tests/conftest.py` may load it for every test with
`pytest_plugins = ["tests.services.fixtures"]` (one set of servers for the session
either way).

The servers come from Debian packages (`scripts/services/install.sh`, run by the test
command first). A server that cannot start is an error of every test using it, with its
log tail in the message: these fixtures never skip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from .servers import PostgresServer, PrometheusServer, RedisServer


class PrometheusFactory(Protocol):
    """Starts a Prometheus scraping `scrape_configs` (stopped at the end of the session)."""

    def __call__(
        self,
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        *,
        rule_files: Sequence[Path] = (),
        interval: str = "1s",
    ) -> PrometheusServer: ...


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's servers keep their data and logs."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(services_dir: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL with an empty database `tickplane`; connect with `postgres.dsn`.

    Shared by the session: a test creates what it needs under names of its own.
    """
    with PostgresServer(services_dir / "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def redis(services_dir: Path) -> Iterator[RedisServer]:
    """A Redis; connect with `redis.url`. Shared by the session: use keys of your own."""
    with RedisServer(services_dir / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def prometheus_factory(services_dir: Path) -> Iterator[PrometheusFactory]:
    """Start a Prometheus for given scrape configs: `prometheus_factory([{...}])`."""
    started: list[PrometheusServer] = []

    def start(
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        *,
        rule_files: Sequence[Path] = (),
        interval: str = "1s",
    ) -> PrometheusServer:
        server = PrometheusServer(
            services_dir / f"prometheus-{len(started)}",
            scrape_configs,
            rule_files=rule_files,
            interval=interval,
        )
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        errors = []
        for server in started:
            try:
                server.stop()
            except Exception as e:  # stop the others, then report
                errors.append(e)
        if errors:
            raise errors[0]
