"""The final state of the engine's recently finished orders, for `GetOrder`.

An order leaves the engine's live state when it is filled, canceled (by its owner, an
`ioc`/`fok`/market remainder, a kill switch, its group) or, routed to a venue, rejected
there; a client asks what happened to it most after that. `FinishedOrders` keeps the
last `capacity` of them (`EngineConfig.finished_orders`), oldest dropped first, and
`view` shows one as a `wire.OrderView` with its final `status` (`filled`, `canceled`,
`rejected`), `reason`, lots filled and their average price, and when it was accepted
and finished.

The cost stays small on the order path: `EngineState` hands it each numbered batch of
events (`observe`), which keeps each open order's acceptance (the event itself, no
copy), adds up fills, and notes a batch's cancels and rejects; when risk reports an
order gone (`RiskEngine.ended`, the one place every kind of order ends: the book's,
held legs and trailing stops, routed orders) one small record is appended, and the
view is built only when asked for. A refused new order is not
kept: its submit was answered with the refusal, synchronously.

Compiled by Cython as it stands (setup.py), with its C declarations in finished.pxd:
`observe` sees every numbered batch, and its dict and deque work as C calls cost half
what the interpreted module's did (0.65 against 1.4 us an order accepted then
canceled, at the bound). The store now costs the engine's loop 2.4k instructions a
request of orders and their cancels, 4.8% (5.0k interpreted; docs/engine-service.md).
It stays plain Python, checked by mypy, runnable uncompiled.

It is part of the engine's state: the snapshot holds it and recovery rebuilds it from
the journal (the fast path in recovery.py feeds it the same facts from core rows), so a
recovered engine answers exactly as the one before the crash.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from tickplane.core import wire
from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    StopTriggered,
    Trade,
)

__all__ = ["FinishedOrder", "FinishedOrders", "FinishedSnapshot"]


class FinishedOrder(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A finished order as kept: its acceptance as the order stood at its end (after
    replaces), how it ended, and its fills (lots, and their price x qty in tick-lots);
    `FinishedOrders.view` makes its `wire.OrderView` when asked. Not tracked by the
    garbage collector (it holds no cycle): half a million of them cost a full
    collection nothing."""

    accepted: OrderAccepted
    status: str
    reason: str | None
    finished_ns: int
    filled: int
    notional: int
    hwm: int | None = None  # a trailing stop's last watermark (last: older records decode)


class FinishedSnapshot(msgspec.Struct, array_like=True):
    """`FinishedOrders` as the engine's snapshot stores it."""

    open: list[OrderAccepted] = msgspec.field(default_factory=list)
    fills: list[tuple[int, int, int, int]] = msgspec.field(default_factory=list)
    done: list[FinishedOrder] = msgspec.field(default_factory=list)
    dropped: int = 0
    # open trailing stops' watermarks: (id, hwm)
    hwms: list[tuple[int, int]] = msgspec.field(default_factory=list)


