"""Trade: the symbol picker, the order ticket, the live book ladder, last trades and a
price chart."""

from __future__ import annotations

import os
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import Book, GatewayError, NotAvailable, Order, Trade
from tickplane.ui.units import ORDER_TYPES, SIDES, TIFS, SymbolSpec, TicketError, validate_ticket

__all__ = ["ladder_frame", "render"]

DEPTH = 10
WINDOWS = {"1 min": 60, "5 min": 300, "15 min": 900, "all": None}
_MID_SAMPLES = 2000  # per symbol, per session: ~1 h at the default refresh


def _symbol_names(specs: list[SymbolSpec]) -> list[str]:
    if specs:
        return [s.name for s in specs]
    env = os.environ.get("TICKPLANE_UI_SYMBOLS", "GOOG,AAPL")
    return [s.strip().upper() for s in env.split(",") if s.strip()]


def render() -> None:
    specs = session.symbols()
    names = _symbol_names(specs)
    top = st.columns([2, 5])
    name = top[0].selectbox("Symbol", names, key="symbol")
    spec = session.spec(name)
    if not specs:
        top[1].caption(
            "The gateway lists no symbols: prices assume a tick of "
            f"{spec.tick_size} and quantities a lot of {spec.lot_size}."
        )
    else:
        top[1].caption(f"tick {spec.tick_size} · lot {spec.lot_size} share(s)")
    left, right = st.columns([1, 2], gap="large")
    with left:
        _ticket(spec)
    with right:
        _market(spec)


# -- the ticket -------------------------------------------------------------------------------


def _ticket(spec: SymbolSpec) -> None:
    st.subheader("Order ticket")
    with st.form("ticket", clear_on_submit=False, border=True):
        side = st.radio("Side", SIDES, horizontal=True, key="ticket_side")
        order_type = st.selectbox(
            "Type", ORDER_TYPES, key="ticket_type", format_func=lambda t: t.replace("_", " ")
        )
        qty = st.text_input("Quantity (shares)", key="ticket_qty", placeholder="100")
        cols = st.columns(2)
        limit = cols[0].text_input(
            "Limit price", key="ticket_limit", help="limit and stop-limit orders"
        )
        stop = cols[1].text_input("Stop price", key="ticket_stop", help="stop and stop-limit")
        cols = st.columns(2)
        tif = cols[0].selectbox("Time in force", TIFS, key="ticket_tif")
        cols[1].markdown("&nbsp;")
        post_only = cols[1].checkbox("Post-only", key="ticket_post_only")
        sent = st.form_submit_button(
            "Send order", type="primary", width="stretch", key="ticket_send"
        )
    if sent:
        try:
            ticket = validate_ticket(spec, side, order_type, qty, limit, stop, tif, post_only)
        except TicketError as exc:
            st.session_state.ticket_result = ("error", exc.problems)
        else:
            try:
                order = session.client().submit(ticket.body())
            except GatewayError as exc:
                st.session_state.ticket_result = ("refused", {ticket.describe(): exc.message})
            else:
                st.session_state.ticket_result = (
                    "sent",
                    {ticket.describe(): _outcome(order, spec)},
                )
    result = st.session_state.get("ticket_result")
    if result:
        kind, lines = result
        text = "\n".join(f"- **{k}**: {v}" for k, v in lines.items())
        if kind == "sent":
            st.success("Sent\n\n" + text, icon=":material/check_circle:")
        elif kind == "refused":
            st.warning("Refused by the platform\n\n" + text, icon=":material/block:")
        else:
            st.error("Not sent: fix the ticket\n\n" + text, icon=":material/edit:")


def _outcome(order: Order, spec: SymbolSpec) -> str:
    """What became of a sent order: `order #12: new`, `order #13: filled 5 @ 100.01`."""
    text = f"order #{order.id}: {order.status.replace('_', ' ')}"
    if order.filled_qty and order.avg_fill_price is not None:
        text += f" {spec.shares(order.filled_qty)} @ {spec.show(order.avg_fill_price, extra=2)}"
    if order.reason:
        text += f" ({order.reason.replace('_', ' ')})"
    return text


# -- the live market pane ----------------------------------------------------------------------


