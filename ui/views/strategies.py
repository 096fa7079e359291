"""Strategies: what the platform runs for this account, with state, P&L and
pause/resume, as far as the gateway exposes them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import GatewayError, NotAvailable

__all__ = ["render"]


def render() -> None:
    st.subheader("Strategies")
    gw = session.client()
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
        st.info("No strategies.", icon=":material/extension:")
        return
    st.dataframe(
        pd.DataFrame(
            [{"name": s.name, "state": s.state, "P&L (tick-lots)": s.pnl} for s in strategies]
        ),
        hide_index=True,
        width="stretch",
    )
    names = [s.name for s in strategies]
    cols = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = cols[0].selectbox("Strategy", names, key="strategy_pick")
    for col, action in ((cols[1], "pause"), (cols[2], "resume")):
        if col.button(action.capitalize(), key=f"strategy_{action}"):
            try:
                gw.strategy_action(name, action)
            except GatewayError as exc:
                session.report(exc, f"{action} {name}")
            else:
                st.success(f"{action.capitalize()}d {name}")
