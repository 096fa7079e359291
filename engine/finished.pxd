# C declarations for finished.py, compiled by Cython in pure Python mode (setup.py):
# `FinishedOrders` becomes a cdef class, so that `observe`, on every numbered batch,
# reads its dicts and deque as C objects and state.py calls it as C.

import cython


cdef class FinishedOrders:
    cdef public Py_ssize_t capacity
    cdef public dict open
    cdef public dict fills
    cdef public dict done
    cdef object _oldest
    cdef public Py_ssize_t dropped
    cdef public dict ends
    cdef public dict hwms
    cdef dict _folds

    @cython.locals(folds=dict, open_=dict, ends=dict)
    cpdef observe(self, list events, list ended)
    @cython.locals(ends=dict, done=dict, open_=dict, fills=dict)
    cpdef settle(self, list ended, ts)
