# C declarations for eventlog.py, compiled by Cython in pure Python mode (setup.py): the
# engine's loop appends every turn's published events here, so `append` is a C call
# from the compiled loop (service.py) on typed fields.

cdef class EventLog:
    cdef public object path
    cdef public object old_path
    cdef public long long max_bytes
    cdef object _firsts
    cdef object _offsets
    cdef Py_ssize_t _split
    cdef public long long next_seq
    cdef long long _size
    cdef list _buffer
    cdef Py_ssize_t _buffered
    cdef double _since
    cdef int _old_fd
    cdef int _fd

    cpdef append(self, list events, frame=*)
    cpdef flush(self)
