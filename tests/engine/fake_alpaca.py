"""A local server speaking the parts of Alpaca's trading API that the Alpaca venue uses.

REST (``/v2/orders``, ``/v2/orders/{id}``, ``/v2/orders:by_client_order_id``,
``/v2/account``) on one port, the ``trade_updates`` websocket (``/stream``) on another,
both on 127.0.0.1 with ports the OS picks, as ``../shared/contracts/alpaca.md`` describes:
auth headers checked, error bodies ``{"code", "message"}``, order ids UUIDs. It keeps a
tiny book: orders rest until the test fills them (`fill`), a market order fills at once
when the symbol has a `last_price` (a trailing stop when a `trade` reaches its stop), and
buy orders are checked against `buying_power`.

Order classes as Alpaca has them: a ``trailing_stop`` (``trail_price`` or
``trail_percent``; its ``stop_price`` and ``hwm`` follow `trade`, which also triggers
it; a PATCH's ``trail`` replaces its trail, of the kind it has, its stop worked out
again from its watermark, triggering it if the last price is through; ``trail`` on any
other type is a 422), and ``bracket``, ``oto`` and ``oco`` orders with
``take_profit``/``stop_loss``, whose legs are orders of their own (nested in the
parent's ``legs``; no client order id of the caller's). A bracket's or OTO's legs are
``held`` until the parent is filled, then ``new``; when the parent is canceled unfilled
they are canceled, partly filled they work what it filled; when one leg is filled the
other is canceled. An OCO is its take-profit limit (the parent) and its stop-loss leg,
both working; when one fills, the other is canceled.

Control for tests: `fill`, `trade`, `expire`, `reject`, `fail_next` (5xx or any status, optionally
after doing the work), `hang_next`/`release` (a request that never answers),
`hold_replaced`/`send_replaced` (a replacement's updates ahead of the `replaced` event
of the order it replaced), `stop` / `start` (an outage of both servers; ports are kept)
and `stop_stream` / `start_stream` (only the websocket). `wait_until` waits on a
condition over the fake's state.

Built on the standard library's HTTP server and `websockets`, no other dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

T = TypeVar("T")

OPEN = {"new", "accepted", "pending_new", "partially_filled", "held"}
TYPES = {"market", "limit", "stop", "stop_limit", "trailing_stop"}
CLASSES = {"simple", "bracket", "oto", "oco"}
TIFS = {"day", "gtc", "opg", "cls", "ioc", "fok"}


def rfc3339(ns: int) -> str:
    """`ns` since the epoch as RFC 3339 with nanoseconds, as Alpaca writes them."""
    seconds, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def _text(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


@dataclass
class FakeOrder:
    """One order in the fake's book (prices as the exact decimals it was sent)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: int
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str = "accepted"
    filled_qty: int = 0
    notional: Decimal = Decimal(0)
    created_ns: int = field(default_factory=time.time_ns)
    updated_ns: int = field(default_factory=time.time_ns)
    replaced_by: str | None = None
    replaces: str | None = None
    order_class: str = "simple"
    legs: list[FakeOrder] = field(default_factory=list)
    parent: FakeOrder | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None

    @property
    def open(self) -> bool:
        """Still working (can fill, be canceled or replaced)."""
        return self.status in OPEN

    def to_json(self) -> dict[str, Any]:
        """The order object of Alpaca's API."""
        avg = None if self.filled_qty == 0 else self.notional / self.filled_qty
        created = rfc3339(self.created_ns)
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": created,
            "updated_at": rfc3339(self.updated_ns),
            "submitted_at": created,
            "filled_at": rfc3339(self.updated_ns) if self.status == "filled" else None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(self.qty),
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": _text(avg),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": _text(self.limit_price),
            "stop_price": _text(self.stop_price),
            "status": self.status,
            "extended_hours": False,
            "legs": [leg.to_json() for leg in self.legs] or None,
            "trail_price": _text(self.trail_price),
            "trail_percent": _text(self.trail_percent),
            "hwm": _text(self.hwm),
        }

    def trail(self) -> None:
        """A trailing stop's stop from its watermark."""
        if self.hwm is None:
            return
        if self.trail_price is not None:
            gap = self.trail_price
        else:
            assert self.trail_percent is not None
            gap = (self.hwm * self.trail_percent / 100).quantize(Decimal("0.01"))
        self.stop_price = self.hwm - gap if self.side == "sell" else self.hwm + gap


