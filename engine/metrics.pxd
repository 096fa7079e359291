# C declarations for metrics.py, compiled by Cython in pure Python mode (setup.py): the
# loop's counters and histograms become cdef classes with C numbers, and EngineMetrics
# holds the ones the loop touches every turn as typed fields, so that the engine's
# compiled loop (service.py) counts and observes with C calls instead of interpreted
# ones (eleven histogram observations a turn were ~30k instructions of a one-request
# turn's ~160k).

import cython


cdef class LoopCounter:
    cdef public double value

    cpdef inc(self, double amount=*)


cdef class LoopHistogram:
    cdef public tuple bounds
    cdef public list counts
    cdef public double sum

    @cython.locals(i=Py_ssize_t, bound=double)
    cpdef Py_ssize_t _bucket(self, double value) except -1
    cpdef observe(self, double value)
    cpdef observe_many(self, double value, Py_ssize_t n)


cdef class EngineMetrics:
    cdef public object registry
    cdef public object requests
    cdef public LoopCounter requests_new
    cdef public LoopCounter requests_cancel
    cdef public LoopCounter requests_replace
    cdef public object orders
    cdef public object rejects
    cdef public object request_rejects
    cdef public object risk_rejects
    cdef public object cancels
    cdef public LoopCounter trades
    cdef public LoopCounter traded_qty
    cdef public LoopCounter bad_frames
    cdef public LoopHistogram batch_seconds
    cdef public LoopHistogram request_seconds
    cdef public LoopHistogram stage_handle
    cdef public LoopHistogram stage_journal
    cdef public LoopHistogram stage_ack
    cdef public LoopHistogram stage_publish
    cdef public tuple request_stages
    cdef public LoopHistogram batch_size
    cdef public LoopHistogram fsync_seconds
    cdef public object venue_connected
    cdef public object venue_fallbacks
    cdef public object venue_degraded
    cdef public object venue_fallback_active
    cdef public object kill_switches
    cdef public object halts
    cdef public object queue_depth
    cdef public object seq
    cdef public object ready
    cdef public object recovery_seconds
    cdef public object cpus
    cdef public object info

    @cython.locals(accepted=Py_ssize_t, trades=Py_ssize_t, canceled=dict)
    cpdef Py_ssize_t count(self, list events) except -1
