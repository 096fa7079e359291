"""Order classes the compiled core does not know: trailing stops, OTO, bracket and OCO.

The core matches plain orders; this module holds the rest in the engine state (the
single writer) and turns them into plain core orders when they activate or trigger.
docs/order-classes.md states the behaviour; in short:

- a *held order* is a trailing stop or a leg of a bracket, OTO or OCO. It has its own
  order id (reserved when its parent is accepted) and stays here until it works; what
  it then puts in the book is a *piece*, a core order with a fresh core id, whose
  events are renamed to the held order's id (`translate`), so clients only ever see
  the held order's id;
- a *group* links a parent (a core order) with its legs. Its `exit_open` is how much
  the legs may still sell (or buy) back: a bracket's or OTO's parent fills add to it,
  leg fills take from it, and every leg works exactly `exit_open` (that is what makes
  a bracket's two legs one-cancels-other). An OCO's parent is its take-profit limit:
  its `exit_open` starts at the order's quantity and both the limit's and the stop's
  fills take from it.

Everything here runs inside `EngineState.apply` (after a journaled command) or from a
journaled MARK, never on its own: recovery re-applies the same commands and marks and
rebuilds the same held orders, pieces and events. Plain orders pay one truthiness
check per command (`busy`, `aliases`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from tickplane.core.events import (
    STOP_LOSS,
    TAKE_PROFIT,
    Event,
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    StopTriggered,
    Trade,
)
from tickplane.engine.matching import KEEP, OrderType, Side, TimeInForce
from tickplane.engine.risk import collar_price

if TYPE_CHECKING:
    from tickplane.engine.state import EngineState

__all__ = [
    "CLASSES",
    "STOP_LOSS",
    "TAKE_PROFIT",
    "ContingentOrders",
    "Group",
    "HeldOrder",
    "exit_side",
    "exits_refused",
    "trail_units",
]

CLASSES: Final = ("simple", "bracket", "oto", "oco")
TRAILING: Final = "trailing_stop"
_PPM: Final = 1_000_000  # trail_percent is kept in millionths of the price
_TIFS: Final = {"gtc": int(TimeInForce.GTC), "day": int(TimeInForce.DAY)}


def exit_side(order_class: str, side: str) -> str:
    """The side an order's exits work on: a bracket's or OTO's the opposite of its
    parent's, an OCO's its own (both its legs exit an existing position)."""
    return side if order_class == "oco" else ("sell" if side == "buy" else "buy")


def exits_refused(side: str, take_profit: int, stop: int) -> str | None:
    """Why a take-profit limit and a stop-loss stop cannot be the exits of one bracket
    or OCO working on `side` (`exit_side`; None: they can): selling exits take profit
    above the stop, buying exits below it. A submission and every replace of either
    price are held to it (reason `bad_legs`, docs/order-classes.md)."""
    if side == "sell" and not take_profit > stop:
        return "selling exits: take_profit above stop_loss's stop"
    if side == "buy" and not take_profit < stop:
        return "buying exits: take_profit below stop_loss's stop"
    return None


def trail_units(percent: float) -> int:
    """A trail percent as millionths of the watermark (exact integer arithmetic after)."""
    return round(percent * (_PPM // 100))


class HeldOrder(msgspec.Struct):
    """A trailing stop or a leg (module docstring). `target` is what it works now."""

    id: int
    account: str
    symbol: str
    side: str
    order_type: str  # limit (take profit), stop / stop_limit (stop loss), trailing_stop
    qty: int  # the quantity it was accepted for
    price: int | None
    stop_price: int | None
    tif: str
    order_class: str
    parent_id: int | None = None
    leg: str | None = None
    trail_price: int | None = None
    trail_percent: float | None = None
    trail_units: int = 0
    watermark: int | None = None  # trailing stop: best trade price since acceptance
    target: int = 0
    triggered: bool = False
    piece: int = 0  # core id of its live piece (0: nothing in the book)
    piece_open: int = 0
    filled: int = 0
    reduced: bool = False  # its sibling's fills, not its own, took its quantity last
    # a leg: the max_position in force when it was accepted, checked when it is released
    # (journaled with it, so a recovery under other limits decides the same)
    max_position: int | None = None
    # a stop or trailing stop: the market collar in force when it was accepted (bps from
    # its stop price, `collar`), journaled with it like max_position
    market_collar_bps: int | None = None

    def collar(self) -> int:
        """The price its market piece trades no further than (docs/risk.md, "Market
        collar"), from its stop price now; 0: none."""
        stop = self.current_stop()
        if self.market_collar_bps is None or stop is None:
            return 0
        return collar_price(stop, self.market_collar_bps, self.side == "buy")

    def current_stop(self) -> int | None:
        """The stop price: a trailing stop's follows its watermark."""
        if self.order_type != TRAILING:
            return self.stop_price
        wm = self.watermark
        if wm is None:
            return None
        trail = self.trail_price
        if trail is None:
            trail = (wm * self.trail_units + _PPM // 2) // _PPM
        return wm - trail if self.side == "sell" else wm + trail


class Group(msgspec.Struct):
    """A parent (a core order) and its legs (held orders)."""

    parent_id: int
    order_class: str
    legs: list[int]
    exit_open: int = 0
    parent_open: bool = True
    parent_canceled: bool = False
    any_leg_filled: bool = False


class _Pending(msgspec.Struct):
    order_class: str
    legs: list[HeldOrder]


class ContingentSnapshot(msgspec.Struct):
    orders: list[HeldOrder] = msgspec.field(default_factory=list)
    groups: list[Group] = msgspec.field(default_factory=list)
    aliases: list[tuple[int, int]] = msgspec.field(default_factory=list)
    reserved: int = 0


class ContingentOrders:
    """Held orders, groups and pieces of one engine (module docstring)."""

    def __init__(self) -> None:
        self.orders: dict[int, HeldOrder] = {}
        self.groups: dict[int, Group] = {}
        self.aliases: dict[int, int] = {}  # piece core id -> held order id
        self.pending: dict[int, _Pending] = {}  # parent id -> legs, until it is applied
        self.reserved = 0  # the highest id handed to a held order
        self.busy = False  # anything here at all (plain orders skip this module)
        self._quiet: set[int] = set()  # pieces whose next accept/replace/cancel we caused
        # trailing stops whose watermark moved in the trades being scanned -> their stop
        # before the first move (an OrderTrailed follows if the stop differs now)
        self._moved: dict[int, int | None] = {}

    def _refresh(self) -> None:
        self.busy = bool(self.orders or self.groups or self.pending)

    # -- registration (MARKs journaled before the parent's command) -----------------------

    def expect(self, parent_id: int, order_class: str, legs: list[HeldOrder]) -> None:
        """Legs waiting for their parent's NEW command (dropped if the core rejects it)."""
        self.pending[parent_id] = _Pending(order_class, legs)
        self.reserved = max(self.reserved, parent_id, *(leg.id for leg in legs))
        self.busy = True

    def add_trailing(self, st: EngineState, order: HeldOrder, ts: int) -> list[Event]:
        """Accept a trailing stop: it watches trades from now on."""
        sym = st.symbol_index[order.symbol]
        order.watermark = st.core.last_price(sym)
        order.target = order.qty
        self.orders[order.id] = order
        # an open order of its quantity from now on, as a plain stop is
        st.risk.on_held(order.id, order.account, order.symbol, order.side, order.qty)
        self.reserved = max(self.reserved, order.id)
        self.busy = True
        return [self._accepted(order, ts, st.client_order_ids.get(order.id))]

    @staticmethod
    def _replaced(h: HeldOrder, ts: int) -> OrderReplaced:
        stop = h.current_stop()
        price = h.price if h.price is not None else (stop or 0)
        # a trailing stop's trail as it is now (a leg has none: both stay None)
        return OrderReplaced(
            0, ts, h.id, h.account, h.symbol, price, max(h.target, 0), stop,
            h.trail_price, h.trail_percent,
        )  # fmt: skip

    @staticmethod
    def _accepted(h: HeldOrder, ts: int, client_order_id: str | None = None) -> OrderAccepted:
        return OrderAccepted(
            0,
            ts,
            h.id,
            h.account,
            h.symbol,
            h.side,
            h.order_type,
            h.qty,
            h.price,
            h.current_stop(),
            h.tif,
            False,
            client_order_id,
            h.order_class,
            h.parent_id,
            h.leg,
            h.trail_price,
            h.trail_percent,
        )

    # -- translation of core events ---------------------------------------------------------

    def translate(self, events: list[Event]) -> list[Event]:
        """Rename pieces to their held orders; drop what only we caused (a piece's
        acceptance, and replaces and cancels this module made)."""
        aliases, quiet = self.aliases, self._quiet
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, Trade):
                ev.taker = aliases.get(ev.taker, ev.taker)
                ev.maker = aliases.get(ev.maker, ev.maker)
            elif isinstance(ev, OrderAccepted | OrderReplaced | OrderCanceled):
                held = aliases.get(ev.id)
                if held is not None:
                    if isinstance(ev, OrderAccepted) or ev.id in quiet:
                        quiet.discard(ev.id)
                        if isinstance(ev, OrderCanceled):
                            del aliases[ev.id]
                        continue
                    if isinstance(ev, OrderCanceled):
                        del aliases[ev.id]
                        h = self.orders.get(held)
                        if h is not None:
                            h.piece, h.piece_open = 0, 0
                    ev.id = held
            elif isinstance(ev, StopTriggered | OrderRejected):
                ev.id = aliases.get(ev.id, ev.id)
            out.append(ev)
        return out

    # -- after each command -------------------------------------------------------------

    def after(
        self, st: EngineState, new_id: int | None, out: list[Event], start: int, ts: int
    ) -> None:
        """React to a command's events `out[start:]` (appending what follows from them):
        register a parent's legs, activate, reduce, trigger, settle."""
        if new_id is not None:
            pending = self.pending.pop(new_id, None)
            if pending is not None:
                self._register(new_id, pending, out, start, st)
        self.drain(st, out, start, ts)
        self._quiet.clear()
        self._refresh()

    def drain(self, st: EngineState, out: list[Event], start: int, ts: int) -> None:
        """Scan events from `start`, then trigger held stops one at a time, until quiet."""
        i = start
        while True:
            while i < len(out):
                ev = out[i]
                i += 1
                self._on_event(st, ev, out, ts)
            if self._moved:
                self._publish_moves(out, ts)
            if not self._trigger_one(st, out, ts):
                return

    def _register(
        self, parent_id: int, p: _Pending, out: list[Event], start: int, st: EngineState
    ) -> None:
        for k in range(start, len(out)):
            ev = out[k]
            if isinstance(ev, OrderAccepted) and ev.id == parent_id:
                ev.order_class = p.order_class
                g = Group(parent_id, p.order_class, [leg.id for leg in p.legs])
                if p.order_class == "oco":
                    g.exit_open = ev.qty
                self.groups[parent_id] = g
                for leg in p.legs:
                    self.orders[leg.id] = leg
                    # an open order from now on, with no lots until it is released
                    st.risk.on_held(leg.id, leg.account, leg.symbol, leg.side, 0)
                    if p.order_class == "oco":
                        leg.target = g.exit_open  # an OCO's stop works from the start
                out[k + 1 : k + 1] = [self._accepted(leg, ev.ts_event) for leg in p.legs]
                return

    def _on_event(self, st: EngineState, ev: Event, out: list[Event], ts: int) -> None:
        if isinstance(ev, Trade):
            self._watch(ev.symbol, ev.price)
            for oid in (ev.taker, ev.maker):
                h = self.orders.get(oid)
                if h is not None:
                    self._leg_filled(st, h, ev.qty, out, ts)
                    continue
                g = self.groups.get(oid)
                if g is not None:
                    self._parent_filled(st, g, ev.qty, out, ts)
        elif isinstance(ev, OrderCanceled):
            h = self.orders.get(ev.id)
            if h is not None:  # its piece left the book (a market remainder, a mass cancel)
                self._close(st, h)
                return
            g = self.groups.get(ev.id)
            if g is not None and g.parent_open:
                g.parent_open = False
                if ev.reason != "oco":
                    g.parent_canceled = True
                    if g.order_class == "oco":  # canceling an OCO's limit cancels both
                        g.exit_open = 0
                self._settle(st, g, out, ts)

    def _watch(self, symbol: str, price: int) -> None:
        moved = self._moved
        for h in self.orders.values():
            if h.order_type == TRAILING and not h.triggered and h.symbol == symbol:
                wm = h.watermark
                if wm is None or (price > wm if h.side == "sell" else price < wm):
                    if h.id not in moved:
                        moved[h.id] = h.current_stop()
                    h.watermark = price

    def _publish_moves(self, out: list[Event], ts: int) -> None:
        """An OrderTrailed for each trailing stop whose stop the scanned trades moved
        (a watermark move that the percent's rounding swallows changes nothing)."""
        for oid, before in sorted(self._moved.items()):
            h = self.orders.get(oid)
            if h is None or h.triggered:
                continue
            stop = h.current_stop()
            if stop is not None and stop != before and h.watermark is not None:
                out.append(OrderTrailed(0, ts, h.id, h.account, h.symbol, stop, h.watermark))
        self._moved.clear()

    def _parent_filled(
        self, st: EngineState, g: Group, qty: int, out: list[Event], ts: int
    ) -> None:
        if g.order_class == "oco":  # the parent is the take-profit leg itself
            g.any_leg_filled = True
            g.exit_open -= qty
        else:
            g.exit_open += qty
        for leg_id in list(g.legs):  # a leg risk refuses to release leaves the list
            leg = self.orders.get(leg_id)
            if leg is not None:
                self._sync(st, leg, g.exit_open, out, ts)
        if g.parent_open and st.core.order(g.parent_id) is None:
            g.parent_open = False
        self._settle(st, g, out, ts)

    def _leg_filled(
        self, st: EngineState, h: HeldOrder, qty: int, out: list[Event], ts: int
    ) -> None:
        h.filled += qty
        h.target -= qty
        h.reduced = False
        h.piece_open -= qty
        if h.piece and h.piece_open <= 0:
            self.aliases.pop(h.piece, None)
            h.piece, h.piece_open = 0, 0
        if h.parent_id is None:  # a trailing stop: done once its piece is
            if h.piece == 0:
                self._close(st, h)
            return
        g = self.groups.get(h.parent_id)
        if g is None:
            return
        g.any_leg_filled = True
        g.exit_open -= qty
        for leg_id in list(g.legs):
            leg = self.orders.get(leg_id)
            if leg_id != h.id and leg is not None:
                self._sync(st, leg, g.exit_open, out, ts)
        if g.order_class == "oco" and g.parent_open:
            self._reduce_parent(st, g, out, ts)
        self._settle(st, g, out, ts)

    def _reduce_parent(self, st: EngineState, g: Group, out: list[Event], ts: int) -> None:
        """An OCO's stop filled: its limit (the parent, a core order) works less."""
        o = st.core.order(g.parent_id)
        if o is None:
            g.parent_open = False
            return
        if g.exit_open <= 0:
            st.core.cancel(g.parent_id, ts)
            evs = st.core_events()
            for ev in evs:
                if isinstance(ev, OrderCanceled) and ev.id == g.parent_id:
                    ev.reason = "oco"
            g.parent_open = False
        elif int(o["qty"]) > g.exit_open:
            st.core.replace(g.parent_id, g.exit_open, KEEP, ts)
            evs = st.core_events()
        else:
            return
        st.absorb(evs, out, None)

    def _sync(self, st: EngineState, h: HeldOrder, target: int, out: list[Event], ts: int) -> None:
        """Make a leg work `target` (an event says so), and its piece with it."""
        target = max(target, 0)
        old = h.target
        if target == old:
            return
        h.target = target
        sym = st.symbol_index[h.symbol]
        if target > old:
            assert h.parent_id is not None and h.leg is not None
            out.append(OrderActivated(0, ts, h.id, h.account, h.symbol, h.parent_id, h.leg, target))
        else:
            h.reduced = True
            g = self.groups.get(h.parent_id) if h.parent_id is not None else None
            if target > 0 or (g is not None and g.parent_open):  # else it is canceled next
                out.append(self._replaced(h, ts))
        works_in_book = h.order_type == "limit" or (h.triggered and h.order_type == "stop_limit")
        if not works_in_book:
            if h.triggered and target > old and not h.piece:  # a triggered stop is a market
                self._submit(st, h, sym, int(OrderType.MARKET), target - old, h.collar(), out, ts)
            return  # a held stop: only its quantity changes until it triggers
        if h.piece:
            if target > h.piece_open and not self._released(st, h, target, out, ts):
                return
            self._quiet.add(h.piece)
            if target == 0:
                st.core.cancel(h.piece, ts)  # `translate` forgets the piece
                h.piece, h.piece_open = 0, 0
            else:
                st.core.replace(h.piece, target, KEEP, ts)
                h.piece_open = target
            st.risk.on_replaced(h.id, h.piece_open)
            st.absorb(self.translate(st.core_events()), out, None)
        elif target > 0 and h.price is not None:
            self._submit(st, h, sym, int(OrderType.LIMIT), target, h.price, out, ts)

    def _submit(
        self,
        st: EngineState,
        h: HeldOrder,
        sym: int,
        order_type: int,
        qty: int,
        price: int,
        out: list[Event],
        ts: int,
    ) -> None:
        """Put a piece of `h` in the book (a fresh core id, renamed to h's), if risk
        lets a leg work that much (`_released`)."""
        if h.parent_id is not None and not self._released(st, h, qty, out, ts):
            return
        st.risk.on_replaced(h.id, qty)  # its lots count from now on; fills take from them
        piece = st.next_order_id()
        self.aliases[piece] = h.id
        h.piece, h.piece_open = piece, qty
        side = int(Side.BUY) if h.side == "buy" else int(Side.SELL)
        tif = _TIFS.get(h.tif, int(TimeInForce.GTC))
        acc = st.account_index[h.account]
        st.core.submit(piece, acc, sym, side, order_type, qty, price, 0, tif, 0, ts)
        st.absorb(self.translate(st.core_events()), out, None)

    def _released(self, st: EngineState, h: HeldOrder, qty: int, out: list[Event], ts: int) -> bool:
        """Whether leg `h` may work `qty` lots in the book (max_position, docs/risk.md);
        if not, it is canceled with the risk reason (its siblings keep working). Its
        group's lots on its side are counted once: its own, its siblings' and an
        OCO's limit (they are one-cancels-other with it)."""
        g = self.groups.get(h.parent_id) if h.parent_id is not None else None
        group: list[int] = []
        if g is not None:
            group = [*g.legs, g.parent_id] if g.order_class == "oco" else g.legs
        refused = st.risk.check_release(h.id, qty, group, h.max_position)
        if refused is None:
            return True
        if h.piece:
            self._quiet.add(h.piece)
            st.core.cancel(h.piece, ts)
            st.absorb(self.translate(st.core_events()), out, None)
        remaining = max(h.target, 0)
        out.append(OrderCanceled(0, ts, h.id, h.account, h.symbol, remaining, refused.reason))
        self._close(st, h)
        if g is not None and g.parent_id in self.groups:
            self._settle(st, g, out, ts)
        return False

    def _trigger_one(self, st: EngineState, out: list[Event], ts: int) -> bool:
        """Trigger the oldest held stop whose price the last trade reached."""
        for oid in sorted(self.orders):
            h = self.orders[oid]
            if h.triggered or h.target <= 0 or h.order_type not in ("stop", "stop_limit", TRAILING):
                continue
            sym = st.symbol_index[h.symbol]
            last = st.core.last_price(sym)
            stop = h.current_stop()
            if last is None or stop is None:
                continue
            if (h.side == "buy" and last >= stop) or (h.side == "sell" and last <= stop):
                h.triggered = True
                out.append(StopTriggered(0, ts, h.id, h.account, h.symbol, stop))
                if h.order_type == "stop_limit" and h.price is not None:
                    self._submit(st, h, sym, int(OrderType.LIMIT), h.target, h.price, out, ts)
                else:
                    self._submit(st, h, sym, int(OrderType.MARKET), h.target, h.collar(), out, ts)
                return True
        return False

    def _close(self, st: EngineState, h: HeldOrder) -> None:
        """A held order is finished (its piece canceled by the core, or by a user)."""
        self.orders.pop(h.id, None)
        st.risk.on_done(h.id)
        if h.piece:
            self.aliases.pop(h.piece, None)
        if h.parent_id is not None:
            g = self.groups.get(h.parent_id)
            if g is not None and h.id in g.legs:
                g.legs.remove(h.id)
                if not g.legs:
                    del self.groups[g.parent_id]

    def _settle(self, st: EngineState, g: Group, out: list[Event], ts: int) -> None:
        """A group whose parent is done and whose exits are used up ends: its legs that
        did not fill what they were left to work are canceled."""
        if g.parent_open or g.exit_open > 0:
            return
        reason = "oco" if g.any_leg_filled else "parent_canceled"
        for leg_id in list(g.legs):
            h = self.orders[leg_id]
            if h.piece:
                self._quiet.add(h.piece)
                st.core.cancel(h.piece, ts)
                st.absorb(self.translate(st.core_events()), out, None)
            if h.filled == 0 or h.reduced:  # else it filled all it was left to work
                out.append(
                    OrderCanceled(0, ts, h.id, h.account, h.symbol, h.qty - h.filled, reason)
                )
            self._close(st, h)
        self.groups.pop(g.parent_id, None)

    # -- requests on held orders (journaled MARKs) -----------------------------------------

    def cancel(self, st: EngineState, order_id: int, ts: int, reason: str = "user") -> list[Event]:
        """A user (or, `reason` "kill_switch", a kill switch) cancels a held order (its
        piece too); its siblings keep working."""
        h = self.orders[order_id]
        out: list[Event] = []
        if h.piece:
            self._quiet.add(h.piece)
            st.core.cancel(h.piece, ts)
            st.absorb(self.translate(st.core_events()), out, None)
        out.append(OrderCanceled(0, ts, h.id, h.account, h.symbol, max(h.target, 0), reason))
        self._close(st, h)
        self._refresh()
        return out

    def replace(
        self,
        st: EngineState,
        order_id: int,
        price: int | None,
        stop_price: int | None,
        ts: int,
        qty: int | None = None,
        trail_price: int | None = None,
        trail_percent: float | None = None,
    ) -> list[Event]:
        """A user moves a leg's limit and/or stop price (its quantity follows its
        parent), or a trailing stop's quantity and/or trail (which may trigger it)."""
        h = self.orders[order_id]
        out: list[Event] = []
        if qty is not None:
            h.qty = h.target = qty
            st.risk.on_replaced(h.id, qty)  # a trailing stop counts its quantity
        if trail_price is not None:
            h.trail_price = trail_price
        if trail_percent is not None:
            h.trail_percent = trail_percent
            h.trail_units = trail_units(trail_percent)
        if stop_price is not None:
            h.stop_price = stop_price
        if price is not None:
            h.price = price
            if h.piece:
                self._quiet.add(h.piece)
                st.core.replace(h.piece, KEEP, price, ts)
                st.absorb(self.translate(st.core_events()), out, None)
        out.insert(0, self._replaced(h, ts))
        self.drain(st, out, 1, ts)
        self._refresh()
        return out

    def open_ids(self, account: str, symbol: str | None = None) -> list[int]:
        return sorted(
            h.id
            for h in self.orders.values()
            if h.account == account and (symbol is None or h.symbol == symbol)
        )

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> ContingentSnapshot:
        if self.pending:  # marks are applied with their command, never left between
            raise RuntimeError("snapshot between an order's mark and its command")
        return ContingentSnapshot(
            sorted(self.orders.values(), key=lambda h: h.id),
            sorted(self.groups.values(), key=lambda g: g.parent_id),
            sorted(self.aliases.items()),
            self.reserved,
        )

    def restore(self, snap: ContingentSnapshot) -> None:
        self.orders = {h.id: h for h in snap.orders}
        self.groups = {g.parent_id: g for g in snap.groups}
        self.aliases = dict(snap.aliases)
        self.reserved = snap.reserved
        self._refresh()


def legs_for(
    order_class: str,
    parent_id: int,
    account: str,
    symbol: str,
    side: str,
    qty: int,
    tif: str,
    take_profit: int | None,
    stop_loss: tuple[int, int | None] | None,
) -> list[HeldOrder]:
    """The legs of a bracket, OTO or OCO whose parent is `parent_id` (ids follow it).
    A bracket's and an OTO's legs exit the parent's side; an OCO's are on `side`."""
    exits = exit_side(order_class, side)
    legs: list[HeldOrder] = []
    if take_profit is not None and order_class != "oco":  # an OCO's limit is its parent
        legs.append(
            HeldOrder(
                parent_id + 1 + len(legs), account, symbol, exits, "limit", qty,
                take_profit, None, tif, order_class, parent_id, TAKE_PROFIT,
            )
        )  # fmt: skip
    if stop_loss is not None:
        stop, limit = stop_loss
        legs.append(
            HeldOrder(
                parent_id + 1 + len(legs), account, symbol, exits,
                "stop" if limit is None else "stop_limit", qty, limit, stop, tif,
                order_class, parent_id, STOP_LOSS,
            )
        )  # fmt: skip
    return legs


def trailing_stop(
    order_id: int,
    account: str,
    symbol: str,
    side: str,
    qty: int,
    tif: str,
    trail_price: int | None,
    trail_percent: float | None,
) -> HeldOrder:
    """A trailing stop (order class "simple"): its stop trails by a price or a percent."""
    return HeldOrder(
        order_id, account, symbol, side, TRAILING, qty, None, None, tif, "simple",
        trail_price=trail_price, trail_percent=trail_percent,
        trail_units=0 if trail_percent is None else trail_units(trail_percent),
    )  # fmt: skip
