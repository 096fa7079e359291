"""The engine's Prometheus metrics and its small HTTP endpoint.

`/metrics` (Prometheus text), `/healthz` (the loop turns: 503 once its last turn or idle
wake is older than `LOOP_STALE_SECONDS`; 200 before the loop starts, while recovering,
and while stopping), `/readyz` (recovery has finished, the engine takes orders and is
not stopping), `/status` (JSON: name, pinned CPUs, last seq, ready, the loop's age).
The server runs in a daemon thread started before the hot loop pins itself, so it
never competes for the hot loop's CPU.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tickplane.core.engine_metrics import ORDERS_TOTAL, REQUEST_SECONDS
from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    SymbolHalted,
    Trade,
)
from tickplane.engine.venues.base import EARLY_UPDATES_DROPPED

if TYPE_CHECKING:
    from tickplane.engine.service import EngineService

__all__ = [
    "LOOP_STALE_SECONDS",
    "EngineMetrics",
    "LoopCounter",
    "LoopHistogram",
    "loop_age",
    "serve_http",
    "takes_orders",
]

# How long the loop may go without a turn before /healthz fails. An idle loop wakes every
# HEARTBEAT_SECONDS (0.1 s, engine/service.py); a turn's snapshot stalls it for as long as
# writing the state takes (seconds for a large book and finished-order store), so the
# bound is generous: with the pod's liveness probe (every 10 s, 3 failures) a stuck loop
# is restarted 30 - 60 s after its last turn.
LOOP_STALE_SECONDS = 30.0

# Engine-side latencies are microseconds: buckets from 1 us to 100 ms.
_US_BUCKETS = (
    1e-6,
    2e-6,
    5e-6,
    1e-5,
    2e-5,
    5e-5,
    1e-4,
    2e-4,
    5e-4,
    1e-3,
    2e-3,
    5e-3,
    1e-2,
    0.1,
)


class LoopCounter:
    """A counter that only the engine's loop thread increments: a plain number, read
    by its family at scrape time. prometheus_client's `Counter.inc` takes a lock and
    costs ~0.5 us; this costs one addition (the GIL makes the read consistent)."""

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram that only the engine's loop thread observes into: a bisect and two
    additions (prometheus_client's `Histogram.observe` takes a lock and costs ~1.5 us,
    seven of them per batch were a fifth of a one-request batch's time). `counts[i]`
    counts values <= `bounds[i]` and above the bound before; the last one, the rest."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def _bucket(self, value: float) -> int:
        """The index of the first bound >= `value` (`bisect_left`, as a loop: compiled,
        it compares C doubles; a histogram has a dozen bounds)."""
        i = 0
        for bound in self.bounds:
            if value <= bound:
                return i
            i += 1
        return i

    def observe(self, value: float) -> None:
        self.counts[self._bucket(value)] += 1
        self.sum += value

    def observe_many(self, value: float, n: int) -> None:
        """`n` observations of the same `value` (a batch's requests, answered together)."""
        self.counts[self._bucket(value)] += n
        self.sum += value * n


class _LoopFamily(Collector):
    """A counter or histogram family of `LoopCounter`/`LoopHistogram` children by
    label values, exposed like prometheus_client's own (same names and samples)."""

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name.removesuffix("_total") if buckets is None else name
        self.doc = doc
        self.labelnames = list(labelnames)
        self.buckets = None if buckets is None else tuple(buckets)
        self.children: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:
            self.labels()
        registry.register(self)

    def labels(self, *values: str) -> Any:
        """The child for these label values (made on first use)."""
        key = tuple(values)
        child = self.children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {self.labelnames}, got {key}")
            child = LoopCounter() if self.buckets is None else LoopHistogram(self.buckets)
            self.children = {**self.children, key: child}  # readers see old or new
        return child

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        children = self.children
        if self.buckets is None:
            counter = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
            for key, c in children.items():
                counter.add_metric(list(key), c.value)
            yield counter
            return
        hist = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        les = [repr(float(b)) for b in self.buckets] + ["+Inf"]  # as prometheus_client
        for key, h in children.items():
            counts = list(h.counts)  # one consistent copy
            total, cumulative = h.sum, []
            acc = 0
            for le, n in zip(les, counts, strict=True):
                acc += n
                cumulative.append((le, acc))
            hist.add_metric(list(key), cumulative, total)
        yield hist


class _Children(dict[str, Any]):
    """A labelled metric's children by label value, looked up once: `labels()` costs
    microseconds, too much to pay per order."""

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, value: str) -> Any:
        child = self[value] = self.metric.labels(value)
        return child


