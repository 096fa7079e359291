"""A batch of events folded into the rows the PostgreSQL sink writes.

Folding happens in Python, once per batch, so that the database does one COPY or one
set-based statement per table instead of one statement per event: several events of
one order (accepted, fills, a replace, a cancel) become one change to its row, several
position changes of one account and symbol become the last one.

An order's status is the gateway's projection's (api/projection.py), derived the same
way here for the orders a batch accepts and in the SQL merge for the others: `held` for
a stop or stop-limit not yet triggered and for a bracket's or OTO's leg not yet
activated (`OrderActivated`); a leg that worked off what it was given is `filled` only
once its parent is closed (until then the parent's next fill gives it more), which
the PostgreSQL sink settles after the merge (`postgres_sink._END_LEGS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from tickplane.core.events import (
    Event,
    KillSwitchChanged,
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    PositionChanged,
    StopTriggered,
    TopOfBook,
    Trade,
)

__all__ = [
    "STOP_TYPES",
    "Batch",
    "MinuteBar",
    "OrderChange",
    "day_of",
    "fold",
    "order_status",
    "ts_of",
    "waits_for_parent",
]

_NS_PER_DAY = 86_400 * 1_000_000_000
_NS_PER_MINUTE = 60 * 1_000_000_000


def ts_of(ts_event: int) -> datetime:
    """The engine's ns timestamp as an aware datetime (µs: PostgreSQL's precision)."""
    return datetime.fromtimestamp(ts_event // 1000 / 1_000_000, UTC)


def day_of(day: int) -> date:
    """The date of a day number of `Batch.days`."""
    return date(1970, 1, 1) + timedelta(days=day)


# Order types that are `held` until their stop triggers (the projection's, the engine's).
STOP_TYPES: frozenset[str] = frozenset({"stop", "stop_limit", "trailing_stop"})


def waits_for_parent(ev: OrderAccepted) -> bool:
    """A bracket's or OTO's leg: held, working nothing, until its parent's fills activate
    it (an OCO's leg works from the start)."""
    return ev.parent_id is not None and ev.order_class != "oco"


def order_status(
    open_qty: int,
    filled_qty: int,
    canceled: bool,
    rejected: bool,
    held: bool = False,
    short_leg: bool = False,
) -> str:
    """The status word of an order's row (the SQL merge derives it the same way).

    `held`: an untriggered stop or a leg not yet activated. `short_leg`: a leg that has
    filled less than its quantity; with nothing open it is `partially_filled` until its
    parent closes (`postgres_sink._END_LEGS` then makes it `filled`)."""
    if rejected:
        return "rejected"
    if canceled:
        return "canceled"
    if held:
        return "held"
    if open_qty == 0 and filled_qty > 0 and not short_leg:
        return "filled"
    return "partially_filled" if filled_qty > 0 else "new"


@dataclass(slots=True)
class OrderChange:
    """What one batch does to one order.

    `open_set` is an absolute open quantity (accepted, replaced, canceled) and
    `open_sub` what fills took off after it; with no `open_set` the row's own open
    quantity is the base.
    """

    order_id: int
    account: str
    accepted: OrderAccepted | None = None
    open_set: int | None = None
    open_sub: int = 0
    filled_add: int = 0
    notional_add: int = 0
    price_set: int | None = None
    stop_set: int | None = None  # a trailing stop's stop (OrderTrailed), a leg's replaced one
    hwm_set: int | None = None  # a trailing stop's watermark
    trail_price_set: int | None = None  # a trailing stop's trail, replaced (OrderReplaced)
    trail_percent_set: float | None = None
    canceled: bool = False
    triggered: bool = False
    activated: bool = False  # a held leg's OrderActivated
    rejected: bool = False  # rejected before it was ever accepted (a new-order reject)
    reason: str | None = None
    last_seq: int = 0
    last_ts_event: int = 0

    def fill(self, price: int, qty: int) -> None:
        self.filled_add += qty
        self.notional_add += price * qty
        self.open_sub += qty


@dataclass(slots=True)
class MinuteBar:
    """A minute's trades of one symbol in a batch (md_minute_bars' columns): prices in
    ticks, volume in lots, notional in tick-lots; its first and last trade's seq."""

    open: int
    high: int
    low: int
    close: int
    first_seq: int
    last_seq: int
    volume: int = 0
    trades: int = 0
    notional: int = 0

    def add(self, seq: int, price: int, qty: int) -> None:
        """Count in a trade later (in seq) than those counted so far."""
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close, self.last_seq = price, seq
        self.volume += qty
        self.trades += 1
        self.notional += price * qty


@dataclass(slots=True)
class Batch:
    """Rows for each table, from one batch of events."""

    first_seq: int = 0
    last_seq: int = 0
    executions: list[tuple[object, ...]] = field(default_factory=list)
    md_trades: list[tuple[object, ...]] = field(default_factory=list)
    # (symbol, the minute's start in ns) -> its trades in this batch
    minute_bars: dict[tuple[str, int], MinuteBar] = field(default_factory=dict)
    tops: list[tuple[object, ...]] = field(default_factory=list)
    orders: dict[int, OrderChange] = field(default_factory=dict)
    positions: dict[tuple[str, str], PositionChanged] = field(default_factory=dict)
    # account -> (cash or None, kill switch or None, seq)
    accounts: dict[str, tuple[int | None, bool | None, int]] = field(default_factory=dict)
    days: set[int] = field(default_factory=set)  # UTC days (since the epoch) of the rows
    legs: bool = False  # the batch accepts a leg of a bracket, OTO or OCO

    def _order(self, order_id: int, account: str) -> OrderChange:
        ch = self.orders.get(order_id)
        if ch is None:
            ch = self.orders[order_id] = OrderChange(order_id, account)
        return ch

    def _account(
        self, account: str, seq: int, cash: int | None = None, kill: bool | None = None
    ) -> None:
        old_cash, old_kill, _ = self.accounts.get(account, (None, None, 0))
        self.accounts[account] = (
            cash if cash is not None else old_cash,
            kill if kill is not None else old_kill,
            seq,
        )


def fold(engine: str, events: Iterable[Event], tops: Iterable[TopOfBook] = ()) -> Batch:
    """The rows of `events` (in seq order) and of the top-of-book messages `tops`."""
    b = Batch()
    for ev in events:
        seq = ev.seq
        if not b.first_seq:
            b.first_seq = seq
        b.last_seq = seq
        if isinstance(ev, Trade):
            ts = ts_of(ev.ts_event)
            b.days.add(ev.ts_event // _NS_PER_DAY)
            b.executions.append(
                (engine, seq, "taker", ts, ev.ts_event, ev.taker, ev.taker_account, ev.symbol,
                 ev.taker_side, ev.price, ev.qty, ev.maker)
            )  # fmt: skip
            maker_side = "sell" if ev.taker_side == "buy" else "buy"
            b.executions.append(
                (engine, seq, "maker", ts, ev.ts_event, ev.maker, ev.maker_account, ev.symbol,
                 maker_side, ev.price, ev.qty, ev.taker)
            )  # fmt: skip
            b.md_trades.append(
                (engine, seq, ts, ev.ts_event, ev.symbol, ev.price, ev.qty, ev.taker_side)
            )
            minute = (ev.symbol, ev.ts_event - ev.ts_event % _NS_PER_MINUTE)
            bar = b.minute_bars.get(minute)
            if bar is None:
                bar = b.minute_bars[minute] = MinuteBar(
                    ev.price, ev.price, ev.price, ev.price, seq, seq
                )
            bar.add(seq, ev.price, ev.qty)
            for oid, acct in ((ev.taker, ev.taker_account), (ev.maker, ev.maker_account)):
                ch = b._order(oid, acct)
                ch.fill(ev.price, ev.qty)
                ch.last_seq, ch.last_ts_event = seq, ev.ts_event
        elif isinstance(ev, OrderAccepted):
            ch = b._order(ev.id, ev.account)
            ch.accepted = ev
            # a leg waiting for its parent works nothing yet
            ch.open_set, ch.open_sub = (0 if waits_for_parent(ev) else ev.qty), 0
            if ev.parent_id is not None:
                b.legs = True
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
            b._account(ev.account, seq)
        elif isinstance(ev, OrderCanceled):
            ch = b._order(ev.id, ev.account)
            ch.canceled = True
            ch.open_set, ch.open_sub = 0, 0
            ch.reason = ev.reason
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
        elif isinstance(ev, OrderReplaced):
            ch = b._order(ev.id, ev.account)
            if ch.canceled:  # a closed order changes no more (as in the projection)
                continue
            # the price is a limit's: the merge ignores it for an order without one (a
            # stop's replace carries its stop there)
            ch.price_set = ev.price
            if ev.stop_price is not None:
                ch.stop_set = ev.stop_price
            if ev.trail_price is not None:  # a trailing stop's trail, as it is now
                ch.trail_price_set = ev.trail_price
            if ev.trail_percent is not None:
                ch.trail_percent_set = ev.trail_percent
            ch.open_set, ch.open_sub = ev.qty, 0
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
        elif isinstance(ev, OrderActivated):
            ch = b._order(ev.id, ev.account)
            if ch.canceled:
                continue
            ch.activated = True
            ch.open_set, ch.open_sub = ev.qty, 0
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
        elif isinstance(ev, OrderTrailed):
            ch = b._order(ev.id, ev.account)
            if ch.canceled:
                continue
            ch.stop_set, ch.hwm_set = ev.stop_price, ev.hwm
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
        elif isinstance(ev, StopTriggered):
            ch = b._order(ev.id, ev.account)
            ch.triggered = True
            ch.stop_set = ev.stop_price
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
        elif isinstance(ev, OrderRejected):
            ch = b._order(ev.id, ev.account)
            # A reject of an order this batch accepted, or of one already in the table,
            # is a refused cancel or replace: the order stays as it was. Only a reject
            # of an order never accepted makes a rejected order (decided in the merge).
            ch.rejected = ch.accepted is None and ch.open_set is None and not ch.filled_add
            ch.reason = ev.reason
            ch.last_seq, ch.last_ts_event = seq, ev.ts_event
            b._account(ev.account, seq)
        elif isinstance(ev, PositionChanged):
            b.positions[(ev.account, ev.symbol)] = ev
            b._account(ev.account, seq, cash=ev.cash)
        elif isinstance(ev, KillSwitchChanged):
            if ev.account is not None:  # the engine-wide switch has no account row
                b._account(ev.account, seq, kill=ev.engaged)
    for top in tops:
        ts = ts_of(top.ts_event)
        b.days.add(top.ts_event // _NS_PER_DAY)
        bid = top.bids[0] if top.bids else None
        ask = top.asks[0] if top.asks else None
        b.tops.append(
            (engine, top.symbol, top.md_seq, ts, top.ts_event,
             bid.price if bid else None, bid.qty if bid else None,
             ask.price if ask else None, ask.qty if ask else None, top.last_price)
        )  # fmt: skip
    return b
