# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The L3 limit order book (see book.pxd for the layout).

`Book` is the market-data mode: it mirrors an exchange feed by order id (add, reduce,
delete, execute), with anonymous liquidity for orders it never saw. The matching
engine (matching.pyx) drives the same C structs and functions.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

import numpy as np

cimport numpy as cnp

cnp.import_array()

__all__ = ["Book", "MD_OP_DTYPE", "MD_ADD", "MD_REDUCE", "MD_DELETE", "MD_EXECUTE"]

# Market-data operation codes (the LOBSTER message types 1-4 have the same numbers).
cdef enum:
    C_MD_ADD = 1
    C_MD_REDUCE = 2
    C_MD_DELETE = 3
    C_MD_EXECUTE = 4

MD_ADD = C_MD_ADD
MD_REDUCE = C_MD_REDUCE
MD_DELETE = C_MD_DELETE
MD_EXECUTE = C_MD_EXECUTE

MD_OP_DTYPE = np.dtype(
    [("op", "u1"), ("side", "u1"), ("id", "u8"), ("price", "i8"), ("qty", "i8")]
)

ctypedef packed struct MdOp:
    uint8_t op
    uint8_t side
    uint64_t id
    int64_t price
    int64_t qty


# --- OrderPool ---------------------------------------------------------------------

cdef int pool_init(OrderPool* p, uint32_t cap) except -1 nogil:
    if cap < 16:
        cap = 16
    p.items = <Order*>malloc(cap * sizeof(Order))
    if p.items == NULL:
        with gil:
            raise MemoryError()
    # Touch the pages now: a sized engine should not take page faults while trading.
    memset(p.items, 0, cap * sizeof(Order))
    p.cap = cap
    p.used = 0
    p.free_head = NIL
    p.top = 0
    return 0


cdef void pool_free(OrderPool* p) noexcept nogil:
    free(p.items)
    p.items = NULL
    p.cap = p.used = p.top = 0
    p.free_head = NIL


cdef int pool_grow(OrderPool* p) noexcept nogil:
    """Double the pool (-1 if memory ran out or the index space is full)."""
    cdef uint64_t ncap = <uint64_t>p.cap * 2
    cdef Order* items
    if ncap >= NIL:
        return -1
    items = <Order*>realloc(p.items, ncap * sizeof(Order))
    if items == NULL:
        return -1
    p.items = items
    p.cap = <uint32_t>ncap
    return 0


# --- IdMap -------------------------------------------------------------------------

cdef int idmap_init(IdMap* m, uint64_t cap) except -1 nogil:
    cdef uint64_t c = 16
    while c < cap:
        c <<= 1
    m.slots = <IdEntry*>malloc(c * sizeof(IdEntry))
    if m.slots == NULL:
        with gil:
            raise MemoryError()
    memset(m.slots, 0, c * sizeof(IdEntry))
    m.mask = c - 1
    m.size = 0
    return 0


cdef void idmap_free(IdMap* m) noexcept nogil:
    free(m.slots)
    m.slots = NULL
    m.mask = 0
    m.size = 0


cdef int idmap_grow(IdMap* m) noexcept nogil:
    """Double the table and re-insert every key."""
    cdef IdEntry* old = m.slots
    cdef uint64_t oldcap = m.mask + 1
    cdef uint64_t ncap = oldcap * 2
    cdef uint64_t j, i
    cdef IdEntry* slots = <IdEntry*>malloc(ncap * sizeof(IdEntry))
    if slots == NULL:
        return -1
    memset(slots, 0, ncap * sizeof(IdEntry))
    m.slots = slots
    m.mask = ncap - 1
    for j in range(oldcap):
        if old[j].key != 0:
            i = _hash(old[j].key) & m.mask
            while m.slots[i].key != 0:
                i = (i + 1) & m.mask
            m.slots[i] = old[j]
    free(old)
    return 0


# --- levels and sides --------------------------------------------------------------

cdef int _side_init(BookSide* s, int side) except -1 nogil:
    s.cap = 64
    s.n = 0
    s.side = <uint8_t>side
    s.refs = <LevelRef*>malloc(s.cap * sizeof(LevelRef))
    if s.refs == NULL:
        with gil:
            raise MemoryError()
    return 0


