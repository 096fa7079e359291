"""Monitoring: gateway and engine health, the engine's CPUs and pinned core, orders/s
and latency percentiles over time, and the recorder's sequence lag per sink.

The gateway's /ready says whether the engine answers. The engine's own /status and
/metrics live on the engine's HTTP port, which the gateway does not proxy: the terminal
reads them when given the engine's URL (`TICKPLANE_UI_ENGINE_URL` or the sidebar), and
the recorder's /metrics when given its URL (`TICKPLANE_UI_RECORDER_URL`; `tickplane up`
sets both).
Rates are differences of the engine's counters between two refreshes of this page.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import altair as alt
import pandas as pd
import streamlit as st
from prometheus_client.parser import text_string_to_metric_families

from tickplane.core.engine_metrics import Scrape, histogram_quantile, parse, window
from tickplane.ui import session
from tickplane.ui.gateway import GatewayError, fetch_text

__all__ = ["SinkLag", "recorder_lag", "render"]

_SAMPLES = 900
MIN_WINDOW = 1.0  # seconds between two scrapes a rate is computed over


class SinkLag(NamedTuple):
    """Where one recorder sink stands: seqs behind the engine, the last it wrote, up."""

    lag: float
    last_seq: float
    up: bool


def recorder_lag(text: str) -> dict[str, SinkLag]:
    """The recorder's sinks from one /metrics scrape (Prometheus text format)."""
    found: dict[str, dict[str, float]] = {}
    names = {
        "tickplane_recorder_lag_events": "lag",
        "tickplane_recorder_last_seq": "last_seq",
        "tickplane_recorder_sink_up": "up",
    }
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in names and "sink" in s.labels:
                found.setdefault(s.labels["sink"], {})[names[s.name]] = s.value
    return {
        sink: SinkLag(v.get("lag", 0.0), v.get("last_seq", 0.0), v.get("up", 0.0) == 1.0)
        for sink, v in sorted(found.items())
    }


def venue_text(venue: Mapping[str, Any]) -> str:
    """The engine's venue as its /status gives it (`venue`): kind and link, and, while
    its orders are matched by the engine instead (`venue.unreachable: internal`), that."""
    link = "connected" if venue.get("connected") else "not connected"
    text = f"venue {venue.get('kind', '?')} ({link})"
    if venue.get("fallback_active"):
        text += ": its orders are matched here meanwhile (unreachable: internal)"
    return text


def render() -> None:
    st.subheader("Monitoring")

    @st.fragment(run_every=float(st.session_state.get("refresh", 2.0)))
    def live() -> None:
        _gateway()
        recorder = session.recorder_url()
        if recorder:
            _recorder(recorder)
        url = session.engine_url()
        if not url:
            st.info(
                "Engine status and metrics: set the engine's HTTP URL in the sidebar (or "
                "`TICKPLANE_UI_ENGINE_URL`), e.g. http://127.0.0.1:5557 for `tickplane up`.",
                icon=":material/settings:",
            )
            return
        _engine(url)

    live()


def _gateway() -> None:
    gw = session.client()
    cols = st.columns(3)
    try:
        up = gw.health()
    except GatewayError as exc:
        cols[0].metric("Gateway", "down")
        session.report(exc, "gateway health")
        return
    cols[0].metric("Gateway", "up" if up else "unhealthy")
    try:
        ready = gw.ready()
    except GatewayError as exc:
        cols[1].metric("Engine (via gateway)", "not ready")
        st.warning(f"Not ready: {exc.message}")
        return
    cols[1].metric("Engine (via gateway)", str(ready.get("engine", ready.get("status", "?"))))
    lag = ready.get("projection_lag", ready.get("lag"))
    if lag is not None:  # shown when the gateway reports how far its view is behind
        cols[2].metric("Sequence lag", str(lag))


def _recorder(url: str) -> None:
    """Each sink's sequence lag now, and over time (this page's refreshes)."""
    try:
        sinks = recorder_lag(fetch_text(f"{url}/metrics"))
    except GatewayError as exc:
        st.warning(f"**Recorder unavailable** at {url}: {exc}", icon=":material/cloud_off:")
        return
    if not sinks:
        st.caption("The recorder has no sink yet.")
        return
    history: deque[tuple[float, str, float]] = st.session_state.setdefault(
        "recorder_history", deque(maxlen=_SAMPLES * 3)
    )
    now = time.time()
    cols = st.columns(len(sinks))
    for col, (sink, got) in zip(cols, sinks.items(), strict=True):
        col.metric(
            f"Recorder lag: {sink}",
            f"{got.lag:,.0f}",
            f"seq {got.last_seq:,.0f}" if got.up else "sink down",
            delta_color="off" if got.up else "inverse",
            delta_arrow="off",
        )
        history.append((now, sink, got.lag))
    if len({t for t, _, _ in history}) >= 2:
        frame = pd.DataFrame(
            [(datetime.fromtimestamp(t, UTC), s, lag) for t, s, lag in history],
            columns=["time", "sink", "events behind"],
        )
        st.altair_chart(
            alt.Chart(frame)
            .mark_line(interpolate="step-after")
            .encode(
                x=alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M:%S")),
                y=alt.Y("events behind:Q", title="recorder lag (events)"),
                color=alt.Color("sink:N", title=None, legend=alt.Legend(orient="bottom")),
            )
            .properties(height=160),
            width="stretch",
        )


