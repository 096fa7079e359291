"""The projection's records as the API's schemas (engine ns timestamps as datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime

from tickplane.api.projection import Execution, OrderRecord, Position, Projection
from tickplane.api.schemas import (
    AccountPublic,
    ExecutionPublic,
    OrderPublic,
    PositionPublic,
    TradePublic,
)
from tickplane.core.events import Trade

__all__ = ["account_view", "execution_view", "order_view", "position_view", "trade_view", "ts"]


def ts(ns: int) -> datetime:
    """An engine timestamp (int ns since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(ns / 1e9, UTC)


#: The classes whose parents have legs.
CLASSES_WITH_LEGS = frozenset({"bracket", "oto", "oco"})


def order_view(
    o: OrderRecord, status: str | None = None, projection: Projection | None = None
) -> OrderPublic:
    """An order as the native API shows it; with `projection`, a parent's legs too."""
    legs = None
    if projection is not None and o.order_class in CLASSES_WITH_LEGS and o.parent_id is None:
        legs = [order_view(leg) for leg in projection.legs(o.account, o.id)] or None
    return OrderPublic(
        id=o.id,
        client_order_id=o.client_order_id,
        account=o.account,
        symbol=o.symbol,
        side=o.side,  # type: ignore[arg-type]
        type=o.type,  # type: ignore[arg-type]
        qty=o.qty,
        filled_qty=o.filled_qty,
        open_qty=o.open_qty,
        avg_fill_price=o.avg_fill_price,
        limit_price=o.limit_price,
        stop_price=o.stop_price,
        time_in_force=o.time_in_force,  # type: ignore[arg-type]
        post_only=o.post_only,
        status=status or o.status,  # type: ignore[arg-type]
        reason=o.reason,
        created_at=ts(o.created_ns) if o.created_ns else None,
        updated_at=ts(o.updated_ns) if o.updated_ns else None,
        seq=o.seq,
        order_class=o.order_class,  # type: ignore[arg-type]
        parent_id=o.parent_id,
        leg=o.leg,  # type: ignore[arg-type]
        legs=legs,
        trail_price=o.trail_price,
        trail_percent=o.trail_percent,
        hwm=o.hwm,
    )


def execution_view(e: Execution) -> ExecutionPublic:
    return ExecutionPublic(
        seq=e.seq,
        order_id=e.order_id,
        client_order_id=e.client_order_id,
        symbol=e.symbol,
        side=e.side,  # type: ignore[arg-type]
        price=e.price,
        qty=e.qty,
        liquidity=e.liquidity,
        ts=ts(e.ts_event),
    )


def position_view(p: Position, last_price: int | None) -> PositionPublic:
    value = None if last_price is None else p.qty * last_price
    return PositionPublic(
        symbol=p.symbol,
        qty=p.qty,
        cost_basis=p.cost_basis,
        avg_entry_price=p.avg_entry_price,
        last_price=last_price,
        market_value=value,
        unrealized_pnl=None if value is None else value - p.cost_basis,
        realized_pnl=p.realized_pnl,
    )


def account_view(projection: Projection, account: str) -> AccountPublic:
    positions = [
        position_view(p, projection.last_price(p.symbol)) for p in projection.positions(account)
    ]
    cash = projection.cash(account)
    # A position without a last price is valued at its cost: no P&L is invented.
    value = sum(p.market_value if p.market_value is not None else p.cost_basis for p in positions)
    return AccountPublic(
        account=account,
        cash=cash,
        realized_pnl=sum(p.realized_pnl for p in positions),
        unrealized_pnl=sum(p.unrealized_pnl or 0 for p in positions),
        equity=cash + value,
        open_orders=len(projection.orders(account, status="open")),
        trading_blocked=projection.killed(account),
        positions=positions,
    )


def trade_view(t: Trade) -> TradePublic:
    return TradePublic(
        seq=t.seq,
        price=t.price,
        qty=t.qty,
        taker_side=t.taker_side,  # type: ignore[arg-type]
        ts=ts(t.ts_event),
    )
