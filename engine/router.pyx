# cython: language_level=3, boundscheck=False, wraparound=False
"""The order-entry ROUTER's message traffic in C: requests off the socket and replies
onto it through libzmq's own calls (and the event PUB's [topic, frame] messages onto it
the same way: `Router.send` sends any two-frame messages).

Why: in the engine's loop, pyzmq's `recv` cost ~0.5 us a frame and its `send` ~0.25 us
(Python calls, argument parsing, a `Frame` path, signal checks), against ~0.08 us for
libzmq's own `zmq_msg_recv` and ~0.09 us for `zmq_send` (tests/benchmarks/bench_wire.py's
one-frame-a-request pipelining spends two receives and two sends a request). The
socket is still pyzmq's: it is made, configured, waited on and closed through pyzmq;
`Router` only moves messages on it, on the loop's thread, between those calls.
`PyzmqRouter` is the same interface through pyzmq's calls; `for_socket` picks.

libzmq is the copy pyzmq loaded (found in /proc/self/maps, opened with RTLD_NOLOAD, so
never a second copy with its own state); without it (a pyzmq built with libzmq inside
its own extension) `available()` is False and the engine keeps pyzmq's calls.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EAGAIN, EINTR

import os

import zmq

cdef extern from "<dlfcn.h>" nogil:
    void *dlopen(const char *filename, int flags)
    void *dlsym(void *handle, const char *symbol)
    int RTLD_NOW
    int RTLD_NOLOAD

cdef enum:
    _DONTWAIT = 1  # ZMQ_DONTWAIT
    _SNDMORE = 2  # ZMQ_SNDMORE

cdef msg_init_t _msg_init = NULL
cdef msg_recv_t _msg_recv = NULL
cdef msg_data_t _msg_data = NULL
cdef msg_size_t _msg_size = NULL
cdef msg_more_t _msg_more = NULL
cdef msg_close_t _msg_close = NULL
cdef send_t _send = NULL
cdef errno_t _errno = NULL


_MAPS = "/proc/self/maps"  # the process's mapped files (Linux)


def _loaded_libzmq() -> bytes | None:
    """The path of the libzmq pyzmq loaded, if it is a library of its own: the one in
    pyzmq's own folder (its wheels bundle it there), or else the only one mapped (a
    pyzmq built against the system's). Two others and no way to tell: None."""
    found: set[bytes] = set()
    try:
        with open(_MAPS, "rb") as maps:
            for line in maps:
                path = line.rstrip().rpartition(b" ")[2]
                if b"/libzmq" in path:
                    found.add(path)
    except OSError:  # no /proc (not Linux): pyzmq's calls then
        return None
    site = os.fsencode(os.path.dirname(os.path.dirname(os.path.realpath(zmq.__file__))))
    own = [path for path in found if path.startswith(site + b"/pyzmq")]
    if len(own) == 1:
        return own[0]
    return found.pop() if len(found) == 1 else None


cdef bint _load() except -1:
    global _msg_init, _msg_recv, _msg_data, _msg_size, _msg_more, _msg_close, _send, _errno
    if _send != NULL:
        return True
    path = _loaded_libzmq()
    if path is None:
        return False
    cdef void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD)
    if lib == NULL:
        return False
    _msg_init = <msg_init_t>dlsym(lib, "zmq_msg_init")
    _msg_recv = <msg_recv_t>dlsym(lib, "zmq_msg_recv")
    _msg_data = <msg_data_t>dlsym(lib, "zmq_msg_data")
    _msg_size = <msg_size_t>dlsym(lib, "zmq_msg_size")
    _msg_more = <msg_more_t>dlsym(lib, "zmq_msg_more")
    _msg_close = <msg_close_t>dlsym(lib, "zmq_msg_close")
    _errno = <errno_t>dlsym(lib, "zmq_errno")
    cdef send_t send = <send_t>dlsym(lib, "zmq_send")
    if (
        _msg_init == NULL or _msg_recv == NULL or _msg_data == NULL or _msg_size == NULL
        or _msg_more == NULL or _msg_close == NULL or _errno == NULL or send == NULL
    ):
        return False
    _send = send  # last: it says the others are there
    return True


def available() -> bool:
    """Whether libzmq's own calls can be used here (see the module's docstring)."""
    return _load()


def for_socket(socket: zmq.Socket) -> object:
    """A `Router` on `socket`, or a `PyzmqRouter` where libzmq's calls are not
    available."""
    return Router(socket) if _load() else PyzmqRouter(socket)