cdef int book_init(BookC* b) except -1 nogil:
    _side_init(&b.bids, BUY)
    _side_init(&b.asks, SELL)
    b.lpool.cap = 128
    b.lpool.top = 0
    b.lpool.free_head = NIL
    b.lpool.items = <Level*>malloc(b.lpool.cap * sizeof(Level))
    if b.lpool.items == NULL:
        with gil:
            raise MemoryError()
    return 0


cdef void book_free(BookC* b) noexcept nogil:
    free(b.bids.refs)
    free(b.asks.refs)
    free(b.lpool.items)
    memset(b, 0, sizeof(BookC))


cdef int lpool_grow(LevelPool* lp) noexcept nogil:
    """Double the level pool (-1 if memory ran out)."""
    cdef Level* items = <Level*>realloc(lp.items, lp.cap * 2 * sizeof(Level))
    if items == NULL:
        return -1
    lp.items = items
    lp.cap *= 2
    return 0


cdef int side_grow(BookSide* s) noexcept nogil:
    """Double a side's level array (-1 if memory ran out)."""
    cdef LevelRef* refs = <LevelRef*>realloc(s.refs, s.cap * 2 * sizeof(LevelRef))
    if refs == NULL:
        return -1
    s.refs = refs
    s.cap *= 2
    return 0


# --- Python-facing helpers shared by Book and MatchingEngine ------------------------

cdef list side_depth(BookC* b, BookSide* s, Py_ssize_t n):
    cdef list out = []
    cdef Py_ssize_t k
    cdef Level* lv
    for k in range(min(n, <Py_ssize_t>s.n)):
        lv = &b.lpool.items[s.refs[s.n - 1 - k].level]
        out.append((lv.price, lv.total, lv.count))
    return out


cdef list level_orders_of(BookC* b, OrderPool* p, int side, int64_t price):
    cdef BookSide* s = book_side(b, side)
    cdef int64_t pos = side_find(s, price)
    cdef list out = []
    cdef uint32_t oi
    cdef Level* lv
    if pos < 0:
        return out
    lv = &b.lpool.items[s.refs[pos].level]
    oi = lv.head
    while oi != NIL:
        out.append((p.items[oi].id, p.items[oi].qty))
        oi = p.items[oi].next
    return out


