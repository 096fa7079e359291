# C declarations for journal.py, compiled by Cython in pure Python mode (setup.py): the
# writer becomes a cdef class with typed fields, so that the engine's loop (service.py)
# appends each command and commits each turn with C calls, and the writer's own
# bookkeeping is C arithmetic.

import cython


cdef class JournalWriter:
    cdef public object directory
    cdef public object policy
    cdef bint _always
    cdef public long long group_commit_ns
    cdef public object max_pending_bytes
    cdef public object max_segment_bytes
    cdef public object on_fsync
    cdef public object fsync_durations
    cdef public Py_ssize_t fsync_count
    cdef public long long bytes_written
    cdef public long long entries
    cdef list _pending
    cdef Py_ssize_t _pending_bytes
    cdef list _run
    cdef Py_ssize_t _run_limit
    # open begin_group calls
    cdef int _group
    cdef long long _group_first
    cdef bint _group_due
    cdef long long _pending_since
    cdef bint _dirty
    cdef object _failed
    cdef int _fd
    cdef object _map
    cdef Py_ssize_t _mapped
    cdef Py_ssize_t _grow_step
    cdef public int _lock_fd
    cdef long long _segment_first
    cdef object _segment_path
    cdef public Py_ssize_t _segment_size
    cdef long long _next
    cdef long long _committed

    cpdef long long append(self, rtype, payload) except? -1
    cpdef append_command(self, bytes command)
    cpdef _close_run(self)
    cpdef begin_group(self)
    cpdef end_group(self)
    cpdef long long commit(self) except? -1
