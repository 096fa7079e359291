"""`Projection`: the gateway's in-memory view of one engine's sequenced event stream.

The engine is the truth and the gateway keeps no order state of its own: every order,
fill and position the API shows is what this view derived from the engine's events,
read from seq 1 (`EngineClient.events(from_seq=1)`, gaps filled through the engine's
replay service, so a gateway started late still sees everything).

    projection = Projection(engine)          # engine: a connected EngineClient
    await projection.start()                 # consumes the stream in a task
    ack = await engine.submit(...)
    await projection.wait_for(ack.last_seq)  # read-your-writes
    order = projection.order("alice", ack.order_id)
    async with projection.subscribe(account="alice") as sub:
        async for update in sub:             # OrderUpdate | PositionUpdate
            ...

Orders keep their class (docs/order-classes.md): `order_class`, a leg's `parent_id` and
`leg` role, a trailing stop's trail; a bracket's or OTO's leg is `held` (working
nothing) until `OrderActivated`, and `legs(account, parent_id)` finds a parent's legs,
so a closed bracket, OTO or OCO still reads as one.

What it holds, per account: orders (open ones always; closed ones up to
`max_closed_orders`, oldest evicted first), executions (the last `max_executions`),
positions and cash; per symbol: the last `max_trades` trades and the top of book.
Full history is the recorder's PostgreSQL.

Market data (tops and L2 deltas) is outside the sequenced stream, numbered per symbol
by `md_seq`; the view reads it gap-free too (`md_from`: what ZeroMQ dropped is filled
from the engine's market-data log), starting at each symbol's latest top, and passes
it on in md_seq order, each once. Numbers the engine no longer keeps are passed on as
a `gap` MarketUpdate (api/market_cursors.py). A market subscriber starts from
`market_start(...)`, which the updates that follow continue exactly.

Everything it hands out is immutable (frozen structs): a snapshot stays true to the
moment it was taken while the view moves on.

Subscriptions are bounded queues: a subscriber that falls `queue_size` updates behind
is dropped (`SubscriptionOverflow` from its iterator), so a slow reader never slows the
projection or any other subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import msgspec

from tickplane.api.market_cursors import Hole, MarketCursors
from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineError
from tickplane.core.events import (
    BookDelta,
    BookLevel,
    Event,
    KillSwitchChanged,
    MarketData,
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    PositionChanged,
    StopTriggered,
    SymbolHalted,
    SymbolResumed,
    TopOfBook,
    Trade,
)

__all__ = [
    "Execution",
    "MarketUpdate",
    "OrderRecord",
    "OrderStatus",
    "OrderUpdate",
    "Position",
    "PositionUpdate",
    "Projection",
    "Subscription",
    "SubscriptionOverflow",
    "Update",
    "apply_order_event",
    "order_from_accepted",
    "order_from_view",
]

log = logging.getLogger(__name__)

OrderStatus = Literal["new", "held", "partially_filled", "filled", "canceled", "rejected"]
OPEN_STATUSES: frozenset[str] = frozenset({"new", "held", "partially_filled"})
# Types that rest untriggered (`held`) until the market reaches their stop.
_STOPS: frozenset[str] = frozenset({"stop", "stop_limit", "trailing_stop"})


class OrderRecord(msgspec.Struct, frozen=True):
    """One order as the engine's events tell it.

    `qty` is the order's total quantity (after replaces: filled + the new open
    quantity), `open_qty` what still rests (0 once closed), `avg_fill_price` the
    quantity-weighted price of its fills (ticks, a float; None before the first fill).
    Timestamps are the engine's (int ns). `reason` says why it was canceled or
    rejected (`user`, `ioc`, `kill_switch`, ...).

    Order classes (docs/order-classes.md): `order_class` is `bracket`, `oto` or `oco`
    on a parent and its legs, `simple` on a trailing stop, None on a plain order; a
    leg names its `parent_id` and its `leg` role (`take_profit`, `stop_loss`). A
    bracket's or OTO's leg is `held` with `open_qty` 0 until the parent's fills
    activate it (`OrderActivated`: it then works what the parent filled); its `qty`
    stays the parent's. `stop_price` is a stop's; a trailing stop's follows its
    `OrderTrailed` events, with `hwm` the watermark it trails (None before its first
    move); its `trail_price` / `trail_percent` are the ones it was accepted with until
    an `OrderReplaced` gives a new one.

    Not `kw_only`: a 25-field struct built by keyword costs ~4x one built by position
    (msgspec matches each keyword against the fields), and the projection builds one
    per order (`order_from_accepted`); keywords work as well."""

    id: int
    account: str
    symbol: str
    side: str
    type: str
    qty: int
    limit_price: int | None
    stop_price: int | None
    time_in_force: str
    post_only: bool
    client_order_id: str | None
    status: OrderStatus
    reason: str | None = None
    filled_qty: int = 0
    open_qty: int = 0
    filled_notional: int = 0  # sum of price * qty of the fills (tick-lots)
    created_ns: int = 0
    updated_ns: int = 0
    seq: int = 0  # the seq of the last event that changed it
    order_class: str | None = None
    parent_id: int | None = None
    leg: str | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    hwm: int | None = None

    @property
    def is_leg(self) -> bool:
        return self.parent_id is not None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_fill_price(self) -> float | None:
        return self.filled_notional / self.filled_qty if self.filled_qty else None


class Execution(msgspec.Struct, frozen=True, kw_only=True):
    """One fill of one of an account's orders (a trade seen from one side); `cum_qty`
    and `leaves_qty` are the order's filled and open quantities right after it."""

    seq: int
    ts_event: int
    order_id: int
    account: str
    symbol: str
    side: str
    price: int
    qty: int
    liquidity: Literal["taker", "maker"]
    client_order_id: str | None = None
    cum_qty: int = 0
    leaves_qty: int = 0


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """An account's position in a symbol (from the engine's PositionChanged):
    signed lots, the cost of the open position and the realized P&L (tick-lots);
    `unrealized_pnl` as of that change, at its trade's price (the mark then; None from
    an engine that predates the field). The REST views value it at the last price now."""

    account: str
    symbol: str
    qty: int
    cost_basis: int
    realized_pnl: int
    seq: int
    ts_event: int
    unrealized_pnl: int | None = None

    @property
    def avg_entry_price(self) -> float | None:
        return self.cost_basis / self.qty if self.qty else None


class OrderUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Something happened to an order: `event` is `new`, `held` (an accepted stop),
    `triggered`, `fill`, `partial_fill`, `canceled`, `replaced` or `change_rejected`
    (a venue refused a cancel or replace; the order is unchanged);
    `order` is its state after it, `execution` the fill of a fill event."""

    seq: int
    ts_event: int
    event: str
    order: OrderRecord
    execution: Execution | None = None


class PositionUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """An account's position and cash after a fill."""

    seq: int
    position: Position
    cash: int


class MarketUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's market data: a trade, a top of book, an L2 delta, or a halt; or a
    `gap`: the tops and deltas numbered `from_md_seq`..`to_md_seq` that were not passed
    on will not be (the engine no longer keeps them, or has no market-data log)."""

    symbol: str
    kind: Literal["trade", "top", "delta", "halted", "resumed", "gap"]
    trade: Trade | None = None
    top: TopOfBook | None = None
    delta: BookDelta | None = None
    status: SymbolHalted | SymbolResumed | None = None
    from_md_seq: int | None = None
    to_md_seq: int | None = None


Update: TypeAlias = OrderUpdate | PositionUpdate | MarketUpdate


class SubscriptionOverflow(Exception):
    """The subscriber fell more than its queue's size behind and was dropped."""


class Subscription:
    """A bounded queue of updates for one subscriber (see `Projection.subscribe`)."""

    def __init__(self, queue_size: int, account: str | None, symbol: str | None) -> None:
        self.account = account
        self.symbol = symbol
        self.queue_size = queue_size
        self.overflowed = False
        self._items: deque[Update] = deque()
        self._ready = asyncio.Event()

    def push(self, update: Update) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self.queue_size:
            self.overflowed = True
            self._items.clear()
        else:
            self._items.append(update)
        self._ready.set()

    async def get(self) -> Update:
        """The next update; SubscriptionOverflow once the subscriber was dropped."""
        while not self._items:
            if self.overflowed:
                raise SubscriptionOverflow(f"more than {self.queue_size} updates behind")
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def drain(self) -> list[Update]:
        """Every queued update, without waiting (empty when none)."""
        if self.overflowed:
            raise SubscriptionOverflow(f"more than {self.queue_size} updates behind")
        out = list(self._items)
        self._items.clear()
        return out

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        return await self.get()


