"""alpaca-py's order classes and trailing stops against the gateway: bracket, OTO, OCO
(legs rendered as Alpaca's), trailing stops that follow the market."""

from __future__ import annotations

from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from .conftest import Trader
from .test_orders import limit
from .test_positions import cross


def nested(trader: Trader, order: Order) -> Order:
    got = trader.client.get_order_by_id(order.id, GetOrderByIdRequest(nested=True))
    assert isinstance(got, Order)
    return got


def test_a_bracket_works_its_legs_after_the_entry_fills(trader: Trader, other: Trader) -> None:
    entry = trader.client.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=100,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=90),
        )
    )
    assert (entry.order_class, entry.status) == (OrderClass.BRACKET, OrderStatus.NEW)
    assert entry.legs is not None
    take_profit, stop_loss = entry.legs
    assert (take_profit.type, take_profit.side, take_profit.limit_price) == (
        "limit",
        OrderSide.SELL,
        "110.00",
    )
    assert (stop_loss.type, stop_loss.stop_price) == ("stop", "90.00")
    assert {take_profit.status, stop_loss.status} == {OrderStatus.HELD}
    assert {take_profit.order_class, stop_loss.order_class} == {OrderClass.BRACKET}

    # Nested listing: one entry, its legs inside; flat listing: all three.
    listed = trader.client.get_orders(GetOrdersRequest(nested=True, symbols=["MSFT"]))
    assert [o.id for o in listed] == [entry.id]
    assert len(trader.client.get_orders(GetOrdersRequest(symbols=["MSFT"]))) == 3

    other.client.submit_order(limit("MSFT", "sell", 10, 100))  # fills the entry
    filled = nested(trader, entry)
    assert filled.status == OrderStatus.FILLED
    assert filled.legs is not None
    assert {leg.status for leg in filled.legs} == {OrderStatus.NEW}

    # A stop-loss leg's stop can be replaced until it triggers.
    moved = trader.client.replace_order_by_id(stop_loss.id, ReplaceOrderRequest(stop_price=95))
    assert moved.stop_price == "95.00"

    other.client.submit_order(limit("MSFT", "buy", 10, 110))  # takes the profit
    tp = trader.client.get_order_by_id(take_profit.id)
    sl = trader.client.get_order_by_id(stop_loss.id)
    assert (tp.status, tp.filled_qty) == (OrderStatus.FILLED, "10")
    assert sl.status == OrderStatus.CANCELED  # one cancels the other
    assert trader.client.get_all_positions() == []


def test_oto_and_oco(trader: Trader, other: Trader) -> None:
    oto = trader.client.submit_order(
        MarketOrderRequest(
            symbol="MSFT",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=50, limit_price=49),
        )
    )
    assert oto.order_class == OrderClass.OTO
    assert oto.legs is not None and len(oto.legs) == 1
    assert (oto.legs[0].type, oto.legs[0].stop_price, oto.legs[0].limit_price) == (
        "stop_limit",
        "50.00",
        "49.00",
    )
    trader.client.cancel_orders()

    cross(trader, other, "MSFT", 4, 60)  # a long position for the OCO's exits
    oco = trader.client.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=4,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=70),
            stop_loss=StopLossRequest(stop_price=55),
        )
    )
    assert (oco.order_class, oco.type, oco.limit_price) == (OrderClass.OCO, "limit", "70.00")
    assert oco.legs is not None
    (stop,) = oco.legs
    assert (stop.type, stop.stop_price, stop.status) == ("stop", "55.00", OrderStatus.NEW)
    trader.client.cancel_order_by_id(oco.id)  # canceling the limit cancels its stop
    assert trader.client.get_order_by_id(stop.id).status == OrderStatus.CANCELED