class FinishedOrders:
    """The last `capacity` finished orders by id (module docstring); 0 keeps none."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # accepted and not finished: the acceptance as the order is now (after replaces)
        self.open: dict[int, OrderAccepted] = {}
        self.fills: dict[int, list[int]] = {}  # id -> [lots, tick-lots, ts of the last]
        self.done: dict[int, FinishedOrder] = {}  # oldest first
        # their ids, oldest first: the oldest found without iterating `done`, which
        # scans the slots its earlier deletions left (~37 us an order once full)
        self._oldest: deque[int] = deque()
        self.dropped = 0  # finished orders dropped for the bound, ever
        # this batch's cancels and rejects: id -> (status, reason, ts); they finish an
        # order only if risk reports it gone in the same batch (a refused replace of a
        # routed order is a reject that leaves it open)
        self.ends: dict[int, tuple[str, str | None, int]] = {}
        # open trailing stops' watermarks (their OrderTrailed's hwm): id -> hwm
        self.hwms: dict[int, int] = {}
        self._folds: dict[type, Callable[[Any], None]] = {
            Trade: self._trade,
            OrderCanceled: self._canceled,
            OrderRejected: self._rejected,
            OrderReplaced: self.changed,
            OrderTrailed: self.changed,
            StopTriggered: self.changed,
        }

    # -- what happened ---------------------------------------------------------------

    def observe(self, events: list[Event], ended: list[int]) -> None:
        """A numbered batch of events, and the orders risk reported gone meanwhile."""
        folds, open_, ends = self._folds, self.open, self.ends
        for ev in events:
            # the commonest two inline (a new order, a cancel), by exact type
            if type(ev) is OrderAccepted:
                if ev.id not in open_:
                    open_[ev.id] = ev  # the first record of an id stays
            elif type(ev) is OrderCanceled:
                ends[ev.id] = ("canceled", ev.reason, ev.ts_event)
            else:  # one lookup: most other events concern no order
                fold = folds.get(type(ev))
                if fold is not None:
                    fold(ev)
        if ended or ends:
            self.settle(ended, events[-1].ts_event if events else 0)

    def begin(self, accepted: OrderAccepted) -> None:
        """An accepted order (its `OrderAccepted`), or one that ends before any
        acceptance of its own (a routed order the venue rejects) as its owner knew it:
        open until risk reports it gone. The first record of an id stays."""
        self.open.setdefault(accepted.id, accepted)

    def _trade(self, ev: Trade) -> None:
        self.fill(ev.taker, ev.qty, ev.price, ev.ts_event)
        self.fill(ev.maker, ev.qty, ev.price, ev.ts_event)

    def _canceled(self, ev: OrderCanceled) -> None:
        self.ends[ev.id] = ("canceled", ev.reason, ev.ts_event)

    def _rejected(self, ev: OrderRejected) -> None:
        self.ends[ev.id] = ("rejected", ev.reason, ev.ts_event)

    def fill(self, order_id: int, qty: int, price: int, ts: int) -> None:
        """An open order traded `qty` lots at `price`."""
        if order_id in self.open:
            f = self.fills.get(order_id)
            if f is None:
                self.fills[order_id] = [qty, qty * price, ts]
            else:
                f[0] += qty
                f[1] += qty * price
                f[2] = ts

    def late_fill(self, order_id: int, qty: int, price: int) -> None:
        """A finished order traded after all: a routed order rejected because its
        submit may have reached the venue, which executed it there (docs/venues.md,
        "Late fills"). It keeps its status and reason, with the lots it filled."""
        d = self.done.get(order_id)
        if d is not None:  # in place: it keeps its age
            self.done[order_id] = msgspec.structs.replace(
                d, filled=d.filled + qty, notional=d.notional + qty * price
            )

    def end(self, order_id: int, status: str, reason: str, ts: int) -> None:
        """A cancel or reject of `order_id` in this batch (`observe` notes its own)."""
        self.ends[order_id] = (status, reason, ts)

    def changed(self, ev: OrderReplaced | OrderTrailed | StopTriggered) -> None:
        """An open order's prices (and, replaced, its quantity) as they are now."""
        rec = self.open.get(ev.id)
        if rec is None:
            return
        rep = msgspec.structs.replace
        if isinstance(ev, OrderReplaced):
            filled = self.fills[ev.id][0] if ev.id in self.fills else 0
            self.open[ev.id] = rep(
                rec,
                # a leg's quantity is its parent's; what it works follows its group
                qty=rec.qty if rec.parent_id is not None else filled + ev.qty,
                price=ev.price if rec.price is not None else None,
                stop_price=ev.stop_price if ev.stop_price is not None else rec.stop_price,
                trail_price=ev.trail_price if ev.trail_price is not None else rec.trail_price,
                trail_percent=(
                    ev.trail_percent if ev.trail_percent is not None else rec.trail_percent
                ),
            )
        else:
            if isinstance(ev, OrderTrailed):
                self.hwms[ev.id] = ev.hwm
            if ev.stop_price != rec.stop_price:
                self.open[ev.id] = rep(rec, stop_price=ev.stop_price)

    def settle(self, ended: list[int], ts: int) -> None:
        """Finish the orders risk reported gone (`ended`, emptied), with this batch's
        cancels and rejects; `ts` for one that ends with neither nor a fill."""
        ends, done, open_, fills = self.ends, self.done, self.open, self.fills
        oldest = self._oldest
        for order_id in ended:
            rec = open_.pop(order_id, None)
            if rec is None:
                continue  # never accepted (a routed leg of a rejected parent)
            f = fills.pop(order_id, None) if fills else None
            if f is None:
                filled = notional = 0
            else:
                filled, notional = f[0], f[1]
            end = ends.get(order_id) if ends else None
            if end is not None:
                status, reason, when = end
            else:  # gone without a cancel: it filled all it was given
                status, reason, when = "filled", None, f[2] if f is not None else ts
            hwm = self.hwms.pop(order_id, None) if self.hwms else None
            done[order_id] = FinishedOrder(rec, status, reason, when, filled, notional, hwm)
            oldest.append(order_id)
            if len(oldest) > self.capacity:
                del done[oldest.popleft()]
                self.dropped += 1
        ended.clear()
        if ends:
            ends.clear()

    # -- queries ----------------------------------------------------------------------

    def view(self, order_id: int, account: str) -> wire.OrderView | None:
        """The finished order `order_id` of `account`, if still kept."""
        d = self.done.get(order_id)
        if d is None or d.accepted.account != account:
            return None
        rec = d.accepted
        return wire.OrderView(
            rec.id,
            rec.account,
            rec.symbol,
            rec.side,
            rec.order_type,
            d.status,
            rec.price,
            rec.stop_price,
            0,  # open quantity
            rec.tif,
            rec.client_order_id,
            rec.order_class,
            rec.parent_id,
            rec.leg,
            rec.trail_price,
            rec.trail_percent,
            d.filled,
            d.hwm,
            d.notional / d.filled if d.filled else None,
            d.reason,
            rec.ts_event,
            d.finished_ns,
            rec.qty,
        )

    def unknown_message(self, order_id: int, last_id: int) -> str:
        """Why `GetOrder` has nothing for an order id of this account."""
        if 0 < order_id <= last_id:
            return (
                f"no open order {order_id}, nor one among the last {self.capacity} "
                "finished orders this engine keeps (too old, or not this account's)"
            )
        return f"no order {order_id}"

    # -- snapshots --------------------------------------------------------------------

    def snapshot(self) -> FinishedSnapshot:
        return FinishedSnapshot(
            list(self.open.values()),
            [(i, f[0], f[1], f[2]) for i, f in self.fills.items()],
            list(self.done.values()),
            self.dropped,
            list(self.hwms.items()),
        )

    def restore(self, snap: FinishedSnapshot) -> None:
        """Resume from `snapshot()` (a bound lowered since keeps the newest)."""
        self.open = {ev.id: ev for ev in snap.open}
        self.fills = {i: [q, n, t] for i, q, n, t in snap.fills}
        self.done = {d.accepted.id: d for d in snap.done}
        self._oldest = deque(self.done)
        self.dropped = snap.dropped
        self.hwms = dict(snap.hwms)
        while len(self._oldest) > self.capacity:
            del self.done[self._oldest.popleft()]
            self.dropped += 1
