# The L3 order book: C structs and nogil functions shared by the matching engine
# (matching.pyx), the market-data mirror (Book) and the LOBSTER replay (replay.pyx).
#
# Memory layout, chosen so that a resting order costs < 100 bytes and nothing on the
# hot path allocates a Python object:
# - every order lives in one `OrderPool` (a growable array of 48-byte structs with a
#   free list); orders refer to each other by uint32 index, never by pointer, so the
#   pool can grow with realloc;
# - `IdMap` is an open-addressing table (linear probing, backward-shift deletion,
#   no tombstones) from the uint64 order id to its pool index: O(1) cancel and lookup;
# - a price level is a FIFO doubly linked list of orders plus its aggregate; each side
#   keeps (key, level) pairs in an array sorted worst -> best, so the best level is the
#   last element (O(1)) and adding or removing a level near the top moves only the few
#   better levels. The key is the price on the bid side and minus the price on the ask
#   side, so one comparison serves both sides.

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cdef enum:
    NIL = 0xFFFFFFFF        # "no index" for pool links
    BUY = 0
    SELL = 1

ctypedef struct Order:
    uint64_t id
    int64_t price
    int64_t qty             # open quantity
    uint32_t prev           # FIFO neighbours within the level
    uint32_t next
    uint32_t level          # index in LevelPool
    uint32_t account
    uint32_t symbol         # index of the market (matching engine); 0 in a Book
    uint8_t side
    uint8_t tif
    uint8_t flags           # F_POST_ONLY (matching.pxd)
    uint8_t _pad

ctypedef struct OrderPool:
    Order* items
    uint32_t cap
    uint32_t used           # live items
    uint32_t free_head      # free list threaded through Order.next
    uint32_t top            # items never handed out start here

ctypedef packed struct IdEntry:   # 12 bytes: the map is most of an order's footprint
    uint64_t key            # 0 = empty slot (0 is never a valid order id)
    uint32_t value

ctypedef struct IdMap:
    IdEntry* slots
    uint64_t mask           # capacity - 1 (capacity is a power of two)
    uint64_t size

ctypedef struct Level:
    int64_t price
    int64_t total           # open quantity at this price, anonymous included
    int64_t anon            # anonymous liquidity (market-data mode), ahead of all orders
    uint32_t head
    uint32_t tail
    uint32_t count          # identified orders
    uint32_t next_free

ctypedef struct LevelPool:
    Level* items
    uint32_t cap
    uint32_t free_head
    uint32_t top

ctypedef struct LevelRef:
    int64_t key             # price for bids, -price for asks: on both sides larger is better
    uint32_t level          # index in LevelPool
    uint32_t _pad

ctypedef struct BookSide:
    LevelRef* refs          # sorted by key, worst -> best: the best level is the last
    uint32_t n
    uint32_t cap
    uint8_t side

ctypedef struct BookC:
    BookSide bids
    BookSide asks
    LevelPool lpool


# --- small hot functions, inline in every module that cimports this one ---------------

cdef inline uint64_t _hash(uint64_t k) noexcept nogil:
    # Ids come mostly in sequence (engine-assigned, or an exchange's order numbers), so
    # eight consecutive ids keep consecutive slots (one or two cache lines) and only the
    # block number is scrambled (splitmix64 finalizer): inserting in id order then
    # touches a new cache line once per eight orders, while strided or clustered ids
    # still spread over the whole table.
    cdef uint64_t b = k >> 3
    b ^= b >> 30
    b *= 0xbf58476d1ce4e5b9ULL
    b ^= b >> 27
    b *= 0x94d049bb133111ebULL
    b ^= b >> 31
    return (b << 3) | (k & 7)


cdef inline uint32_t idmap_get(const IdMap* m, uint64_t key) noexcept nogil:
    cdef uint64_t i = _hash(key) & m.mask
    while True:
        if m.slots[i].key == key:
            return m.slots[i].value
        if m.slots[i].key == 0:
            return NIL
        i = (i + 1) & m.mask


cdef inline BookSide* book_side(BookC* b, int side) noexcept nogil:
    return &b.bids if side == BUY else &b.asks


cdef inline int64_t side_key(int side, int64_t price) noexcept nogil:
    return price if side == BUY else -price


cdef inline Level* side_best(BookC* b, BookSide* s) noexcept nogil:
    if s.n == 0:
        return NULL
    return &b.lpool.items[s.refs[s.n - 1].level]