cdef class Book:
    """An L3 order book in market-data mode: it mirrors an exchange's order feed.

    Operations name the order by id. An operation on an id the book never saw (the
    order predates the feed, or the feed only reports some levels) acts on the
    aggregate of the level at the given side and price: its anonymous liquidity, then
    its oldest orders. Sides are 0 (buy / bids) and 1 (sell / asks); prices are int64
    ticks, quantities int64 lots.
    """

    def __cinit__(self, Py_ssize_t capacity=1024):
        memset(&self.c, 0, sizeof(BookC))
        book_init(&self.c)
        pool_init(&self.pool, <uint32_t>capacity)
        idmap_init(&self.ids, <uint64_t>capacity * 2)

    def __dealloc__(self):
        book_free(&self.c)
        pool_free(&self.pool)
        idmap_free(&self.ids)

    # -- C-level operations (also used by replay.pyx) -------------------------------

    cdef int c_add(self, uint64_t id, int side, int64_t price, int64_t qty) noexcept nogil:
        cdef uint32_t oi
        cdef Order* o
        cdef int r
        if id == 0 or qty <= 0 or (side != BUY and side != SELL):
            return -1
        oi = pool_alloc(&self.pool)
        if oi == NIL:
            return -1
        r = idmap_insert(&self.ids, id, oi)
        if r != 0:   # a live order has this id (or out of memory)
            pool_release(&self.pool, oi)
            return -1
        o = &self.pool.items[oi]
        o.id = id
        o.price = price
        o.qty = qty
        o.side = <uint8_t>side
        o.account = 0
        o.symbol = 0
        o.tif = 0
        o.flags = 0
        if book_append(&self.c, &self.pool, oi) < 0:
            return -1
        return 0

    cdef int _reduce_level(self, int side, int64_t price, int64_t qty) noexcept nogil:
        """Take `qty` off a level's anonymous part, then its oldest orders."""
        cdef BookSide* s
        cdef int64_t pos
        cdef uint32_t oi
        cdef Level* lv
        cdef int64_t take
        if side != BUY and side != SELL:
            return -1
        s = book_side(&self.c, side)
        pos = side_find(s, price)
        if pos < 0:
            return -1
        lv = &self.c.lpool.items[s.refs[pos].level]
        take = qty if qty < lv.anon else lv.anon
        lv.anon -= take
        lv.total -= take
        qty -= take
        while qty > 0 and lv.head != NIL:
            oi = lv.head
            if self.pool.items[oi].qty > qty:
                self.pool.items[oi].qty -= qty
                lv.total -= qty
                qty = 0
            else:
                qty -= self.pool.items[oi].qty
                idmap_pop(&self.ids, self.pool.items[oi].id)
                book_unlink(&self.c, &self.pool, oi)   # may drop the level
                pool_release(&self.pool, oi)
                if lv.count == 0:
                    break
        if lv.count == 0 and lv.total <= 0:
            pos = side_find(s, price)
            if pos >= 0:
                side_drop_level(&self.c, s, <uint32_t>pos)
        return 1

    cdef int c_reduce(self, uint64_t id, int side, int64_t price, int64_t qty) noexcept nogil:
        """Reduce an order by `qty` (removing it at zero); 1 if it acted on the level."""
        cdef uint32_t oi = idmap_get(&self.ids, id) if id != 0 else NIL
        cdef Order* o
        if qty <= 0:
            return -1
        if oi == NIL:
            return self._reduce_level(side, price, qty)
        o = &self.pool.items[oi]
        if o.qty > qty:
            o.qty -= qty
            self.c.lpool.items[o.level].total -= qty
            return 0
        idmap_pop(&self.ids, id)
        book_unlink(&self.c, &self.pool, oi)
        pool_release(&self.pool, oi)
        return 0

    cdef int c_delete(self, uint64_t id, int side, int64_t price) noexcept nogil:
        cdef uint32_t oi = idmap_pop(&self.ids, id) if id != 0 else NIL
        if oi == NIL:
            return -1
        book_unlink(&self.c, &self.pool, oi)
        pool_release(&self.pool, oi)
        return 0

    cdef int c_seed(self, int side, int64_t price, int64_t qty) noexcept nogil:
        """Add anonymous liquidity at a level (orders the feed never reported)."""
        cdef uint32_t li
        if qty <= 0 or (side != BUY and side != SELL):
            return -1
        li = side_level(&self.c, book_side(&self.c, side), price)
        if li == NIL:
            return -1
        self.c.lpool.items[li].anon += qty
        self.c.lpool.items[li].total += qty
        return 0

    cdef void c_trim(self, int side, uint32_t keep) noexcept nogil:
        """Forget every level below the best `keep` of a side, with their orders."""
        cdef BookSide* s = book_side(&self.c, side)
        cdef uint32_t oi, nxt
        while s.n > keep:
            oi = self.c.lpool.items[s.refs[0].level].head
            while oi != NIL:
                nxt = self.pool.items[oi].next
                idmap_pop(&self.ids, self.pool.items[oi].id)
                pool_release(&self.pool, oi)
                oi = nxt
            side_drop_level(&self.c, s, 0)

    # -- per-call Python API ---------------------------------------------------------

    def add(self, uint64_t id, int side, int64_t price, int64_t qty):
        """Add a new order at the back of its level. Returns False if rejected
        (duplicate or zero id, bad side, non-positive quantity)."""
        return self.c_add(id, side, price, qty) == 0

    def reduce(self, uint64_t id, int64_t qty, int side=-1, int64_t price=0):
        """Partially cancel (or execute) `qty` of an order; an unknown id acts on the
        level at `side`/`price`. Returns False if nothing could be reduced."""
        return self.c_reduce(id, side, price, qty) >= 0

    def execute(self, uint64_t id, int64_t qty, int side=-1, int64_t price=0):
        """A visible execution against a resting order: the same effect as `reduce`."""
        return self.c_reduce(id, side, price, qty) >= 0

    def delete(self, uint64_t id, int side=-1, int64_t price=0, int64_t qty=0):
        """Remove an order. For an unknown id, `qty` is taken off the level instead."""
        if self.c_delete(id, side, price) == 0:
            return True
        if qty > 0:
            return self._reduce_level(side, price, qty) >= 0
        return False

    def trim(self, int side, uint32_t keep):
        """Forget all but the best `keep` levels of a side (a feed that reports only the
        top levels says nothing more about the others)."""
        self.c_trim(side, keep)

    def seed(self, int side, int64_t price, int64_t qty):
        """Add `qty` of anonymous liquidity at `price` on `side`."""
        return self.c_seed(side, price, qty) == 0

    def apply(self, ops):
        """Apply a batch of operations (a numpy array of MD_OP_DTYPE) in one call.

        Returns how many operations changed the book as asked; the rest (unknown ids
        with no level to act on, duplicate adds) are skipped and counted out."""
        cdef cnp.ndarray arr
        cdef const MdOp* base
        cdef Py_ssize_t i, n, ok = 0
        cdef const MdOp* op
        cdef int r
        if not isinstance(ops, np.ndarray) or ops.dtype != MD_OP_DTYPE:
            raise TypeError("ops must be a numpy array of MD_OP_DTYPE")
        arr = np.ascontiguousarray(ops)
        base = <const MdOp*>cnp.PyArray_DATA(arr)
        n = arr.shape[0]
        with nogil:
            for i in range(n):
                op = &base[i]
                if op.op == C_MD_ADD:
                    r = self.c_add(op.id, op.side, op.price, op.qty)
                elif op.op == C_MD_REDUCE or op.op == C_MD_EXECUTE:
                    r = self.c_reduce(op.id, op.side, op.price, op.qty)
                elif op.op == C_MD_DELETE:
                    r = self.c_delete(op.id, op.side, op.price)
                    if r < 0 and op.qty > 0:
                        r = self._reduce_level(op.side, op.price, op.qty)
                else:
                    r = -1
                if r >= 0:
                    ok += 1
        return ok

    # -- queries ---------------------------------------------------------------------

    def best_bid(self):
        """(price, total quantity) of the best bid, or None."""
        cdef Level* lv = side_best(&self.c, &self.c.bids)
        return None if lv == NULL else (lv.price, lv.total)

    def best_ask(self):
        """(price, total quantity) of the best ask, or None."""
        cdef Level* lv = side_best(&self.c, &self.c.asks)
        return None if lv == NULL else (lv.price, lv.total)

    def depth(self, Py_ssize_t n=10):
        """Top-`n` aggregated levels (L2): {"bids": [(price, qty, orders)...], "asks": ...},
        best first."""
        return {
            "bids": side_depth(&self.c, &self.c.bids, n),
            "asks": side_depth(&self.c, &self.c.asks, n),
        }

    def level_orders(self, int side, int64_t price):
        """The identified orders of one level (L3), in queue order: [(id, qty), ...]."""
        return level_orders_of(&self.c, &self.pool, side, price)

    def anonymous(self, int side, int64_t price):
        """Anonymous quantity at a level (0 if the level does not exist)."""
        cdef BookSide* s = book_side(&self.c, side)
        cdef int64_t pos = side_find(s, price)
        if pos < 0:
            return 0
        return self.c.lpool.items[s.refs[pos].level].anon

    def order(self, uint64_t id):
        """(side, price, qty) of a live order, or None."""
        cdef uint32_t oi = idmap_get(&self.ids, id) if id != 0 else NIL
        cdef Order* o
        if oi == NIL:
            return None
        o = &self.pool.items[oi]
        return (o.side, o.price, o.qty)

    def levels(self, int side):
        """Number of price levels on a side."""
        return book_side(&self.c, side).n

    def __len__(self):
        return self.pool.used