class EngineMetrics:
    """Every metric of one engine, in its own registry (several engines per test)."""

    def __init__(self, engine: str) -> None:
        self.registry = r = CollectorRegistry()
        labels = {"engine": engine}
        self.requests = _Children(
            _LoopFamily(
                "tickplane_engine_requests_total",
                "Requests received, by kind",
                ["kind"],
                registry=r,
            )
        )
        # the order-entry kinds, typed (metrics.pxd): counted as C calls on every request
        self.requests_new: LoopCounter = self.requests["new"]
        self.requests_cancel: LoopCounter = self.requests["cancel"]
        self.requests_replace: LoopCounter = self.requests["replace"]
        self.orders = _Children(
            _LoopFamily(ORDERS_TOTAL, "Orders by outcome", ["outcome"], registry=r)
        )
        self.rejects = _Children(
            _LoopFamily(
                "tickplane_engine_rejects_total",
                "Rejected orders by reason",
                ["reason"],
                registry=r,
            )
        )
        self.request_rejects = _Children(
            _LoopFamily(
                "tickplane_engine_request_rejects_total",
                "Requests refused with a Reject reply (nothing changed), by reason",
                ["reason"],
                registry=r,
            )
        )
        self.risk_rejects = _Children(
            _LoopFamily(
                "tickplane_engine_risk_rejects_total",
                "Orders refused by pre-trade risk, by reason",
                ["reason"],
                registry=r,
            )
        )
        self.cancels = _Children(
            _LoopFamily(
                "tickplane_engine_cancels_total",
                "Canceled orders by reason",
                ["reason"],
                registry=r,
            )
        )
        self.trades = _LoopFamily("tickplane_engine_trades_total", "Trades", registry=r).labels()
        self.traded_qty = _LoopFamily(
            "tickplane_engine_traded_quantity_total", "Lots traded", registry=r
        ).labels()
        self.bad_frames = _LoopFamily(
            "tickplane_engine_bad_frames_total", "Frames that did not decode", registry=r
        ).labels()
        self.batch_seconds = _LoopFamily(
            "tickplane_engine_batch_seconds",
            "Time to process a batch of requests (decode, risk, match, journal, send)",
            buckets=_US_BUCKETS,
            registry=r,
        ).labels()
        self.request_seconds = _LoopFamily(
            REQUEST_SECONDS,  # both read by the operator and the terminal
            "Per request frame (one request, or a Batch): from the loop taking its batch to its "
            "reply leaving the engine (a batch's replies leave together)",
            buckets=_US_BUCKETS,
            registry=r,
        ).labels()
        stage = _LoopFamily(
            "tickplane_engine_stage_seconds",
            "Per batch, by stage: handle (decode, risk, match, journal append), journal "
            "(commit and fsync), ack (replies), publish (events and market data)",
            ["stage"],
            buckets=_US_BUCKETS,
            registry=r,
        )
        self.stage_handle = stage.labels("handle")
        self.stage_journal = stage.labels("journal")
        self.stage_ack = stage.labels("ack")
        self.stage_publish = stage.labels("publish")
        request_stage = _LoopFamily(
            "tickplane_engine_request_stage_seconds",
            "One request a turn (the first that changes state; every such request when they "
            "come one at a time), by stage in the order they run: decode (the frame), risk "
            "(validation and pre-trade checks), journal (its append and the turn's commit, "
            "fsync included), match (the core, events, positions) and ack (the turn's "
            "replies leaving)",
            ["stage"],
            buckets=_US_BUCKETS,
            registry=r,
        )
        self.request_stages = tuple(
            request_stage.labels(s) for s in ("decode", "risk", "journal", "match", "ack")
        )
        self.batch_size = _LoopFamily(
            "tickplane_engine_batch_size",
            "Requests taken off the socket per batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        ).labels()
        self.fsync_seconds = _LoopFamily(
            "tickplane_engine_journal_fsync_seconds",
            "Journal fsync duration",
            buckets=_US_BUCKETS,
            registry=r,
        ).labels()
        # What is engaged or connected now is read from the engine when scraped
        # (`EngineService.open`): counted from events, a gauge would start from 0 after
        # a restart that recovered an engaged switch, and go negative at its revive.
        self.venue_connected = Gauge(
            "tickplane_engine_venue_connected",
            "1 while the execution venue is reachable; read when scraped",
            registry=r,
        )
        self.venue_fallbacks = _Children(
            _LoopFamily(
                "tickplane_engine_venue_fallback_orders_total",
                "Orders for the outside venue matched here instead (venue.unreachable: "
                "internal), by when: new (the venue was unreachable when the order came), "
                "in_flight (handed to the venue, whose submit never reached it)",
                ["when"],
                registry=r,
            )
        )
        for when in ("new", "in_flight"):  # made here: /status reads them from its thread
            self.venue_fallbacks[when]
        self.venue_degraded = _Children(
            _LoopFamily(
                "tickplane_engine_venue_degraded_total",
                "Times the outside venue began working degraded while it may be connected, "
                "by reason: early_updates_max (updates of legs not known yet dropped past "
                "venue.early_updates_max; the orders waiting are read by REST instead)",
                ["reason"],
                registry=r,
            )
        )
        self.venue_degraded[EARLY_UPDATES_DROPPED]  # exported from 0, for rate() and alerts
        self.venue_fallback_active = Gauge(
            "tickplane_engine_venue_fallback_active",
            "1 while new orders for the outside venue are matched here instead (it is "
            "unreachable and venue.unreachable is internal); the label is that policy",
            ["unreachable"],
            registry=r,
        )
        self.kill_switches = Gauge(
            "tickplane_engine_kill_switches_engaged",
            "Kill switches engaged (accounts, plus 1 for the global switch); read when scraped",
            registry=r,
        )
        self.halts = _Children(
            _LoopFamily(
                "tickplane_engine_symbol_halts_total",
                "Symbol halts, by reason (circuit breaker, manual)",
                ["reason"],
                registry=r,
            )
        )
        self.queue_depth = Gauge(
            "tickplane_engine_queue_depth",
            "Items waiting, by queue: venue_events (the venue's reports for the loop), "
            "venue_requests (the loop's requests for the venue's threads), event_log "
            "(published events not yet written to the event log); read when scraped",
            ["queue"],
            registry=r,
        )
        self.seq = Gauge("tickplane_engine_sequence", "Last event sequence number", registry=r)
        self.ready = Gauge(
            "tickplane_engine_ready",
            "1 when the engine takes orders (recovery finished, not stopping), as /readyz",
            registry=r,
        )
        self.recovery_seconds = Gauge(
            "tickplane_engine_recovery_seconds", "Time the last recovery took", registry=r
        )
        self.cpus = Gauge(
            "tickplane_engine_cpus",
            "CPUs the engine may run on (1 per CPU)",
            ["cpu", "pinned"],
            registry=r,
        )
        self.info = Gauge("tickplane_engine_info", "Engine identity", ["engine"], registry=r)
        self.info.labels(**labels).set(1)

    def set_cpus(self, cpus: Iterable[int], pinned: int | None) -> None:
        for cpu in cpus:
            self.cpus.labels(str(cpu), "true" if cpu == pinned else "false").set(1)

    def count(self, events: list[Event]) -> int:
        """Count a batch's events (accepted orders and trades summed over the batch);
        return how many trades there were (the loop looks for prints only then)."""
        accepted = trades = qty = 0
        canceled: dict[str, int] = {}  # by reason, counted into the family once each
        for ev in events:  # by exact type (events are final): cheaper than isinstance
            if type(ev) is OrderAccepted:
                accepted += 1
            elif type(ev) is OrderCanceled:
                canceled[ev.reason] = canceled.get(ev.reason, 0) + 1
            elif type(ev) is Trade:
                trades += 1
                qty += ev.qty
            elif type(ev) is OrderRejected:
                self.orders["rejected"].inc()
                self.rejects[ev.reason].inc()
            elif type(ev) is SymbolHalted:
                self.halts[ev.reason].inc()
        if accepted:
            self.orders["accepted"].inc(accepted)
        for reason, n in canceled.items():
            self.cancels[reason].inc(n)
        if trades:
            self.trades.inc(trades)
            self.traded_qty.inc(qty)
        return trades


def takes_orders(service: EngineService) -> bool:
    """Ready: recovery has finished and the engine is not stopping (/readyz, /status,
    `tickplane_engine_ready`)."""
    return bool(service.ready and not service.stopping)


def loop_age(service: EngineService) -> float | None:
    """Seconds since the loop's last turn or idle wake; None while it is not looping
    (before it starts: recovery, which readiness covers; stopping: the final snapshot)."""
    beat = service.loop_beat_ns
    if beat == 0 or service.stopping:
        return None
    return (time.perf_counter_ns() - beat) / 1e9


def serve_http(service: EngineService, host: str, port: int) -> ThreadingHTTPServer:
    """Start the HTTP endpoint in a daemon thread; return the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(service.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                age = loop_age(service)
                if age is not None and age > LOOP_STALE_SECONDS:
                    why = f"loop stalled: no turn for {age:.1f}s (bound {LOOP_STALE_SECONDS:g}s)\n"
                    self._send(503, why.encode())
                else:
                    self._send(200, b"ok\n")
            elif path == "/readyz":
                if takes_orders(service):
                    self._send(200, b"ready\n")
                else:
                    self._send(503, b"stopping\n" if service.stopping else b"recovering\n")
            elif path == "/status":
                self._send(200, json.dumps(_status(service)).encode(), "application/json")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the engine's own log

    # Read at scrape time, so the metric and /readyz never disagree.
    service.metrics.ready.set_function(lambda: float(takes_orders(service)))
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="engine-http", daemon=True).start()
    return server


def _status(service: EngineService) -> dict[str, Any]:
    return {
        "engine": service.config.name,
        "ready": takes_orders(service),
        "loop_age_seconds": loop_age(service),
        "cpus": service.cpus,
        "pinned_cpu": service.pinned,
        "io_cpus": service.io_cpus,
        "last_seq": service.state.seq,
        "symbols": service.state.symbols,
        "accounts": len(service.state.accounts) - 1,
        "open_orders": len(service.state.core),
        "venue": {
            "kind": service.config.venue.kind,
            "connected": service.venue_status.connected,
            "detail": service.venue_status.detail,
            "degraded": service.venue_status.degraded,
            "routed_orders": len(service.state.routed),
            "unreachable": service.config.venue.unreachable,
            "fallback_active": service.falls_back(),
            "fallback_orders": {
                when: int(service.metrics.venue_fallbacks[when].value)
                for when in ("new", "in_flight")
            },
        },
    }
