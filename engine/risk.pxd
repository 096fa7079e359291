# Pre-trade risk (risk.pyx): a cdef class, so that the checks and the open-order
# bookkeeping on every command read its tables as C objects.

cdef class RiskEngine:
    cdef object _positions
    cdef object _default
    cdef dict _per_account
    cdef dict _per_symbol
    cdef object _breaker
    # ids of the orders `on_done` let go since the owner last emptied it (None: not
    # recorded): the engine's finished orders (finished.pyx) learn of every end here
    cdef public list ended
    cdef bint _kill_all
    cdef set _killed
    # symbol -> end ts (None: until resumed)
    cdef dict _halts
    # symbol -> reference price
    cdef dict _refs
    cdef dict _windows
    # order-rate buckets: [level in token-ns, ts of the last token taken]
    cdef dict _acct_buckets
    cdef dict _pair_buckets
    cdef dict _orders
    # (account, symbol) -> [open buy lots, open sell lots, open orders]
    cdef dict _pairs
    # account -> open orders
    cdef dict _acct_count


cdef class _Order:
    # what an open order could still add to its (account, symbol) position
    cdef public str account
    cdef public str symbol
    cdef public bint buy
    # 0 if buy else 1: the index into `pair`
    cdef public int side
    cdef public object qty
    cdef public object price
    # RiskEngine._pairs[(account, symbol)]: [buy lots, sell lots, orders]
    cdef public list pair
    cdef public bint held
