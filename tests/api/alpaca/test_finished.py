"""`GET /v2/orders/{id}` and `/v2/orders:by_client_order_id` for a closed order the
gateway no longer holds (its `max_closed_orders`, here 1 per account): alpaca-py sees
its final state, which the gateway asked the engine for (engine/finished.py).

An engine and gateway of the module's own, so the projection's bound is this one's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from tests.engine.conftest import EngineProcess, engine_settings

from .conftest import STARTING_CASH, SYMBOLS, Gateway, Trader, serve, trader_maker


@pytest.fixture(scope="module")
def forgetful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work: Path = tmp_path_factory.mktemp("alpaca-finished")
    eng = EngineProcess(
        work,
        engine_settings(
            work, "alpaca-finished", symbols=SYMBOLS, starting_cash=STARTING_CASH, fsync="none"
        ),
    )
    eng.start()
    try:
        with serve(eng, work / "gateway", max_closed_orders=1) as gw:
            yield gw
    finally:
        if eng.stop() != 0:
            eng.kill()


def limit(side: str, qty: float, price: float) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol="AAPL", qty=qty, side=OrderSide(side), time_in_force=TimeInForce.GTC,
        limit_price=price,
    )  # fmt: skip


def close_another(t: Trader) -> None:
    """One more closed order for `t`: the gateway keeps only that one."""
    later = t.client.submit_order(limit("buy", 1, 1.00))
    t.client.cancel_order_by_id(later.id)


def test_a_closed_order_the_gateway_dropped_reads_from_the_engine(forgetful: Gateway) -> None:
    make = trader_maker(forgetful)
    trader, other = make(), make()
    ask = other.client.submit_order(limit("sell", 5, 150.05))
    taker = trader.client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY,
                           time_in_force=TimeInForce.DAY, client_order_id="fin-a")
    )  # fmt: skip
    assert taker.status == OrderStatus.FILLED
    other.client.cancel_order_by_id(ask.id)  # 3 filled, 2 canceled
    close_another(trader)
    close_another(other)

    got = trader.client.get_order_by_id(taker.id)
    assert (got.id, got.status, got.filled_qty, got.filled_avg_price, got.qty) == (
        taker.id, OrderStatus.FILLED, "3", "150.05", "3"
    )  # fmt: skip
    assert got.client_order_id == "fin-a" and got.filled_at is not None
    assert trader.client.get_order_by_client_id("fin-a").id == taker.id
    canceled = other.client.get_order_by_id(ask.id)
    assert (canceled.status, canceled.filled_qty, canceled.qty) == (OrderStatus.CANCELED, "3", "5")
    assert canceled.limit_price == "150.05"
    with pytest.raises(APIError) as theirs:
        other.client.get_order_by_id(taker.id)
    assert theirs.value.status_code == 404
