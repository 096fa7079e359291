"""The asyncio client of an engine: order entry and the gap-free event stream.

Used by the gateway, the recorder, strategies and tests alike:

    async with EngineClient("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556") as eng:
        reply = await eng.submit("alice", "GOOG", "buy", "limit", 10, price=58000)
        async for event in eng.events(from_seq=1):
            ...

Requests go over a DEALER socket; replies are matched to requests by `req`. A request
goes out when it is sent; the ones sent after it in the same turn of the event loop
(a pipelining caller's burst) go together, one `wire.Batch` frame when the loop turns,
which the engine answers with one frame of replies (docs/engine-service.md, "Batches
of requests"). The event
stream subscribes to the engine's PUB socket and fills any gap in `seq` through the
engine's replay service before yielding, so a consumer sees every event exactly once
and in order. Asked to (`md_from`), it does the same for the market data of chosen
symbols (tops of book by their `md_seq`, and the L2 delta each top says follows it),
through the engine's market-data log (`ReplayMarketData`).

The client follows its connection to the engine (`_watch`, a socket monitor): while
it is not connected, frames wait in the client's own backlog, each dropped once its
requests' deadlines pass, so a request the caller was told failed never reaches an
engine started later; when the connection goes, the replies already received are
read first, then the socket is replaced by a fresh one, which drops whatever ZeroMQ
had queued for the engine that went (docs/engine-service.md, "What a client is told
when the engine stops").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio

from tickplane.core import wire
from tickplane.core.events import BookDelta, Event, MarketData, TopOfBook

__all__ = ["EngineClient", "EngineError", "EngineUnavailable"]

EVENTS_TOPIC = b"e"
HEARTBEAT_TOPIC = b"h"
SEND_QUEUE = 100_000  # requests the DEALER queues for the engine
MD_CHECK_SECONDS = 1.0  # while the engine is idle: how often md_from symbols are caught up
# What `_watch` follows on the DEALER's monitor: a connection made (its ZMTP handshake
# done: the engine can be sent to) and a connection lost.
_CONNECTED = zmq.EVENT_HANDSHAKE_SUCCEEDED
_DISCONNECTED = zmq.EVENT_DISCONNECTED
_WATCHED = int(_CONNECTED | _DISCONNECTED)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _MdCursor:
    """Where a symbol's gap-free market data stands in `EngineClient.events`."""

    next: int  # the md_seq of the next top to yield
    wait: bool = False  # the top of md_seq next - 1 said a delta follows; not yielded yet
    delta: int = 0  # the md_seq of the last delta yielded


def _published_order(tops: list[TopOfBook], deltas: list[BookDelta]) -> list[MarketData]:
    """A replayed page's tops and deltas as they were published: by md_seq, each delta
    right after its top."""
    out: list[MarketData] = [*tops, *deltas]
    out.sort(key=lambda md: (md.md_seq, type(md) is BookDelta))
    return out


def _stale(futs: list[asyncio.Future[Any]]) -> bool:
    """Whether a backlogged frame is not to be sent: a request in it failed (its
    deadline passed; the others', a moment later, pass with it) and must not reach the
    engine after its caller was told so, or none of its requests is awaited."""
    return any(f.done() and not f.cancelled() for f in futs) or all(f.done() for f in futs)


class EngineError(RuntimeError):
    """The engine refused a request that the caller cannot recover from."""


class EngineUnavailable(EngineError):
    """No reply within the timeout: the engine is down, restarting or overloaded."""


