"""The engine's deterministic state machine: commands in, typed events out.

`EngineState.apply(command)` is the only thing that changes trading state. The live
process calls it for each decoded request, after validation and risk checks, and
journals the same command; recovery calls it again for each journaled command, so the
recovered state (books, ids, accounts, event sequence numbers, positions) is the one
before the crash. It never reads the clock: a command carries its timestamp.

A `Command` is the core's fixed 56-byte record (`COMMAND_DTYPE`), which is also what
the journal stores.

Compiled by Cython as it stands (setup.py), with its C declarations in state.pxd:
`EngineState` becomes a cdef class whose command path (`apply`, `absorb`, the numbering
of events) reads typed fields and calls risk and the finished orders as C. It stays
plain Python, checked by mypy and runnable uncompiled.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec
import numpy as np

from tickplane.core import wire
from tickplane.core.config import EngineConfig
from tickplane.core.events import (
    BookDelta,
    BookLevel,
    Event,
    KillSwitchChanged,
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    StopTriggered,
    TopOfBook,
    Trade,
    TradePrint,
)
from tickplane.engine.contingent import (
    STOP_LOSS,
    TAKE_PROFIT,
    ContingentOrders,
    ContingentSnapshot,
    Group,
    HeldOrder,
    exits_refused,
    trailing_stop,
)
from tickplane.engine.events import from_core
from tickplane.engine.finished import FinishedOrders, FinishedSnapshot
from tickplane.engine.idempotency import ClientOrderIds
from tickplane.engine.matching import (
    COMMAND_DTYPE,
    KEEP,
    MAX_VALUE,
    MatchingEngine,
    Op,
    OrderType,
    Side,
    TimeInForce,
    pack_command,
)
from tickplane.engine.positions import Positions
from tickplane.engine.risk import Reject, RiskEngine, collar_price

__all__ = ["COLLARED", "COMMAND", "Command", "EngineState", "SnapshotError", "StateSnapshot"]

# The layout of COMMAND_DTYPE, for packing one command without numpy.
COMMAND = struct.Struct("<QqqqqIIBBBBBBH")
assert COMMAND.size == COMMAND_DTYPE.itemsize

SIDES = {s.name.lower(): int(s) for s in Side}
ORDER_TYPES = {t.name.lower(): int(t) for t in OrderType}
TIFS = {t.name.lower(): int(t) for t in TimeInForce}
SIDE_NAMES = {v: k for k, v in SIDES.items()}
TYPE_NAMES = {v: k for k, v in ORDER_TYPES.items()}
TIF_NAMES = {v: k for k, v in TIFS.items()}
INVALID = 255  # an enum value no field has: the core rejects it with the field's reason
# The reason of a venue's refused submit that the engine matches here instead (policy
# `venue.unreachable: internal`, docs/venues.md).
FALLBACK = "venue_fallback"
# Plain ints for the hot path: comparing with an IntEnum member costs ~5x an int's.
NEW, CANCEL, REPLACE = int(Op.NEW), int(Op.CANCEL), int(Op.REPLACE)
_LIMIT, _STOP, _STOP_LIMIT = int(OrderType.LIMIT), int(OrderType.STOP), int(OrderType.STOP_LIMIT)
_BUY = int(Side.BUY)
# the order types a market collar bounds (`EngineState.collared`)
COLLARED = frozenset({int(OrderType.MARKET), _STOP})


class Command(NamedTuple):
    """One command for the core (the journal's record), ids and names as integers.

    Fields in COMMAND_DTYPE's order, so a journal row is a Command as it stands
    (`Command._make(row)`) and `pack` is the core's struct (`matching.pack_command`)."""

    id: int
    qty: int
    price: int
    stop_price: int
    ts: int
    account: int
    symbol: int
    op: int
    side: int = 0
    order_type: int = 0
    tif: int = 0
    post_only: int = 0
    reason: int = 0
    pad: int = 0

    @classmethod
    def make(
        cls,
        op: int,
        id: int,
        account: int,
        symbol: int,
        ts: int,
        side: int = 0,
        order_type: int = 0,
        qty: int = 0,
        price: int = 0,
        stop_price: int = 0,
        tif: int = 0,
        post_only: int = 0,
        reason: int = 0,
    ) -> Command:
        return cls(
            id,
            qty,
            price,
            stop_price,
            ts,
            account,
            symbol,
            op,
            side,
            order_type,
            tif,
            post_only,
            reason,
        )

    def pack(self) -> bytes:
        return pack_command(self)

    @classmethod
    def unpack(cls, raw: bytes | memoryview) -> Command:
        return cls._make(COMMAND.unpack(raw))


# What `EngineState.absorb` reads by position: OrderAccepted's id, account, symbol,
# side, (order type,) qty and price; a Command's stop price, order type, tif, post-only
# (and `apply`, a cancel's reason).
_fields = msgspec.structs.astuple
assert OrderAccepted.__struct_fields__[2:9] == (
    "id", "account", "symbol", "side", "order_type", "qty", "price"
)  # fmt: skip
assert Command._fields[3] == "stop_price"
assert Command._fields[9:13] == ("order_type", "tif", "post_only", "reason")


class RoutedOrder(msgspec.Struct):
    """An order this engine handed to an outside venue (not in its own book)."""

    id: int
    account: str
    symbol: str
    side: str
    order_type: str
    qty: int  # open quantity
    price: int | None
    stop_price: int | None
    tif: str
    accepted: bool = False
    filled: int = 0  # lots the venue reported filled (what a restart has booked)
    # what those lots cost, in ticks*lots: handed back with them after a restart, so
    # the venue prices a fill it finds missing at what it cost (docs/venues.md). None:
    # unknown, an order recovered from a snapshot or journal written before it was kept
    # (the venue values the booked lots at its own average); 0 from routing on.
    notional: int | None = None
    # order classes (docs/order-classes.md, "On Alpaca"): as in OrderAccepted
    order_class: str | None = None
    parent_id: int | None = None
    leg: str | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    hwm: int | None = None  # a trailing stop's watermark, as the venue last reported it
    # a leg: the max_position in force when it was routed, checked when the venue
    # releases it (journaled with it, so a recovery under other limits decides the same)
    max_position: int | None = None
    # canceled for the engine's clients (risk refused its release); the venue is asked
    # to cancel it and its confirmation is no event
    canceling: bool = False


SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot this engine cannot read (another format version, or damaged)."""


class _Version(msgspec.Struct):
    version: int = 0


class StateSnapshot(msgspec.Struct):
    """Everything `EngineState` needs to resume."""

    version: int
    accounts: list[str]
    client_order_ids: dict[int, str]
    seq: int
    md_seq: dict[str, int]
    core: bytes  # numpy .npz of MatchingEngine.dump()
    positions: bytes  # Positions.snapshot()
    risk: bytes  # RiskEngine.snapshot()
    routed: list[RoutedOrder] = msgspec.field(default_factory=list)
    last_id: int = 0
    # (account, client_order_id, order id, fingerprint): the idempotency table
    accepted_client_order_ids: list[tuple[int, str, int, int]] = msgspec.field(default_factory=list)
    contingent: ContingentSnapshot = msgspec.field(default_factory=ContingentSnapshot)
    routed_groups: list[Group] = msgspec.field(default_factory=list)
    finished: FinishedSnapshot = msgspec.field(default_factory=FinishedSnapshot)
    orphans: list[RoutedOrder] = msgspec.field(default_factory=list)


class EngineState:
    """Books, names, sequence numbers and positions of one engine (module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.core = MatchingEngine()
        self.accounts: list[str] = [""]
        self.account_index: dict[str, int] = {}
        self.client_order_ids: dict[int, str] = {}
        self.seq = 0
        self.md_seq: dict[str, int] = {}
        self.routed: dict[int, RoutedOrder] = {}
        self.last_routed_id = 0
        # a routed bracket's, OTO's or OCO's parent id -> its group (legs, exit_open)
        self.routed_groups: dict[int, Group] = {}
        # routed orders to cancel at the venue, decided by the last venue event (the
        # live process sends them; recovery drops them: the venue is asked again on
        # resume)
        self.venue_cancels: list[int] = []
        # routed orders rejected although their submit may have reached the venue (a
        # timeout, a 5xx): the venue may still report fills for them, which are booked
        # as late fills, until it says it stopped looking (docs/venues.md, "Late fills")
        self.orphans: dict[int, RoutedOrder] = {}
        cfg = config
        self.symbols = [s.name for s in cfg.symbols]
        self.symbol_index = {name: i for i, name in enumerate(self.symbols)}
        self.recent = EventRing(cfg.replay_buffer)
        self._last_top: dict[str, TopOfBook] = {}
        self.positions = Positions(default_cash=cfg.starting_cash)
        self.finished = FinishedOrders(cfg.finished_orders)
        self.idempotency = ClientOrderIds()
        self.contingent = ContingentOrders()
        self.risk = RiskEngine(
            positions=self.positions,
            default=cfg.risk.default,
            per_account=cfg.risk.accounts,
            per_symbol={
                (pair.split("/")[0], pair.split("/")[1]): limits
                for pair, limits in cfg.risk.pairs.items()
            },
            circuit_breaker=cfg.risk.circuit_breaker,
        )
        if cfg.finished_orders:
            self.risk.ended = []  # every order's end, for `finished`
        self._configure_references()
        # Only order-rate buckets make a passing check change state; without them,
        # recovery need not re-run the checks.
        limits = [cfg.risk.default, *cfg.risk.accounts.values(), *cfg.risk.pairs.values()]
        self._checks_spend = any(lim.max_orders_per_second is not None for lim in limits)

    def _configure_references(self) -> None:
        """Give every configured symbol that has not traded its configured
        `reference_price` (none: no reference), at start and after a snapshot is
        restored: the snapshot holds the one configured when it was taken, and a changed
        setting takes effect for a symbol with no trade. A traded symbol keeps its last
        trade's price. `Positions` marks every trade, on every venue, as risk takes its
        price: no mark, no trade."""
        for sym in self.config.symbols:
            if self.positions.mark_price(sym.name) is None:
                self.risk.set_reference(sym.name, sym.reference_price)

    @property
    def checks_spend(self) -> bool:
        """Whether a risk check that passes changes state (an order-rate limit is set):
        only then must recovery re-run the checks."""
        return self._checks_spend

    # -- names -----------------------------------------------------------------------------

    def account_id(self, name: str) -> int | None:
        return self.account_index.get(name)

    def add_account(self, name: str) -> int:
        """Intern an account (journal it before the command that uses it)."""
        n = self.account_index.get(name)
        if n is None:
            n = self.account_index[name] = len(self.accounts)
            self.accounts.append(name)
        return n

    def forget_account(self, name: str) -> None:
        """Undo `add_account` of the newest account (interned for a check that then
        refused its first order; never journaled), so the next account takes its index
        as recovery, which interns the journal's accounts in order, would give it."""
        if self.accounts[-1] != name:
            raise ValueError(f"{name!r} is not the newest account")
        self.accounts.pop()
        del self.account_index[name]

    def remember_client_order_id(
        self, order_id: int, client_order_id: str, account: int | None, fp: int | None
    ) -> None:
        """Name an order by its client order id (a MARK journaled before the order's
        command); with its account and fingerprint, it also joins the idempotency
        table until the order is refused."""
        self.client_order_ids[order_id] = client_order_id
        if account is not None and fp is not None:
            self.idempotency.remember(account, client_order_id, order_id, fp)

    def known_client_order_id(self, account: str, client_order_id: str) -> tuple[int, int] | None:
        """(order id, fingerprint) of the order the account placed under this client
        order id, if the engine accepted one (for the life of the journal)."""
        acc = self.account_index.get(account)
        return None if acc is None else self.idempotency.get(acc, client_order_id)

    # -- the state machine -----------------------------------------------------------------

    def next_order_id(self) -> int:
        """Ids are shared by the book and routed orders (the core needs them rising)."""
        return max(self.core.last_id, self.last_routed_id, self.contingent.reserved) + 1

    def check(self, c: Command, legs: Sequence[tuple[str, int, int]] = ()) -> Reject | None:
        """Pre-trade risk for a command (a pass spends an order-rate token). Commands the
        core will reject anyway (bad side, type or quantity) are left to the core.
        `legs`: a new order's held legs (role, qty, price), checked with it."""
        # one unpacking, not a dozen attribute reads (each a full lookup once compiled)
        oid, qty, price, _, ts, account, symbol, op, side, order_type = c[:10]
        if op == NEW:
            if side > 1 or order_type > _STOP_LIMIT or not qty > 0:
                return None
            return self.risk.check_new(
                self.accounts[account],
                self.symbols[symbol],
                side,
                order_type,
                qty,
                price if order_type in (_LIMIT, _STOP_LIMIT) else None,
                ts,
                legs,
            )
        if op == REPLACE:
            return self.risk.check_replace(
                oid, None if qty == KEEP else qty, None if price == KEEP else price, ts
            )
        return None

    def collared(self, c: Command) -> Command:
        """A new market order or stop with its market collar as its price, which the core
        trades no further than (docs/risk.md, "Market collar"): `collar_price` from the
        symbol's reference price (a stop: from its stop price), at the account's
        `RiskEngine.market_collar`; without one (or without a reference), no price. It
        is journaled with the command, so recovery trades to the same collar whatever
        the limits or the reference then. Other commands are returned as they are."""
        oid, qty, _, stop_price, ts, account, symbol, op, side, otype = c[:10]
        if op != NEW or otype not in COLLARED or side > 1:
            return c
        name = self.symbols[symbol]
        bps = self.risk.market_collar(self.accounts[account], name)
        base = stop_price if otype == _STOP else self.risk.reference(name)
        price = -1  # none: a client's price on these means nothing
        if bps is not None and base is not None and base > 0:
            price = min(collar_price(base, bps, side == _BUY), MAX_VALUE)
        # tuple.__new__: NamedTuple._replace costs several times more
        return tuple.__new__(Command, (oid, qty, price, stop_price, ts, account, symbol, *c[7:]))

    def check_change(
        self,
        o: HeldOrder | RoutedOrder,
        qty: int | None,
        price: int | None,
        stop_price: int | None,
        ts: int,
    ) -> Reject | None:
        """Pre-trade risk for a replace of a held order (a leg, a trailing stop) or of an
        order routed to a venue, with `check`'s rules for the core's orders
        (`RiskEngine.check_replace`; a pass spends an order-rate token). A leg is valued
        at its limit, else its stop, as at submission: a replace that moves that price
        is checked, one that does not passes (a leg's quantity follows its parent)."""
        if o.leg is None:  # a stop-limit's limit is not banded, as at submission
            return self.risk.check_replace(o.id, qty, price, ts, banded=o.order_type == "limit")
        before = o.stop_price if o.price is None else o.price
        after = o.price if price is None else price
        if after is None:
            after = o.stop_price if stop_price is None else stop_price
        if after is None or after == before:
            return None
        return self.risk.check_replace(o.id, None, None, ts, leg=(o.leg, o.qty, after))

    def replace_exits_refused(
        self, order_id: int, price: int | None, stop_price: int | None
    ) -> str | None:
        """Why a replace giving order `order_id` `price` and/or `stop_price` (None:
        unchanged) would break its bracket's or OCO's exits: the rule a submission
        passes (`contingent.exits_refused`), for the orders of either venue. None when
        it keeps them apart, or when the order is not one of such a pair: a plain
        order, an OTO's leg, a leg whose sibling ended, or a pair whose stop-loss has
        triggered (it is a working order now, with no stop to keep apart)."""
        pair = self._exits(order_id)
        if pair is None:
            return None
        tp_id, limit, sl_id, stop, side = pair
        if order_id == tp_id and price is not None:
            limit = price
        if order_id == sl_id and stop_price is not None:
            stop = stop_price
        return exits_refused(side, limit, stop)

    def _exits(self, order_id: int) -> tuple[int, int, int, int, str] | None:
        """(take-profit id, its limit, stop-loss id, its stop, their side) of the
        bracket or OCO that order `order_id` belongs to, internal or routed, while both
        are open and the stop-loss has not triggered (at a venue: has not filled,
        the only sign of it). An OCO's take-profit is its parent."""
        held = self.contingent
        h = held.orders.get(order_id)
        g = held.groups.get(order_id if h is None or h.parent_id is None else h.parent_id)
        legs: Sequence[HeldOrder | RoutedOrder]
        stops: Sequence[HeldOrder | RoutedOrder]
        parent_price: int | None = None  # an OCO's take-profit
        if g is not None:
            held_legs = [held.orders[i] for i in g.legs]
            stops = [x for x in held_legs if x.leg == STOP_LOSS and not x.triggered]
            legs = held_legs
            if g.order_class == "oco":
                o = self.core.order(g.parent_id)
                parent_price = None if o is None else int(o["price"])
        else:
            r = self.routed.get(order_id)
            if r is None or not self.routed_groups:
                return None
            g = self.routed_groups.get(r.id if r.parent_id is None else r.parent_id)
            if g is None:
                return None
            legs = self._routed_legs(g)
            stops = [x for x in legs if x.leg == STOP_LOSS and not x.filled]
            if g.order_class == "oco":
                p = self.routed.get(g.parent_id)
                parent_price = None if p is None else p.price
        if g.order_class == "oco":
            tps = [(g.parent_id, parent_price)]
        else:
            tps = [(x.id, x.price) for x in legs if x.leg == TAKE_PROFIT]
        if not stops or not tps:
            return None
        (tp_id, limit), sl = tps[0], stops[0]
        if limit is None or sl.stop_price is None:
            return None
        return tp_id, limit, sl.id, sl.stop_price, sl.side

    def apply(self, c: Command, *, check: bool = False) -> list[Event]:
        """Run one command through the core; return its events, numbered. `check`
        re-runs the risk check for its effects (recovery: it passed when journaled)."""
        if check and self._checks_spend:
            self.check(c)
        core = self.core
        # one unpacking, not eleven attribute reads
        oid, qty, price, stop_price, ts, account, symbol, op, side, otype, tif, post_only = c[:12]
        if op == NEW:
            core.submit(
                oid, account, symbol, side, otype, qty, price, stop_price, tif, post_only, ts
            )
        elif op == CANCEL:
            core.cancel(oid, ts, c[12])  # its reason: a kill switch's cancels carry theirs
        else:
            core.replace(oid, qty, price, ts)
        out: list[Event] = self.risk.expire(ts)  # a new list each call
        events = from_core(core, self.symbols, self.accounts)
        held = self.contingent
        if held.aliases:  # pieces of held orders trade under their held order's id
            events = held.translate(events)
        start = len(out)
        self.absorb(events, out, c)
        if held.busy:
            held.after(self, oid if op == NEW else None, out, start, ts)
        return self._number(out)

    def core_events(self) -> list[Event]:
        """The events of the core's last call, typed and named (not yet numbered)."""
        return from_core(self.core, self.symbols, self.accounts)

    def absorb(self, events: list[Event], out: list[Event], c: Command | None) -> None:
        """Book a core call's events into risk and positions, appending them (and the
        position changes and halts they cause) to `out`. `c`: the command whose
        acceptance they may hold (None: an order class's piece, see contingent.py)."""
        risk, positions = self.risk, self.positions
        for ev in events:  # by exact type (events are final): isinstance cost ~120 instructions
            out.append(ev)
            if type(ev) is OrderAccepted:
                if c is None:
                    continue
                # Fields by position (asserted where `_fields` is defined): read through
                # a struct's or NamedTuple's descriptor, each cost ~130 instructions.
                self.complete_accepted(ev, c[3], c[9], c[10], c[11])
                f = _fields(ev)
                risk.on_accepted(f[2], f[3], f[4], f[5], f[7], f[8])
            elif type(ev) is Trade:
                buy = ev.taker_side == "buy"
                out.extend(
                    positions.on_trade(
                        ev.symbol,
                        ev.price,
                        ev.qty,
                        ev.taker_account if buy else ev.maker_account,
                        ev.maker_account if buy else ev.taker_account,
                        ev.ts_event,
                    )
                )
                risk.on_fill(ev.taker, ev.qty)
                risk.on_fill(ev.maker, ev.qty)
                out.extend(risk.on_trade(ev.symbol, ev.price, ev.ts_event))
            elif type(ev) is OrderCanceled:
                risk.on_done(ev.id)
                self.client_order_ids.pop(ev.id, None)
            elif type(ev) is OrderReplaced:
                risk.on_replaced(ev.id, ev.qty, ev.price)
            elif type(ev) is OrderRejected:
                # Only a refused NEW ends an order (a refused replace leaves it live): it
                # does not keep its client order id, so a retry may pass.
                if c is not None and c.op == NEW and ev.id == c.id:
                    coid = self.client_order_ids.pop(ev.id, None)
                    if coid is not None:
                        self.idempotency.forget(c.account, coid, c.id)

    def complete_accepted(
        self, ev: OrderAccepted, stop_price: int, order_type: int, tif: int, post_only: int
    ) -> None:
        """Fill in what the core's acceptance lacks from its command's fields: the stop
        price, time in force, post-only flag, and the client order id."""
        ev.stop_price = stop_price if order_type >= _STOP else None
        ev.tif = TIF_NAMES.get(tif, "gtc")
        ev.post_only = bool(post_only)
        ev.client_order_id = self.client_order_ids.get(ev.id)

    def _number(self, out: list[Event]) -> list[Event]:
        self.seq = self.recent.number(out, self.seq)
        ended = self.risk.ended
        if ended is not None:
            self.finished.observe(out, ended)
        return out

    def control(
        self, action: str, account: str | None, symbol: str | None, duration: int | None, ts: int
    ) -> list[Event]:
        """An operator action (journaled as a MARK): kill switches and symbol halts."""
        out: list[Event] = []
        if action in ("kill", "revive"):
            changed = self.risk.kill(account) if action == "kill" else self.risk.revive(account)
            if changed:
                out.append(KillSwitchChanged(0, ts, account, action == "kill"))
        elif action == "halt" and symbol is not None:
            out.append(self.risk.halt(symbol, ts, duration))
        elif action == "resume" and symbol is not None:
            resumed = self.risk.resume(symbol, ts)
            if resumed is not None:
                out.append(resumed)
        return self._number(out)

    # -- order classes (contingent.py; journaled as MARKs) -------------------------------

    def contingent_mark(self, mark: dict[str, Any], ts: int, *, check: bool = False) -> list[Event]:
        """Apply an order-class MARK: `legs` (a parent's, before its command),
        `trailing` (a trailing stop), `cancel` / `replace` of a held order. `check`
        re-runs a replace's risk check for its effects, as `apply`'s."""
        held = self.contingent
        kind = mark["kind"]
        if kind == "legs":
            legs = [msgspec.convert(leg, HeldOrder) for leg in mark["legs"]]
            held.expect(int(mark["parent"]), str(mark["order_class"]), legs)
            return []
        if kind == "trailing":
            order = msgspec.convert(mark["order"], HeldOrder)
            if check and self._checks_spend:  # checked live as a stop of its quantity
                self.risk.check_new(
                    order.account, order.symbol, order.side, "stop", order.qty, None, ts
                )
            out = held.add_trailing(self, order, ts)
        elif int(mark["order_id"]) not in held.orders:
            return []  # gone since it was journaled: nothing to do
        elif kind == "cancel":
            out = held.cancel(self, int(mark["order_id"]), ts, mark.get("reason", "user"))
        else:
            if check and self._checks_spend:
                self.check_change(
                    held.orders[int(mark["order_id"])],
                    mark.get("qty"),
                    mark.get("price"),
                    mark.get("stop_price"),
                    ts,
                )
            out = held.replace(
                self,
                int(mark["order_id"]),
                mark.get("price"),
                mark.get("stop_price"),
                ts,
                mark.get("qty"),
                mark.get("trail_price"),
                mark.get("trail_percent"),
            )
        return self._number(out)

    # -- routed orders (venue "alpaca") ----------------------------------------------------

    def route(self, order: RoutedOrder, legs: Sequence[RoutedOrder] = ()) -> None:
        """Record an order handed to the venue, with its legs if it is a bracket, OTO
        or OCO (journaled as a MARK before it is sent). Risk counts it, and its legs as
        held orders, from now on: its replaces are checked, and it counts towards the
        limits, while the venue has yet to accept it."""
        risk = self.risk
        self.routed[order.id] = order
        self.last_routed_id = max(self.last_routed_id, order.id)
        risk.on_accepted(order.id, order.account, order.symbol, order.side, order.qty, order.price)
        if legs:
            for leg in legs:
                self.routed[leg.id] = leg
                self.last_routed_id = max(self.last_routed_id, leg.id)
                risk.on_held(leg.id, leg.account, leg.symbol, leg.side, 0)
            cls = order.order_class or "simple"
            g = Group(order.id, cls, [leg.id for leg in legs])
            if cls == "oco":
                g.exit_open = order.qty  # its limit and its stop exit the same lots
            self.routed_groups[order.id] = g

    def recheck_route(self, r: RoutedOrder, ts: int) -> None:
        """Re-run the risk check a routed order passed when it was routed at `ts`, for
        its effects (recovery: its order-rate token). Its legs are left out: they can
        only refuse, and it passed."""
        if self._checks_spend:
            order_type = "stop" if r.order_type == "trailing_stop" else r.order_type
            self.risk.check_new(r.account, r.symbol, r.side, order_type, r.qty, r.price, ts)

    def recheck_routed_replace(self, f: dict[str, Any], ts: int) -> None:
        """Re-run the risk check a routed order's replace passed at `ts` (its
        `routed_replace` MARK's fields), for its effects (recovery: its order-rate token)."""
        r = self.routed.get(int(f["order_id"]))
        if r is not None:
            self.check_change(r, f.get("qty"), f.get("price"), f.get("stop_price"), ts)

    def apply_venue(self, kind: str, f: dict[str, Any], ts: int) -> list[Event]:
        """Apply what the venue said about a routed order (journaled as a MARK). A
        routed bracket's, OTO's or OCO's events are the internal venue's
        (docs/order-classes.md, "On Alpaca"): its legs are accepted with it, activated
        by its fills, reduced by each other's, and closed with the internal reasons."""
        r = self.routed.get(int(f["order_id"]))
        if r is None:
            if self.orphans:
                return self._orphan_report(kind, f)
            return []
        out: list[Event] = []
        risk = self.risk
        g = None
        if self.routed_groups:
            g = self.routed_groups.get(r.id if r.parent_id is None else r.parent_id)
        if kind == "rejected" and f["reason"] == FALLBACK and r.parent_id is None:
            placed = self._fall_back(r, g, ts)
            if placed is not None:
                return placed
            f = {**f, "reason": "venue_unavailable"}  # no place for it here: rejected below
        if kind == "accepted":
            if not r.accepted and r.parent_id is None:
                r.accepted = True
                if r.order_type == "trailing_stop":  # its stop as the venue set it
                    r.stop_price, r.hwm = f.get("stop_price"), f.get("hwm")
                out.append(self._routed_accepted(r, ts))
                for leg in self._routed_legs(g):
                    leg.accepted = True
                    out.append(self._routed_accepted(leg, ts))
        elif kind == "filled":
            qty = int(f["qty"])
            if _held_stop(r) and r.stop_price is not None and not r.filled:
                # a stop, a trailing stop or a stop-loss leg trades once Alpaca
                # triggered it: say so first, as the internal venue does
                out.append(StopTriggered(0, ts, r.id, r.account, r.symbol, r.stop_price))
            self._venue_fill(r, f, out)
            risk.on_fill(r.id, qty)
            if r.qty <= 0:
                self._routed_done(r, g)
            if g is not None:
                self._routed_group_fill(g, r, qty, ts, out)
        elif kind == "canceled" and r.canceling:
            self._routed_done(r, g)  # already canceled for the clients: no event
        elif kind == "canceled":
            reason = str(f["reason"])
            if g is not None:
                if g.any_leg_filled:
                    reason = "oco"
                elif r.parent_id is not None and g.parent_canceled:
                    reason = "parent_canceled"
                elif r.parent_id is None:
                    g.parent_canceled = True
            out.append(OrderCanceled(0, ts, r.id, r.account, r.symbol, int(f["remaining"]), reason))
            self._routed_done(r, g)
        elif kind == "rejected" and r.canceling and f.get("request") == "cancel":
            pass  # its clients saw it canceled; the venue reports what happens to it
        elif kind == "rejected":
            # As in the matching contract, a refused cancel or replace is an
            # OrderRejected too; only a refused submit ends the order (and its legs,
            # which were never accepted).
            out.append(OrderRejected(0, ts, r.id, r.account, str(f["reason"])))
            if f.get("request", "submit") == "submit":
                if self.finished.capacity:  # it ends never accepted: as its owner knew it
                    self.finished.begin(self._routed_accepted(r, ts))
                risk.on_done(r.id)
                del self.routed[r.id]
                if f.get("maybe_placed"):
                    self.orphans[r.id] = r
                if g is not None and r.parent_id is None:
                    for leg_id in g.legs:
                        gone = self.routed.pop(leg_id, None)
                        risk.on_done(leg_id)
                        if gone is not None and f.get("maybe_placed"):
                            # the venue made its legs with it: their fills are real too
                            self.orphans[leg_id] = gone
                            if self.finished.capacity:
                                # GetOrder answers for it as for its parent: rejected
                                # with it, then its late fills' lots and average
                                self.finished.begin(self._routed_accepted(gone, ts))
                                self.finished.end(leg_id, "rejected", str(f["reason"]), ts)
                    del self.routed_groups[g.parent_id]
                coid = self.client_order_ids.pop(r.id, None)
                acc = self.account_index.get(r.account)
                if coid is not None and acc is not None:
                    self.idempotency.forget(acc, coid, r.id)
        elif kind == "trailed":
            # the venue's stop moved; as on the internal venue, only a new stop price
            # is an event (a watermark move that the trail's rounding absorbs is not)
            stop, hwm = int(f["stop_price"]), int(f["hwm"])
            if r.order_type == "trailing_stop" and not r.filled:
                if stop != r.stop_price:
                    out.append(OrderTrailed(0, ts, r.id, r.account, r.symbol, stop, hwm))
                r.stop_price, r.hwm = stop, hwm
        elif kind == "replaced":
            if f.get("limit_price") is not None:
                r.price = int(f["limit_price"])
            if f.get("stop_price") is not None:
                r.stop_price = int(f["stop_price"])
            if r.order_type == "trailing_stop":
                # its quantity and/or trail; the stop and watermark Alpaca gives it then
                # (contingent.py's OrderReplaced: the stop as its price)
                r.qty = int(f["qty"])
                if f.get("trail_price") is not None:
                    r.trail_price = int(f["trail_price"])
                if f.get("trail_percent") is not None:
                    r.trail_percent = float(f["trail_percent"])
                if f.get("hwm") is not None:
                    r.hwm = int(f["hwm"])
                now = r.stop_price
                out.append(
                    OrderReplaced(
                        0, ts, r.id, r.account, r.symbol, now or 0, r.qty, now,
                        r.trail_price, r.trail_percent,
                    )
                )  # fmt: skip
                risk.on_replaced(r.id, r.qty, None)
            elif r.parent_id is not None and g is not None:
                # a leg's prices moved; it works what its group gives it (as internally)
                r.qty = max(g.exit_open, 0)
                price = r.price if r.price is not None else (r.stop_price or 0)
                out.append(
                    OrderReplaced(0, ts, r.id, r.account, r.symbol, price, r.qty, r.stop_price)
                )
                risk.on_replaced(r.id, r.qty if r.order_type == "limit" else 0, r.price)
            else:
                r.qty = int(f["qty"])
                out.append(OrderReplaced(0, ts, r.id, r.account, r.symbol, r.price or 0, r.qty))
                risk.on_replaced(r.id, r.qty, r.price)
        return self._number(out)

    def _venue_fill(self, r: RoutedOrder, f: dict[str, Any], out: list[Event]) -> None:
        """Book the venue's execution `f` of routed order `r` (open or orphaned): its
        `Trade` against the venue (maker id 0, account ``venue:<name>``), the position
        changes and halts it causes; `r` keeps its filled and open lots."""
        qty, price, when = int(f["qty"]), int(f["price"]), int(f["ts_event"])
        venue = f"venue:{f.get('venue', 'alpaca')}"
        buy = r.side == "buy"
        out.append(Trade(0, when, r.symbol, price, qty, r.id, 0, r.side, r.account, venue))
        out.extend(
            self.positions.on_trade(
                r.symbol,
                price,
                qty,
                r.account if buy else venue,
                venue if buy else r.account,
                when,
            )
        )
        out.extend(self.risk.on_trade(r.symbol, price, when))
        r.filled += qty
        if r.notional is not None:
            r.notional += price * qty
        r.qty = int(f["leaves_qty"])

    def _orphan_report(self, kind: str, f: dict[str, Any]) -> list[Event]:
        """What the venue said about an orphan: an order rejected (`OrderRejected`,
        its events ended) whose submit may have reached the venue anyway. A fill there
        is a real execution and is booked, a late fill: its `Trade` and position
        changes, with no order event (the order stays rejected; its finished view
        counts the lots). Risk does not refuse it (the position is what the venue made
        it, past max_position or not), and it no longer counts as an open order. A
        close ends the watch, with no event. A bracket's, OTO's or OCO's legs are
        orphans with their parent, which is kept while they are (a restart hands them
        back with it) and whose close ends theirs too."""
        r = self.orphans.get(int(f["order_id"]))
        if r is None:
            return []
        out: list[Event] = []
        legs = [x.id for x in self.orphans.values() if x.parent_id == r.id]
        if kind == "filled":
            self._venue_fill(r, f, out)
            self.finished.late_fill(r.id, int(f["qty"]), int(f["price"]))
            if r.qty <= 0 and not legs:
                del self.orphans[r.id]
        elif kind == "canceled":
            for i in (r.id, *legs):
                del self.orphans[i]
        return self._number(out)

    def _fall_back(self, r: RoutedOrder, g: Group | None, ts: int) -> list[Event] | None:
        """Match here a routed order whose submit never reached the venue (the venue
        said `FALLBACK`: policy ``internal``), as if it had come while the venue was
        unreachable: a plain order or an order class's parent goes into the book under
        its own id, with its legs held as on the internal venue; a trailing stop is
        held. The book takes ids in rising order only, so an order a later one has
        overtaken there (the outage made that one match here first) cannot: None, and
        nothing changed (the caller rejects it). Risk counts it from here on as the
        internal venue counts its kind (its check was passed when it was routed)."""
        trailing = r.order_type == "trailing_stop"
        if not trailing and r.id <= self.core.last_id:
            return None
        legs = [self.routed[i] for i in g.legs if i in self.routed] if g is not None else []
        for o in (r, *legs):
            del self.routed[o.id]
            self.risk.on_done(o.id)
        if g is not None:
            del self.routed_groups[g.parent_id]
        # Its market collar is the one matched here now: the limits in force, the
        # reference at this report (a recovery replays it under its own limits).
        collar = self.risk.market_collar(r.account, r.symbol)
        if trailing:
            order = trailing_stop(
                r.id, r.account, r.symbol, r.side, r.qty, r.tif, r.trail_price, r.trail_percent
            )
            order.market_collar_bps = collar
            return self._number(self.contingent.add_trailing(self, order, ts))
        if g is not None:
            held = [
                HeldOrder(
                    leg.id, leg.account, leg.symbol, leg.side, leg.order_type, leg.qty,
                    leg.price, leg.stop_price, leg.tif, g.order_class, r.id, leg.leg,
                    max_position=leg.max_position,
                    market_collar_bps=collar if leg.order_type == "stop" else None,
                )
                for leg in legs
            ]  # fmt: skip
            self.contingent.expect(r.id, g.order_class, held)
        cmd = Command.make(
            NEW,
            r.id,
            self.account_index[r.account],
            self.symbol_index[r.symbol],
            ts,
            SIDES[r.side],
            ORDER_TYPES[r.order_type],
            r.qty,
            -1 if r.price is None else r.price,
            -1 if r.stop_price is None else r.stop_price,
            TIFS[r.tif],
        )
        return self.apply(self.collared(cmd))

    def _routed_accepted(self, r: RoutedOrder, ts: int) -> OrderAccepted:
        return OrderAccepted(
            0,
            ts,
            r.id,
            r.account,
            r.symbol,
            r.side,
            r.order_type,
            r.qty,
            r.price,
            r.stop_price,
            r.tif,
            False,
            self.client_order_ids.get(r.id),
            r.order_class,
            r.parent_id,
            r.leg,
            r.trail_price,
            r.trail_percent,
        )

    def _routed_legs(self, g: Group | None) -> list[RoutedOrder]:
        """A routed group's legs that are still open (for the engine's clients)."""
        if g is None:
            return []
        legs = (self.routed.get(i) for i in g.legs)
        return [leg for leg in legs if leg is not None and not leg.canceling]

    def _routed_done(self, r: RoutedOrder, g: Group | None) -> None:
        """A routed order is closed (filled or canceled): forget it, and its group once
        the parent and every leg are."""
        self.risk.on_done(r.id)
        del self.routed[r.id]
        self.client_order_ids.pop(r.id, None)
        if g is None:
            return
        if r.parent_id is None:
            g.parent_open = False
        elif r.id in g.legs:
            g.legs.remove(r.id)
        if not g.parent_open and not g.legs:
            del self.routed_groups[g.parent_id]

    def _refuse_release(
        self, leg: RoutedOrder, reason: str, remaining: int, ts: int, out: list[Event]
    ) -> None:
        """Risk refuses a leg the venue released: it is canceled for the clients, as on
        the internal venue (its siblings keep working), and the venue is asked to
        cancel it (`venue_cancels`); it stays routed, hidden, until the venue confirms."""
        leg.canceling = True
        self.risk.on_done(leg.id)
        out.append(OrderCanceled(0, ts, leg.id, leg.account, leg.symbol, remaining, reason))
        self.venue_cancels.append(leg.id)

    def _routed_group_fill(
        self, g: Group, r: RoutedOrder, qty: int, ts: int, out: list[Event]
    ) -> None:
        """What a fill of a routed group's order does to the others, as contingent.py
        does it on the internal venue: a bracket's or OTO's parent activates its legs
        for what it filled; any exit's fill takes from the others (`OrderReplaced`)."""
        risk = self.risk
        parent = r.parent_id is None
        if parent and g.order_class != "oco":
            g.exit_open += qty
            for leg in self._routed_legs(g):
                assert leg.leg is not None
                out.append(
                    OrderActivated(
                        0, ts, leg.id, leg.account, leg.symbol, g.parent_id, leg.leg, g.exit_open
                    )
                )
                if leg.order_type == "limit":  # a take-profit works its lots, if risk lets it
                    refused = risk.check_release(leg.id, g.exit_open, g.legs, leg.max_position)
                    if refused is None:
                        risk.on_replaced(leg.id, g.exit_open)
                    else:
                        self._refuse_release(leg, refused.reason, g.exit_open, ts, out)
            return
        g.any_leg_filled = True
        g.exit_open -= qty
        if g.exit_open <= 0:
            return  # the venue cancels the others: OrderCanceled(reason="oco") follows
        others = [leg for leg in self._routed_legs(g) if leg.id != r.id]
        if not parent and g.order_class == "oco":
            limit = self.routed.get(g.parent_id)
            if limit is not None and limit.qty > g.exit_open:
                others.append(limit)
        for o in others:
            o.qty = g.exit_open
            risk.on_replaced(o.id, g.exit_open if o.order_type == "limit" else 0, o.price)
            out.append(
                OrderReplaced(
                    0, ts, o.id, o.account, o.symbol, o.price or o.stop_price or 0, g.exit_open,
                    o.stop_price,
                )
            )  # fmt: skip

    def market_data(
        self, symbol: int, ts: int, prints: dict[str, list[TradePrint]] | None = None
    ) -> list[TopOfBook | BookDelta]:
        """The market-data messages after a turn touched `symbol`, numbered in its own
        md_seq: the top of book carrying the symbol's trades of the turn (`prints`, per
        symbol: `tape`), and the L2 delta against the previous top (when the levels
        changed: the top's `has_delta` says so)."""
        name = self.symbols[symbol]
        self.md_seq[name] = self.md_seq.get(name, 0) + 1
        top = self.book(symbol, self.config.top_levels, ts)
        if prints:
            trades = prints.get(name)
            if trades:
                top.trades = trades
        before = self._last_top.get(name)
        self._last_top[name] = top
        if before is None:
            return [top]
        bids = _changed(before.bids, top.bids)
        asks = _changed(before.asks, top.asks)
        if not bids and not asks:
            return [top]
        top.has_delta = True  # a subscriber that misses the delta can tell (and replay it)
        return [top, BookDelta(top.md_seq, ts, name, bids, asks)]

    def book(self, symbol: int, levels: int, ts: int) -> TopOfBook:
        """`levels` aggregated levels a side, best first (md_seq: the symbol's last)."""
        name = self.symbols[symbol]
        n = self.md_seq.get(name, 0)
        depth = self.core.depth(symbol, levels)
        return TopOfBook(
            n,
            ts,
            name,
            [BookLevel(*lv) for lv in depth["bids"]],
            [BookLevel(*lv) for lv in depth["asks"]],
            self.core.last_price(symbol),
        )

    # -- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **self.core.dump())
        snap = StateSnapshot(
            version=SNAPSHOT_VERSION,
            accounts=self.accounts,
            client_order_ids=self.client_order_ids,
            seq=self.seq,
            md_seq=self.md_seq,
            core=buf.getvalue(),
            positions=self.positions.snapshot(),
            risk=self.risk.snapshot(),
            routed=list(self.routed.values()),
            last_id=self.last_routed_id,
            accepted_client_order_ids=self.idempotency.dump(),
            contingent=self.contingent.snapshot(),
            routed_groups=sorted(self.routed_groups.values(), key=lambda g: g.parent_id),
            finished=self.finished.snapshot(),
            orphans=list(self.orphans.values()),
        )
        return msgspec.msgpack.encode(snap)

    def restore(self, raw: bytes) -> None:
        """Resume from `snapshot()` bytes (on a fresh state)."""
        try:
            version = msgspec.msgpack.decode(raw, type=_Version).version
        except msgspec.DecodeError as exc:
            raise SnapshotError(f"snapshot does not decode: {exc}") from None
        if version != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"snapshot format {version}, this engine reads {SNAPSHOT_VERSION}: start "
                "the engine version that wrote it, or move the snapshot aside to recover "
                "from the journal alone (when the journal still holds every record)"
            )
        try:
            snap = msgspec.msgpack.decode(raw, type=StateSnapshot)
        except msgspec.DecodeError as exc:
            raise SnapshotError(f"snapshot format {version} does not decode: {exc}") from None
        with np.load(io.BytesIO(snap.core), allow_pickle=False) as z:
            self.core.load({k: z[k] for k in z.files})
        self.accounts = snap.accounts
        self.account_index = {a: i for i, a in enumerate(self.accounts) if i}
        self.client_order_ids = snap.client_order_ids
        self.seq = snap.seq
        self.recent.first = self.recent.next = snap.seq + 1  # it holds nothing older
        self.md_seq = snap.md_seq
        self.positions.restore(snap.positions)
        self.risk.restore(snap.risk)
        self._configure_references()  # the configuration now in force, not the snapshot's
        self.routed = {r.id: r for r in snap.routed}
        self.last_routed_id = snap.last_id
        self.idempotency.load(snap.accepted_client_order_ids)
        self.contingent.restore(snap.contingent)
        self.routed_groups = {g.parent_id: g for g in snap.routed_groups}
        self.finished.restore(snap.finished)
        self.orphans = {r.id: r for r in snap.orphans}

    # -- queries ---------------------------------------------------------------------------

    def order_view(self, order_id: int, account: str) -> wire.OrderView | None:
        """The order `order_id` of `account`: open (resting, held or routed), else
        recently finished (`finished`); None when it is neither or another account's."""
        view = self._open_view(order_id, account)
        return view if view is not None else self.finished.view(order_id, account)

    def _open_view(self, order_id: int, account: str) -> wire.OrderView | None:
        """The open order `order_id` of `account` (resting, held or routed), or None
        when it is done or belongs to another account."""
        routed = self.routed.get(order_id)
        if routed is not None:
            if routed.account != account or routed.canceling:
                return None
            return wire.OrderView(
                routed.id,
                account,
                routed.symbol,
                routed.side,
                routed.order_type,
                "routed",
                routed.price,
                routed.stop_price,
                routed.qty,
                routed.tif,
                self.client_order_ids.get(order_id),
                routed.order_class,
                routed.parent_id,
                routed.leg,
                routed.trail_price,
                routed.trail_percent,
                hwm=routed.hwm,
            )
        contingent = self.contingent
        if contingent.busy:
            h = contingent.orders.get(order_id)
            if h is not None:
                return None if h.account != account else self._held_view(h)
            if order_id in contingent.aliases:
                return None  # a piece is its held order's business
        acc = self.account_index.get(account)
        o = self.core.order(order_id) if acc is not None and order_id > 0 else None
        if o is None or o["account"] != acc:
            return None
        otype = TYPE_NAMES[int(o["type"])]
        held = o["status"] == "held"
        return wire.OrderView(
            order_id,
            account,
            self.symbols[int(o["symbol"])],
            SIDE_NAMES[int(o["side"])],
            otype,
            str(o["status"]),
            int(o["price"]) if not held or otype == "stop_limit" else None,
            int(o["stop_price"]) if held else None,
            int(o["qty"]),
            TIF_NAMES.get(int(o["tif"]), "gtc"),
            self.client_order_ids.get(order_id),
            g.order_class if (g := contingent.groups.get(order_id)) is not None else None,
        )

    def _held_view(self, h: HeldOrder) -> wire.OrderView:
        working = h.piece != 0 or (h.target > 0 and h.order_type == "limit")
        return wire.OrderView(
            h.id,
            h.account,
            h.symbol,
            h.side,
            h.order_type,
            "resting" if working else "held",
            h.price,
            h.current_stop(),
            h.piece_open if h.piece else (h.qty if h.target <= 0 and not h.filled else h.target),
            h.tif,
            self.client_order_ids.get(h.id),
            h.order_class,
            h.parent_id,
            h.leg,
            h.trail_price,
            h.trail_percent,
            h.filled,
            h.watermark if h.order_type == "trailing_stop" else None,
        )

    def open_orders(self, account: str, symbol: str | None = None) -> list[wire.OrderView]:
        """The account's open orders (resting, held stops, routed), by id."""
        ids = set(self.risk.open_orders(account, symbol))
        ids.update(self.contingent.open_ids(account, symbol))
        # a routed order is open from its hand-off, before the venue accepts it
        ids.update(
            r.id
            for r in self.routed.values()
            if r.account == account and (symbol is None or r.symbol == symbol)
        )
        views = (self._open_view(i, account) for i in sorted(ids))
        return [v for v in views if v is not None]

    def symbol_infos(self, ts: int) -> list[wire.SymbolInfo]:
        """Every symbol this engine trades, in configuration order, as of `ts`."""
        out = []
        for i, sym in enumerate(self.config.symbols):
            last = self.core.last_price(i)
            if last is None:  # a routed symbol's last trade is the venue's
                last = self.positions.mark_price(sym.name)
            out.append(
                wire.SymbolInfo(
                    sym.name,
                    sym.tick_size,
                    sym.lot_size,
                    self.risk.reference(sym.name),
                    last,
                    self.risk.halted(sym.name, ts),
                )
            )
        return out

    def account_view(self, account: str) -> wire.AccountView:
        """The account's money, P&L, positions (symbols it ever traded), open orders and
        kill switch (an account never seen has its starting cash and nothing else)."""
        a = self.positions.account(account)
        positions = [
            wire.PositionView(
                p.symbol,
                p.position,
                p.avg_price,
                p.cost_basis,
                p.realized_pnl,
                p.unrealized_pnl,
                p.mark,
            )
            for p in a.positions
        ]
        return wire.AccountView(
            account,
            a.cash,
            a.equity,
            a.realized_pnl,
            a.unrealized_pnl,
            positions,
            len(self.open_orders(account)),
            self.risk.killed(account),
        )

    def replay(self, from_seq: int, to_seq: int, limit: int) -> list[Event] | None:
        """Events from_seq..to_seq (at most `limit`) from memory; None if too old."""
        return self.recent.range(from_seq, min(to_seq, self.seq), limit)


_ROUTED_STOPS = frozenset({"stop", "stop_limit", "trailing_stop"})


def _held_stop(r: RoutedOrder) -> bool:
    """A routed order the venue holds until its stop triggers, then trades: a stop or
    stop-limit, a trailing stop, or a stop-loss leg (the internal venue's
    `StopTriggered` ones; Alpaca reports no trigger, so the first fill stands for it)."""
    return r.parent_id is not None or r.order_type in _ROUTED_STOPS


def tape(events: list[Event]) -> dict[str, list[TradePrint]]:
    """The trades of this engine's books among `events` as public prints, per symbol,
    in order: what rides on each symbol's next top (`EngineState.market_data`). Who
    traded (accounts, order ids) stays behind, on the sequenced stream. A venue's
    fill (maker 0: its counterparty is at the venue, `apply_venue`) is no trade of
    these books."""
    out: dict[str, list[TradePrint]] = {}
    for ev in events:
        if type(ev) is Trade and ev.maker:
            prints = out.get(ev.symbol)
            if prints is None:
                prints = out[ev.symbol] = []
            prints.append(TradePrint(ev.price, ev.qty, ev.taker_side, ev.ts_event))
    return out


def _changed(before: list[BookLevel], after: list[BookLevel]) -> list[BookLevel]:
    """Levels whose quantity or order count differs (qty 0: gone), best first."""
    old = {lv.price: lv for lv in before}
    new = {lv.price: lv for lv in after}
    out = [lv for lv in after if old.get(lv.price) != lv]
    out += [BookLevel(p, 0, 0) for p in old if p not in new]
    return out


class EventRing:
    """The last `capacity` events by seq, with O(1) access for gap fills."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: list[Event | None] = [None] * capacity
        self.first = 1  # seq of the oldest event held
        self.next = 1  # seq the next event will have

    def number(self, events: list[Event], last_seq: int) -> int:
        """Number `events` on from `last_seq` and keep them; return the last seq. One
        pass does both: numbering is on every command's path."""
        cap = self.capacity
        if cap == 0:
            for ev in events:
                last_seq += 1
                ev.seq = last_seq
            return last_seq
        if self.next != last_seq + 1:  # after a restore the ring starts where the state is
            self.first = self.next = last_seq + 1
        items = self._items
        for ev in events:
            last_seq += 1
            ev.seq = last_seq
            items[last_seq % cap] = ev
        self.next = last_seq + 1
        if self.next - self.first > cap:
            self.first = self.next - cap
        return last_seq

    def range(self, from_seq: int, to_seq: int, limit: int) -> list[Event] | None:
        if from_seq >= self.next:
            return []
        if from_seq < self.first or self.capacity == 0:
            return None
        stop = min(to_seq + 1, self.next, from_seq + limit)
        out: list[Event] = []
        for seq in range(from_seq, stop):
            ev = self._items[seq % self.capacity]
            assert ev is not None
            out.append(ev)
        return out
