"""Realized P&L over time, replayed from an account's fills.

The engine keeps positions first-in first-out (engine/positions.py); the curve here
replays the same rule over the fills the gateway returns, so its last point agrees with
the realized P&L the positions show (within the fills the gateway still holds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime

from tickplane.ui.gateway import Execution

__all__ = ["realized_curve"]


def realized_curve(fills: Iterable[Execution]) -> list[tuple[datetime, str, int]]:
    """(time, symbol, cumulative realized P&L of that symbol in tick-lots) after each
    fill that closed some quantity, oldest first."""
    lots: dict[str, deque[list[int]]] = {}  # symbol -> open lots [signed qty, price]
    realized: dict[str, int] = {}
    points: list[tuple[datetime, str, int]] = []
    for fill in fills:
        if fill.time is None or fill.qty <= 0:
            continue
        book = lots.setdefault(fill.symbol, deque())
        signed = fill.qty if fill.side == "buy" else -fill.qty
        closed_any = False
        while signed and book and (book[0][0] > 0) != (signed > 0):
            head = book[0]
            take = min(abs(signed), abs(head[0]))
            # Closing a long sells above its cost; closing a short buys below it.
            direction = 1 if head[0] > 0 else -1
            realized[fill.symbol] = realized.get(fill.symbol, 0) + direction * take * (
                fill.price - head[1]
            )
            head[0] -= direction * take
            signed += direction * take
            closed_any = True
            if head[0] == 0:
                book.popleft()
        if signed:
            book.append([signed, fill.price])
        if closed_any:
            points.append((fill.time, fill.symbol, realized[fill.symbol]))
    return points
