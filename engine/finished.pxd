# The engine's recently finished orders (finished.pyx): a cdef class so that `observe`,
# on every numbered batch, reads its dicts and deque as C objects.

cdef class FinishedOrders:
    # how many finished orders are kept (0: none)
    cdef public Py_ssize_t capacity
    # accepted and not finished: the acceptance as the order is now (after replaces)
    cdef public dict open
    # id -> [lots, tick-lots, ts of the last fill], of open orders that traded
    cdef public dict fills
    # id -> FinishedOrder, oldest first
    cdef public dict done
    # their ids, oldest first: the oldest found without iterating `done`, which scans
    # the slots its earlier deletions left (~37 us an order once full)
    cdef object _oldest
    # finished orders dropped for the bound, ever
    cdef public Py_ssize_t dropped
    # this batch's cancels and rejects: id -> (status, reason, ts); they finish an order
    # only if risk reports it gone in the same batch (a refused replace of a routed
    # order is a reject that leaves it open)
    cdef public dict ends
    cdef dict _folds

    cpdef settle(self, list ended, long long ts)
