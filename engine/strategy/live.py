"""The live runner: a strategy against a real engine process, through `EngineClient`.

It implements `Runtime` over the engine's order entry and event stream:
- orders go out one at a time, in the order the strategy sent them, as the runner's
  `account`, each tagged with `client_order_id` "<strategy>-<run>-<id>" so the engine's
  `accepted` event names the strategy's own id (the event can arrive before the reply);
- the event stream (gap-free, replayed from the engine's last seq at start) gives the
  order life cycle (accepted, rejected, canceled, replaced, trades as fills, maker or
  taker) for this account, and every trade of the symbol as market data;
- the symbol's top-of-book topic gives quotes (and `on_book` snapshots);
- the clock is the wall clock; timers are asyncio tasks.

Metrics (Prometheus, `--metrics-port`): P&L, position, open orders, orders by outcome,
fills, paused; labels are the strategy name and symbol (bounded).

The same port answers `GET /status` (JSON: name, strategy, symbol, account, state, P&L,
position, orders, params) and `POST /pause` / `POST /resume`. Pausing is the loss limit's
pause by hand: the strategy's orders are canceled and new ones refused until resumed;
resuming clears a manual pause only (a loss-limit pause stays). Control needs the bearer
token of `TICKPLANE_STRATEGY_CONTROL_TOKEN`; with none configured it is refused (403),
while `/status` and `/metrics` stay readable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineError
from tickplane.core.events import (
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    TopOfBook,
    Trade,
)
from tickplane.engine.strategy.base import Strategy
from tickplane.engine.strategy.model import BookSnapshot, Fill, MarketTrade, Order, Quote

__all__ = [
    "CONTROL_TOKEN_ENV",
    "NAME_ENV",
    "LiveRunner",
    "RunnerMetrics",
    "default_events_endpoint",
]

#: The bearer token `POST /pause` and `POST /resume` need (unset: control refused).
CONTROL_TOKEN_ENV = "TICKPLANE_STRATEGY_CONTROL_TOKEN"
#: The runner's name in `/status` (default: "<strategy>-<symbol>", lower case, dashes).
NAME_ENV = "TICKPLANE_STRATEGY_NAME"

log = logging.getLogger("tickplane.strategy.live")


def default_events_endpoint(order_entry: str) -> str:
    """The engine's event endpoint by its default layout: order entry port + 1."""
    u = urlsplit(order_entry)
    if u.scheme != "tcp" or u.hostname is None or u.port is None:
        raise ValueError(f"--engine {order_entry!r}: expected tcp://HOST:PORT")
    return f"tcp://{u.hostname}:{u.port + 1}"


class RunnerMetrics:
    """The runner's Prometheus series (module docstring)."""

    def __init__(self, strategy: Strategy, registry: CollectorRegistry) -> None:
        labels = {"strategy": strategy.name or type(strategy).__name__, "symbol": strategy.symbol}
        names = list(labels)
        values = list(labels.values())

        def gauge(name: str, doc: str, fn: Any) -> None:
            Gauge(name, doc, names, registry=registry).labels(*values).set_function(fn)

        gauge(
            "tickplane_strategy_pnl",
            "P&L: realized + unrealized - fees (ticks x lots)",
            lambda: strategy.ledger.total(strategy.mark),
        )
        gauge(
            "tickplane_strategy_realized_pnl",
            "Realized P&L (ticks x lots)",
            lambda: strategy.ledger.realized,
        )
        gauge(
            "tickplane_strategy_position",
            "Signed position (lots)",
            lambda: strategy.ledger.position,
        )
        gauge("tickplane_strategy_open_orders", "Live orders", lambda: len(strategy.open_orders()))
        gauge(
            "tickplane_strategy_paused",
            "1 while paused (by the loss limit or by hand)",
            lambda: 1 if strategy.paused else 0,
        )
        self.orders = Counter(
            "tickplane_strategy_orders_total",
            "Orders by outcome",
            [*names, "outcome"],
            registry=registry,
        )
        self.fills = Counter(
            "tickplane_strategy_fills_total", "Fills", names, registry=registry
        ).labels(*values)
        self._values = values

    def order(self, outcome: str) -> None:
        self.orders.labels(*self._values, outcome).inc()


