"""alpaca-py's TradingClient against the gateway: positions, account, clock, assets."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import AssetExchange, OrderSide, OrderStatus, PositionSide
from alpaca.trading.models import Order
from alpaca.trading.requests import ClosePositionRequest

from .conftest import STARTING_CASH, Trader
from .test_orders import error_of, limit


def cross(buyer: Trader, seller: Trader, symbol: str, qty: int, price: float) -> None:
    """`buyer` buys `qty` from `seller` at `price` (the seller's order rests first)."""
    seller.client.submit_order(limit(symbol, "sell", qty, price))
    taken = buyer.client.submit_order(limit(symbol, "buy", qty, price))
    assert taken.status == OrderStatus.FILLED


def test_positions_after_fills(trader: Trader, other: Trader) -> None:
    assert trader.client.get_all_positions() == []
    cross(trader, other, "GOOG", 10, 101.00)
    cross(trader, other, "GOOG", 10, 103.00)

    (long,) = trader.client.get_all_positions()
    assert (long.symbol, long.qty, long.side) == ("GOOG", "20", PositionSide.LONG)
    assert long.exchange == AssetExchange.NASDAQ
    assert (long.avg_entry_price, long.cost_basis) == ("102.00", "2040.00")
    assert (long.current_price, long.market_value, long.unrealized_pl) == (
        "103.00",
        "2060.00",
        "20.00",
    )
    assert trader.client.get_open_position("GOOG").qty == "20"
    assert trader.client.get_open_position(long.asset_id).symbol == "GOOG"

    (short,) = other.client.get_all_positions()
    assert (short.qty, short.side) == ("-20", PositionSide.SHORT)

    with pytest.raises(APIError) as flat:
        trader.client.get_open_position("AAPL")
    assert error_of(flat)[:2] == (404, 40410000)

    account = trader.client.get_account()
    cash = Decimal(STARTING_CASH) / 100 - Decimal("2040.00")
    assert Decimal(account.cash) == cash
    assert Decimal(account.equity) == cash + Decimal("2060.00")
    assert Decimal(account.long_market_value) == Decimal("2060.00")
    assert account.status == "ACTIVE" and account.account_number == trader.account
    assert not account.trading_blocked


def test_close_a_position_in_parts(trader: Trader, other: Trader) -> None:
    cross(trader, other, "AAPL", 10, 50.00)
    # Liquidity for the closing market sells: the other account bids for all of it.
    other.client.submit_order(limit("AAPL", "buy", 10, 49.50))

    half = trader.client.close_position("AAPL", ClosePositionRequest(percentage="50"))
    assert isinstance(half, Order)
    assert (half.side, half.type, half.qty, half.status) == (
        OrderSide.SELL,
        "market",
        "5",
        OrderStatus.FILLED,
    )
    assert trader.client.get_open_position("AAPL").qty == "5"

    two = trader.client.close_position("AAPL", ClosePositionRequest(qty="2"))
    assert two.qty == "2"
    assert trader.client.get_open_position("AAPL").qty == "3"

    for bad, status in (("4", 403), ("1.5", 422)):
        with pytest.raises(APIError) as refused:
            trader.client.close_position("AAPL", ClosePositionRequest(qty=bad))
        assert error_of(refused)[0] == status

    rest = trader.client.close_position("AAPL")
    assert rest.qty == "3"
    assert trader.client.get_all_positions() == []
    with pytest.raises(APIError) as gone:
        trader.client.close_position("AAPL")
    assert error_of(gone)[:2] == (404, 40410000)
    other.client.cancel_orders()


def test_close_all_positions(trader: Trader, other: Trader) -> None:
    cross(trader, other, "GOOG", 4, 70.00)
    cross(other, trader, "AAPL", 6, 30.00)  # trader is short 6 AAPL
    other.client.submit_order(limit("GOOG", "buy", 4, 69.00))
    other.client.submit_order(limit("AAPL", "sell", 6, 31.00))
    resting = trader.client.submit_order(limit("GOOG", "buy", 1, 1.00))

    results = trader.client.close_all_positions(cancel_orders=True)
    by_symbol = {r.symbol: r for r in results}
    assert set(by_symbol) == {"GOOG", "AAPL"}
    assert all(r.status == 200 for r in results)
    goog, aapl = by_symbol["GOOG"].body, by_symbol["AAPL"].body
    assert isinstance(goog, Order) and isinstance(aapl, Order)
    assert (goog.side, goog.qty) == (OrderSide.SELL, "4")
    assert (aapl.side, aapl.qty) == (OrderSide.BUY, "6")
    assert trader.client.get_all_positions() == []
    assert trader.client.get_order_by_id(resting.id).status == OrderStatus.CANCELED
    other.client.cancel_orders()


def test_positions_are_isolated(
    trader: Trader, other: Trader, make_trader: Callable[[], Trader]
) -> None:
    cross(trader, other, "GOOG", 1, 80.00)
    stranger = make_trader()
    assert stranger.client.get_all_positions() == []
    for call in (
        lambda: stranger.client.get_open_position("GOOG"),
        lambda: stranger.client.close_position("GOOG"),
    ):
        with pytest.raises(APIError) as denied:
            call()
        assert error_of(denied)[:2] == (404, 40410000)
    assert stranger.client.close_all_positions() == []
    assert trader.client.get_open_position("GOOG").qty == "1"
    assert other.client.get_open_position("GOOG").qty == "-1"


def test_clock_and_assets(trader: Trader) -> None:
    clock = trader.client.get_clock()
    assert clock.is_open and clock.next_close > clock.timestamp

    assets = {a.symbol: a for a in trader.client.get_all_assets()}
    assert set(assets) == {"GOOG", "AAPL", "BRK", "MSFT", "TSLA"}
    brk = assets["BRK"]
    assert (brk.tradable, brk.fractionable, brk.exchange) == (True, False, AssetExchange.NASDAQ)
    assert (brk.price_increment, brk.min_order_size, brk.min_trade_increment) == (0.05, 10, 10)
    assert trader.client.get_asset("GOOG").id == assets["GOOG"].id
    assert trader.client.get_asset(assets["GOOG"].id).symbol == "GOOG"
    with pytest.raises(APIError) as unknown:
        trader.client.get_asset("NOPE")
    assert error_of(unknown)[:2] == (404, 40410000)
