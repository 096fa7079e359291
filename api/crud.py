"""The gateway's order records in PostgreSQL (table `api_orders`, see migrations/).

Idempotency by `client_order_id` is a lookup in this table: a submission with a
`client_order_id` first reserves the row `(account, client_order_id)` (a unique key);
a retry finds that row and gets the same order back, so the engine never sees the order
twice. A row whose `order_id` is still NULL is a submission in flight.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tickplane.api.keys import Db
from tickplane.api.schemas import OrderCreate

__all__ = [
    "cancel_reservation",
    "fingerprint",
    "get_order",
    "get_reservation",
    "insert_order",
    "reserve",
    "set_submitted",
    "update_order",
]

_COLUMNS = (
    "order_id, account, client_order_id, fingerprint, symbol, side, type, qty, limit_price,"
    " stop_price, time_in_force, post_only, status, reason, filled_qty, created_at"
)


def fingerprint(order: OrderCreate) -> str:
    """What makes two submissions the same order (the client_order_id aside)."""
    return order.model_dump_json(exclude={"client_order_id"})


def _values(account: str, order: OrderCreate) -> tuple[Any, ...]:
    return (
        account,
        order.client_order_id,
        fingerprint(order),
        order.symbol,
        order.side,
        order.type,
        order.qty,
        order.limit_price,
        order.stop_price,
        order.time_in_force,
        order.post_only,
    )


async def reserve(db: Db, account: str, order: OrderCreate) -> bool:
    """Reserve `(account, order.client_order_id)`; False if it is taken already."""
    row = await db.fetchrow(
        "INSERT INTO api_orders (account, client_order_id, fingerprint, symbol, side, type,"
        " qty, limit_price, stop_price, time_in_force, post_only, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending_new')"
        " ON CONFLICT (account, client_order_id) DO NOTHING RETURNING id",
        *_values(account, order),
    )
    return row is not None


async def get_reservation(db: Db, account: str, client_order_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM api_orders WHERE account = $1 AND client_order_id = $2",
        account,
        client_order_id,
    )
    return row


async def cancel_reservation(db: Db, account: str, client_order_id: str) -> None:
    """Drop a reservation whose order the engine refused (or never got)."""
    await db.execute(
        "DELETE FROM api_orders WHERE account = $1 AND client_order_id = $2 AND order_id IS NULL",
        account,
        client_order_id,
    )


async def set_submitted(
    db: Db,
    account: str,
    client_order_id: str,
    order_id: int,
    status: str,
    reason: str | None,
    filled_qty: int,
) -> asyncpg.Record:
    row: asyncpg.Record | None = await db.fetchrow(
        "UPDATE api_orders SET order_id = $3, status = $4, reason = $5, filled_qty = $6,"
        " updated_at = now() WHERE account = $1 AND client_order_id = $2"
        f" RETURNING {_COLUMNS}",
        account,
        client_order_id,
        order_id,
        status,
        reason,
        filled_qty,
    )
    assert row is not None
    return row


async def insert_order(
    db: Db,
    account: str,
    order: OrderCreate,
    order_id: int,
    status: str,
    reason: str | None,
    filled_qty: int,
) -> asyncpg.Record:
    """Record an order submitted without a client_order_id."""
    row: asyncpg.Record | None = await db.fetchrow(
        "INSERT INTO api_orders (account, client_order_id, fingerprint, symbol, side, type,"
        " qty, limit_price, stop_price, time_in_force, post_only, order_id, status, reason,"
        " filled_qty) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
        f" $15) RETURNING {_COLUMNS}",
        *_values(account, order),
        order_id,
        status,
        reason,
        filled_qty,
    )
    assert row is not None
    return row


async def get_order(db: Db, account: str, order_id: int) -> asyncpg.Record | None:
    """The record of one of `account`'s orders (another account's: None)."""
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM api_orders WHERE order_id = $1 AND account = $2",
        order_id,
        account,
    )
    return row


async def update_order(
    db: Db,
    account: str,
    order_id: int,
    *,
    status: str,
    reason: str | None = None,
    add_filled: int = 0,
    qty: int | None = None,
    limit_price: int | None = None,
) -> asyncpg.Record | None:
    """Record what the engine said about an order after a cancel or a replace."""
    row: asyncpg.Record | None = await db.fetchrow(
        "UPDATE api_orders SET status = $3, reason = $4, filled_qty = filled_qty + $5,"
        " qty = coalesce($6, qty), limit_price = coalesce($7, limit_price),"
        " updated_at = now() WHERE order_id = $1 AND account = $2"
        f" RETURNING {_COLUMNS}",
        order_id,
        account,
        status,
        reason,
        add_filled,
        qty,
        limit_price,
    )
    return row
