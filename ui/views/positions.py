"""Positions: quantity, average price, market value, realized and unrealized P&L, a
P&L-over-time chart, and flatten one or all."""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal

import altair as alt
import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import GatewayClient, GatewayError, Position
from tickplane.ui.pnl import realized_curve

__all__ = ["flatten_body", "render"]

_SAMPLES = 2000


def flatten_body(position: Position) -> dict[str, object] | None:
    """The market order that brings a position to zero (None when it is flat)."""
    if position.qty == 0:
        return None
    return {
        "symbol": position.symbol,
        "side": "sell" if position.qty > 0 else "buy",
        "type": "market",
        "qty": abs(position.qty),
        "time_in_force": "ioc",
    }


def _mark(gw: GatewayClient, symbol: str) -> int | float | None:
    """The price a position is valued at: the mid, else the last trade (ticks)."""
    try:
        book = gw.book(symbol, 1)
    except GatewayError:
        return None
    if book.best_bid is not None and book.best_ask is not None:
        return (book.best_bid + book.best_ask) / 2
    return book.last_price


def render() -> None:
    st.subheader("Positions")

    @st.fragment(run_every=float(st.session_state.get("refresh", 2.0)))
    def live() -> None:
        gw = session.client()
        outcome = st.session_state.pop("flatten_outcome", None)
        if outcome:
            st.info(outcome)
        try:
            positions = gw.positions()
        except GatewayError as exc:
            session.report(exc, "positions")
            return
        open_positions = [p for p in positions if p.qty != 0]
        total = Decimal(0)
        rows = []
        for p in positions:
            spec = session.spec(p.symbol)
            # The gateway's own valuation (last trade) when it gives one, else the mid.
            mark = p.last_price if p.last_price is not None else _mark(gw, p.symbol)
            realized = spec.money(p.realized_pnl) or Decimal(0)
            unrealized = Decimal(0)
            value = spec.money(p.market_value)
            if p.unrealized_pnl is not None:
                unrealized = spec.money(p.unrealized_pnl) or Decimal(0)
            elif mark is not None and p.avg_entry_price is not None and p.qty:
                unrealized = spec.money((mark - p.avg_entry_price) * p.qty) or Decimal(0)
            if value is None and mark is not None:
                value = spec.money(mark * p.qty)
            total += realized + unrealized
            rows.append(
                {
                    "symbol": p.symbol,
                    "qty": spec.shares(p.qty),
                    "avg price": spec.show(p.avg_entry_price, extra=2),
                    "last": spec.show(mark, extra=0 if isinstance(mark, int) else 1),
                    "market value": _money(value),
                    "realized P&L": _money(realized),
                    "unrealized P&L": _money(unrealized),
                }
            )
        if not rows:
            st.caption("No positions yet.")
        else:
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        history: deque[tuple[float, float]] = st.session_state.setdefault(
            "pnl_history", deque(maxlen=_SAMPLES)
        )
        if rows:
            history.append((time.time(), float(total)))
        st.metric("Total P&L (marked)", _money(total))
        if open_positions:
            _flatten(open_positions)
        _chart(gw, history)

    live()


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _flatten(positions: list[Position]) -> None:
    by_symbol = {p.symbol: p for p in positions}
    cols = st.columns([3, 1, 1, 2], vertical_alignment="bottom")
    cols[0].selectbox("Position", list(by_symbol), key="flatten_pick")
    # Callbacks run before the rerun draws the table: it shows the result at once.
    cols[1].button("Flatten", key="flatten_one", on_click=_flatten_now, args=(by_symbol, False))
    cols[2].button(
        "Flatten all",
        key="flatten_all",
        type="primary",
        on_click=_flatten_now,
        args=(by_symbol, True),
    )


def _flatten_now(by_symbol: dict[str, Position], everything: bool) -> None:
    pick = str(st.session_state.get("flatten_pick", ""))
    if everything:
        targets = list(by_symbol.values())
    else:
        targets = [by_symbol[pick]] if pick in by_symbol else []
    done = []
    for p in targets:
        body = flatten_body(p)
        if body is None:
            continue
        try:
            order = session.client().submit(body)
        except GatewayError as exc:
            done.append(f"{p.symbol}: {exc.message}")
        else:
            done.append(f"{p.symbol}: {body['side']} {body['qty']} lot(s), order #{order.id}")
    st.session_state.flatten_outcome = "Flatten: " + "; ".join(done)


def _chart(gw: GatewayClient, history: deque[tuple[float, float]]) -> None:
    frames = []
    try:
        fills = gw.executions(limit=5000)
    except GatewayError:
        fills = []
    curve = realized_curve(fills)
    if curve:
        frames.append(
            pd.DataFrame(
                [
                    (t, f"{sym} realized", float(session.spec(sym).money(v) or 0))
                    for t, sym, v in curve
                ],
                columns=["time", "series", "P&L"],
            )
        )
    if len(history) >= 2:
        frames.append(
            pd.DataFrame(
                [(datetime.fromtimestamp(ts, UTC), "total (marked)", v) for ts, v in history],
                columns=["time", "series", "P&L"],
            )
        )
    if not frames:
        st.caption("The P&L chart starts with the first closing fill.")
        return
    chart = (
        alt.Chart(pd.concat(frames))
        .mark_line(interpolate="step-after", point=True)
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M:%S")),
            y=alt.Y("P&L:Q", title="P&L"),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[alt.Tooltip("time:T", format="%H:%M:%S"), "series:N", "P&L:Q"],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")
