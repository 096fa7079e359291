# C declarations for mdlog.py, compiled by Cython in pure Python mode (setup.py): the
# engine's loop logs every top and delta it publishes here, so `append` is a C call
# from the compiled loop (service.py) on typed fields.

import cython


cdef class MarketDataLog:
    cdef public object dir
    cdef public long long max_bytes
    cdef long long _limit
    cdef dict _seqs
    cdef dict _locs
    cdef dict _reserved
    cdef dict _last
    cdef dict _names
    cdef long long _gen
    cdef list _buffer
    cdef object _top
    cdef Py_ssize_t _buffered
    cdef double _since
    cdef int _old_fd
    cdef int _fd
    cdef public long long _size

    @cython.locals(record=bytes, after=cython.longlong, reserve=cython.bint)
    cpdef append(self, md, bytes frame)
    cpdef flush(self)


cdef Py_ssize_t _BLOCK_SIZE
cdef Py_ssize_t _HEAD_SIZE
