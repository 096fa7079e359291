"""The projection's records (tickplane.api.projection) in Alpaca's shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from tickplane.api.alpaca.ids import asset_uuid, order_uuid
from tickplane.api.alpaca.schemas import AlpacaAsset, AlpacaOrder, AlpacaPosition
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.projection import OrderRecord
from tickplane.core import wire
from tickplane.core.events import OrderAccepted

__all__ = [
    "EXCHANGE",
    "Link",
    "asset",
    "iso",
    "order",
    "order_status",
    "position",
    "waiting_leg",
]

# alpaca-py accepts only its own exchange names; Tickplane's books are NASDAQ-style
# (the LOBSTER data it replays is NASDAQ's).
EXCHANGE: Final = "NASDAQ"


def iso(ns: int) -> str:
    """Engine time (int ns since the epoch) as RFC 3339 in UTC, microseconds."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def order_status(o: OrderRecord) -> str:
    """Alpaca's status word for a Tickplane order: an untriggered stop is `new` in
    Alpaca (Tickplane says `held`); the others are the same words. (Nothing expires:
    the engine has no session close, `day` behaves as `gtc`.)"""
    return "new" if o.status == "held" else o.status


@dataclass(frozen=True)
class Link:
    """An order's class, its place in a bracket, OTO or OCO, its trail and its stop.
    The projection's record carries them (a trailing stop's stop as of its last
    event); the engine's view of an open order has a trailing stop's stop as it is
    now, and the OrderAccepted of a submission has them before the projection does."""

    order_class: str | None
    parent_id: int | None
    leg: str | None
    trail_price: int | None
    trail_percent: float | None
    stop_price: int | None
    hwm: int | None = None

    @classmethod
    def of(cls, source: wire.OrderView | OrderAccepted | OrderRecord) -> Link:
        return cls(
            source.order_class,
            source.parent_id,
            source.leg,
            source.trail_price,
            source.trail_percent,
            source.stop_price,
            None if isinstance(source, OrderAccepted) else source.hwm,
        )


def waiting_leg(o: OrderRecord) -> bool:
    """Whether `o` is a leg that works nothing while it waits for its parent's fills
    (Alpaca: `held`): a bracket's or OTO's leg before activation, or after its sibling
    took all the parent had filled so far. An OCO's stop works from the start."""
    return o.is_leg and o.status == "held" and o.open_qty == 0 and o.order_class != "oco"


def order(
    o: OrderRecord,
    units: SymbolUnits,
    view: Link | None = None,
    *,
    held: bool = False,
    legs: list[AlpacaOrder] | None = None,
) -> AlpacaOrder:
    """One order in Alpaca's shape. `view` is what the engine says of its class, legs
    and trail (see Link); `held` marks a leg that waits for its parent to fill; `legs`
    are its legs, rendered."""
    status = "held" if held else order_status(o)
    trail_percent = None
    if view is not None and view.trail_percent is not None:
        trail_percent = f"{view.trail_percent:g}"
    updated = iso(o.updated_ns or o.created_ns)
    avg = None
    if o.filled_qty:
        avg = units.decimal_string(Decimal(o.filled_notional) / o.filled_qty * units.tick)
    return AlpacaOrder(
        id=order_uuid(o.id),
        client_order_id=o.client_order_id or order_uuid(o.id),
        created_at=iso(o.created_ns),
        updated_at=updated,
        submitted_at=iso(o.created_ns),
        filled_at=updated if status == "filled" else None,
        canceled_at=updated if status == "canceled" else None,
        failed_at=updated if status == "rejected" else None,
        asset_id=asset_uuid(o.symbol),
        symbol=o.symbol,
        qty=units.shares(o.qty),
        filled_qty=units.shares(o.filled_qty),
        filled_avg_price=avg,
        order_type=o.type,
        type=o.type,
        side=o.side,
        time_in_force=o.time_in_force,
        limit_price=units.price(o.limit_price),
        # a trailing stop's stop moves with the market: the engine's view has it now
        stop_price=units.price(
            view.stop_price if view is not None and view.stop_price is not None else o.stop_price
        ),
        status=status,
        order_class=(view.order_class if view is not None else None) or "simple",
        trail_price=None if view is None else units.price(view.trail_price),
        trail_percent=trail_percent,
        hwm=units.price(view.hwm if view is not None and view.hwm is not None else o.hwm),
        legs=legs,
    )


def position(p: wire.PositionView, units: SymbolUnits, held: int = 0) -> AlpacaPosition:
    """A non-flat position as the engine reports it; `held` is the lots the account's
    open orders on the closing side already claim."""
    avg = Decimal(p.cost_basis) / p.qty * units.tick
    market_value = None if p.last_price is None else Decimal(p.qty * p.last_price)
    unrealized = None if market_value is None else market_value - p.cost_basis
    plpc = None
    if unrealized is not None and p.cost_basis:
        plpc = f"{unrealized / abs(Decimal(p.cost_basis)):.6f}"
    available = max(abs(p.qty) - held, 0) * (1 if p.qty > 0 else -1)
    return AlpacaPosition(
        asset_id=asset_uuid(p.symbol),
        symbol=p.symbol,
        exchange=EXCHANGE,
        avg_entry_price=units.decimal_string(avg),
        qty=units.shares(p.qty),
        qty_available=units.shares(available),
        side="long" if p.qty > 0 else "short",
        market_value=None if market_value is None else units.money(market_value),
        cost_basis=units.money(p.cost_basis),
        unrealized_pl=None if unrealized is None else units.money(unrealized),
        unrealized_plpc=plpc,
        current_price=units.price(p.last_price),
    )


def asset(units: SymbolUnits, tradable: bool = True) -> AlpacaAsset:
    """A tradable symbol as Alpaca's asset."""
    return AlpacaAsset(
        id=asset_uuid(units.symbol),
        exchange=EXCHANGE,
        symbol=units.symbol,
        name=units.symbol,
        tradable=tradable,
        min_order_size=str(units.lot),
        min_trade_increment=str(units.lot),
        price_increment=f"{units.tick.normalize():f}",
    )