def test_a_trailing_stop_follows_the_last_trade(trader: Trader, other: Trader) -> None:
    cross(other, trader, "TSLA", 1, 200)  # a last trade to trail from
    by_price = trader.client.submit_order(
        TrailingStopOrderRequest(
            symbol="TSLA", qty=3, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_price=2
        )
    )
    assert (by_price.type, by_price.trail_price, by_price.stop_price) == (
        "trailing_stop",
        "2.00",
        "198.00",
    )
    by_percent = trader.client.submit_order(
        TrailingStopOrderRequest(
            symbol="TSLA",
            qty=1,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            trail_percent=1.5,
        )
    )
    assert (by_percent.trail_percent, by_percent.stop_price) == ("1.5", "197.00")

    assert by_price.hwm == "200.00"  # the last trade it trails from
    cross(other, trader, "TSLA", 1, 210)  # the sell's watermark rises to 210
    moved = trader.client.get_order_by_id(by_price.id)
    assert (moved.stop_price, moved.hwm) == ("208.00", "210.00")
    assert trader.client.get_order_by_id(by_percent.id).stop_price == "206.85"
    listed = {o.id: o for o in trader.client.get_orders()}
    assert (listed[by_price.id].stop_price, listed[by_price.id].hwm) == ("208.00", "210.00")

    # Alpaca's `trail` replaces the trail in the order's own terms (price or percent).
    wider = trader.client.replace_order_by_id(by_price.id, ReplaceOrderRequest(trail=5, qty=2))
    assert (wider.trail_price, wider.stop_price, wider.qty) == ("5.00", "205.00", "2")
    tighter = trader.client.replace_order_by_id(by_percent.id, ReplaceOrderRequest(trail=1))
    assert (tighter.trail_percent, tighter.stop_price) == ("1", "207.90")
    trader.client.cancel_orders()
    # closed, the engine lists them no more: the projection has the new trails
    # (OrderReplaced's), not the ones they were placed with
    closed = trader.client.get_order_by_id(by_price.id)
    assert (closed.status, closed.trail_price, closed.trail_percent) == (
        OrderStatus.CANCELED,
        "5.00",
        None,
    )
    closed = trader.client.get_order_by_id(by_percent.id)
    assert (closed.status, closed.trail_price, closed.trail_percent) == (
        OrderStatus.CANCELED,
        None,
        "1",
    )


def test_a_closed_bracket_reads_as_one(trader: Trader, other: Trader) -> None:
    """Once every order of a bracket is closed the engine no longer lists it: its class
    and legs come from the projection (a partly filled entry, canceled, whose
    take-profit took all the entry had filled)."""
    entry = trader.client.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=120,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=130),
            stop_loss=StopLossRequest(stop_price=115),
        )
    )
    assert entry.legs is not None
    take_profit, stop_loss = entry.legs
    other.client.submit_order(limit("MSFT", "sell", 4, 120))  # the entry fills 4 of 10
    working = nested(trader, entry)
    assert working.legs is not None
    assert [(leg.status, leg.qty) for leg in working.legs] == [(OrderStatus.NEW, "10")] * 2
    other.client.submit_order(limit("MSFT", "buy", 4, 130))  # the take-profit takes all 4
    trader.client.cancel_order_by_id(entry.id)

    closed = nested(trader, entry)
    assert (closed.order_class, closed.status, closed.filled_qty) == (
        OrderClass.BRACKET,
        OrderStatus.CANCELED,
        "4",
    )
    assert closed.legs is not None
    assert [(leg.id, leg.order_class, leg.status, leg.filled_qty) for leg in closed.legs] == [
        (take_profit.id, OrderClass.BRACKET, OrderStatus.FILLED, "4"),
        (stop_loss.id, OrderClass.BRACKET, OrderStatus.CANCELED, "0"),
    ]
    assert (closed.legs[0].limit_price, closed.legs[1].stop_price) == ("130.00", "115.00")
    # a leg read alone keeps its class; a nested list of closed orders has one entry
    assert trader.client.get_order_by_id(stop_loss.id).order_class == OrderClass.BRACKET
    listed = trader.client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.CLOSED, nested=True, symbols=["MSFT"])
    )
    assert [(o.id, len(o.legs or [])) for o in listed] == [(entry.id, 2)]
    assert trader.client.get_all_positions() == []


def test_a_closed_oco_reads_as_one(trader: Trader, other: Trader) -> None:
    cross(trader, other, "MSFT", 4, 140)  # a long position for the OCO's exits
    oco = trader.client.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=4,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=150),
            stop_loss=StopLossRequest(stop_price=135),
        )
    )
    assert oco.legs is not None
    (stop,) = oco.legs
    other.client.submit_order(limit("MSFT", "buy", 4, 150))  # the limit fills: stop canceled

    closed = nested(trader, oco)
    assert (closed.order_class, closed.status, closed.filled_avg_price) == (
        OrderClass.OCO,
        OrderStatus.FILLED,
        "150.00",
    )
    assert closed.legs is not None
    assert [(leg.id, leg.order_class, leg.type, leg.status) for leg in closed.legs] == [
        (stop.id, OrderClass.OCO, "stop", OrderStatus.CANCELED)
    ]
    assert trader.client.get_order_by_id(stop.id).stop_price == "135.00"
    assert trader.client.get_all_positions() == []