def order_from_accepted(ev: OrderAccepted) -> OrderRecord:
    """A new order's record from its OrderAccepted."""
    # a bracket's or OTO's leg waits for its parent's fills; an OCO's leg works at once
    waiting = ev.parent_id is not None and ev.order_class != "oco"
    # By position, in OrderRecord's field order (see its docstring: the projection's
    # hottest line).
    return OrderRecord(
        ev.id,
        ev.account,
        ev.symbol,
        ev.side,
        ev.order_type,
        ev.qty,
        ev.price,  # limit_price
        ev.stop_price,
        ev.tif,  # time_in_force
        ev.post_only,
        ev.client_order_id,
        "held" if waiting or ev.order_type in _STOPS else "new",  # status
        None,  # reason
        0,  # filled_qty
        0 if waiting else ev.qty,  # open_qty
        0,  # filled_notional
        ev.ts_event,  # created_ns
        ev.ts_event,  # updated_ns
        ev.seq,
        ev.order_class,
        ev.parent_id,
        ev.leg,
        ev.trail_price,
        ev.trail_percent,
    )


_VIEW_STATUSES: dict[str, OrderStatus] = {
    "held": "held",
    "routed": "new",
    "filled": "filled",
    "canceled": "canceled",
    "rejected": "rejected",
}


def order_from_view(view: wire.OrderView) -> OrderRecord:
    """An order as the engine's `GetOrder` shows it (open, or recently finished), for a
    read the projection cannot answer: it dropped the order (`max_closed_orders`), or
    began after the engine's replay had let its events go. `seq` is 0 and `post_only`
    False (the view carries neither); an open order's times are unknown (0)."""
    filled = view.filled_qty
    status = _VIEW_STATUSES.get(view.status) or ("partially_filled" if filled else "new")
    avg = view.avg_fill_price
    return OrderRecord(
        view.id,
        view.account,
        view.symbol,
        view.side,
        view.order_type,
        view.total_qty if view.total_qty is not None else filled + view.qty,
        view.price,  # limit_price
        view.stop_price,
        view.tif,  # time_in_force
        False,  # post_only
        view.client_order_id,
        status,
        view.reason,
        filled,
        view.qty,  # open_qty
        0 if avg is None else round(avg * filled),  # filled_notional
        view.created_ns or 0,
        view.finished_ns or view.created_ns or 0,  # updated_ns
        0,  # seq
        view.order_class,
        view.parent_id,
        view.leg,
        view.trail_price,
        view.trail_percent,
        view.hwm,
    )


def _working(order: OrderRecord) -> OrderStatus:
    """The status of an open order that works in the market."""
    return "partially_filled" if order.filled_qty else "new"


