"""The gateway's subcommands of `tickplane`: `keys create|list|revoke`.

They open the gateway's key store directly: PostgreSQL with `--database-url` (else
`TICKPLANE_GATEWAY_DATABASE_URL`), migrating it first, or else SQLite in `--data-dir`
(else `TICKPLANE_GATEWAY_DATA_DIR`, else `.tickplane`), so they work whether or not a
gateway runs (gateways see a new key at once and a revocation within their
`key_cache_seconds`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from tickplane.api import keys
from tickplane.api.recorder import cli as recorder_cli
from tickplane.api.settings import get_settings

__all__ = ["register"]

T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys` to the `tickplane` parser."""
    k = sub.add_parser(
        "keys",
        help="API keys of the gateway (create, list, revoke)",
        description="Manage the gateway's API keys. A secret is printed once, at creation, "
        "and stored only as a salted digest.",
    )
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--database-url",
            help="PostgreSQL DSN (default: TICKPLANE_GATEWAY_DATABASE_URL); without one, "
            "the SQLite store of --data-dir",
        )
        p.add_argument(
            "--data-dir",
            type=Path,
            help="the platform's data directory, keys in DATA_DIR/keys.sqlite "
            "(default: TICKPLANE_GATEWAY_DATA_DIR or .tickplane)",
        )
        p.add_argument("--json", action="store_true", help="print JSON")

    c = ksub.add_parser("create", help="create a key for an account; prints its secret once")
    c.add_argument("--account", required=True, help="the account the key trades for")
    c.add_argument("--scope", choices=keys.SCOPES, default="trader", help="default: trader")
    common(c)
    c.set_defaults(func=_create)

    ls = ksub.add_parser("list", help="list keys (no secrets)")
    ls.add_argument("--account", help="only this account's keys")
    common(ls)
    ls.set_defaults(func=_list)

    r = ksub.add_parser("revoke", help="revoke a key: it never authenticates again")
    r.add_argument("key_id", help="the key id (APCA-API-KEY-ID)")
    common(r)
    r.set_defaults(func=_revoke)

    recorder_cli.register(sub)


def _with_store(args: argparse.Namespace, work: Callable[[keys.KeyStore], Awaitable[T]]) -> T:
    settings = get_settings()
    dsn = args.database_url or settings.database_url
    data_dir = args.data_dir or settings.data_dir

    async def run() -> T:
        store = await keys.open_store(dsn, data_dir, pool_min=1, pool_max=1)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _key_dict(key: keys.ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "account": key.account,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _fail(message: str) -> int:
    print(f"tickplane keys: {message}", file=sys.stderr)
    return 2


_UNREACHABLE = (OSError, asyncpg.PostgresError, sqlite3.Error)


def _create(args: argparse.Namespace) -> int:
    try:
        new = _with_store(args, lambda s: s.create(args.account, args.scope))
    except ValueError as exc:
        return _fail(str(exc))
    except _UNREACHABLE as exc:
        return _fail(f"cannot reach the key store: {exc}")
    if args.json:
        out = {"account": new.key.account, "key_id": new.key.key_id, "secret": new.secret}
        print(json.dumps({**out, "scope": new.key.scope}))
    else:
        print(f"account  {new.key.account} ({new.key.scope})")
        print(f"key id   {new.key.key_id}")
        print(f"secret   {new.secret}")
        print("The secret is shown only now: keep it.")
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        found = _with_store(args, lambda s: s.list(args.account))
    except _UNREACHABLE as exc:
        return _fail(f"cannot reach the key store: {exc}")
    if args.json:
        print(json.dumps([_key_dict(k) for k in found]))
        return 0
    for k in found:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id}  {k.account}  {k.scope}  {k.created_at:%Y-%m-%d %H:%M}  {state}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        key = _with_store(args, lambda s: s.revoke(args.key_id))
    except _UNREACHABLE as exc:
        return _fail(f"cannot reach the key store: {exc}")
    if key is None:
        return _fail(f"no key {args.key_id!r}")
    print(json.dumps(_key_dict(key)) if args.json else f"revoked {key.key_id} ({key.account})")
    return 0
