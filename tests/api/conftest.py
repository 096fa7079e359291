"""Fixtures for the gateway's tests: a real engine process, a real PostgreSQL (a fresh
database of its own) for the keys, the app under FastAPI's TestClient, and keys."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.engine.conftest import EngineProcess, engine_settings
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
def engine_process(
    work: Path, name: str, symbols: list[str], **settings: Any
) -> Iterator[dict[str, str]]:
    """A `tickplane engine` process trading `symbols` (`settings` add to its own); its
    endpoints while inside."""
    engine = EngineProcess(work, engine_settings(work, name, symbols, fsync="none", **settings))
    engine.start()
    try:
        yield {"order_entry": engine.order_entry, "events": engine.events}
    finally:
        engine.stop()


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
