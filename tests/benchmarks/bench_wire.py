"""Engine process benchmarks over the wire, behind ``tickplane bench wire --json``.

Everything is measured in one run against real ``tickplane engine`` processes on
loopback TCP, each with ``pin_cpu: true`` (the engine pins its hot loop to the last CPU
of its affinity and reports it on ``/status``). The benchmark client pins itself (its
thread and its ZeroMQ I/O thread) to another CPU when there is one. Figures are medians
over ``repeats`` samples, each after one untimed warm-up sample:

- ``engine_rtt_p50_us`` / ``engine_rtt_p99_us``: one client, one request in flight, a
  plain synchronous pyzmq DEALER. A sample sends N limit buy orders that rest, each
  followed by the cancel of that order (so the book holds at most one order); the figure
  is new order -> ack, timed from the send of the ``wire.encode(wire.NewOrder(...))``
  frame to the decoded reply (cancel -> ack is in ``details``). Against an engine with
  ``fsync: none`` and, separately, ``fsync: batch`` (``engine_rtt_batch_fsync_*``: one
  fsync per batch, here one per request, on the disk the journal is on).
- ``details.rtt_engine_stage_mean_us``: where the engine's loop spent a round trip's
  turn by its own clock (``tickplane_engine_stage_seconds`` over the round-trip samples):
  ``handle`` (decode, risk, core, journal append, encode), ``journal`` (the commit),
  ``ack`` (the send, with the ZeroMQ I/O thread's work when it takes the CPU then),
  ``publish`` (after the reply, not in the round trip).
  ``details.rtt_request_stage_mean_us``: the same round trips' requests stage by stage
  (``tickplane_engine_request_stage_seconds``): ``decode``, ``risk``, ``journal``
  (append and commit), ``match``, ``ack``.
- ``client_rtt_p50_us`` / ``_p99_us``: the same flow through the asyncio
  ``EngineClient`` (``submit`` -> reply, encoding included), ``fsync: none``.
- ``zmq_echo_p50_us`` / ``_p99_us``: the floor. A bare pyzmq ROUTER echo server in its
  own process, placed like the engine (ZeroMQ's I/O thread kept off the CPU the engine
  pinned its loop to, its sockets made first, then its main thread pinned to that CPU),
  echoing a frame as long as an order frame,
  on the same transport. Its samples alternate with the engine's (``fsync: none``)
  samples. ``rtt_vs_echo`` = engine p50 / echo p50 (target <= 1.3);
  ``rtt_vs_echo_paired`` is the median of the per-sample ratios (steadier when the
  machine's speed drifts between samples). What is the same for both: the client (one
  synchronous DEALER, pinned to the same CPU, same frame size), the socket types
  (DEALER to ROUTER), the transport (loopback TCP), the server's placement (a
  ``zmq.Context`` with one I/O thread on the other CPUs, sockets made before the main
  thread pins itself, to the same CPU). The echo uses pyzmq's calls (``recv_multipart``,
  ``send_multipart``), as the target's floor is defined; the engine, which has no venue
  thread here, blocks in its ROUTER's pyzmq ``recv`` and moves the rest of its messages
  through libzmq's own calls (engine/router.pyx), which cost less than pyzmq's.
- ``details.zmq_echo_libzmq_p50_us`` / ``_pipelined_per_sec``: the stricter floor, an
  echo through the engine's own message path (the same blocking receive, then
  ``Router.take`` and ``Router.send``) with nothing between receiving and replying;
  ``details.rtt_vs_libzmq_echo`` and ``pipelined_vs_libzmq_echo`` compare against it.
  Its samples follow the pyzmq echo's in each round.
- ``pipelined_orders_per_sec``: one client, a window of ``window`` requests in flight
  (non-blocking DEALER sends), the same resting-order-then-cancel flow: every order's
  cancel is sent once its ack is in. The figure counts every acked order-entry request
  (new orders and cancels alike; ``details`` has new orders alone) per second of wall
  time; ``fsync: none`` and ``batch`` (target >= 200,000/s). Each request its own frame.
- ``details.pipelined_cpu_us_per_request``: where a pipelined request's CPU went, by
  thread, from the scheduler's own clock (``/proc/<pid>/task/*/schedstat``) over each
  sample: ``engine_loop``, ``engine_zmq`` (its ZeroMQ I/O thread), ``client_loop``,
  ``client_zmq``; ``pipelined_requests_per_turn``: requests the engine's loop took a turn.
  With two CPUs, the loop has one and the rest share the other: the sum of the last
  three against the first says which CPU bounds the rate. The same for ``Batch`` frames
  (``pipelined_batched_*``, frames a turn) and for the echo floors
  (``zmq_echo_pipelined_cpu_us_per_request``, ``zmq_echo_libzmq_...``: the server's
  threads under the ``engine_`` names).
- ``pipelined_orders_per_sec_batched``: the same flow, window and checks, fsync none, but
  the client sends what it has ready as ``wire.Batch`` frames of at most ``BATCH_FRAME``
  (128) requests (a lone request goes as a plain frame), and the engine
  answers each batch with one ``wire.Replies`` frame: what ``EngineClient`` does with
  requests sent in the same turn of its event loop (docs/engine-service.md, "Batches of
  requests"). Reported beside the one-frame-per-request figure above, which it does not
  replace (same target).
- ``loop_turn_cpu_us`` / ``loop_batch_cpu_us_per_request``: the engine loop's thread
  CPU time per request with no network, an ``EngineService`` in the benchmark process
  fed the same flow through ``process``: one request a turn (what a round trip pays,
  replies and publishing included) and 256 a turn (what pipelining pays). CPU time
  does not move with the machine's load as wall-clock figures do.
- ``zmq_echo_pipelined_per_sec``: the throughput floor: the echo server above, the same
  client CPU, window and frame, frames echoed per second (``pipelined_vs_echo`` is the
  engine's rate over it): what pyzmq on this transport and these CPUs can carry at all.
- ``recovery_seconds_per_million_events``: an engine (``fsync: none``, no snapshots)
  journals ``recovery_commands`` commands of the same flow (one event per command, so
  per event is per command here), is killed with SIGKILL, and is restarted
  ``repeats`` times (SIGKILL after each); each restart's recovery time is its
  ``tickplane_engine_recovery_seconds`` gauge (the same as its "recovered N commands"
  log line, which is checked too), scaled to one million events (target <= 2 s).
  Every restart must come back with every journaled command and the same last seq.

Checks, any failure of which raises ``BenchError``: every order is acked as accepted
and resting, every cancel is acked as a cancel, no request is rejected, the book is
empty after each section, and recovery restores exactly what was acknowledged.

Journals live under ``~/.cache/tickplane/bench/wire`` (a disk, not a tmpfs on which an
fsync costs nothing; the report names the filesystem) and are deleted afterwards.

Run: ``tickplane bench wire --json``, or ``python tests/benchmarks/bench_wire.py --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import numpy as np
import zmq
import zmq.asyncio
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

try:
    from tests.benchmarks.measure import median, quiet_gc
    from tests.ports import free_port, free_ports
except ModuleNotFoundError:  # run as a script: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.benchmarks.measure import median, quiet_gc
    from tests.ports import free_port, free_ports

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import OrderAccepted, OrderCanceled

__all__ = ["BenchError", "run"]

SYMBOL = "GOOG"
ACCOUNT = "bench"
BID = 10_000  # ticks: every benchmark order is a buy that rests here (nothing sells)
QTY = 10

RTT_ORDERS = 5_000  # new orders (each with its cancel) per sample, fsync none
RTT_BATCH_ORDERS = 2_000  # the same with fsync batch (each request waits for an fsync)
CLIENT_ORDERS = 3_000  # through the asyncio EngineClient
ECHO_MESSAGES = 10_000
PIPELINED_REQUESTS = 100_000  # acked requests per pipelined sample
WINDOW = 1_000  # requests in flight when pipelined
# Requests per Batch frame when pipelined with batches: several frames in flight, so
# the engine works on one while the client reads the replies of another and writes the
# next (one frame holding the whole window would leave each side waiting on the other).
BATCH_FRAME = 128
RECOVERY_COMMANDS = 300_000
LOOP_REQUESTS = 20_000  # requests per in-process sample (half orders, half cancels)
#: No reply for this long: the engine (or echo server) is gone or stuck.
REPLY_TIMEOUT_MS = 15_000
READY_TIMEOUT = 120.0
TARGETS = {
    "rtt_vs_echo": ("<=", 1.3),
    "pipelined_orders_per_sec": (">=", 200_000),
    "pipelined_orders_per_sec_batched": (">=", 200_000),
    "recovery_seconds_per_million_events": ("<=", 2.0),
}
FIGURES = (
    "engine_rtt_p50_us",
    "engine_rtt_p99_us",
    "engine_rtt_batch_fsync_p50_us",
    "engine_rtt_batch_fsync_p99_us",
    "client_rtt_p50_us",
    "client_rtt_p99_us",
    "zmq_echo_p50_us",
    "zmq_echo_p99_us",
    "rtt_vs_echo",
    "pipelined_orders_per_sec",
    "pipelined_orders_per_sec_batch_fsync",
    "pipelined_orders_per_sec_batched",
    "zmq_echo_pipelined_per_sec",
    "recovery_seconds_per_million_events",
    "loop_turn_cpu_us",
    "loop_batch_cpu_us_per_request",
)
_STAGE = re.compile(r'tickplane_engine_(request_)?stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)')
_RECOVERED = re.compile(r"recovered (\d+) commands after snapshot (\d+) in ([0-9.]+)s")

# Note: no dataclasses here (see bench_book.py: `tickplane bench` loads benchmark files
# with importlib.util.spec_from_file_location).


class BenchError(RuntimeError):
    """The engine did something other than what the figure assumes: no figure."""


# --- helpers ------------------------------------------------------------------------------


def _endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def _pcts(ns: list[int]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


@contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    """Run the calling thread on one CPU (threads it starts inherit it)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def thread_cpu_ns(pid: int) -> dict[str, int]:
    """CPU time (ns) a process's threads have run so far, by role: ``loop`` (its main
    thread: the engine's loop, the benchmark client), ``zmq`` (ZeroMQ's I/O and reaper
    threads, ``ZMQbg/*``) and ``other``. From ``/proc/<pid>/task/*/schedstat``, which
    the scheduler keeps in nanoseconds (``stat``'s ticks are 10 ms); empty where there is
    no such file."""
    out = {"loop": 0, "zmq": 0, "other": 0}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return {}
    for task in tasks:
        try:
            ran = int((task / "schedstat").read_text().split()[0])
            comm = (task / "comm").read_text()
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
        role = "loop" if task.name == str(pid) else "zmq" if comm.startswith("ZMQbg/") else "other"
        out[role] += ran
    return out


