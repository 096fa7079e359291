"""The Alpaca-compatible API under test: a real engine process of its own (so no other
test's resting orders cross ours), the gateway served by uvicorn on a real port, API
keys in the gateway's store, and alpaca-py clients pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from alpaca.trading.client import TradingClient

from tests.api.recorder.conftest import stop_process
from tests.engine.conftest import EngineProcess, engine_settings, free_port
from tests.services.servers import PostgresServer
from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

# Tick-lots of cash each new account starts with ($1,000,000 at GOOG's 0.01 x 1).
STARTING_CASH = 100_000_000
# Lots per order the engine's risk checks allow (more is refused: a 403).
MAX_ORDER_QTY = 1_000
SYMBOLS = [
    {"name": "GOOG", "tick_size": "0.01", "lot_size": 1},
    {"name": "AAPL", "tick_size": "0.01", "lot_size": 1},
    # Coarser units, to see decimals and lots mapped on the wire.
    {"name": "BRK", "tick_size": "0.05", "lot_size": 10},
    # Only test_classes.py trades these (trailing stops follow the last trade).
    {"name": "MSFT", "tick_size": "0.01", "lot_size": 1},
    {"name": "TSLA", "tick_size": "0.01", "lot_size": 1},
]


@contextlib.contextmanager
def running_engine(work: Path, name: str, symbols: list[dict[str, Any]]) -> Iterator[EngineProcess]:
    """An engine process trading `symbols` while inside."""
    eng = EngineProcess(
        work,
        engine_settings(
            work,
            name,
            symbols=symbols,
            starting_cash=STARTING_CASH,
            risk={"default": {"max_order_qty": MAX_ORDER_QTY}},
            fsync="none",
        ),
    )
    eng.start()
    try:
        yield eng
    finally:
        if eng.stop() != 0:
            eng.kill()


@pytest.fixture(scope="session")
def alpaca_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    with running_engine(tmp_path_factory.mktemp("alpaca-engine"), "alpaca-tests", SYMBOLS) as eng:
        yield eng


@dataclass
class Gateway:
    """A gateway served on a real port."""

    url: str
    data_dir: Path
    app: Any

    @property
    def stream_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/stream"


@pytest.fixture(scope="session")
def gateway(
    alpaca_engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with serve(alpaca_engine, tmp_path_factory.mktemp("alpaca-gateway")) as gw:
        yield gw


@contextlib.contextmanager
def serve(engine: EngineProcess, data_dir: Path, **settings: Any) -> Iterator[Gateway]:
    """A gateway on `engine`, served by uvicorn on a free port while inside (`settings`:
    GatewaySettings fields beyond the tests' own)."""
    port = free_port()
    config = GatewaySettings(
        engine_order_entry=engine.order_entry,
        engine_events=engine.events,
        engine_timeout=5.0,
        data_dir=data_dir,
        rate_limit_per_second=0,
        key_cache_seconds=0,
        metrics_port=0,
        port=port,
        **settings,
    )
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="alpaca-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn sets it once the socket listens
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield Gateway(f"http://127.0.0.1:{port}", data_dir, app)
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class Trader:
    """An account with a key and an alpaca-py client on the gateway."""

    account: str
    key_id: str
    secret: str
    client: TradingClient

    @property
    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret}


@pytest.fixture(scope="session")
def make_trader(gateway: Gateway) -> Callable[[], Trader]:
    """`make_trader()`: a fresh account, its key, and a TradingClient for it."""
    return trader_maker(gateway)


def trader_maker(gateway: Gateway) -> Callable[[], Trader]:
    """`make_trader` for `gateway`."""

    settings: GatewaySettings = gateway.app.state.settings

    async def create(account: str) -> keys.NewKey:
        # the gateway's own store: PostgreSQL when it has a database, else SQLite
        store = await keys.open_store(settings.database_url, gateway.data_dir)
        try:
            return await store.create(account)
        finally:
            await store.close()

    def make() -> Trader:
        account = "alp-" + uuid.uuid4().hex[:10]
        new = asyncio.run(create(account))
        client = TradingClient(new.key.key_id, new.secret, paper=True, url_override=gateway.url)
        return Trader(account, new.key.key_id, new.secret, client)

    return make


@pytest.fixture(scope="session")
def md_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine of the market-data tests' own (their trades are the only ones): GOOG
    and BRK trade; MSFT's history is written straight into the recorder's tables."""
    work = tmp_path_factory.mktemp("alpaca-md-engine")
    name = "alpaca-md-" + uuid.uuid4().hex[:8]
    with running_engine(work, name, [SYMBOLS[0], SYMBOLS[2], SYMBOLS[3]]) as eng:
        yield eng


@pytest.fixture(scope="session")
def md_database(postgres: PostgresServer) -> str:
    """The market-data tests' database: the gateway's keys and the recorder's tables."""
    return postgres.create_database("alpaca_md")


@pytest.fixture(scope="session")
def md_recorder(
    md_engine: EngineProcess, md_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """`tickplane recorder` writing `md_engine`'s events to `md_database` only."""
    log = (tmp_path_factory.mktemp("alpaca-md-recorder") / "recorder.log").open("wb")
    cmd = [
        sys.executable, "-m", "tickplane.cli.main", "recorder",
        "--engine-name", md_engine.name,
        "--engine-order-entry", md_engine.order_entry,
        "--engine-events", md_engine.events,
        "--database-url", md_database,
        "--metrics-port", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture(scope="session")
def md_gateway(
    md_engine: EngineProcess,
    md_database: str,
    md_recorder: subprocess.Popen[bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A gateway with the recorder's PostgreSQL (its market-data history)."""
    data_dir = tmp_path_factory.mktemp("alpaca-md-gateway")
    with serve(md_engine, data_dir, database_url=md_database, engine_name=md_engine.name) as gw:
        yield gw


@pytest.fixture
def trader(make_trader: Callable[[], Trader]) -> Trader:
    return make_trader()


@pytest.fixture
def other(make_trader: Callable[[], Trader]) -> Trader:
    """A second account, to trade against `trader` or to try to reach its orders."""
    return make_trader()
