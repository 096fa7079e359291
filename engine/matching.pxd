# The matching engine: ../shared/contracts/matching.md over the C book of book.pxd.
#
# Commands go in as primitive arguments (per call) or as a numpy array of COMMAND_DTYPE
# (batch); events come out as fixed 64-byte `Event` structs in a buffer that Python reads
# as a numpy array of EVENT_DTYPE. Order ids are uint64 assigned by the caller and must
# strictly increase: an id not above the highest seen is a duplicate, which makes the
# duplicate check O(1) with no ever-growing set.

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from tickplane.engine.book cimport BookC, IdMap, OrderPool

# Values shared with Python through the enums of matching.pyx; the pxd is their source.
cdef enum:
    # order types
    OT_LIMIT = 0
    OT_MARKET = 1
    OT_STOP = 2
    OT_STOP_LIMIT = 3
    # time in force
    TIF_GTC = 0
    TIF_DAY = 1
    TIF_IOC = 2
    TIF_FOK = 3
    # order flags
    F_POST_ONLY = 1
    # command ops (batch API)
    OP_NEW = 1
    OP_CANCEL = 2
    OP_REPLACE = 3
    # event types
    EV_ACCEPTED = 1
    EV_REJECTED = 2
    EV_TRADE = 3
    EV_CANCELED = 4
    EV_REPLACED = 5
    EV_TRIGGERED = 6
    # self-trade prevention (an option, off by default)
    STP_NONE = 0
    STP_CANCEL_NEWEST = 1
    STP_CANCEL_OLDEST = 2
    STP_CANCEL_BOTH = 3
    # reasons: rejections (validation order of the contract first), then cancellations
    R_NONE = 0
    R_BAD_ID = 1
    R_DUPLICATE_ID = 2
    R_BAD_SIDE = 3
    R_BAD_TYPE = 4
    R_BAD_QTY = 5
    R_BAD_PRICE = 6
    R_BAD_STOP_PRICE = 7
    R_BAD_TIF = 8
    R_BAD_POST_ONLY = 9
    R_BAD_SYMBOL = 10
    R_BAD_ACCOUNT = 11
    R_UNKNOWN_FIELD = 12
    R_BAD_OP = 13
    R_BAD_JSON = 14
    R_UNKNOWN_ORDER = 15
    R_BAD_REPLACE = 16
    R_OUT_OF_MEMORY = 17
    R_USER = 32
    R_IOC = 33
    R_FOK = 34
    R_NO_LIQUIDITY = 35
    R_POST_ONLY = 36
    R_SELF_TRADE = 37
    R_MARKET_COLLAR = 38
    R_KILL_SWITCH = 39

ctypedef struct Event:
    uint64_t seq            # gap-free, per engine
    int64_t ts              # ns, the command's timestamp
    uint64_t id             # the order (the taker for a trade)
    uint64_t maker          # trade: the resting order
    int64_t price           # trade: price; accepted/replaced: limit price (or stop price)
    int64_t qty             # trade: qty; canceled: remaining; accepted/replaced: qty
    uint32_t symbol
    uint32_t account        # account of `id`
    uint32_t maker_account  # trade: account of `maker`
    uint8_t type            # EV_*
    uint8_t reason          # R_*
    uint8_t side            # side of `id` (trade: the taker's side)
    uint8_t order_type      # OT_* of `id`

ctypedef struct Command:
    uint64_t id
    int64_t qty
    int64_t price
    int64_t stop_price
    int64_t ts
    uint32_t account
    uint32_t symbol
    uint8_t op              # OP_*
    uint8_t side
    uint8_t type
    uint8_t tif
    uint8_t post_only       # 0, 1, or anything else = not a bool
    uint8_t reason          # a front-end's own rejection, applied after the core's checks
    uint16_t _pad

