"""Orders: the account's open orders with cancel and replace in place, cancel-all, and
the order history with filters."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation

import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import GatewayError, Order

__all__ = ["orders_frame", "render"]

OUTCOME_SECONDS = 15.0


def orders_frame(orders: list[Order]) -> pd.DataFrame:
    """Orders as a table in prices and shares (each symbol's own tick and lot)."""
    rows = []
    for o in orders:
        spec = session.spec(o.symbol)
        rows.append(
            {
                "id": o.id,
                "time (UTC)": o.created_at.strftime("%H:%M:%S") if o.created_at else "",
                "symbol": o.symbol,
                "side": o.side,
                "type": o.type.replace("_", " "),
                "qty": spec.shares(o.qty),
                "filled": spec.shares(o.filled_qty),
                "open": spec.shares(o.open_qty),
                "limit": spec.show(o.limit_price),
                "stop": spec.show(o.stop_price),
                "avg fill": spec.show(o.avg_fill_price, extra=2),
                "tif": o.time_in_force,
                "status": o.status.replace("_", " "),
                "reason": o.reason or "",
                "client id": o.client_order_id or "",
            }
        )
    return pd.DataFrame(rows)


def render() -> None:
    st.subheader("Open orders")
    _open_orders()
    st.divider()
    st.subheader("History")
    _history()


def _label(o: Order) -> str:
    spec = session.spec(o.symbol)
    price = f" @ {spec.show(o.limit_price)}" if o.limit_price is not None else ""
    return f"#{o.id} {o.side} {spec.shares(o.open_qty)} {o.symbol} {o.type}{price}"


def _open_orders() -> None:
    @st.fragment(run_every=float(st.session_state.get("refresh", 2.0)))
    def live() -> None:
        gw = session.client()
        outcome = st.session_state.get("orders_outcome")
        if outcome:
            kind, text, at = outcome
            if time.monotonic() - at < OUTCOME_SECONDS:  # long enough to read, then gone
                (st.success if kind == "ok" else st.warning)(text)
        try:
            orders = [o for o in gw.orders(status="open") if o.is_open]
        except GatewayError as exc:
            session.report(exc, "open orders")
            return
        if not orders:
            st.caption("No open orders.")
            return
        st.dataframe(orders_frame(orders), hide_index=True, width="stretch")
        by_id = {o.id: o for o in orders}
        cols = st.columns([3, 1, 1, 1, 1, 1], vertical_alignment="bottom")
        cols[0].selectbox(
            "Order", list(by_id), format_func=lambda i: _label(by_id[i]), key="order_pick"
        )
        cols[1].text_input("New qty", key="order_new_qty", placeholder="shares")
        cols[2].text_input("New price", key="order_new_price", placeholder="limit")
        # Callbacks run before the rerun draws the table: it shows the result at once.
        cols[3].button("Replace", key="order_replace", on_click=_replace, args=(by_id,))
        cols[4].button(
            "Cancel", key="order_cancel", type="primary", on_click=_cancel, args=(by_id,)
        )
        cols[5].button("Cancel all", key="order_cancel_all", on_click=_cancel_all)

    live()


def _outcome(kind: str, text: str) -> None:
    st.session_state.orders_outcome = (kind, text, time.monotonic())


def _cancel(by_id: dict[int, Order]) -> None:
    order = by_id.get(st.session_state.get("order_pick", -1))
    if order is None:
        return
    spec = session.spec(order.symbol)
    try:
        canceled = session.client().cancel(order.id)
    except GatewayError as exc:
        _outcome("warn", f"Cancel #{order.id}: {exc.message}")
        return
    _outcome(
        "ok",
        f"Canceled #{order.id} ({spec.shares(order.open_qty)} {order.symbol}): {canceled.status}",
    )


def _cancel_all() -> None:
    try:
        gone = session.client().cancel_all()
    except GatewayError as exc:
        _outcome("warn", f"Cancel all: {exc.message}")
        return
    _outcome("ok", f"Canceled {len(gone)} order(s)")


def _replace(by_id: dict[int, Order]) -> None:
    order = by_id.get(st.session_state.get("order_pick", -1))
    if order is None:
        return
    qty_text = str(st.session_state.get("order_new_qty", ""))
    price_text = str(st.session_state.get("order_new_price", ""))
    spec = session.spec(order.symbol)
    try:
        qty = spec.lots(Decimal(qty_text.strip())) if qty_text.strip() else None
        price = spec.ticks(Decimal(price_text.strip())) if price_text.strip() else None
    except (InvalidOperation, ValueError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else "not a number"
        _outcome("warn", f"Replace #{order.id}: {why}")
        return
    if qty is None and price is None:
        _outcome("warn", "Replace: give a new quantity and/or price")
        return
    if (qty is not None and qty <= 0) or (price is not None and price <= 0):
        _outcome("warn", "Replace: quantity and price must be > 0")
        return
    try:
        new = session.client().replace(order.id, qty, price)
    except GatewayError as exc:
        _outcome("warn", f"Replace #{order.id}: {exc.message}")
        return
    _outcome(
        "ok",
        f"Replaced #{order.id}: {spec.shares(new.open_qty or new.qty)} @ "
        f"{spec.show(new.limit_price)} ({new.status})",
    )


def _history() -> None:
    cols = st.columns(3)
    status = cols[0].selectbox("Status", ["all", "open", "closed"], key="hist_status")
    symbols = [s.name for s in session.symbols()]
    symbol = cols[1].selectbox("Symbol", ["all", *symbols], key="hist_symbol")
    side = cols[2].selectbox("Side", ["all", "buy", "sell"], key="hist_side")
    with session.guarded("the order history"):
        orders = session.client().orders(
            status=status,
            symbol=None if symbol == "all" else symbol,
            side=None if side == "all" else side,
            limit=500,
        )
        if not orders:
            st.caption("No orders match.")
            return
        st.dataframe(orders_frame(orders), hide_index=True, width="stretch")
