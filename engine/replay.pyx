# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Replay a LOBSTER message file through a market-data `Book` and check it against the
orderbook file, row by row (the known-window rule of ../shared/contracts/lobster.md).

The loop runs without the GIL over plain int64 columns prepared by
`tickplane.engine.lobster`; parsing is not part of it.
"""

from libc.stdint cimport int8_t, int64_t, uint32_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from tickplane.engine.book cimport BUY, SELL, Book, BookSide, Level, book_side

import numpy as np

__all__ = ["known_window_replay"]

# LOBSTER's placeholders for levels the book does not have.
cdef int64_t DUMMY_ASK = 9999999999
cdef int64_t DUMMY_BID = -9999999999


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline bint _real(int64_t price) noexcept nogil:
    return price != DUMMY_ASK and price != DUMMY_BID and price > 0


cdef bint _side_matches(Book book, int side, const int64_t[::1] row, int levels) noexcept nogil:
    """Do the levels the book knows on `side` equal the row's first levels?"""
    cdef BookSide* s = book_side(&book.c, side)
    cdef uint32_t k = s.n if s.n < <uint32_t>levels else <uint32_t>levels
    cdef uint32_t j
    cdef int off = 2 if side == BUY else 0
    cdef Level* lv
    for j in range(k):
        lv = &book.c.lpool.items[s.refs[s.n - 1 - j].level]
        if lv.price != row[4 * j + off] or lv.total != row[4 * j + off + 1]:
            return False
    return True


cdef void _window(Book book, int side, const int64_t[::1] row, int levels) noexcept nogil:
    """Forget levels below the window, adopt the row's levels the book cannot know."""
    cdef BookSide* s
    cdef int j
    cdef int off = 2 if side == BUY else 0
    book.c_trim(side, levels)
    s = book_side(&book.c, side)
    for j in range(<int>s.n, levels):
        if _real(row[4 * j + off]) and row[4 * j + off + 1] > 0:
            book.c_seed(side, row[4 * j + off], row[4 * j + off + 1])


cdef inline void _apply(Book book, int8_t t, int64_t oid, int64_t size, int64_t price,
                        int side) noexcept nogil:
    if t == 1:
        if book.c_add(<unsigned long long>oid, side, price, size) < 0:
            # An id reused while an order with it is still live: treat as the level's.
            book.c_seed(side, price, size)
    elif t == 2 or t == 4:
        book.c_reduce(<unsigned long long>oid, side, price, size)
    elif t == 3:
        if book.c_delete(<unsigned long long>oid, side, price) < 0:
            book._reduce_level(side, price, size)
    # 5 (hidden execution) and 7 (trading halt) change nothing visible.


def known_window_replay(
    Book book,
    const int8_t[::1] types,
    const int64_t[::1] ids,
    const int64_t[::1] sizes,
    const int64_t[::1] prices,
    const int8_t[::1] directions,
    const int64_t[:, ::1] orderbook,
    int levels,
    bint compare=True,
    Py_ssize_t start=0,
    Py_ssize_t stop=-1,
):
    """Replay messages [start, stop) into `book`, comparing each row.

    Row 0 is the state before the replay: when `start` is 0 the book is seeded from it
    and message 0 is not applied again. Chunks ([0, k), [k, 2k), ...) on the same book
    give the same result as one call. Returns a dict: rows_compared, rows_matched,
    first_mismatch (row index or -1), seconds (the loop). With `compare=False` the rows
    are only used to keep the window (forget / adopt levels), which a level-N mirror
    must do anyway.
    """
    cdef Py_ssize_t n = types.shape[0]
    cdef Py_ssize_t i, end = n if stop < 0 or stop > n else stop
    cdef int side
    cdef long long compared = 0, matched = 0, first = -1
    cdef double t0, t1
    if orderbook.shape[0] != n or orderbook.shape[1] != 4 * levels:
        raise ValueError(
            f"orderbook has shape {orderbook.shape[0]}x{orderbook.shape[1]}, "
            f"expected {n}x{4 * levels}")
    if n == 0 or start >= end:
        return {"rows_compared": 0, "rows_matched": 0, "first_mismatch": -1, "seconds": 0.0}
    with nogil:
        t0 = _now()
        if start == 0:
            _window(book, BUY, orderbook[0], levels)
            _window(book, SELL, orderbook[0], levels)
            start = 1
        for i in range(start, end):
            side = BUY if directions[i] == 1 else SELL
            _apply(book, types[i], ids[i], sizes[i], prices[i], side)
            if compare:
                compared += 1
                if (_side_matches(book, BUY, orderbook[i], levels)
                        and _side_matches(book, SELL, orderbook[i], levels)):
                    matched += 1
                elif first < 0:
                    first = i
            _window(book, BUY, orderbook[i], levels)
            _window(book, SELL, orderbook[i], levels)
        t1 = _now()
    return {"rows_compared": compared, "rows_matched": matched, "first_mismatch": first,
            "seconds": t1 - t0}
