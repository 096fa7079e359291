"""The engine process: ZeroMQ order entry, journal-before-ack, sequenced events.

One thread owns all trading state (`EngineState`) and runs the loop:

    poll the ROUTER -> take up to `max_batch` requests -> for each: decode, validate,
    journal the command, apply it -> commit the journal (fsync per policy) -> send the
    replies -> publish the events and the touched symbols' top of book

so no reply and no event ever leaves the process before its command is in the journal.
Recovery on start loads the newest snapshot and re-applies the journal after it; the
HTTP thread answers /healthz, /readyz (ready only after recovery), /metrics and /status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import os
import queue
import signal
import time
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from time import perf_counter_ns, time_ns
from typing import Any

import cython
import msgspec
import zmq

from tickplane.core import wire
from tickplane.core.accounts import ACCOUNT_RULE, is_account
from tickplane.core.config import EngineConfig
from tickplane.core.events import Event, OrderRejected, TopOfBook
from tickplane.core.wire import (  # by name: a module attribute read costs ~60 instructions
    Ack,
    Batch,
    CancelOrder,
    NewOrder,
    Reject,
    ReplaceOrder,
    Replies,
)
from tickplane.engine.contingent import (
    CLASSES,
    STOP_LOSS,
    TAKE_PROFIT,
    HeldOrder,
    exit_side,
    exits_refused,
    legs_for,
    trailing_stop,
)
from tickplane.engine.eventlog import EventLog
from tickplane.engine.idempotency import fingerprint
from tickplane.engine.journal import CommandRun, FsyncPolicy, JournalWriter, RecordType, recover
from tickplane.engine.market import LobsterMarket, SyntheticMarket
from tickplane.engine.matching import KEEP, Op, Reason, pack_command
from tickplane.engine.mdlog import MarketDataLog
from tickplane.engine.metrics import EngineMetrics, serve_http
from tickplane.engine.recovery import replay_commands
from tickplane.engine.router import PyzmqRouter, Router, for_socket
from tickplane.engine.state import (
    CANCEL,
    COLLARED,
    FALLBACK,
    INVALID,
    NEW,
    ORDER_TYPES,
    SIDE_NAMES,
    SIDES,
    TIF_NAMES,
    TIFS,
    TYPE_NAMES,
    Command,
    EngineState,
    RoutedOrder,
    tape,
)
from tickplane.engine.venues.base import (
    HandBack,
    SymbolSpec,
    Venue,
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

__all__ = ["EngineService", "io_cpus", "pin_hot_loop"]

log = logging.getLogger("tickplane.engine")

EVENTS_TOPIC = b"e"
HEARTBEAT_TOPIC = b"h"
HEARTBEAT_SECONDS = 0.1
# pyzmq combines enum flags in Python on every send; a plain int costs nothing. The
# backend's methods skip the Python layer of pyzmq's Socket (`_take` has the figures).
_recv = zmq.backend.Socket.recv
_SLEPT_NS = 20_000  # a poll longer than this slept (one that finds a message: ~2 us)
REPLAY_PAGE = 5000  # events per Replay answer at most (the client asks on from the last)
# Events the Replay answers of one turn give together (past it, one each, so a client
# still moves on): a Batch of 1,024 replays must not stall the loop nor swell memory.
REPLAY_TURN = 10_000
MD_REPLAY_PAGE = 2000  # tops per ReplayMarketData answer (~0.35 MB at 10 levels a side)
MAX_FIELD = 1_000_000_000_000
NOTHING_TO_REPLACE = "nothing to replace: give qty, price, stop_price or a trail"
MAX_HALT_NS = 366 * 86_400 * 10**9  # a halt's longest duration: its end stays a 64-bit ts
# How long a stopping engine lets the replies and events it sent reach peers slow to
# read (their TCP window full) before it drops them; a peer gone drops its at once.
SHUTDOWN_LINGER_MS = 2000
# Once its loop stopped, a stopping engine answers the requests still coming in, each a
# Reject `shutting_down` (`_refuse_queued`): until none came for SHUTDOWN_QUIET_MS (the
# ones in flight when its client heard of the stop), at most SHUTDOWN_REFUSE_MS in all
# (a client that keeps sending does not hold the stop).
SHUTDOWN_QUIET_MS = 50
SHUTDOWN_REFUSE_MS = 500
SHUTTING_DOWN = "the engine is shutting down: nothing was done; retry once it is back"
MAX_NAME = 64  # client order ids: twice this, as Alpaca's 128 (accounts: core/accounts.py)
# Account names `is_account` passed: a request pays one set lookup, not the regex (~1%
# of a request). Accounts are few; the bound only stops a client naming new ones forever.
_ACCOUNTS_OK: set[str] = set()
_ACCOUNTS_OK_MAX = 65_536
# The wire's codec, called as C calls (`_decode`, `_frame`) rather than through its
# interpreted functions, whose frames cost ~1k instructions a request (of ~41k).
_encode = wire.ENCODER.encode
_decode_body = wire.FRAME_DECODER.decode
_DECODE_MAX = 2048  # a longer frame is left to `wire.decode_frame` (it takes a view)
_WIRE_VERSION = wire.WIRE_VERSION  # C constants (service.pxd)
_VERSION_BYTE = wire.VERSION_BYTE


def pin_hot_loop(enabled: bool) -> list[int]:
    """Pin the calling thread to one of the CPUs this process may use (the last one:
    with the static CPU manager they are all exclusive); return the allowed CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if enabled and len(cpus) > 0:
        os.sched_setaffinity(0, {cpus[-1]})
    return cpus


