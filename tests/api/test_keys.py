"""API keys: authentication, revocation, hashing at rest, the `keys` commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tickplane.api import cli, keys
from tickplane.api.db import migrate, migrations
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

H = dict[str, str]
PROTECTED = [
    ("get", "/api/v1/ready"),
    ("get", "/api/v1/orders/1"),
    ("post", "/api/v1/orders"),
    ("patch", "/api/v1/orders/1"),
    ("delete", "/api/v1/orders/1"),
    ("delete", "/api/v1/orders"),
    ("get", "/api/v1/book/GOOG"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_needs_a_key(
    client: TestClient, make_key: Callable[..., keys.NewKey], method: str, path: str
) -> None:
    key = make_key()
    wrong = {"APCA-API-KEY-ID": key.key.key_id, "APCA-API-SECRET-KEY": key.secret + "x"}
    unknown = {"APCA-API-KEY-ID": "TPNOSUCHKEY", "APCA-API-SECRET-KEY": key.secret}
    only_id = {"APCA-API-KEY-ID": key.key.key_id}
    for headers in ({}, wrong, unknown, only_id):
        r = client.request(method, path, headers=headers, json={"qty": 1})
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["reason"] == "unauthorized" and r.json()["message"]


def test_revoked_key_is_refused(
    client: TestClient,
    make_key: Callable[..., keys.NewKey],
    run: Callable[..., Any],
    headers: Callable[[keys.NewKey], H],
) -> None:
    key = make_key()
    assert client.get("/api/v1/book/GOOG", headers=headers(key)).status_code == 200
    revoked = run(keys.revoke_key, client.app.state.pool, key.key.key_id)  # type: ignore[attr-defined]
    assert revoked is not None and revoked.revoked_at is not None
    r = client.get("/api/v1/book/GOOG", headers=headers(key))
    assert r.status_code == 401 and r.json()["reason"] == "unauthorized"
    # other keys of the account still work
    assert client.get("/api/v1/book/GOOG", headers=headers(make_key(key.key.account))).is_success


def test_secrets_are_not_stored(
    client: TestClient, make_key: Callable[..., keys.NewKey], run: Callable[..., Any]
) -> None:
    key = make_key()

    async def row() -> asyncpg.Record:
        pool = client.app.state.pool  # type: ignore[attr-defined]
        return await pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key.key.key_id)

    stored = dict(run(row))
    secret = key.secret.encode()
    for value in stored.values():
        text = value if isinstance(value, bytes) else str(value).encode()
        assert secret not in text
    assert bytes(stored["secret_hash"]) == keys.digest(bytes(stored["secret_salt"]), key.secret)
    other = make_key()
    assert run(keys.authenticate, client.app.state.pool, key.key.key_id, other.secret) is None  # type: ignore[attr-defined]


def test_create_key_refuses_bad_accounts(client: TestClient, run: Callable[..., Any]) -> None:
    for account in ("", " alice", "a" * 65, "al ice"):
        with pytest.raises(ValueError, match="account"):
            run(keys.create_key, client.app.state.pool, account)  # type: ignore[attr-defined]


def test_migrations_are_idempotent(client: TestClient, run: Callable[..., Any]) -> None:
    async def again() -> tuple[list[int], list[int]]:
        async with client.app.state.pool.acquire() as conn:  # type: ignore[attr-defined]
            applied = await migrate(conn)
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
            return applied, [r["version"] for r in rows]

    applied, recorded = run(again)
    assert applied == []
    assert recorded == [m.version for m in migrations()]


def test_rate_limit_answers_429(
    settings: GatewaySettings, make_key: Callable[..., keys.NewKey], headers: Callable[..., H]
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.5, "rate_limit_burst": 2})
    h = headers(make_key())
    with TestClient(create_app(limited)) as c:
        codes = [c.get("/api/v1/book/GOOG", headers=h).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/api/v1/book/GOOG", headers=h)
        assert r.json()["reason"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1


def _keys(database_url: str, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["keys", *argv, "--database-url", database_url])
    return int(args.func(args)), ""


def test_keys_commands(
    client: TestClient, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _keys(database_url, "create", "--account", "cli-user", "--json")
    assert code == 0
    made = json.loads(capsys.readouterr().out)
    assert set(made) == {"account", "key_id", "secret", "scope"} and made["account"] == "cli-user"
    h = {"APCA-API-KEY-ID": made["key_id"], "APCA-API-SECRET-KEY": made["secret"]}
    assert client.get("/api/v1/book/GOOG", headers=h).status_code == 200

    assert _keys(database_url, "list", "--account", "cli-user", "--json")[0] == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["key_id"] for k in listed] == [made["key_id"]]
    assert "secret" not in listed[0] and listed[0]["revoked_at"] is None

    assert _keys(database_url, "revoke", made["key_id"])[0] == 0
    assert made["key_id"] in capsys.readouterr().out
    assert client.get("/api/v1/book/GOOG", headers=h).status_code == 401
    assert _keys(database_url, "revoke", "TPNOSUCHKEY")[0] == 2
    assert "no key" in capsys.readouterr().err
    assert _keys(database_url, "create", "--account", "bad name")[0] == 2
    assert _keys("postgresql://postgres@127.0.0.1:1/x", "list")[0] == 2