ctypedef struct Stop:
    uint64_t id
    int64_t price           # limit price (stop_limit)
    int64_t stop_price
    int64_t qty
    uint32_t prev           # acceptance order within the market
    uint32_t next
    uint32_t account
    uint32_t symbol
    uint8_t side
    uint8_t type
    uint8_t tif
    uint8_t flags

ctypedef struct Market:
    BookC book
    int64_t last_price
    uint32_t stop_head
    uint32_t stop_tail
    uint32_t n_stops
    uint8_t has_last
    uint8_t exists


# final: cdef methods are called directly (and inlined), not through a vtable.
@cython.final
cdef class MatchingEngine:
    cdef OrderPool orders
    cdef IdMap ids                  # id -> order index, or stop index | STOP_TAG
    cdef Stop* stops
    cdef uint32_t stops_cap
    cdef uint32_t stops_top
    cdef uint32_t stops_free
    cdef uint32_t n_stops
    cdef Market* markets
    cdef uint32_t n_markets
    cdef Event* evbuf
    cdef Py_ssize_t n_events
    cdef Py_ssize_t events_cap
    cdef readonly uint64_t seq       # sequence number of the last event
    cdef readonly uint64_t last_id   # highest order id taken
    cdef int64_t ts
    cdef uint32_t cmd_trades
    cdef bint oom
    cdef readonly int stp

    cdef Event* _emit(self, uint8_t type, uint64_t id, uint32_t symbol) noexcept nogil
    cdef void _canceled(self, uint64_t id, uint32_t symbol, uint32_t account, int side,
                        int64_t remaining, int reason) noexcept nogil
    cdef Market* _market(self, uint32_t symbol) noexcept nogil
    cdef Market* _existing(self, uint32_t symbol)
    cdef void _remove_resting(self, uint32_t oi) noexcept nogil
    cdef int64_t _match(self, uint32_t symbol, uint64_t id, uint32_t account, int side,
                        int type, int64_t limit, int64_t qty, bint* taker_stp) noexcept nogil
    cdef int _execute(self, uint32_t symbol, uint64_t id, uint32_t account, int side,
                      int type, int64_t price, int64_t qty, int tif, int flags) noexcept nogil
    cdef void _run_triggers(self, uint32_t symbol) noexcept nogil
    cdef uint32_t _stop_alloc(self) noexcept nogil
    cdef int _hold(self, Market* m, uint64_t id, int64_t price, int64_t stop_price,
                   int64_t qty, uint32_t symbol, uint32_t account, int side, int type, int tif,
                   int flags) noexcept nogil
    cdef void _unlink_stop(self, uint32_t symbol, uint32_t si) noexcept nogil
    cdef int _check(self) except -1
    cdef void _give_back(self) noexcept
    cdef int c_new(self, uint64_t id, uint32_t account, uint32_t symbol, int side, int type,
                   int64_t qty, int64_t price, int64_t stop_price, int tif, int post_only,
                   int reason) noexcept nogil
    cdef int c_cancel(self, uint64_t id, int reason) noexcept nogil
    cdef int c_replace(self, uint64_t id, int64_t qty, int64_t price, int reason) noexcept nogil
    cdef int c_reject(self, uint64_t id, int reason) noexcept nogil
    cdef int c_command(self, const Command* c) noexcept nogil
    # the per-call API: C calls from the engine's state (state.pxd types its core)
    cpdef Py_ssize_t submit(self, uint64_t id, uint32_t account, uint32_t symbol, int side,
                            int type, int64_t qty, int64_t price=*, int64_t stop_price=*,
                            int tif=*, int post_only=*, int64_t ts=*, int reason=*) except -1
    cpdef Py_ssize_t cancel(self, uint64_t id, int64_t ts=*, int reason=*) except -1
    cpdef Py_ssize_t replace(self, uint64_t id, int64_t qty=*, int64_t price=*, int64_t ts=*,
                             int reason=*) except -1
    cpdef bint is_held(self, uint64_t id)
