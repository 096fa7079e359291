"""The terminal's per-browser-session state: settings, the API key, the gateway client.

The key lives in `st.session_state` only (never in the URL, never on disk): a reload of
the page is a new session and asks again. Settings come from the environment
(`TICKPLANE_UI_GATEWAY_URL`, optional `TICKPLANE_UI_ENGINE_URL` for the engine's
/status and /metrics) and can be changed in the sidebar for the session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import streamlit as st

from tickplane.ui.gateway import GatewayClient, GatewayDown, GatewayError, NotAvailable, Rejected
from tickplane.ui.units import SymbolSpec

__all__ = [
    "DEFAULT_GATEWAY",
    "client",
    "engine_url",
    "gateway_url",
    "load",
    "log_in",
    "log_out",
    "logged_in",
    "recorder_url",
    "report",
    "symbols",
]

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
T = TypeVar("T")


def gateway_url() -> str:
    if "gateway_url" not in st.session_state:
        st.session_state.gateway_url = os.environ.get("TICKPLANE_UI_GATEWAY_URL", DEFAULT_GATEWAY)
    return str(st.session_state.gateway_url)


def engine_url() -> str:
    """The engine's HTTP base URL (its /status and /metrics), or '' when not set."""
    if "engine_url" not in st.session_state:
        st.session_state.engine_url = os.environ.get("TICKPLANE_UI_ENGINE_URL", "")
    return str(st.session_state.engine_url).rstrip("/")


def recorder_url() -> str:
    """The recorder's metrics URL base (its /metrics), or '' when not set."""
    if "recorder_url" not in st.session_state:
        st.session_state.recorder_url = os.environ.get("TICKPLANE_UI_RECORDER_URL", "")
    return str(st.session_state.recorder_url).rstrip("/")


def logged_in() -> bool:
    return bool(st.session_state.get("key_id") and st.session_state.get("secret"))


def client() -> GatewayClient:
    """This session's client (one connection pool per session, rebuilt on a new key)."""
    wanted = (gateway_url(), st.session_state.get("key_id"), st.session_state.get("secret"))
    if st.session_state.get("_client_for") != wanted:
        old = st.session_state.get("_client")
        if old is not None:
            old.close()
        st.session_state._client = GatewayClient(wanted[0], wanted[1], wanted[2])
        st.session_state._client_for = wanted
    gateway: GatewayClient = st.session_state._client
    return gateway


def log_in(key_id: str, secret: str) -> str | None:
    """Check the key with the gateway and keep it for the session; None when the key is
    kept, else why not (a bad key, a gateway that does not answer)."""
    key_id, secret = key_id.strip(), secret.strip()
    if not key_id or not secret:
        return "Enter the key id and the secret."
    probe = GatewayClient(gateway_url(), key_id, secret)
    try:
        account = probe.check_key()
    except Rejected as exc:
        if exc.status == 401:
            return "The gateway refused this key (unknown or revoked)."
        return f"The gateway refused: {exc.message}"
    except GatewayError as exc:
        return f"Cannot log in: {exc.message}"
    finally:
        probe.close()
    st.session_state.key_id = key_id
    st.session_state.secret = secret
    st.session_state.account = account or ""
    return None


def log_out() -> None:
    names = ("key_id", "secret", "account", "_client", "_client_for", "_symbols", "login_secret")
    for name in names:
        st.session_state.pop(name, None)


def report(exc: GatewayError, what: str) -> None:
    """An error as a banner: down (red), not available (grey), refused (orange)."""
    if isinstance(exc, GatewayDown):
        # The gateway answers but the engine (or the venue) behind it does not.
        down = "Engine" if exc.reason in ("engine_unavailable", "venue_unavailable") else "Gateway"
        st.error(
            f"**{down} unavailable** while loading {what}: {exc.message}",
            icon=":material/cloud_off:",
        )
    elif isinstance(exc, NotAvailable):
        st.info(
            f"**{what.capitalize()}: not available** on this gateway yet.",
            icon=":material/construction:",
        )
    elif isinstance(exc, Rejected) and exc.status == 401:
        st.error(
            "**Your key was refused** (revoked?). Log out and log in again.",
            icon=":material/key_off:",
        )
    else:
        st.warning(f"**{what.capitalize()}**: {exc.message}", icon=":material/warning:")


def load(what: str, call: Callable[[], T]) -> T | None:
    """Run a gateway call; on failure show the banner and return None."""
    try:
        return call()
    except GatewayError as exc:
        report(exc, what)
        return None


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """A block of gateway calls whose failure is a banner."""
    try:
        yield
    except GatewayError as exc:
        report(exc, what)


def symbols() -> list[SymbolSpec]:
    """The tradable symbols with their tick and lot sizes (cached for the session).

    A gateway without `/symbols` gives no list: the trader types a symbol and the
    engine's defaults (tick 0.01, lot 1) are assumed, as the sidebar says."""
    cached = st.session_state.get("_symbols")
    if cached:
        return list(cached)
    try:
        found = client().symbols()
    except GatewayError:
        return []
    if found:
        st.session_state._symbols = found
    return found


def spec(name: str) -> SymbolSpec:
    """The symbol's spec, or the engine's defaults when the gateway does not say."""
    for s in symbols():
        if s.name == name:
            return s
    return SymbolSpec(name)