def io_cpus(enabled: bool) -> list[int]:
    """The CPUs for ZeroMQ's I/O thread when the loop pins itself (`pin_hot_loop`):
    every allowed CPU but the loop's, so that the loop's CPU runs the loop alone; none
    (no restriction) when the loop is not pinned or has one CPU to share."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[:-1] if enabled and len(cpus) > 1 else []


def _quiet_collector() -> None:
    """Keep the cyclic garbage collector off the engine process's hot path.

    A turn allocates in bursts (a batch's replies, events and lists live until the
    turn's encode), so with the default threshold (700) the young generation was
    collected several times a 256-request turn, finding nothing: 9% of the loop's
    instructions (callgrind, `Batch` frames of 256). What start-up and recovery built
    is frozen out of every collection; the loop's own garbage is freed by reference
    counting, and the rare cycle waits for a later, larger collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _bad_account(
    req: int, account: str, st: EngineState | None = None, new: bool = False
) -> Reject | None:
    """The `bad_account` refusal of a request naming `account`, unless it is an account
    name (core/accounts.py); a name that is, is remembered in `_ACCOUNTS_OK`. Requests
    only: recovery replays the journal's accounts as they were written.

    With the engine's state `st`, an account it already holds (recovered from the
    journal of an engine from before the rule) is not refused by a request that reaches
    what it has (a cancel, a mass cancel, a kill switch, a query), and is refused, saying
    why, by one that would give it more (`new`: a new order, a replace). Only names the
    rule refuses get here: the request path pays nothing for it."""
    if account in _ACCOUNTS_OK:
        return None
    if not is_account(account):
        if st is not None and st.account_id(account) is not None:
            if not new:
                return None
            return Reject(
                req,
                "bad_account",
                f"account {account!r} is from before the account rule: its orders can be "
                f"canceled and queried, and new ones need an account of {ACCOUNT_RULE}",
            )
        return Reject(req, "bad_account", f"account must be {ACCOUNT_RULE}")
    if len(_ACCOUNTS_OK) >= _ACCOUNTS_OK_MAX:
        _ACCOUNTS_OK.clear()
    _ACCOUNTS_OK.add(account)
    return None


def _number(value: int | None) -> int:
    return value if value is not None and 0 < value <= MAX_FIELD else -1


class EngineService:
    """One engine process (see the module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.state = EngineState(config)
        self.metrics = EngineMetrics(config.name)
        self.ready = False
        self.stopping = False
        self.cpus: list[int] = []
        self.pinned: int | None = None
        self.io_cpus: list[int] = []  # ZeroMQ's I/O thread's CPUs ([]: any), see `open`
        self.journal: JournalWriter | None = None
        self.eventlog: EventLog | None = None
        self.mdlog: MarketDataLog | None = None
        self.market: SyntheticMarket | LobsterMarket | None = None
        self.venue: Venue | None = None
        self.venue_status = VenueStatus(self.config.venue.kind == "internal", "internal")
        self._inbox: queue.SimpleQueue[VenueEvent] = queue.SimpleQueue()
        self._resumed = False  # routed orders recovered from the journal handed back
        self._last_heartbeat = 0.0  # time.monotonic() of the last idle heartbeat
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._replay_left = REPLAY_TURN  # this turn's Replay budget (`process` renews it)
        # The journal record the last snapshot covers (the shutdown's log line names it)
        self._snapshot_ordinal = 0
        # `journal.entries` at the last snapshot (minus the tail recovery replayed): a
        # snapshot is due `snapshot_every` entries (commands, MARKs, accounts) after it
        self._snapshot_entries = 0
        # perf_counter_ns() of the loop's last turn or idle wake (0: not looping):
        # /healthz fails when it is older than LOOP_STALE_SECONDS (engine/metrics.py)
        self.loop_beat_ns = 0
        # The timestamps of the turn's sampled request (`process`): set for its first
        # frame, filled by `handle` and `_run`, None for every other request.
        self._stamps: list[int] | None = None
        self._ctx = zmq.Context()
        self._router: zmq.Socket[bytes] | None = None
        # The ROUTER's requests and replies: through libzmq's own calls (router.pyx),
        # or pyzmq's (a pyzmq whose libzmq is not a library of its own)
        self._io: Router | PyzmqRouter | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._pub_io: Router | PyzmqRouter | None = None  # the PUB's messages (as `_io`)
        self._http: ThreadingHTTPServer | None = None

    # -- start and stop --------------------------------------------------------------------

    def recover(self) -> int:
        """Load the newest snapshot and re-apply the journal after it; return how many
        commands were re-applied.

        The event log keeps what it holds up to the recovered last seq (it was written
        from the same journal records); only the events it lacks are built and appended
        (engine/recovery.py), and the in-memory replay buffer starts after the recovered
        state (older ranges are served from the log)."""
        collecting = gc.isenabled()
        gc.disable()  # ~10% of recovery went to collections that find nothing to free
        try:
            return self._recover()
        finally:
            if collecting:
                gc.enable()

    def _recover(self) -> int:
        t0 = time.perf_counter()
        rec = recover(self.config.journal_dir)
        if rec.state is not None:
            self.state.restore(rec.state)
        st = self.state
        log_ = self.eventlog
        applied = records = 0
        for item in rec.runs:
            have = log_.next_seq if log_ is not None else 1
            if isinstance(item, CommandRun):
                events = replay_commands(st, item.commands, have)
                applied += len(item.commands)
            elif item.rtype == RecordType.ACCOUNT:
                st.add_account(item.account())
                events = []
                records += 1
            else:
                records += 1
                events = [e for e in self._apply_mark(item.mark(), check=True) if e.seq >= have]
            if log_ is not None and events:
                try:
                    log_.append(events)
                except OverflowError:  # cannot be encoded: the state has them, the log not
                    log.error(
                        "event log: events %d..%d hold a number past 64-bit integers and "
                        "are not logged (not replayable)",
                        events[0].seq,
                        events[-1].seq,
                    )
        st.venue_cancels.clear()  # decided before the restart: sent again on resume
        if log_ is not None and log_.next_seq > st.seq + 1:
            log_.truncate_after(st.seq)  # it held events of records the journal lost
        if st.recent.next != st.seq + 1:
            st.recent.first = st.recent.next = st.seq + 1
        self._snapshot_ordinal = rec.snapshot_ordinal
        self._snapshot_entries = -(applied + records)  # the tail counts toward the next
        self.metrics.recovery_seconds.set(time.perf_counter() - t0)
        log.info(
            "recovered %d commands after snapshot %d in %.3fs; last seq %d",
            applied,
            rec.snapshot_ordinal,
            time.perf_counter() - t0,
            self.state.seq,
        )
        return applied

    def _apply_mark(self, mark: Any, *, check: bool = False) -> list[Event]:
        """Apply a MARK record (live, right after journaling it, and on recovery:
        `check` re-runs the risk check a replace passed live, for its rate token)."""
        if not isinstance(mark, dict):
            return []
        if "client_order_id" in mark:
            self.state.remember_client_order_id(
                int(mark["order_id"]),
                str(mark["client_order_id"]),
                mark.get("account"),
                mark.get("fingerprint"),
            )
        if "route" in mark:
            legs = [msgspec.convert(leg, RoutedOrder) for leg in mark.get("legs", ())]
            routed = msgspec.convert(mark["route"], RoutedOrder)
            if check and "ts" in mark:
                self.state.recheck_route(routed, int(mark["ts"]))
            self.state.route(routed, legs)
        if "contingent" in mark:
            return self.state.contingent_mark(mark["contingent"], int(mark["ts"]), check=check)
        if "routed_replace" in mark:
            if check:
                self.state.recheck_routed_replace(mark["routed_replace"], int(mark["ts"]))
            return []
        if "control" in mark:
            c = mark["control"]
            return self.state.control(
                str(c["action"]),
                c.get("account"),
                c.get("symbol"),
                c.get("duration_ns"),
                int(mark["ts"]),
            )
        if "venue_event" in mark:
            ev = mark["venue_event"]
            return self.state.apply_venue(str(ev["kind"]), ev, int(mark["ts"]))
        return []

    def open(self) -> None:
        """Open the journal (its lock, its torn tail repaired), recover, start the venue
        and bind the sockets (the loop is `run`)."""
        policy = FsyncPolicy.NONE if self.config.fsync == "none" else FsyncPolicy.BATCH
        self.journal = JournalWriter.open(
            self.config.journal_dir, policy, on_fsync=self.metrics.fsync_seconds.observe
        )
        self.eventlog = EventLog(self.config.journal_dir, self.config.event_log_bytes)
        # read when scraped, from the state itself (while recovering: as far as it got)
        self.metrics.seq.set_function(lambda: float(self.state.seq))
        self.metrics.kill_switches.set_function(lambda: float(self.state.risk.kill_switches()))
        self.metrics.venue_connected.set_function(lambda: float(self.venue_status.connected))
        fallback = self.metrics.venue_fallback_active.labels(self.config.venue.unreachable)
        fallback.set_function(lambda: float(self.falls_back()))
        if self.config.http_port:
            # Before recovery, which can take seconds: liveness answers and readiness
            # says "recovering" meanwhile, instead of a refused connection that a
            # liveness probe cannot tell from a dead engine.
            self._http = serve_http(self, self.config.http_host, self.config.http_port)
        self.recover()
        if self.config.md_log_bytes:
            self.mdlog = MarketDataLog(self.config.journal_dir, self.config.md_log_bytes)
            md_seq = self.state.md_seq
            for name in self.state.symbols:  # past any number handed out before a kill -9
                md_seq[name] = max(md_seq.get(name, 0), self.mdlog.resume_md_seq(name))
        if self.config.venue.kind == "alpaca":
            self.venue = _alpaca_venue(self.config)
            self.venue.expect_hand_back(self._hand_back_ids())
            self.venue.start(self._venue_emit)
        elif self.config.market.source == "synthetic":
            self.market = SyntheticMarket(self.config.market, self.config.symbols, time_ns())
        elif self.config.market.source == "lobster":
            names = self.config.market.symbols or [self.config.symbols[0].name]
            symbol = self.config.symbol(names[0])
            assert symbol is not None  # validated with the configuration
            self.market = LobsterMarket(self.config.market, symbol, time_ns())
        # The context starts its I/O thread with its first socket: placed now. On the
        # loop's CPU it took turns with the loop (a pipelining client's frames, in and
        # out, are its work), which then had that much less of its CPU.
        self.io_cpus = io_cpus(self.config.pin_cpu)
        for cpu in self.io_cpus:
            self._ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, cpu)
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        # A ROUTER drops replies to a peer whose queue is full: make that queue deep
        # enough that only a client that stopped reading altogether can lose acks.
        self._router.setsockopt(zmq.SNDHWM, 1_000_000)
        self._router.bind(self.config.order_entry)
        self._io = for_socket(self._router)
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, 1_000_000)
        self._pub.bind(self.config.events)
        self._pub_io = for_socket(self._pub)
        self.cpus = pin_hot_loop(self.config.pin_cpu)
        self.pinned = self.cpus[-1] if self.config.pin_cpu and self.cpus else None
        self.metrics.set_cpus(self.cpus, self.pinned)
        self._watch_queues()
        log.info(
            "engine %s: order entry %s, events %s, CPUs %s, hot loop pinned to %s",
            self.config.name,
            self.config.order_entry,
            self.config.events,
            self.cpus,
            self.pinned,
        )
        self.ready = True

    def falls_back(self) -> bool:
        """Whether new orders for the venue are matched here instead: it is unreachable
        and `venue.unreachable` is `internal` (docs/venues.md; read from any thread)."""
        v = self.venue
        return v is not None and self.config.venue.unreachable == "internal" and not v.connected

    def _watch_queues(self) -> None:
        """Queue depths, read when scraped (the order-entry socket's own queue is not
        observable in ZeroMQ: `tickplane_engine_batch_size` at `max_batch` says one is
        waiting)."""
        depth = self.metrics.queue_depth
        depth.labels("venue_events").set_function(lambda: float(self._inbox.qsize()))
        # one read of each attribute: the scrape's thread races the loop's close()
        depth.labels("venue_requests").set_function(
            lambda: float(v.pending) if (v := self.venue) is not None else 0.0
        )
        depth.labels("event_log").set_function(
            lambda: float(log_.buffered) if (log_ := self.eventlog) is not None else 0.0
        )

    def close(self, failed: bool = False) -> None:
        """Stop intake, flush the journal, snapshot, close sockets. `failed`: the loop
        raised mid-turn, so the turn's records are dropped, not committed, and no
        snapshot is taken (it would hold that turn's state): the journal ends where the
        last acknowledged turn did, as after a kill, and recovery starts from there."""
        self.ready = False
        t0 = time.perf_counter()
        if self.venue is not None:
            self.venue.stop()
        snapshot = -1
        if self.journal is not None:
            try:
                if failed:
                    self.journal.abandon()
                else:
                    self._snapshot()
                    snapshot = self._snapshot_ordinal
            finally:
                self.journal.close()
                self.journal = None
        if self.eventlog is not None:
            self.eventlog.close()
        if self.mdlog is not None:
            self.mdlog.close(self.state.md_seq)
        # Last before the sockets close: what came while the state was being saved too.
        refused = 0 if failed else self._refuse_queued()
        self._io = self._pub_io = None
        for sock in (self._router, self._pub):
            if sock is not None:
                # Not 0: the replies of applied, journaled requests would be dropped
                # unsent, and their clients told nothing of orders placed.
                sock.close(SHUTDOWN_LINGER_MS)
        self._ctx.term()
        if self._http is not None:  # last: probes read "not ready" until the end
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if snapshot >= 0:
            log.info(
                "stopped in %.3fs: journal flushed and fsynced, snapshot at record %d "
                "(last seq %d), event and market-data logs flushed",
                time.perf_counter() - t0,
                snapshot,
                self.state.seq,
            )
        if refused:
            log.info("refused %d requests that came after intake stopped (shutting_down)", refused)

    def _refuse_queued(self) -> int:
        """At a clean stop, once intake stopped: answer each request received but not
        handled with a Reject `shutting_down` (nothing journaled, nothing changed), so
        that its client knows at once instead of at its deadline. Until no request came
        for SHUTDOWN_QUIET_MS, at most SHUTDOWN_REFUSE_MS; one that comes later, or
        while the sockets close, gets no answer (its client's deadline tells it). Returns
        how many requests were refused."""
        router, io = self._router, self._io
        if router is None or io is None:
            return 0
        refused = 0
        end = time.monotonic() + SHUTDOWN_REFUSE_MS / 1000
        while (left := end - time.monotonic()) > 0:
            if not router.poll(math.ceil(min(SHUTDOWN_QUIET_MS, left * 1000))):
                break
            replies: list[tuple[bytes, bytes]] = []
            for identity, frame in self._take(self.config.max_batch):
                answer = _shutting_down(frame)
                if isinstance(answer, Replies):
                    refused += len(answer.replies)
                elif answer.reason == "shutting_down":  # (not an undecodable frame)
                    refused += 1
                replies.append((identity, _frame(answer)))
            io.send(replies)
        if refused:
            self.metrics.request_rejects["shutting_down"].inc(refused)
        return refused

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then shut down cleanly."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.open()
        _quiet_collector()
        try:
            self.loop()
        except BaseException:
            log.exception(
                "the loop failed: stopping without committing its last turn or a snapshot "
                "(a restart recovers the last acknowledged state)"
            )
            self.close(failed=True)
            raise
        log.info("stopping: intake stopped at seq %d", self.state.seq)
        self.close()

    def _stop(self, *_: object) -> None:
        self.stopping = True  # logged by `run` once the loop has seen it (not here: a
        # signal handler that logs can interrupt the loop's own logging)

    def _snapshot(self) -> None:
        """The event log first (so it holds everything the snapshot covers), then the
        snapshot, which also fsyncs the journal."""
        assert self.journal is not None
        if self.eventlog is not None:
            self.eventlog.sync()
        self._snapshot_ordinal = self.journal.snapshot(self.state.snapshot())
        self._snapshot_entries = self.journal.entries

    # -- the loop --------------------------------------------------------------------------

    def loop(self) -> None:
        router = self._router
        assert router is not None
        self.loop_beat_ns = perf_counter_ns()
        if self.venue is None and self.market is None:
            self._wait_on_router(router)
            return
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        max_batch = self.config.max_batch
        while not self.stopping:
            timeout = 100.0
            if self.market is not None:
                timeout = min(timeout, self.market.timeout_ms(time_ns()))
            slept = perf_counter_ns()
            ready = dict(poller.poll(math.ceil(timeout)))
            slept = perf_counter_ns() - slept
            if not ready:
                self._idle()
            if not ready and (self.market is None or self.market.timeout_ms(time_ns()) > 0):
                continue
            # A poll that slept was woken by a request that found the loop idle: take
            # it alone (no look for more: that costs ~1.4 us of its round trip); a poll
            # that did not sleep found a queue, which is drained into one batch.
            take = 1 if slept > _SLEPT_NS else max_batch
            batch = self._take(take) if router in ready else []
            self.process(batch, self._drain_venue() if self._wake_r in ready else [])

    def _wait_on_router(self, router: zmq.Socket[bytes]) -> None:
        """The loop when only order entry can wake it (no venue thread, no generated
        market): it blocks in the ROUTER's own receive, as a bare ZeroMQ server does,
        instead of a `zmq.Poller` over the ROUTER and the venue's pipe. That poll made
        four more system calls a request (its first pass, the socket's events, their
        process checks) and ~1.5 us of pyzmq's Python: ~3-5 us of a round trip here."""
        max_batch = self.config.max_batch
        router.setsockopt(zmq.RCVTIMEO, int(HEARTBEAT_SECONDS * 1000))  # idle work, stop
        try:
            while not self.stopping:
                slept = perf_counter_ns()
                try:
                    identity = _recv(router, 0)
                except zmq.Again:
                    self._idle()
                    continue
                slept = perf_counter_ns() - slept
                self.process(self._take(1 if slept > _SLEPT_NS else max_batch, identity))
        finally:
            router.setsockopt(zmq.RCVTIMEO, -1)

    def _idle(self) -> None:
        """Nothing arrived for a while: flush the logs' buffers; tell subscribers the
        last seq (so a lost last message shows) if the last heartbeat is old enough."""
        self.loop_beat_ns = perf_counter_ns()  # alive (/healthz)
        if self.eventlog is not None:
            self.eventlog.flush()  # idle: the buffered event records to the file
        if self.mdlog is not None:
            self.mdlog.flush()
        self._end_halts()
        now = time.monotonic()
        if self.state.seq and now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            assert self._pub_io is not None
            self._pub_io.send([(HEARTBEAT_TOPIC, wire.encode_heartbeat(self.state.seq))])
            self._last_heartbeat = now

    def _end_halts(self) -> None:
        """End the halts whose time is up while no command came, and publish their
        `SymbolResumed` now: a command's turn ends them otherwise (`EngineState.apply`),
        and on a quiet engine a subscriber waiting for the resume would wait for ever.
        Each end is a journaled `resume` control MARK (the event `RiskEngine.resume`
        gives for a halt whose time is up is the one `expire` gives), so recovery
        numbers it the same. Called when the loop is idle, or after a turn in which no
        command ran; never on the order path."""
        halts = self.state.risk.halts()
        if not halts:
            return
        now = time_ns()
        due = [s for s, until in halts.items() if until is not None and until <= now]
        if not due:
            return
        assert self.journal is not None and self._pub_io is not None
        events: list[Event] = []
        for symbol in due:
            mark = {
                "control": {"action": "resume", "account": None, "symbol": symbol},
                "ts": now,
            }
            self.journal.append_mark(mark)
            events += self._apply_mark(mark)
        self.journal.commit()  # journaled before it is published, as a turn's events
        if events:
            frame = wire.encode_events(events)
            if self.eventlog is not None:
                self.eventlog.append(events, frame)
            self._pub_io.send([(EVENTS_TOPIC, frame)])

    def _take(self, max_batch: int, identity: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """Up to `max_batch` [identity, frame] messages off the ROUTER, without waiting
        (`identity`: the first message's first frame, already received). A message of
        other than two frames is dropped (logged, counted as a bad frame)."""
        io = self._io
        assert io is not None
        dropped = io.dropped
        batch = io.take(max_batch, identity)
        if io.dropped != dropped:
            log.warning("dropped %d message(s) of more than two frames", io.dropped - dropped)
            self.metrics.bad_frames.inc(io.dropped - dropped)
        return batch

    # -- the venue's hand-off (its threads -> this loop) ------------------------------------

    def _venue_emit(self, event: VenueEvent) -> None:
        """Called on the venue's threads: queue the event and wake the loop."""
        self._inbox.put(event)
        # A full pipe already holds wake-ups: the loop will drain the whole queue.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"!")

    def _drain_venue(self) -> list[VenueEvent]:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        out: list[VenueEvent] = []
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def _venue_events(self, events: list[VenueEvent], touched: set[int]) -> list[Event]:
        """Journal and apply what the venue reported (statuses are not trading state).
        A submit the venue never got under policy `internal` is matched here
        (`EngineState.apply_venue`): its symbol's book is `touched`."""
        assert self.journal is not None
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, VenueStatus):
                if ev.degraded is not None and ev.degraded != self.venue_status.degraded:
                    self.metrics.venue_degraded[ev.degraded].inc()
                self.venue_status = ev
                if ev.connected and not self._resumed:
                    self._resumed = True
                    self._resume_routed()
                log.log(
                    logging.INFO if ev.connected else logging.WARNING,
                    "venue %s: %s",
                    "connected" if ev.connected else "unreachable",
                    ev.detail,
                )
                continue
            if isinstance(ev, VenueRejected):
                log.warning(
                    "venue refused %s of order %d: %s (%s)",
                    ev.request,
                    ev.order_id,
                    ev.reason,
                    ev.message,
                )
            fields = {
                "kind": _VENUE_KINDS[type(ev)],
                "venue": self.config.venue.kind,
                **dataclasses.asdict(ev),
            }
            mark = {"venue_event": fields, "ts": time_ns()}
            self.journal.append_mark(mark)
            routed = self.state.routed.get(ev.order_id)
            applied = self._apply_mark(mark)
            if isinstance(ev, VenueRejected) and ev.reason == FALLBACK and routed is not None:
                self._fell_back(routed, applied, touched)
            out.extend(applied)
            self._send_venue_cancels()
        return out

    def _fell_back(self, r: RoutedOrder, applied: list[Event], touched: set[int]) -> None:
        """Count an order handed to the venue that is matched here after all (its
        submit never left: policy `internal`; its book is `touched`), unless it ended
        rejected (a later order had overtaken it in the book, `EngineState._fall_back`)."""
        if any(type(e) is OrderRejected and e.id == r.id for e in applied):
            return
        self.metrics.venue_fallbacks["in_flight"].inc()
        touched.add(self.state.symbol_index[r.symbol])

    def _send_venue_cancels(self) -> None:
        """Ask the venue to cancel what the last venue event made the engine cancel (a
        leg whose release risk refused)."""
        cancels = self.state.venue_cancels
        if cancels and self.venue is not None:
            for order_id in cancels:
                self.venue.cancel(order_id)
            cancels.clear()

    def _hand_back_ids(self) -> set[int]:
        """The orders `_resume_routed` will hand back to the venue (a plain order's id,
        a group's parent's, an orphan's), named to it before it starts
        (`Venue.expect_hand_back`): it holds what its stream says of them until then,
        and nothing of other orders placed before the restart."""
        st = self.state
        ids = {r.id for r in st.routed.values() if r.parent_id is None}
        for g in st.routed_groups.values():
            if g.parent_id in st.routed or any(i in st.routed for i in g.legs):
                ids.add(g.parent_id)
        return ids | st.orphans.keys()

    def _resume_routed(self) -> None:
        """Hand the venue the orders routed before this process started (recovered from
        the journal): each open order, or a group whose parent or a leg is open, with
        the lots already booked and what they cost (`_handed_back`), so it reports
        what happened meanwhile, a missed fill at its own price."""
        st, venue = self.state, self.venue
        assert venue is not None
        groups = st.routed_groups
        for r in sorted(st.routed.values(), key=lambda r: r.id):
            if r.parent_id is not None or r.id in groups:
                continue
            venue.resume([_handed_back(r)])
        for g in sorted(groups.values(), key=lambda g: g.parent_id):
            legs = [st.routed[i] for i in g.legs if i in st.routed]
            parent = st.routed.get(g.parent_id)
            if parent is None and not legs:
                continue
            if parent is not None:
                head = _handed_back(parent)
            else:  # the parent is closed here: only its id and symbol are needed
                gone = RoutedOrder(
                    g.parent_id,
                    legs[0].account,
                    legs[0].symbol,
                    "buy",
                    "limit",
                    0,
                    None,
                    None,
                    "gtc",
                )
                head = HandBack(_venue_order(gone), None)
            venue.resume([head, *(_handed_back(leg) for leg in legs)])
        # legs canceled for the clients whose cancel may not have reached the venue
        # before a restart (the venue keeps a group's requests in order: after its resume)
        for r in sorted(st.routed.values(), key=lambda r: r.id):
            if r.canceling:
                venue.cancel(r.id)
        # orders rejected as maybe placed whose watch the old process did not end: their
        # late fills are still to come, and one still open at the venue is canceled; a
        # group's legs are orphans with their parent, which names them (`legs`)
        orphans = sorted(st.orphans.values(), key=lambda r: r.id)
        named: dict[int, list[int]] = {}
        for r in orphans:
            if r.parent_id is not None:
                named.setdefault(r.parent_id, []).append(r.id)
        venue.watch_orphans([_handed_back(r, legs=tuple(named.get(r.id, ()))) for r in orphans])

    def process(
        self, batch: Sequence[Sequence[bytes]], venue_events: Sequence[VenueEvent] = ()
    ) -> None:
        """Handle a batch of [identity, frame] messages and venue reports (journal,
        reply, publish). Stage times feed `tickplane_engine_stage_seconds`: `handle`
        (decode, risk, match, journal append), `journal` (the commit and its fsync),
        `ack` (sending the replies) and `publish`; `request_seconds` is, per request,
        from the batch's arrival to its reply leaving. The first frame's request, if it
        changes state, is timed stage by stage (`_stamps`,
        `tickplane_engine_request_stage_seconds`): one request a turn, not every one,
        as a timestamp costs ~0.1 us and a lone request is the one whose latency is the
        engine's own."""
        t0 = perf_counter_ns()
        journal = self.journal
        assert journal is not None and self._io is not None and self._pub_io is not None
        self._replay_left = REPLAY_TURN
        replies: list[tuple[bytes, bytes]] = []
        touched: set[int] = set()
        published: list[Event] = (
            self._venue_events(list(venue_events), touched) if venue_events else []
        )
        always = self.config.fsync == "always"
        market = self.market
        if market is not None:
            for req in market.due(time_ns()):
                reply, events = self.dispatch(req, touched)
                market.on_reply(req, reply)
                published += events
        sample = self._stamps = [perf_counter_ns()] if batch else None
        for frames in batch:
            if len(frames) != 2:
                log.warning("dropped a message of %d frames (expected 2)", len(frames))
                self.metrics.bad_frames.inc()
                continue
            identity, frame = frames
            answer, events = self.handle(frame, touched)  # a C call (cpdef)
            self._stamps = None  # the first frame alone is sampled
            if always and events:
                journal.commit()
            try:
                data = _frame(answer)
            except OverflowError:  # a number past 64 bits (risk keeps orders below that)
                if events:  # applied: the loop stops before committing it (run)
                    raise
                data = _frame(_unrepresentable(answer))
            replies.append((identity, data))
            if events:
                published += events
        t1 = perf_counter_ns()
        journal.commit()  # everything acked below is in the journal (fsynced per policy)
        t2 = perf_counter_ns()
        m = self.metrics
        self._io.send(replies)
        t3 = perf_counter_ns()
        if replies:  # they left together: each waited as long
            m.request_seconds.observe_many((t3 - t0) / 1e9, len(replies))
        traded = m.count(published)
        # The turn's [topic, frame] messages, sent together through libzmq's own calls
        # (`_pub_io`): pyzmq's `send` cost ~1.5k instructions a frame, six of them a
        # one-request turn
        out: list[tuple[bytes, bytes]] = []
        if published:  # one message per batch: per-message costs dominate otherwise
            frame = _frame(published)  # wire.encode_events
            out.append((EVENTS_TOPIC, frame))
            if self.eventlog is not None:
                self.eventlog.append(published, frame)
        now = time_ns()
        mdlog = self.mdlog
        # Every book that traded is touched (a command ran on it, `_run`, or a venue's
        # fallback was matched in it, `_fell_back`), so a turn that traded a symbol
        # publishes its top, with the turn's trades of it as the public tape.
        prints = tape(published) if traded and touched else None
        for sym in touched:
            for md in self.state.market_data(sym, now, prints):
                data = _frame(md)
                if mdlog is not None:
                    mdlog.append(md, data)  # before it is published: see engine/mdlog.py
                out.append((b"m." + md.symbol.encode(), data))
        if out:
            self._pub_io.send(out)
        t4 = self.loop_beat_ns = perf_counter_ns()  # alive (/healthz)
        m.stage_handle.observe((t1 - t0) / 1e9)
        m.stage_journal.observe((t2 - t1) / 1e9)
        m.stage_ack.observe((t3 - t2) / 1e9)
        m.stage_publish.observe((t4 - t3) / 1e9)
        m.batch_seconds.observe((t4 - t0) / 1e9)
        m.batch_size.observe(len(batch))
        if sample is not None and len(sample) == 5:  # taken, decoded, decided, journaled, matched
            s_decode, s_risk, s_journal, s_match, s_ack = m.request_stages
            s_decode.observe((sample[1] - sample[0]) / 1e9)
            s_risk.observe((sample[2] - sample[1]) / 1e9)
            s_journal.observe((sample[3] - sample[2] + t2 - t1) / 1e9)
            s_match.observe((sample[4] - sample[3]) / 1e9)
            s_ack.observe((t3 - t2) / 1e9)
        if not touched and self.state.risk.halts():
            # No command ran (queries only), so none ended a halt whose time is up; a
            # stream of them keeps the loop from ever going idle (`_idle` ends them).
            self._end_halts()
        every = self.config.snapshot_every
        if every and journal.entries - self._snapshot_entries >= every:
            self._snapshot()

    # -- requests --------------------------------------------------------------------------

    def handle(self, frame: bytes, touched: set[int]) -> tuple[wire.Reply | Replies, list[Event]]:
        """Decode and run one request, or a `Batch` of them; return the frame's reply (a
        `Replies` for a batch) and the events to publish."""
        try:
            req = _decode(frame)
        except wire.WireError as exc:
            self.metrics.bad_frames.inc()
            log.warning("rejected an undecodable frame: %s", exc)
            self.metrics.request_rejects["bad_frame"].inc()
            return Reject(_req_of(frame), "bad_frame", str(exc)), []
        if self._stamps is not None:
            self._stamps.append(perf_counter_ns())  # decoded
        # the order-entry requests straight to their handler; (reply, events) passed on
        # as it is (a new tuple at each level cost ~150 instructions)
        if type(req) is NewOrder:
            answer = self._new(req, touched)
        elif type(req) is CancelOrder or type(req) is ReplaceOrder:
            answer = self._change(req, touched)
        elif isinstance(req, Batch):  # (order entry has gone above: isinstance for mypy)
            return self._batch(req.requests, touched)
        else:
            answer = self.dispatch(req, touched)
        reply = answer[0]
        if type(reply) is Reject:
            # Counted here, once for every client request, whichever check refused it.
            self.metrics.request_rejects[reply.reason].inc()
        return answer

    def _batch(
        self, requests: list[wire.Request], touched: set[int]
    ) -> tuple[Replies, list[Event]]:
        """A `Batch`: each request as if it had come alone, in order; one reply each."""
        rejects = self.metrics.request_rejects
        if not 0 < len(requests) <= wire.MAX_BATCH:
            rejects["batch_too_large"].inc(len(requests))
            why = f"a batch holds 1 to {wire.MAX_BATCH} requests, this one {len(requests)}"
            return Replies([Reject(r.req, "batch_too_large", why) for r in requests]), []
        replies: list[wire.Reply] = []
        events: list[Event] = []
        dispatch = self.dispatch
        for req in requests:
            reply, evs = dispatch(req, touched)
            if type(reply) is Reject:
                rejects[reply.reason].inc()
            replies.append(reply)
            if evs:
                events += evs
        return Replies(replies), events

    def dispatch(self, req: wire.Request, touched: set[int]) -> tuple[wire.Reply, list[Event]]:
        """Run one decoded request (from a client, or the synthetic market)."""
        # the order-entry requests first, by exact type (cheaper than isinstance)
        if type(req) is NewOrder:
            return self._new(req, touched)
        if type(req) is CancelOrder or type(req) is ReplaceOrder:
            return self._change(req, touched)
        m = self.metrics
        if isinstance(req, wire.MassCancel):
            return self._mass_cancel(req, touched)
        if isinstance(req, wire.GetOrder):
            return self._get_order(req), []
        if isinstance(req, wire.Replay):
            return self._replay(req), []
        if isinstance(req, wire.ReplayMarketData):
            return self._replay_market_data(req), []
        if isinstance(req, wire.GetBook):
            return self._get_book(req), []
        if isinstance(req, wire.GetSymbols | wire.GetAccount | wire.ListOrders):
            return self._query(req), []
        if isinstance(req, wire.Control):
            return self._control(req, touched)
        m.requests["ping"].inc()
        return Ack(req.req, last_seq=self.state.seq), []

    def _run(self, cmd: Command, touched: set[int]) -> list[Event]:
        """Journal a command, then apply it (the one path that changes state); a new
        market order or stop gets its market collar first (`EngineState.collared`)."""
        assert self.journal is not None
        if cmd.order_type in COLLARED and cmd.op == NEW:
            cmd = self.state.collared(cmd)
        stamps = self._stamps
        if stamps is None:
            self.journal.append_command(pack_command(cmd))
            events = self.state.apply(cmd)
        else:  # the turn's sampled request: decided, journaled, matched
            self._stamps = None  # its first command only (a class's parent, a batch's first)
            stamps.append(perf_counter_ns())
            self.journal.append_command(pack_command(cmd))
            stamps.append(perf_counter_ns())
            events = self.state.apply(cmd)
            stamps.append(perf_counter_ns())
        touched.add(cmd.symbol)
        return events

    def _unknown_symbol(self, req: int, symbol: str | None) -> Reject:
        """The refusal of a request naming a symbol this engine does not trade."""
        names = ", ".join(self.state.symbols)
        return Reject(req, "unknown_symbol", f"{symbol!r} is not traded here (symbols: {names})")

    def _new(self, req: NewOrder, touched: set[int]) -> tuple[wire.Reply, list[Event]]:
        """A new order, counted by outcome: a refusal here (validation, unknown symbol,
        risk, venue) is `rejected`; what reaches the core is counted from its events."""
        answer = self._place(req, touched)
        if type(answer[0]) is Reject:
            self.metrics.orders["rejected"].inc()
        return answer

    def _place(self, req: NewOrder, touched: set[int]) -> tuple[wire.Reply, list[Event]]:
        self.metrics.requests_new.inc()
        # Its fields in one C call (`_fields`), then read as locals: a field read through
        # the struct's descriptor costs ~160 instructions here, 17 of them an order.
        (
            rid,
            account,
            symbol,
            side,
            order_type,
            qty,
            price,
            stop,
            tif,
            post_only,
            coid,
            order_class,
            take_profit,
            stop_loss,
            trail_price,
            trail_percent,
        ) = _fields(req)  # NewOrder's fields, in order (a new one fails this loudly)
        st = self.state
        sym = st.symbol_index.get(symbol)
        if sym is None:
            return self._unknown_symbol(rid, symbol), []
        if account not in _ACCOUNTS_OK:  # else known good: one set lookup
            bad = _bad_account(rid, account, st, True)
            if bad is not None:
                return bad, []
        fp = 0
        if coid is not None:
            if len(coid) > MAX_NAME * 2:
                return Reject(rid, "bad_client_order_id", f"at most {MAX_NAME * 2} characters"), []
            fp = fingerprint(req)
            known = st.known_client_order_id(account, coid)
            if known is not None:
                return self._duplicate(req, known[0], known[1] == fp), []
        plan: NewOrder | None = None
        if (
            order_class is not None
            or take_profit is not None
            or stop_loss is not None
            or trail_price is not None
            or trail_percent is not None
            or order_type == "trailing_stop"
        ):
            checked = self._check_class(req)
            if isinstance(checked, Reject):
                return checked, []
            if checked is not None:  # the core's part: the parent, or a stop for risk
                plan, req = req, checked
                side, order_type, qty = req.side, req.order_type, req.qty
                price, stop, tif, post_only = req.price, req.stop_price, req.tif, req.post_only
        journal = self.journal
        assert journal is not None
        acc = st.account_index.get(account)
        # More than one record (an ACCOUNT, a client order id's MARK, the class's): one
        # group, so a crash between them recovers as if the order never came. Not
        # closed on an exception: then none of the request commits (docs/journal.md).
        # A new account is interned for risk to read its name, but journaled only once
        # the order passes (below): a refused first order leaves no account behind.
        new_account = acc is None
        grouped = new_account or coid is not None or plan is not None
        if new_account:
            acc = st.add_account(account)
        if grouped:
            journal.begin_group()
        order_id = st.next_order_id()
        # tuple.__new__: a third of the NamedTuple's own constructor; fields in
        # COMMAND_DTYPE's order (Command.make names them)
        cmd = tuple.__new__(
            Command,
            (
                order_id,
                qty if 0 < qty <= MAX_FIELD else -1,
                price if price is not None and 0 < price <= MAX_FIELD else -1,
                stop if stop is not None and 0 < stop <= MAX_FIELD else -1,
                time_ns(),
                acc,
                sym,
                NEW,
                SIDES.get(side, INVALID),
                ORDER_TYPES.get(order_type, INVALID),
                TIFS.get(tif, INVALID),
                int(post_only) if isinstance(post_only, bool) else INVALID,
                0,
                0,
            ),
        )
        venue = self.venue
        routable = venue is not None and self._routable(cmd)
        connected = routable and venue is not None and venue.connected  # read once
        routed = routable and (connected or self.config.venue.unreachable == "reject")
        reply: wire.Reply
        events: list[Event]
        if routed and not connected:
            # before risk and the client order id's MARK: a refused order keeps neither
            reply = Reject(
                rid,
                "venue_unavailable",
                f"{self.config.venue.kind} is unreachable: {self.venue_status.detail}",
            )
            events = []
            if new_account:
                st.forget_account(account)
        elif (
            refused := st.check(cmd, _risk_legs(plan, cmd.qty) if plan is not None else ())
        ) is not None:
            self.metrics.risk_rejects[refused.reason].inc()
            reply = Reject(rid, refused.reason, refused.message)
            events = []
            if new_account:
                st.forget_account(account)
        else:
            if new_account:  # in the group, before the records that name its index
                journal.append(RecordType.ACCOUNT, account.encode())
            if coid is not None:
                mark = {
                    "order_id": order_id,
                    "client_order_id": coid,
                    "account": acc,
                    "fingerprint": fp,
                }
                journal.append_mark(mark)
                self._apply_mark(mark)
            if routed:
                reply, events = self._route(req, cmd, plan), []
            else:
                if routable:
                    self.metrics.venue_fallbacks["new"].inc()  # matched here (`falls_back`)
                if plan is not None:
                    reply, events = self._new_class(plan, cmd, touched)
                else:
                    events = self._run(cmd, touched)
                    reply = Ack(rid, order_id, events, last_seq=st.seq)
        if grouped:
            journal.end_group()
        return reply, events

    def _check_class(self, req: NewOrder) -> Reject | NewOrder | None:
        """Validate a trailing stop or an order class (docs/order-classes.md): a Reject,
        or the plain order the core gets (a bracket's parent; for a trailing stop, a
        stop that only risk sees), or None for an explicit plain "simple" order."""
        cls = req.order_class or "simple"

        def no(reason: str, message: str) -> Reject:
            return Reject(req.req, reason, message)

        if cls not in CLASSES:
            return no("bad_order_class", f"order_class {cls!r}: one of {', '.join(CLASSES)}")
        legs = req.take_profit is not None or req.stop_loss is not None
        trailing = req.order_type == "trailing_stop"
        plain = not trailing and req.trail_price is None and req.trail_percent is None
        if plain and cls == "simple":
            if legs:
                return no(
                    "bad_order_class",
                    "take_profit and stop_loss need order_class bracket, oto or oco",
                )
            return None
        if req.side not in ("buy", "sell"):
            return no("bad_side", "side: buy or sell")
        if _number(req.qty) < 0:
            return no("bad_qty", f"qty: an integer 1..{MAX_FIELD}")
        if req.tif not in ("gtc", "day"):
            return no("bad_tif", "order classes and trailing stops take tif gtc or day")
        if trailing:
            if cls != "simple" or legs:
                return no("bad_order_class", "a trailing stop is a simple order (no legs)")
            if (req.trail_price is None) == (req.trail_percent is None):
                return no("bad_trail", "a trailing stop takes trail_price or trail_percent")
            if req.trail_price is not None and _number(req.trail_price) < 0:
                return no("bad_trail", f"trail_price: ticks, 1..{MAX_FIELD}")
            pct = req.trail_percent
            if pct is not None and not (isinstance(pct, float | int) and 0 < pct < 100):
                return no("bad_trail", "trail_percent: a percent, 0 < trail_percent < 100")
            if req.price is not None or req.stop_price is not None:
                return no("bad_trail", "a trailing stop takes no price or stop_price")
            return msgspec.structs.replace(req, order_type="stop", stop_price=1, price=None)
        if req.trail_price is not None or req.trail_percent is not None:
            return no("bad_trail", "trail_price and trail_percent are for trailing_stop orders")
        tp, sl = req.take_profit, req.stop_loss
        if cls == "bracket" and (tp is None or sl is None):
            return no("bad_legs", "a bracket takes take_profit and stop_loss")
        if cls == "oto" and (tp is None) == (sl is None):
            return no("bad_legs", "an oto takes take_profit or stop_loss (one of them)")
        if cls == "oco" and (tp is None or sl is None):
            return no("bad_legs", "an oco takes take_profit and stop_loss")
        for value in (
            tp.limit_price if tp else 1,
            sl.stop_price if sl else 1,
            sl.limit_price if sl and sl.limit_price is not None else 1,
        ):
            if _number(value) < 0:
                return no("bad_legs", f"leg prices: ticks, 1..{MAX_FIELD}")
        if tp is not None and sl is not None:
            why = exits_refused(exit_side(cls, req.side), tp.limit_price, sl.stop_price)
            if why is not None:
                return no("bad_legs", why)
        if cls == "oco":
            assert tp is not None
            if req.order_type != "limit":
                return no("bad_order_class", "an oco is a limit order (its take-profit)")
            if req.price is not None and req.price != tp.limit_price:
                return no("bad_legs", "an oco's price is its take_profit limit_price")
            return msgspec.structs.replace(req, price=tp.limit_price)
        return req

    def _new_class(
        self, req: NewOrder, cmd: Command, touched: set[int]
    ) -> tuple[wire.Reply, list[Event]]:
        """Journal an order class's MARK, then the parent's command (a trailing stop has
        none: it is held until it triggers)."""
        assert self.journal is not None
        st = self.state
        if req.order_type == "trailing_stop":
            order = trailing_stop(
                cmd.id,
                req.account,
                req.symbol,
                req.side,
                req.qty,
                req.tif,
                req.trail_price,
                None if req.trail_percent is None else float(req.trail_percent),
            )
            order.market_collar_bps = st.risk.market_collar(req.account, req.symbol)
            mark = {
                "contingent": {"kind": "trailing", "order": msgspec.to_builtins(order)},
                "ts": cmd.ts,
            }
            self.journal.append_mark(mark)
            events = self._apply_mark(mark)
            return Ack(req.req, cmd.id, events, last_seq=st.seq), events
        tp, sl = req.take_profit, req.stop_loss
        legs = legs_for(
            req.order_class or "simple",
            cmd.id,
            req.account,
            req.symbol,
            req.side,
            req.qty,
            req.tif,
            tp.limit_price if tp is not None else None,
            (sl.stop_price, sl.limit_price) if sl is not None else None,
        )
        limit = st.risk.position_limit(req.account, req.symbol)
        collar = st.risk.market_collar(req.account, req.symbol)
        for leg in legs:
            leg.max_position = limit
            if leg.order_type == "stop":  # triggered, it is a market order
                leg.market_collar_bps = collar
        mark = {
            "contingent": {
                "kind": "legs",
                "parent": cmd.id,
                "order_class": req.order_class,
                "legs": msgspec.to_builtins(legs),
            },
            "ts": cmd.ts,
        }
        self.journal.append_mark(mark)
        self._apply_mark(mark)
        events = self._run(cmd, touched)
        return Ack(req.req, cmd.id, events, last_seq=st.seq), events

    def _change_held(
        self,
        req: CancelOrder | ReplaceOrder,
        touched: set[int],
        kill: bool = False,
    ) -> tuple[wire.Reply, list[Event]]:
        """Cancel or replace a held order (a leg, a trailing stop): a journaled MARK.
        `kill`: a kill switch's cancel (its reason `kill_switch`, in the MARK)."""
        assert self.journal is not None
        st = self.state
        h = st.contingent.orders[req.order_id]
        fields: dict[str, Any] = {"kind": "cancel", "order_id": h.id}
        if kill:
            fields["reason"] = "kill_switch"
        if isinstance(req, ReplaceOrder):
            if h.parent_id is None:
                return self._replace_trailing(req, touched)
            why = _leg_replace_refused(h.leg, h.order_type, h.triggered, req)
            if why is not None:
                return Reject(req.req, "bad_replace", why), []
            broken = self._exits_reject(req)
            if broken is not None:
                return broken, []
            fields = {
                "kind": "replace",
                "order_id": h.id,
                "price": req.price,
                "stop_price": req.stop_price,
            }
        ts = time_ns()
        if isinstance(req, ReplaceOrder):
            refused = self._check_change(h, req, ts)
            if refused is not None:
                return refused, []
        mark = {"contingent": fields, "ts": ts}
        self.journal.append_mark(mark)
        events = self._apply_mark(mark)
        touched.add(st.symbol_index[h.symbol])
        return Ack(req.req, req.order_id, events, last_seq=st.seq), events

    def _replace_trailing(
        self, req: ReplaceOrder, touched: set[int]
    ) -> tuple[wire.Reply, list[Event]]:
        """A trailing stop's quantity and/or trail (of the kind it has), until it
        triggers; a MARK, as every change of a held order."""
        assert self.journal is not None
        st = self.state
        h = st.contingent.orders[req.order_id]

        why = _trailing_replace_refused(req, h.trail_price, h.trail_percent, h.triggered)
        if why is not None:
            return Reject(req.req, "bad_replace", why), []
        ts = time_ns()
        refused = self._check_change(h, req, ts)
        if refused is not None:
            return refused, []
        pct = req.trail_percent
        mark = {
            "contingent": {
                "kind": "replace",
                "order_id": h.id,
                "qty": req.qty,
                "trail_price": req.trail_price,
                "trail_percent": None if pct is None else float(pct),
            },
            "ts": ts,
        }
        self.journal.append_mark(mark)
        events = self._apply_mark(mark)
        touched.add(st.symbol_index[h.symbol])
        return Ack(req.req, req.order_id, events, last_seq=st.seq), events

    def _exits_reject(self, req: ReplaceOrder) -> Reject | None:
        """A replace that would put its bracket's or OCO's take-profit on the wrong
        side of its stop-loss's stop is refused with the submission's reason, before
        risk (`EngineState.replace_exits_refused`, on either venue)."""
        why = self.state.replace_exits_refused(req.order_id, req.price, req.stop_price)
        return None if why is None else Reject(req.req, "bad_legs", why)

    def _check_change(
        self, o: HeldOrder | RoutedOrder, req: ReplaceOrder, ts: int | None = None
    ) -> Reject | None:
        """Pre-trade risk for a replace of a held or a routed order (`check_change`),
        counted like the core's orders' risk rejects. A routed order's replace that
        passes is journaled (`routed_replace`) when checks spend order-rate tokens, so
        that recovery spends the same one (nothing else is journaled before the venue
        answers). `ts`: the held order's MARK's, whose recovery re-runs the check."""
        st = self.state
        qty = None if req.qty is None else _number(req.qty)
        if ts is None:
            ts = time_ns()
        refused = st.check_change(o, qty, req.price, req.stop_price, ts)
        if refused is not None:
            self.metrics.risk_rejects[refused.reason].inc()
            return Reject(req.req, refused.reason, refused.message)
        if isinstance(o, RoutedOrder) and st.checks_spend:
            assert self.journal is not None
            fields = {
                "order_id": o.id,
                "qty": qty,
                "price": req.price,
                "stop_price": req.stop_price,
            }
            self.journal.append_mark({"routed_replace": fields, "ts": ts})
        return None

    def _duplicate(self, req: NewOrder, order_id: int, same: bool) -> wire.Reply:
        """The reply to a NewOrder whose client order id the account already used:
        the first order again when the fields match, else a reject. Nothing runs."""
        if not same:
            return Reject(
                req.req,
                "client_order_id_reused",
                f"client_order_id {req.client_order_id!r} already names order {order_id}, "
                "which has other fields; use a new client_order_id for a new order",
            )
        self.metrics.requests["duplicate"].inc()
        view = self.state.order_view(order_id, req.account)
        return Ack(req.req, order_id, order=view, last_seq=self.state.seq, duplicate=True)

    def _routable(self, cmd: Command) -> bool:
        """Only a command the core would accept goes to the venue (the core's own
        validation gives the contract's reasons for the rest)."""
        return (
            cmd.side <= 1
            and cmd.order_type <= 3
            and cmd.qty > 0
            and cmd.tif <= 3
            and cmd.post_only == 0
            and (cmd.order_type in (1, 2) or cmd.price > 0)
            and (cmd.order_type < 2 or cmd.stop_price > 0)
        )

    def _route(self, req: NewOrder, cmd: Command, plan: NewOrder | None = None) -> wire.Reply:
        """Hand a new order to the venue: journal it, then send it; its outcome comes
        back as venue events (the Ack carries no events: the order is pending). `plan`:
        the trailing stop or the bracket, OTO or OCO `cmd` is the core's part of; its
        legs are journaled with it and it goes as one request (docs/venues.md). The
        venue is connected (`_new` refuses an order for an unreachable one)."""
        assert self.journal is not None and self.venue is not None
        priced = cmd.order_type in (0, 3)
        order = RoutedOrder(
            cmd.id,
            req.account,
            req.symbol,
            SIDE_NAMES[cmd.side],
            TYPE_NAMES[cmd.order_type],
            cmd.qty,
            cmd.price if priced else None,
            cmd.stop_price if cmd.order_type >= 2 else None,
            TIF_NAMES[cmd.tif],
            notional=0,
        )
        legs: list[RoutedOrder] = []
        extra: dict[str, Any] = {}
        if plan is not None:
            limit = self.state.risk.position_limit(req.account, req.symbol)
            order, legs, extra = _routed_class(order, plan, limit)
        mark: dict[str, Any] = {"route": msgspec.to_builtins(order), "ts": cmd.ts}
        if legs:
            mark["legs"] = msgspec.to_builtins(legs)
        self.journal.append_mark(mark)
        self.state.route(order, legs)
        self.venue.submit(_venue_order(order, **extra))
        self.metrics.requests["routed"].inc()
        return Ack(req.req, order.id, last_seq=self.state.seq)

    def _owned(self, account: str, order_id: int) -> tuple[int, int] | None:
        """(account, symbol) of the live order if it belongs to `account` (others'
        orders do not exist)."""
        acc = self.state.account_index.get(account)  # account_id, as a C dict lookup
        o = self.state.core.owner(order_id) if acc is not None and order_id > 0 else None
        if o is not None and order_id in self.state.contingent.aliases:
            return None  # a held order's piece: reached through the held order's id
        return o if o is not None and o[0] == acc else None

    def _change(
        self, req: CancelOrder | ReplaceOrder, touched: set[int]
    ) -> tuple[wire.Reply, list[Event]]:
        cancel = type(req) is CancelOrder
        # the three fields every change reads, as locals (`_place` says why)
        f = _fields(req)
        rid, account, order_id = f[0], f[1], f[2]
        if cancel:
            self.metrics.requests_cancel.inc()
        else:
            self.metrics.requests_replace.inc()
        if account not in _ACCOUNTS_OK:  # else known good: one set lookup
            bad = _bad_account(rid, account, self.state, not cancel)
            if bad is not None:
                return bad, []
        if type(req) is ReplaceOrder and _replaces_nothing(req):
            return Reject(rid, "bad_replace", NOTHING_TO_REPLACE), []  # on any venue
        routed = self.state.routed.get(order_id)
        if routed is not None and routed.account == account and self.venue is not None:
            if cancel:
                self.venue.cancel(order_id)
            else:
                assert isinstance(req, ReplaceOrder)
                why = _routed_replace_refused(routed, req)
                if why is not None:
                    return Reject(rid, "bad_replace", why), []
                refusal = self._exits_reject(req)
                if refusal is None:
                    refusal = self._check_change(routed, req)
                if refusal is not None:
                    return refusal, []
                pct = None if req.trail_percent is None else float(req.trail_percent)
                self.venue.replace(
                    order_id,
                    req.qty,
                    req.price,
                    req.stop_price,
                    trail_price=req.trail_price,
                    trail_percent=pct,
                )
            return Ack(rid, order_id, last_seq=self.state.seq), []
        held = self.state.contingent
        if held.busy:
            h = held.orders.get(order_id)
            if h is not None and h.account == account:
                return self._change_held(req, touched)
        o = self._owned(account, order_id)
        if o is None:
            return Reject(rid, "unknown_order", f"no open order {order_id}"), []
        if not cancel:
            assert isinstance(req, ReplaceOrder)
            if req.stop_price is not None:
                return Reject(
                    rid, "bad_replace", "stop_price is replaced on held stop-loss legs only"
                ), []
            g = held.groups.get(order_id) if held.busy else None
            if g is not None and g.order_class == "oco":  # the limit is its take-profit
                if req.qty is not None:
                    return Reject(rid, "bad_replace", _OCO_QTY), []
                if _number(req.price) > 0:  # else the core refuses the price itself
                    broken = self._exits_reject(req)
                    if broken is not None:
                        return broken, []
            cmd = Command.make(
                Op.REPLACE,
                order_id,
                o[0],
                o[1],
                time_ns(),
                qty=KEEP if req.qty is None else _number(req.qty),
                price=KEEP if req.price is None else _number(req.price),
            )
            # An untriggered stop is the core's to refuse (`unknown_order`: it replaces
            # resting orders only): risk first could refuse it for another reason, or
            # spend an order-rate token on it.
            if not self.state.core.is_held(order_id):
                refused = self.state.check(cmd)
                if refused is not None:
                    self.metrics.risk_rejects[refused.reason].inc()
                    return Reject(rid, refused.reason, refused.message), []
        else:
            cmd = tuple.__new__(
                Command,
                (
                    order_id,
                    0,
                    0,
                    0,
                    time_ns(),
                    o[0],
                    o[1],
                    CANCEL,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ),
            )
        events = self._run(cmd, touched)
        return Ack(rid, order_id, events, last_seq=self.state.seq), events

    def _mass_cancel(
        self, req: wire.MassCancel, touched: set[int], kill: bool = False
    ) -> tuple[wire.Reply, list[Event]]:
        """Cancel the account's and/or symbol's orders (in the book, held, routed).
        `kill`: a kill switch's, its cancels' reason `kill_switch` (else `user`)."""
        self.metrics.requests["mass_cancel"].inc()
        st = self.state
        if req.account is not None and (bad := _bad_account(req.req, req.account, st)) is not None:
            return bad, []
        acc = st.account_id(req.account) if req.account is not None else None
        sym = st.symbol_index.get(req.symbol) if req.symbol is not None else None
        if req.symbol is not None and sym is None:
            return self._unknown_symbol(req.req, req.symbol), []
        if req.account is not None and acc is None:
            return Ack(req.req, last_seq=st.seq), []  # never seen: it has no orders
        assert self.journal is not None
        self.journal.begin_group()  # its cancels and held orders' MARKs: all or none
        state = st.core.dump()
        ids: list[int] = []
        for part in (state["resting"], state["held"]):
            for oid, o_sym, o_acc in zip(
                part["id"].tolist(),
                part["symbol"].tolist(),
                part["account"].tolist(),
                strict=True,
            ):
                if (acc is None or o_acc == acc) and (sym is None or o_sym == sym):
                    ids.append(oid)
        events: list[Event] = []
        pieces = st.contingent.aliases
        for oid in sorted(ids):
            o = st.core.order(oid)
            if o is None or oid in pieces:  # gone with its parent / canceled with its leg
                continue
            cmd = Command.make(
                Op.CANCEL,
                oid,
                int(o["account"]),
                int(o["symbol"]),
                time_ns(),
                reason=_KILL_SWITCH if kill else 0,
            )
            events.extend(self._run(cmd, touched))
        if st.contingent.busy:
            names = st.accounts[1:] if req.account is None else [req.account]
            for name in names:
                for hid in st.contingent.open_ids(name, req.symbol):
                    cancel = CancelOrder(req.req, name, hid)
                    events.extend(self._change_held(cancel, touched, kill)[1])
        self.journal.end_group()
        if st.routed and self.venue is not None:
            self._cancel_routed(req.account, req.symbol)
        return Ack(req.req, None, events, last_seq=st.seq), events

    def _cancel_routed(self, account: str | None, symbol: str | None) -> None:
        """Ask the venue to cancel the routed orders a mass cancel (or a kill) covers;
        their cancels come back as venue events. A leg still held goes with its parent
        (Alpaca cancels it); one working on its own (its parent filled or closed) is
        canceled itself."""
        st, venue = self.state, self.venue
        assert venue is not None
        for r in sorted(st.routed.values(), key=lambda r: r.id):
            if (
                (account is not None and r.account != account)
                or (symbol is not None and r.symbol != symbol)
                or r.canceling  # its cancel is on its way
            ):
                continue
            if r.parent_id is not None:
                g = st.routed_groups.get(r.parent_id)
                parent = st.routed.get(r.parent_id)
                if (
                    g is not None
                    and parent is not None
                    and (g.exit_open == 0 or g.order_class == "oco")
                ):
                    continue  # canceled with its parent (held, or an OCO's stop)
            venue.cancel(r.id)

    def _get_order(self, req: wire.GetOrder) -> wire.Reply:
        self.metrics.requests["get_order"].inc()
        if (bad := _bad_account(req.req, req.account, self.state)) is not None:
            return bad
        if req.client_order_id is not None:  # the idempotency table knows every one
            known = self.state.known_client_order_id(req.account, req.client_order_id)
            if known is None:
                return Reject(
                    req.req, "unknown_order", f"no order {req.client_order_id!r} of this account"
                )
            view = self.state.order_view(known[0], req.account)
            return Ack(req.req, known[0], order=view, last_seq=self.state.seq)
        view = self.state.order_view(req.order_id, req.account)
        if view is None:
            last = self.state.next_order_id() - 1
            why = self.state.finished.unknown_message(req.order_id, last)
            return Reject(req.req, "unknown_order", why)
        return Ack(req.req, req.order_id, order=view, last_seq=self.state.seq)

    def _control(self, req: wire.Control, touched: set[int]) -> tuple[wire.Reply, list[Event]]:
        self.metrics.requests["control"].inc()
        st = self.state
        if req.action not in ("kill", "revive", "halt", "resume"):
            return Reject(
                req.req, "bad_action", f"unknown action {req.action!r} (kill, revive, halt, resume)"
            ), []
        if req.action in ("halt", "resume") and req.symbol not in st.symbol_index:
            return self._unknown_symbol(req.req, req.symbol), []
        if req.account is not None and (bad := _bad_account(req.req, req.account, st)) is not None:
            return bad, []
        if req.duration_ns is not None and not 0 < req.duration_ns <= MAX_HALT_NS:
            return Reject(
                req.req,
                "bad_duration",
                f"duration_ns must be 1 to {MAX_HALT_NS} (a year; None: until resumed)",
            ), []
        assert self.journal is not None
        self.journal.begin_group()  # a kill's MARK and its cancels stand or fall together
        mark = {
            "control": {
                "action": req.action,
                "account": req.account,
                "symbol": req.symbol,
                "duration_ns": req.duration_ns,
            },
            "ts": time_ns(),
        }
        self.journal.append_mark(mark)
        events = self._apply_mark(mark)
        if req.action == "kill":  # a kill also cancels what it covers
            cancel = wire.MassCancel(req.req, req.account, None)
            events += self._mass_cancel(cancel, touched, kill=True)[1]
        self.journal.end_group()
        return Ack(req.req, events=events, last_seq=st.seq), events

    def _get_book(self, req: wire.GetBook) -> wire.Reply:
        self.metrics.requests["get_book"].inc()
        sym = self.state.symbol_index.get(req.symbol)
        if sym is None:
            return self._unknown_symbol(req.req, req.symbol)
        depth = max(1, min(req.depth, 10_000))
        book = self.state.book(sym, depth, time_ns())
        return Ack(req.req, book=book, last_seq=self.state.seq)

    def _query(self, req: wire.GetSymbols | wire.GetAccount | wire.ListOrders) -> wire.Reply:
        """Symbols, an account, its open orders: from the live state (no journal)."""
        st = self.state
        if isinstance(req, wire.GetSymbols):
            self.metrics.requests["get_symbols"].inc()
            return Ack(req.req, last_seq=st.seq, symbols=st.symbol_infos(time_ns()))
        kind = "get_account" if isinstance(req, wire.GetAccount) else "list_orders"
        self.metrics.requests[kind].inc()
        if (bad := _bad_account(req.req, req.account, st)) is not None:
            return bad
        if isinstance(req, wire.GetAccount):
            return Ack(req.req, last_seq=st.seq, account=st.account_view(req.account))
        if req.symbol is not None and req.symbol not in st.symbol_index:
            return self._unknown_symbol(req.req, req.symbol)
        return Ack(req.req, last_seq=st.seq, orders=st.open_orders(req.account, req.symbol))

    def _replay(self, req: wire.Replay) -> wire.Reply:
        self.metrics.requests["replay"].inc()
        if req.from_seq < 1 or req.to_seq < req.from_seq:
            return Reject(req.req, "bad_range", f"{req.from_seq}..{req.to_seq}")
        # A page of at most REPLAY_PAGE events and what is left of the turn's budget
        # (at least one: the client asks on from the last event it got)
        limit = max(1, min(REPLAY_PAGE, self._replay_left))
        events = self.state.replay(req.from_seq, req.to_seq, limit)
        log_ = self.eventlog
        if events is None and log_ is not None:
            events = log_.read(req.from_seq, req.to_seq, limit)
        if events is None:
            first = self.state.recent.first
            if log_ is not None:
                first = min(first, log_.first_seq)
            return Reject(
                req.req,
                "replay_unavailable",
                f"events before {first} are no longer kept (the event log holds the latest "
                f"event_log_bytes, {self.config.event_log_bytes} bytes, since it started)",
            )
        self._replay_left -= len(events)
        return Ack(req.req, events=events, last_seq=self.state.seq)

    def _replay_market_data(self, req: wire.ReplayMarketData) -> wire.Reply:
        """A symbol's tops (and, asked, their deltas) from the market-data log;
        `Ack.md_seq` is the last number the answer covers (wire.ReplayMarketData says how
        a consumer reads it)."""
        self.metrics.requests["replay_md"].inc()
        if req.from_md_seq < 1 or req.to_md_seq < req.from_md_seq:
            return Reject(req.req, "bad_range", f"{req.from_md_seq}..{req.to_md_seq}")
        if req.symbol not in self.state.symbol_index:
            return self._unknown_symbol(req.req, req.symbol)
        if self.mdlog is None:
            return Reject(req.req, "replay_unavailable", "this engine keeps no market-data log")
        current = self.state.md_seq.get(req.symbol, 0)
        upto = min(req.to_md_seq, current)
        frames = self.mdlog.frames(req.symbol, req.from_md_seq, upto, MD_REPLAY_PAGE)
        if len(frames) == MD_REPLAY_PAGE:  # a full page: the rest is for the next request
            last = wire.decode_event(frames[-1])
            assert isinstance(last, TopOfBook)
            upto = last.md_seq
        # The logged frames go out as they are (msgpack after the version byte): no
        # decoding and encoding again of every top on the loop (5.8 us a top, measured).
        tops: Any = [msgspec.Raw(f[1:]) for f in frames]
        deltas: Any = None
        if req.deltas:
            # The deltas of the page's tops (a top's delta is the log record after it)
            found = self.mdlog.frames(
                req.symbol, req.from_md_seq, upto, MD_REPLAY_PAGE, deltas=True
            )
            deltas = [msgspec.Raw(f[1:]) for f in found]
        return Ack(req.req, last_seq=self.state.seq, tops=tops, md_seq=upto, deltas=deltas)


_VENUE_KINDS: dict[type, str] = {
    VenueAccepted: "accepted",
    VenueFilled: "filled",
    VenueCanceled: "canceled",
    VenueRejected: "rejected",
    VenueReplaced: "replaced",
    VenueTrailed: "trailed",
}


def _alpaca_venue(config: EngineConfig) -> Venue:
    """The Alpaca adapter, credentials from the Secret mount or the environment."""
    from tickplane.engine.venues.alpaca import AlpacaVenue

    v = config.venue
    symbols = {s.name: SymbolSpec(s.tick_size) for s in config.symbols}
    kwargs: dict[str, Any] = dict(
        symbols=symbols,
        paper=v.paper,
        url_override=v.url_override,
        stream_url_override=v.stream_url_override,
        policy=v.unreachable,
        trail_poll_seconds=v.trail_poll_seconds,
        rate_limit_min_backoff=v.rate_limit_min_backoff,
        rate_limit_max_backoff=v.rate_limit_max_backoff,
        early_updates_max=v.early_updates_max,
    )
    if v.secret_dir:
        return AlpacaVenue.from_secret_dir(v.secret_dir, **kwargs)
    return AlpacaVenue.from_env(**kwargs)


def _trailing_replace_refused(
    req: ReplaceOrder, trail_price: int | None, trail_percent: float | None, triggered: bool
) -> str | None:
    """Why a replace of a trailing stop (placed with `trail_price` or `trail_percent`)
    is refused, on every venue (None: it is not): until it triggers, it takes a new
    quantity and/or a new trail of the kind it was placed with, nothing else."""
    if triggered:
        return "the trailing stop triggered: its order is working"
    if req.price is not None or req.stop_price is not None:
        return "a trailing stop has no price or stop_price: replace its trail"
    if req.qty is None and req.trail_price is None and req.trail_percent is None:
        return "give qty, trail_price or trail_percent"
    if req.qty is not None and _number(req.qty) < 0:
        return f"qty: an integer 1..{MAX_FIELD}"
    if req.trail_price is not None and (trail_price is None or _number(req.trail_price) < 0):
        return "trail_price: ticks, for a trailing stop placed with trail_price"
    pct = req.trail_percent
    if pct is not None and (trail_percent is None or not 0 < pct < 100):
        return "trail_percent: 0 < p < 100, for a trailing stop placed with it"
    return None


def _replaces_nothing(req: ReplaceOrder) -> bool:
    return (
        req.qty is None
        and req.price is None
        and req.stop_price is None
        and req.trail_price is None
        and req.trail_percent is None
    )


_KILL_SWITCH = int(Reason.KILL_SWITCH)  # a kill switch's cancels say so (not `user`)

# An OCO is one quantity in two exits (its limit, its stop-loss): there is no leg to
# resize on its own, at any venue.
_OCO_QTY = "an oco's quantity is not replaced: cancel it"


def _routed_replace_refused(r: RoutedOrder, req: ReplaceOrder) -> str | None:
    """Why a replace of a routed order cannot go to the venue (None: it can), with the
    internal venue's rules: a leg takes new prices (its quantity follows its parent); a
    trailing stop its quantity and/or trail until it triggers (Alpaca triggers it
    without a word: its first fill says it did)."""
    if r.order_type == "trailing_stop":
        return _trailing_replace_refused(req, r.trail_price, r.trail_percent, r.filled > 0)
    if r.parent_id is not None:
        # the venue triggers a stop-loss without a word: its first fill says it did
        return _leg_replace_refused(r.leg, r.order_type, r.leg == STOP_LOSS and r.filled > 0, req)
    if r.order_class == "oco" and req.qty is not None:
        return _OCO_QTY
    if req.trail_price is not None or req.trail_percent is not None:
        return "trail_price and trail_percent are a trailing stop's"
    if req.stop_price is not None:
        return "stop_price is replaced on stop-loss legs only"
    return None


def _leg_replace_refused(
    leg: str | None, order_type: str, triggered: bool, req: ReplaceOrder
) -> str | None:
    """Why a replace of a bracket's, OTO's or OCO's leg (role `leg`) is refused, on
    every venue (None: it is not): it takes new prices (a take-profit `price`, a
    stop-loss `stop_price`, and `price` if it is a stop-limit) until it triggers,
    never a quantity, which follows its parent's fills."""
    if req.trail_price is not None or req.trail_percent is not None:
        return "trail_price and trail_percent are a trailing stop's"
    if req.qty is not None:
        return "a leg's quantity follows its parent's fills"
    if triggered:
        return "the stop-loss triggered: its order is working"
    if req.price is None and req.stop_price is None:
        return "give price and/or stop_price"
    if req.stop_price is not None and leg != STOP_LOSS:
        return "a take-profit leg has no stop_price"
    if req.price is not None and order_type == "stop":
        return "a stop-loss without limit_price has no price"
    for value in (req.price, req.stop_price):
        if value is not None and _number(value) < 0:
            return f"prices: ticks, 1..{MAX_FIELD}"
    return None


def _venue_order(r: RoutedOrder, **extra: Any) -> VenueOrder:
    """A routed order as the venue knows it (to submit, or for `Venue.resume`);
    `extra`: the class fields of a new one (`_routed_class`)."""
    fields: dict[str, Any] = {
        "order_class": r.order_class or "simple",
        "trail_price": r.trail_price,
        "trail_percent": r.trail_percent,
        **extra,
    }
    return VenueOrder(
        r.id,
        "",
        r.symbol,
        r.side,  # type: ignore[arg-type]
        r.order_type,  # type: ignore[arg-type]
        r.qty,
        r.price,
        r.stop_price,
        r.tif,  # type: ignore[arg-type]
        **fields,
    )


def _handed_back(r: RoutedOrder, **extra: Any) -> HandBack:
    """A routed order handed back to the venue after a restart, with the lots booked of
    it and what they cost; `extra`: `_venue_order`'s."""
    return HandBack(_venue_order(r, **extra), r.filled, r.notional)


def _routed_class(
    order: RoutedOrder, plan: NewOrder, max_position: int | None
) -> tuple[RoutedOrder, list[RoutedOrder], dict[str, Any]]:
    """A trailing stop's or an order class's routed parent, its legs (ids after it, as
    on the internal venue, with the `max_position` their release is checked against)
    and the VenueOrder fields that carry the class."""
    if plan.order_type == "trailing_stop":
        pct = None if plan.trail_percent is None else float(plan.trail_percent)
        order = msgspec.structs.replace(
            order,
            order_type="trailing_stop",
            price=None,
            stop_price=None,
            order_class="simple",
            trail_price=plan.trail_price,
            trail_percent=pct,
        )
        return order, [], {"trail_price": plan.trail_price, "trail_percent": pct}
    cls = plan.order_class or "simple"
    tp, sl = plan.take_profit, plan.stop_loss
    held = legs_for(
        cls,
        order.id,
        order.account,
        order.symbol,
        order.side,
        order.qty,
        order.tif,
        tp.limit_price if tp is not None else None,
        (sl.stop_price, sl.limit_price) if sl is not None else None,
    )
    legs = [
        RoutedOrder(
            h.id, h.account, h.symbol, h.side, h.order_type, h.qty, h.price, h.stop_price,
            h.tif, order_class=cls, parent_id=h.parent_id, leg=h.leg, max_position=max_position,
            notional=0,
        )
        for h in held
    ]  # fmt: skip
    extra: dict[str, Any] = {
        "order_class": cls,
        "take_profit": tp.limit_price if tp is not None else None,
        "stop_loss_stop": sl.stop_price if sl is not None else None,
        "stop_loss_limit": sl.limit_price if sl is not None else None,
        "legs": tuple(leg.id for leg in legs),
    }
    return msgspec.structs.replace(order, order_class=cls), legs, extra


def _risk_legs(req: NewOrder, qty: int) -> list[tuple[str, int, int]]:
    """The held legs of an order class as risk checks them at submission (role, qty,
    price): a take-profit at its limit, a stop-loss at its limit or else its stop
    (docs/risk.md). An OCO's take-profit is the order itself; a trailing stop has none."""
    legs: list[tuple[str, int, int]] = []
    tp, sl = req.take_profit, req.stop_loss
    if tp is not None and req.order_class != "oco":
        legs.append((TAKE_PROFIT, qty, tp.limit_price))
    if sl is not None:
        legs.append((STOP_LOSS, qty, sl.stop_price if sl.limit_price is None else sl.limit_price))
    return legs


def _unrepresentable(answer: wire.Reply | Replies) -> wire.Reply | Replies:
    """`answer` (one that changed nothing: a query's) with each reply that holds a
    number past the wire's 64-bit integers as a Reject saying so (a position marked at
    a far price, say), for the engine to send instead of failing."""
    if isinstance(answer, Replies):
        return Replies([_unrepresentable(r) for r in answer.replies])  # type: ignore[misc]
    try:
        _frame(answer)
    except OverflowError:
        return Reject(
            answer.req, "unrepresentable", "the answer holds a number past 64-bit integers"
        )
    return answer


def _shutting_down(frame: bytes) -> Reject | Replies:
    """The answer of a stopping engine to a request it will not handle: `shutting_down`
    for each request of the frame (an undecodable one is `bad_frame`, as ever)."""
    try:
        req = _decode(frame)
    except wire.WireError as exc:
        return Reject(_req_of(frame), "bad_frame", str(exc))
    if isinstance(req, Batch):
        return Replies([Reject(r.req, "shutting_down", SHUTTING_DOWN) for r in req.requests])
    return Reject(req.req, "shutting_down", SHUTTING_DOWN)


_fields = msgspec.structs.astuple


def _frame(msg: Any) -> bytes:
    """`wire.encode`, as a C call (its version byte, then the message)."""
    return _VERSION_BYTE + _encode(msg)


def _decode(frame: Any) -> wire.Request | Batch:
    """`wire.decode_frame`, as a C call for a well-formed frame of order-entry size;
    any other frame, and the `WireError` of a bad one, are `wire.decode_frame`'s."""
    if type(frame) is bytes:
        data: bytes = frame
        n = len(data)
        if 1 < n <= _DECODE_MAX and data[0] == _WIRE_VERSION:
            # the body after the version byte: compiled, copied straight from the
            # buffer (a bytes slice builds a slice object first: ~500 instructions more)
            body = cython.cast(cython.p_char, data)[1:n] if cython.compiled else data[1:]
            try:
                msg: wire.Request | Batch | None = _decode_body(body)
            except Exception:  # said as decode_frame says it, just below
                msg = None
            if msg is not None:
                return msg
    return wire.decode_frame(frame)


def _req_of(frame: bytes) -> int:
    """The request id of a frame that failed to decode, if it can be read at all."""
    try:
        raw = msgspec.msgpack.decode(frame[1:])
    except (msgspec.DecodeError, ValueError, IndexError, RecursionError):  # nested too deep
        return 0
    if isinstance(raw, list) and len(raw) > 1 and type(raw[1]) is int:  # not a bool
        return raw[1]
    return 0
