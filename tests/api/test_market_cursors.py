"""MarketCursors, case by case: what the projection passes on of a symbol's tops and
deltas, and the holes it reports (the end-to-end behaviour, with a real engine and
gateway, is tests/api/test_ws_market_gaps.py; these are the arrangements a live test
cannot make on purpose: an engine without a log, a numbering that restarts, a top
adopted from GetBook, an engine from before `has_delta`)."""

from __future__ import annotations

from tickplane.api.market_cursors import MarketCursors
from tickplane.core.events import BookDelta, TopOfBook


def top(n: int, has_delta: bool = True, symbol: str = "AAPL") -> TopOfBook:
    return TopOfBook(n, n, symbol, [], [], None, [], has_delta)


def delta(n: int, symbol: str = "AAPL") -> BookDelta:
    return BookDelta(n, n, symbol, [], [])


def test_in_order_everything_passes_once() -> None:
    c = MarketCursors()
    assert c.resume_at("AAPL") is None
    assert c.take(top(1)) == (True, None)
    assert c.resume_at("AAPL") == 1  # its delta is due: a new stream starts at the top
    assert c.take(top(1)) == (False, None)  # that top again: passed on
    assert c.take(delta(1)) == (True, None)
    assert c.take(delta(1)) == (False, None)
    assert c.resume_at("AAPL") == 2
    assert c.take(top(2, has_delta=False)) == (True, None)
    assert c.take(top(3)) == (True, None)
    assert c.take(top(3, symbol="MSFT")) == (True, None)  # symbols are apart


def test_holes_are_reported_once_before_what_follows_them() -> None:
    c = MarketCursors()
    c.take(top(1, has_delta=False))
    assert c.take(top(4)) == (True, (2, 3))  # tops 2 and 3
    assert c.take(top(5)) == (True, (4, 4))  # 4's delta was due and never came
    assert c.take(delta(7)) == (False, (5, 7))  # 5's delta, 6, and 7's top: 7 is gone
    assert c.take(top(7)) == (False, None)
    assert c.take(top(8, has_delta=False)) == (True, None)


def test_a_numbering_that_restarts_starts_the_symbol_over() -> None:
    """An engine without a log resumes after a kill -9 from its snapshot's md_seq."""
    c = MarketCursors()
    c.take(top(50, has_delta=False))
    assert c.take(top(40)) == (True, None)
    assert c.take(delta(40)) == (True, None)
    assert c.take(top(41)) == (True, None)


def test_an_adopted_top_skips_what_the_stream_brings_up_to_it() -> None:
    c = MarketCursors()
    c.adopt(top(10, has_delta=False))
    c.adopt(top(3))  # a later subscriber's GetBook: the first one stands
    assert c.take(top(8)) == (False, None)  # the stream lags the engine's answer
    assert c.take(delta(8)) == (False, None)
    assert c.take(top(10)) == (False, None)
    assert c.take(delta(10)) == (False, None)  # in the adopted top already
    assert c.take(top(12)) == (True, (11, 11))
    assert c.take(top(5)) == (True, None)  # stale no more: a restarted numbering


def test_a_delta_from_an_engine_before_has_delta_passes_once() -> None:
    c = MarketCursors()
    c.take(top(1, has_delta=False))
    assert c.take(delta(1)) == (True, None)
    assert c.take(delta(1)) == (False, None)
    assert c.take(top(2, has_delta=False)) == (True, None)  # nothing was due: no hole


def test_a_delta_before_any_top_is_not_passed_on() -> None:
    assert MarketCursors().take(delta(3)) == (False, None)
