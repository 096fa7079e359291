"""The Alpaca venue: orders routed to Alpaca through alpaca-py, fills from its stream.

`AlpacaVenue` implements `tickplane.engine.venues.base.Venue`. REST calls
(`TradingClient`) run on a few worker threads, each with its own client; an order always
goes to the same worker (``order_id % workers``, a leg to its parent's), so requests
about one order, or one bracket, OTO or OCO, are sent in the order they were made.
The `trade_updates` stream (`TradingStream`) runs on its own thread and event loop, and
a monitor thread probes the account while the REST side is down, sends a heartbeat
probe while it is up, and reconciles open orders after every (re)connection of the
stream, so fills that happened while the stream was down are not lost. Alpaca pushes
nothing when a trailing stop's stop trails, so a poller thread reads the open orders
every `trail_poll_seconds` (one request, whatever the number of trailing stops) and
reports the trailing stops' moves. No alpaca-py call ever runs on
the caller's thread.

Mapping, policies and reason codes: docs/venues.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import decimal
import email.utils
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass as AlpacaClass
from alpaca.trading.enums import OrderSide, QueryOrderStatus
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream
from requests.adapters import HTTPAdapter

from tickplane.engine.venues.base import (
    EARLY_UPDATES_DROPPED,
    HandBack,
    OffTickPrice,
    Request,
    SymbolSpec,
    VenueAccepted,
    VenueCanceled,
    VenueEvent,
    VenueFilled,
    VenueOrder,
    VenueRejected,
    VenueReplaced,
    VenueStatus,
    VenueTrailed,
)

__all__ = ["AlpacaVenue", "CredentialsError", "Policy"]

log = logging.getLogger(__name__)
# Open orders one poll of the trailing stops asks for (Alpaca's largest page).
_OPEN_LIST_LIMIT = 500

Policy: TypeAlias = Literal["reject", "internal"]
"""What a submit gets when Alpaca is unreachable: ``"reject"`` -> reason
``venue_unavailable``; ``"internal"`` -> reason ``venue_fallback`` (the engine matches the
order itself) when the submit certainly never reached Alpaca, else ``venue_unavailable``."""

ENV_KEY_ID = "APCA_API_KEY_ID"
ENV_SECRET_KEY = "APCA_API_SECRET_KEY"
ENV_BASE_URL = "APCA_API_BASE_URL"
ENV_STREAM_URL = "APCA_API_STREAM_URL"

_TIF = {
    "gtc": AlpacaTif.GTC,
    "day": AlpacaTif.DAY,
    "ioc": AlpacaTif.IOC,
    "fok": AlpacaTif.FOK,
}
_SIDE = {"buy": OrderSide.BUY, "sell": OrderSide.SELL}
_CLASS = {"bracket": AlpacaClass.BRACKET, "oto": AlpacaClass.OTO, "oco": AlpacaClass.OCO}
_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
# Alpaca order statuses after which the order will not change again.
_TERMINAL = {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"}
_CLOSED_BY = {"canceled": "canceled", "expired": "expired", "rejected": "venue_rejected"}
_TS = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:?\d\d)?$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_RETENTION = 300.0  # seconds a closed order is remembered
_REPLACEMENT = re.compile(r"-r(\d+)$")  # a replacement's client order id: <original>-r<n>


class CredentialsError(RuntimeError):
    """Alpaca credentials are missing or unreadable (the message says where to put them)."""


class _Unavailable(Exception):
    """Alpaca could not be reached (or answered 5xx): raised by `_call`."""

    def __init__(self, message: str, *, delivered_maybe: bool) -> None:
        super().__init__(message)
        self.delivered_maybe = delivered_maybe


class _Rejected(Exception):
    """Alpaca answered a request with a 4xx: raised by `_call`. `retry_after`: the
    seconds a 429's ``Retry-After`` asks to wait (None: none sent, or unreadable)."""

    def __init__(
        self, status: int, code: int | None, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class _RateLimitWait:
    """How long to wait after Alpaca rate limited a request (429) before making it
    again: Alpaca's ``Retry-After`` when it sends one (at most `most`), else a backoff
    doubling from `least` to `most` over the 429s in a row. One per retrying loop
    (a resume's look-up, the monitor's reconciliation); `reset` after an answer that
    was not a 429."""

    def __init__(self, least: float, most: float) -> None:
        self._least = least
        self._most = most
        self._next = least

    def after(self, exc: _Rejected) -> float:
        """The seconds to wait after the 429 `exc`; the next backoff doubles."""
        wait = self._next if exc.retry_after is None else min(exc.retry_after, self._most)
        self._next = min(self._next * 2, self._most)
        return wait

    def reset(self) -> None:
        self._next = self._least


class _TimeoutAdapter(HTTPAdapter):
    """A requests adapter with a default timeout (alpaca-py sends none: a hung server
    would otherwise block a worker forever)."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, *args, **kwargs)


class _Replace(NamedTuple):
    """A replace in flight: what was asked (None: unchanged)."""

    qty: int | None
    limit_price: int | None
    stop_price: int | None
    trail_price: int | None = None
    trail_percent: float | None = None


_NO_REPLACE = _Replace(None, None, None)


@dataclass(slots=True)
class _Tracked:
    """What the adapter knows about one engine order (guarded by `AlpacaVenue._lock`)."""

    order: VenueOrder
    spec: SymbolSpec
    client_order_id: str
    venue_id: str | None = None
    accepted: bool = False
    closed: bool = False
    # A submit that failed ambiguously (timeout, 5xx): the engine was told it was
    # rejected, but it may exist at Alpaca. Reconciliation cancels it there; its fills,
    # if any, are still reported (they are real executions).
    orphan: bool = False
    orphan_since: float = 0.0
    # an orphan recovered by the engine after a restart: the lots it booked already,
    # counted as reported once the order is found (its Alpaca id unknown until then),
    # and what they cost in ticks*lots (None: unknown, valued at Alpaca's average)
    orphan_booked: int = 0
    orphan_notional: int | None = None
    open_qty: int = 0
    limit_price: int | None = None
    # cumulative filled quantity and notional already reported, per Alpaca order id
    filled: dict[str, int] = field(default_factory=dict)
    notional: dict[str, Decimal] = field(default_factory=dict)
    # a replace in flight: what was requested, then the new Alpaca order id and (a
    # trailing stop) the new order's (stop, hwm) as Alpaca answered the PATCH
    pending: _Replace | None = None
    pending_vid: str | None = None
    pending_trail: tuple[int, int] | None = None
    # a PATCH that may have been carried out but got no answer (a timeout, a 5xx):
    # when (monotonic); the replace stays pending until Alpaca says which
    pending_unsure: float | None = None
    replacements: int = 0
    parent: int | None = None  # a leg: its parent's engine id (legs has no coid of ours)
    stop_price: int | None = None
    hwm: int | None = None  # a trailing stop's watermark, as last reported

    def __post_init__(self) -> None:
        if self.stop_price is None:
            self.stop_price = self.order.stop_price


_Command: TypeAlias = tuple[str, Any, Any, Any]
# a trade update kept for later: (event, the order object, the update's data)
_Update: TypeAlias = tuple[str, Mapping[str, Any], Mapping[str, Any]]


class _Stream(TradingStream):
    """`TradingStream` that reports connects and disconnects to the venue.

    Hooks the SDK's own connection steps (pinned alpaca-py 0.44.0): `_start_ws` runs on
    every (re)connection after which the stream is listening; `close` on every loss.
    """

    def __init__(self, venue: AlpacaVenue, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._venue = venue

    async def _start_ws(self) -> None:
        try:
            await super()._start_ws()  # type: ignore[no-untyped-call]
        except ValueError as exc:  # the SDK's "failed to authenticate"
            self._venue._set_stream(False, f"stream: {exc} (check the API key and secret)")
            raise
        self._venue._set_stream(True, f"stream: connected to {self._endpoint}")

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._venue._set_stream(False, "stream: disconnected", only_change=True)

    async def shutdown(self) -> None:
        """Make `_run_forever` return now (the SDK alone would wait up to 5 s for a
        message before it looks at its stop queue)."""
        await self.stop_ws()
        ws: Any = self._ws  # the SDK annotates it as always None
        if ws is not None:
            await ws.close()


class AlpacaVenue:
    """Routes engine orders to Alpaca (paper by default) and reports what happens to them.

    Args:
        key_id, secret_key: the API key pair (see `from_env`, `from_secret_dir`).
        paper: Alpaca's paper endpoints (ignored where a URL override is given).
        url_override: REST base URL without ``/v2`` (``http://127.0.0.1:8080``).
        stream_url_override: the trade_updates websocket URL (``ws://.../stream``).
        symbols: the tradable symbols and their tick sizes; other symbols are refused.
        policy: when Alpaca is unreachable, submits are rejected with reason
            ``venue_unavailable`` (``"reject"``) or ``venue_fallback`` (``"internal"``:
            only a submit that certainly never reached Alpaca; one that may have, a
            timeout or a 5xx, is ``venue_unavailable`` whatever the policy).
        client_order_prefix: Alpaca ``client_order_id`` is ``prefix + str(order_id)``
            unless the order brings its own. Make it unique per engine when several
            engines share an account.
        workers: REST worker threads (one `TradingClient` each).
        rest_timeout: (connect, read) seconds for each REST call.
        probe_interval: seconds between account probes while REST is down, and between
            reconciliation attempts.
        heartbeat_interval: seconds between account probes while all is well.
        reconnect_min_backoff, reconnect_max_backoff: the stream's reconnect backoff.
        ping_interval, ping_timeout: websocket keepalive of the stream.
        orphan_grace: seconds during which an order whose submit failed ambiguously
            (timeout, 5xx) is still looked for at Alpaca (and canceled if found); and
            during which a replace whose PATCH failed so may still turn out carried out
            (the order still open after that: the replace is refused).
        rate_limit_min_backoff, rate_limit_max_backoff: the wait before a read that
            Alpaca rate limited (429) is made again (a resume's look-up, a
            reconciliation round), doubling from the first to the second over the
            429s in a row; Alpaca's ``Retry-After``, when sent, is waited instead (at
            most the second).
        early_updates_max: how many stream updates of unknown legs (ahead of their
            parent's answer, or of a replace's) are kept while an order of ours waits
            to name its legs; past it they are dropped and the orders waiting read by
            REST once they name theirs (docs/venues.md).
        trail_poll_seconds: seconds between reads of the open trailing stops (one
            request for all of them), whose moves are reported as `VenueTrailed`
            (Alpaca pushes nothing when their stop trails); 0 turns the polling off.
    """

    name = "alpaca"

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        paper: bool = True,
        url_override: str | None = None,
        stream_url_override: str | None = None,
        *,
        symbols: Mapping[str, SymbolSpec],
        policy: Policy = "reject",
        client_order_prefix: str = "tp-",
        workers: int = 2,
        rest_timeout: tuple[float, float] = (3.0, 10.0),
        probe_interval: float = 1.0,
        heartbeat_interval: float = 15.0,
        reconnect_min_backoff: float = 1.0,
        reconnect_max_backoff: float = 30.0,
        ping_interval: float = 10.0,
        ping_timeout: float = 20.0,
        orphan_grace: float = 30.0,
        trail_poll_seconds: float = 1.0,
        rate_limit_min_backoff: float = 1.0,
        rate_limit_max_backoff: float = 60.0,
        early_updates_max: int = 10_000,
    ) -> None:
        if not key_id or not secret_key:
            raise CredentialsError(
                f"Alpaca needs an API key id and secret: set {ENV_KEY_ID} and "
                f"{ENV_SECRET_KEY}, or mount a Secret with files key_id and secret_key"
            )
        if policy not in ("reject", "internal"):
            raise ValueError(f"policy must be 'reject' or 'internal', not {policy!r}")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if not trail_poll_seconds >= 0:
            raise ValueError("trail_poll_seconds must be 0 (off) or positive")
        if isinstance(early_updates_max, bool) or not (
            isinstance(early_updates_max, int) and early_updates_max > 0
        ):
            raise ValueError("early_updates_max must be a positive integer")
        if not 0 < rate_limit_min_backoff <= rate_limit_max_backoff:
            raise ValueError(
                "rate_limit_min_backoff must be positive and at most rate_limit_max_backoff"
            )
        for sym, spec in symbols.items():
            if not isinstance(spec, SymbolSpec):
                raise TypeError(f"symbols[{sym!r}] must be a SymbolSpec")
        self._key_id = key_id
        self._secret_key = secret_key
        self._paper = paper
        self._url = url_override.rstrip("/") if url_override else None
        self._stream_url = stream_url_override
        self._symbols = dict(symbols)
        self.policy: Policy = policy
        self._prefix = client_order_prefix
        self._coid_re = re.compile("^" + re.escape(client_order_prefix) + r"(\d+)(?:-r\d+)?$")
        self._n_workers = workers
        self._rest_timeout = rest_timeout
        self._probe_interval = probe_interval
        self._heartbeat_interval = heartbeat_interval
        self._backoff = (reconnect_min_backoff, reconnect_max_backoff)
        self._ping = (ping_interval, ping_timeout)
        self._orphan_grace = orphan_grace
        self._trail_poll = trail_poll_seconds
        self._rate_backoff = (rate_limit_min_backoff, rate_limit_max_backoff)
        self._early_max = early_updates_max

        self._lock = threading.Lock()
        self._orders: dict[int, _Tracked] = {}
        self._by_coid: dict[str, int] = {}
        self._by_vid: dict[str, int] = {}
        self._parent_of: dict[int, int] = {}  # a leg's engine id -> its parent's
        self._rest_ok = False
        self._stream_ok = False
        self._reconcile_due = False
        self._details: dict[str, str] = {}
        self._emit: Callable[[VenueEvent], None] | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._queues: list[queue.SimpleQueue[_Command | None]] = []
        self._threads: list[threading.Thread] = []
        self._stream: _Stream | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._stream_loop: asyncio.AbstractEventLoop | None = None
        self._stream_ready = threading.Event()
        self._closed_fifo: collections.deque[tuple[float, int]] = collections.deque()
        # resumes that found Alpaca unreachable, queued again after the next reconcile
        self._resume_again: list[tuple[HandBack, ...]] = []
        # Updates of legs not known yet (their parent's answer is still on its way), by
        # Alpaca id, applied when the parent's legs are learned. An update is kept
        # while an order of ours that was waiting to name its legs when it came still
        # is (`_naming`: a group's submit unanswered, a hand-back not settled, an
        # orphaned group not found yet), so no count bounds it: what is kept is what
        # came while those waited (`_keep_early`). With `_ticket`, a counter: each
        # entry is (the ticket of its last update, its updates), oldest first.
        self._early: dict[str, tuple[int, list[_Update]]] = {}
        # engine ids of orders of ours that may yet name legs not known -> the ticket
        # when each began waiting (rising: the first is the oldest)
        self._naming: dict[int, int] = {}
        self._ticket = 0
        self._early_count = 0  # the updates in `_early`, at most `_early_max`
        # Past `_early_max` (a long REST outage while an order of ours waits, a busy
        # account's other groups streaming on) the kept updates are dropped and none
        # is kept while an order that was waiting then, or began to since, still
        # waits: these (engine ids) are read by REST once they name their orders (a
        # reconciliation round), which finds what the dropped updates said.
        self._early_lost: set[int] = set()
        # Orders of ours (by client order id) placed before this process started: the
        # engine hands them back (`resume`, `watch_orphans`) with the lots it booked of
        # each, and their stream updates are held until then, every one (acted on
        # before, a fill already booked would be reported again; dropped, a fill or a
        # close the look-up read too early to see was lost). `_expected`: the orders
        # the engine said it will hand back (`expect_hand_back`), not handed back yet;
        # `_resuming`: resumes not yet settled by their look-up. Only their updates
        # are held, so what is held is bounded by what the engine will hand back; an
        # update of any other order of ours placed before is not the engine's to
        # follow (it has nothing open of it).
        self._held: dict[int, list[_Update]] = {}
        self._expected: set[int] = set()
        self._resuming: set[int] = set()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_env(
        cls,
        *,
        symbols: Mapping[str, SymbolSpec],
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> AlpacaVenue:
        """Credentials from ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY`` (the names
        Alpaca's tools use); ``APCA_API_BASE_URL`` and ``APCA_API_STREAM_URL``, when set,
        are the URL overrides unless given as arguments."""
        env = os.environ if environ is None else environ
        key_id = env.get(ENV_KEY_ID, "").strip()
        secret = env.get(ENV_SECRET_KEY, "").strip()
        missing = [n for n, v in ((ENV_KEY_ID, key_id), (ENV_SECRET_KEY, secret)) if not v]
        if missing:
            raise CredentialsError(
                f"{' and '.join(missing)} not set: export the Alpaca API key pair "
                "(paper keys for paper trading)"
            )
        if env.get(ENV_BASE_URL):
            kwargs.setdefault("url_override", env[ENV_BASE_URL])
        if env.get(ENV_STREAM_URL):
            kwargs.setdefault("stream_url_override", env[ENV_STREAM_URL])
        return cls(key_id, secret, symbols=symbols, **kwargs)

    @classmethod
    def from_secret_dir(
        cls, path: str | os.PathLike[str], *, symbols: Mapping[str, SymbolSpec], **kwargs: Any
    ) -> AlpacaVenue:
        """Credentials from a mounted Kubernetes Secret: the files ``key_id`` and
        ``secret_key`` in `path` (surrounding whitespace, such as a trailing newline,
        is ignored)."""
        folder = Path(path)
        values: list[str] = []
        for name in ("key_id", "secret_key"):
            file = folder / name
            try:
                value = file.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise CredentialsError(
                    f"{file} not found: mount a Secret with the keys key_id and secret_key "
                    f"at {folder} (kubectl create secret generic alpaca "
                    "--from-literal=key_id=... --from-literal=secret_key=...)"
                ) from None
            except OSError as exc:
                raise CredentialsError(f"cannot read {file}: {exc}") from None
            if not value:
                raise CredentialsError(f"{file} is empty")
            values.append(value)
        return cls(values[0], values[1], symbols=symbols, **kwargs)

    # ------------------------------------------------------------------ the Venue API

    @property
    def connected(self) -> bool:
        """True while REST calls succeed and the trade_updates stream is listening."""
        with self._lock:
            return self._rest_ok and self._stream_ok

    @property
    def pending(self) -> int:
        """Requests queued for the REST workers, not yet taken up."""
        return sum(q.qsize() for q in list(self._queues))

    def start(self, emit: Callable[[VenueEvent], None]) -> None:
        """Start the REST workers, the stream and the monitor; returns at once."""
        if self._emit is not None:
            raise RuntimeError("AlpacaVenue.start() called twice")
        self._emit = emit
        self._stopping.clear()
        for i in range(self._n_workers):
            q: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
            self._queues.append(q)
            self._spawn(f"alpaca-rest-{i}", self._worker, q)
        self._spawn("alpaca-monitor", self._monitor)
        if self._trail_poll > 0:
            self._spawn("alpaca-trail", self._trail_poller)
        self._stream_loop = asyncio.new_event_loop()
        self._spawn("alpaca-stream", self._run_stream, self._stream_loop)

    def stop(self) -> None:
        """Stop every thread (within the REST timeout at worst); queued requests are
        dropped. Emits a last `VenueStatus(connected=False)`."""
        if self._emit is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        for q in self._queues:
            q.put(None)
        self._stop_stream()
        for t in self._threads:
            t.join(timeout=sum(self._rest_timeout) + 5.0)
            if t.is_alive():
                log.warning("alpaca: thread %s did not stop", t.name)
        with self._lock:
            self._rest_ok = self._stream_ok = False
            self._emit_locked(VenueStatus(False, "stopped"))

    def _stop_stream(self) -> None:
        """Close the stream gracefully; cancel its task if that does not end it soon
        (a stop that raced its start, or a connect attempt still hanging)."""
        self._stream_ready.wait(5.0)
        loop, stream, task = self._stream_loop, self._stream, self._stream_task
        thread = next((t for t in self._threads if t.name == "alpaca-stream"), None)
        if loop is None or stream is None or task is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            asyncio.run_coroutine_threadsafe(stream.shutdown(), loop)
        thread.join(timeout=2.0)
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def submit(self, order: VenueOrder) -> None:
        """Queue a new order (see `Venue.submit`)."""
        self._group(order.order_id, order.legs)
        self._enqueue(order.order_id, ("submit", order, None, None))

    def cancel(self, order_id: int) -> None:
        """Queue a cancel (see `Venue.cancel`)."""
        self._enqueue(order_id, ("cancel", order_id, None, None))

    def replace(
        self,
        order_id: int,
        qty: int | None,
        limit_price: int | None,
        stop_price: int | None = None,
        *,
        trail_price: int | None = None,
        trail_percent: float | None = None,
    ) -> None:
        """Queue a replace (see `Venue.replace`)."""
        asked = _Replace(qty, limit_price, stop_price, trail_price, trail_percent)
        self._enqueue(order_id, ("replace", order_id, asked, None))

    def expect_hand_back(self, order_ids: Collection[int]) -> None:
        """The orders the engine will hand back after a restart (see
        `Venue.expect_hand_back`), before `start`: the stream updates of these, every
        one, are held until each is handed back (`resume`, `watch_orphans`); those of
        any other order of ours placed before this process started are dropped."""
        ids = set(order_ids)
        if any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in ids):
            raise ValueError("expect_hand_back takes engine order ids (positive integers)")
        with self._lock:
            self._expected |= ids
            for oid in sorted(ids):  # a group among them names its legs when resumed
                self._await_legs(oid)

    def resume(self, orders: Sequence[HandBack]) -> None:
        """Queue a look-up of an order routed before a restart (see `Venue.resume`).
        Stream updates of it are held until the look-up has counted what the engine
        booked."""
        if orders:
            oid = orders[0].order.order_id
            self._group(oid, [leg.order.order_id for leg in orders[1:]])
            with self._lock:
                self._resuming.add(oid)
                self._await_legs(oid)
            self._enqueue(oid, ("resume", tuple(orders), None, None))

    def watch_orphans(self, orders: Sequence[HandBack]) -> None:
        """Look again for orphans the engine recovered (see `Venue.watch_orphans`): as
        after a submit that failed ambiguously, from now for `orphan_grace` seconds.
        The engine calls it last in its hand-off, even with no orphans: it ends the
        hand-off, and stream updates held for orders it handed back neither here nor
        to `resume` are dropped (it expects no other order back). A leg (named in its
        parent's `legs`, both handed back here) is watched with its parent: known by
        its Alpaca id once the parent is read, its fills beyond the booked lots
        reported, and canceled at Alpaca if open."""
        parent_of = {leg: h.order.order_id for h in orders for leg in h.order.legs}
        now = time.monotonic()
        with self._lock:
            # the legs first: the parent's held updates, applied below, name them
            for handed in sorted(orders, key=lambda h: h.order.order_id not in parent_of):
                order = handed.order
                oid = order.order_id
                spec = self._symbols.get(order.symbol)
                if spec is None or oid in self._orders:
                    continue
                pid = parent_of.get(oid)
                coid = "" if pid is not None else order.client_order_id or f"{self._prefix}{oid}"
                t = _Tracked(order, spec, coid, open_qty=order.qty, orphan=True, parent=pid)
                t.orphan_since = now
                t.orphan_booked, t.orphan_notional = handed.lots or 0, handed.notional
                self._orders[oid] = t
                self._mark_closed(t)
                if pid is not None:
                    self._parent_of[oid] = pid
                    continue
                self._by_coid[coid] = oid
                self._reconcile_due = True
                if order.legs:
                    self._await_legs(oid)  # named when it is found
                self._handed(oid)  # its fills beyond the booked lots, then its cancel
            for oid in [oid for oid in self._held if oid not in self._resuming]:
                self._handed(oid)
            for oid in self._expected - self._resuming:
                self._naming_done(oid)
            self._expected.clear()
        self._wake.set()

    def _group(self, parent: int, legs: Sequence[int]) -> None:
        """Requests about `legs` go to their parent's worker, after the parent's own (a
        leg's cancel sent right after its group's resume finds the leg tracked)."""
        if legs:
            with self._lock:
                for leg in legs:
                    self._parent_of[leg] = parent

    # ------------------------------------------------------------------ threads

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _enqueue(self, order_id: int, cmd: _Command) -> None:
        if self._emit is None or self._stopping.is_set():
            raise RuntimeError("AlpacaVenue is not running: call start() first")
        key = self._parent_of.get(order_id, order_id)
        self._queues[key % len(self._queues)].put(cmd)

    def _client(self) -> TradingClient:
        """A `TradingClient` for the calling thread: no SDK retries (a worker must not
        sleep 3 s on a 504 or 429), and a timeout on every request."""
        client = TradingClient(
            self._key_id, self._secret_key, paper=self._paper, url_override=self._url
        )
        client._retry = 0
        client._retry_codes = []
        adapter = _TimeoutAdapter(self._rest_timeout)
        client._session.mount("http://", adapter)
        client._session.mount("https://", adapter)
        return client

    def _worker(self, q: queue.SimpleQueue[_Command | None]) -> None:
        client = self._client()
        while True:
            cmd = q.get()
            if cmd is None or self._stopping.is_set():
                return
            kind, a, b, _ = cmd
            try:
                if kind == "submit":
                    self._do_submit(client, a)
                elif kind == "cancel":
                    self._do_cancel(client, a)
                elif kind == "replace":
                    self._do_replace(client, a, b)
                elif kind == "resume":
                    self._do_resume(client, a)
            except Exception:  # a bug must not kill the worker
                log.exception("alpaca: %s failed unexpectedly", kind)

    def _run_stream(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            stream = _Stream(
                self,
                api_key=self._key_id,
                secret_key=self._secret_key,
                paper=self._paper,
                raw_data=True,
                url_override=self._stream_url,
                websocket_params={
                    "ping_interval": self._ping[0],
                    "ping_timeout": self._ping[1],
                    "max_queue": 1024,
                },
            )
            stream._reconnect_min_backoff, stream._reconnect_max_backoff = self._backoff
            stream.subscribe_trade_updates(self._on_message)
            task = loop.create_task(stream._run_forever())  # type: ignore[no-untyped-call]
            self._stream, self._stream_task = stream, task
            self._stream_ready.set()
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("alpaca: the trade_updates stream stopped")
        finally:
            self._stream_ready.set()
            _close_loop(loop)

    def _monitor(self) -> None:
        client = self._client()
        next_beat = 0.0
        # a reconciliation read Alpaca rate limited: the next round waits until then
        limited = _RateLimitWait(*self._rate_backoff)
        limited_until = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            with self._lock:
                rest_ok, due = self._rest_ok, self._reconcile_due
            if not rest_ok or now >= next_beat:
                self._probe(client)
                next_beat = time.monotonic() + self._heartbeat_interval
                with self._lock:
                    rest_ok = self._rest_ok
            if rest_ok and due and now >= limited_until:
                with self._lock:
                    self._reconcile_due = False
                try:
                    done = self._reconcile(client)
                except _Rejected as exc:  # a read rate limited (429): the round ends
                    done = False
                    wait = limited.after(exc)
                    limited_until = time.monotonic() + wait
                    log.warning("alpaca: reconciliation rate limited (429): again in %.2f s", wait)
                else:
                    limited.reset()
                if not done:
                    with self._lock:
                        self._reconcile_due = True
                else:
                    with self._lock:
                        again, self._resume_again = self._resume_again, []
                    with contextlib.suppress(RuntimeError):  # stopping: dropped, as queued ones
                        for orders in again:
                            self._enqueue(orders[0].order.order_id, ("resume", orders, None, None))
            with self._lock:
                down, due = not self._rest_ok, self._reconcile_due
            now = time.monotonic()
            if down or (due and now >= limited_until):
                wait = self._probe_interval
            else:  # the heartbeat, or the end of a rate limit's wait if sooner
                until = min(next_beat, limited_until) if due else next_beat
                wait = max(0.0, until - now)
            self._wake.wait(wait)
            self._wake.clear()

    def _trail_poller(self) -> None:
        """Every `trail_poll_seconds` while trailing stops are open: read the open
        orders (`GET /v2/orders?status=open`, one request for all of them) and report a
        move of a trailing stop's stop or watermark (`_trailed`). One request a round,
        not one a stop: alpaca-py's request and parse hold the GIL the engine loop needs
        for ~0.7 ms each (tests/benchmarks/bench_trail_poll.py). A stop the list leaves
        out is closed (its close comes by the stream), unless the list was cut at
        `_OPEN_LIST_LIMIT`: then the ones it left out are read one by one."""
        client = self._client()
        listing = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=_OPEN_LIST_LIMIT)
        while not self._stopping.wait(self._trail_poll):
            with self._lock:
                todo = {
                    t.venue_id: t.order.order_id
                    for t in self._orders.values()
                    if t.order.type == "trailing_stop"
                    and t.accepted
                    and not t.closed
                    and t.venue_id is not None
                }
                if not self._rest_ok:
                    todo = {}
            if not todo:
                continue
            try:
                listed = self._call(client.get_orders, listing)
            except _Unavailable:
                continue  # the monitor probes until Alpaca is back
            except Exception:  # an answer the SDK cannot read: try next round
                log.exception("alpaca: reading the open orders failed")
                continue
            found = {str(o.id): o for o in listed if str(o.id) in todo}
            if len(listed) >= _OPEN_LIST_LIMIT:
                for vid in todo.keys() - found.keys():
                    o = self._read_trailing(client, todo[vid], vid)
                    if o is not None:
                        found[vid] = o
            for vid, o in found.items():
                if self._stopping.is_set():
                    return
                with self._lock:
                    t = self._orders.get(todo[vid])
                    live = t is not None and not t.closed and t.venue_id == vid
                    if live and t is not None and _enum_text(o.status) not in _TERMINAL:
                        self._trailed(t, o)

    def _read_trailing(self, client: TradingClient, oid: int, vid: str) -> Any | None:
        """One trailing stop, read on its own (`GET /v2/orders/{id}`); None if that
        failed (logged; the next round tries again)."""
        try:
            return self._call(client.get_order_by_id, vid)
        except _Unavailable:
            return None
        except _Rejected as exc:
            log.warning("alpaca: reading trailing stop %d: %s", oid, exc.message)
        except Exception:  # an answer the SDK cannot read
            log.exception("alpaca: reading trailing stop %d failed", oid)
        return None

    # ------------------------------------------------------------------ health

    def _emit_locked(self, event: VenueEvent) -> None:
        emit = self._emit
        if emit is None:
            return
        try:
            emit(event)
        except Exception:
            log.exception("alpaca: emit(%r) raised", event)

    def _set_rest(self, ok: bool, detail: str) -> None:
        self._set_health("rest", ok, detail)

    def _set_stream(self, ok: bool, detail: str, *, only_change: bool = False) -> None:
        self._set_health("stream", ok, detail, only_change=only_change)

    def _set_health(
        self, part: Literal["rest", "stream"], ok: bool, detail: str, *, only_change: bool = False
    ) -> None:
        """Record the health of one side and emit a `VenueStatus` when it changed, or when
        it stays down for a new reason (an auth failure after a refused connection)."""
        with self._lock:
            if part == "stream" and ok:
                self._reconcile_due = True
            was = self._rest_ok if part == "rest" else self._stream_ok
            if was == ok and (ok or only_change or detail == self._details.get(part)):
                return
            if part == "rest":
                self._rest_ok = ok
            else:
                self._stream_ok = ok
            self._details[part] = detail
            if self._stopping.is_set():
                return
            connected = self._rest_ok and self._stream_ok
            if ok and not connected:  # one side back: say what is still down
                other = self._details.get("stream" if part == "rest" else "rest")
                detail = f"{detail}; {other}" if other else detail
            self._emit_locked(VenueStatus(connected, detail, self._degraded()))
        self._wake.set()

    def _degraded(self) -> str | None:
        """What `VenueStatus.degraded` says now (lock held): updates of unknown legs are
        dropped, not kept (`_keep_early`), until the orders waiting have named theirs."""
        return EARLY_UPDATES_DROPPED if self._early_lost else None

    def _degraded_changed(self, detail: str) -> None:
        """Say that `_degraded()` changed, with the health as it is (lock held)."""
        if not self._stopping.is_set():
            status = VenueStatus(self._rest_ok and self._stream_ok, detail, self._degraded())
            self._emit_locked(status)

    def _probe(self, client: TradingClient) -> None:
        try:
            self._call(client.get_account)
        except _Unavailable:
            return  # _call marked REST down
        except _Rejected as exc:
            if exc.status == 429:
                # Alpaca answered: throttled, not down. Marked down, the venue said
                # disconnected and the engine refused new orders, or matched them here
                # under policy internal, while Alpaca worked; submits now get their
                # own 429 (venue_rate_limited) and the engine decides.
                self._set_rest(True, "rest: reachable (the account probe was rate limited)")
                return
            self._set_rest(False, f"rest: account probe refused ({exc.status}): {exc.message}")
            return
        except Exception as exc:
            self._set_rest(False, f"rest: account probe failed: {exc!r}")
            return
        self._set_rest(True, "rest: reachable")

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run one alpaca-py call; map failures to `_Unavailable` / `_Rejected`."""
        try:
            result = fn(*args)
        except requests.exceptions.RequestException as exc:
            maybe = not _not_sent(exc)
            self._set_rest(False, f"rest: unreachable: {_describe(exc)}")
            raise _Unavailable(_describe(exc), delivered_maybe=maybe) from exc
        except APIError as exc:
            status = exc.status_code or 0
            code, message = _api_error_body(exc)
            if status >= 500:
                self._set_rest(False, f"rest: Alpaca answered {status}: {message}")
                raise _Unavailable(f"{status}: {message}", delivered_maybe=True) from exc
            wait = _retry_after(exc.response) if status == 429 else None
            raise _Rejected(status, code, message, wait) from exc
        self._set_rest(True, "rest: reachable")
        return result

    def _call_past_rate_limit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`_call`, a 429 waited out and the call made again until Alpaca answers
        otherwise: for a resume's look-up, which nothing else repeats (given up, the
        order was left unfollowed). The wait is Alpaca's ``Retry-After`` when it sends
        one (at most `rate_limit_max_backoff`), else a backoff doubling from
        `rate_limit_min_backoff`. It runs on the order's worker, so the requests about
        the order queued after its resume (a leg's cancel) still come after it.
        Raises the 429 only if the venue stops meanwhile."""
        limited = _RateLimitWait(*self._rate_backoff)
        while True:
            try:
                return self._call(fn, *args)
            except _Rejected as exc:
                if exc.status != 429:
                    raise
                wait = limited.after(exc)
                log.warning("alpaca: rate limited (429): trying again in %.2f s", wait)
                if self._stopping.wait(wait):
                    raise

    # ------------------------------------------------------------------ requests

    def _reject(self, order_id: int, request: Request, reason: str, message: str) -> None:
        with self._lock:
            self._emit_locked(VenueRejected(order_id, reason, message, request))

    def _unavailable_reason(self, request: Request, *, sent_maybe: bool = False) -> str:
        """The reason a request Alpaca could not take gets: a submit that certainly
        never reached Alpaca falls back under ``policy="internal"``; one that may have
        (a timeout, a 5xx) does not, or it could be placed twice (it becomes an orphan,
        canceled at Alpaca if it shows up)."""
        if request == "submit" and self.policy == "internal" and not sent_maybe:
            return "venue_fallback"
        return "venue_unavailable"

    def _do_submit(self, client: TradingClient, order: VenueOrder) -> None:
        oid = order.order_id
        spec = self._symbols.get(order.symbol)
        if spec is None:
            self._reject(oid, "submit", "unknown_symbol", f"{order.symbol} is not routed to Alpaca")
            return
        coid = order.client_order_id or f"{self._prefix}{oid}"
        try:
            request = _order_request(order, spec, coid)
        except (ValueError, TypeError) as exc:
            self._reject(oid, "submit", "bad_order", str(exc))
            return
        with self._lock:
            if oid in self._orders:
                self._emit_locked(
                    VenueRejected(oid, "duplicate_id", f"order {oid} was already submitted")
                )
                return
            if not self._rest_ok:
                self._emit_locked(
                    VenueRejected(oid, self._unavailable_reason("submit"), "Alpaca is unreachable")
                )
                return
            tracked = _Tracked(order, spec, coid, open_qty=order.qty, limit_price=order.limit_price)
            self._orders[oid] = tracked
            self._by_coid[coid] = oid
            if order.order_class != "simple":
                self._await_legs(oid)  # the answer names them, if the stream does not first
        try:
            placed: Order = self._call(client.submit_order, request)
        except _Unavailable as exc:
            reason = self._unavailable_reason("submit", sent_maybe=exc.delivered_maybe)
            self._submit_failed(tracked, reason, str(exc), maybe_placed=exc.delivered_maybe)
            return
        except _Rejected as exc:
            self._submit_failed(tracked, _reason(exc, "submit"), exc.message, maybe_placed=False)
            return
        except Exception as exc:  # e.g. a response the SDK cannot parse
            log.exception("alpaca: submit of order %d failed", oid)
            self._submit_failed(tracked, "venue_error", repr(exc), maybe_placed=True)
            return
        with self._lock:
            self._accept(tracked, str(placed.id), placed)
            self._learn_legs(tracked, placed)
            self._naming_done(oid)
            status = _enum_text(placed.status)
            if status in _CLOSED_BY and not tracked.closed:
                self._close(tracked, str(placed.id), placed, _CLOSED_BY[status])

    def _submit_failed(self, t: _Tracked, reason: str, message: str, *, maybe_placed: bool) -> None:
        """A submit got no clear answer or a refusal. If the stream already reported the
        order, Alpaca has it: it stays live. Otherwise the engine is told it is rejected;
        when it may have reached Alpaca anyway (timeout, 5xx) it becomes an orphan that
        reconciliation looks for and cancels."""
        with self._lock:
            if not maybe_placed or t.accepted or t.closed:
                # not at Alpaca, or its legs came with the stream's report of it
                self._naming_done(t.order.order_id)
            if t.accepted:
                log.warning(
                    "alpaca: submit of order %d failed (%s) but Alpaca reported it: live",
                    t.order.order_id,
                    message,
                )
                return
            if t.closed:  # the stream already reported it rejected
                return
            self._mark_closed(t)
            if maybe_placed:
                t.orphan = True
                t.orphan_since = time.monotonic()
                self._reconcile_due = True
                for k in (1, 2):  # legs the stream named already are orphans with it
                    lt = self._orders.get(t.order.order_id + k)
                    if lt is not None and lt.parent == t.order.order_id:
                        lt.orphan, lt.orphan_since = True, t.orphan_since
                        self._mark_closed(lt)
            self._emit_locked(
                VenueRejected(t.order.order_id, reason, message, maybe_placed=maybe_placed)
            )
        if maybe_placed:
            self._wake.set()

    def _do_cancel(self, client: TradingClient, oid: int) -> None:
        with self._lock:
            tracked = self._orders.get(oid)
            vid = tracked.venue_id if tracked is not None and not tracked.closed else None
            down = not self._rest_ok
        if vid is None:
            self._reject(oid, "cancel", "unknown_order", f"order {oid} is not open at Alpaca")
            return
        if down:
            self._reject(oid, "cancel", "venue_unavailable", "Alpaca is unreachable")
            return
        try:
            self._call(client.cancel_order_by_id, vid)
        except _Unavailable as exc:
            self._reject(oid, "cancel", "venue_unavailable", str(exc))
        except _Rejected as exc:
            self._reject(oid, "cancel", _reason(exc, "cancel"), exc.message)
        # success: the stream reports `canceled` (or a fill that won the race)

    def _do_replace(self, client: TradingClient, oid: int, asked: _Replace) -> None:
        qty, limit_price, stop_price, trail_price, trail_percent = asked
        with self._lock:
            tracked = self._orders.get(oid)
            live = tracked is not None and not tracked.closed and tracked.venue_id is not None
            down = not self._rest_ok
        if tracked is None or not live:
            self._reject(oid, "replace", "unknown_order", f"order {oid} is not open at Alpaca")
            return
        why = _replace_refused(tracked.order, asked)
        if why is not None:
            self._reject(oid, "replace", "bad_replace", why)
            return
        if tracked.pending is not None:
            self._reject(oid, "replace", "replace_pending", "a replace is already in flight")
            return
        if down:
            self._reject(oid, "replace", "venue_unavailable", "Alpaca is unreachable")
            return
        try:
            price = None if limit_price is None else _float_price(tracked.spec, limit_price)
            stop = None if stop_price is None else _float_price(tracked.spec, stop_price)
            # Alpaca's `trail` is the new trail_price (dollars) or trail_percent, of the
            # kind the order has (`_replace_refused` checked it)
            trail = None if trail_percent is None else float(trail_percent)
            if trail_price is not None:
                trail = _float_price(tracked.spec, trail_price)
        except ValueError as exc:
            self._reject(oid, "replace", "bad_replace", str(exc))
            return
        with self._lock:
            tracked.replacements += 1
            # a leg has Alpaca's client order id: its replacement gets one from Alpaca
            new_coid = None
            if tracked.parent is None:
                new_coid = f"{tracked.client_order_id}-r{tracked.replacements}"
                self._by_coid[new_coid] = oid
            else:
                # its replacement's updates name nothing of ours (a new Alpaca id,
                # Alpaca's client order id) until the answer or the `replaced` event
                # names it: kept until then, as a group's legs' are
                self._await_legs(oid)
            tracked.pending = asked
            tracked.pending_trail = None
            vid = tracked.venue_id
        request = ReplaceOrderRequest(
            qty=qty, limit_price=price, stop_price=stop, trail=trail, client_order_id=new_coid
        )
        try:
            new: Order = self._call(client.replace_order_by_id, vid, request)
        except _Unavailable as exc:
            if exc.delivered_maybe and self._replace_unsure(tracked, str(exc)):
                return
            self._replace_failed(tracked)
            self._reject(oid, "replace", "venue_unavailable", str(exc))
            return
        except _Rejected as exc:
            self._replace_failed(tracked)
            self._reject(oid, "replace", _reason(exc, "replace"), exc.message)
            return
        with self._lock:
            new_vid = str(new.id)
            self._by_vid[new_vid] = oid
            if tracked.venue_id == new_vid:
                # the stream's `replaced` came first and was reported with the stop the
                # adapter worked out: Alpaca's own, if it differs, is a move
                if not tracked.closed:
                    self._trailed(tracked, new)
            elif tracked.pending is not None:
                tracked.pending_vid = new_vid
                tracked.pending_trail = self._trail_of(tracked, new)
                self._named(tracked, new_vid)
        # success: the stream reports `replaced` when it takes effect

    def _replace_failed(self, t: _Tracked) -> None:
        """`t`'s PATCH was refused, or never reached Alpaca: no replacement to wait
        for (the stream's `replaced`, if it came first, already ended the wait)."""
        with self._lock:
            if t.pending is not None:
                self._replace_ended(t)

    def _replace_unsure(self, t: _Tracked, why: str) -> bool:
        """`t`'s PATCH got no answer (a timeout, a 5xx), so Alpaca may have carried it
        out. It stays pending, with its replacement's early updates kept (`_naming`),
        until Alpaca says: the `replaced` event, or the old order read by the monitor
        (`_apply_snapshot`: replaced, or not and it cannot be any more). Emits nothing
        now (a rejection would tell the engine the order is unchanged), nor when the
        replace already ended (the stream said `replaced`, or refused it, first)."""
        with self._lock:
            if t.pending is None:
                return True  # its outcome was reported already
            t.pending_unsure = time.monotonic()
            self._reconcile_due = True
        log.warning(
            "alpaca: replace of order %d got no answer (%s): it may have been carried "
            "out; waiting for Alpaca to say",
            t.order.order_id,
            why,
        )
        self._wake.set()
        return True

    def _do_resume(self, client: TradingClient, orders: tuple[HandBack, ...]) -> None:
        """Track an order (and its legs) routed before this process started: read it by
        its client order id, and the orders that replaced it (`replaced_by`) to the
        live one, count what the engine booked as reported, valued at what the engine
        paid for it (`_booked`: the price of a fill found missing is then what it
        cost), and report the rest as reconciliation does."""
        head, legs = orders[0], orders[1:]
        order = head.order
        oid = order.order_id
        spec = self._symbols.get(order.symbol)
        coid = order.client_order_id or f"{self._prefix}{oid}"
        if spec is None:
            with self._lock:
                self._handed(oid)
            return
        look_up = self._call_past_rate_limit
        try:
            chain: list[Order] = [look_up(client.get_order_by_client_id, coid)]
            while _enum_text(chain[-1].status) == "replaced" and chain[-1].replaced_by:
                chain.append(look_up(client.get_order_by_id, str(chain[-1].replaced_by)))
        except (_Unavailable, _Rejected) as exc:
            log.warning("alpaca: cannot resume order %d (%s): %s", oid, coid, exc)
            if isinstance(exc, _Unavailable):
                with self._lock:  # again once Alpaca answers (`_monitor`)
                    self._resume_again.append(orders)
                    self._reconcile_due = True
                return
            if exc.status == 404 and head.lots is not None:
                self._never_arrived(head, spec, coid)
            with self._lock:
                self._handed(oid)
            return
        o = chain[-1]
        with self._lock:
            vid = str(o.id)
            t = self._orders.get(oid)
            fresh = t is None
            if t is None:
                t = self._orders[oid] = _Tracked(
                    order, spec, coid, venue_id=vid, accepted=True, limit_price=order.limit_price
                )
                for x in chain:
                    self._by_coid[str(x.client_order_id)] = oid
                    self._by_vid[str(x.id)] = oid
                # the next replacement's client order id follows the live one's
                m = _REPLACEMENT.search(str(o.client_order_id))
                t.replacements = int(m.group(1)) if m is not None else 0
                _booked(t, chain, head)
            learned = self._learn_legs(t, o, early=False)
            found = [t, *(self._orders.get(leg.order.order_id) for leg in legs)]
            objects = {str(_get(x, "id")): x for x in (_get(o, "legs") or [])}
            objects[vid] = o
            for handed, lt in zip(orders, found, strict=True):
                if lt is not None and lt is not t and lt.venue_id in objects:
                    _booked(lt, [objects[lt.venue_id]], handed)
            # What the stream said meanwhile, now that the booked lots count as
            # reported: fills beyond them (the stream's own prices and ids), closes;
            # then what the look-up shows that the stream did not say.
            self._handed(oid)
            for leg_vid in learned:
                self._apply_early(leg_vid)
            for old in chain[:-1] if fresh else ():  # fills of a replaced order missed
                self._apply_snapshot(t, str(old.id), old)
            for lt in found:
                if lt is not None and lt.venue_id in objects and not lt.closed:
                    self._apply_snapshot(lt, lt.venue_id, objects[lt.venue_id])

    def _never_arrived(self, handed: HandBack, spec: SymbolSpec, coid: str) -> None:
        """An order the engine had routed before a restart is not at Alpaca: its submit
        never got there (the process stopped first, or it was refused). The engine is
        told it is rejected (`venue_unavailable`, whatever the policy: a request of the
        old process could still land, so it is not matched elsewhere) and it is looked
        for as an orphan, canceled at Alpaca if it shows up (the lots it booked counted
        as reported)."""
        order = handed.order
        tracked = _Tracked(order, spec, coid, open_qty=order.qty, limit_price=order.limit_price)
        tracked.orphan_booked, tracked.orphan_notional = handed.lots or 0, handed.notional
        with self._lock:
            if order.order_id in self._orders:
                return
            self._orders[order.order_id] = tracked
            self._by_coid[coid] = order.order_id
        self._submit_failed(
            tracked, "venue_unavailable", "not at Alpaca after a restart", maybe_placed=True
        )

    # ------------------------------------------------------------------ order state
    # Everything below runs with self._lock held.

    def _accept(self, t: _Tracked, vid: str, o: Any = None) -> None:
        """Report `t` accepted (once); `o`, Alpaca's order object, gives a trailing
        stop's stop and watermark at that moment."""
        if t.venue_id is None:
            t.venue_id = vid
            self._by_vid[vid] = t.order.order_id
        if not t.accepted and not t.orphan and not t.closed:
            t.accepted = True
            trail = self._trail_of(t, o) if o is not None else None
            if trail is not None:
                t.stop_price, t.hwm = trail
            stop, hwm = trail if trail is not None else (None, None)
            self._emit_locked(VenueAccepted(t.order.order_id, vid, stop, hwm))

    def _trail_of(self, t: _Tracked, o: Any) -> tuple[int, int] | None:
        """A trailing stop's (stop_price, hwm) in ticks from Alpaca's order object
        (None: not a trailing stop, or no watermark yet)."""
        if t.order.type != "trailing_stop":
            return None
        stop, hwm = _get(o, "stop_price"), _get(o, "hwm")
        if stop in (None, "") or hwm in (None, ""):
            return None
        try:  # a percent trail's stop may be off the grid: the nearest tick
            return (
                t.spec.to_ticks(_decimal(stop), rounding=decimal.ROUND_HALF_EVEN),
                t.spec.to_ticks(_decimal(hwm), rounding=decimal.ROUND_HALF_EVEN),
            )
        except ValueError:
            log.warning("alpaca: unreadable trail of order %d: %r %r", t.order.order_id, stop, hwm)
            return None

    def _trailed(self, t: _Tracked, o: Any) -> None:
        """Report a trailing stop's stop and watermark if they moved since the last
        report. A watermark behind the last one reported is an older read (a poll
        answered after a stream update): ignored."""
        trail = self._trail_of(t, o)
        if trail is None or trail == (t.stop_price, t.hwm):
            return
        stop, hwm = trail
        if t.hwm is not None and (hwm < t.hwm if t.order.side == "sell" else hwm > t.hwm):
            return
        t.stop_price, t.hwm = stop, hwm
        self._emit_locked(VenueTrailed(t.order.order_id, stop, hwm))

    def _mark_closed(self, t: _Tracked) -> None:
        """Mark `t` closed; forget orders closed more than `_RETENTION` s ago (kept that
        long so late or duplicate updates about them are still recognized)."""
        t.closed = True
        now = time.monotonic()
        self._closed_fifo.append((now, t.order.order_id))
        while self._closed_fifo and self._closed_fifo[0][0] < now - _RETENTION:
            _, oid = self._closed_fifo.popleft()
            old = self._orders.get(oid)
            if old is None or not old.closed or old.orphan or old.pending is not None:
                continue
            del self._orders[oid]
            self._parent_of.pop(oid, None)
            coid = old.client_order_id
            for c in [coid, *(f"{coid}-r{k}" for k in range(1, old.replacements + 1))]:
                self._by_coid.pop(c, None)
            for v in [old.venue_id, old.pending_vid, *old.filled]:
                if v is not None:
                    self._by_vid.pop(v, None)

    def _close(self, t: _Tracked, vid: str, o: Any, reason: str) -> None:
        self._mark_closed(t)
        t.open_qty = 0
        if t.orphan:
            return
        remaining = max(0, _qty(_get(o, "qty")) - _qty(_get(o, "filled_qty")))
        self._emit_locked(VenueCanceled(t.order.order_id, remaining, reason))

    def _fill(
        self, t: _Tracked, vid: str, o: Any, price: Any, qty: int, ts: int, exec_id: str
    ) -> None:
        """Report a fill of `qty` at `price` on Alpaca order `vid` (`o` is its state
        after the fill), unless an earlier report already covered it."""
        cumulative = _qty(_get(o, "filled_qty"))
        before = t.filled.get(vid, 0)
        if cumulative <= before:
            return  # already reported (a duplicate, or found by reconciliation first)
        qty = min(qty, cumulative - before) if qty > 0 else cumulative - before
        ticks = self._ticks(t, price)
        if vid == t.venue_id:  # a trailing stop's last move comes before its fill
            self._trailed(t, o)
        t.filled[vid] = before + qty
        t.notional[vid] = t.notional.get(vid, Decimal(0)) + t.spec.to_price(ticks) * qty
        if vid == t.venue_id:
            t.open_qty = max(0, _qty(_get(o, "qty")) - cumulative)
        leaves = t.open_qty  # a late fill of a replaced order leaves the new order's qty
        self._emit_locked(VenueFilled(t.order.order_id, ticks, qty, ts, exec_id, leaves))
        if leaves == 0 and vid == t.venue_id:
            self._mark_closed(t)

    def _ticks(self, t: _Tracked, price: Any) -> int:
        try:
            return t.spec.to_ticks(_decimal(price))
        except OffTickPrice:
            ticks = t.spec.to_ticks(_decimal(price), rounding=decimal.ROUND_HALF_EVEN)
            log.warning(
                "alpaca: %s fill price %s is off the %s tick grid: reported as %d ticks",
                t.order.symbol,
                price,
                t.spec.tick_size,
                ticks,
            )
            return ticks

    def _replaced(self, t: _Tracked, new_vid: str) -> None:
        asked = t.pending if t.pending is not None else _NO_REPLACE
        answered = t.pending_trail
        t.pending = None
        t.pending_vid = None
        t.pending_trail = None
        t.pending_unsure = None
        t.venue_id = new_vid
        self._by_vid[new_vid] = t.order.order_id
        if asked.qty is not None:
            t.open_qty = asked.qty
        if asked.limit_price is not None:
            t.limit_price = asked.limit_price
        if asked.stop_price is not None:
            t.stop_price = asked.stop_price
        if asked.trail_price is not None:
            t.order = dataclasses.replace(t.order, trail_price=asked.trail_price)
        if asked.trail_percent is not None:
            t.order = dataclasses.replace(t.order, trail_percent=asked.trail_percent)
        if t.order.type != "trailing_stop":
            self._emit_locked(
                VenueReplaced(t.order.order_id, new_vid, t.open_qty, t.limit_price, t.stop_price)
            )
            self._named(t, new_vid)
            return
        # A trailing stop's new stop is Alpaca's answer to the PATCH; when the stream's
        # `replaced` comes first, the stop its trail gives at the last watermark reported
        # (Alpaca's answer then corrects it, as a move: `_do_replace`).
        if answered is not None:
            t.stop_price, t.hwm = answered
        elif t.hwm is not None:
            t.stop_price = _trail_stop(t.order, t.spec, t.hwm)
        self._emit_locked(
            VenueReplaced(
                t.order.order_id,
                new_vid,
                t.open_qty,
                None,
                t.stop_price,
                t.hwm,
                t.order.trail_price,
                t.order.trail_percent,
            )
        )
        self._named(t, new_vid)

    def _replace_ended(self, t: _Tracked) -> None:
        """`t`'s replace will not take effect: nothing is pending, no replacement is
        waited for (the caller reports why)."""
        t.pending = None
        t.pending_vid = None
        t.pending_unsure = None
        self._naming_done(t.order.order_id)

    def _unsure_read(self, t: _Tracked, status: str) -> None:
        """`t`, whose PATCH got no answer (`_replace_unsure`), read at Alpaca and not
        replaced. Closed, or still open `orphan_grace` seconds after the PATCH, the
        replace did not happen (a request still in flight could yet arrive before
        that, as an orphan's submit could): reported refused. Otherwise it is read
        again next round."""
        since = t.pending_unsure if t.pending_unsure is not None else 0.0
        if status in _TERMINAL or time.monotonic() - since > self._orphan_grace:
            self._replace_ended(t)
            self._emit_locked(
                VenueRejected(
                    t.order.order_id,
                    "venue_unavailable",
                    f"the replace got no answer and was not carried out ({status})",
                    "replace",
                )
            )
        else:
            self._reconcile_due = True

    def _named(self, t: _Tracked, new_vid: str) -> None:
        """Order `t`'s replacement is known to be Alpaca order `new_vid` (the PATCH's
        answer, or the `replaced` event): its updates that came before (a leg's, kept
        by `_keep_early`: they named nothing of ours) are applied, in order, once
        (lock held)."""
        self._naming_done(t.order.order_id)
        if new_vid in self._early:
            self._apply_early(new_vid)

    def _learn_legs(self, t: _Tracked, o: Any, *, early: bool = True) -> list[str]:
        """Track the legs of a bracket, OTO or OCO under their engine ids, from the
        parent's order object (its `legs`: Alpaca's legs carry no client order id of
        ours, so their updates are known by their Alpaca ids). A take-profit leg is the
        limit one; the engine numbered them after the parent, the take-profit first.
        Updates of a leg that came before it was known are applied (`early`), or left
        to the caller (a resume counts the lots booked first): the Alpaca ids of the
        legs learned are returned."""
        learned: list[str] = []
        legs = _get(o, "legs") or []
        if not legs or t.parent is not None:
            return learned
        self._naming_done(t.order.order_id)
        has_tp = any(_enum_text(_get(leg, "type")) == "limit" for leg in legs)
        for leg in legs:
            vid = str(_get(leg, "id"))
            if vid in self._by_vid:
                continue
            kind = _enum_text(_get(leg, "type"))
            oid = t.order.order_id + (1 if kind == "limit" or not has_tp else 2)
            lt = self._orders.get(oid)
            # a leg handed back with its orphaned parent waits for its Alpaca id
            if lt is not None and (lt.parent != t.order.order_id or lt.venue_id is not None):
                continue
            if lt is None:
                try:
                    order = _order_from_alpaca(oid, leg, t.spec, coid="")
                except (ValueError, KeyError, TypeError):
                    log.warning("alpaca: cannot track leg %s of order %d", vid, t.order.order_id)
                    continue
                lt = self._orders[oid] = _Tracked(
                    order,
                    t.spec,
                    "",
                    # accepted with its parent: the engine says so then (an orphan's
                    # legs are orphans: only their fills are reported)
                    accepted=not t.orphan,
                    open_qty=max(0, order.qty - _qty(_get(leg, "filled_qty"))),
                    limit_price=order.limit_price,
                    parent=t.order.order_id,
                    orphan=t.orphan,
                    orphan_since=t.orphan_since,
                )
                if t.orphan:
                    self._mark_closed(lt)
            lt.venue_id = vid
            self._by_vid[vid] = oid
            learned.append(vid)
            if early:
                self._apply_early(vid)
        return learned

    def _apply_early(self, vid: str) -> None:
        """Apply the updates of leg `vid` that came before it was known."""
        t = self._orders[self._by_vid[vid]]
        _, updates = self._early.pop(vid, (0, []))
        self._early_count -= len(updates)
        for event, update, data in updates:
            self._apply_update(t, event, vid, update, data)

    def _await_legs(self, oid: int) -> None:
        """Order `oid` of ours may yet name legs not known: updates of unknown legs are
        kept from now until it has named them or will not (`_naming_done`)."""
        self._ticket += 1
        self._naming.setdefault(oid, self._ticket)

    def _naming_done(self, oid: int) -> None:
        """Order `oid` has named its legs, or will not (not at Alpaca, a simple order,
        its hand-off settled, its watch ended). If updates it could have claimed were
        dropped (`_early_lost`), the orders it named are read by REST: the next
        reconciliation round reads every open order."""
        self._naming.pop(oid, None)
        if oid in self._early_lost:
            self._early_lost.discard(oid)
            self._reconcile_due = True
            self._wake.set()
            if not self._early_lost:
                log.warning("alpaca: unknown legs' updates are kept again")
                self._degraded_changed("updates of unknown legs are kept again")

    def _keep_early(self, vid: str, update: _Update) -> None:
        """An update of Alpaca order `vid`, not known, of an order class (a leg of
        ours, maybe, ahead of its parent's answer): kept while an order of ours that
        was waiting to name its legs when it came still is. What nothing waiting could
        claim is dropped first: the updates, oldest first, that came before every
        order still waiting began to. Past `early_updates_max` updates kept (a long
        wait, a REST outage say, while other programs' groups stream on) all are
        dropped, and none kept, until every order waiting then or since has named its
        own; each is then read by REST (`_naming_done`), which shows what the updates
        said. (No update of ours is pushed out by a count alone: the last 1,000 ids
        were kept before, the oldest dropped, and a leg's fill was lost.)"""
        self._ticket += 1
        oldest_wait = next(iter(self._naming.values()), None)
        while self._early:
            first = next(iter(self._early))
            if oldest_wait is not None and self._early[first][0] > oldest_wait:
                break
            self._early_count -= len(self._early.pop(first)[1])
        if oldest_wait is None:
            return  # no order of ours has legs to name: not ours
        if self._early_lost or self._early_count >= self._early_max:
            # over the bound: drop everything kept, and the orders waiting will be
            # read by REST once they name theirs (what a read shows, nothing loses)
            began = not self._early_lost
            if began:
                log.warning(
                    "alpaca: %d updates of unknown legs kept (early_updates_max): "
                    "dropped; orders of %d groups waiting will be read instead",
                    self._early_count,
                    len(self._naming),
                )
            self._early_lost.update(self._naming)
            self._early.clear()
            self._early_count = 0
            if began:
                self._degraded_changed(
                    f"updates of unknown legs past early_updates_max ({self._early_max}) "
                    f"dropped: {len(self._early_lost)} orders waiting will be read by REST"
                )
            return
        _, updates = self._early.pop(vid, (0, []))
        updates.append(update)
        self._early_count += 1
        self._early[vid] = (self._ticket, updates)  # last: it came now

    def _handed(self, oid: int) -> None:
        """The engine's hand-off of order `oid` is settled (its resume's look-up done,
        or it was handed back as an orphan, or not at all): apply the stream updates
        held for it to what is now tracked of it, or drop them if nothing is."""
        self._resuming.discard(oid)
        self._expected.discard(oid)
        held = self._held.pop(oid, ())
        t = self._orders.get(oid)
        if t is None or not (t.orphan and t.venue_id is None and t.order.legs):
            self._naming_done(oid)  # an orphaned group not found yet names them later
        if t is None:
            if held:
                log.info("alpaca: %d updates of order %d dropped: not handed back", len(held), oid)
            return
        for event, o, data in held:
            self._learn_legs(t, o)
            self._apply_update(t, event, str(o.get("id", "")), o, data)

    def _lookup(self, coid: str, vid: str) -> int | None:
        oid = self._by_coid.get(coid)
        if oid is None:
            oid = self._by_vid.get(vid)
        if oid is None:
            m = self._coid_re.match(coid)
            if m is not None:
                oid = int(m.group(1))
        return oid

    # ------------------------------------------------------------------ the stream

    async def _on_message(self, msg: Any) -> None:
        try:
            self._on_trade_update(msg)
        except Exception:
            log.exception("alpaca: cannot handle trade update %r", msg)

    def _on_trade_update(self, msg: Mapping[str, Any]) -> None:
        data = msg.get("data")
        if not isinstance(data, Mapping):
            return
        o = data.get("order")
        if not isinstance(o, Mapping):
            return
        event = str(data.get("event", ""))
        vid = str(o.get("id", ""))
        coid = str(o.get("client_order_id", ""))
        with self._lock:
            oid = self._lookup(coid, vid)
            if oid is None:
                classed = _enum_text(o.get("order_class") or "simple") != "simple"
                if classed and o.get("symbol") in self._symbols:
                    # maybe a leg of ours, ahead of its parent's answer: keep it a while
                    self._keep_early(vid, (event, o, data))
                log.debug("alpaca: update for an order not ours: %s %s", event, coid)
                return
            t = self._orders.get(oid)
            if t is None:
                # placed before this process started: held until the engine hands it
                # back with what it booked of it, if it said it would
                if oid not in self._expected and oid not in self._resuming:
                    log.debug("alpaca: update for order %d, not handed back: dropped", oid)
                    return
                self._held.setdefault(oid, []).append((event, o, data))
                return
            self._learn_legs(t, o)
            self._apply_update(t, event, vid, o, data)

    def _apply_update(
        self, t: _Tracked, event: str, vid: str, o: Mapping[str, Any], data: Mapping[str, Any]
    ) -> None:
        oid = t.order.order_id
        if t.orphan:
            # told the engine it was rejected: only its executions are reported
            self._orphan_seen(t, vid, o)
            if event in ("fill", "partial_fill"):
                self._stream_fill(t, vid, o, data)
            if _enum_text(o.get("status")) not in _TERMINAL:
                self._reconcile_due = True
                self._wake.set()
            return
        is_pending = vid == t.pending_vid or (
            t.pending is not None
            and t.venue_id is not None
            and vid != t.venue_id
            and o.get("replaces") == t.venue_id
        )
        if is_pending:
            if event in ("new", "accepted", "pending_new"):  # the replacement's own stop
                t.pending_trail = self._trail_of(t, o) or t.pending_trail
            elif event in ("fill", "partial_fill"):
                self._replaced(t, vid)
                self._stream_fill(t, vid, o, data)
            elif event in ("canceled", "expired", "rejected"):
                self._replace_ended(t)
                self._emit_locked(
                    VenueRejected(oid, "replace_rejected", f"replacement {event}", "replace")
                )
            return
        if t.venue_id is not None and vid != t.venue_id:
            if event in ("fill", "partial_fill"):  # a late fill of a replaced order
                self._stream_fill(t, vid, o, data)
            return
        if event in ("new", "accepted", "pending_new"):
            self._accept(t, vid, o)
        elif event in ("fill", "partial_fill"):
            self._accept(t, vid, o)
            self._stream_fill(t, vid, o, data)
        elif event in _CLOSED_BY:
            if not t.accepted and event == "rejected":
                self._mark_closed(t)
                self._emit_locked(VenueRejected(oid, "venue_rejected", _why(o, data)))
            elif not t.closed:
                self._accept(t, vid, o)
                self._close(t, vid, o, _CLOSED_BY[event])
        elif event == "replaced":
            new_vid = o.get("replaced_by")
            if new_vid:
                self._replaced(t, str(new_vid))
        elif event == "order_cancel_rejected":
            self._emit_locked(VenueRejected(oid, "cancel_rejected", _why(o, data), "cancel"))
        elif event == "order_replace_rejected":
            self._replace_ended(t)
            self._emit_locked(VenueRejected(oid, "replace_rejected", _why(o, data), "replace"))
        # pending_cancel, pending_replace, done_for_day, calculated, restated...: no event

    def _stream_fill(
        self, t: _Tracked, vid: str, o: Mapping[str, Any], data: Mapping[str, Any]
    ) -> None:
        price = data.get("price")
        if price is None:
            price = o.get("filled_avg_price")
        cumulative = _qty(o.get("filled_qty"))
        exec_id = str(data.get("execution_id") or f"{vid}:{cumulative}")
        self._fill(t, vid, o, price, _qty(data.get("qty")), _ts_ns(data.get("timestamp")), exec_id)

    # ------------------------------------------------------------------ reconciliation

    def _reconcile(self, client: TradingClient) -> bool:
        """Bring every open (or orphaned) order up to date from REST: fills and closes
        missed while the stream was down are reported; orphans are canceled. False if
        Alpaca became unreachable on the way (the monitor tries again a
        `probe_interval` later). A read Alpaca rate limited (429) ends the round too,
        raising it: the monitor tries again after the wait `_RateLimitWait` gives (a
        read given up left an orphan open at Alpaca, or a missed fill unreported, until
        the stream's next reconnection)."""
        with self._lock:
            todo = [
                (t.order.order_id, t.venue_id, t.pending_vid, t.orphan, t.client_order_id)
                for t in self._orders.values()
                # an orphan's legs are read with it (nested in its order object); an
                # order whose PATCH got no answer until Alpaca says what came of it
                if (not t.closed and t.venue_id is not None)
                or (t.orphan and t.parent is None)
                or (t.pending_unsure is not None and t.venue_id is not None)
            ]
        for oid, vid, pending_vid, orphan, coid in todo:
            try:
                if orphan:
                    self._reconcile_orphan(client, oid, coid)
                    continue
                for v in (vid, pending_vid):
                    if v is not None:
                        o = self._call(client.get_order_by_id, v)
                        with self._lock:
                            self._apply_snapshot(self._orders[oid], v, o)
            except _Unavailable:
                return False
            except _Rejected as exc:
                if exc.status == 429:
                    raise
                log.warning("alpaca: reconciling order %d: %s", oid, exc.message)
        return True

    def _reconcile_orphan(self, client: TradingClient, oid: int, coid: str) -> None:
        try:
            o = self._call(client.get_order_by_client_id, coid)
        except _Rejected as exc:
            if exc.status != 404:
                raise
            with self._lock:
                t = self._orders[oid]
                if time.monotonic() - t.orphan_since > self._orphan_grace:
                    self._orphan_settled(t, t.order.qty)  # it never reached Alpaca
                else:  # a request still in flight may yet arrive: look again
                    self._reconcile_due = True
            return
        vid = str(o.id)
        with self._lock:
            t = self._orders[oid]
            self._orphan_seen(t, vid, o)
            self._learn_legs(t, o)
            self._apply_snapshot(t, vid, o)
            # a bracket's, OTO's or OCO's legs, nested in it: Alpaca made them with it
            nested = {str(leg.id): leg for leg in o.legs or []}
            legs = [
                (lt, nested[lt.venue_id]) for lt in self._orphan_legs(t) if lt.venue_id in nested
            ]
            for lt, leg in legs:
                self._orphan_seen(lt, str(leg.id), leg)
                self._apply_snapshot(lt, str(leg.id), leg)
                lt.open_qty = max(0, _qty(leg.qty) - _qty(leg.filled_qty))
        open_legs = [str(leg.id) for _, leg in legs if _enum_text(leg.status) not in _TERMINAL]
        if _enum_text(o.status) not in _TERMINAL:
            # its held legs go with it; those working what it filled are canceled next
            log.warning("alpaca: order %s reached Alpaca after a failed submit: canceling", coid)
            self._cancel_orphan(client, vid)
            with self._lock:
                self._reconcile_due = True  # look again until it is closed
        elif open_legs:
            # no order of the group may live at Alpaca: the engine shows none open
            log.warning("alpaca: canceling the legs of order %s (%s)", coid, ", ".join(open_legs))
            for leg_vid in open_legs:
                self._cancel_orphan(client, leg_vid)
            with self._lock:
                self._reconcile_due = True
        else:
            with self._lock:
                self._orphan_settled(self._orders[oid], max(0, _qty(o.qty) - _qty(o.filled_qty)))

    def _cancel_orphan(self, client: TradingClient, vid: str) -> None:
        """Cancel Alpaca order `vid` (of an orphan's group); the round looks again
        whatever came of it. A refusal is left to that look (the order is closing or
        closed already), but not a 429: raised, it ends the round, and the next waits
        what `_RateLimitWait` gives (ignored, the cancel was made again a
        `probe_interval` later, while Alpaca asked to wait)."""
        try:
            self._call(client.cancel_order_by_id, vid)
        except _Rejected as exc:
            if exc.status == 429:
                raise
            log.info("alpaca: cancel of order %s refused: %s", vid, exc.message)

    def _orphan_seen(self, t: _Tracked, vid: str, o: Any) -> None:
        """Orphan `t` is Alpaca order `vid` (`o`, as read or streamed). Lots the engine
        booked of it before a restart (`watch_orphans`) count as reported, valued at
        what the engine paid for them (unknown: at Alpaca's average price), so only
        fills beyond them are reported, at their own price (lock held)."""
        if t.venue_id is None:
            t.venue_id = vid
            self._by_vid[vid] = t.order.order_id
        if t.orphan_booked:
            booked, t.orphan_booked = t.orphan_booked, 0
            t.filled[vid] = booked
            if t.orphan_notional is not None:
                t.notional[vid] = t.spec.to_price(t.orphan_notional)
            else:
                avg = _get(o, "filled_avg_price")
                t.notional[vid] = _decimal(avg) * booked if avg not in (None, "") else Decimal(0)

    def _orphan_legs(self, t: _Tracked) -> list[_Tracked]:
        """The legs of orphan `t` still watched (the engine's ids after its own)."""
        oid = t.order.order_id
        legs = (self._orders.get(oid + k) for k in (1, 2))
        return [lt for lt in legs if lt is not None and lt.parent == oid and lt.orphan]

    def _orphan_settled(self, t: _Tracked, remaining: int) -> None:
        """Stop looking for orphan `t` (closed at Alpaca, its fills reported, or never
        arrived) and tell the engine, which stops expecting late fills of it; its legs
        first, whose watch ends with it (lock held)."""
        for lt in self._orphan_legs(t):
            lt.orphan = False
            self._emit_locked(VenueCanceled(lt.order.order_id, lt.open_qty, "orphan_closed"))
        t.orphan = False
        self._naming_done(t.order.order_id)
        self._emit_locked(VenueCanceled(t.order.order_id, remaining, "orphan_closed"))

    def _apply_snapshot(self, t: _Tracked, vid: str, o: Order) -> None:
        """Report what the REST order object `o` shows that was not reported yet."""
        filled = _qty(o.filled_qty)
        before = t.filled.get(vid, 0)
        if filled > before and o.filled_avg_price is not None:
            missed = filled - before
            total = _decimal(o.filled_avg_price) * filled
            price = (total - t.notional.get(vid, Decimal(0))) / missed
            self._fill(t, vid, o, price, missed, time.time_ns(), f"reconciled:{vid}:{filled}")
        status = _enum_text(o.status)
        if t.orphan:
            return
        if vid == t.venue_id and status not in _TERMINAL:
            self._trailed(t, o)  # moves missed while this process was not looking
        if vid == t.pending_vid and status in _CLOSED_BY:
            self._replace_ended(t)
            self._emit_locked(
                VenueRejected(t.order.order_id, "replace_rejected", status, "replace")
            )
        elif vid == t.venue_id and status in _CLOSED_BY and not t.closed:
            self._close(t, vid, o, _CLOSED_BY[status])
        if vid == t.venue_id and status == "replaced" and o.replaced_by is not None:
            self._replaced(t, str(o.replaced_by))
            self._reconcile_due = True  # look at the new order next round
        elif vid == t.venue_id and t.pending_unsure is not None:
            self._unsure_read(t, status)


# ---------------------------------------------------------------------- helpers


def _booked(t: _Tracked, chain: Sequence[Any], handed: HandBack) -> None:
    """What the engine already booked of order `t` (a resumed order): `handed.lots`
    lots (None: all of it, and the order is closed for the engine), counted against
    the Alpaca orders of `chain` in turn (the order, then those that replaced it; the
    last is the live one), and valued at what the engine paid for them: the orders
    the lots cover before the last one they reach at their own average, that last one
    at what remains of `handed.notional`. So a fill found missing (`_apply_snapshot`)
    is priced at what it cost. With the notional unknown, each at its own average
    (and a missed fill at that average)."""
    left = handed.lots
    reached: list[str] = []
    for o in chain:
        filled = _qty(_get(o, "filled_qty"))
        done = filled if left is None else min(left, filled)
        vid = str(_get(o, "id"))
        t.filled[vid] = done
        avg = _get(o, "filled_avg_price")
        t.notional[vid] = _decimal(avg) * done if avg is not None and done else Decimal(0)
        t.open_qty = max(0, _qty(_get(o, "qty")) - filled)
        if done:
            reached.append(vid)
        if left is not None:
            left -= done
    if handed.lots is None:
        t.closed = True
    elif handed.notional is not None and reached:
        before = sum((t.notional[vid] for vid in reached[:-1]), Decimal(0))
        t.notional[reached[-1]] = t.spec.to_price(handed.notional) - before


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on `loop` (the websocket's keepalive tasks), then close it."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _order_request(order: VenueOrder, spec: SymbolSpec, coid: str) -> OrderRequest:
    """The alpaca-py request for `order` (prices converted exactly, see `_float_price`)."""
    if isinstance(order.qty, bool) or not isinstance(order.qty, int) or order.qty <= 0:
        raise ValueError(f"qty must be a positive integer, got {order.qty!r}")
    tif = _TIF.get(order.tif)
    if tif is None:
        raise ValueError(f"unsupported time in force {order.tif!r}")
    side = _SIDE.get(order.side)
    if side is None:
        raise ValueError(f"unsupported side {order.side!r}")
    if len(coid) > 128:
        raise ValueError("client_order_id is longer than 128 characters")
    common: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": order.qty,
        "side": side,
        "time_in_force": tif,
        "client_order_id": coid,
    }
    kind = order.type
    needs_limit = kind in ("limit", "stop_limit")
    needs_stop = kind in ("stop", "stop_limit")
    if needs_limit and order.limit_price is None:
        raise ValueError(f"a {kind} order needs a limit_price")
    if needs_stop and order.stop_price is None:
        raise ValueError(f"a {kind} order needs a stop_price")
    limit = _float_price(spec, order.limit_price) if order.limit_price is not None else None
    stop = _float_price(spec, order.stop_price) if order.stop_price is not None else None
    if order.order_class != "simple":
        common.update(_class_fields(order, spec))
        if order.order_class == "oco":  # its limit is its take-profit's (alpaca-py's way)
            limit = None
    if kind == "trailing_stop":
        if (order.trail_price is None) == (order.trail_percent is None):
            raise ValueError("a trailing_stop takes trail_price or trail_percent")
        if order.trail_price is not None:
            return TrailingStopOrderRequest(
                **common, trail_price=_float_price(spec, order.trail_price)
            )
        return TrailingStopOrderRequest(**common, trail_percent=order.trail_percent)
    if kind == "market":
        return MarketOrderRequest(**common)
    if kind == "limit":
        return LimitOrderRequest(**common, limit_price=limit)
    if kind == "stop":
        return StopOrderRequest(**common, stop_price=stop)
    if kind == "stop_limit":
        return StopLimitOrderRequest(**common, limit_price=limit, stop_price=stop)
    raise ValueError(f"unsupported order type {kind!r}")


def _class_fields(order: VenueOrder, spec: SymbolSpec) -> dict[str, Any]:
    """`order_class`, `take_profit` and `stop_loss` of a bracket, OTO or OCO request."""
    cls = _CLASS.get(order.order_class)
    if cls is None:
        raise ValueError(f"unsupported order class {order.order_class!r}")
    out: dict[str, Any] = {"order_class": cls}
    if order.take_profit is not None:
        out["take_profit"] = TakeProfitRequest(limit_price=_float_price(spec, order.take_profit))
    if order.stop_loss_stop is not None:
        sl: dict[str, Any] = {"stop_price": _float_price(spec, order.stop_loss_stop)}
        if order.stop_loss_limit is not None:
            sl["limit_price"] = _float_price(spec, order.stop_loss_limit)
        out["stop_loss"] = StopLossRequest(**sl)
    if "take_profit" not in out and "stop_loss" not in out:
        raise ValueError(f"an {order.order_class} order needs take_profit and/or stop_loss")
    return out


def _float_price(spec: SymbolSpec, ticks: int) -> float:
    """`ticks` as the float alpaca-py's request models take, checked to serialize to the
    exact decimal price (JSON writes a float's shortest repr: ``12345`` ticks of 0.01 go
    out as ``123.45``)."""
    if isinstance(ticks, bool) or not isinstance(ticks, int) or ticks <= 0:
        raise ValueError(f"a price must be a positive number of ticks, got {ticks!r}")
    exact = spec.to_price(ticks)
    value = float(exact)
    if Decimal(repr(value)) != exact:
        raise ValueError(f"price {exact} has too many digits to send exactly")
    return value


def _order_from_alpaca(oid: int, o: Any, spec: SymbolSpec, coid: str | None = None) -> VenueOrder:
    """The order an Alpaca order object (a mapping, or alpaca-py's model) describes."""

    def ticks(key: str) -> int | None:
        v = _get(o, key)
        return None if v in (None, "") else spec.to_ticks(_decimal(v))

    percent = _get(o, "trail_percent")

    return VenueOrder(
        order_id=oid,
        client_order_id=str(_get(o, "client_order_id")) if coid is None else coid,
        symbol=str(_get(o, "symbol")),
        side=_literal(_get(o, "side"), ("buy", "sell")),
        type=_literal(_get(o, "type"), _TYPES),
        qty=_qty(_get(o, "qty")),
        limit_price=ticks("limit_price"),
        stop_price=ticks("stop_price"),
        tif=_literal(_get(o, "time_in_force"), ("gtc", "day", "ioc", "fok")),
        order_class=_literal(_get(o, "order_class") or "simple", ("simple", *_CLASS)),
        trail_price=ticks("trail_price"),
        trail_percent=None if percent in (None, "") else float(_decimal(percent)),
    )


def _replace_refused(order: VenueOrder, asked: _Replace) -> str | None:
    """Why a replace of `order` is not sent to Alpaca (None: it is): nothing to
    change, a value that is not positive, or a field its type has not (a trailing
    stop's trail is of the kind it was placed with)."""
    if all(v is None for v in asked):
        return "nothing to change"
    if any(v is not None and v <= 0 for v in asked):
        return "qty, prices and trails must be positive"
    kind = order.type
    if asked.limit_price is not None and kind not in ("limit", "stop_limit"):
        return f"a {kind} has no limit"
    if asked.stop_price is not None and kind not in ("stop", "stop_limit"):
        return f"a {kind} has no stop"
    if asked.trail_price is not None and order.trail_price is None:
        return "trail_price: for a trailing stop placed with trail_price"
    if asked.trail_percent is not None and order.trail_percent is None:
        return "trail_percent: for a trailing stop placed with trail_percent"
    return None


def _trail_stop(order: VenueOrder, spec: SymbolSpec, hwm: int) -> int:
    """A trailing stop's stop at watermark `hwm` (ticks), as Alpaca sets it: the
    watermark less (a sell) or plus (a buy) the trail, a percent trail's gap in cents
    (half to even), then to the nearest tick."""
    if order.trail_price is not None:
        gap = order.trail_price
    else:
        pct = _decimal(order.trail_percent)
        cents = (spec.to_price(hwm) * pct / 100).quantize(Decimal("0.01"))
        gap = spec.to_ticks(cents, rounding=decimal.ROUND_HALF_EVEN)
    return hwm - gap if order.side == "sell" else hwm + gap


def _literal(value: Any, allowed: tuple[str, ...]) -> Any:
    text = _enum_text(value)
    if text not in allowed:
        raise ValueError(f"{text!r} is not one of {allowed}")
    return text


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _get(o: Any, key: str) -> Any:
    return o.get(key) if isinstance(o, Mapping) else getattr(o, key, None)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Decimal | int | str):
        return Decimal(value)
    raise ValueError(f"not a number: {value!r}")


def _qty(value: Any) -> int:
    """A quantity as Alpaca sends it ("10", 10, "10.0"); None and "" are 0."""
    if value is None or value == "":
        return 0
    d = _decimal(value)
    if d != d.to_integral_value():
        raise ValueError(f"fractional quantity {value!r}")
    return int(d)


def _ts_ns(value: Any) -> int:
    """An RFC 3339 timestamp (up to nanoseconds) as ns since the epoch."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        delta = moment - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    m = _TS.match(str(value or ""))
    if m is None:
        return time.time_ns()
    main, frac, zone = m.groups()
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    if len(zone) == 5:
        zone = zone[:3] + ":" + zone[3:]
    moment = dt.datetime.fromisoformat(main.replace(" ", "T") + zone)
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * 10**9 + int((frac or "0")[:9].ljust(9, "0"))


def _api_error_body(exc: APIError) -> tuple[int | None, str]:
    text = str(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return None, text.strip() or "no error body"
    if not isinstance(body, dict):
        return None, text
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message", text))


def _retry_after(response: Any) -> float | None:
    """The seconds an HTTP answer's ``Retry-After`` asks to wait (delay seconds or an
    HTTP date, RFC 9110); None when it sends none or one that cannot be read."""
    headers = getattr(response, "headers", None)
    text = headers.get("Retry-After") if headers is not None else None
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _reason(exc: _Rejected, request: Request) -> str:
    """A short reason code for a 4xx answer (docs/venues.md lists them)."""
    if exc.status == 401 or exc.code == 40110000:
        return "unauthorized"
    if exc.status == 429:
        return "venue_rate_limited"
    if exc.code == 40310000:
        return "insufficient_buying_power"
    if exc.status == 404:
        return "unknown_order"
    if exc.status == 422 and request == "cancel":
        return "not_cancelable"
    if exc.status in (400, 422):
        return "bad_order" if request == "submit" else f"{request}_rejected"
    return "venue_rejected"


def _why(o: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    for key in ("reason", "message"):
        if data.get(key):
            return str(data[key])
    return f"Alpaca status {o.get('status')}"


def _not_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the request certainly never reached the server (connection refused,
    DNS failure, connect timeout), so the order cannot exist at Alpaca."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause: Any = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        name = type(reason).__name__
        return name in ("NewConnectionError", "NameResolutionError")
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed" + (" (refused)" if _not_sent(exc) else "")
    return type(exc).__name__
