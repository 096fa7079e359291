"""The session's Kafka broker: fetched once into ~/.cache/tickplane/kafka, started once.

A broker that cannot be fetched or started is an error of every test that uses it, never
a skip: the tests of the Kafka path run against a real broker or fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .broker import KafkaBroker, fetch_libs


@contextmanager
def uncaptured(request: pytest.FixtureRequest) -> Iterator[None]:
    """Let output through to the terminal even while pytest captures it."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        yield
        return
    with capture.global_and_fixture_disabled():
        yield


@pytest.fixture(scope="session")
def kafka_libs(request: pytest.FixtureRequest) -> Path:
    """The folder of the broker's jars; the first run downloads them, showing progress."""
    with uncaptured(request):
        return fetch_libs()


@pytest.fixture(scope="session")
def kafka(
    kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[KafkaBroker]:
    """A running single-node KRaft broker; connect with ``bootstrap_servers=kafka.bootstrap``."""
    broker = KafkaBroker(kafka_libs, tmp_path_factory.mktemp("kafka"))
    with broker:
        reporter = request.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            with uncaptured(request):
                reporter.ensure_newline()
                reporter.write_line(
                    f"kafka: broker on {broker.bootstrap} ready in "
                    f"{broker.started_in or 0:.1f} s (log: {broker.log_path})"
                )
        yield broker