def _engine(url: str) -> None:
    try:
        status: Mapping[str, Any] = json.loads(fetch_text(f"{url}/status"))
        metrics = fetch_text(f"{url}/metrics")
    except (GatewayError, ValueError) as exc:
        st.error(f"**Engine unavailable** at {url}: {exc}", icon=":material/cloud_off:")
        return
    history: deque[tuple[float, float, float | None, float | None, float | None]] = (
        st.session_state.setdefault("engine_history", deque(maxlen=_SAMPLES))
    )
    now = parse(metrics, time.time())
    prev: Scrape | None = st.session_state.get("engine_last")
    rate = p50 = p99 = p999 = None
    if prev is None or now.at - prev.at >= MIN_WINDOW:
        st.session_state.engine_last = now
    figures = window(prev, now) if prev is not None and now.at - prev.at >= MIN_WINDOW else None
    if figures is not None:
        rate, buckets = figures
        # An idle window has no latency to show: a gap in the chart, not a zero.
        p50, p99, p999 = (histogram_quantile(q, buckets) for q in (0.5, 0.99, 0.999))
        history.append((now.at, rate, p50, p99, p999))
    elif history:
        _, rate, p50, p99, p999 = history[-1]

    ready = bool(status.get("ready"))
    cpus = status.get("cpus") or []
    pinned = status.get("pinned_cpu")
    cols = st.columns(5)
    cols[0].metric(
        "Engine",
        str(status.get("engine", "?")),
        "ready" if ready else "not ready",
        delta_color="normal" if ready else "inverse",
        delta_arrow="off",
    )
    cols[1].metric(
        "CPUs",
        ",".join(str(c) for c in cpus) or "—",
        f"hot loop on CPU {pinned}" if pinned is not None else "hot loop not pinned",
        delta_color="off",
        delta_arrow="off",
    )
    cols[2].metric("Orders/s", "—" if rate is None else f"{rate:,.1f}")
    cols[3].metric("p99 latency", _us(p99), f"p50 {_us(p50)}", delta_color="off", delta_arrow="off")
    cols[4].metric("Last seq", f"{status.get('last_seq', '—')}")
    st.caption(
        f"open orders {status.get('open_orders', '—')} · accounts {status.get('accounts', '—')}"
        f" · {venue_text(status.get('venue') or {})}"
    )
    if len(history) < 2:
        st.caption("Charts start after a few refreshes.")
        return
    frame = pd.DataFrame(
        [(datetime.fromtimestamp(t, UTC), r, a, b, c) for t, r, a, b, c in history],
        columns=["time", "orders/s", "p50", "p99", "p99.9"],
    )
    x = alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M:%S"))
    left, right = st.columns(2)
    left.markdown("**Orders per second**")
    left.altair_chart(
        alt.Chart(frame)
        .mark_area(opacity=0.6, interpolate="step-after")
        .encode(x=x, y=alt.Y("orders/s:Q", title=None, axis=alt.Axis(format=",.1f")))
        .properties(height=200),
        width="stretch",
    )
    lat = frame.melt("time", ["p50", "p99", "p99.9"], "percentile", "seconds").dropna()
    lat["µs"] = lat["seconds"] * 1e6
    right.markdown("**Engine request latency (µs)**")
    if lat.empty:
        right.caption("No requests in these windows: the engine is idle.")
    else:
        right.altair_chart(
            alt.Chart(lat)
            .mark_line(point=True)
            .encode(
                x=x,
                y=alt.Y("µs:Q", title=None, axis=alt.Axis(format=",.0f")),
                color=alt.Color("percentile:N", title=None, legend=alt.Legend(orient="bottom")),
            )
            .properties(height=200),
            width="stretch",
        )
    last = now.buckets
    if last and last[-1][1] > 0:
        bars = []
        below = 0.0
        for bound, count in last:
            if not math.isinf(bound):
                bars.append({"≤ µs": f"{bound * 1e6:g}", "requests": count - below})
            below = count
        st.markdown("**Request latency histogram, since the engine started**")
        st.altair_chart(
            alt.Chart(pd.DataFrame(bars))
            .mark_bar()
            .encode(x=alt.X("≤ µs:N", sort=None, axis=alt.Axis(labelAngle=0)), y="requests:Q")
            .properties(height=180),
            width="stretch",
        )


def _us(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:,.0f} µs"