@dataclass
class _Failure:
    status: int
    message: str
    apply: bool  # do the work first, then answer with the failure
    method: str | None = None  # only requests of this method (None: any)
    path: str | None = None  # only requests to this path (None: any)
    retry_after: str | None = None  # the answer's Retry-After header (None: none)

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and self.path in (None, path)


class ApiError(Exception):
    """An answer with Alpaca's error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeAlpaca:
    """The fake Alpaca: `start` it (or use it as a context manager), point alpaca-py at
    `rest_url` and `stream_url`, drive it from the test."""

    def __init__(
        self,
        key_id: str = "PKFAKEKEY",
        secret_key: str = "fake-secret",
        symbols: tuple[str, ...] = ("AAPL", "MSFT", "SPY"),
        buying_power: Decimal = Decimal("1000000"),
    ) -> None:
        self.key_id, self.secret_key = key_id, secret_key
        self.symbols = set(symbols)
        self.buying_power = buying_power
        self.last_price: dict[str, Decimal] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.positions: dict[str, int] = {}
        self.requests: list[tuple[str, str, Any]] = []  # every (method, path, JSON body)
        self.request_times: list[float] = []  # when each came (time.monotonic)
        self.published: list[dict[str, Any]] = []
        self.account_id = str(uuid.uuid4())
        self._cond = threading.Condition(threading.RLock())
        self._failures: list[_Failure] = []
        self._hangs = 0
        self._hang_after = False
        self._hang_method: str | None = None
        self._hung = 0
        self._release = threading.Event()
        # `hold_replaced`: a replaced order's `replaced` event waits for `send_replaced`
        self.hold_replaced = False
        self._held_replaced: list[FakeOrder] = []
        self._stopped = True
        self.rest_port = 0
        self.stream_port = 0
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._ws: Server | None = None
        self._listeners: set[asyncio.Queue[str | None]] = set()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="fake-alpaca-ws", daemon=True
        )
        self._loop_thread.start()

    # ------------------------------------------------------------------ lifecycle

    @property
    def rest_url(self) -> str:
        """The REST base URL for `TradingClient(url_override=...)` (no ``/v2``)."""
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def stream_url(self) -> str:
        """The trade_updates URL for `TradingStream(url_override=...)`."""
        return f"ws://127.0.0.1:{self.stream_port}/stream"

    def start(self) -> None:
        """Serve REST and the stream (on the same ports as before after a `stop`)."""
        with self._cond:
            self._stopped = False
            self._release.clear()
        self._start_rest()
        self.start_stream()

    def stop(self) -> None:
        """An outage: both servers go away, open websocket connections are closed and
        hanging requests are dropped without an answer. The book is kept."""
        with self._cond:
            self._stopped = True
            self._release.set()
        self.stop_stream()
        self.stop_rest()

    def stop_rest(self) -> None:
        """Take REST away (the stream keeps working): connections are refused, so a
        client knows its requests never arrived. The book is kept."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(5)
            self._http_thread = None

    def start_rest(self) -> None:
        """Serve REST again, on the same port."""
        self._start_rest()

    def close(self) -> None:
        """Stop and end the fake's event loop thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)
        self._loop.close()

    def __enter__(self) -> FakeAlpaca:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_rest(self) -> None:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = ThreadingHTTPServer(("127.0.0.1", self.rest_port), Handler)
        server.daemon_threads = True
        self.rest_port = server.server_address[1]
        self._http = server
        self._http_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._http_thread.start()

    def start_stream(self) -> None:
        """Serve the websocket (again)."""

        async def go() -> None:
            self._ws = await serve(self._serve_ws, "127.0.0.1", self.stream_port)
            self.stream_port = self._ws.sockets[0].getsockname()[1]

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    def stop_stream(self) -> None:
        """Take the websocket away (REST keeps working): clients are disconnected."""

        async def go() -> None:
            if self._ws is not None:
                for q in list(self._listeners):
                    q.put_nowait(None)
                self._ws.close()
                await self._ws.wait_closed()
                self._ws = None

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    # ------------------------------------------------------------------ test controls

    def wait_until(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Wait until `predicate()` (called under the fake's lock) is truthy; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met in time")
                self._cond.wait(left)

    def order(self, key: str) -> FakeOrder:
        """An order by its id or client_order_id."""
        with self._cond:
            if key in self.orders:
                return self.orders[key]
            for o in self.orders.values():
                if o.client_order_id == key:
                    return o
        raise KeyError(key)

    def wait_order(self, client_order_id: str, timeout: float = 10.0) -> FakeOrder:
        """Wait until an order with this client_order_id exists."""

        def find() -> FakeOrder | None:
            for o in self.orders.values():
                if o.client_order_id == client_order_id:
                    return o
            return None

        found = self.wait_until(find, timeout)
        assert found is not None
        return found

    def fail_next(
        self,
        status: int = 500,
        count: int = 1,
        message: str = "",
        apply: bool = False,
        method: str | None = None,
        path: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """The next `count` REST requests (of `method` to `path` only, if given) answer
        `status` with an error body (and a ``Retry-After`` header, if given, as Alpaca
        may send with a 429); with `apply`, each request is carried out first, its
        stream events and a market order's fill included (a 5xx after the order was
        taken)."""
        text = message or HTTPStatus(status).phrase.lower()
        failure = _Failure(status, text, apply, method, path, retry_after)
        with self._cond:
            self._failures.extend(failure for _ in range(count))

    def clear_failures(self) -> None:
        """Forget the failures `fail_next` queued that have not happened yet."""
        with self._cond:
            self._failures.clear()

    def hang_next(
        self, count: int = 1, after_apply: bool = False, method: str | None = None
    ) -> None:
        """The next `count` REST requests (of `method` only, when given) get no answer
        until `release` or `stop`; with `after_apply`, each is carried out (and its
        stream events sent) before it hangs."""
        with self._cond:
            self._hangs += count
            self._hang_after = after_apply
            self._hang_method = method
            self._release.clear()

    def release(self) -> None:
        """Let hanging requests go on (they are then answered normally)."""
        self._release.set()

    def send_replaced(self) -> None:
        """Publish the `replaced` events `hold_replaced` held back, in order (Alpaca
        may stream a replacement's own updates, a fill even, before them)."""
        with self._cond:
            held, self._held_replaced = self._held_replaced, []
            for o in held:
                self._publish("replaced", o)

    @property
    def hung(self) -> int:
        """How many requests are hanging right now."""
        with self._cond:
            return self._hung

    def fill(self, key: str, price: Decimal | str, qty: int) -> dict[str, Any]:
        """Execute `qty` of an open order at `price`; publishes ``partial_fill`` or
        ``fill`` and returns the event's data (its ``timestamp`` and ``execution_id``)."""
        with self._cond:
            o = self.order(key)
            if not o.open or qty <= 0 or qty > o.qty - o.filled_qty:
                raise ValueError(f"cannot fill {qty} of {o.status} order {o.id}")
            return self._fill(o, Decimal(price), qty)

    def stream(self, event: str, o: FakeOrder, **extra: Any) -> None:
        """Stream a trade update of `o` as it is, an order the fake need not hold:
        another program's in the same account (Alpaca streams every order of it)."""
        with self._cond:
            self._publish(event, o, **extra)

    def trade(self, symbol: str, price: Decimal | str) -> None:
        """A print at `price`: the symbol's last price, which trailing stops follow (their
        `hwm` and `stop_price` move; Alpaca publishes nothing for that). A plain stop or
        a trailing stop whose stop the print reaches (a sell's at or below it, a buy's at
        or above) triggers: a market order, filled at once at `price` for what it has
        open. (Legs are not triggered here: their tests fill them with `fill`.)"""
        with self._cond:
            p = Decimal(price)
            self.last_price[symbol] = p
            for o in list(self.orders.values()):
                if not o.open or o.symbol != symbol or o.parent is not None:
                    continue
                if o.type == "trailing_stop":
                    if o.hwm is None or (p > o.hwm if o.side == "sell" else p < o.hwm):
                        o.hwm = p
                        o.trail()
                elif o.type != "stop":
                    continue
                self._trigger(o, p)
            self._cond.notify_all()

    def expire(self, key: str) -> None:
        """The order's time in force ran out: ``expired``."""
        with self._cond:
            o = self.order(key)
            o.status = "expired"
            self._publish("expired", o)

    def reject(self, key: str) -> None:
        """The exchange refused the order after Alpaca took it: ``rejected``."""
        with self._cond:
            o = self.order(key)
            o.status = "rejected"
            self._publish("rejected", o)

    # ------------------------------------------------------------------ the book

    def _trigger(self, o: FakeOrder, last: Decimal) -> None:
        """A stop or trailing stop whose stop the last price reached (a sell's at or
        below it, a buy's at or above) triggers: filled at once at that price."""
        stop = o.stop_price
        if stop is not None and (last <= stop if o.side == "sell" else last >= stop):
            self._fill(o, last, o.qty - o.filled_qty)

    def _fill(self, o: FakeOrder, price: Decimal, qty: int) -> dict[str, Any]:
        o.filled_qty += qty
        o.notional += price * qty
        o.status = "filled" if o.filled_qty == o.qty else "partially_filled"
        o.updated_ns = time.time_ns()
        signed = qty if o.side == "buy" else -qty
        self.positions[o.symbol] = self.positions.get(o.symbol, 0) + signed
        event = "fill" if o.status == "filled" else "partial_fill"
        data = self._publish(
            event,
            o,
            price=format(price, "f"),
            qty=str(qty),
            position_qty=str(self.positions[o.symbol]),
            execution_id=str(uuid.uuid4()),
        )
        if o.status == "filled":
            if o.order_class in ("bracket", "oto") and o.parent is None:
                for leg in o.legs:  # the entry is in: its exits work
                    if leg.status == "held":
                        leg.status = "new"
                        self._publish("new", leg)
            else:  # an exit filled: its siblings are canceled (an OCO's limit too)
                group = o.parent or o
                others = [*group.legs, group] if group.order_class == "oco" else group.legs
                for other in others:
                    if other is not o and other.open:
                        other.status = "canceled"
                        self._publish("canceled", other)
        return data

    def _cancel(self, o: FakeOrder) -> None:
        """Cancel `o`; a bracket's or OTO's held legs go with an unfilled parent and
        work what a partly filled one filled; an OCO's stop goes with its limit."""
        o.status = "canceled"
        self._publish("canceled", o)
        for leg in o.legs:
            if not leg.open:
                continue
            if o.order_class == "oco" or o.filled_qty == 0:
                leg.status = "canceled"
                self._publish("canceled", leg)
            elif leg.status == "held":
                leg.qty = o.filled_qty
                leg.status = "new"
                self._publish("new", leg)

    def _publish(self, event: str, o: FakeOrder, **extra: Any) -> dict[str, Any]:
        o.updated_ns = time.time_ns()
        data = {"event": event, "timestamp": rfc3339(time.time_ns()), "order": o.to_json()}
        data.update(extra)
        msg = {"stream": "trade_updates", "data": data}
        self.published.append(msg)
        text = json.dumps(msg)

        def deliver() -> None:
            for q in self._listeners:
                q.put_nowait(text)

        if not self._stopped:
            self._loop.call_soon_threadsafe(deliver)
        self._cond.notify_all()
        return data

    def _new_order(self, body: dict[str, Any]) -> FakeOrder:
        symbol = body.get("symbol")
        if symbol not in self.symbols:
            raise ApiError(422, 40010001, f'asset "{symbol}" not found')
        side, kind, tif = body.get("side"), body.get("type"), body.get("time_in_force")
        if side not in ("buy", "sell"):
            raise ApiError(422, 40010001, "side must be buy or sell")
        if kind not in TYPES:
            raise ApiError(422, 40010001, f"invalid order type {kind!r}")
        if tif not in TIFS:
            raise ApiError(422, 40010001, f"invalid time_in_force {tif!r}")
        qty = _int(body.get("qty"), "qty")
        limit = _price(body.get("limit_price"), "limit_price")
        stop = _price(body.get("stop_price"), "stop_price")
        cls = body.get("order_class") or "simple"
        if cls not in CLASSES:
            raise ApiError(422, 40010001, f"invalid order_class {cls!r}")
        tp = body.get("take_profit") or {}
        sl = body.get("stop_loss") or {}
        if cls == "oco":
            if kind != "limit" or not tp or not sl:
                raise ApiError(422, 40010001, "oco orders take type limit, take_profit, stop_loss")
            limit = limit or _price(tp.get("limit_price"), "take_profit.limit_price")
        if cls == "bracket" and (not tp or not sl):
            raise ApiError(422, 40010001, "bracket orders need take_profit and stop_loss")
        if cls == "oto" and bool(tp) == bool(sl):
            raise ApiError(422, 40010001, "oto orders need take_profit or stop_loss")
        trail_price = _price(body.get("trail_price"), "trail_price")
        trail_percent = _price(body.get("trail_percent"), "trail_percent")
        if kind == "trailing_stop" and (trail_price is None) == (trail_percent is None):
            raise ApiError(422, 40010001, "trailing_stop takes trail_price or trail_percent")
        if kind in ("limit", "stop_limit") and limit is None:
            raise ApiError(422, 40010001, "limit_price is required")
        if kind in ("stop", "stop_limit") and stop is None:
            raise ApiError(422, 40010001, "stop_price is required")
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if any(o.client_order_id == coid for o in self.orders.values()):
            raise ApiError(422, 40010001, "client_order_id must be unique")
        if side == "buy":
            ref = limit or stop or self.last_price.get(str(symbol), Decimal(0))
            if ref * qty > self.buying_power:
                raise ApiError(403, 40310000, "insufficient buying power")
        o = FakeOrder(str(uuid.uuid4()), coid, str(symbol), side, kind, qty, tif, limit, stop)
        o.order_class = cls
        if kind == "trailing_stop":
            o.trail_price, o.trail_percent = trail_price, trail_percent
            o.hwm = self.last_price.get(str(symbol))
            o.trail()
        self.orders[o.id] = o
        if cls != "simple":
            exit_side = side if cls == "oco" else ("sell" if side == "buy" else "buy")
            status = "new" if cls == "oco" else "held"
            if tp and cls != "oco":
                tp_limit = _price(tp.get("limit_price"), "take_profit.limit_price")
                self._leg(o, exit_side, "limit", tp_limit, None, status)
            if sl:
                sl_stop = _price(sl.get("stop_price"), "stop_loss.stop_price")
                sl_limit = _price(sl.get("limit_price"), "stop_loss.limit_price")
                kind = "stop" if sl_limit is None else "stop_limit"
                self._leg(o, exit_side, kind, sl_limit, sl_stop, status)
        return o

    def _leg(
        self,
        parent: FakeOrder,
        side: str,
        kind: str,
        limit: Decimal | None,
        stop: Decimal | None,
        status: str,
    ) -> None:
        leg = FakeOrder(
            str(uuid.uuid4()),
            str(uuid.uuid4()),  # Alpaca names legs itself
            parent.symbol,
            side,
            kind,
            parent.qty,
            parent.time_in_force,
            limit,
            stop,
            status,
        )
        leg.order_class, leg.parent = parent.order_class, parent
        parent.legs.append(leg)
        self.orders[leg.id] = leg

    # ------------------------------------------------------------------ REST routes

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, Callable[[], None] | None]:
        """One REST request (under the lock): (status, JSON body or None, what to do
        after the answer is sent)."""
        with self._cond:
            if method == "GET" and path == "/v2/account":
                return 200, self._account(), None
            if path == "/v2/orders" and method == "POST":
                o = self._new_order(body if isinstance(body, dict) else {})
                answer = o.to_json()
                return 200, answer, lambda: self._after_new(o)
            if path == "/v2/orders" and method == "GET":
                return 200, self._list(query), None
            if path == "/v2/orders" and method == "DELETE":
                out = []
                for o in list(self.orders.values()):
                    if o.open:
                        self._cancel(o)
                        out.append({"id": o.id, "status": 200})
                return 207, out, None
            if path == "/v2/orders:by_client_order_id" and method == "GET":
                coid = query.get("client_order_id", "")
                for o in self.orders.values():
                    if o.client_order_id == coid:
                        return 200, o.to_json(), None
                raise ApiError(404, 40410000, "order not found")
            if path.startswith("/v2/orders/"):
                one = self.orders.get(path.removeprefix("/v2/orders/"))
                if one is None:
                    raise ApiError(404, 40410000, "order not found")
                o = one
                if method == "GET":
                    return 200, o.to_json(), None
                if method == "DELETE":
                    if not o.open:
                        raise ApiError(422, 42210000, "order is not cancelable")
                    self._cancel(o)
                    return 204, None, None
                if method == "PATCH":
                    new = self._replace(o, body if isinstance(body, dict) else {})
                    return 200, new.to_json(), lambda: self._after_replace(new)
            raise ApiError(404, 40410000, f"no route {method} {path}")

    def _after_new(self, o: FakeOrder) -> None:
        with self._cond:
            if o.status == "accepted":
                o.status = "new"
                self._publish("new", o)
            last = self.last_price.get(o.symbol)
            if o.type == "market" and last is not None and o.open:
                self._fill(o, last, o.qty - o.filled_qty)

    def _after_replace(self, new: FakeOrder) -> None:
        """A trailing stop whose new trail puts its stop at or through the last price
        triggers (after the answer to the PATCH, as a submit's fill)."""
        with self._cond:
            last = self.last_price.get(new.symbol)
            if new.type == "trailing_stop" and new.open and last is not None:
                self._trigger(new, last)

    def _replace(self, o: FakeOrder, body: dict[str, Any]) -> FakeOrder:
        """PATCH: `qty`, `time_in_force`, `limit_price`, `stop_price`, `trail` (a
        trailing stop's new trail_price or trail_percent, the kind it has; its stop is
        worked out again from its watermark), `client_order_id`."""
        if not o.open:
            raise ApiError(422, 42210000, "order is not replaceable")
        qty = _int(body["qty"], "qty") if body.get("qty") is not None else o.qty - o.filled_qty
        trail = _price(body.get("trail"), "trail")
        trailing = o.type == "trailing_stop"
        if trail is not None and not trailing:
            raise ApiError(422, 40010001, "trail is only for trailing_stop orders")
        if trailing and (body.get("limit_price") is not None or body.get("stop_price") is not None):
            raise ApiError(422, 40010001, "a trailing_stop takes trail, not limit or stop prices")
        limit = _price(body.get("limit_price"), "limit_price") or o.limit_price
        stop = _price(body.get("stop_price"), "stop_price") or o.stop_price
        tif = body.get("time_in_force") or o.time_in_force
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if any(x.client_order_id == coid for x in self.orders.values()):
            raise ApiError(422, 40010001, "client_order_id must be unique")
        status = "held" if o.status == "held" else "new"
        new = FakeOrder(
            str(uuid.uuid4()), coid, o.symbol, o.side, o.type, qty, tif, limit, stop, status
        )
        new.replaces = o.id
        new.order_class, new.parent = o.order_class, o.parent
        if trailing:
            new.trail_price, new.trail_percent, new.hwm = o.trail_price, o.trail_percent, o.hwm
            if trail is not None and o.trail_price is not None:
                new.trail_price = trail
            elif trail is not None:
                new.trail_percent = trail
            new.trail()
        if o.parent is not None:  # a leg's replacement takes its place in the group
            o.parent.legs[o.parent.legs.index(o)] = new
        self.orders[new.id] = new
        o.status, o.replaced_by = "replaced", new.id
        if self.hold_replaced:
            self._held_replaced.append(o)
        else:
            self._publish("replaced", o)
        self._publish("new", new)
        return new

    def _account(self) -> dict[str, Any]:
        bp = format(self.buying_power, "f")
        return {
            "id": self.account_id,
            "account_number": "PA0FAKE0001",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "cash": bp,
            "buying_power": bp,
            "regt_buying_power": bp,
            "daytrading_buying_power": bp,
            "non_marginable_buying_power": bp,
            "equity": bp,
            "last_equity": bp,
            "portfolio_value": bp,
            "multiplier": "1",
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": rfc3339(time.time_ns()),
            "shorting_enabled": False,
        }

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status", "open")
        orders = list(self.orders.values())
        if status == "open":
            orders = [o for o in orders if o.open]
        elif status == "closed":
            orders = [o for o in orders if not o.open]
        limit = int(query.get("limit", "50"))
        return [o.to_json() for o in orders[:limit]]

    # ------------------------------------------------------------------ the websocket

    async def _serve_ws(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != "/stream":
            await ws.close(1008, "no such stream")
            return
        with contextlib.suppress(ConnectionClosed, ValueError, KeyError, TypeError):
            auth = json.loads(await ws.recv())
            data = auth.get("data") or {}
            ok = (
                auth.get("action") in ("authenticate", "auth")
                and data.get("key_id") == self.key_id
                and data.get("secret_key") == self.secret_key
            )
            status = "authorized" if ok else "unauthorized"
            await ws.send(
                json.dumps(
                    {
                        "stream": "authorization",
                        "data": {"status": status, "action": "authenticate"},
                    }
                )
            )
            if not ok:
                await ws.close(1008, "unauthorized")
                return
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            try:
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("action") == "listen":
                        streams = list((msg.get("data") or {}).get("streams") or [])
                        await ws.send(
                            json.dumps({"stream": "listening", "data": {"streams": streams}})
                        )
                        if "trade_updates" in streams:
                            break
                self._listeners.add(queue)
                with self._cond:
                    self._cond.notify_all()
                reader = asyncio.ensure_future(self._drain(ws))
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        {getter, reader}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reader in done:
                        getter.cancel()
                        return
                    text = getter.result()
                    if text is None:
                        reader.cancel()
                        return
                    await ws.send(text)
            finally:
                self._listeners.discard(queue)
                with self._cond:
                    self._cond.notify_all()

    @property
    def listeners(self) -> int:
        """Connections listening to trade_updates right now."""
        return len(self._listeners)

    @staticmethod
    async def _drain(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass


def _int(value: Any, name: str) -> int:
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        raise ApiError(422, 40010001, f"{name} is not a number") from None
    if isinstance(value, bool) or d <= 0 or d != d.to_integral_value():
        raise ApiError(422, 40010001, f"{name} must be a positive whole number")
    return int(d)


def _price(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ApiError(422, 40010001, f"{name} is not a number")
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        raise ApiError(422, 40010001, f"{name} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise ApiError(422, 40010001, f"{name} must be positive")
    return d


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0, one request per connection, so an outage really cuts every client."""

    fake: FakeAlpaca
    server_version = "FakeAlpaca/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            # numbers parsed as Decimal: the exact text the client sent
            body = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            self._send(422, {"code": 40010001, "message": "request body is not JSON"})
            return
        with fake._cond:
            fake.requests.append((method, url.path, body))
            fake.request_times.append(time.monotonic())
            fake._cond.notify_all()
            hang = fake._hangs > 0 and fake._hang_method in (None, method)
            if hang:
                fake._hangs -= 1
                hang_after = fake._hang_after
        if hang and not hang_after and not self._hang():
            return
        if (
            self.headers.get("APCA-API-KEY-ID") != fake.key_id
            or self.headers.get("APCA-API-SECRET-KEY") != fake.secret_key
        ):
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return
        with fake._cond:
            failure = next((f for f in fake._failures if f.matches(method, url.path)), None)
            if failure is not None:
                fake._failures.remove(failure)
        after = None
        headers: dict[str, str] = {}
        try:
            if failure is None or failure.apply:
                status, payload, after = fake.handle(method, url.path, query, body)
            if failure is not None:
                code = failure.status * 100000
                status, payload = failure.status, {"code": code, "message": failure.message}
                if failure.retry_after is not None:
                    headers["Retry-After"] = failure.retry_after
        except ApiError as exc:
            status, payload = exc.status, {"code": exc.code, "message": exc.message}
        if after is not None and (hang or failure is not None):
            # carried out in full (its stream events sent, a market order filled), then
            # an error or no answer: Alpaca took the order whatever the client heard
            after()
            after = None
        if hang and hang_after and not self._hang():
            return
        try:
            self._send(status, payload, headers)
        finally:  # the client may have given up (timeout): the order exists all the same
            if after is not None:
                after()

    def _hang(self) -> bool:
        """Hold this request until `release` (True) or `stop` (False: no answer)."""
        fake = self.fake
        with fake._cond:
            fake._hung += 1
            fake._cond.notify_all()
        fake._release.wait()
        with fake._cond:
            fake._hung -= 1
            fake._cond.notify_all()  # `wait_until(lambda: fake.hung == 0)`
            stopped = fake._stopped
        if stopped:  # the server went away: no answer at all
            self.close_connection = True
        return not stopped

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload, default=str).encode()
        with contextlib.suppress(OSError):  # a client that timed out has gone away
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
