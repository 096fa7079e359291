"""Executions: the account's fills (time, price, quantity, liquidity side), exportable as
CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import Execution, GatewayError

__all__ = ["executions_frame", "render"]


def executions_frame(fills: list[Execution]) -> pd.DataFrame:
    """Fills, newest first, in prices and shares; the CSV export is this table."""
    rows = []
    for f in reversed(fills):
        spec = session.spec(f.symbol)
        rows.append(
            {
                "time (UTC)": f.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if f.time else "",
                "order": f.order_id,
                "symbol": f.symbol,
                "side": f.side,
                "price": spec.show(f.price).replace(",", ""),
                "qty": spec.shares(f.qty),
                "liquidity": f.liquidity,
            }
        )
    return pd.DataFrame(
        rows, columns=["time (UTC)", "order", "symbol", "side", "price", "qty", "liquidity"]
    )


def render() -> None:
    st.subheader("Executions")
    symbols = [s.name for s in session.symbols()]
    symbol = st.selectbox("Symbol", ["all", *symbols], key="exec_symbol")

    @st.fragment(run_every=float(st.session_state.get("refresh", 2.0)))
    def live() -> None:
        try:
            fills = session.client().executions(None if symbol == "all" else symbol)
        except GatewayError as exc:
            session.report(exc, "executions")
            return
        if not fills:
            st.caption("No executions yet.")
            return
        frame = executions_frame(fills)
        st.dataframe(frame, hide_index=True, width="stretch")
        st.download_button(
            "Export CSV",
            frame.to_csv(index=False).encode(),
            file_name=f"executions-{st.session_state.get('account') or 'account'}.csv",
            mime="text/csv",
            icon=":material/download:",
            key="exec_csv",
        )

    live()
