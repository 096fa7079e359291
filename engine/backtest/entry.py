"""What every latency-simulating backtest venue does the same way: order entry delayed
by `latency_ns`, one repeating timer, a log. The venues differ in how orders meet the
market (the replayed L3 book, recorded tops), not in this."""

from __future__ import annotations

from collections import deque
from typing import Literal

from tickplane.engine.strategy.model import Order

__all__ = ["DelayedEntry", "Pending"]

# (arrives at ns, action, order, new qty, new price): an order request on its way.
Pending = tuple[int, Literal["new", "cancel", "replace"], Order, int | None, int | None]


class DelayedEntry:
    """The `Runtime` methods a strategy calls to trade and keep time, for venues whose
    requests arrive `latency_ns` after they are sent (the venue drains `pending`)."""

    def __init__(self, latency_ns: int, logs: list[str] | None = None) -> None:
        self.latency_ns = latency_ns
        self.clock = 0
        self.pending: deque[Pending] = deque()
        self.timer_interval = 0
        self.timer_next = -1
        self.logs = logs if logs is not None else []

    def now(self) -> int:
        return self.clock

    def send_new(self, order: Order) -> None:
        self.pending.append((self.clock + self.latency_ns, "new", order, None, None))

    def send_cancel(self, order: Order) -> None:
        self.pending.append((self.clock + self.latency_ns, "cancel", order, None, None))

    def send_replace(self, order: Order, qty: int | None, price: int | None) -> None:
        self.pending.append((self.clock + self.latency_ns, "replace", order, qty, price))

    def set_timer(self, interval_ns: int) -> None:
        self.timer_interval = max(0, interval_ns)
        self.timer_next = self.clock + interval_ns if interval_ns > 0 else -1

    def log(self, strategy: str, message: str) -> None:
        self.logs.append(f"{self.clock} {strategy}: {message}")