def apply_order_event(
    order: OrderRecord, ev: Event, parent: OrderRecord | None = None
) -> tuple[OrderRecord, str, Execution | None] | None:
    """The order after `ev`, the update's event name and the fill (if a fill); None
    when `ev` does not change this order. `parent` is a leg's parent (as known now):
    a leg that has worked off everything it was given is done only once its parent
    is (until then the parent's next fill activates it again)."""
    rep = msgspec.structs.replace
    if isinstance(ev, Trade):
        if order.id == ev.taker:
            liquidity: Literal["taker", "maker"] = "taker"
        elif order.id == ev.maker:
            liquidity = "maker"
        else:
            return None
        filled = order.filled_qty + ev.qty
        open_qty = max(order.open_qty - ev.qty, 0)
        done = open_qty == 0
        if done and order.is_leg and filled < order.qty:
            done = parent is None or not parent.is_open
        new = rep(
            order,
            status="filled" if done else "partially_filled",
            filled_qty=filled,
            open_qty=open_qty,
            filled_notional=order.filled_notional + ev.price * ev.qty,
            updated_ns=ev.ts_event,
            seq=ev.seq,
        )
        fill = Execution(
            seq=ev.seq,
            ts_event=ev.ts_event,
            order_id=order.id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            price=ev.price,
            qty=ev.qty,
            liquidity=liquidity,
            client_order_id=order.client_order_id,
            cum_qty=filled,
            leaves_qty=open_qty,
        )
        return new, "fill" if done else "partial_fill", fill
    if getattr(ev, "id", None) != order.id:
        return None
    if isinstance(ev, OrderCanceled):
        new = rep(
            order,
            status="canceled",
            reason=ev.reason,
            open_qty=0,
            updated_ns=ev.ts_event,
            seq=ev.seq,
        )
        return new, "canceled", None
    if isinstance(ev, OrderReplaced):
        if not order.is_open:
            return None
        new = rep(
            order,
            # a leg's quantity is its parent's; what it works follows the group's fills
            qty=order.qty if order.is_leg else order.filled_qty + ev.qty,
            open_qty=ev.qty,
            limit_price=ev.price if order.limit_price is not None else order.limit_price,
            stop_price=ev.stop_price if ev.stop_price is not None else order.stop_price,
            # a trailing stop's trail as the replace left it (None: not a trailing
            # stop, or an engine that predates the field: the trail it had)
            trail_price=ev.trail_price if ev.trail_price is not None else order.trail_price,
            trail_percent=(
                ev.trail_percent if ev.trail_percent is not None else order.trail_percent
            ),
            status=_working(order) if order.status != "held" else "held",
            updated_ns=ev.ts_event,
            seq=ev.seq,
        )
        return new, "replaced", None
    if isinstance(ev, OrderActivated):
        if not order.is_open:
            return None
        # a limit leg now rests in the book; a stop leg waits for its stop (still held)
        held = order.status == "held" and order.type in _STOPS
        new = rep(
            order,
            open_qty=ev.qty,
            status="held" if held else _working(order),
            updated_ns=ev.ts_event,
            seq=ev.seq,
        )
        return new, "activated", None
    if isinstance(ev, OrderTrailed):
        if not order.is_open:
            return None
        new = rep(order, stop_price=ev.stop_price, hwm=ev.hwm, updated_ns=ev.ts_event, seq=ev.seq)
        return new, "trailed", None
    if isinstance(ev, StopTriggered):
        new = rep(
            order,
            status=_working(order),
            stop_price=ev.stop_price,
            updated_ns=ev.ts_event,
            seq=ev.seq,
        )
        return new, "triggered", None
    if isinstance(ev, OrderRejected):
        # An order the projection knows was accepted: this is a refused cancel or
        # replace (of an order routed to a venue); the order stays as it was.
        if not order.is_open:
            return None
        new = rep(order, reason=ev.reason, updated_ns=ev.ts_event, seq=ev.seq)
        return new, "change_rejected", None
    return None


@dataclass
class _Book:
    """What the projection keeps of one account."""

    orders: dict[int, OrderRecord]
    closed: deque[int]  # closed order ids, oldest first (eviction order); each once
    by_client_id: dict[str, int]
    executions: deque[Execution]
    positions: dict[str, Position]
    legs: dict[int, list[int]]  # parent id -> its legs' ids (kept while the parent is)
    cash: int = 0
    killed: bool = False


