"""The terminal's pure logic: exact tick/lot conversions, ticket validation, the ladder,
FIFO P&L replay, latency quantiles and the venue's line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickplane.core.engine_metrics import histogram_quantile, parse
from tickplane.ui.gateway import Book, Execution, Level, Order
from tickplane.ui.pnl import realized_curve
from tickplane.ui.units import SymbolSpec, TicketError, validate_ticket
from tickplane.ui.views.monitoring import venue_text
from tickplane.ui.views.trade import ladder_frame

GOOG = SymbolSpec("GOOG", Decimal("0.01"), 1)
ODD = SymbolSpec("ODD", Decimal("0.05"), 100)


@given(st.integers(min_value=1, max_value=10**12))
def test_prices_round_trip_exactly(ticks: int) -> None:
    for spec in (GOOG, ODD, SymbolSpec("X", Decimal("0.0001"), 1)):
        price = spec.price(ticks)
        assert price is not None
        assert spec.ticks(price) == ticks
        assert spec.ticks(Decimal(spec.show(ticks).replace(",", ""))) == ticks


def test_a_price_between_ticks_or_a_partial_lot_is_refused() -> None:
    with pytest.raises(ValueError, match=r"tick size 0\.05"):
        ODD.ticks(Decimal("10.02"))
    with pytest.raises(ValueError, match="lot size 100"):
        ODD.lots(Decimal("150"))
    assert ODD.ticks(Decimal("10.05")) == 201
    assert ODD.lots(Decimal("300")) == 3
    assert ODD.money(7) == Decimal("35.00")  # 7 tick-lots = 7 * 0.05 * 100


def test_a_valid_ticket_converts_to_ticks_and_lots() -> None:
    t = validate_ticket(ODD, "sell", "stop_limit", "200", "10.05", "10.10", "day")
    assert t.body() == {
        "symbol": "ODD",
        "side": "sell",
        "type": "stop_limit",
        "qty": 2,
        "limit_price": 201,
        "stop_price": 202,
        "time_in_force": "day",
    }
    assert t.describe() == "sell 200 ODD stop 10.10 limit 10.05 day"
    # A price the type does not take is dropped, whatever was typed in its box.
    m = validate_ticket(GOOG, "buy", "market", "3", "not a price", "", "ioc")
    assert m.body() == {
        "symbol": "GOOG",
        "side": "buy",
        "type": "market",
        "qty": 3,
        "time_in_force": "ioc",
    }
    assert m.describe() == "buy 3 GOOG market ioc"


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        (("buy", "limit", "", "1.00"), {"quantity"}),
        (("buy", "limit", "0", "1.00"), {"quantity"}),
        (("buy", "limit", "-5", "1.00"), {"quantity"}),
        (("buy", "limit", "1.5", "1.00"), {"quantity"}),
        (("buy", "limit", "abc", "1.00"), {"quantity"}),
        (("buy", "limit", "10", ""), {"limit price"}),
        (("buy", "limit", "10", "1.001"), {"limit price"}),
        (("buy", "limit", "10", "-1"), {"limit price"}),
        (("buy", "limit", "10", "NaN"), {"limit price"}),
        (("buy", "stop", "10", "", ""), {"stop price"}),
        (("buy", "stop_limit", "x", "", "1.00"), {"quantity", "limit price"}),
        (("hold", "limit", "10", "1.00"), {"side"}),
        (("buy", "iceberg", "10", "1.00"), {"type"}),
    ],
)
def test_a_bad_ticket_names_every_problem(args: tuple[str, ...], fields: set[str]) -> None:
    with pytest.raises(TicketError) as err:
        validate_ticket(GOOG, *args)
    assert set(err.value.problems) == fields


def test_post_only_is_for_limit_orders() -> None:
    with pytest.raises(TicketError) as err:
        validate_ticket(GOOG, "buy", "market", "1", post_only=True)
    assert set(err.value.problems) == {"post_only"}
    assert validate_ticket(GOOG, "buy", "limit", "1", "1", post_only=True).body()["post_only"]


def test_the_ladder_puts_asks_above_bids_and_marks_the_best() -> None:
    book = Book(
        "GOOG",
        bids=(Level(10000, 5, 1), Level(9990, 7, 2)),
        asks=(Level(10010, 3, 1), Level(10020, 9, 3)),
        last_price=None,
    )
    frame = ladder_frame(book, GOOG)
    assert list(frame["price"]) == ["100.20", "100.10", "100.00", "99.90"]
    assert list(frame["best"]) == [False, True, True, False]
    assert list(frame["ask"].fillna(0)) == [9, 3, 0, 0]
    assert list(frame["bid"].fillna(0)) == [0, 0, 5, 7]


def _fill(minute: int, side: str, price: int, qty: int, symbol: str = "GOOG") -> Execution:
    at = datetime(2026, 1, 5, 14, 30, tzinfo=UTC) + timedelta(minutes=minute)
    return Execution(1, symbol, side, price, qty, "taker", at, minute)


def test_realized_pnl_replays_fills_first_in_first_out() -> None:
    curve = realized_curve(
        [
            _fill(0, "buy", 100, 10),
            _fill(1, "buy", 110, 10),
            _fill(2, "sell", 120, 15),  # 10 from 100 (+200), 5 from 110 (+50)
            _fill(3, "sell", 105, 10),  # 5 from 110 (-25), then short 5 @ 105
            _fill(4, "buy", 100, 5),  # covers the short: +25
            _fill(5, "buy", 50, 1, "AAPL"),  # opens only: no point
        ]
    )
    assert [(p[1], p[2]) for p in curve] == [("GOOG", 250), ("GOOG", 225), ("GOOG", 250)]


def test_histogram_quantiles_interpolate_like_prometheus() -> None:
    buckets = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.001 + 0.009 * 0.5)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 0.9)
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_a_metrics_scrape_sums_orders_and_latency_buckets() -> None:
    text = (
        "# TYPE tickplane_engine_orders_total counter\n"
        'tickplane_engine_orders_total{outcome="accepted"} 7\n'
        'tickplane_engine_orders_total{outcome="rejected"} 2\n'
        "# TYPE tickplane_engine_request_seconds histogram\n"
        'tickplane_engine_request_seconds_bucket{le="0.001"} 3\n'
        'tickplane_engine_request_seconds_bucket{le="+Inf"} 4\n'
        "tickplane_engine_request_seconds_count 4\n"
        "tickplane_engine_request_seconds_sum 0.01\n"
    )
    s = parse(text, 1.0)
    assert s.orders == 9
    assert s.buckets == ((0.001, 3.0), (float("inf"), 4.0))


def test_orders_parse_the_native_shape_and_tolerate_gaps() -> None:
    o = Order.parse(
        {
            "id": 42,
            "symbol": "GOOG",
            "side": "buy",
            "type": "limit",
            "qty": "10",
            "filled_qty": 4,
            "open_qty": 6,
            "limit_price": 58000,
            "status": "partially_filled",
            "created_at": "2026-01-05T14:30:00Z",
            "avg_fill_price": 57999.5,
        }
    )
    assert (o.id, o.qty, o.open_qty, o.is_open) == (42, 10, 6, True)
    assert o.created_at == datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    assert GOOG.show(o.avg_fill_price, extra=2) == "579.9950"
    bare = Order.parse({"order_id": 7, "status": "canceled"})
    assert (bare.id, bare.is_open, bare.limit_price, bare.created_at) == (7, False, None, None)


def test_the_venue_line_says_when_orders_fall_back_to_the_engine() -> None:
    internal = {"kind": "internal", "connected": True, "fallback_active": False}
    assert venue_text(internal) == "venue internal (connected)"
    down = {"kind": "alpaca", "connected": False, "unreachable": "reject"}
    assert venue_text({**down, "fallback_active": False}) == "venue alpaca (not connected)"
    assert venue_text({**down, "unreachable": "internal", "fallback_active": True}) == (
        "venue alpaca (not connected): its orders are matched here meanwhile "
        "(unreachable: internal)"
    )
    assert venue_text({}) == "venue ? (not connected)"  # an engine before these fields
