"""The gateway's Prometheus metrics, served on their own port (`metrics_port`), never on
the API port, so the API stays all-authenticated and scrapes bypass its middleware.

Labels are bounded: the route template (`/api/v1/orders/{order_id}`, never an id),
the method and the status code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GatewayMetrics", "MetricsMiddleware", "serve"]


class GatewayMetrics:
    """Request rate, errors and durations by route; WebSocket clients; the projection;
    market-data gaps."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tickplane_gateway_requests_total",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.errors = Counter(
            "tickplane_gateway_errors_total",
            "HTTP requests answered with a 5xx, by route template",
            ["route"],
            registry=r,
        )
        self.duration = Histogram(
            "tickplane_gateway_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template",
            ["route", "method"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r,
        )
        self.ws_clients = Gauge(
            "tickplane_gateway_websocket_clients",
            "WebSocket clients connected, by stream",
            ["stream"],
            registry=r,
        )
        self.ws_dropped = Counter(
            "tickplane_gateway_websocket_dropped_total",
            "WebSocket clients dropped for falling behind, by stream",
            ["stream"],
            registry=r,
        )
        self.projection_seq = Gauge(
            "tickplane_gateway_projection_seq",
            "The last engine event seq the projection applied",
            registry=r,
        )
        self.projection_lag = Gauge(
            "tickplane_gateway_projection_lag_events",
            "Engine events (by the last engine reply seen) the projection has not applied",
            registry=r,
        )
        # By symbol (the engine's few, never a client's): a hole is told to every
        # subscriber of the symbol in one `gap` message each, and counted once here.
        self.market_gaps = Counter(
            "tickplane_gateway_market_data_gaps_total",
            "Market-data holes announced to subscribers in a `gap` message, by symbol",
            ["symbol"],
            registry=r,
        )
        self.market_gap_md_seqs = Counter(
            "tickplane_gateway_market_data_gap_md_seqs_total",
            "md_seq numbers the gateway announced lost (the sum of the gaps' lengths), by symbol",
            ["symbol"],
            registry=r,
        )

    def watch_projection(self, seq: Callable[[], float], lag: Callable[[], float]) -> None:
        self.projection_seq.set_function(seq)
        self.projection_lag.set_function(lag)

    def market_gap(self, symbol: str, first: int, last: int) -> None:
        """Count a hole of md_seq `first`..`last` in `symbol`'s market data
        (`Projection.on_gap`)."""
        self.market_gaps.labels(symbol).inc()
        self.market_gap_md_seqs.labels(symbol).inc(last - first + 1)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = _template(scope)
            m = self.metrics
            m.requests.labels(template, scope["method"], str(status)).inc()
            if status >= 500:
                m.errors.labels(template).inc()
            m.duration.labels(template, scope["method"]).observe(time.perf_counter() - start)


def _template(scope: Scope) -> str:
    """The route template of a request (`/api/v1/orders/{order_id}`): its path with each
    path parameter's segment named back; "unmatched" when no route took it (its path
    is anyone's to choose, so it never becomes a label)."""
    route: Any = scope.get("route")
    if route is None:
        return "unmatched"
    params: dict[str, Any] = scope.get("path_params") or {}
    if not params:
        return str(scope.get("path", "unmatched"))
    names = {str(v): k for k, v in params.items()}
    parts = str(scope.get("raw_path", b"").decode("latin-1") or scope["path"]).split("/")
    return "/".join("{" + names[p] + "}" if p in names else p for p in parts)


def serve(metrics: GatewayMetrics, port: int, host: str) -> Callable[[], None]:
    """Serve `/metrics` on `host:port` in a thread; returns what stops it."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
