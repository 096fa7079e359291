# libzmq's calls the order-entry ROUTER's traffic uses (router.pyx), as function
# pointers: they are looked up in the libzmq pyzmq loaded, not linked.

ctypedef struct zmq_msg_t:
    unsigned char _[64]  # libzmq 4's zmq_msg_t: 64 opaque bytes

ctypedef int (*msg_init_t)(zmq_msg_t *msg) noexcept nogil
ctypedef int (*msg_recv_t)(zmq_msg_t *msg, void *socket, int flags) noexcept nogil
ctypedef void *(*msg_data_t)(zmq_msg_t *msg) noexcept nogil
ctypedef size_t (*msg_size_t)(const zmq_msg_t *msg) noexcept nogil
ctypedef int (*msg_more_t)(const zmq_msg_t *msg) noexcept nogil
ctypedef int (*msg_close_t)(zmq_msg_t *msg) noexcept nogil
ctypedef int (*send_t)(void *socket, const void *buf, size_t size, int flags) noexcept nogil
ctypedef int (*errno_t)() noexcept nogil


cdef class Router:
    cdef readonly object socket
    cdef void *handle
    cdef public Py_ssize_t dropped

    cdef bytes _frame(self, bint *more)
    cdef int _send_part(self, bytes data, int flags) except -1
