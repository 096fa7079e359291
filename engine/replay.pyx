# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Replay a LOBSTER message file through a market-data `Book` and check it against the
orderbook file, row by row (the known-window rule of ../shared/contracts/lobster.md).

The loop runs without the GIL over plain int64 columns prepared by
`tickplane.engine.lobster`; parsing is not part of it.
"""

from libc.stdint cimport int8_t, int64_t, uint32_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from tickplane.engine.book cimport BUY, SELL, Book, BookSide, Level, book_side, side_best

import numpy as np

__all__ = ["Stepper", "known_window_replay"]

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


# --- the backtest's feed ---------------------------------------------------------------


cdef class Stepper:
    """The known-window replay one message at a time, for backtests.

    `run` applies messages in C until one needs Python: a trade (types 4 and 5), a
    change of the top of book (price or size of either best level), a message that may
    move one of the strategy's own resting orders (the watch ranges), or a message due
    at or after `until_ts` (not applied: order arrivals, timers and samples come first).
    The book stays exactly what `known_window_replay` makes of it.
    """

    cdef Book book
    cdef const int8_t[::1] types
    cdef const int64_t[::1] ids
    cdef const int64_t[::1] sizes
    cdef const int64_t[::1] prices
    cdef const int8_t[::1] directions
    cdef const int64_t[::1] ts
    cdef const int64_t[:, ::1] orderbook
    cdef int levels
    cdef Py_ssize_t n
    cdef public bint applied
    cdef public bint top_changed
    cdef public int64_t bid, bid_qty, ask, ask_qty

    def __init__(self, Book book, const int8_t[::1] types, const int64_t[::1] ids,
                 const int64_t[::1] sizes, const int64_t[::1] prices,
                 const int8_t[::1] directions, const int64_t[::1] ts,
                 const int64_t[:, ::1] orderbook, int levels):
        self.n = types.shape[0]
        if (ids.shape[0] != self.n or sizes.shape[0] != self.n or prices.shape[0] != self.n
                or directions.shape[0] != self.n or ts.shape[0] != self.n
                or orderbook.shape[0] != self.n or orderbook.shape[1] != 4 * levels):
            raise ValueError("message columns, times and orderbook rows differ in length")
        self.book = book
        self.types = types
        self.ids = ids
        self.sizes = sizes
        self.prices = prices
        self.directions = directions
        self.ts = ts
        self.orderbook = orderbook
        self.levels = levels
        self.applied = False
        self.top_changed = False
        self.bid = self.bid_qty = self.ask = self.ask_qty = 0

    def seed(self):
        """Seed the book from orderbook row 0 (message 0 is not applied again)."""
        if self.n == 0:
            return
        _window(self.book, BUY, self.orderbook[0], self.levels)
        _window(self.book, SELL, self.orderbook[0], self.levels)
        self._top()

    cdef inline bint _top(self) noexcept nogil:
        cdef Level* b = side_best(&self.book.c, &self.book.c.bids)
        cdef Level* a = side_best(&self.book.c, &self.book.c.asks)
        cdef int64_t bp = b.price if b != NULL else 0
        cdef int64_t bq = b.total if b != NULL else 0
        cdef int64_t ap = a.price if a != NULL else 0
        cdef int64_t aq = a.total if a != NULL else 0
        if bp == self.bid and bq == self.bid_qty and ap == self.ask and aq == self.ask_qty:
            return False
        self.bid, self.bid_qty, self.ask, self.ask_qty = bp, bq, ap, aq
        return True

    cpdef Py_ssize_t run(self, Py_ssize_t i, int64_t until_ts,
                         int64_t bid_lo, int64_t bid_hi, int64_t ask_lo, int64_t ask_hi,
                         bint every=False,
                         int64_t any_bid_lo=1, int64_t any_bid_hi=0,
                         int64_t any_ask_lo=1, int64_t any_ask_hi=0):
        """Apply messages from `i` on; return the index of the first that needs Python
        (`applied` says whether it was applied, `top_changed` whether the top moved),
        or the number of messages when none does.

        Watch ranges (empty when lo > hi): own buys rest in [bid_lo, bid_hi], own sells
        in [ask_lo, ask_hi]; any message on the bid side in [any_bid_lo, any_bid_hi]
        (or the ask side in [any_ask_lo, any_ask_hi]) is returned too. With `every`,
        every message is returned."""
        cdef Py_ssize_t n = self.n
        cdef int8_t t
        cdef int side
        cdef int64_t price
        cdef bint changed, watched
        with nogil:
            while i < n:
                if self.ts[i] >= until_ts:
                    self.applied = False
                    self.top_changed = False
                    return i
                t = self.types[i]
                price = self.prices[i]
                side = BUY if self.directions[i] == 1 else SELL
                _apply(self.book, t, self.ids[i], self.sizes[i], price, side)
                _window(self.book, BUY, self.orderbook[i], self.levels)
                _window(self.book, SELL, self.orderbook[i], self.levels)
                changed = self._top()
                if side == BUY:
                    # a cancel at one of our bid prices; a new buy at or over our asks
                    watched = ((t == 2 or t == 3) and bid_lo <= price <= bid_hi) or (
                        t == 1 and ask_lo <= ask_hi and price >= ask_lo) or (
                        any_bid_lo <= price <= any_bid_hi)
                else:
                    watched = ((t == 2 or t == 3) and ask_lo <= price <= ask_hi) or (
                        t == 1 and bid_lo <= bid_hi and price <= bid_hi) or (
                        any_ask_lo <= price <= any_ask_hi)
                if every or changed or watched or t == 4 or t == 5:
                    self.applied = True
                    self.top_changed = changed
                    return i
                i += 1
        return n