def ladder_frame(book: Book, spec: SymbolSpec) -> pd.DataFrame:
    """The ladder: asks above (highest first), bids below, one row per price, sizes in
    shares; `best` marks the best bid and ask rows."""
    rows: list[dict[str, Any]] = []
    for lv in reversed(book.asks):
        rows.append(
            {
                "bid_orders": "",
                "bid": None,
                "price": spec.show(lv.price),
                "ask": spec.shares(lv.qty),
                "ask_orders": str(lv.orders),
                "best": lv.price == book.best_ask,
            }
        )
    for lv in book.bids:
        rows.append(
            {
                "bid_orders": str(lv.orders),
                "bid": spec.shares(lv.qty),
                "price": spec.show(lv.price),
                "ask": None,
                "ask_orders": "",
                "best": lv.price == book.best_bid,
            }
        )
    frame = pd.DataFrame(rows, columns=["bid_orders", "bid", "price", "ask", "ask_orders", "best"])
    # Nullable integers: an empty side is blank, not NaN, and sizes stay whole.
    for column in ("bid", "ask"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _style_ladder(frame: pd.DataFrame) -> Any:
    def row_style(row: pd.Series) -> list[str]:
        if not row["best"]:
            return [""] * len(row)
        color = "#0e7c3a2e" if pd.notna(row["bid"]) else "#c0003a2e"
        return [f"background-color: {color}; font-weight: 700"] * len(row)

    return frame.style.apply(row_style, axis=1).format(na_rep="")


def _refresh_seconds() -> float:
    return float(st.session_state.get("refresh", 2.0))


def _market(spec: SymbolSpec) -> None:
    @st.fragment(run_every=_refresh_seconds())
    def live() -> None:
        gw = session.client()
        try:
            book = gw.book(spec.name, DEPTH)
        except GatewayError as exc:
            session.report(exc, f"the {spec.name} book")
            return
        _sample_mid(spec.name, book)
        _top_line(book, spec)
        cols = st.columns([5, 3], gap="medium")
        with cols[0]:
            st.markdown("**Book**")
            _ladder(book, spec)
        trades: list[Trade] | None = None
        with cols[1]:
            st.markdown("**Last trades**")
            try:
                trades = gw.trades(spec.name)
            except NotAvailable:
                st.caption("Trades: not available on this gateway yet.")
            except GatewayError as exc:
                session.report(exc, "trades")
            else:
                _trade_tape(trades, spec)
        _chart(spec, trades)

    live()


def _top_line(book: Book, spec: SymbolSpec) -> None:
    bid, ask = book.best_bid, book.best_ask
    cols = st.columns(4)
    cols[0].metric("Best bid", spec.show(bid) or "—")
    cols[1].metric("Best ask", spec.show(ask) or "—")
    if bid is not None and ask is not None:
        spread = ask - bid
        cols[2].metric(
            "Spread", spec.show(spread), f"{spread} tick(s)", delta_color="off", delta_arrow="off"
        )
    else:
        cols[2].metric("Spread", "—")
    cols[3].metric("Last", spec.show(book.last_price) or "—")


def _ladder(book: Book, spec: SymbolSpec) -> None:
    if not book.bids and not book.asks:
        st.caption("The book is empty.")
        return
    frame = ladder_frame(book, spec)
    sizes = [int(v) for v in (*frame["bid"].dropna(), *frame["ask"].dropna())]
    biggest = max([*sizes, 1])
    st.dataframe(
        _style_ladder(frame),
        hide_index=True,
        width="stretch",
        # Every level visible without scrolling (35 px a row, the header one more).
        height=35 * (len(frame) + 1) + 3,
        column_order=["bid_orders", "bid", "price", "ask", "ask_orders"],
        column_config={
            "bid_orders": st.column_config.TextColumn("#", width=40, help="orders"),
            "bid": st.column_config.ProgressColumn(
                "Bid size", width=110, min_value=0, max_value=biggest, format="%d", color="green"
            ),
            "price": st.column_config.TextColumn("Price", width=80),
            "ask": st.column_config.ProgressColumn(
                "Ask size", width=110, min_value=0, max_value=biggest, format="%d", color="red"
            ),
            "ask_orders": st.column_config.TextColumn("#", width=40, help="orders"),
        },
        key=f"ladder_{spec.name}",
    )


def _trade_tape(trades: list[Trade], spec: SymbolSpec) -> None:
    if not trades:
        st.caption("No trades yet.")
        return
    recent = list(reversed(trades[-16:]))
    frame = pd.DataFrame(
        {
            "time": [t.time.strftime("%H:%M:%S") if t.time else "" for t in recent],
            "price": [spec.show(t.price) for t in recent],
            "qty": [spec.shares(t.qty) for t in recent],
            "side": [t.aggressor or "" for t in recent],
        }
    )
    st.dataframe(frame, hide_index=True, width="stretch", height=35 * (len(frame) + 1) + 3)


def _sample_mid(symbol: str, book: Book) -> None:
    """Keep the mid of every refresh: the chart's other source."""
    if book.best_bid is None or book.best_ask is None:
        return
    samples: dict[str, deque[tuple[float, float]]] = st.session_state.setdefault("mids", {})
    series = samples.setdefault(symbol, deque(maxlen=_MID_SAMPLES))
    series.append((time.time(), (book.best_bid + book.best_ask) / 2))


def _chart(spec: SymbolSpec, trades: list[Trade] | None) -> None:
    cols = st.columns([2, 3, 2])
    sources = ["trades", "mid"] if trades is not None else ["mid"]
    source = cols[0].segmented_control(
        "Chart", sources, default=sources[0], required=True, key="chart_source"
    )
    window = cols[1].segmented_control(
        "Window", list(WINDOWS), default="5 min", required=True, key="chart_win"
    )
    seconds = WINDOWS.get(window or "all")
    since = None if seconds is None else datetime.now(UTC) - timedelta(seconds=seconds)
    if source == "trades" and trades is not None:
        points = [(t.time, float(spec.price(t.price) or 0)) for t in trades if t.time is not None]
    else:
        raw = st.session_state.get("mids", {}).get(spec.name, ())
        points = [(datetime.fromtimestamp(ts, UTC), float(spec.price(mid) or 0)) for ts, mid in raw]
    if since is not None:
        points = [p for p in points if p[0] >= since]
    if len(points) < 2:
        st.caption(f"Not enough {source or 'price'} points yet for a chart.")
        return
    frame = pd.DataFrame(points, columns=["time", "price"])
    chart = (
        alt.Chart(frame)
        .mark_line(interpolate="step-after" if source == "trades" else "linear")
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y("price:Q", scale=alt.Scale(zero=False), title=f"{spec.name} {source}"),
            tooltip=[alt.Tooltip("time:T", format="%H:%M:%S"), "price:Q"],
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")
