"""Idempotent order entry: what `(account, client_order_id)` pairs the engine accepted.

The engine is the single writer of trading state, so it is the one place that can say
"this order was already placed" without a race. For the life of the journal it keeps,
per account, every client order id it accepted with the order id and a fingerprint of
the order's fields; the table is in snapshots and rebuilt on recovery from the
journal's client-order-id marks (see docs/engine-service.md, "Idempotency").

Memory: one entry is a dict slot, the id string and one int packing the order id (low
48 bits) with the 64-bit fingerprint: about 115 bytes plus the id's length (133
measured with 18-character ids).
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec

from tickplane.core import wire

__all__ = ["ClientOrderIds", "fingerprint"]

_ID_BITS: Final = 48
_ID_MASK: Final = (1 << _ID_BITS) - 1
_encode = msgspec.msgpack.Encoder().encode


def fingerprint(req: wire.NewOrder) -> int:
    """A stable 64-bit digest of what the order asks for (not its `req`, account or id).

    Stable across processes and versions: the fields hashed are listed here, and the
    optional fields of the order classes join the digest only when they are set, so an
    order without them hashes as it did before they existed."""
    fields: list[object] = [
        req.symbol,
        req.side,
        req.order_type,
        req.qty,
        req.price,
        req.stop_price,
        req.tif,
        req.post_only,
    ]
    extra = contingent_fields(req)
    if extra:
        fields.append(extra)
    digest = hashlib.blake2b(_encode(fields), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def contingent_fields(req: wire.NewOrder) -> list[object]:
    """The order-class fields of a request, [] when none is set (plain orders)."""
    out: list[object] = []
    for name in ("order_class", "take_profit", "stop_loss", "trail_price", "trail_percent"):
        value = getattr(req, name, None)
        if value is not None and value != "simple":
            out.append([name, msgspec.to_builtins(value)])
    return out


class ClientOrderIds:
    """`(account, client_order_id) -> (order id, fingerprint)`, accounts as the
    engine's interned integers."""

    __slots__ = ("_by_account",)

    def __init__(self) -> None:
        self._by_account: dict[int, dict[str, int]] = {}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._by_account.values())

    def get(self, account: int, client_order_id: str) -> tuple[int, int] | None:
        """The (order id, fingerprint) this pair was accepted with, if it was."""
        ids = self._by_account.get(account)
        packed = None if ids is None else ids.get(client_order_id)
        if packed is None:
            return None
        return packed & _ID_MASK, packed >> _ID_BITS

    def remember(self, account: int, client_order_id: str, order_id: int, fp: int) -> None:
        if not 0 < order_id <= _ID_MASK:
            raise ValueError(f"order id {order_id} out of range")
        ids = self._by_account.setdefault(account, {})
        ids[client_order_id] = order_id | (fp << _ID_BITS)

    def forget(self, account: int, client_order_id: str, order_id: int) -> None:
        """Release a pair whose order was rejected (only if it still names that order)."""
        ids = self._by_account.get(account)
        if ids is not None:
            packed = ids.get(client_order_id)
            if packed is not None and packed & _ID_MASK == order_id:
                del ids[client_order_id]

    def dump(self) -> list[tuple[int, str, int, int]]:
        """Every entry as (account, client_order_id, order id, fingerprint), sorted."""
        return sorted(
            (acc, coid, packed & _ID_MASK, packed >> _ID_BITS)
            for acc, ids in self._by_account.items()
            for coid, packed in ids.items()
        )

    def load(self, rows: list[tuple[int, str, int, int]]) -> None:
        self._by_account = {}
        for acc, coid, order_id, fp in rows:
            self.remember(acc, coid, order_id, fp)
