"""The Tickplane terminal (Streamlit): `streamlit run ui/app.py`, or `tickplane ui`.

A client of the gateway's HTTP API only (`tickplane.ui.gateway`). The gateway URL comes
from `TICKPLANE_UI_GATEWAY_URL`; the API key is asked for once per browser session and
kept in the session state, never in the URL.
"""

from __future__ import annotations

import logging

import streamlit as st

from tickplane.ui import session
from tickplane.ui.gateway import GatewayError
from tickplane.ui.views import PAGES

log = logging.getLogger("tickplane.ui")

# Material icons ship with Streamlit's own fonts (emoji depend on the viewer's fonts).
PAGE_ICONS = {
    "Trade": ":material/candlestick_chart:",
    "Orders": ":material/list_alt:",
    "Executions": ":material/receipt_long:",
    "Positions": ":material/account_balance_wallet:",
    "Strategies": ":material/smart_toy:",
    "Monitoring": ":material/monitor_heart:",
}


def _login() -> None:
    st.title("Tickplane terminal")
    st.caption(f"Gateway: {session.gateway_url()}")
    with st.form("login", border=True):
        st.markdown("Log in with an API key (`tickplane keys create --account NAME`).")
        key_id = st.text_input("Key id (APCA-API-KEY-ID)", key="login_key_id")
        secret = st.text_input("Secret (APCA-API-SECRET-KEY)", type="password", key="login_secret")
        go = st.form_submit_button("Log in", type="primary", key="login_submit")
    if go:
        problem = session.log_in(key_id, secret)
        if problem is None:
            st.rerun()
        st.error(problem, icon=":material/key_off:")


def _sidebar() -> str:
    with st.sidebar:
        st.markdown("## :material/candlestick_chart: Tickplane")
        if session.logged_in():
            who = st.session_state.get("account") or st.session_state.get("key_id")
            st.caption(f"account **{who}**")
            page = st.radio(
                "Page",
                list(PAGES),
                key="page",
                format_func=lambda p: f"{PAGE_ICONS[p]} {p}",
                label_visibility="collapsed",
            )
        else:
            page = ""
        with st.expander("Settings", expanded=False):
            st.text_input("Gateway URL", key="gateway_url")
            st.text_input(
                "Engine HTTP URL (status, metrics)", key="engine_url", placeholder="optional"
            )
            st.text_input(
                "Recorder metrics URL (sequence lag)", key="recorder_url", placeholder="optional"
            )
            st.slider("Refresh every (s)", 0.5, 10.0, key="refresh", step=0.5)
        if session.logged_in() and st.button("Log out", key="logout"):
            session.log_out()
            st.rerun()
    return str(page)


def _gateway_banner() -> None:
    """A red banner while the gateway does not answer; the page below degrades pane by
    pane and recovers by itself."""
    try:
        session.client().health()
    except GatewayError as exc:
        st.error(
            f"**Gateway unavailable**: {exc.message}. Live panes retry on their own.",
            icon=":material/cloud_off:",
        )


def main() -> None:
    st.set_page_config(
        page_title="Tickplane", page_icon=":material/candlestick_chart:", layout="wide"
    )
    # A trading desk, not an app under development: no deploy button, no rerun menu.
    st.set_option("client.toolbarMode", "viewer")
    session.gateway_url()
    session.engine_url()
    session.recorder_url()
    st.session_state.setdefault("refresh", 2.0)
    page = _sidebar()
    if not session.logged_in():
        _login()
        return
    _gateway_banner()
    try:
        PAGES[page]()
    except Exception as exc:  # a page bug is a banner for the trader, a traceback in the log
        log.exception("page %s failed", page)
        st.error(f"**This page failed**: {exc!r}. Other pages still work.", icon=":material/error:")


main()