# --- out of line: set-up, tear-down and the rare growth paths (-1 when memory runs out)
cdef int pool_init(OrderPool* p, uint32_t cap) except -1 nogil
cdef void pool_free(OrderPool* p) noexcept nogil
cdef int pool_grow(OrderPool* p) noexcept nogil
cdef int idmap_init(IdMap* m, uint64_t cap) except -1 nogil
cdef void idmap_free(IdMap* m) noexcept nogil
cdef int idmap_grow(IdMap* m) noexcept nogil
cdef int book_init(BookC* b) except -1 nogil
cdef void book_free(BookC* b) noexcept nogil
cdef int lpool_grow(LevelPool* lp) noexcept nogil
cdef int side_grow(BookSide* s) noexcept nogil


# --- the hot path, inline wherever it is used (book.pyx, matching.pyx, replay.pyx) -----

cdef inline uint32_t pool_alloc(OrderPool* p) noexcept nogil:
    """Index of a fresh Order slot, or NIL if memory ran out."""
    cdef uint32_t i
    if p.free_head != NIL:
        i = p.free_head
        p.free_head = p.items[i].next
    else:
        if p.top == p.cap and pool_grow(p) < 0:
            return NIL
        i = p.top
        p.top += 1
    p.used += 1
    return i


cdef inline void pool_release(OrderPool* p, uint32_t i) noexcept nogil:
    p.items[i].next = p.free_head
    p.items[i].id = 0
    p.free_head = i
    p.used -= 1


cdef inline int idmap_insert(IdMap* m, uint64_t key, uint32_t value) noexcept nogil:
    """Insert a key that must be new, in one probe: 1 if it is already there (nothing
    changed), -1 if memory ran out."""
    cdef uint64_t i
    if (m.size + 1) * 2 > m.mask + 1:
        if idmap_grow(m) < 0:
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


cdef inline uint32_t idmap_pop(IdMap* m, uint64_t key) noexcept nogil:
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


cdef inline int64_t side_find(BookSide* s, int64_t price) noexcept nogil:
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


cdef inline uint32_t level_alloc(LevelPool* lp) noexcept nogil:
    cdef uint32_t i
    if lp.free_head != NIL:
        i = lp.free_head
        lp.free_head = lp.items[i].next_free
        return i
    if lp.top == lp.cap and lpool_grow(lp) < 0:
        return NIL
    i = lp.top
    lp.top += 1
    return i


cdef inline uint32_t side_level(BookC* b, BookSide* s, int64_t price) noexcept nogil:
    """Pool index of the level at `price`, created empty if missing (NIL on OOM)."""
    cdef int64_t found = side_find(s, price)
    cdef uint32_t pos, k
    cdef uint32_t li
    cdef Level* lv
    if found >= 0:
        return s.refs[found].level
    pos = <uint32_t>(-found - 1)
    if s.n == s.cap and side_grow(s) < 0:
        return NIL
    li = level_alloc(&b.lpool)
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


cdef inline void side_drop_level(BookC* b, BookSide* s, uint32_t pos) noexcept nogil:
    """Remove the (empty) level at position `pos` of the side."""
    cdef uint32_t li = s.refs[pos].level
    cdef uint32_t k
    for k in range(pos + 1, s.n):
        s.refs[k - 1] = s.refs[k]
    s.n -= 1
    b.lpool.items[li].next_free = b.lpool.free_head
    b.lpool.free_head = li


cdef inline int book_append(BookC* b, OrderPool* p, uint32_t oi) noexcept nogil:
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


cdef inline void book_unlink(BookC* b, OrderPool* p, uint32_t oi) noexcept nogil:
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


# --- Python-facing queries shared by Book and the matching engine ---------------------
cdef list side_depth(BookC* b, BookSide* s, Py_ssize_t n)
cdef list level_orders_of(BookC* b, OrderPool* p, int side, int64_t price)


# final: cdef methods are called directly (and inlined), not through a vtable.
@cython.final
cdef class Book:
    """A standalone L3 book in market-data mode (mirrors an exchange feed)."""
    cdef BookC c
    cdef OrderPool pool
    cdef IdMap ids

    cdef int c_add(self, uint64_t id, int side, int64_t price, int64_t qty) noexcept nogil
    cdef int c_reduce(self, uint64_t id, int side, int64_t price, int64_t qty) noexcept nogil
    cdef int c_delete(self, uint64_t id, int side, int64_t price) noexcept nogil
    cdef int c_seed(self, int side, int64_t price, int64_t qty) noexcept nogil
    cdef int _reduce_level(self, int side, int64_t price, int64_t qty) noexcept nogil
    cdef void c_trim(self, int side, uint32_t keep) noexcept nogil
