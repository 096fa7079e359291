"""API keys: both stores (PostgreSQL, SQLite), authentication on every route, revocation
within the cache bound, hashing at rest, migrations, the `keys` commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tickplane.api import cli, keys
from tickplane.api.db import migrate, migrations
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

H = dict[str, str]
OPEN = {"/api/v1/health", "/api/v1/ready"}


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the native API that needs a key (from its OpenAPI), ids
    filled in."""
    out = []
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    for template, ops in paths.items():
        if not template.startswith("/api/v1") or template in OPEN:
            continue
        path = (
            template.replace("{order_id}", "1")
            .replace("{symbol}", "GOOG")
            .replace("{account}", "alice")
            .replace("{client_order_id}", "x")
        )
        out.extend((m.upper(), path) for m in sorted(ops))
    return out


def test_every_route_needs_a_valid_key(
    client: TestClient, make_key: Callable[..., keys.NewKey], run: Callable[..., Any]
) -> None:
    key, revoked = make_key(), make_key()
    run(client.app.state.keys.revoke, revoked.key.key_id)  # type: ignore[attr-defined]
    routes = _routes(client)
    assert len(routes) >= 18, routes  # orders, account, market data, admin
    bad = [
        {},
        {"APCA-API-KEY-ID": key.key.key_id, "APCA-API-SECRET-KEY": key.secret + "x"},
        {"APCA-API-KEY-ID": "TPNOSUCHKEY", "APCA-API-SECRET-KEY": key.secret},
        {"APCA-API-KEY-ID": key.key.key_id},
        {"APCA-API-KEY-ID": revoked.key.key_id, "APCA-API-SECRET-KEY": revoked.secret},
    ]
    for method, path in routes:
        for headers in bad:
            r = client.request(method, path, headers=headers, json={"qty": 1})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["reason"] == "unauthorized" and r.json()["message"]


def test_health_and_ready_need_no_key_and_say_only_the_status(client: TestClient) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    r = client.get("/api/v1/ready")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


def test_a_revocation_takes_effect_within_the_cache_bound(
    client: TestClient,
    settings: GatewaySettings,
    make_key: Callable[..., keys.NewKey],
    run: Callable[..., Any],
    headers: Callable[[keys.NewKey], H],
) -> None:
    key = make_key()
    h = headers(key)
    assert client.get("/api/v1/account", headers=h).status_code == 200  # now cached
    run(client.app.state.keys.revoke, key.key.key_id)  # type: ignore[attr-defined]
    revoked_at = time.monotonic()
    bound = settings.key_cache_seconds
    while client.get("/api/v1/account", headers=h).status_code == 200:
        assert time.monotonic() - revoked_at < bound + 0.5, "revocation not effective in time"
        time.sleep(0.02)  # polling the gateway: nothing to await
    assert time.monotonic() - revoked_at <= bound + 0.5
    # other keys of the account still work
    assert client.get("/api/v1/account", headers=headers(make_key(key.key.account))).is_success


