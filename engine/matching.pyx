# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The matching engine of ../shared/contracts/matching.md, compiled.

One `MatchingEngine` holds every market (symbol) of an engine: the books, the held
stops, the last trade prices, one order pool and one id map. Two ways in, the same
core underneath:

- per call: `submit`, `cancel`, `replace` take primitive arguments and return how many
  events they produced; `events()` reads them (a numpy array of EVENT_DTYPE);
- batch: `process(commands)` runs a numpy array of COMMAND_DTYPE and returns all the
  events in one array.

Symbols and accounts are small integers and order ids strictly increasing uint64s; a
front end (`tickplane.engine.match` for JSON Lines, the engine process for the wire
protocol) maps names onto them.
"""

from enum import IntEnum

from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_FromStringAndSize

import numpy as np

cimport numpy as cnp

from tickplane.engine.book cimport (
    BUY,
    NIL,
    SELL,
    BookC,
    BookSide,
    IdEntry,
    Level,
    Order,
    book_append,
    book_free,
    book_init,
    book_side,
    book_unlink,
    idmap_free,
    idmap_get,
    idmap_init,
    idmap_pop,
    idmap_insert,
    level_orders_of,
    pool_alloc,
    pool_free,
    pool_init,
    pool_release,
    side_best,
    side_depth,
)

cnp.import_array()

__all__ = [
    "COMMAND_DTYPE",
    "EVENT_DTYPE",
    "HELD_DTYPE",
    "MARKET_DTYPE",
    "RESTING_DTYPE",
    "KEEP",
    "MAX_VALUE",
    "EventType",
    "MatchingEngine",
    "Op",
    "OrderType",
    "Reason",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
    "pack_command",
]

cdef int64_t MAX_VALUE_C = 1_000_000_000_000
cdef int64_t KEEP_C = INT64_MIN
cdef uint32_t MAX_SYMBOLS = 1 << 20
cdef uint32_t STOP_TAG = 0x80000000

MAX_VALUE = MAX_VALUE_C
KEEP = KEEP_C


# Python views of the C enums of matching.pxd (the pxd holds the values).
Side = IntEnum("Side", {
    "BUY": BUY,
    "SELL": SELL,
})

OrderType = IntEnum("OrderType", {
    "LIMIT": OT_LIMIT,
    "MARKET": OT_MARKET,
    "STOP": OT_STOP,
    "STOP_LIMIT": OT_STOP_LIMIT,
})

TimeInForce = IntEnum("TimeInForce", {
    "GTC": TIF_GTC,
    "DAY": TIF_DAY,
    "IOC": TIF_IOC,
    "FOK": TIF_FOK,
})

Op = IntEnum("Op", {
    "NEW": OP_NEW,
    "CANCEL": OP_CANCEL,
    "REPLACE": OP_REPLACE,
})

EventType = IntEnum("EventType", {
    "ACCEPTED": EV_ACCEPTED,
    "REJECTED": EV_REJECTED,
    "TRADE": EV_TRADE,
    "CANCELED": EV_CANCELED,
    "REPLACED": EV_REPLACED,
    "TRIGGERED": EV_TRIGGERED,
})

SelfTradePrevention = IntEnum("SelfTradePrevention", {
    "NONE": STP_NONE,
    "CANCEL_NEWEST": STP_CANCEL_NEWEST,
    "CANCEL_OLDEST": STP_CANCEL_OLDEST,
    "CANCEL_BOTH": STP_CANCEL_BOTH,
})

Reason = IntEnum("Reason", {
    "NONE": R_NONE,
    "BAD_ID": R_BAD_ID,
    "DUPLICATE_ID": R_DUPLICATE_ID,
    "BAD_SIDE": R_BAD_SIDE,
    "BAD_TYPE": R_BAD_TYPE,
    "BAD_QTY": R_BAD_QTY,
    "BAD_PRICE": R_BAD_PRICE,
    "BAD_STOP_PRICE": R_BAD_STOP_PRICE,
    "BAD_TIF": R_BAD_TIF,
    "BAD_POST_ONLY": R_BAD_POST_ONLY,
    "BAD_SYMBOL": R_BAD_SYMBOL,
    "BAD_ACCOUNT": R_BAD_ACCOUNT,
    "UNKNOWN_FIELD": R_UNKNOWN_FIELD,
    "BAD_OP": R_BAD_OP,
    "BAD_JSON": R_BAD_JSON,
    "UNKNOWN_ORDER": R_UNKNOWN_ORDER,
    "BAD_REPLACE": R_BAD_REPLACE,
    "OUT_OF_MEMORY": R_OUT_OF_MEMORY,
    "USER": R_USER,
    "IOC": R_IOC,
    "FOK": R_FOK,
    "NO_LIQUIDITY": R_NO_LIQUIDITY,
    "POST_ONLY": R_POST_ONLY,
    "SELF_TRADE": R_SELF_TRADE,
    "MARKET_COLLAR": R_MARKET_COLLAR,
    "KILL_SWITCH": R_KILL_SWITCH,
})

Reason.__doc__ = "Why an order was rejected or canceled; `name.lower()` is the contract's word."


EVENT_DTYPE = np.dtype([
    ("seq", "u8"), ("ts", "i8"), ("id", "u8"), ("maker", "u8"), ("price", "i8"),
    ("qty", "i8"), ("symbol", "u4"), ("account", "u4"), ("maker_account", "u4"),
    ("type", "u1"), ("reason", "u1"), ("side", "u1"), ("order_type", "u1"),
])
COMMAND_DTYPE = np.dtype([
    ("id", "u8"), ("qty", "i8"), ("price", "i8"), ("stop_price", "i8"), ("ts", "i8"),
    ("account", "u4"), ("symbol", "u4"), ("op", "u1"), ("side", "u1"), ("type", "u1"),
    ("tif", "u1"), ("post_only", "u1"), ("reason", "u1"), ("_pad", "u2"),
])
# The state of an engine, as plain arrays (see MatchingEngine.dump / load).
RESTING_DTYPE = np.dtype([
    ("id", "u8"), ("price", "i8"), ("qty", "i8"), ("symbol", "u4"), ("account", "u4"),
    ("side", "u1"), ("tif", "u1"), ("flags", "u1"),
])
HELD_DTYPE = np.dtype([
    ("id", "u8"), ("price", "i8"), ("stop_price", "i8"), ("qty", "i8"), ("symbol", "u4"),
    ("account", "u4"), ("side", "u1"), ("type", "u1"), ("tif", "u1"), ("flags", "u1"),
])
MARKET_DTYPE = np.dtype([("symbol", "u4"), ("has_last", "u1"), ("last_price", "i8")])
assert EVENT_DTYPE.itemsize == sizeof(Event)
assert COMMAND_DTYPE.itemsize == sizeof(Command)


def pack_command(c) -> bytes:
    """A command's journal bytes: its 14 fields, in COMMAND_DTYPE's order (the engine's
    `state.Command`), as one `Command` struct. The same bytes as
    `struct.pack("<QqqqqIIBBBBBBH", *c)` on this little-endian layout, without
    struct's per-field format parsing (~1.5k instructions of every request); a field
    out of its C type's range raises OverflowError."""
    cdef Command cmd
    if not isinstance(c, tuple):  # a NamedTuple too (state.Command): a tuple's layout
        raise TypeError(f"a command is a tuple of 14 fields, not {type(c).__name__}")
    cdef tuple t = <tuple>c
    if len(t) != 14:
        raise ValueError(f"a command has 14 fields, not {len(t)}")
    cmd.id = t[0]
    cmd.qty = t[1]
    cmd.price = t[2]
    cmd.stop_price = t[3]
    cmd.ts = t[4]
    cmd.account = t[5]
    cmd.symbol = t[6]
    cmd.op = t[7]
    cmd.side = t[8]
    cmd.type = t[9]
    cmd.tif = t[10]
    cmd.post_only = t[11]
    cmd.reason = t[12]
    cmd._pad = t[13]
    return PyBytes_FromStringAndSize(<char *>&cmd, sizeof(Command))


