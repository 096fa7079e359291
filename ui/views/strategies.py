"""Strategies: what the platform runs for this account (every account's for an admin key),
with state, P&L and position, and pause/resume (`/api/v1/strategies`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import GatewayError, NotAvailable

__all__ = ["render"]

_OUTCOME = "strategy_outcome"  # the last action's result, shown after the rerun


def _act(action: str) -> None:
    """A button's callback: runs before the page renders, so the table shows the result."""
    name = st.session_state.get("strategy_pick")
    if not name:
        return
    try:
        session.client().strategy_action(name, action)
    except GatewayError as exc:
        st.session_state[_OUTCOME] = ("error", f"{action.capitalize()} {name}: {exc.message}")
    else:
        done = "Paused" if action == "pause" else "Resumed"
        st.session_state[_OUTCOME] = ("ok", f"{done} {name}")


def render() -> None:
    st.subheader("Strategies")
    gw = session.client()
    outcome = st.session_state.pop(_OUTCOME, None)
    if outcome is not None:
        kind, text = outcome
        if kind == "ok":
            st.success(text, icon=":material/check_circle:")
        else:
            st.warning(text, icon=":material/warning:")
    try:
        strategies = gw.strategies()
    except NotAvailable:
        st.info(
            "No strategies: this gateway does not expose strategies.",
            icon=":material/extension:",
        )
        return
    except GatewayError as exc:
        session.report(exc, "strategies")
        return
    if not strategies:
        st.info(
            "No strategies for this account. Locally, `tickplane up --strategy "
            "market_maker:GOOG` runs one; on Kubernetes, a `Strategy` resource.",
            icon=":material/extension:",
        )
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": s.name,
                    "account": s.account,
                    "symbols": ", ".join(s.symbols),
                    "state": s.state,
                    "P&L (tick-lots)": s.pnl,
                    "position (lots)": s.position,
                    "open orders": s.open_orders,
                    "note": s.message or "",
                }
                for s in strategies
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    names = [s.name for s in strategies]
    cols = st.columns([3, 1, 1], vertical_alignment="bottom")
    cols[0].selectbox("Strategy", names, key="strategy_pick")
    for col, action in ((cols[1], "pause"), (cols[2], "resume")):
        col.button(action.capitalize(), key=f"strategy_{action}", on_click=_act, args=(action,))
