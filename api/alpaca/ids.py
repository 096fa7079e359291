"""Alpaca's identifiers as UUIDs, derived from Tickplane's without any table.

alpaca-py parses order ids as UUIDs before sending them, while the engine numbers
orders with integers. An order's UUID carries its engine id in the low 64 bits under a
fixed prefix, so the mapping is exact both ways and needs no storage. Assets and
accounts get name-based (version 5) UUIDs.
"""

from __future__ import annotations

import uuid
from typing import Final

__all__ = ["account_uuid", "asset_uuid", "engine_order_id", "execution_uuid", "order_uuid"]

# The high 64 bits of every order UUID ("tickplane order" in a fixed pattern).
_ORDER_PREFIX: Final = 0x7E1C_9A1E_0000_4000
_LOW: Final = (1 << 64) - 1
_NAMESPACE: Final = uuid.UUID("5f0b8c52-8f5e-4b5e-9d0a-6a1c7f3e2b10")


def order_uuid(order_id: int) -> str:
    """The UUID string alpaca-py sees for the engine's order `order_id`."""
    return str(uuid.UUID(int=(_ORDER_PREFIX << 64) | (order_id & _LOW)))


def engine_order_id(text: str) -> int | None:
    """The engine's order id inside an order UUID; None when `text` is not one of ours."""
    try:
        value = uuid.UUID(text).int
    except ValueError:
        return None
    if value >> 64 != _ORDER_PREFIX:
        return None
    order_id = value & _LOW
    return order_id if 0 < order_id < 1 << 63 else None


def asset_uuid(symbol: str) -> str:
    """A symbol's asset id (stable across restarts and gateways)."""
    return str(uuid.uuid5(_NAMESPACE, "asset:" + symbol))


def execution_uuid(seq: int, order_id: int) -> str:
    """A fill's id (the trade's seq and the filled order's id: one side of one trade)."""
    return str(uuid.uuid5(_NAMESPACE, f"execution:{seq}:{order_id}"))


def account_uuid(account: str) -> str:
    """An account's id as Alpaca shows it."""
    return str(uuid.uuid5(_NAMESPACE, "account:" + account))
