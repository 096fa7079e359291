# C declarations for risk.py, compiled by Cython in pure Python mode (setup.py): the
# classes become cdef classes, so that the checks and the open-order bookkeeping on
# every command read typed fields and call each other (and state.py calls them) as C.

import cython


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


@cython.locals(o=_Order)
cdef _Order _open_order(str account, str symbol, bint buy, qty, price, list pair)


cdef class RiskEngine:
    cdef object _positions
    cdef object _default
    cdef dict _per_account
    cdef dict _per_symbol
    cdef object _breaker
    # ids of the orders `on_done` let go since the owner last emptied it (None: not
    # recorded): the engine's finished orders (finished.py) learn of every end here
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

    # the checks and bookkeeping every command goes through: C calls from state.py
    cpdef check_new(self, account, symbol, side, object type, qty, price, ts, legs=*)
    # called by check_new and check_replace: a C call (a Python one parsed nine
    # arguments, ~1.5k instructions of every order)
    cpdef _check(self, account, symbol, buy, is_limit, qty, price, replaced, ts, legs=*)
    @cython.locals(buy=bint, p=list)
    cpdef on_accepted(self, order_id, account, symbol, side, qty, price=*)
    @cython.locals(o=_Order)
    cpdef on_replaced(self, order_id, qty, price=*)
    @cython.locals(o=_Order)
    cpdef on_fill(self, order_id, qty)
    @cython.locals(o=_Order, p=list)
    cpdef on_done(self, order_id)
    cpdef on_trade(self, symbol, price, ts)
    cpdef expire(self, ts)