def _spawner(cpus: set[int]) -> Callable[[], None]:
    """A preexec_fn giving a child every CPU the benchmark was given (not the client's)."""

    def reset() -> None:
        os.sched_setaffinity(0, cpus)

    return reset


def _filesystem(path: Path) -> str:
    """The type and device of the filesystem holding ``path`` (from /proc/mounts)."""
    best, found = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                dev, mnt, fstype = line.split()[:3]
                inside = str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, found = mnt, f"{fstype} ({dev} on {mnt})"
    except OSError:
        pass
    return found


class Engine:
    """One ``tickplane engine`` subprocess on free loopback ports."""

    def __init__(self, root: Path, name: str, cpus: set[int], **settings: Any) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.cpus = cpus
        port = free_ports(3)  # a run, so that the three cannot be the same port
        self.settings: dict[str, Any] = {
            "name": f"bench-{name}",
            "order_entry": f"tcp://127.0.0.1:{port}",
            "events": f"tcp://127.0.0.1:{port + 1}",
            "http_port": port + 2,
            "journal_dir": str(self.dir / "journal"),
            "symbols": [{"name": SYMBOL}],
            "pin_cpu": True,
            **settings,
        }
        self.log = self.dir / "engine.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def order_entry(self) -> str:
        return str(self.settings["order_entry"])

    @property
    def journal_dir(self) -> Path:
        return Path(self.settings["journal_dir"])

    def start(self) -> float:
        """Start the process; return the seconds until ``/readyz`` answered 200."""
        cfg = self.dir / "engine.json"
        cfg.write_text(json.dumps(self.settings))
        if self._out is not None:
            self._out.close()
        self._out = self.log.open("ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickplane.cli.main", "engine", "--config", str(cfg)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"},
            preexec_fn=_spawner(self.cpus),
        )
        deadline = t0 + READY_TIMEOUT
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"the engine exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self._url("/readyz"), timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.02)  # readiness of another process: nothing to await
        raise BenchError(f"the engine was not ready after {READY_TIMEOUT}s:\n{self.log_tail()}")

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.settings['http_port']}{path}"

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self._url("/status"), timeout=5) as r:
            data: dict[str, Any] = json.load(r)
            return data

    def metric(self, name: str) -> float | None:
        """An unlabelled sample from ``/metrics``."""
        with urllib.request.urlopen(self._url("/metrics"), timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def batch_sizes(self) -> tuple[float, float]:
        """The loop's turns so far: (requests in them, turns), from
        ``tickplane_engine_batch_size`` (a `Batch` frame counts as one request there)."""
        total = self.metric("tickplane_engine_batch_size_sum")
        count = self.metric("tickplane_engine_batch_size_count")
        return (total or 0.0, count or 0.0)

    def stage_totals(self) -> dict[str, tuple[float, float]]:
        """The engine loop's own stage times so far: stage -> (sum of seconds, count),
        the turn's stages (`tickplane_engine_stage_seconds`) by name and the sampled
        request's (`tickplane_engine_request_stage_seconds`) as "request.<stage>"."""
        out: dict[str, list[float]] = {}
        with urllib.request.urlopen(self._url("/metrics"), timeout=5) as r:
            for line in r.read().decode().splitlines():
                m = _STAGE.match(line)
                if m:
                    key = ("request." if m.group(1) else "") + m.group(3)
                    part = out.setdefault(key, [0.0, 0.0])
                    part[0 if m.group(2) == "sum" else 1] = float(m.group(4))
        return {k: (v[0], v[1]) for k, v in out.items()}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no flush, no snapshot."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (clean shutdown), SIGKILL if it takes more than 30 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._out is not None:
            self._out.close()
            self._out = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class EchoServer:
    """A bare ROUTER echo in its own process (``--echo-server``): through pyzmq's calls
    (the floor the targets use), or with ``libzmq`` through the engine's own message
    path (engine/router.pyx: libzmq's calls), the stricter floor in ``details``."""

    def __init__(self, cpu: int | None, cpus: set[int], *, libzmq: bool = False) -> None:
        self.endpoint = _endpoint()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--echo-server",
                self.endpoint,
                "-1" if cpu is None else str(cpu),
                *(["--libzmq"] if libzmq else []),
            ],
            stdout=subprocess.PIPE,
            preexec_fn=_spawner(cpus),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("ready"):
            self.stop()
            raise BenchError(f"the echo server did not start (said {line!r})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def echo_server(endpoint: str, cpu: int, libzmq: bool = False) -> int:
    """Serve the echo: the engine's placement (ZeroMQ's threads on the CPUs but the
    loop's, sockets first, then pin the main thread)."""
    ctx = zmq.Context()
    if cpu >= 0:  # the engine's placement: ZeroMQ's threads off the loop's CPU (io_cpus)
        for other in sorted(os.sched_getaffinity(0) - {cpu}):
            ctx.set(zmq.THREAD_AFFINITY_CPU_ADD, other)
    sock = ctx.socket(zmq.ROUTER)
    # the engine's ROUTER options (engine/service.py): with the default high-water mark
    # a ROUTER drops replies once a peer has 1000 queued, and a window of 1000 gets there
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    sock.setsockopt(zmq.SNDHWM, 1_000_000)
    sock.bind(endpoint)
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    print("ready", flush=True)
    if libzmq:
        # the engine's loop with nothing between receiving and replying: a blocking
        # receive of the first frame, then what else is there, sent back as it came
        from tickplane.engine.router import Router

        io = Router(sock)
        first = sock.recv
        while True:
            io.send(io.take(256, first()))
    recv, send = sock.recv_multipart, sock.send_multipart
    while True:
        send(recv())


def _dealer(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, REPLY_TIMEOUT_MS)
    sock.connect(endpoint)
    return sock


# --- the order flow -----------------------------------------------------------------------


class Flow:
    """Request ids and the checks of the resting-order-then-cancel flow on one socket."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
        self.req = 0

    def fail(self, message: str) -> BenchError:
        tail = f"\nengine log:\n{self.engine.log_tail()}" if self.engine is not None else ""
        return BenchError(message + tail)

    def new_order(self) -> wire.NewOrder:
        self.req += 1
        return wire.NewOrder(self.req, ACCOUNT, SYMBOL, "buy", "limit", QTY, BID)

    def cancel(self, order_id: int) -> wire.CancelOrder:
        self.req += 1
        return wire.CancelOrder(self.req, ACCOUNT, order_id)

    def new_frame(self) -> tuple[int, bytes]:
        msg = self.new_order()
        return msg.req, wire.encode(msg)

    def cancel_frame(self, order_id: int) -> tuple[int, bytes]:
        msg = self.cancel(order_id)
        return msg.req, wire.encode(msg)

    def accepted(self, reply: wire.Reply, req: int) -> int:
        """The id of the resting order a new-order reply acknowledges."""
        if not isinstance(reply, wire.Ack) or reply.req != req or reply.order_id is None:
            raise self.fail(f"new order {req}: expected an ack with an order id, got {reply!r}")
        if len(reply.events) != 1 or not isinstance(reply.events[0], OrderAccepted):
            raise self.fail(f"new order {req}: expected one OrderAccepted, got {reply.events!r}")
        return reply.order_id

    def canceled(self, reply: wire.Reply, req: int) -> None:
        if (
            not isinstance(reply, wire.Ack)
            or reply.req != req
            or len(reply.events) != 1
            or not isinstance(reply.events[0], OrderCanceled)
        ):
            raise self.fail(f"cancel {req}: expected an ack with one OrderCanceled, got {reply!r}")


def sync_rtt(sock: zmq.Socket[bytes], flow: Flow, n: int) -> tuple[list[int], list[int]]:
    """``n`` orders and their cancels, one in flight; order and cancel round trips (ns)."""
    pc, send, decode = time.perf_counter_ns, sock.send, wire.decode_reply
    recv = sock.recv
    new_ns = [0] * n
    cancel_ns = [0] * n
    for i in range(n):
        req, frame = flow.new_frame()
        t0 = pc()
        send(frame)
        try:
            reply = decode(recv())
        except zmq.Again:
            raise flow.fail(f"no reply to order {req}") from None
        t1 = pc()
        oid = flow.accepted(reply, req)
        req, frame = flow.cancel_frame(oid)
        t2 = pc()
        send(frame)
        try:
            reply = decode(recv())
        except zmq.Again:
            raise flow.fail(f"no reply to cancel {req}") from None
        t3 = pc()
        flow.canceled(reply, req)
        new_ns[i] = t1 - t0
        cancel_ns[i] = t3 - t2
    return new_ns, cancel_ns


def echo_rtt(sock: zmq.Socket[bytes], frame: bytes, n: int) -> list[int]:
    pc, send, recv = time.perf_counter_ns, sock.send, sock.recv
    out = [0] * n
    for i in range(n):
        t0 = pc()
        send(frame)
        try:
            back = recv()
        except zmq.Again:
            raise BenchError("the echo server stopped answering") from None
        t1 = pc()
        if back != frame:
            raise BenchError(f"the echo server sent back {back!r}, not {frame!r}")
        out[i] = t1 - t0
    return out


def echo_pipelined(sock: zmq.Socket[bytes], frame: bytes, n: int, window: int) -> float:
    """``n`` echoed frames with ``window`` in flight, the way ``pipelined`` keeps its
    window (non-blocking sends, a poll, non-blocking receives); returns frames/s."""
    send, recv = sock.send, sock.recv
    sent = back = 0
    t0 = time.perf_counter()
    while back < n:
        while sent - back < window and sent < n:
            try:
                send(frame, zmq.NOBLOCK)
            except zmq.Again:
                break
            sent += 1
        if not sock.poll(REPLY_TIMEOUT_MS):
            raise BenchError(f"the echo server stopped answering ({back} of {n} back)")
        while True:
            try:
                recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            back += 1
    return n / (time.perf_counter() - t0)


def _echo_samples(
    sock: zmq.Socket[bytes], server: int, frame: bytes, requests: int, window: int, repeats: int
) -> tuple[list[float], dict[str, float]]:
    """``echo_pipelined``'s rates over ``repeats`` samples after a warm-up, and where a
    frame's CPU went (medians, us): the server's (process ``server``) threads as
    ``engine_*``, this client's as ``client_*``, by the names ``_pipelined_samples`` uses."""
    rates: list[float] = []
    split: dict[str, list[float]] = {}
    with quiet_gc():
        echo_pipelined(sock, frame, max(requests // 10, 2), window)
        for _ in range(repeats):
            server0, client0 = thread_cpu_ns(server), thread_cpu_ns(os.getpid())
            rates.append(echo_pipelined(sock, frame, requests, window))
            server1, client1 = thread_cpu_ns(server), thread_cpu_ns(os.getpid())
            _add_split(split, requests, ("engine", server0, server1), ("client", client0, client1))
    return rates, {k: round(median(v), 2) for k, v in split.items()}


def _add_split(
    split: dict[str, list[float]],
    requests: float,
    *runs: tuple[str, dict[str, int], dict[str, int]],
) -> None:
    """Append each process's loop and ZeroMQ CPU (us a request) between two
    ``thread_cpu_ns`` readings to ``split`` (``<who>_loop``, ``<who>_zmq``)."""
    for who, t0, t1 in runs:
        for role in ("loop", "zmq"):
            if role in t0 and role in t1:
                split.setdefault(f"{who}_{role}", []).append((t1[role] - t0[role]) / 1e3 / requests)


async def client_rtt(
    ctx: zmq.asyncio.Context, endpoint: str, flow: Flow, n: int, warmup: int
) -> list[int]:
    """Orders through the asyncio ``EngineClient``; submit -> reply round trips (ns)."""
    pc = time.perf_counter_ns
    out = [0] * n
    async with EngineClient(endpoint, context=ctx, timeout=REPLY_TIMEOUT_MS / 1000) as eng:
        await eng.ping()
        for i in range(-warmup, n):
            t0 = pc()
            reply = await eng.submit(ACCOUNT, SYMBOL, "buy", "limit", QTY, price=BID)
            t1 = pc()
            oid = flow.accepted(reply, reply.req)
            if i >= 0:
                out[i] = t1 - t0
            reply = await eng.cancel(ACCOUNT, oid)
            flow.canceled(reply, reply.req)
    return out


def pipelined(sock: zmq.Socket[bytes], flow: Flow, requests: int, window: int) -> dict[str, float]:
    """``requests`` acked requests (half orders, half their cancels), ``window`` in flight.

    Returns wall seconds, CPU seconds of this (client) process, and counts."""
    orders = requests // 2
    send, recv, decode = sock.send, sock.recv, wire.decode_reply
    kinds: dict[int, bool] = {}  # req -> is a new order
    cancels: deque[int] = deque()
    held: tuple[int, bytes, bool] | None = None  # not taken by a full pipe: send it next
    sent_orders = acked = in_flight = 0
    want = 2 * orders
    t0, c0 = time.perf_counter(), time.process_time()
    while acked < want:
        while in_flight < window:
            if held is not None:
                req, frame, is_new = held
                held = None
            elif cancels:
                req, frame = flow.cancel_frame(cancels.popleft())
                is_new = False
            elif sent_orders < orders:
                req, frame = flow.new_frame()
                is_new = True
                sent_orders += 1
            else:
                break
            try:
                send(frame, zmq.NOBLOCK)
            except zmq.Again:  # the pipe is full: take replies first
                held = (req, frame, is_new)
                break
            kinds[req] = is_new
            in_flight += 1
        if not sock.poll(REPLY_TIMEOUT_MS):
            raise flow.fail(f"no reply within {REPLY_TIMEOUT_MS / 1000:.0f}s ({acked} acked)")
        while True:
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            reply = decode(frame)
            in_flight -= 1
            acked += 1
            if reply.req not in kinds:
                raise flow.fail(f"a reply to a request never sent: {reply!r}")
            is_new = kinds.pop(reply.req)
            if is_new:
                cancels.append(flow.accepted(reply, reply.req))
            else:
                flow.canceled(reply, reply.req)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "acked": acked,
        "orders": orders,
    }


def pipelined_batched(
    sock: zmq.Socket[bytes], flow: Flow, requests: int, window: int
) -> dict[str, float]:
    """``pipelined``'s flow and checks, the ready requests sent as ``wire.Batch``
    frames (``wire.encode_batch``) of at most ``BATCH_FRAME``, each reply frame read
    with ``wire.decode_replies``."""
    orders = requests // 2
    send, recv, decode = sock.send, sock.recv, wire.decode_replies
    kinds: dict[int, bool] = {}  # req -> is a new order
    cancels: deque[int] = deque()
    held: bytes | None = None  # not taken by a full pipe: send it next
    held_reqs: list[wire.Request] = []
    sent_orders = acked = in_flight = 0
    want = 2 * orders
    t0, c0 = time.perf_counter(), time.process_time()
    while acked < want:
        while held is not None or in_flight < window:
            if held is None:
                room = min(window - in_flight, BATCH_FRAME)
                msgs: list[wire.Request] = []
                while cancels and len(msgs) < room:
                    msgs.append(flow.cancel(cancels.popleft()))
                while sent_orders < orders and len(msgs) < room:
                    msgs.append(flow.new_order())
                    sent_orders += 1
                if not msgs:
                    break
                held, held_reqs = wire.encode_batch(msgs), msgs
            try:
                send(held, zmq.NOBLOCK)
            except zmq.Again:  # the pipe is full: take replies first
                break
            for m in held_reqs:
                kinds[m.req] = type(m) is wire.NewOrder
            in_flight += len(held_reqs)
            held = None
        if not sock.poll(REPLY_TIMEOUT_MS):
            raise flow.fail(f"no reply within {REPLY_TIMEOUT_MS / 1000:.0f}s ({acked} acked)")
        while True:
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            for reply in decode(frame):
                in_flight -= 1
                acked += 1
                if reply.req not in kinds:
                    raise flow.fail(f"a reply to a request never sent: {reply!r}")
                if kinds.pop(reply.req):
                    cancels.append(flow.accepted(reply, reply.req))
                else:
                    flow.canceled(reply, reply.req)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "acked": acked,
        "orders": orders,
    }


# --- the sections -------------------------------------------------------------------------


class Bench:
    """Progress on stderr (refreshed by hand: no thread of ours competes for the CPUs),
    figures, details."""

    def __init__(self, repeats: int, console: Console, progress: Progress) -> None:
        self.repeats = repeats
        self.console = console
        self.progress = progress
        self.figures: dict[str, Any] = {}
        self.details: dict[str, Any] = {}

    def task(self, label: str, total: float | None) -> TaskID:
        task = self.progress.add_task(label, total=total)
        self.progress.refresh()
        return task

    def advance(self, task: TaskID, by: float = 1) -> None:
        self.progress.advance(task, by)
        self.progress.refresh()

    def done(self, task: TaskID) -> None:
        self.progress.update(task, total=1, completed=1)
        self.progress.refresh()


def _sample_rtt(
    b: Bench, prefix: str, new: list[list[int]], cancel: list[list[int]]
) -> tuple[float, float]:
    """Record per-sample p50/p99 of order and cancel round trips; return the medians."""
    p50s, p99s, c50s, c99s = [], [], [], []
    for ns, cns in zip(new, cancel, strict=True):
        p50, p99 = _pcts(ns)
        c50, c99 = _pcts(cns)
        p50s.append(round(p50, 1))
        p99s.append(round(p99, 1))
        c50s.append(round(c50, 1))
        c99s.append(round(c99, 1))
    b.details[f"{prefix}_p50_us_all"] = p50s
    b.details[f"{prefix}_p99_us_all"] = p99s
    b.details[f"{prefix}_cancel_p50_us"] = round(median(c50s), 1)
    b.details[f"{prefix}_cancel_p99_us"] = round(median(c99s), 1)
    return round(median(p50s), 1), round(median(p99s), 1)


def _placement(b: Bench, eng: Engine, cpus: set[int]) -> tuple[int | None, int | None]:
    """The engine's pinned CPU (from /status) and the client's CPU (another one)."""
    status = eng.status()
    pinned = status.get("pinned_cpu")
    others = sorted(cpus - {pinned})
    client = others[-1] if others else pinned
    if client == pinned:
        b.console.print("[yellow]one CPU only: the benchmark client shares the engine's CPU[/]")
    return pinned, client


def _pipelined_samples(
    b: Bench,
    label: str,
    eng: Engine,
    client_cpu: int | None,
    requests: int,
    window: int,
    way: Callable[[zmq.Socket[bytes], Flow, int, int], dict[str, float]] = pipelined,
) -> dict[str, Any]:
    task = b.task(label, b.repeats + 1)
    rates: list[float] = []
    orders: list[float] = []
    cpu_share: list[float] = []
    split: dict[str, list[float]] = {}  # where a request's CPU went, by thread (us)
    turns: list[float] = []  # requests (frames' requests) a turn of the engine's loop
    acked = 0
    with _pinned(client_cpu):
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            sock = _dealer(ctx, eng.order_entry)
            flow = Flow(eng)
            flow.req = 1 << 40  # clear of any other request ids of this benchmark
            with quiet_gc():
                warm = way(sock, flow, max(requests // 10, 2), window)
            acked += int(warm["acked"])
            b.advance(task)
            for _ in range(b.repeats):
                turn0 = eng.batch_sizes()
                engine0, client0 = thread_cpu_ns(eng.pid), thread_cpu_ns(os.getpid())
                with quiet_gc():
                    r = way(sock, flow, requests, window)
                engine1, client1 = thread_cpu_ns(eng.pid), thread_cpu_ns(os.getpid())
                turn1 = eng.batch_sizes()
                acked += int(r["acked"])
                rates.append(r["acked"] / r["seconds"])
                orders.append(r["orders"] / r["seconds"])
                cpu_share.append(r["cpu_seconds"] / r["seconds"])
                _add_split(
                    split, r["acked"], ("engine", engine0, engine1), ("client", client0, client1)
                )
                if turn1[1] > turn0[1]:
                    turns.append((turn1[0] - turn0[0]) / (turn1[1] - turn0[1]))
                b.advance(task)
            sock.close(0)
        finally:
            ctx.destroy(0)  # term() would wait for ever on a socket left open
    return {
        "per_sec": round(median(rates)),
        "all": [round(x) for x in rates],
        "new_orders_per_sec": round(median(orders)),
        "client_cpu_share": round(median(cpu_share), 2),
        "cpu_us_per_request": {k: round(median(v), 2) for k, v in split.items()},
        "requests_per_turn": round(median(turns), 1) if turns else None,
        "acked": acked,
    }


def _check_empty_book(eng: Engine, flow_name: str) -> dict[str, Any]:
    status = eng.status()
    if status.get("open_orders") != 0:
        raise BenchError(
            f"{flow_name}: {status.get('open_orders')} orders left open: a cancel missed"
        )
    return status


def _engine_none(
    b: Bench,
    root: Path,
    cpus: set[int],
    rtt_orders: int,
    client_orders: int,
    echo_messages: int,
    requests: int,
    window: int,
) -> None:
    """fsync none: echo floor, engine RTT, client RTT (alternating samples), pipelined."""
    eng = Engine(root, "fsync-none", cpus, fsync="none")
    echo: EchoServer | None = None
    lecho: EchoServer | None = None
    task = b.task("engine (fsync none): starting", None)
    try:
        eng.start()
        pinned, client_cpu = _placement(b, eng, cpus)
        b.figures["engine_pinned_cpu"] = pinned
        b.figures["client_cpu"] = client_cpu
        echo = EchoServer(pinned, cpus)
        lecho = EchoServer(pinned, cpus, libzmq=True)
        b.done(task)
        order_frame = Flow(None).new_frame()[1]
        b.details["order_frame_bytes"] = len(order_frame)
        task = b.task("echo floor / engine RTT / EngineClient RTT", b.repeats + 1)
        echo_ns: list[list[int]] = []
        lecho_ns: list[list[int]] = []
        new_ns: list[list[int]] = []
        cancel_ns: list[list[int]] = []
        client_ns: list[list[int]] = []
        with _pinned(client_cpu):
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            actx = zmq.asyncio.Context()
            try:
                esock = _dealer(ctx, echo.endpoint)
                lsock = _dealer(ctx, lecho.endpoint)
                sock = _dealer(ctx, eng.order_entry)
                flow = Flow(eng)
                # the sizes on the wire, and the client's cost to decode an ack
                req, frame = flow.new_frame()
                sock.send(frame)
                ack = sock.recv()
                oid = flow.accepted(wire.decode_reply(ack), req)
                req, frame = flow.cancel_frame(oid)
                sock.send(frame)
                flow.canceled(wire.decode_reply(sock.recv()), req)
                b.details["ack_frame_bytes"] = len(ack)
                b.details["cancel_frame_bytes"] = len(frame)
                t0 = time.perf_counter_ns()
                for _ in range(10_000):
                    wire.decode_reply(ack)
                b.details["client_decode_ack_us"] = round((time.perf_counter_ns() - t0) / 1e7, 2)
                cflow = Flow(eng)
                stages: dict[str, list[float]] = {}
                for r in range(b.repeats + 1):  # sample 0 is the warm-up
                    with quiet_gc():
                        e = echo_rtt(esock, order_frame, echo_messages)
                        le = echo_rtt(lsock, order_frame, echo_messages)
                    before = eng.stage_totals()
                    with quiet_gc():
                        n, c = sync_rtt(sock, flow, rtt_orders)
                    after = eng.stage_totals()
                    if r:
                        for k, (total, count) in after.items():
                            was = before.get(k, (0.0, 0.0))
                            acc = stages.setdefault(k, [0.0, 0.0])
                            acc[0] += total - was[0]
                            acc[1] += count - was[1]
                    with quiet_gc():
                        k = asyncio.run(client_rtt(actx, eng.order_entry, cflow, client_orders, 50))
                    if r:
                        echo_ns.append(e)
                        lecho_ns.append(le)
                        new_ns.append(n)
                        cancel_ns.append(c)
                        client_ns.append(k)
                    b.advance(task)
                # the throughput floors, each after a warm-up
                echo_rates, echo_split = _echo_samples(
                    esock, echo.proc.pid, order_frame, requests, window, b.repeats
                )
                lecho_rates, lecho_split = _echo_samples(
                    lsock, lecho.proc.pid, order_frame, requests, window, b.repeats
                )
                b.details["zmq_echo_pipelined_cpu_us_per_request"] = echo_split
                b.details["zmq_echo_libzmq_pipelined_cpu_us_per_request"] = lecho_split
                lsock.close(0)
                esock.close(0)
                sock.close(0)
            finally:
                ctx.destroy(0)  # term() would wait for ever on a socket left open
                actx.destroy(0)
        # Where a lone request's turn goes, by the engine's own clock (means over the
        # round-trip samples): handle (decode, risk, core, journal append, encode),
        # journal (the commit), ack (the send, with the I/O thread's work when it takes
        # the CPU then) and publish (after the reply); and the request's own stages.
        means = {k: round(total / count * 1e6, 2) for k, (total, count) in stages.items() if count}
        b.details["rtt_engine_stage_mean_us"] = {
            k: v for k, v in means.items() if not k.startswith("request.")
        }
        b.details["rtt_request_stage_mean_us"] = {
            k.removeprefix("request."): v for k, v in means.items() if k.startswith("request.")
        }
        b.figures["zmq_echo_pipelined_per_sec"] = round(median(echo_rates))
        b.details["zmq_echo_pipelined_per_sec_all"] = [round(x) for x in echo_rates]
        # The stricter floor: the echo through the engine's own message path
        b.details["zmq_echo_libzmq_pipelined_per_sec"] = round(median(lecho_rates))
        b.details["zmq_echo_libzmq_pipelined_per_sec_all"] = [round(x) for x in lecho_rates]
        l50 = [round(_pcts(x)[0], 1) for x in lecho_ns]
        b.details["zmq_echo_libzmq_p50_us"] = round(median(l50), 1)
        b.details["zmq_echo_libzmq_p50_us_all"] = l50
        p50, p99 = _sample_rtt(b, "engine_rtt", new_ns, cancel_ns)
        b.figures["engine_rtt_p50_us"], b.figures["engine_rtt_p99_us"] = p50, p99
        e50 = [round(_pcts(x)[0], 1) for x in echo_ns]
        e99 = [round(_pcts(x)[1], 1) for x in echo_ns]
        b.figures["zmq_echo_p50_us"] = round(median(e50), 1)
        b.figures["zmq_echo_p99_us"] = round(median(e99), 1)
        b.details["zmq_echo_p50_us_all"], b.details["zmq_echo_p99_us_all"] = e50, e99
        # the samples alternate, so each ratio compares the two under the same conditions
        b.details["rtt_vs_echo_per_sample"] = [
            _ratio(x, y) for x, y in zip(b.details["engine_rtt_p50_us_all"], e50, strict=True)
        ]
        k50 = [round(_pcts(x)[0], 1) for x in client_ns]
        k99 = [round(_pcts(x)[1], 1) for x in client_ns]
        b.figures["client_rtt_p50_us"] = round(median(k50), 1)
        b.figures["client_rtt_p99_us"] = round(median(k99), 1)
        b.details["client_rtt_p50_us_all"], b.details["client_rtt_p99_us_all"] = k50, k99
        _check_empty_book(eng, "round trips (fsync none)")
        p = _pipelined_samples(
            b, f"pipelined, window {window} (fsync none)", eng, client_cpu, requests, window
        )
        b.figures["pipelined_orders_per_sec"] = p["per_sec"]
        b.details["pipelined_orders_per_sec_all"] = p["all"]
        b.details["pipelined_new_orders_per_sec"] = p["new_orders_per_sec"]
        b.details["pipelined_client_cpu_share"] = p["client_cpu_share"]
        b.details["pipelined_cpu_us_per_request"] = p["cpu_us_per_request"]
        b.details["pipelined_requests_per_turn"] = p["requests_per_turn"]
        _check_empty_book(eng, "pipelined (fsync none)")
        p = _pipelined_samples(
            b,
            f"pipelined, window {window}, batch frames (fsync none)",
            eng,
            client_cpu,
            requests,
            window,
            pipelined_batched,
        )
        b.figures["pipelined_orders_per_sec_batched"] = p["per_sec"]
        b.details["pipelined_orders_per_sec_batched_all"] = p["all"]
        b.details["pipelined_batched_new_orders_per_sec"] = p["new_orders_per_sec"]
        b.details["pipelined_batched_client_cpu_share"] = p["client_cpu_share"]
        b.details["pipelined_batched_cpu_us_per_request"] = p["cpu_us_per_request"]
        b.details["pipelined_batched_frames_per_turn"] = p["requests_per_turn"]
        status = _check_empty_book(eng, "pipelined, batch frames (fsync none)")
        b.details["engine_status_fsync_none"] = status
    finally:
        for server in (echo, lecho):
            if server is not None:
                server.stop()
        eng.stop()


def _engine_batch(
    b: Bench, root: Path, cpus: set[int], rtt_orders: int, requests: int, window: int
) -> None:
    """fsync batch: engine RTT and pipelined (fsync time is the disk's)."""
    eng = Engine(root, "fsync-batch", cpus, fsync="batch")
    task = b.task("engine (fsync batch): starting", None)
    try:
        eng.start()
        _, client_cpu = _placement(b, eng, cpus)
        b.done(task)
        task = b.task("engine RTT (fsync batch)", b.repeats + 1)
        new_ns: list[list[int]] = []
        cancel_ns: list[list[int]] = []
        with _pinned(client_cpu):
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            try:
                sock = _dealer(ctx, eng.order_entry)
                flow = Flow(eng)
                for r in range(b.repeats + 1):
                    with quiet_gc():
                        n, c = sync_rtt(sock, flow, rtt_orders)
                    if r:
                        new_ns.append(n)
                        cancel_ns.append(c)
                    b.advance(task)
                sock.close(0)
            finally:
                ctx.destroy(0)  # term() would wait for ever on a socket left open
        p50, p99 = _sample_rtt(b, "engine_rtt_batch_fsync", new_ns, cancel_ns)
        b.figures["engine_rtt_batch_fsync_p50_us"] = p50
        b.figures["engine_rtt_batch_fsync_p99_us"] = p99
        fsyncs = eng.metric("tickplane_engine_journal_fsync_seconds_count")
        total = eng.metric("tickplane_engine_journal_fsync_seconds_sum")
        if fsyncs and total is not None:
            b.details["journal_fsync_mean_us"] = round(total / fsyncs * 1e6, 1)
            b.details["journal_fsyncs"] = int(fsyncs)
        _check_empty_book(eng, "round trips (fsync batch)")
        p = _pipelined_samples(
            b, f"pipelined, window {window} (fsync batch)", eng, client_cpu, requests, window
        )
        b.figures["pipelined_orders_per_sec_batch_fsync"] = p["per_sec"]
        b.details["pipelined_orders_per_sec_batch_fsync_all"] = p["all"]
        b.details["pipelined_new_orders_per_sec_batch_fsync"] = p["new_orders_per_sec"]
        after = eng.metric("tickplane_engine_journal_fsync_seconds_count")
        if fsyncs is not None and after is not None:
            b.details["pipelined_batch_requests_per_fsync"] = round(
                p["acked"] / max(after - fsyncs, 1), 1
            )
        _check_empty_book(eng, "pipelined (fsync batch)")
    finally:
        eng.stop()


def _in_process(b: Bench, root: Path, requests: int) -> None:
    """The engine loop's CPU time per request, with no network: an `EngineService` in
    this process (sockets bound, no peer) fed encoded orders and their cancels through
    `process`, one request a turn and 256 a turn; thread CPU time, so the figures hold
    on a busy machine where wall-clock ones do not."""
    from tickplane.core.config import EngineConfig, SymbolConfig
    from tickplane.engine.service import EngineService

    task = b.task("engine loop in-process (CPU time)", 2 * (b.repeats + 1))
    cfg = EngineConfig(
        name="bench-loop",
        order_entry=_endpoint(),
        events=_endpoint(),
        http_port=0,
        journal_dir=str(root / "in-process" / "journal"),
        symbols=[SymbolConfig(SYMBOL)],
        fsync="none",
        snapshot_every=0,
        pin_cpu=False,
    )
    svc = EngineService(cfg)
    svc.open()
    ident, flow = b"\x00bench", Flow(None)

    def turns(size: int, n: int) -> float:
        """CPU seconds per request over n orders and their cancels, `size` a turn."""
        cpu = 0.0
        for _ in range(n // size):
            orders = [(ident, flow.new_frame()[1]) for _ in range(size)]
            t0 = time.thread_time()
            svc.process(orders)
            cpu += time.thread_time() - t0
            last = svc.state.core.last_id
            cancels = [(ident, flow.cancel_frame(o)[1]) for o in range(last - size + 1, last + 1)]
            t0 = time.thread_time()
            svc.process(cancels)
            cpu += time.thread_time() - t0
        return cpu / (2 * (n // size) * size)

    try:
        for size, name in ((1, "loop_turn_cpu_us"), (256, "loop_batch_cpu_us_per_request")):
            samples: list[float] = []
            for r in range(b.repeats + 1):
                with quiet_gc():
                    x = turns(size, max(requests // 2, size))
                if r:
                    samples.append(round(x * 1e6, 2))
                b.advance(task)
            b.figures[name] = median(samples)
            b.details[f"{name}_all"] = samples
        if svc.state.core.symbols() and len(svc.state.core) != 0:
            raise BenchError(f"in-process: {len(svc.state.core)} orders left open")
    finally:
        svc.close()


def _recovery(b: Bench, root: Path, cpus: set[int], commands: int, window: int) -> None:
    """Journal ``commands`` commands, SIGKILL, restart ``repeats`` times (SIGKILL each)."""
    eng = Engine(root, "recovery", cpus, fsync="none", snapshot_every=0)
    task = b.task(f"recovery: journaling {commands:,} commands", None)
    try:
        eng.start()
        _, client_cpu = _placement(b, eng, cpus)
        with _pinned(client_cpu):
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            try:
                sock = _dealer(ctx, eng.order_entry)
                r = pipelined(sock, Flow(eng), commands, window)
                sock.close(0)
            finally:
                ctx.destroy(0)  # term() would wait for ever on a socket left open
        status = _check_empty_book(eng, "recovery journal")
        events = int(status["last_seq"])
        journaled = int(r["acked"])
        eng.kill()
        b.done(task)
        journal_bytes = sum(p.stat().st_size for p in eng.journal_dir.glob("*.tpj"))
        task = b.task("recovery: restart after SIGKILL", b.repeats)
        seconds: list[float] = []
        walls: list[float] = []
        for _ in range(b.repeats):
            before = len(_RECOVERED.findall(eng.log_text()))
            walls.append(eng.start())
            gauge = eng.metric("tickplane_engine_recovery_seconds")
            status = eng.status()
            eng.kill()
            lines = _RECOVERED.findall(eng.log_text())
            if gauge is None or len(lines) != before + 1:
                raise BenchError(f"no recovery time from the engine:\n{eng.log_tail()}")
            applied, snapshot, _logged = lines[-1]
            if int(applied) != journaled or int(snapshot) != 0:
                raise BenchError(
                    f"recovery re-applied {applied} commands after snapshot {snapshot}; "
                    f"{journaled} were journaled with no snapshot"
                )
            if status["last_seq"] != events or status["open_orders"] != 0:
                raise BenchError(
                    f"recovered last seq {status['last_seq']} with {status['open_orders']} "
                    f"open orders; before the kill: {events}, 0 open"
                )
            seconds.append(gauge)
            b.advance(task)
        med = median(seconds)
        b.figures["recovery_seconds_per_million_events"] = round(med / events * 1e6, 3)
        b.figures["recovery_seconds"] = round(med, 3)
        b.figures["recovery_events"] = events
        b.figures["recovery_commands"] = journaled
        b.details["recovery_seconds_all"] = [round(s, 3) for s in seconds]
        b.details["recovery_start_to_ready_seconds_all"] = [round(w, 3) for w in walls]
        b.details["recovery_journal_bytes"] = journal_bytes
    finally:
        eng.kill()
        eng.stop()


# --- the report ---------------------------------------------------------------------------


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if a and b else None


def _environment(repeats: int, cpus: set[int], journal_root: Path) -> dict[str, Any]:
    cpu = platform.processor()
    with suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": sorted(cpus),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "journal_filesystem": _filesystem(journal_root),
        "repeats": repeats,
    }


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (op, bound) in TARGETS.items():
        value = result.get(name)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        out[name] = {"target": f"{op} {bound}", "value": value, "met": met}
    return out


def _print_table(result: dict[str, Any], console: Console) -> None:
    table = Table(title="Tickplane engine wire benchmarks")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            t = result["targets"].get(key)
            mark = "" if t is None else f"{t['target']} {'ok' if t['met'] else 'MISSED'}"
            table.add_row(key, f"{value:,}", mark)
    console.print(table)


def run(
    json_out: bool = True,
    repeats: int = 5,
    *,
    rtt_orders: int = RTT_ORDERS,
    rtt_batch_orders: int = RTT_BATCH_ORDERS,
    client_orders: int = CLIENT_ORDERS,
    echo_messages: int = ECHO_MESSAGES,
    pipelined_requests: int = PIPELINED_REQUESTS,
    window: int = WINDOW,
    recovery_commands: int = RECOVERY_COMMANDS,
    loop_requests: int = LOOP_REQUESTS,
    journal_root: Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run every wire benchmark once and return the result (one JSON-ready dict).

    Args:
        json_out: the caller prints the result as JSON: print nothing on stdout (else
            print a table of the figures).
        repeats: timed samples per figure (the median is reported), after a warm-up;
            also the number of recoveries timed.
        rtt_orders, rtt_batch_orders, client_orders: orders per round-trip sample
            (fsync none, fsync batch, through ``EngineClient``); each is followed by
            its cancel.
        echo_messages: round trips per echo sample.
        pipelined_requests: acked requests per pipelined sample.
        window: requests in flight when pipelined.
        recovery_commands: commands journaled before the SIGKILL.
        loop_requests: requests per in-process sample (``loop_*`` figures).
        journal_root: where the engines' journals go (a temporary directory is made
            in it and deleted); default ``~/.cache/tickplane/bench/wire``.
        command: the command line to record (default: this process's).

    Progress goes to stderr. Raises ``BenchError`` if the engine misbehaves.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not 1 <= window <= 1000:
        # the engine's ROUTER drops replies past its send high-water mark (1000)
        raise ValueError(f"window must be 1..1000, got {window}")
    cpus = os.sched_getaffinity(0)
    base = journal_root or Path.home() / ".cache" / "tickplane" / "bench" / "wire"
    base.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
    )
    b = Bench(repeats, console, progress)
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    try:
        with progress:
            _engine_none(
                b,
                root,
                cpus,
                rtt_orders,
                client_orders,
                echo_messages,
                pipelined_requests,
                window,
            )
            _engine_batch(b, root, cpus, rtt_batch_orders, pipelined_requests, window)
            _recovery(b, root, cpus, recovery_commands, window)
            _in_process(b, root, loop_requests)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    f = b.figures
    result: dict[str, Any] = {name: f.get(name) for name in FIGURES}
    result["rtt_vs_echo"] = _ratio(f.get("engine_rtt_p50_us"), f.get("zmq_echo_p50_us"))
    paired = [r for r in b.details.get("rtt_vs_echo_per_sample", []) if r]
    result["rtt_vs_echo_paired"] = round(median(paired), 2) if paired else None
    result["client_rtt_vs_echo"] = _ratio(f.get("client_rtt_p50_us"), f.get("zmq_echo_p50_us"))
    result["pipelined_vs_echo"] = _ratio(
        f.get("pipelined_orders_per_sec"), f.get("zmq_echo_pipelined_per_sec")
    )
    d = b.details
    d["rtt_vs_libzmq_echo"] = _ratio(f.get("engine_rtt_p50_us"), d.get("zmq_echo_libzmq_p50_us"))
    d["pipelined_vs_libzmq_echo"] = _ratio(
        f.get("pipelined_orders_per_sec"), d.get("zmq_echo_libzmq_pipelined_per_sec")
    )
    result["batch_fsync_rtt_vs_none"] = _ratio(
        f.get("engine_rtt_batch_fsync_p50_us"), f.get("engine_rtt_p50_us")
    )
    for name in (
        "recovery_seconds",
        "recovery_events",
        "recovery_commands",
        "engine_pinned_cpu",
        "client_cpu",
    ):
        result[name] = f.get(name)
    result["targets"] = _targets(result)
    result["flow"] = (
        f"limit buy orders of {QTY} lots at one price, each rests and is then canceled "
        f"(one symbol, one account; the book holds at most {window} orders); engines "
        "with pin_cpu true, loopback TCP, no event subscriber; one request a frame, "
        f"except pipelined_orders_per_sec_batched (the ready requests in wire.Batch "
        f"frames of at most {BATCH_FRAME}, each answered by one wire.Replies frame)"
    )
    result["sizes"] = {
        "rtt_orders": rtt_orders,
        "rtt_batch_orders": rtt_batch_orders,
        "client_orders": client_orders,
        "echo_messages": echo_messages,
        "pipelined_requests": pipelined_requests,
        "window": window,
        "recovery_commands": recovery_commands,
        "loop_requests": loop_requests,
    }
    result["environment"] = _environment(repeats, cpus, base)
    result["command"] = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["details"] = b.details
    if not json_out:
        _print_table(result, Console())
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5, help="samples per figure")
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--recovery-commands", type=int, default=RECOVERY_COMMANDS)
    parser.add_argument(
        "--echo-server", nargs=2, metavar=("ENDPOINT", "CPU"), help=argparse.SUPPRESS
    )
    parser.add_argument("--libzmq", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        return echo_server(args.echo_server[0], int(args.echo_server[1]), args.libzmq)
    result = run(
        args.json, args.repeats, window=args.window, recovery_commands=args.recovery_commands
    )
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