class Projection:
    """The engine's event stream folded into queryable state (see the module docstring).

    `max_closed_orders` and `max_executions` bound what is kept per account,
    `max_trades` per symbol; `queue_size` bounds each subscription."""

    def __init__(
        self,
        engine: EngineClient,
        *,
        max_closed_orders: int = 10_000,
        max_executions: int = 10_000,
        max_trades: int = 1_000,
        queue_size: int = 10_000,
    ) -> None:
        self.engine = engine
        self.max_closed_orders = max_closed_orders
        self.max_executions = max_executions
        self.max_trades = max_trades
        self.queue_size = queue_size
        self.seq = 0  # the last event applied
        self.engine_killed = False
        self.halted: dict[str, SymbolHalted] = {}
        self._accounts: dict[str, _Book] = {}
        self._trades: dict[str, deque[Trade]] = {}
        self._tops: dict[str, TopOfBook] = {}
        self._md_cursors = MarketCursors()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()
        self._subs: dict[str | None, set[Subscription]] = {}  # account -> subscriptions
        self._market_subs: dict[str | None, set[Subscription]] = {}  # symbol -> subs
        self._written: dict[str, int] = {}  # account -> last_seq of its last write
        self.engine_seq = 0  # the highest last_seq seen in an engine reply
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.on_apply: Callable[[Event], None] | None = None
        # told each market-data hole (symbol, first md_seq, last): the gateway's metrics
        self.on_gap: Callable[[str, int, int], None] | None = None
        self._folds: dict[type, Callable[[Any], None]] = {
            OrderAccepted: self._accepted,
            Trade: self._trade,
            OrderCanceled: self._changed,
            OrderReplaced: self._changed,
            StopTriggered: self._changed,
            OrderRejected: self._changed,
            OrderActivated: self._changed,
            OrderTrailed: self._changed,
            PositionChanged: self._position,
            KillSwitchChanged: self._kill_switch,
            SymbolHalted: self._halted,
            SymbolResumed: self._resumed,
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Consume the engine's stream from seq 1 in a task (until `stop`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _consume(self) -> None:
        backoff = 0.1
        while True:
            try:
                # market_data [""]: the prefix `m.` subscribes every symbol's market data;
                # md_from makes it gap-free (filled from the engine's market-data log).
                md_from = await self._md_from()
                apply, market = self.apply, self._market
                stream = self.engine.events(
                    from_seq=self.seq + 1, market_data=[""], md_from=md_from
                )
                async for msg in stream:
                    backoff = 0.1
                    kind = type(msg)
                    if kind is TopOfBook or kind is BookDelta:
                        market(msg)  # type: ignore[arg-type]
                    else:
                        apply(msg)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # engine gone or replay refused: retry from seq
                self.error = exc
                log.warning("event stream broke at seq %d (%s); reconnecting", self.seq, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _md_from(self) -> dict[str, int]:
        """Where each of the engine's symbols' market data starts: where it stopped, or
        for a symbol not seen yet, at its latest top (so the view has every symbol's
        current top at once; GetBook names it, all symbols asked in one batch)."""
        reply = await self.engine.get_symbols()
        if not isinstance(reply, wire.Ack) or reply.symbols is None:
            raise EngineError(f"the engine did not list its symbols: {reply}")
        names = [s.name for s in reply.symbols]
        resume = {name: self._md_cursors.resume_at(name) for name in names}
        unseen = [name for name, at in resume.items() if at is None]
        books = await asyncio.gather(*(self.engine.get_book(name, 1) for name in unseen))
        out = {name: at for name, at in resume.items() if at is not None}
        for name, book in zip(unseen, books, strict=True):
            latest = book.book.md_seq if isinstance(book, wire.Ack) and book.book else 0
            out[name] = max(latest, 1)
        return out

    # -- applying events -------------------------------------------------------------------

    def _book(self, account: str) -> _Book:
        book = self._accounts.get(account)
        if book is None:
            book = _Book({}, deque(), {}, deque(maxlen=self.max_executions), {}, {})
            self._accounts[account] = book
        return book

    def apply_all(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.apply(ev)

    def apply(self, ev: Event) -> None:
        """Fold one event in (events at or below `seq` were applied already: skipped)."""
        if ev.seq <= self.seq:
            return
        # By exact type, not a chain of isinstance: the projection applies every event
        # of the engine (each gateway worker does), so this is its hottest path.
        fold = self._folds.get(type(ev))
        if fold is not None:
            fold(ev)
        self.seq = ev.seq
        if self.on_apply is not None:
            self.on_apply(ev)
        if self._waiters:
            self._wake()

    def _accepted(self, ev: OrderAccepted) -> None:
        order = order_from_accepted(ev)
        book = self._accounts.get(ev.account) or self._book(ev.account)
        book.orders[ev.id] = order
        if ev.client_order_id is not None:
            book.by_client_id[ev.client_order_id] = ev.id
        if ev.parent_id is not None:
            book.legs.setdefault(ev.parent_id, []).append(ev.id)
        self._publish_order(ev.seq, ev.ts_event, order.status, order)

    def _trade(self, ev: Trade) -> None:
        for oid, account in ((ev.taker, ev.taker_account), (ev.maker, ev.maker_account)):
            self._order_event(account, oid, ev)
        trades = self._trades.get(ev.symbol)
        if trades is None:
            trades = self._trades[ev.symbol] = deque(maxlen=self.max_trades)
        trades.append(ev)
        self._publish_market(ev.symbol, "trade", ev)

    def _changed(
        self,
        ev: OrderCanceled
        | OrderReplaced
        | StopTriggered
        | OrderRejected
        | OrderActivated
        | OrderTrailed,
    ) -> None:
        self._order_event(ev.account, ev.id, ev)

    def _position(self, ev: PositionChanged) -> None:
        book = self._book(ev.account)
        pos = Position(
            account=ev.account,
            symbol=ev.symbol,
            qty=ev.position,
            cost_basis=ev.cost_basis,
            realized_pnl=ev.realized_pnl,
            seq=ev.seq,
            ts_event=ev.ts_event,
            unrealized_pnl=ev.unrealized_pnl,
        )
        book.positions[ev.symbol] = pos
        book.cash = ev.cash
        if self._subs:
            self._publish(ev.account, PositionUpdate(seq=ev.seq, position=pos, cash=ev.cash))

    def _kill_switch(self, ev: KillSwitchChanged) -> None:
        if ev.account is None:
            self.engine_killed = ev.engaged
        else:
            self._book(ev.account).killed = ev.engaged

    def _halted(self, ev: SymbolHalted) -> None:
        self.halted[ev.symbol] = ev
        self._publish_market(ev.symbol, "halted", ev)

    def _resumed(self, ev: SymbolResumed) -> None:
        self.halted.pop(ev.symbol, None)
        self._publish_market(ev.symbol, "resumed", ev)

    def _order_event(self, account: str, order_id: int, ev: Event) -> None:
        book = self._accounts.get(account)
        order = None if book is None else book.orders.get(order_id)
        if book is None or order is None:
            if order_id and type(ev) is Trade:
                self._late_fill(account, order_id, ev)
            return
        parent = None if order.parent_id is None else book.orders.get(order.parent_id)
        changed = apply_order_event(order, ev, parent)
        if changed is None:
            return
        new, name, fill = changed
        self._store(book, order, new)
        if fill is not None:
            book.executions.append(fill)
        self._publish_order(ev.seq, ev.ts_event, name, new, fill)
        if order_id in book.legs and isinstance(ev, OrderCanceled):
            self._end_legs(book, order_id, ev)

    def _late_fill(self, account: str, order_id: int, ev: Trade) -> None:
        """A fill of an order the projection does not hold: one the engine rejected
        because its submit may have reached the venue anyway, where it executed
        (docs/venues.md, "Late fills"). The order stays rejected (unknown here, as any
        order rejected before it was accepted); the fill is the account's execution,
        with what the order filled so far and nothing left open. Rare: its earlier
        fills are counted from the kept executions."""
        book = self._book(account)
        taker = order_id == ev.taker
        side = ev.taker_side if taker else ("sell" if ev.taker_side == "buy" else "buy")
        filled = ev.qty + sum(x.qty for x in book.executions if x.order_id == order_id)
        fill = Execution(
            seq=ev.seq,
            ts_event=ev.ts_event,
            order_id=order_id,
            account=account,
            symbol=ev.symbol,
            side=side,
            price=ev.price,
            qty=ev.qty,
            liquidity="taker" if taker else "maker",
            cum_qty=filled,
            leaves_qty=0,
        )
        book.executions.append(fill)

    def _store(self, book: _Book, old: OrderRecord, new: OrderRecord) -> None:
        """Keep `new` in place of `old`; a close is noted (and the oldest closed orders
        beyond `max_closed_orders` evicted, with what points at them)."""
        book.orders[new.id] = new
        if new.status in OPEN_STATUSES or old.status not in OPEN_STATUSES:
            return
        book.closed.append(new.id)  # an order closes once: open before, closed now
        while len(book.closed) > self.max_closed_orders:
            gone_id = book.closed.popleft()
            gone = book.orders.pop(gone_id, None)
            if gone is None:
                continue
            coid = gone.client_order_id
            if coid is not None and book.by_client_id.get(coid) == gone_id:
                del book.by_client_id[coid]
            if not book.legs:
                continue
            book.legs.pop(gone_id, None)
            if gone.parent_id is not None:
                siblings = book.legs.get(gone.parent_id)
                if siblings is not None and gone_id in siblings:
                    siblings.remove(gone_id)

    def _end_legs(self, book: _Book, parent_id: int, ev: OrderCanceled) -> None:
        """A parent was canceled: a leg that had worked off everything it was given
        ends filled with its last trade (the engine sends no event for it; a leg with
        something left keeps working, one never filled gets its own cancel)."""
        for leg_id in book.legs.get(parent_id, ()):
            leg = book.orders.get(leg_id)
            if leg is None or not leg.is_open or leg.open_qty or not leg.filled_qty:
                continue
            done = msgspec.structs.replace(leg, status="filled", seq=ev.seq)
            self._store(book, leg, done)
            self._publish_order(ev.seq, leg.updated_ns, "fill", done)

    def _market(self, md: MarketData) -> None:
        passes, hole = self._md_cursors.take(md)
        if hole is not None:
            self._publish_gap(md.symbol, hole)
        if not passes:
            return
        if type(md) is TopOfBook:
            self._tops[md.symbol] = md
            self._publish_market(md.symbol, "top", md)
        else:
            self._publish_market(md.symbol, "delta", md)

    def market_start(self, book: TopOfBook) -> TopOfBook:
        """The top a new subscriber of `book.symbol` starts from: the last one passed
        on, which the updates that follow continue without a hole; or, while the view
        has none, `book` (the engine's GetBook), adopted: what the stream brings up to
        its number is skipped as stale. Call it right after entering
        `subscribe_market`, with no await between (nothing can pass in between)."""
        top = self._tops.get(book.symbol)
        if top is not None:
            return top
        self._md_cursors.adopt(book)
        if book.md_seq:
            self._tops[book.symbol] = book
        return book

    # -- read-your-writes ------------------------------------------------------------------

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= self.seq:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, seq: int, timeout: float = 2.0) -> bool:
        """Wait until every event up to `seq` is applied (e.g. the `last_seq` of an
        engine reply the caller just got); False if that took longer than `timeout`."""
        if seq <= self.seq:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._tiebreak), fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return False
        return True

    def note_write(self, account: str, last_seq: int) -> None:
        """Remember the `last_seq` of the engine's reply to `account`'s write, so that
        `caught_up(account)` waits for it."""
        if last_seq > self._written.get(account, 0):
            self._written[account] = last_seq
        self.observe(last_seq)

    def observe(self, last_seq: int) -> None:
        """Note the engine's `last_seq` from a reply (what `lag` measures against)."""
        if last_seq > self.engine_seq:
            self.engine_seq = last_seq

    async def caught_up(self, account: str, timeout: float = 1.0) -> bool:
        """Wait until the account's last write (`note_write`) is applied: what an
        account reads after its own write includes the write (read-your-writes)."""
        return await self.wait_for(self._written.get(account, 0), timeout)

    @property
    def lag(self) -> int:
        """Events the engine had written (by its last reply seen) not yet applied."""
        return max(self.engine_seq - self.seq, 0)

    # -- queries ---------------------------------------------------------------------------

    def accounts(self) -> list[str]:
        return sorted(self._accounts)

    def order(self, account: str, order_id: int) -> OrderRecord | None:
        """The account's order `order_id` (None: not this account's, or evicted)."""
        book = self._accounts.get(account)
        return None if book is None else book.orders.get(order_id)

    def legs(self, account: str, parent_id: int) -> list[OrderRecord]:
        """The legs of the account's bracket, OTO or OCO `parent_id` that are still
        kept, in id order (a bracket's take-profit first)."""
        book = self._accounts.get(account)
        if book is None:
            return []
        found = (book.orders.get(i) for i in sorted(book.legs.get(parent_id, ())))
        return [leg for leg in found if leg is not None]

    def order_by_client_id(self, account: str, client_order_id: str) -> OrderRecord | None:
        book = self._accounts.get(account)
        if book is None:
            return None
        oid = book.by_client_id.get(client_order_id)
        return None if oid is None else book.orders.get(oid)

    def orders(
        self,
        account: str,
        *,
        status: Literal["open", "closed", "all"] = "all",
        symbol: str | None = None,
        side: str | None = None,
        after_ns: int | None = None,
        until_ns: int | None = None,
    ) -> list[OrderRecord]:
        """The account's orders that match, newest first (by order id)."""
        book = self._accounts.get(account)
        if book is None:
            return []
        out = []
        for o in book.orders.values():
            if (status == "open" and not o.is_open) or (status == "closed" and o.is_open):
                continue
            if (symbol is not None and o.symbol != symbol) or (side is not None and o.side != side):
                continue
            if after_ns is not None and o.created_ns <= after_ns:
                continue
            if until_ns is not None and o.created_ns > until_ns:
                continue
            out.append(o)
        out.sort(key=lambda o: o.id, reverse=True)
        return out

    def executions(self, account: str, *, symbol: str | None = None) -> list[Execution]:
        """The account's fills, newest first (the last `max_executions`)."""
        book = self._accounts.get(account)
        if book is None:
            return []
        return [e for e in reversed(book.executions) if symbol is None or e.symbol == symbol]

    def positions(self, account: str) -> list[Position]:
        """The account's positions (flat ones included: they carry realized P&L)."""
        book = self._accounts.get(account)
        return [] if book is None else sorted(book.positions.values(), key=lambda p: p.symbol)

    def cash(self, account: str) -> int:
        book = self._accounts.get(account)
        return 0 if book is None else book.cash

    def killed(self, account: str) -> bool:
        book = self._accounts.get(account)
        return self.engine_killed or (book is not None and book.killed)

    def trades(self, symbol: str, limit: int | None = None) -> list[Trade]:
        """The symbol's last trades, newest first."""
        trades = self._trades.get(symbol)
        if not trades:
            return []
        out = list(reversed(trades))
        return out if limit is None else out[:limit]

    def top(self, symbol: str) -> TopOfBook | None:
        """The symbol's last top of book (None before its first market data)."""
        return self._tops.get(symbol)

    def last_price(self, symbol: str) -> int | None:
        top = self._tops.get(symbol)
        if top is not None and top.last_price is not None:
            return top.last_price
        trades = self._trades.get(symbol)
        return trades[-1].price if trades else None

    def best(self, symbol: str) -> tuple[BookLevel | None, BookLevel | None]:
        top = self._tops.get(symbol)
        if top is None:
            return None, None
        return (top.bids[0] if top.bids else None, top.asks[0] if top.asks else None)

    # -- subscriptions ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *, account: str | None = None, queue_size: int | None = None
    ) -> AsyncIterator[Subscription]:
        """The updates (OrderUpdate, PositionUpdate) of `account`'s orders and positions
        from now on (`account` None: every account's, for admin use)."""
        sub = Subscription(queue_size or self.queue_size, account, None)
        self._subs.setdefault(account, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(account)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[account]

    @contextlib.asynccontextmanager
    async def subscribe_market(
        self, symbol: str | None = None, *, queue_size: int | None = None
    ) -> AsyncIterator[Subscription]:
        """The MarketUpdates (trades, tops, deltas, halts) of `symbol` (None: all)."""
        sub = Subscription(queue_size or self.queue_size, None, symbol)
        self.follow_market(sub, symbol)
        try:
            yield sub
        finally:
            self.unfollow_market(sub, symbol)

    def follow_market(self, sub: Subscription, symbol: str | None) -> None:
        """Deliver `symbol`'s MarketUpdates (None: every symbol's) to `sub` too, from
        now on: one subscription can follow a set of symbols that changes over its life
        (the Alpaca data stream's). Following a symbol and None delivers it twice."""
        self._market_subs.setdefault(symbol, set()).add(sub)

    def unfollow_market(self, sub: Subscription, symbol: str | None) -> None:
        """Stop delivering `symbol`'s MarketUpdates to `sub` (a no-op if it did not)."""
        subs = self._market_subs.get(symbol)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._market_subs[symbol]

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values()) + sum(
            len(s) for s in self._market_subs.values()
        )

    # An update is built only when someone subscribes to it: each gateway worker applies
    # every account's events, and most have no subscriber in a given worker.

    def _publish(self, account: str, update: Update) -> None:
        for key in (account, None):
            for sub in self._subs.get(key, ()):
                sub.push(update)

    def _publish_order(
        self,
        seq: int,
        ts_event: int,
        event: str,
        order: OrderRecord,
        execution: Execution | None = None,
    ) -> None:
        subs = self._subs
        if subs and (order.account in subs or None in subs):
            update = OrderUpdate(
                seq=seq, ts_event=ts_event, event=event, order=order, execution=execution
            )
            self._publish(order.account, update)

    def _publish_market(
        self,
        symbol: str,
        kind: Literal["trade", "top", "delta", "halted", "resumed"],
        what: Trade | TopOfBook | BookDelta | SymbolHalted | SymbolResumed,
    ) -> None:
        subs = self._market_subs
        if not subs or (symbol not in subs and None not in subs):
            return
        if isinstance(what, Trade):
            update = MarketUpdate(symbol=symbol, kind=kind, trade=what)
        elif isinstance(what, TopOfBook):
            update = MarketUpdate(symbol=symbol, kind=kind, top=what)
        elif isinstance(what, BookDelta):
            update = MarketUpdate(symbol=symbol, kind=kind, delta=what)
        else:
            update = MarketUpdate(symbol=symbol, kind=kind, status=what)
        for key in (symbol, None):
            for sub in subs.get(key, ()):
                sub.push(update)

    def _publish_gap(self, symbol: str, hole: Hole) -> None:
        log.warning(
            "market data of %s: md_seq %d..%d will not come (the engine does not keep it)",
            symbol,
            *hole,
        )
        if self.on_gap is not None:
            self.on_gap(symbol, *hole)
        update = MarketUpdate(symbol=symbol, kind="gap", from_md_seq=hole[0], to_md_seq=hole[1])
        for key in (symbol, None):
            for sub in self._market_subs.get(key, ()):
                sub.push(update)