def test_without_a_cache_a_revocation_is_immediate(
    settings: GatewaySettings, make_key: Callable[..., keys.NewKey], headers: Callable[..., H]
) -> None:
    key = make_key()
    with TestClient(create_app(settings.model_copy(update={"key_cache_seconds": 0}))) as c:
        assert c.get("/api/v1/account", headers=headers(key)).status_code == 200
        assert c.portal is not None
        c.portal.call(c.app.state.keys.revoke, key.key.key_id)  # type: ignore[attr-defined]
        assert c.get("/api/v1/account", headers=headers(key)).status_code == 401


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Each key store, opened in its own event loop (`store.run(coro)`)."""
    loop = asyncio.new_event_loop()
    url = database_url if request.param == "postgres" else None
    s = loop.run_until_complete(keys.open_store(url, tmp_path))
    s.run = loop.run_until_complete
    s.kind = request.param
    try:
        yield s
    finally:
        loop.run_until_complete(s.close())
        loop.close()


def test_store_contract(store: Any) -> None:
    run = store.run
    a = run(store.create("store-a"))
    b = run(store.create("store-b", "admin"))
    assert a.key.key_id.startswith("TP") and len(a.key.key_id) == 20
    assert (b.key.account, b.key.scope) == ("store-b", "admin")
    assert a.secret != b.secret and len(a.secret) >= 43
    assert [k.key_id for k in run(store.list("store-a"))] == [a.key.key_id]
    assert {a.key.key_id, b.key.key_id} <= {k.key_id for k in run(store.list())}
    auth = keys.Authenticator(store, ttl=0)
    assert run(auth.authenticate(a.key.key_id, a.secret)) == a.key
    assert run(auth.authenticate(a.key.key_id, b.secret)) is None
    assert run(auth.authenticate("TPNOSUCH", a.secret)) is None
    first = run(store.revoke(a.key.key_id))
    assert first is not None and first.revoked_at is not None
    again = run(store.revoke(a.key.key_id))
    assert again is not None and again.revoked_at == first.revoked_at  # the first time kept
    assert run(auth.authenticate(a.key.key_id, a.secret)) is None
    assert run(store.revoke("TPNOSUCH")) is None
    for account in ("", " alice", "a" * 65, "al ice"):
        with pytest.raises(ValueError, match="account"):
            run(store.create(account))
    with pytest.raises(ValueError, match="scope"):
        run(store.create("store-c", "root"))


def test_secrets_are_not_stored(store: Any, tmp_path: Path, database_url: str) -> None:
    key = store.run(store.create("at-rest"))
    if store.kind == "postgres":

        async def row() -> dict[str, Any]:
            conn = await asyncpg.connect(database_url)
            try:
                r = await conn.fetchrow("SELECT * FROM api_keys WHERE key_id=$1", key.key.key_id)
                return dict(r or {})
            finally:
                await conn.close()

        stored = store.run(row())
    else:
        db = sqlite3.connect(tmp_path / keys.SQLITE_NAME)
        db.row_factory = sqlite3.Row
        stored = dict(db.execute("SELECT * FROM api_keys").fetchone())
        db.close()
        assert (tmp_path / keys.SQLITE_NAME).stat().st_mode & 0o077 == 0
    secret = key.secret.encode()
    for value in stored.values():
        text = value if isinstance(value, bytes) else str(value).encode()
        assert secret not in text
    assert bytes(stored["secret_hash"]) == keys.digest(bytes(stored["secret_salt"]), key.secret)


def test_migrations_are_idempotent(database_url: str) -> None:
    async def again() -> tuple[list[int], list[int], bool]:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)  # whatever ran before this test, the schema is now current
            applied = await migrate(conn)
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
            orders = await conn.fetchval("SELECT to_regclass('api_orders') IS NOT NULL")
            return applied, [r["version"] for r in rows], bool(orders)
        finally:
            await conn.close()

    applied, recorded, has_orders = asyncio.run(again())
    assert applied == []
    assert recorded == [m.version for m in migrations()]
    assert not has_orders  # the gateway keeps no order table: the engine is the truth


def test_rate_limit_answers_429(
    settings: GatewaySettings, make_key: Callable[..., keys.NewKey], headers: Callable[..., H]
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.5, "rate_limit_burst": 2})
    h = headers(make_key())
    with TestClient(create_app(limited)) as c:
        codes = [c.get("/api/v1/account", headers=h).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/api/v1/account", headers=h)
        assert r.json()["reason"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1


def _keys(store: list[str], *argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["keys", *argv, *store])
    return int(args.func(args))


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_keys_commands_while_the_gateway_runs(
    kind: str,
    settings: GatewaySettings,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = (
        ["--database-url", database_url] if kind == "postgres" else ["--data-dir", str(tmp_path)]
    )
    gateway = settings.model_copy(
        update={"database_url": database_url if kind == "postgres" else None, "data_dir": tmp_path}
    )
    with TestClient(create_app(gateway)) as client:
        assert _keys(store, "create", "--account", "cli-user", "--scope", "admin", "--json") == 0
        made = json.loads(capsys.readouterr().out)
        assert set(made) == {"account", "key_id", "secret", "scope"}
        assert (made["account"], made["scope"]) == ("cli-user", "admin")
        h = {"APCA-API-KEY-ID": made["key_id"], "APCA-API-SECRET-KEY": made["secret"]}
        assert client.get("/api/v1/account", headers=h).status_code == 200

        assert _keys(store, "list", "--account", "cli-user", "--json") == 0
        listed = json.loads(capsys.readouterr().out)
        assert made["key_id"] in [k["key_id"] for k in listed]
        assert all("secret" not in k for k in listed)

        assert _keys(store, "revoke", made["key_id"]) == 0
        assert made["key_id"] in capsys.readouterr().out
        deadline = time.monotonic() + gateway.key_cache_seconds + 2
        while client.get("/api/v1/account", headers=h).status_code != 401:
            assert time.monotonic() < deadline, "revocation not effective in time"
            time.sleep(0.02)  # polling the gateway: nothing to await
        assert _keys(store, "revoke", "TPNOSUCHKEY") == 2
        assert "no key" in capsys.readouterr().err
        assert _keys(store, "create", "--account", "bad name") == 2
    if kind == "postgres":
        assert _keys(["--database-url", "postgresql://postgres@127.0.0.1:1/x"], "list") == 2
    else:
        (tmp_path / "file").write_text("")
        assert _keys(["--data-dir", str(tmp_path / "file")], "list") == 2