cdef inline bint _valid(int64_t v) noexcept nogil:
    return 0 < v <= MAX_VALUE_C


cdef inline bint _crosses(int side, int64_t limit, int64_t resting) noexcept nogil:
    """Does an incoming order on `side` with `limit` trade against `resting`?"""
    return resting <= limit if side == BUY else resting >= limit


cdef cnp.ndarray _command_array(object commands):
    """`commands` as a C-contiguous numpy array of COMMAND_DTYPE (TypeError otherwise)."""
    if not isinstance(commands, np.ndarray) or commands.dtype != COMMAND_DTYPE:
        raise TypeError("commands must be a numpy array of COMMAND_DTYPE")
    return np.ascontiguousarray(commands)


cdef class MatchingEngine:
    """Price-time priority matching over many symbols (see the module docstring).

    Beyond the contract, both off unless asked for:
    - `stp`: self-trade prevention (a SelfTradePrevention); a taker meeting a resting
      order of its own account cancels the newest (the taker's remainder), the oldest
      (the resting order) or both, with reason `self_trade`;
    - a market collar: a market order or a stop (once triggered) given a valid `price`
      trades no further than that price; the rest is canceled with reason
      `market_collar` (`no_liquidity` when nothing is left on the other side). The
      contract ignores a market order's price; the engine sets it (docs/risk.md).
    """

    def __cinit__(self, *, int stp=STP_NONE, Py_ssize_t capacity=1024):
        if stp < STP_NONE or stp > STP_CANCEL_BOTH:
            raise ValueError(f"stp must be a SelfTradePrevention, got {stp}")
        self.stp = stp
        pool_init(&self.orders, <uint32_t>capacity)
        idmap_init(&self.ids, <uint64_t>capacity * 2)
        self.stops_cap = 64
        self.stops = <Stop*>malloc(self.stops_cap * sizeof(Stop))
        self.stops_free = NIL
        self.events_cap = 4096
        self.evbuf = <Event*>malloc(self.events_cap * sizeof(Event))
        self.markets = NULL
        if self.stops == NULL or self.evbuf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef uint32_t i
        for i in range(self.n_markets):
            if self.markets[i].exists:
                book_free(&self.markets[i].book)
        free(self.markets)
        free(self.stops)
        free(self.evbuf)
        pool_free(&self.orders)
        idmap_free(&self.ids)

    # -- events ------------------------------------------------------------------------

    cdef Event* _emit(self, uint8_t type, uint64_t id, uint32_t symbol) noexcept nogil:
        cdef Event* ev
        cdef Py_ssize_t ncap
        if self.n_events == self.events_cap:
            ncap = self.events_cap * 2
            ev = <Event*>realloc(self.evbuf, ncap * sizeof(Event))
            if ev == NULL:
                self.oom = True
                return NULL
            self.evbuf = ev
            self.events_cap = ncap
        ev = &self.evbuf[self.n_events]
        self.n_events += 1
        self.seq += 1
        ev.seq = self.seq
        ev.ts = self.ts
        ev.type = type
        ev.id = id
        ev.symbol = symbol
        ev.maker = 0
        ev.maker_account = 0
        ev.price = 0
        ev.qty = 0
        ev.account = 0
        ev.reason = R_NONE
        ev.side = 0
        ev.order_type = 0
        return ev

    cdef void _canceled(self, uint64_t id, uint32_t symbol, uint32_t account, int side,
                               int64_t remaining, int reason) noexcept nogil:
        cdef Event* ev = self._emit(EV_CANCELED, id, symbol)
        if ev != NULL:
            ev.account = account
            ev.side = <uint8_t>side
            ev.qty = remaining
            ev.reason = <uint8_t>reason

    cdef int c_reject(self, uint64_t id, int reason) noexcept nogil:
        cdef Event* ev = self._emit(EV_REJECTED, id, 0)
        if ev != NULL:
            ev.reason = <uint8_t>reason
        return 0

    # -- markets -----------------------------------------------------------------------

    cdef Market* _market(self, uint32_t symbol) noexcept nogil:
        """The market of `symbol`, created on first use (NULL on OOM)."""
        cdef Market* ms
        cdef uint32_t n
        if symbol >= self.n_markets:
            n = self.n_markets * 2 if self.n_markets else 8
            while n <= symbol:
                n *= 2
            ms = <Market*>realloc(self.markets, n * sizeof(Market))
            if ms == NULL:
                return NULL
            memset(&ms[self.n_markets], 0, (n - self.n_markets) * sizeof(Market))
            self.markets = ms
            self.n_markets = n
        if not self.markets[symbol].exists:
            with gil:
                try:
                    book_init(&self.markets[symbol].book)
                except MemoryError:
                    return NULL
            self.markets[symbol].stop_head = NIL
            self.markets[symbol].stop_tail = NIL
            self.markets[symbol].exists = 1
        return &self.markets[symbol]

    # -- the matching core -------------------------------------------------------------

    cdef void _remove_resting(self, uint32_t oi) noexcept nogil:
        cdef Order* o = &self.orders.items[oi]
        idmap_pop(&self.ids, o.id)
        book_unlink(&self.markets[o.symbol].book, &self.orders, oi)
        pool_release(&self.orders, oi)

    cdef int64_t _match(self, uint32_t symbol, uint64_t id, uint32_t account, int side,
                        int type, int64_t limit, int64_t qty, bint* taker_stp) noexcept nogil:
        """Trade `qty` against the opposite side while it crosses `limit`; return the rest."""
        cdef Market* m = &self.markets[symbol]
        cdef BookSide* opp = book_side(&m.book, SELL if side == BUY else BUY)
        cdef Level* lv
        cdef Order* mo
        cdef Event* ev
        cdef uint32_t oi
        cdef int64_t fill
        while qty > 0:
            lv = side_best(&m.book, opp)
            if lv == NULL or not _crosses(side, limit, lv.price):
                break
            oi = lv.head
            mo = &self.orders.items[oi]
            if self.stp != STP_NONE and mo.account == account:
                if self.stp != STP_CANCEL_NEWEST:
                    self._canceled(mo.id, symbol, mo.account, mo.side, mo.qty, R_SELF_TRADE)
                    self._remove_resting(oi)
                if self.stp != STP_CANCEL_OLDEST:
                    taker_stp[0] = True
                    break
                continue
            fill = qty if qty < mo.qty else mo.qty
            ev = self._emit(EV_TRADE, id, symbol)
            if ev != NULL:
                ev.maker = mo.id
                ev.price = lv.price
                ev.qty = fill
                ev.account = account
                ev.maker_account = mo.account
                ev.side = <uint8_t>side
                ev.order_type = <uint8_t>type
            qty -= fill
            mo.qty -= fill
            lv.total -= fill
            m.last_price = lv.price
            m.has_last = 1
            self.cmd_trades += 1
            if mo.qty == 0:
                self._remove_resting(oi)
        return qty

    cdef int _execute(self, uint32_t symbol, uint64_t id, uint32_t account, int side,
                      int type, int64_t price, int64_t qty, int tif, int flags) noexcept nogil:
        """Run an incoming limit or market order (new, re-entered or triggered)."""
        cdef Market* m = &self.markets[symbol]
        cdef BookSide* opp = book_side(&m.book, SELL if side == BUY else BUY)
        cdef Level* best = side_best(&m.book, opp)
        cdef bint is_market = type == OT_MARKET or type == OT_STOP
        cdef bint taker_stp = False
        cdef bint collared = False
        cdef int64_t limit = price
        cdef int64_t avail
        cdef uint32_t k, oi
        cdef Order* o
        cdef Level* lv
        if is_market:
            collared = _valid(price)
            if not collared:
                limit = INT64_MAX if side == BUY else INT64_MIN
        elif flags & F_POST_ONLY and best != NULL and _crosses(side, limit, best.price):
            self._canceled(id, symbol, account, side, qty, R_POST_ONLY)
            return 0
        if tif == TIF_FOK:
            avail = 0
            k = opp.n
            while k > 0 and avail < qty:
                k -= 1
                lv = &m.book.lpool.items[opp.refs[k].level]
                if not _crosses(side, limit, lv.price):
                    break
                avail += lv.total
            if avail < qty:
                self._canceled(id, symbol, account, side, qty, R_FOK)
                return 0
        qty = self._match(symbol, id, account, side, type, limit, qty, &taker_stp)
        if qty == 0:
            return 0
        if taker_stp:
            self._canceled(id, symbol, account, side, qty, R_SELF_TRADE)
        elif is_market:
            best = side_best(&m.book, opp)
            self._canceled(id, symbol, account, side, qty,
                           R_MARKET_COLLAR if collared and best != NULL else R_NO_LIQUIDITY)
        elif tif == TIF_IOC:
            self._canceled(id, symbol, account, side, qty, R_IOC)
        elif tif == TIF_FOK:   # only reachable when self-trade prevention removed liquidity
            self._canceled(id, symbol, account, side, qty, R_FOK)
        else:
            oi = pool_alloc(&self.orders)
            if oi == NIL:
                self.oom = True
                self._canceled(id, symbol, account, side, qty, R_OUT_OF_MEMORY)
                return -1
            o = &self.orders.items[oi]
            o.id = id
            o.price = price
            o.qty = qty
            o.account = account
            o.symbol = symbol
            o.side = <uint8_t>side
            o.tif = <uint8_t>tif
            o.flags = <uint8_t>flags
            if book_append(&m.book, &self.orders, oi) < 0 or idmap_insert(&self.ids, id, oi) != 0:
                self.oom = True
                return -1
        return 0

    cdef void _run_triggers(self, uint32_t symbol) noexcept nogil:
        """Fire held stops whose price the last trade reached, oldest first, one at a
        time, re-evaluating after each (cascades)."""
        cdef Market* m
        cdef Stop* st
        cdef Stop s
        cdef uint32_t si
        cdef Event* ev
        while True:
            m = &self.markets[symbol]
            if not m.has_last:
                return
            si = m.stop_head
            while si != NIL:
                st = &self.stops[si]
                if (m.last_price >= st.stop_price) if st.side == BUY else (
                        m.last_price <= st.stop_price):
                    break
                si = st.next
            if si == NIL:
                return
            s = self.stops[si]
            self._unlink_stop(symbol, si)
            idmap_pop(&self.ids, s.id)
            ev = self._emit(EV_TRIGGERED, s.id, symbol)
            if ev != NULL:
                ev.account = s.account
                ev.side = s.side
                ev.order_type = s.type
                ev.price = s.stop_price
                ev.qty = s.qty
            self._execute(symbol, s.id, s.account, s.side,
                          OT_MARKET if s.type == OT_STOP else OT_LIMIT,
                          s.price, s.qty, s.tif, s.flags)

    # -- held stops ----------------------------------------------------------------------

    cdef uint32_t _stop_alloc(self) noexcept nogil:
        cdef uint32_t i
        cdef Stop* st
        if self.stops_free != NIL:
            i = self.stops_free
            self.stops_free = self.stops[i].next
        else:
            if self.stops_top == self.stops_cap:
                if self.stops_cap >= STOP_TAG // 2:
                    return NIL
                st = <Stop*>realloc(self.stops, self.stops_cap * 2 * sizeof(Stop))
                if st == NULL:
                    return NIL
                self.stops = st
                self.stops_cap *= 2
            i = self.stops_top
            self.stops_top += 1
        self.n_stops += 1
        return i

    cdef int _hold(self, Market* m, uint64_t id, int64_t price, int64_t stop_price,
                   int64_t qty, uint32_t symbol, uint32_t account, int side, int type, int tif,
                   int flags) noexcept nogil:
        """Hold a stop aside, last in its market's acceptance order (-1: no memory or a
        duplicate id)."""
        cdef uint32_t si = self._stop_alloc()
        cdef Stop* st
        if si == NIL:
            return -1
        if idmap_insert(&self.ids, id, si | STOP_TAG) != 0:
            self.stops[si].next = self.stops_free
            self.stops_free = si
            self.n_stops -= 1
            return -1
        st = &self.stops[si]
        st.id = id
        st.price = price
        st.stop_price = stop_price
        st.qty = qty
        st.symbol = symbol
        st.account = account
        st.side = <uint8_t>side
        st.type = <uint8_t>type
        st.tif = <uint8_t>tif
        st.flags = <uint8_t>flags
        st.next = NIL
        st.prev = m.stop_tail
        if m.stop_tail != NIL:
            self.stops[m.stop_tail].next = si
        else:
            m.stop_head = si
        m.stop_tail = si
        m.n_stops += 1
        return 0

    cdef void _unlink_stop(self, uint32_t symbol, uint32_t si) noexcept nogil:
        cdef Market* m = &self.markets[symbol]
        cdef Stop* st = &self.stops[si]
        if st.prev != NIL:
            self.stops[st.prev].next = st.next
        else:
            m.stop_head = st.next
        if st.next != NIL:
            self.stops[st.next].prev = st.prev
        else:
            m.stop_tail = st.prev
        m.n_stops -= 1
        st.next = self.stops_free
        self.stops_free = si
        self.n_stops -= 1

    # -- commands ------------------------------------------------------------------------

    cdef int c_new(self, uint64_t id, uint32_t account, uint32_t symbol, int side, int type,
                   int64_t qty, int64_t price, int64_t stop_price, int tif, int post_only,
                   int reason) noexcept nogil:
        cdef int r = R_NONE
        cdef Market* m
        cdef Event* ev
        cdef uint32_t si
        cdef Stop* st
        if id == 0:
            r = R_BAD_ID
        elif id <= self.last_id:
            r = R_DUPLICATE_ID
        else:
            self.last_id = id           # the id is taken, whatever happens next
            if side != BUY and side != SELL:
                r = R_BAD_SIDE
            elif type < OT_LIMIT or type > OT_STOP_LIMIT:
                r = R_BAD_TYPE
            elif not _valid(qty):
                r = R_BAD_QTY
            elif (type == OT_LIMIT or type == OT_STOP_LIMIT) and not _valid(price):
                r = R_BAD_PRICE
            elif (type == OT_STOP or type == OT_STOP_LIMIT) and not _valid(stop_price):
                r = R_BAD_STOP_PRICE
            elif tif < TIF_GTC or tif > TIF_FOK:
                r = R_BAD_TIF
            elif (post_only != 0 and post_only != 1) or (post_only == 1 and type != OT_LIMIT):
                r = R_BAD_POST_ONLY
            elif symbol >= MAX_SYMBOLS:
                r = R_BAD_SYMBOL
            elif reason != R_NONE:
                r = reason
        if r != R_NONE:
            ev = self._emit(EV_REJECTED, id, symbol if symbol < MAX_SYMBOLS else 0)
            if ev != NULL:
                ev.reason = <uint8_t>r
                ev.account = account
            return 0
        m = self._market(symbol)
        if m == NULL:
            self.oom = True
            return self.c_reject(id, R_OUT_OF_MEMORY)
        ev = self._emit(EV_ACCEPTED, id, symbol)
        if ev != NULL:
            ev.account = account
            ev.side = <uint8_t>side
            ev.order_type = <uint8_t>type
            ev.price = price if type == OT_LIMIT or type == OT_STOP_LIMIT else 0
            ev.qty = qty
        self.cmd_trades = 0
        if type == OT_STOP or type == OT_STOP_LIMIT:
            if self._hold(m, id, price, stop_price, qty, symbol, account, side, type, tif,
                          0) < 0:
                self.oom = True
                self._canceled(id, symbol, account, side, qty, R_OUT_OF_MEMORY)
                return -1
            self._run_triggers(symbol)
            return 0
        self._execute(symbol, id, account, side, type, price, qty, tif,
                      F_POST_ONLY if post_only else 0)
        if self.cmd_trades:
            self._run_triggers(symbol)
        return 0

    cdef int c_cancel(self, uint64_t id, int reason) noexcept nogil:
        # `reason`: none (the contract's cancel: `user`), a rejection's (a front-end's
        # refusal, below R_USER) or a cancellation's (the engine's own cancel, e.g. a
        # kill switch's: the order is canceled with it)
        cdef uint32_t v = idmap_get(&self.ids, id) if id != 0 else NIL
        cdef Order* o
        cdef Stop* st
        cdef int why = R_USER if reason == R_NONE else reason
        if v == NIL:
            return self.c_reject(id, R_UNKNOWN_ORDER)
        if reason != R_NONE and reason < R_USER:
            return self.c_reject(id, reason)
        if v & STOP_TAG:
            st = &self.stops[v & ~STOP_TAG]
            self._canceled(id, st.symbol, st.account, st.side, st.qty, why)
            idmap_pop(&self.ids, id)
            self._unlink_stop(st.symbol, v & ~STOP_TAG)
            return 0
        o = &self.orders.items[v]
        self._canceled(id, o.symbol, o.account, o.side, o.qty, why)
        self._remove_resting(v)
        return 0

    cdef int c_replace(self, uint64_t id, int64_t qty, int64_t price, int reason) noexcept nogil:
        cdef uint32_t oi = idmap_get(&self.ids, id) if id != 0 else NIL
        cdef Order* o
        cdef Event* ev
        cdef int64_t new_qty, new_price
        cdef uint32_t symbol, account
        cdef int side, tif, flags
        if oi == NIL or oi & STOP_TAG:
            return self.c_reject(id, R_UNKNOWN_ORDER)
        if (qty != KEEP_C and not _valid(qty)) or (price != KEEP_C and not _valid(price)):
            return self.c_reject(id, R_BAD_REPLACE)
        if reason != R_NONE:
            return self.c_reject(id, reason)
        o = &self.orders.items[oi]
        new_qty = o.qty if qty == KEEP_C else qty
        new_price = o.price if price == KEEP_C else price
        ev = self._emit(EV_REPLACED, id, o.symbol)
        if ev != NULL:
            ev.account = o.account
            ev.side = o.side
            ev.price = new_price
            ev.qty = new_qty
        if new_price == o.price and new_qty <= o.qty:
            self.markets[o.symbol].book.lpool.items[o.level].total -= o.qty - new_qty
            o.qty = new_qty
            return 0
        symbol = o.symbol
        account = o.account
        side = o.side
        tif = o.tif
        flags = o.flags
        self._remove_resting(oi)
        self.cmd_trades = 0
        self._execute(symbol, id, account, side, OT_LIMIT, new_price, new_qty, tif, flags)
        if self.cmd_trades:
            self._run_triggers(symbol)
        return 0

    cdef int c_command(self, const Command* c) noexcept nogil:
        self.ts = c.ts
        if c.op == OP_NEW:
            return self.c_new(c.id, c.account, c.symbol, c.side, c.type, c.qty, c.price,
                              c.stop_price, c.tif, c.post_only, c.reason)
        if c.op == OP_CANCEL:
            return self.c_cancel(c.id, c.reason)
        if c.op == OP_REPLACE:
            return self.c_replace(c.id, c.qty, c.price, c.reason)
        return self.c_reject(c.id, R_BAD_OP)

    cdef int _check(self) except -1:
        if self.oom:
            self.oom = False
            raise MemoryError("matching engine out of memory")
        return 0

    cdef void _give_back(self) noexcept:
        """After a batch, once its events are read: shrink a big batch's buffer."""
        cdef Event* ev
        if self.events_cap > 65536:
            ev = <Event*>realloc(self.evbuf, 4096 * sizeof(Event))
            if ev != NULL:
                self.evbuf = ev
                self.events_cap = 4096
                self.n_events = 0

    # -- per-call Python API ---------------------------------------------------------------

    cpdef Py_ssize_t submit(self, uint64_t id, uint32_t account, uint32_t symbol, int side,
                            int type, int64_t qty, int64_t price=0, int64_t stop_price=0,
                            int tif=TIF_GTC, int post_only=0, int64_t ts=0,
                            int reason=R_NONE) except -1:
        """Submit a new order; returns the number of events it produced (see `events`).

        `side` a Side, `type` an OrderType, `tif` a TimeInForce, `post_only` 0 or 1;
        any other value is rejected with the contract's reason. `reason` lets a front
        end reject a command the core finds valid (after the core's own checks)."""
        self.n_events = 0
        self.ts = ts
        self.c_new(id, account, symbol, side, type, qty, price, stop_price, tif, post_only,
                   reason)
        self._check()
        return self.n_events

    cpdef Py_ssize_t cancel(self, uint64_t id, int64_t ts=0, int reason=R_NONE) except -1:
        """Cancel a resting order or a held stop; returns the number of events."""
        self.n_events = 0
        self.ts = ts
        self.c_cancel(id, reason)
        self._check()
        return self.n_events

    cpdef Py_ssize_t replace(self, uint64_t id, int64_t qty=KEEP_C, int64_t price=KEEP_C,
                             int64_t ts=0, int reason=R_NONE) except -1:
        """Replace a resting order's open quantity and/or price (KEEP leaves one as is)."""
        self.n_events = 0
        self.ts = ts
        self.c_replace(id, qty, price, reason)
        self._check()
        return self.n_events

    def reject(self, uint64_t id, int reason, int64_t ts=0):
        """Emit a rejection for a command a front end could not even decode."""
        self.n_events = 0
        self.ts = ts
        self.c_reject(id, reason)
        self._check()
        return self.n_events

    def event_rows(self):
        """The events of the last per-call command as a list of tuples in EVENT_DTYPE's
        field order (what `events().tolist()` gives, without building an array)."""
        cdef Py_ssize_t i
        cdef Event* e
        cdef list out = []
        for i in range(self.n_events):
            e = &self.evbuf[i]
            out.append((e.seq, e.ts, e.id, e.maker, e.price, e.qty, e.symbol, e.account,
                        e.maker_account, e.type, e.reason, e.side, e.order_type))
        return out

    def events(self):
        """The events of the last per-call command, as a new numpy array of EVENT_DTYPE."""
        cdef cnp.ndarray out = np.empty(self.n_events, dtype=EVENT_DTYPE)
        if self.n_events:
            memcpy(cnp.PyArray_DATA(out), self.evbuf, self.n_events * sizeof(Event))
        return out

    # -- batch API ----------------------------------------------------------------------------

    def process(self, commands):
        """Run a numpy array of COMMAND_DTYPE in one call; return all its events."""
        cdef cnp.ndarray arr = _command_array(commands)
        cdef const Command* base = <const Command*>cnp.PyArray_DATA(arr)
        cdef Py_ssize_t i, n = arr.shape[0]
        self.n_events = 0
        with nogil:
            for i in range(n):
                self.c_command(&base[i])
                if self.oom:
                    break
        self._check()
        out = self.events()
        self._give_back()
        return out

    def process_rows(self, commands):
        """Run a numpy array of COMMAND_DTYPE in one call, as `process` does; return its
        events as `event_rows` gives them (tuples in EVENT_DTYPE's field order) and, per
        command, how many of them it produced (recovery books them without an array)."""
        cdef cnp.ndarray arr = _command_array(commands)
        cdef const Command* base = <const Command*>cnp.PyArray_DATA(arr)
        cdef Py_ssize_t i, before, n = arr.shape[0]
        cdef cnp.ndarray counts
        cdef int64_t* cp
        counts = np.zeros(n, dtype=np.int64)
        cp = <int64_t*>cnp.PyArray_DATA(counts)
        self.n_events = 0
        with nogil:
            for i in range(n):
                before = self.n_events
                self.c_command(&base[i])
                cp[i] = self.n_events - before
                if self.oom:
                    break
        self._check()
        rows = self.event_rows()
        self._give_back()
        return rows, counts.tolist()

    # -- queries ------------------------------------------------------------------------------

    def __len__(self):
        """Resting orders plus held stops."""
        return self.orders.used + self.n_stops

    def symbols(self):
        """Indices of the symbols that have a book (an order was accepted for them)."""
        return [s for s in range(self.n_markets) if self.markets[s].exists]

    cdef Market* _existing(self, uint32_t symbol):
        if symbol >= self.n_markets or not self.markets[symbol].exists:
            return NULL
        return &self.markets[symbol]

    def last_price(self, uint32_t symbol):
        """The symbol's last trade price, or None."""
        cdef Market* m = self._existing(symbol)
        return None if m == NULL or not m.has_last else m.last_price

    def depth(self, uint32_t symbol, Py_ssize_t n=10):
        """Top-`n` aggregated levels: {"bids": [(price, qty, orders), ...], "asks": ...}."""
        cdef Market* m = self._existing(symbol)
        if m == NULL:
            return {"bids": [], "asks": []}
        return {"bids": side_depth(&m.book, &m.book.bids, n),
                "asks": side_depth(&m.book, &m.book.asks, n)}

    def level_orders(self, uint32_t symbol, int side, int64_t price):
        """The orders of one level (L3) in queue order: [(id, open qty), ...]."""
        cdef Market* m = self._existing(symbol)
        if m == NULL or (side != BUY and side != SELL):
            return []
        return level_orders_of(&m.book, &self.orders, side, price)

    def snapshot(self, uint32_t symbol):
        """The whole book of a symbol: {"bids": [(price, [(id, qty), ...]), ...] best
        first, "asks": ..., "stops": [(id, qty), ...] in trigger priority}."""
        cdef Market* m = self._existing(symbol)
        cdef BookSide* s
        cdef uint32_t k, si
        cdef int side
        out = {"bids": [], "asks": [], "stops": []}
        if m == NULL:
            return out
        for side, key in ((BUY, "bids"), (SELL, "asks")):
            s = book_side(&m.book, side)
            for k in range(s.n):
                price = m.book.lpool.items[s.refs[s.n - 1 - k].level].price
                out[key].append((price, level_orders_of(&m.book, &self.orders, side, price)))
        si = m.stop_head
        while si != NIL:
            out["stops"].append((self.stops[si].id, self.stops[si].qty))
            si = self.stops[si].next
        return out

    def order(self, uint64_t id):
        """A live order or held stop by id, as a dict, or None."""
        cdef uint32_t v = idmap_get(&self.ids, id) if id != 0 else NIL
        cdef Order* o
        cdef Stop* st
        if v == NIL:
            return None
        if v & STOP_TAG:
            st = &self.stops[v & ~STOP_TAG]
            return {"id": st.id, "status": "held", "symbol": st.symbol,
                    "account": st.account, "side": st.side, "type": st.type,
                    "price": st.price, "stop_price": st.stop_price, "qty": st.qty,
                    "tif": st.tif}
        o = &self.orders.items[v]
        return {"id": o.id, "status": "resting", "symbol": o.symbol, "account": o.account,
                "side": o.side, "type": OT_LIMIT, "price": o.price, "stop_price": 0,
                "qty": o.qty, "tif": o.tif}

    cpdef bint is_held(self, uint64_t id):
        """Whether `id` is a held (untriggered) stop: what a replace must know, without
        building `order`'s dict."""
        cdef uint32_t v = idmap_get(&self.ids, id) if id != 0 else NIL
        return v != NIL and (v & STOP_TAG) != 0

    def owner(self, uint64_t id):
        """(account, symbol) of a live order or held stop, or None: what a cancel needs
        to know, without building `order`'s dict."""
        cdef uint32_t v = idmap_get(&self.ids, id) if id != 0 else NIL
        if v == NIL:
            return None
        if v & STOP_TAG:
            return (self.stops[v & ~STOP_TAG].account, self.stops[v & ~STOP_TAG].symbol)
        return (self.orders.items[v].account, self.orders.items[v].symbol)

    # -- state ---------------------------------------------------------------------------------

    def dump(self):
        """The engine's whole state as plain arrays: {"resting": RESTING_DTYPE in queue
        order per level, "held": HELD_DTYPE in acceptance order per symbol, "markets":
        MARKET_DTYPE, "counters": [seq, last_id]}. `load` on a fresh engine rebuilds an
        engine that behaves identically from then on."""
        cdef uint32_t sym, k, oi, si
        cdef int side
        cdef BookSide* s
        cdef Market* m
        cdef Order* o
        cdef Stop* st
        resting = np.empty(self.orders.used, dtype=RESTING_DTYPE)
        held = np.empty(self.n_stops, dtype=HELD_DTYPE)
        markets = []
        cdef Py_ssize_t r = 0, h = 0
        for sym in range(self.n_markets):
            m = &self.markets[sym]
            if not m.exists:
                continue
            markets.append((sym, m.has_last, m.last_price))
            for side in (BUY, SELL):
                s = book_side(&m.book, side)
                for k in range(s.n):
                    oi = m.book.lpool.items[s.refs[k].level].head
                    while oi != NIL:
                        o = &self.orders.items[oi]
                        resting[r] = (o.id, o.price, o.qty, o.symbol, o.account, o.side, o.tif,
                                      o.flags)
                        r += 1
                        oi = o.next
            si = m.stop_head
            while si != NIL:
                st = &self.stops[si]
                held[h] = (st.id, st.price, st.stop_price, st.qty, st.symbol, st.account,
                           st.side, st.type, st.tif, st.flags)
                h += 1
                si = st.next
        return {
            "resting": resting[:r],
            "held": held[:h],
            "markets": np.array(markets, dtype=MARKET_DTYPE),
            "counters": np.array([self.seq, self.last_id], dtype=np.uint64),
        }

    def load(self, state):
        """Rebuild the state `dump` produced. Only on a fresh engine."""
        cdef uint32_t oi, si
        cdef Order* o
        cdef Stop* st
        cdef Market* m
        if self.seq != 0 or self.last_id != 0 or len(self) != 0:
            raise ValueError("load() needs a fresh engine")
        for sym, has_last, last_price in state["markets"].tolist():
            m = self._market(sym)
            if m == NULL:
                raise MemoryError()
            m.has_last = has_last
            m.last_price = last_price
        for oid, price, qty, sym, account, side, tif, flags in state["resting"].tolist():
            if self._existing(sym) == NULL or qty <= 0:
                raise ValueError(f"order {oid}: unknown symbol {sym} or quantity {qty}")
            oi = pool_alloc(&self.orders)
            if oi == NIL:
                raise MemoryError()
            o = &self.orders.items[oi]
            o.id = oid
            o.price = price
            o.qty = qty
            o.symbol = sym
            o.account = account
            o.side = side
            o.tif = tif
            o.flags = flags
            if (book_append(&self.markets[sym].book, &self.orders, oi) < 0
                    or idmap_insert(&self.ids, oid, oi) != 0):
                raise ValueError(f"order {oid}: duplicate id or out of memory")
        for oid, price, stop_price, qty, sym, account, side, otype, tif, flags in (
                state["held"].tolist()):
            m = self._existing(sym)
            if m == NULL:
                raise ValueError(f"stop {oid}: unknown symbol {sym}")
            if self._hold(m, oid, price, stop_price, qty, sym, account, side, otype, tif,
                          flags) < 0:
                raise ValueError(f"stop {oid}: duplicate id or out of memory")
        seq, last_id = state["counters"].tolist()
        self.seq = seq
        self.last_id = last_id

    def memory_bytes(self):
        """Bytes held by the engine's C structures (pools, maps, books, buffers)."""
        cdef Py_ssize_t total = (
            <Py_ssize_t>self.orders.cap * sizeof(Order)
            + <Py_ssize_t>(self.ids.mask + 1) * sizeof(IdEntry)
            + <Py_ssize_t>self.stops_cap * sizeof(Stop)
            + self.events_cap * sizeof(Event)
            + <Py_ssize_t>self.n_markets * sizeof(Market)
        )
        cdef uint32_t s
        for s in range(self.n_markets):
            if self.markets[s].exists:
                total += (self.markets[s].book.lpool.cap * sizeof(Level)
                          + (self.markets[s].book.bids.cap + self.markets[s].book.asks.cap)
                          * (sizeof(uint32_t) + sizeof(int64_t)))
        return total
