"""Fixtures for the gateway's tests: a real engine process, a real PostgreSQL (a fresh
database of its own) for the keys, the app under FastAPI's TestClient, and keys."""

from __future__ import annotations

import contextlib
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
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.services.servers import free_port
from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

SERVICES = "tests.services.fixtures"
Headers = dict[str, str]
ISOLATED_SYMBOLS = 64


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(SERVICES):
        config.pluginmanager.import_plugin(SERVICES)


@contextlib.contextmanager
def engine_process(work: Path, name: str, symbols: list[str]) -> Iterator[dict[str, str]]:
    """A `tickplane engine` process trading `symbols`; its endpoints while inside."""
    cfg = {
        "name": name,
        "order_entry": f"tcp://127.0.0.1:{free_port()}",
        "events": f"tcp://127.0.0.1:{free_port()}",
        "http_port": free_port(),
        "journal_dir": str(work / "journal"),
        "symbols": [{"name": s} for s in symbols],
        "pin_cpu": False,
        "fsync": "none",
    }
    (work / "engine.json").write_text(json.dumps(cfg))
    log = (work / "engine.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickplane.cli.main",
            "engine",
            "--config",
            str(work / "engine.json"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"engine exited: {(work / 'engine.log').read_text()}")
            try:
                url = f"http://127.0.0.1:{cfg['http_port']}/readyz"
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"engine not ready: {(work / 'engine.log').read_text()}")
            time.sleep(0.05)  # another process: nothing to await
        yield {"order_entry": str(cfg["order_entry"]), "events": str(cfg["events"])}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def engine_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One `tickplane engine` process for the session (GOOG and AAPL)."""
    with engine_process(tmp_path_factory.mktemp("api-engine"), "api-tests", ["GOOG", "AAPL"]) as e:
        yield e


@dataclass
class IsolatedGateway:
    """A gateway on an engine of its own whose books no other module touches, and
    symbols (`fresh()`) that no other test of the module touches either: one test's
    resting orders can never cross another's."""

    client: TestClient
    symbols: list[str]
    _next: int = 0

    def fresh(self) -> str:
        if self._next == len(self.symbols):
            raise RuntimeError(f"all {len(self.symbols)} isolated symbols are used: add more")
        self._next += 1
        return self.symbols[self._next - 1]


@pytest.fixture(scope="module")
def isolated_gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    settings: GatewaySettings,
) -> Iterator[IsolatedGateway]:
    """For a module that overrides `client` with this one's (see IsolatedGateway).
    The symbols are `T000`... (one engine start and one app start, ~1 s, per module)."""
    name = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    symbols = [f"T{i:03d}" for i in range(ISOLATED_SYMBOLS)]
    with engine_process(tmp_path_factory.mktemp(name), name, symbols) as endpoints:
        own = settings.model_copy(
            update={
                "engine_order_entry": endpoints["order_entry"],
                "engine_events": endpoints["events"],
            }
        )
        with TestClient(create_app(own)) as c:
            yield IsolatedGateway(c, symbols)


@pytest.fixture
def symbol(isolated_gateway: IsolatedGateway) -> str:
    """A symbol of the module's isolated engine that no other test has used."""
    return isolated_gateway.fresh()


@pytest.fixture(scope="session")
def database_url(postgres: Any) -> str:
    """A fresh database of the session PostgreSQL, for these tests only."""
    return str(postgres.create_database("api"))


@pytest.fixture(scope="session")
def settings(engine_endpoints: dict[str, str], database_url: str) -> GatewaySettings:
    return GatewaySettings(
        engine_order_entry=engine_endpoints["order_entry"],
        engine_events=engine_endpoints["events"],
        engine_timeout=5.0,
        database_url=database_url,
        rate_limit_per_second=0,
        metrics_port=0,
    )


@pytest.fixture(scope="session")
def client(settings: GatewaySettings) -> Iterator[TestClient]:
    """The gateway, its lifespan run (engine client and pool connected)."""
    with TestClient(create_app(settings)) as c:
        yield c


def call(client: TestClient, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `fn(*args)` (a coroutine function) on the app's event loop."""
    assert client.portal is not None
    return client.portal.call(lambda: fn(*args, **kwargs))


@pytest.fixture
def make_key(client: TestClient) -> Callable[..., keys.NewKey]:
    """`make_key(account=None, scope="trader")`: a new key (a fresh account by default)."""

    def make(account: str | None = None, scope: keys.Scope = "trader") -> keys.NewKey:
        account = account or "acct-" + uuid.uuid4().hex[:10]
        store: keys.KeyStore = client.app.state.keys  # type: ignore[attr-defined]
        new: keys.NewKey = call(client, store.create, account, scope)
        return new

    return make


def auth(key: keys.NewKey) -> Headers:
    return {"APCA-API-KEY-ID": key.key.key_id, "APCA-API-SECRET-KEY": key.secret}


@pytest.fixture
def admin(make_key: Callable[..., keys.NewKey]) -> Headers:
    """Headers of an admin-scope key."""
    return auth(make_key(scope="admin"))


@pytest.fixture
def trader(make_key: Callable[..., keys.NewKey]) -> Headers:
    """Headers of a key of a fresh account."""
    return auth(make_key())


@pytest.fixture
def run(client: TestClient) -> Callable[..., Any]:
    """`run(fn, *args)`: a coroutine function run on the app's loop."""
    return lambda fn, *args, **kwargs: call(client, fn, *args, **kwargs)


@pytest.fixture
def headers() -> Callable[[keys.NewKey], Headers]:
    """`headers(key)`: the request headers that carry `key`."""
    return auth
