# C declarations for service.py, compiled by Cython in pure Python mode (setup.py):
# `EngineService` becomes a cdef class, so that the request path (process, handle,
# _new, _change, _run) reads its fields as C and calls the state as C.

import cython

from tickplane.engine.eventlog cimport EventLog
from tickplane.engine.journal cimport JournalWriter
from tickplane.engine.mdlog cimport MarketDataLog
from tickplane.engine.metrics cimport EngineMetrics, LoopCounter, LoopHistogram
from tickplane.engine.state cimport EngineState


cdef class EngineService:
    cdef public object config
    cdef public EngineState state
    cdef public EngineMetrics metrics
    cdef public bint ready
    cdef public bint stopping
    cdef public list cpus
    cdef public object pinned
    cdef public list io_cpus
    cdef public JournalWriter journal
    cdef public EventLog eventlog
    cdef public MarketDataLog mdlog
    cdef public object market
    cdef public object venue
    cdef public object venue_status
    cdef public object _inbox
    cdef public bint _resumed
    cdef public double _last_heartbeat
    cdef public int _wake_r
    cdef public int _wake_w
    cdef public Py_ssize_t _replay_left
    cdef public long long _snapshot_ordinal
    cdef public long long _snapshot_entries
    cdef public long long loop_beat_ns
    # the timestamps of the turn's sampled request (`process`)
    cdef public list _stamps
    cdef public object _ctx
    cdef public object _router
    cdef public object _io
    cdef public object _pub
    cdef public object _pub_io
    cdef public object _http

    # the request path: C calls between them
    @cython.locals(replies=list, published=list, out=list, m=EngineMetrics, journal=JournalWriter,
                   mdlog=MarketDataLog)
    cpdef process(self, batch, venue_events=*)
    @cython.locals(answer=tuple)
    cpdef tuple handle(self, frame, set touched)
    cpdef tuple _batch(self, list requests, set touched)
    cpdef tuple dispatch(self, req, set touched)
    cpdef list _run(self, cmd, set touched)
    @cython.locals(answer=tuple)
    cpdef tuple _new(self, req, set touched)
    @cython.locals(st=EngineState, journal=JournalWriter)
    cpdef tuple _place(self, req, set touched)
    @cython.locals(f=tuple)
    cpdef tuple _change(self, req, set touched)
    cpdef _owned(self, account, order_id)


# the wire's codec as C calls (service.py says why)
cdef object _encode
cdef object _fields
cdef object _decode_body
cdef Py_ssize_t _DECODE_MAX
cdef int _WIRE_VERSION
cdef bytes _VERSION_BYTE
cdef bytes _frame(msg)
@cython.locals(data=bytes, n=Py_ssize_t)
cdef _decode(frame)
