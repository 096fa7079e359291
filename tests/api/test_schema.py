"""schemathesis over the native API's OpenAPI, against the gateway served by uvicorn with a
real engine: whatever the schema allows (and what it does not), no answer is a 5xx.

A trader key signs every call (admin routes answer it 403 without touching the engine,
so the fuzzing never kills the shared engine or halts a symbol); what the run leaves
resting is canceled after it."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

H = dict[str, str]


@pytest.fixture(scope="module")
def gateway_url(settings: GatewaySettings) -> Iterator[str]:
    """The gateway under uvicorn in a thread, for this module."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.02)  # another thread's startup: nothing to await
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@pytest.fixture(scope="module")
def fuzz_key(gateway_url: str, settings: GatewaySettings) -> Iterator[H]:
    """A trader key for the run; its orders are canceled after it."""
    import asyncio

    async def make() -> keys.NewKey:
        store = await keys.open_store(settings.database_url, settings.data_dir)
        try:
            return await store.create("fuzz-account")
        finally:
            await store.close()

    new = asyncio.run(make())
    h = {"APCA-API-KEY-ID": new.key.key_id, "APCA-API-SECRET-KEY": new.secret}
    yield h
    req = urllib.request.Request(f"{gateway_url}/api/v1/orders", method="DELETE", headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


@pytest.fixture(scope="module")
def api_schema(gateway_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")


# The native API only: /v2 is the Alpaca-compatible API's (its own tests and errors).
schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/api/v1/")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: Any, gateway_url: str, fuzz_key: H) -> None:
    response = case.call(base_url=gateway_url, headers=fuzz_key, timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:  # every error in the API's shape, with a reason
        body = response.json()
        assert body["reason"] and body["message"], body


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    operations = [op.ok() for op in api_schema.get_all_operations()]
    paths = {op.path for op in operations if op.path.startswith("/api/v1/")}
    assert "/api/v1/orders" in paths and "/api/v1/admin/engine/kill" in paths
    assert len(paths) >= 15
