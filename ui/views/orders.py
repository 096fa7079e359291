"""Orders: the account's open orders with cancel and replace in place, cancel-all, and
the order history with filters."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import GatewayError, Order

__all__ = ["orders_frame", "render"]


def orders_frame(orders: list[Order]) -> pd.DataFrame:
    """Orders as a table in prices and shares (each symbol's own tick and lot)."""
    rows = []
    for o in orders:
        spec = session.spec(o.symbol)
        rows.append(
            {
                "id": o.id,
                "time": o.created_at.strftime("%H:%M:%S") if o.created_at else "",
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
        outcome = st.session_state.pop("orders_outcome", None)
        if outcome:
            kind, text = outcome
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
        chosen = cols[0].selectbox(
            "Order", list(by_id), format_func=lambda i: _label(by_id[i]), key="order_pick"
        )
        order = by_id[chosen]
        spec = session.spec(order.symbol)
        new_qty = cols[1].text_input("New qty", key="order_new_qty", placeholder="shares")
        new_price = cols[2].text_input("New price", key="order_new_price", placeholder="limit")
        if cols[3].button("Replace", key="order_replace"):
            _replace(order, new_qty, new_price)
            st.rerun(scope="fragment")
        if cols[4].button("Cancel", key="order_cancel", type="primary"):
            try:
                canceled = gw.cancel(order.id)
            except GatewayError as exc:
                st.session_state.orders_outcome = ("warn", f"Cancel #{order.id}: {exc.message}")
            else:
                st.session_state.orders_outcome = (
                    "ok",
                    f"Canceled #{order.id} ({spec.shares(order.open_qty)} {order.symbol}): "
                    f"{canceled.status}",
                )
            st.rerun(scope="fragment")
        if cols[5].button("Cancel all", key="order_cancel_all"):
            try:
                gone = gw.cancel_all()
            except GatewayError as exc:
                st.session_state.orders_outcome = ("warn", f"Cancel all: {exc.message}")
            else:
                st.session_state.orders_outcome = ("ok", f"Canceled {len(gone)} order(s)")
            st.rerun(scope="fragment")

    live()


def _replace(order: Order, qty_text: str, price_text: str) -> None:
    spec = session.spec(order.symbol)
    try:
        qty = spec.lots(Decimal(qty_text.strip())) if qty_text.strip() else None
        price = spec.ticks(Decimal(price_text.strip())) if price_text.strip() else None
    except (InvalidOperation, ValueError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else "not a number"
        st.session_state.orders_outcome = ("warn", f"Replace #{order.id}: {why}")
        return
    if qty is None and price is None:
        st.session_state.orders_outcome = ("warn", "Replace: give a new quantity and/or price")
        return
    if (qty is not None and qty <= 0) or (price is not None and price <= 0):
        st.session_state.orders_outcome = ("warn", "Replace: quantity and price must be > 0")
        return
    try:
        new = session.client().replace(order.id, qty, price)
    except GatewayError as exc:
        st.session_state.orders_outcome = ("warn", f"Replace #{order.id}: {exc.message}")
        return
    st.session_state.orders_outcome = (
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