cdef class Router:
    """Moves [identity, frame] messages on a pyzmq ROUTER socket, which it keeps alive
    (or sends [topic, frame] messages on a PUB socket: `send` alone)."""

    def __cinit__(self, socket: zmq.Socket) -> None:
        if not _load():
            raise RuntimeError("libzmq's own calls are not available (router.available())")
        self.socket = socket
        self.handle = <void *><size_t>socket.underlying
        self.dropped = 0

    cdef bytes _frame(self, bint *more):
        """One frame without waiting; None when there is none (EAGAIN)."""
        cdef zmq_msg_t msg
        cdef int err
        _msg_init(&msg)
        while _msg_recv(&msg, self.handle, _DONTWAIT) < 0:
            err = _errno()
            if err == EINTR:
                PyErr_CheckSignals()  # a signal handler's exception goes up from here
                continue
            _msg_close(&msg)
            if err == EAGAIN:
                return None
            raise zmq.ZMQError(err)
        frame = PyBytes_FromStringAndSize(<char *>_msg_data(&msg), _msg_size(&msg))
        more[0] = _msg_more(&msg)
        _msg_close(&msg)
        return frame

    def take(self, int max_batch, bytes identity=None) -> list:
        """Up to `max_batch` [identity, frame] messages, without waiting (`identity`:
        the first message's first frame, already received). A message of other than two
        frames is dropped whole and counted in `dropped`."""
        cdef list batch = []
        cdef bint more = False
        while len(batch) < max_batch:
            if identity is None:
                identity = self._frame(&more)
                if identity is None:
                    break
            else:
                more = True  # a ROUTER's identity frame always has its message after it
            # A message arrives whole: its frames are there. A lone frame (more False)
            # cannot come from a ROUTER; it is dropped like a long message.
            frame = self._frame(&more) if more else None
            if frame is None:
                self.dropped += 1
                identity = None
                continue
            if more:
                while more and self._frame(&more) is not None:
                    pass
                self.dropped += 1
                identity = None
                continue
            batch.append((identity, frame))
            identity = None
        return batch

    def send(self, list replies) -> None:
        """Send each (identity, frame) as a two-frame message (blocking sends, as pyzmq's
        default: with the engine's high-water mark and ROUTER_MANDATORY off they do not
        block; a message to a gone peer is dropped by ZeroMQ)."""
        cdef bytes identity, frame
        cdef Py_ssize_t i
        for i in range(len(replies)):
            identity, frame = replies[i]
            self._send_part(identity, _SNDMORE)
            self._send_part(frame, 0)

    cdef int _send_part(self, bytes data, int flags) except -1:
        cdef int err
        while _send(self.handle, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), flags) < 0:
            err = _errno()
            if err != EINTR:
                raise zmq.ZMQError(err)
            PyErr_CheckSignals()
        return 0


_recv = zmq.backend.Socket.recv
_send_frame = zmq.backend.Socket.send
_get = zmq.backend.Socket.get
_NOBLOCK = int(zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_SEND_MORE = int(zmq.SNDMORE)


class PyzmqRouter:
    """`Router`'s interface through pyzmq's calls: the fallback, and the baseline
    tests/benchmarks/bench_router.py measures `Router` against.

    pyzmq's own calls cost (measured here): `recv_multipart` ~1.8 us, a `zmq.Again`
    ending a drain ~3 us, reading `EVENTS` ~1.4 us; the backend's bare `recv` ~0.5 us.
    So: bare recvs, one `RCVMORE` read per message, and after the first message one
    `EVENTS` read, so that the usual one-request turn ends without an exception; a
    longer batch ends on one."""

    def __init__(self, socket: zmq.Socket) -> None:
        self.socket = socket
        self.dropped = 0

    def take(self, max_batch: int, identity: bytes | None = None) -> list:
        """As `Router.take`."""
        sock = self.socket
        batch = []
        try:
            while len(batch) < max_batch:
                if identity is None:
                    identity = _recv(sock, _NOBLOCK)
                frame = _recv(sock, _NOBLOCK)  # a message arrives whole: it is there
                first, identity = identity, None
                if _get(sock, _RCVMORE):
                    while _get(sock, _RCVMORE):
                        _recv(sock, _NOBLOCK)
                    self.dropped += 1
                    continue
                batch.append((first, frame))
                if len(batch) == 1 < max_batch and not int(_get(sock, _EVENTS)) & _POLLIN:
                    break
        except zmq.Again:
            pass
        return batch

    def send(self, replies: list) -> None:
        """As `Router.send`."""
        sock = self.socket
        for identity, frame in replies:
            _send_frame(sock, identity, _SEND_MORE)
            _send_frame(sock, frame, 0)
