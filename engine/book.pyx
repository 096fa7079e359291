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


cdef uint32_t pool_alloc(OrderPool* p) noexcept nogil:
    """Index of a fresh Order slot, or NIL if memory ran out."""
    cdef uint32_t i
    cdef uint64_t ncap
    cdef Order* items
    if p.free_head != NIL:
        i = p.free_head
        p.free_head = p.items[i].next
    else:
        if p.top == p.cap:
            ncap = <uint64_t>p.cap * 2
            if ncap >= NIL:
                return NIL
            items = <Order*>realloc(p.items, ncap * sizeof(Order))
            if items == NULL:
                return NIL
            p.items = items
            p.cap = <uint32_t>ncap
        i = p.top
        p.top += 1
    p.used += 1
    return i


cdef void pool_release(OrderPool* p, uint32_t i) noexcept nogil:
    p.items[i].next = p.free_head
    p.items[i].id = 0
    p.free_head = i
    p.used -= 1


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


cdef int _idmap_grow(IdMap* m) noexcept nogil:
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


cdef int idmap_put(IdMap* m, uint64_t key, uint32_t value) noexcept nogil:
    """Insert or overwrite; -1 if memory ran out. Load factor stays <= 1/2."""
    cdef uint64_t i
    if (m.size + 1) * 2 > m.mask + 1:
        if _idmap_grow(m) < 0:
            return -1
    i = _hash(key) & m.mask
    while m.slots[i].key != 0:
        if m.slots[i].key == key:
            m.slots[i].value = value
            return 0
        i = (i + 1) & m.mask
    m.slots[i].key = key
    m.slots[i].value = value
    m.size += 1
    return 0


cdef int idmap_insert(IdMap* m, uint64_t key, uint32_t value) noexcept nogil:
    """Insert a key that must be new, in one probe: 1 if it is already there (nothing
    changed), -1 if memory ran out."""
    cdef uint64_t i
    if (m.size + 1) * 2 > m.mask + 1:
        if _idmap_grow(m) < 0:
            return -1
    i = _hash(key) & m.mask
    while m.slots[i].key != 0:
        if m.slots[i].key == key:
            return 1
        i = (i + 1) & m.mask
    m.slots[i].key = key
    m.slots[i].value = value
    m.size += 1
    return 0


cdef uint32_t idmap_pop(IdMap* m, uint64_t key) noexcept nogil:
    """Remove `key` and return its value (NIL if absent).

    Backward-shift deletion keeps every probe chain intact without tombstones, so a
    long-running engine never degrades."""
    cdef uint64_t i = _hash(key) & m.mask
    cdef uint64_t j, home
    cdef uint32_t value
    while True:
        if m.slots[i].key == key:
            break
        if m.slots[i].key == 0:
            return NIL
        i = (i + 1) & m.mask
    value = m.slots[i].value
    j = i
    while True:
        j = (j + 1) & m.mask
        if m.slots[j].key == 0:
            break
        home = _hash(m.slots[j].key) & m.mask
        # Move j back into the hole at i unless its home lies cyclically in (i, j].
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            m.slots[i] = m.slots[j]
            i = j
    m.slots[i].key = 0
    m.size -= 1
    return value


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


cdef int64_t side_find(BookSide* s, int64_t price) noexcept nogil:
    """Position in s.refs of the level at `price`, or -(insertion point + 1).

    Most traffic is within a few levels of the best, so the top eight are scanned
    first, then the rest is bisected.
    """
    cdef int64_t key = side_key(s.side, price)
    cdef int64_t n = s.n
    cdef int64_t stop = n - 8 if n > 8 else 0
    cdef int64_t lo = 0, hi, mid, k = n - 1
    cdef const LevelRef* r = s.refs
    while k >= stop:
        if r[k].key <= key:
            return k if r[k].key == key else -(k + 1) - 1
        k -= 1
    hi = stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if r[mid].key == key:
            return mid
        if r[mid].key < key:
            lo = mid + 1
        else:
            hi = mid
    return -lo - 1


cdef uint32_t _level_alloc(LevelPool* lp) noexcept nogil:
    cdef uint32_t i
    cdef Level* items
    if lp.free_head != NIL:
        i = lp.free_head
        lp.free_head = lp.items[i].next_free
        return i
    if lp.top == lp.cap:
        items = <Level*>realloc(lp.items, lp.cap * 2 * sizeof(Level))
        if items == NULL:
            return NIL
        lp.items = items
        lp.cap *= 2
    i = lp.top
    lp.top += 1
    return i


cdef uint32_t side_level(BookC* b, BookSide* s, int64_t price) noexcept nogil:
    """Pool index of the level at `price`, created empty if missing (NIL on OOM)."""
    cdef int64_t found = side_find(s, price)
    cdef uint32_t pos, k
    cdef uint32_t li
    cdef LevelRef* nr
    cdef Level* lv
    if found >= 0:
        return s.refs[found].level
    pos = <uint32_t>(-found - 1)
    if s.n == s.cap:
        nr = <LevelRef*>realloc(s.refs, s.cap * 2 * sizeof(LevelRef))
        if nr == NULL:
            return NIL
        s.refs = nr
        s.cap *= 2
    li = _level_alloc(&b.lpool)
    if li == NIL:
        return NIL
    lv = &b.lpool.items[li]
    lv.price = price
    lv.total = 0
    lv.anon = 0
    lv.head = NIL
    lv.tail = NIL
    lv.count = 0
    k = s.n   # shift the better levels up by one (few: new levels are mostly near the top)
    while k > pos:
        s.refs[k] = s.refs[k - 1]
        k -= 1
    s.refs[pos].key = side_key(s.side, price)
    s.refs[pos].level = li
    s.n += 1
    return li


cdef void side_drop_level(BookC* b, BookSide* s, uint32_t pos) noexcept nogil:
    """Remove the (empty) level at position `pos` of the side."""
    cdef uint32_t li = s.refs[pos].level
    cdef uint32_t k
    for k in range(pos + 1, s.n):
        s.refs[k - 1] = s.refs[k]
    s.n -= 1
    b.lpool.items[li].next_free = b.lpool.free_head
    b.lpool.free_head = li


cdef int book_append(BookC* b, OrderPool* p, uint32_t oi) noexcept nogil:
    """Rest order `oi` at the back of its price level (-1 on OOM)."""
    cdef Order* o = &p.items[oi]
    cdef BookSide* s = book_side(b, o.side)
    cdef uint32_t li = side_level(b, s, o.price)
    cdef Level* lv
    if li == NIL:
        return -1
    lv = &b.lpool.items[li]
    o.level = li
    o.next = NIL
    o.prev = lv.tail
    if lv.tail != NIL:
        p.items[lv.tail].next = oi
    else:
        lv.head = oi
    lv.tail = oi
    lv.count += 1
    lv.total += o.qty
    return 0


cdef void book_unlink(BookC* b, OrderPool* p, uint32_t oi) noexcept nogil:
    """Take order `oi` out of its level (dropping the level if it empties)."""
    cdef Order* o = &p.items[oi]
    cdef Level* lv = &b.lpool.items[o.level]
    cdef BookSide* s
    if o.prev != NIL:
        p.items[o.prev].next = o.next
    else:
        lv.head = o.next
    if o.next != NIL:
        p.items[o.next].prev = o.prev
    else:
        lv.tail = o.prev
    lv.count -= 1
    lv.total -= o.qty
    if lv.count == 0 and lv.total <= 0:
        s = book_side(b, o.side)
        side_drop_level(b, s, <uint32_t>side_find(s, o.price))


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
