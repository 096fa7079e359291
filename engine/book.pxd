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


# --- pools and maps (return -1 when memory runs out) ---------------------------------
cdef int pool_init(OrderPool* p, uint32_t cap) except -1 nogil
cdef void pool_free(OrderPool* p) noexcept nogil
cdef uint32_t pool_alloc(OrderPool* p) noexcept nogil
cdef void pool_release(OrderPool* p, uint32_t i) noexcept nogil

cdef int idmap_init(IdMap* m, uint64_t cap) except -1 nogil
cdef void idmap_free(IdMap* m) noexcept nogil
cdef int idmap_put(IdMap* m, uint64_t key, uint32_t value) noexcept nogil
cdef int idmap_insert(IdMap* m, uint64_t key, uint32_t value) noexcept nogil
cdef uint32_t idmap_pop(IdMap* m, uint64_t key) noexcept nogil

# --- the book -------------------------------------------------------------------------
cdef int book_init(BookC* b) except -1 nogil
cdef void book_free(BookC* b) noexcept nogil
cdef int64_t side_find(BookSide* s, int64_t price) noexcept nogil
cdef uint32_t side_level(BookC* b, BookSide* s, int64_t price) noexcept nogil
cdef void side_drop_level(BookC* b, BookSide* s, uint32_t pos) noexcept nogil
cdef int book_append(BookC* b, OrderPool* p, uint32_t oi) noexcept nogil
cdef void book_unlink(BookC* b, OrderPool* p, uint32_t oi) noexcept nogil

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