class LiveRunner:
    """Runs one strategy against an engine (module docstring)."""

    def __init__(
        self,
        strategy: Strategy,
        order_entry: str,
        events: str,
        *,
        account: str,
        metrics_port: int = 0,
        registry: CollectorRegistry | None = None,
        name: str | None = None,
        control_token: str | None = None,
    ) -> None:
        self.strategy = strategy
        self.account = account
        default_name = f"{strategy.name or 'strategy'}-{strategy.symbol}".lower().replace("_", "-")
        self.name = name or os.environ.get(NAME_ENV) or default_name
        token = control_token if control_token is not None else os.environ.get(CONTROL_TOKEN_ENV)
        self.control_token = token or None
        self.manual_pause = False
        self.fills = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client = EngineClient(order_entry, events)
        self.metrics_port = metrics_port
        self.registry = registry or CollectorRegistry()
        self.metrics = RunnerMetrics(strategy, self.registry)
        self.prefix = f"{strategy.name or 'strategy'}-{os.getpid()}-{time.time_ns() % 10**9}-"
        self._outbox: asyncio.Queue[tuple[str, Order, int | None, int | None]] = asyncio.Queue()
        self._by_venue: dict[int, Order] = {}
        self._cancel_on_accept: set[int] = set()
        self._timer: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._settled = asyncio.Event()
        self.ready = asyncio.Event()
        self.logs: list[str] = []
        strategy.attach(self)

    # -- Runtime ------------------------------------------------------------------------------

    def now(self) -> int:
        return time.time_ns()

    def send_new(self, order: Order) -> None:
        if self._stopping:
            # Stopping: what the strategy sends while its orders are canceled is refused.
            self.strategy._handle_rejected(order.id, "strategy_stopping")
            return
        self._outbox.put_nowait(("new", order, None, None))

    def send_cancel(self, order: Order) -> None:
        self._outbox.put_nowait(("cancel", order, None, None))

    def send_replace(self, order: Order, qty: int | None, price: int | None) -> None:
        self._outbox.put_nowait(("replace", order, qty, price))

    def set_timer(self, interval_ns: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if interval_ns > 0:
            self._timer = asyncio.get_running_loop().create_task(self._tick(interval_ns))

    def log(self, strategy: str, message: str) -> None:
        self.logs.append(message)
        log.info("%s: %s", strategy, message)

    # -- running -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to finish (cancels the strategy's orders first)."""
        self._stop.set()

    async def run(self, duration: float | None = None) -> int:
        """Run until `stop()`, SIGINT/SIGTERM or `duration` seconds: 0. Waits for an
        engine that is not there yet; 1 if the event stream fails (it cannot resync:
        a restart starts clean)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        server = None
        if self.metrics_port:
            server = _serve(self.metrics_port, _RunnerApp(self, make_wsgi_app(self.registry)))
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)
        s = self.strategy
        log.info(
            "running %s on %s as %s with params %s",
            s.name or type(s).__name__,
            s.symbol,
            self.account,
            msgspec.json.encode(s.params).decode(),
        )
        self.client.connect()
        deadline = loop.time() + duration if duration else None
        try:
            pong = await self._reach_engine()
            if pong is None:
                return 0
            consumer = loop.create_task(self._consume(pong.last_seq + 1))
            sender = loop.create_task(self._send_loop())
            stopped = loop.create_task(self._stop.wait())
            self.strategy._handle_start()
            self.ready.set()
            code = 0
            try:
                left = deadline - loop.time() if deadline is not None else None
                await asyncio.wait(
                    {stopped, consumer}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if consumer.done() and not consumer.cancelled():
                    log.error("the event stream failed: %r; stopping", consumer.exception())
                    code = 1
                self._stopping = True
                self.strategy.cancel_all()
                if code == 0:
                    await self._drain()
            finally:
                self.set_timer(0)
                for task in (sender, consumer, stopped):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, EngineError):
                        await task
                self.strategy._handle_stop()
            return code
        finally:
            await self.client.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            if server is not None:
                server.shutdown()
                server.server_close()

    # -- status and control (on the metrics port) ----------------------------------------------

    def state(self) -> str:
        """starting, running, paused (by hand or the loss limit) or stopping."""
        if self._stopping or self._stop.is_set():
            return "stopping"
        if not self.ready.is_set():
            return "starting"
        return "paused" if self.strategy.paused else "running"

    def status(self) -> dict[str, Any]:
        """What `GET /status` answers (read on the event loop's thread)."""
        s = self.strategy
        orders = sum(1 for o in s.orders.values() if o.venue_id is not None)
        paused_by = None
        if s.paused:
            paused_by = "manual" if self.manual_pause else "loss_limit"
        return {
            "name": self.name,
            "strategy": s.name or type(s).__name__,
            "symbol": s.symbol,
            "account": self.account,
            "state": self.state(),
            "paused_by": paused_by,
            "pnl": s.ledger.total(s.mark),
            "realized_pnl": float(s.ledger.realized),
            "position": s.ledger.position,
            "open_orders": len(s.open_orders()),
            "orders": orders,
            "fills": self.fills,
            "params": msgspec.to_builtins(s.params),
        }

    def pause(self) -> int:
        """Pause by hand: cancel every live order, refuse new ones. Returns how many
        cancels were asked."""
        s = self.strategy
        if not s.paused:
            self.manual_pause = True
            s.paused = True
            s.log("paused by hand")
        return s.cancel_all()

    def resume(self) -> bool:
        """Clear a manual pause; False if the strategy is paused by its loss limit (or
        not paused at all)."""
        if not self.manual_pause:
            return False
        self.manual_pause = False
        self.strategy.resume()
        self.strategy.log("resumed by hand")
        return True

    def on_loop(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run `fn` on the event loop's thread (the HTTP server's threads call this)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the runner is not running")
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except Exception as exc:  # handed to the HTTP thread, which answers 500
                done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return done.result(timeout)

    async def _reach_engine(self) -> wire.Ack | None:
        """Ping until the engine answers (None if stopped first)."""
        while not self._stop.is_set():
            try:
                pong = await self.client.ping()
            except EngineError as exc:
                log.warning(
                    "engine at %s not reachable (%s); retrying", self.client.order_entry, exc
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                continue
            if isinstance(pong, wire.Ack):
                return pong
            raise EngineError(f"the engine refused a ping: {pong.reason}")
        return None

    async def _drain(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout`) until every request went out and every live order
        is answered; the answers arrive through the event stream task."""
        self._settled.clear()
        self._check_settled()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)

    def _check_settled(self) -> None:
        if self._stopping and self._outbox.empty() and not self.strategy.open_orders():
            self._settled.set()

    async def _tick(self, interval_ns: int) -> None:
        while True:
            await asyncio.sleep(interval_ns / 1e9)
            self.strategy._handle_timer(self.now())

    async def _send_loop(self) -> None:
        while True:
            kind, order, qty, price = await self._outbox.get()
            try:
                await self._send(kind, order, qty, price)
                self._check_settled()
            except EngineError as exc:
                log.warning("%s of order %d failed: %s", kind, order.id, exc)
                if kind == "new":
                    self.metrics.order("rejected")
                    self.strategy._handle_rejected(order.id, "engine_unavailable")

    async def _send(self, kind: str, order: Order, qty: int | None, price: int | None) -> None:
        c, s = self.client, self.strategy
        if kind == "new":
            if not order.is_live:
                return
            self.metrics.order("submitted")
            reply = await c.submit(
                self.account,
                order.symbol,
                order.side,
                order.order_type,
                order.qty,
                price=order.price,
                tif=order.tif,
                post_only=order.post_only,
                client_order_id=self.prefix + str(order.id),
            )
            if isinstance(reply, wire.Reject):
                self.metrics.order("rejected")
                s._handle_rejected(order.id, reply.reason)
            elif reply.order_id is not None and order.venue_id is None:
                order.venue_id = reply.order_id
                self._by_venue[reply.order_id] = order
            return
        if order.venue_id is None:
            if kind == "cancel" and order.is_live:
                self._cancel_on_accept.add(order.id)
            return
        if kind == "cancel":
            await c.cancel(self.account, order.venue_id)
        else:
            reply = await c.replace(self.account, order.venue_id, qty=qty, price=price)
            if isinstance(reply, wire.Reject):
                self.log(s.name, f"replace of order {order.id} refused: {reply.reason}")

    # -- events ------------------------------------------------------------------------------

    def _own(self, venue_id: int) -> Order | None:
        return self._by_venue.get(venue_id)

    async def _consume(self, start: int | None) -> None:
        s = self.strategy
        symbol = s.symbol
        async for ev in self.client.events(start, market_data=[symbol]):
            self._dispatch(ev, s, symbol)
            if self._stopping:
                self._check_settled()

    def _dispatch(self, ev: object, s: Strategy, symbol: str) -> None:
        """Hand one event or market-data message to the strategy."""
        if isinstance(ev, TopOfBook):
            if ev.symbol != symbol:
                return
            bid = ev.bids[0] if ev.bids else None
            ask = ev.asks[0] if ev.asks else None
            s._handle_quote(
                Quote(
                    ev.ts_event,
                    symbol,
                    bid.price if bid else None,
                    bid.qty if bid else 0,
                    ask.price if ask else None,
                    ask.qty if ask else 0,
                )
            )
            if s.wants_book:
                s._handle_book(
                    BookSnapshot(
                        ev.ts_event,
                        symbol,
                        tuple((lv.price, lv.qty) for lv in ev.bids),
                        tuple((lv.price, lv.qty) for lv in ev.asks),
                    )
                )
        elif isinstance(ev, Trade):
            if ev.symbol != symbol:
                return
            for venue_id, acct, liq in (
                (ev.taker, ev.taker_account, "taker"),
                (ev.maker, ev.maker_account, "maker"),
            ):
                o = self._own(venue_id) if acct == self.account else None
                if o is not None:
                    self.metrics.fills.inc()
                    self.fills += 1
                    s._handle_fill(
                        Fill(
                            ev.ts_event,
                            o.id,
                            symbol,
                            o.side,
                            ev.price,
                            ev.qty,
                            0.0,
                            "taker" if liq == "taker" else "maker",
                        )
                    )
                    if o.status == "filled":
                        self.metrics.order("filled")
            side = ev.taker_side if ev.taker_side in ("buy", "sell") else None
            s._handle_trade(MarketTrade(ev.ts_event, symbol, ev.price, ev.qty, side))  # type: ignore[arg-type]
        elif isinstance(ev, OrderAccepted):
            if ev.account != self.account or not (ev.client_order_id or "").startswith(self.prefix):
                return
            assert ev.client_order_id is not None
            local = s.orders.get(int(ev.client_order_id[len(self.prefix) :]))
            if local is None:
                return
            local.venue_id = ev.id
            self._by_venue[ev.id] = local
            self.metrics.order("accepted")
            s._handle_accepted(local.id)
            if local.id in self._cancel_on_accept:
                self._cancel_on_accept.discard(local.id)
                self.send_cancel(local)
        elif isinstance(ev, OrderCanceled):
            o = self._own(ev.id) if ev.account == self.account else None
            if o is not None:
                self.metrics.order("canceled")
                s._handle_canceled(o.id, ev.reason)
        elif isinstance(ev, OrderReplaced):
            o = self._own(ev.id) if ev.account == self.account else None
            if o is not None:
                s._handle_replaced(o.id, ev.qty, ev.price)
        elif isinstance(ev, OrderRejected):
            o = self._own(ev.id) if ev.account == self.account else None
            if o is not None:
                self.metrics.order("rejected")
                s._handle_rejected(o.id, ev.reason)


# -- the runner's HTTP endpoint -----------------------------------------------------------------

_StartResponse = Callable[..., Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(port: int, app: Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]) -> Any:
    """Serve `app` on `port` (all interfaces, as the metrics did) in a daemon thread."""
    server = make_server("", port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="runner-http", daemon=True).start()
    return server


class _RunnerApp:
    """WSGI: /status, /pause, /resume; everything else is Prometheus's app (/metrics)."""

    def __init__(self, runner: LiveRunner, metrics: Any) -> None:
        self.runner = runner
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start: _StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/status":
            if method != "GET":
                return _json(start, 405, {"reason": "method_not_allowed", "message": "GET"})
            return _json(start, 200, self.runner.on_loop(self.runner.status))
        if path in ("/pause", "/resume"):
            if method != "POST":
                return _json(start, 405, {"reason": "method_not_allowed", "message": "POST"})
            refused = self._refuse(environ.get("HTTP_AUTHORIZATION", ""))
            if refused is not None:
                return _json(start, *refused)
            r = self.runner
            if path == "/pause":
                canceled = r.on_loop(r.pause)
                # Answer once the engine confirmed the cancels (bounded): the caller sees
                # the orders gone, not merely asked to go.
                deadline = time.monotonic() + 2.0
                status = r.on_loop(r.status)
                while status["open_orders"] and time.monotonic() < deadline:
                    time.sleep(0.01)
                    status = r.on_loop(r.status)
                return _json(start, 200, {**status, "canceled": canceled})
            if not r.on_loop(r.resume) and r.strategy.paused:
                message = "paused by its loss limit, not by hand: restart it to trade again"
                return _json(start, 409, {"reason": "loss_limit_pause", "message": message})
            return _json(start, 200, r.on_loop(r.status))
        result: Iterable[bytes] = self.metrics(environ, start)
        return result

    def _refuse(self, authorization: str) -> tuple[int, dict[str, str]] | None:
        token = self.runner.control_token
        if token is None:
            message = f"control is off: {CONTROL_TOKEN_ENV} is not set for this runner"
            return 403, {"reason": "control_disabled", "message": message}
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            return 401, {"reason": "unauthorized", "message": "send the control token as Bearer"}
        return None


def _json(start: _StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    phrases = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}
    data = msgspec.json.encode(body)
    start(
        f"{status} {phrases.get(status, 'Conflict')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]
