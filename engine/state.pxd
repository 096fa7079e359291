# C declarations for state.py, compiled by Cython in pure Python mode (setup.py):
# `EngineState` becomes a cdef class, so that the command path (apply, absorb, the
# numbering of events) reads its tables as C fields and calls risk.py and finished.py
# as C.

import cython

from tickplane.engine.finished cimport FinishedOrders
from tickplane.engine.matching cimport MatchingEngine
from tickplane.engine.risk cimport RiskEngine


cdef class EventRing:
    cdef public Py_ssize_t capacity
    cdef list _items
    # seq of the oldest event held, and the seq the next event will have
    cdef public long long first
    cdef public long long next

    @cython.locals(cap=Py_ssize_t, items=list)
    cpdef long long number(self, list events, long long last_seq) except? -1


cdef object _fields


cdef class EngineState:
    cdef public object config
    cdef public MatchingEngine core
    cdef public list accounts
    cdef public dict account_index
    cdef public dict client_order_ids
    cdef public long long seq
    cdef public dict md_seq
    cdef public dict routed
    cdef public object last_routed_id
    cdef public dict routed_groups
    cdef public list venue_cancels
    cdef public dict orphans
    cdef public list symbols
    cdef public dict symbol_index
    cdef public EventRing recent
    cdef dict _last_top
    cdef public object positions
    cdef public FinishedOrders finished
    cdef public object idempotency
    cdef public object contingent
    cdef public RiskEngine risk
    cdef bint _checks_spend

    cpdef complete_accepted(self, ev, stop_price, order_type, tif, post_only)
    cpdef next_order_id(self)
    cpdef check(self, c, legs=*)
    @cython.locals(core=MatchingEngine)
    cpdef list apply(self, c, bint check=*)
    @cython.locals(risk=RiskEngine, f=tuple)
    cpdef absorb(self, list events, list out, c)
    cpdef list _number(self, list out)