class EngineClient:
    """One connection to one engine (see the module docstring)."""

    def __init__(
        self,
        order_entry: str,
        events: str | None = None,
        *,
        timeout: float = 5.0,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.order_entry = order_entry
        self.events_endpoint = events
        self.timeout = timeout
        self._ctx = context or zmq.asyncio.Context.instance()
        self._req = itertools.count(1)
        # (a future of a `send_head` request gets a wire.ReplyHead)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._heads: set[int] = set()  # requests sent by `send_head`, not answered yet
        self._dealer: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        # The DEALER's connection, as its monitor says (`_watch`): frames are sent to
        # the socket only while it is connected, to the backlog otherwise.
        self._connected = False
        self._monitor: zmq.Socket[bytes] | None = None
        self._monitor_fd: int | None = None
        self._sockets = itertools.count(1)  # names each DEALER's monitor endpoint
        self._drain_soon = False
        # (deadline, req) in the order sent; with one timeout, also deadline order
        self._deadlines: deque[tuple[float, int]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        # Frames not sent yet (no engine connected, or the socket's high-water mark), in
        # the order sent, with their requests' futures; sent once connected, by one task
        # while the socket refuses them (`_send_backlog`); dropped once a request in
        # them failed at its deadline (`_stale`).
        self._backlog: deque[tuple[bytes, list[asyncio.Future[wire.Reply]]]] = deque()
        self._sender: asyncio.Task[None] | None = None
        # Requests sent since this loop turn's first one (which went out at once): one
        # Batch frame when the loop turns (`_flush`); None: no turn is collecting.
        self._queued: list[wire.Request] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> EngineClient:
        self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the engine, as far as it heard: requests
        sent meanwhile wait in its backlog until it is (or their deadline)."""
        return self._connected

    def connect(self) -> None:
        if self._dealer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._open()

    def _open(self) -> None:
        """A fresh DEALER to the engine, with the monitor `_watch` reads; not connected
        until its monitor says so."""
        loop = self._loop
        assert loop is not None
        # A plain (synchronous) socket driven by this loop's reader callback, not a
        # zmq.asyncio one: its send and recv each cost a Future and a poller round
        # (~50 us a request); a non-blocking send and a drain of every ready reply per
        # wake-up cost a few.
        sock = zmq.Socket(self._ctx, zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # No IMMEDIATE: with it, libzmq drops the replies received but not read yet
        # when the engine's connection goes. What it was for (nothing queued for an
        # engine that is not there) is the backlog's and `_lost`'s instead.
        # Room for what pipelining clients keep in flight (the default, 1,000, made a
        # burst wait in `_send_backlog`'s back-off); every request still has its deadline.
        sock.setsockopt(zmq.SNDHWM, SEND_QUEUE)
        # and for their replies: a full pipe here backs up to the engine's ROUTER, which
        # drops a reply rather than wait
        sock.setsockopt(zmq.RCVHWM, SEND_QUEUE)
        # The monitor before the connection, so that no event of it is missed.
        where = f"inproc://tickplane-engine-client-{id(self):x}-{next(self._sockets)}"
        sock.monitor(where, _WATCHED)
        monitor = zmq.Socket(self._ctx, zmq.PAIR)
        monitor.setsockopt(zmq.LINGER, 0)
        monitor.connect(where)
        sock.connect(self.order_entry)
        self._dealer, self._monitor, self._connected = sock, monitor, False
        fd = sock.getsockopt(zmq.FD)
        mfd = monitor.getsockopt(zmq.FD)
        assert isinstance(fd, int) and isinstance(mfd, int)
        self._fd, self._monitor_fd = fd, mfd
        loop.add_reader(fd, self._drain)
        loop.add_reader(mfd, self._watch)
        loop.call_soon(self._watch)  # (an event before the reader: its FD's edge is gone)

    def _shut(self) -> None:
        """Close the DEALER and its monitor, dropping what libzmq holds for them."""
        sock, monitor, loop = self._dealer, self._monitor, self._loop
        self._dealer = self._monitor = None
        self._connected = False
        if loop is not None:
            for fd in (self._fd, self._monitor_fd):
                if fd is not None:
                    with contextlib.suppress(RuntimeError):  # a loop already closed
                        loop.remove_reader(fd)
        self._fd = self._monitor_fd = None
        if sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                sock.disable_monitor()
            sock.close(0)
        if monitor is not None:
            monitor.close(0)

    def _watch(self) -> None:
        """Read the DEALER's monitor: connected, send the backlog; disconnected,
        `_lost`. (Its FD is edge-triggered, as the DEALER's: read until empty.)"""
        while (monitor := self._monitor) is not None:
            try:
                head = monitor.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            # [event: 16 bits, value: 32 bits][endpoint]: a message arrives whole
            while monitor.getsockopt(zmq.RCVMORE):
                monitor.recv(zmq.NOBLOCK)
            event = int.from_bytes(head[:2], "little")
            if event == _CONNECTED:
                self._connected = True
                if self._backlog and self._push_backlog():
                    self._start_sender()
            elif event == _DISCONNECTED:
                self._lost()

    def _lost(self) -> None:
        """The engine's connection went: read every reply already received (the
        engine's last, sent as it stopped), then replace the socket. libzmq would keep
        the frames sent since the connection went (before this client heard of it) and
        hand them to the next engine it reaches, maybe after their callers were told
        they failed: the old socket is closed with them, and they fail at their
        deadline. Frames sent from now on wait in the backlog until a connection."""
        self._drain()
        self._shut()
        self._open()

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self._backlog.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        self._queued = None
        self._shut()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(EngineUnavailable("client closed"))
        self._pending.clear()
        self._heads.clear()

    def _drain(self) -> None:
        """Resolve every reply that is ready. ZeroMQ's FD is edge-triggered: it signals
        a change, not a level, so each wake-up reads until nothing is left."""
        self._drain_soon = False
        sock = self._dealer
        if sock is None:
            return
        pending = self._pending
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                replies = self._decode(frame) if self._heads else wire.decode_replies(frame)
            except wire.WireError:
                continue  # not for us (or from an incompatible engine): nothing to resolve
            for reply in replies:
                fut = pending.pop(reply.req, None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        # Answered requests leave the deadline queue from its front, so it holds about
        # the requests in flight, not every request of the last `timeout` seconds.
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in pending:
            deadlines.popleft()

    def _decode(self, frame: bytes) -> list[wire.Reply | wire.ReplyHead]:
        """A frame's replies while `send_head` requests are in flight: as heads; those
        of other requests (the same frame when sent in the same loop turn) decoded again
        in full."""
        heads = self._heads
        got: list[wire.Reply | wire.ReplyHead] = list(wire.decode_reply_heads(frame))
        full: list[wire.Reply] | None = None
        for i, reply in enumerate(got):
            if reply.req in heads:
                heads.discard(reply.req)
            else:
                full = full or wire.decode_replies(frame)
                got[i] = full[i]
        return got

    def _expire(self) -> None:
        """Fail the requests whose deadline passed; arm the timer for the next one."""
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines:
            when, req = deadlines[0]
            if when > now:
                self._timer = self._loop.call_at(when, self._expire)
                return
            deadlines.popleft()
            self._heads.discard(req)
            fut = self._pending.pop(req, None)
            if fut is not None and not fut.done():
                fut.set_exception(
                    EngineUnavailable(
                        f"no reply from the engine at {self.order_entry} within {self.timeout}s"
                    )
                )

    def _push_backlog(self) -> bool:
        """Send the backlog's frames, oldest first, while the socket takes them (a
        frame `_stale` is dropped); whether some are left (its high-water mark)."""
        sock, backlog = self._dealer, self._backlog
        assert sock is not None
        while backlog:
            frame, futs = backlog[0]
            if not _stale(futs):
                try:
                    sock.send(frame, zmq.NOBLOCK)
                except zmq.Again:
                    return True
            backlog.popleft()
        if int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:  # (a send can swallow the edge)
            self._drain()
        return False

    def _start_sender(self) -> None:
        if self._sender is None and self._loop is not None:
            self._sender = self._loop.create_task(self._send_backlog())

    async def _send_backlog(self) -> None:
        """While connected, send the frames the socket refused (its high-water mark),
        backing off. Later frames wait behind them: requests stay in order. Ends
        when the backlog is empty or the connection goes (`_watch` starts it again)."""
        backlog = self._backlog
        delay = 0.001
        try:
            while backlog and self._connected:
                await asyncio.sleep(delay)  # ZeroMQ has no awaitable "writable" for a DEALER
                if not self._connected or self._dealer is None:
                    return
                before = len(backlog)
                if self._push_backlog():
                    delay = min(delay * 2, 0.05) if len(backlog) == before else 0.001
        finally:
            self._sender = None

    # -- requests --------------------------------------------------------------------------

    def next_req(self) -> int:
        return next(self._req)

    def send(self, msg: wire.Request) -> asyncio.Future[wire.Reply]:
        """Send one request; its reply comes in the returned future (which fails with
        EngineUnavailable after `timeout`). For pipelining: send many, then await them;
        the engine handles them in the order sent. The first request of a loop turn goes
        out now, those after it in the same turn as one batch when the turn ends."""
        if self._dealer is None:
            self.connect()
        sock = self._dealer
        loop = self._loop
        assert sock is not None and loop is not None
        fut: asyncio.Future[wire.Reply] = loop.create_future()
        req = msg.req
        self._pending[req] = fut
        # One timer for every request in flight (a deadline queue), not one each: the
        # send is inside the deadline too, as with no engine connected a frame waits in
        # the backlog.
        deadline = loop.time() + self.timeout
        self._deadlines.append((deadline, req))
        if self._timer is None or deadline < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)
        queued = self._queued
        if queued is not None:
            queued.append(msg)
            if len(queued) >= wire.MAX_BATCH:
                self._flush()
            return fut
        self._queued = []
        loop.call_soon(self._flush)
        self._send_frame(wire.encode(msg), [msg])
        return fut

    def send_head(self, msg: wire.Request) -> asyncio.Future[wire.ReplyHead]:
        """`send`, its reply read as a `wire.AckHead` (ids and seqs; the events left
        encoded, `rejection()` finds a refusal): for a caller of NewOrder, CancelOrder
        or ReplaceOrder that does not read the events."""
        self._heads.add(msg.req)
        fut: asyncio.Future[wire.ReplyHead] = self.send(msg)  # type: ignore[assignment]
        return fut

    def _flush(self) -> None:
        """Send the requests queued since the turn's first (one frame), end the turn."""
        queued = self._queued
        self._queued = None
        if queued:
            self._send_frame(wire.encode_batch(queued), queued)

    def _send_frame(self, frame: bytes, msgs: list[wire.Request]) -> None:
        sock, loop = self._dealer, self._loop
        if sock is None or loop is None:  # closed meanwhile: close() failed the futures
            return
        if self._connected and not self._backlog:
            try:
                sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                pass
            else:
                # A send processes the socket's pending commands, which can swallow the
                # FD's edge for a reply that already arrived: look once more, later.
                if not self._drain_soon and int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    self._drain_soon = True
                    loop.call_soon(self._drain)
                return
        futs = [f for m in msgs if (f := self._pending.get(m.req)) is not None]
        backlog = self._backlog
        while backlog and _stale(backlog[0][1]):  # an engine long gone: not kept for ever
            backlog.popleft()
        backlog.append((frame, futs))
        if self._connected:
            self._start_sender()

    async def request(self, msg: wire.Request) -> wire.Reply:
        """Send one request and wait for its reply (EngineUnavailable on timeout)."""
        fut = self.send(msg)
        try:
            return await fut
        finally:
            self._pending.pop(msg.req, None)

    async def submit(
        self,
        account: str,
        symbol: str,
        side: str,
        order_type: str,
        qty: int,
        *,
        price: int | None = None,
        stop_price: int | None = None,
        tif: str = "gtc",
        post_only: bool = False,
        client_order_id: str | None = None,
        order_class: str | None = None,
        take_profit: wire.TakeProfit | None = None,
        stop_loss: wire.StopLoss | None = None,
        trail_price: int | None = None,
        trail_percent: float | None = None,
    ) -> wire.Reply:
        """A new order; `order_class` and the fields after it are for bracket, OTO, OCO
        and trailing-stop orders (docs/order-classes.md)."""
        return await self.request(
            wire.NewOrder(
                self.next_req(),
                account,
                symbol,
                side,
                order_type,
                qty,
                price,
                stop_price,
                tif,
                post_only,
                client_order_id,
                order_class,
                take_profit,
                stop_loss,
                trail_price,
                trail_percent,
            )
        )

    async def cancel(self, account: str, order_id: int) -> wire.Reply:
        return await self.request(wire.CancelOrder(self.next_req(), account, order_id))

    async def replace(
        self,
        account: str,
        order_id: int,
        *,
        qty: int | None = None,
        price: int | None = None,
        stop_price: int | None = None,
        trail_price: int | None = None,
        trail_percent: float | None = None,
    ) -> wire.Reply:
        """Replace an order's open quantity and/or price (a held stop-loss leg: also its
        stop price; a trailing stop: its quantity and trail)."""
        return await self.request(
            wire.ReplaceOrder(
                self.next_req(),
                account,
                order_id,
                qty,
                price,
                stop_price,
                trail_price,
                trail_percent,
            )
        )

    async def mass_cancel(
        self, account: str | None = None, symbol: str | None = None
    ) -> wire.Reply:
        return await self.request(wire.MassCancel(self.next_req(), account, symbol))

    async def get_order(self, account: str, order_id: int) -> wire.Reply:
        """The account's order `order_id` in `Ack.order`: open, or recently finished
        with its final status, fills, reason and times (`wire.OrderView`). Finished
        longer ago than the engine keeps (`EngineConfig.finished_orders`), or another
        account's: Reject `unknown_order`."""
        return await self.request(wire.GetOrder(self.next_req(), account, order_id))

    async def get_order_by_client_id(self, account: str, client_order_id: str) -> wire.Reply:
        """The order the account placed under `client_order_id`, open or done: its id in
        `Ack.order_id`, its view in `Ack.order` while open or recently finished."""
        return await self.request(wire.GetOrder(self.next_req(), account, 0, client_order_id))

    async def get_book(self, symbol: str, depth: int = 10) -> wire.Reply:
        return await self.request(wire.GetBook(self.next_req(), symbol, depth))

    async def control(
        self,
        action: str,
        *,
        account: str | None = None,
        symbol: str | None = None,
        duration_ns: int | None = None,
    ) -> wire.Reply:
        return await self.request(
            wire.Control(self.next_req(), action, account, symbol, duration_ns)
        )

    async def ping(self) -> wire.Reply:
        return await self.request(wire.Ping(self.next_req()))

    async def get_symbols(self) -> wire.Reply:
        """The engine's symbols (`Ack.symbols`)."""
        return await self.request(wire.GetSymbols(self.next_req()))

    async def get_account(self, account: str) -> wire.Reply:
        """The account's cash, P&L, positions and kill switch (`Ack.account`)."""
        return await self.request(wire.GetAccount(self.next_req(), account))

    async def list_orders(self, account: str, symbol: str | None = None) -> wire.Reply:
        """The account's open orders, optionally of one symbol (`Ack.orders`)."""
        return await self.request(wire.ListOrders(self.next_req(), account, symbol))

    async def replay(self, from_seq: int, to_seq: int) -> list[Event]:
        """The trading events from_seq..to_seq (inclusive), fetched in pages."""
        out: list[Event] = []
        nxt = from_seq
        while nxt <= to_seq:
            reply = await self.request(wire.Replay(self.next_req(), nxt, to_seq))
            if isinstance(reply, wire.Reject):
                raise EngineError(f"replay {nxt}..{to_seq}: {reply.reason} {reply.message}")
            if not reply.events:
                break
            out.extend(reply.events)
            nxt = reply.events[-1].seq + 1
        return out

    async def replay_market_data(
        self, symbol: str, from_md_seq: int, to_md_seq: int
    ) -> tuple[list[MarketData], int]:
        """One page of `symbol`'s market data from_md_seq..to_md_seq, tops and their
        deltas in the order they were published, and the last md_seq the answer covers
        (numbers in range whose top it lacks are not kept, nor is a delta a top's
        `has_delta` announces and the page lacks: see `wire.ReplayMarketData`). From an
        engine before deltas were replayed: its tops only."""
        reply = await self.request(
            wire.ReplayMarketData(self.next_req(), symbol, from_md_seq, to_md_seq, True)
        )
        if isinstance(reply, wire.Reject):
            raise EngineError(
                f"replay of {symbol} market data {from_md_seq}..{to_md_seq}: "
                f"{reply.reason} {reply.message}"
            )
        covered = reply.md_seq if reply.md_seq is not None else from_md_seq - 1
        return _published_order(reply.tops or [], reply.deltas or []), covered

    async def _md_fill(
        self,
        symbol: str,
        cursors: dict[str, _MdCursor],
        upto: int,
        deltas: bool,
        on_missing: Callable[[str, int], None] | None,
    ) -> AsyncIterator[MarketData]:
        """`symbol`'s market data from its cursor to md_seq `upto` (or the latest),
        paged, moving the cursor past each message yielded: the tops, and with `deltas`
        the deltas they announce (a delta the cursor waits for first). What the engine
        no longer keeps is logged and counted through `on_missing`. An engine that
        cannot replay market data (no market-data log, or a version before
        `ReplayMarketData`) empties `cursors`: its market data is then passed on live
        only, as it comes."""
        cur = cursors.get(symbol)
        if cur is None:
            return
        while (start := cur.next - 1 if cur.wait else cur.next) <= upto:
            reply = await self.request(
                wire.ReplayMarketData(self.next_req(), symbol, start, upto, deltas)
            )
            if isinstance(reply, wire.Reject):
                if reply.reason not in ("replay_unavailable", "bad_frame"):
                    raise EngineError(
                        f"replay of {symbol} market data {start}..{upto}: "
                        f"{reply.reason} {reply.message}"
                    )
                log.warning(
                    "the engine cannot replay market data (%s: %s): it is passed on "
                    "live only, and what is missed is not filled",
                    reply.reason,
                    reply.message,
                )
                cursors.clear()
                return
            covered = reply.md_seq if reply.md_seq is not None else start - 1
            if covered < start:
                return  # nothing that new yet
            missing = 0
            for md in _published_order(reply.tops or [], reply.deltas or []):
                if type(md) is TopOfBook:
                    if md.md_seq < cur.next:
                        continue  # the top of the delta waited for: yielded before
                    missing += md.md_seq - cur.next + cur.wait
                    cur.next, cur.wait = md.md_seq + 1, deltas and md.has_delta
                    yield md
                elif cur.wait and md.md_seq == cur.next - 1:
                    cur.wait, cur.delta = False, md.md_seq
                    yield md
            # A delta is logged with its top, and the page ends with a whole md_seq: a
            # delta still waited for is not kept.
            missing += covered + 1 - cur.next + cur.wait
            cur.next, cur.wait = covered + 1, False
            if missing:
                log.warning(
                    "market data of %s: %d messages (tops, or deltas their tops "
                    "announce) of md_seq %d..%d are not kept by the engine (older than "
                    "its market-data log, or its last moments before a kill -9)",
                    symbol,
                    missing,
                    start,
                    covered,
                )
                if on_missing is not None:
                    on_missing(symbol, missing)

    async def _fill(self, expected: int, upto: int) -> list[Event]:
        """The events expected..upto-1, which the stream lost, through replay."""
        missed = await self.replay(expected, upto - 1)
        if len(missed) != upto - expected:
            raise EngineError(
                f"events {expected}..{upto - 1} were missed and the engine replayed only "
                f"{len(missed)}: resynchronise from a snapshot"
            )
        return missed

    # -- the event stream ------------------------------------------------------------------

    async def events(
        self,
        from_seq: int | None = None,
        *,
        market_data: list[str] | None = None,
        md_from: dict[str, int] | None = None,
        on_md_missing: Callable[[str, int], None] | None = None,
        deltas: bool = True,
    ) -> AsyncIterator[Event | MarketData]:
        """Trading events in seq order, gaps filled through replay; with `market_data`,
        also those symbols' market-data messages (not sequenced with the events): tops
        of book, and with `deltas` (a consumer of tops only passes False) L2 deltas.

        With `from_seq`, events before the first live one are replayed first. With
        `md_from` (symbol -> first md_seq wanted, for symbols of `market_data`), those
        symbols' market data comes gap-free and in the order it was published too: from
        that number (caught up at once from the engine's market-data log), each top, and
        each delta a top announces (`TopOfBook.has_delta`), that was missed filled before
        a later message is yielded, and caught up again now and then while the engine is
        idle. What the engine no longer keeps is skipped, logged and counted through
        `on_md_missing(symbol, count)`."""
        if self.events_endpoint is None:
            raise EngineError("this client was given no events endpoint")
        # A plain socket read without waiting while frames are queued (the usual case
        # under load); only an empty socket waits, on its FD (zmq.asyncio's Future per
        # recv cost more than the projection's handling of the events in it).
        sub = zmq.Socket(self._ctx, zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, EVENTS_TOPIC)
        sub.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC)
        for symbol in market_data or []:
            sub.setsockopt(zmq.SUBSCRIBE, b"m." + symbol.encode())
        sub.connect(self.events_endpoint)
        loop = asyncio.get_running_loop()
        fd = sub.getsockopt(zmq.FD)
        assert isinstance(fd, int)
        waiter: list[asyncio.Future[None] | None] = [None]

        def wake() -> None:
            w = waiter[0]
            if w is not None and not w.done():
                w.set_result(None)

        loop.add_reader(fd, wake)
        expected = from_seq
        in_a_row = 0
        cursors = {symbol: _MdCursor(n) for symbol, n in (md_from or {}).items()}
        md_checked = time.monotonic()
        try:
            for symbol in list(cursors):
                async for filled in self._md_fill(symbol, cursors, 2**62, deltas, on_md_missing):
                    yield filled
            while True:
                try:
                    topic, frame = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    w = waiter[0] = loop.create_future()
                    # The FD is edge-triggered: a frame that came since the recv above
                    # may have been noticed already; EVENTS tells.
                    if not int(sub.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                        await w
                    waiter[0] = None
                    in_a_row = 0
                    continue
                in_a_row += 1
                if in_a_row % 64 == 0:
                    await asyncio.sleep(0)  # a long burst: let the loop serve others too
                try:
                    if topic == HEARTBEAT_TOPIC:
                        last = wire.decode_heartbeat(frame)
                        if expected is not None and last >= expected:
                            for event in await self._fill(expected, last + 1):
                                yield event
                            expected = last + 1
                        if cursors and time.monotonic() - md_checked >= MD_CHECK_SECONDS:
                            # Idle: a last message ZeroMQ dropped shows no later gap.
                            md_checked = time.monotonic()
                            for symbol in list(cursors):
                                async for filled in self._md_fill(
                                    symbol, cursors, 2**62, deltas, on_md_missing
                                ):
                                    yield filled
                        continue
                    if topic != EVENTS_TOPIC:
                        md: Any = wire.decode_event(frame)
                        if type(md) is BookDelta and not deltas:
                            continue
                        cur = cursors.get(md.symbol)
                        if cur is None:
                            yield md
                            continue
                        if type(md) is TopOfBook:
                            if md.md_seq < cur.next:
                                continue  # already yielded from the log
                            if md.md_seq > cur.next or cur.wait:  # a top or delta missed
                                async for filled in self._md_fill(
                                    md.symbol, cursors, md.md_seq - 1, deltas, on_md_missing
                                ):
                                    yield filled
                            cur.next, cur.wait = md.md_seq + 1, deltas and md.has_delta
                        else:  # a delta: its top was yielded before it, or missed
                            if md.md_seq <= cur.delta:
                                continue  # already yielded from the log
                            if md.md_seq >= cur.next:  # its top was missed: fill up to it
                                async for filled in self._md_fill(
                                    md.symbol, cursors, md.md_seq, deltas, on_md_missing
                                ):
                                    yield filled
                                if md.md_seq <= cur.delta:
                                    continue  # the fill yielded it
                            # (or a delta no top announced: from an engine before has_delta)
                            if md.md_seq == cur.next - 1:
                                cur.wait = False
                            cur.delta = md.md_seq
                        yield md
                        continue
                    batch = wire.decode_events(frame)
                except wire.WireError:
                    continue
                for msg in batch:
                    if expected is None:
                        expected = msg.seq
                    if msg.seq < expected:
                        continue  # already delivered through replay
                    if msg.seq > expected:
                        for event in await self._fill(expected, msg.seq):
                            yield event
                    expected = msg.seq + 1
                    yield msg
        finally:
            with contextlib.suppress(RuntimeError):  # a loop already closed
                loop.remove_reader(fd)
            sub.close(0)
