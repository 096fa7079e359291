"""The gateway's benchmarks, behind ``tickplane bench gateway --json``.

One run starts a real ``tickplane engine`` (``fsync: none``) and the gateway under
uvicorn (``workers`` processes, keys in SQLite), both on loopback, and drives them from
this process with keep-alive clients. Figures are medians over ``repeats`` samples of
``seconds`` each, after one untimed warm-up sample:

- ``http_orders_per_sec``, ``http_order_p50_ms``, ``http_order_p99_ms``: ``connections``
  keep-alive HTTP/1.1 clients, each with one request in flight, ``POST /api/v1/orders``
  (an IOC limit buy that cannot fill: the engine accepts and cancels it, so the book
  stays empty) through auth, validation, the engine and the projection (read-your-
  writes) and back. Latency is per request, send to last byte of the answer.
- ``bare_http_per_sec``: the baseline, the same clients against a bare FastAPI app
  (``bare_gateway.py``) in
  the same uvicorn setup with the same auth (the same key store and cache) and the same
  ``OrderCreate`` validation, answering a 201 without an engine.
  ``http_vs_bare`` = ``http_orders_per_sec / bare_http_per_sec``.
- ``ws_orders_per_sec``: ``ws_connections`` clients on ``/api/v1/ws/orders``, each with
  its own key and account, each keeping ``ws_in_flight`` frames of ``ws_batch`` submit
  actions in flight (a frame is sent again as soon as its answers are in; the gateway
  answers frames in any order); every order is acked by the engine, and each client also
  receives its account's order updates (two per order). The clients ask for no
  permessage-deflate, as a latency-minded client would not (it cost more CPU at both
  ends than the order itself). Batched frames are the documented protocol
  (api/README.md, "WebSockets"), so this is the figure for a client that batches.
- ``ws_single_orders_per_sec``: the same clients, each frame one submit action (not an
  array), ``ws_single_in_flight`` frames in flight per client: the figure for a client
  that sends one order per message.
- ``ws_deep_orders_per_sec``: the batched clients with ``ws_deep_in_flight`` frames in
  flight each instead of ``ws_in_flight``: a client that pipelines deeper. Beside the
  main figure, not in its place: it shows how much of the rate is bound by the
  pipeline's depth (deeper, the engine and the gateway each work on bigger batches).
- ``ws_cpu_us_per_order``, ``ws_single_cpu_us_per_order``: the CPU time (user + system,
  from /proc) the engine, the gateway (all its workers) and the load generator spent per
  order acked in those samples, and their total (medians). Unlike the rates, these
  hold up when other work shares the machine; ``2 cores / total`` is the rate those
  three processes could reach with the machine to themselves, if they kept both cores
  busy. ``load_average`` is the 1-minute load at the end of the run.

Both gateways run under uvicorn with ``workers`` processes (2 by default: the gateway's
read-your-writes holds per process, and per keep-alive connection, which one process
serves; the benchmark only writes, and each answer waits for its own process's
projection).

The load generator shares the machine with the gateway and the engine (2 cores here):
its own CPU time is part of what limits the figures. If
``tests/benchmarks/bench_recorder.py`` exists, its ``run()`` figures join the output.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

try:
    from tests.ports import free_ports
except ModuleNotFoundError:  # run as a script: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.ports import free_ports

__all__ = ["BenchError", "run"]

HERE = Path(__file__).resolve().parent
SECONDS = 3.0
CONNECTIONS = 32
WORKERS = 2
WS_CONNECTIONS = 4
WS_BATCH = 250
WS_IN_FLIGHT = 4
WS_SINGLE_IN_FLIGHT = 64  # one-order frames each client keeps in flight
WS_DEEP_IN_FLIGHT = 16  # frames of WS_BATCH for ws_deep_orders_per_sec
READY_TIMEOUT = 60.0
SYMBOL = "GOOG"
ORDER = {
    "symbol": SYMBOL,
    "side": "buy",
    "type": "limit",
    "qty": 1,
    "limit_price": 1,
    "time_in_force": "ioc",
}
TARGETS = {"http_orders_per_sec": 8_000, "ws_orders_per_sec": 50_000}


class BenchError(RuntimeError):
    """The system under test misbehaved (a refused order, a process that died)."""


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{url}: the process exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)  # another process's readiness: nothing to await
    raise BenchError(f"{url} not ready after {READY_TIMEOUT}s:\n{log.read_text()[-3000:]}")


class Processes:
    """The engine and the two gateways (real and bare), started and stopped together."""

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self.workers = workers
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        port = free_ports(5)  # a run, so that no two of the five are the same port
        self.engine_http = port
        self.order_entry = f"tcp://127.0.0.1:{port + 1}"
        self.events = f"tcp://127.0.0.1:{port + 2}"
        self.gateway_port = port + 3
        self.bare_port = port + 4

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", **env},
            cwd=self.root,
        )
        self.procs.append((proc, log))
        return proc

    def start(self) -> None:
        cfg = {
            "name": "bench-gateway",
            "order_entry": self.order_entry,
            "events": self.events,
            "http_port": self.engine_http,
            "journal_dir": str(self.root / "journal"),
            "symbols": [{"name": SYMBOL}],
            "pin_cpu": False,
            "fsync": "none",
        }
        (self.root / "engine.json").write_text(json.dumps(cfg))
        engine = self._spawn(
            "engine",
            [sys.executable, "-m", "tickplane.cli.main", "engine", "--config", "engine.json"],
            {},
        )
        _wait_http(f"http://127.0.0.1:{self.engine_http}/readyz", engine, self.root / "engine.log")
        env = {
            "TICKPLANE_GATEWAY_ENGINE_ORDER_ENTRY": self.order_entry,
            "TICKPLANE_GATEWAY_ENGINE_EVENTS": self.events,
            "TICKPLANE_GATEWAY_DATA_DIR": str(self.root),
            "TICKPLANE_GATEWAY_RATE_LIMIT_PER_SECOND": "0",
            "TICKPLANE_GATEWAY_METRICS_PORT": "0",
            "TICKPLANE_GATEWAY_WS_QUEUE_SIZE": "100000",
        }
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--no-access-log"]
        common = ["--log-level", "warning", "--workers", str(self.workers), "--host", "127.0.0.1"]
        self.engine_pid = engine.pid
        gw = self._spawn(
            "gateway",
            [*uvicorn, "tickplane.api.main:create_app", *common, "--port", str(self.gateway_port)],
            env,
        )
        bare = self._spawn(
            "bare",
            [*uvicorn, "bare_gateway:create_app", *common, "--port", str(self.bare_port)],
            {**env, "PYTHONPATH": str(HERE)},
        )
        self.gateway_pid = gw.pid
        _wait_http(
            f"http://127.0.0.1:{self.gateway_port}/api/v1/ready", gw, self.root / "gateway.log"
        )
        _wait_http(f"http://127.0.0.1:{self.bare_port}/health", bare, self.root / "bare.log")

    def stop(self) -> None:
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc, log in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


# -- load generators ---------------------------------------------------------------------------


async def _http_client(
    port: int, request: bytes, until: float, latencies: list[float], expect: bytes
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = 0
    clock = time.perf_counter
    try:
        while clock() < until:
            t0 = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"content-length:")
            n = int(head[at + 15 : head.index(b"\r\n", at)])
            body = await reader.readexactly(n)
            if not head.startswith(expect):
                raise BenchError(f"unexpected answer: {head[:40]!r} {body[:300]!r}")
            latencies.append(clock() - t0)
            if b'"id"' not in body:
                raise BenchError(f"unexpected body: {body[:200]!r}")
            done += 1
    finally:
        writer.close()
    return done


def _request(port: int, key_id: str, secret: str) -> bytes:
    body = json.dumps(ORDER).encode()
    return (
        f"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"APCA-API-KEY-ID: {key_id}\r\nAPCA-API-SECRET-KEY: {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def http_sample(
    port: int, key: tuple[str, str], connections: int, seconds: float
) -> tuple[float, list[float]]:
    """Orders per second and per-request latencies (s) of one timed sample."""
    request = _request(port, *key)
    latencies: list[float] = []
    start = time.perf_counter()
    until = start + seconds
    counts = await asyncio.gather(
        *(
            _http_client(port, request, until, latencies, b"HTTP/1.1 201")
            for _ in range(connections)
        )
    )
    return sum(counts) / (time.perf_counter() - start), latencies


class _Answer(msgspec.Struct):
    """What the load generator reads of each message the gateway sends: its type and
    ref (msgspec skips the rest, the order updates' bodies, without building them)."""

    type: str
    ref: int | None = None


_answers = msgspec.json.Decoder(list[_Answer])


async def ws_sample(
    port: int,
    keys: list[tuple[str, str]],
    batch: int,
    seconds: float,
    in_flight: int = 2,
) -> float:
    """Orders acked per second over native WebSockets in one timed sample: one client per
    key in `keys`, each keeping `in_flight` frames of `batch` submits in flight (`batch`
    1: a frame per order, each a single action rather than an array)."""
    import websockets

    url = f"ws://127.0.0.1:{port}/api/v1/ws/orders"
    if batch == 1:
        frame = json.dumps({"action": "submit", "ref": 0, **ORDER})
    else:
        frame = json.dumps([{"action": "submit", "ref": i, **ORDER} for i in range(batch)])

    async def client(key: tuple[str, str]) -> int:
        headers = {"APCA-API-KEY-ID": key[0], "APCA-API-SECRET-KEY": key[1]}
        done = 0
        # no permessage-deflate: a latency-minded client does not ask for it (it costs
        # both ends more CPU than the order itself on loopback)
        async with websockets.connect(
            url, additional_headers=headers, max_size=2**24, compression=None
        ) as ws:
            await ws.recv()  # authenticated
            # frames in flight: the gateway works on some while the answers of the others
            # travel; each frame is answered in one frame, frames in any order
            sent = 0
            while sent < in_flight:
                await ws.send(frame)
                sent += 1
            while sent:
                data = await ws.recv()
                for m in _answers.decode(data):
                    if m.type == "ack":
                        if m.ref == batch - 1:  # a frame's answers come together
                            done += batch
                            sent -= 1
                            if time.perf_counter() < until:
                                await ws.send(frame)
                                sent += 1
                    elif m.type == "error":
                        raise BenchError(f"refused: {data[:500]!r}")
        return done

    start = time.perf_counter()
    until = start + seconds
    counts = await asyncio.gather(*(client(k) for k in keys))
    return sum(counts) / (time.perf_counter() - start)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children still running (Linux /proc;
    0 for what is gone)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return total
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total + sum(_cpu_seconds(c) for c in children)


def _cpu_now(procs: Processes) -> dict[str, float]:
    """CPU seconds so far of the engine, the gateway (its workers included) and this
    process, the load generator."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "engine": _cpu_seconds(procs.engine_pid),
        "gateway": _cpu_seconds(procs.gateway_pid),
        "load_generator": me.ru_utime + me.ru_stime,
    }


def _cpu_per_order(procs: Processes, sample: Callable[[], float]) -> tuple[float, dict[str, float]]:
    """Run one timed sample (`sample()` gives orders/s); its rate and the CPU time each
    process spent per order acked (us), connection setup included. CPU time per order
    holds up on a machine busy with other work, which throughput does not."""
    before = _cpu_now(procs)
    start = time.perf_counter()
    rate = sample()
    orders = rate * (time.perf_counter() - start)
    after = _cpu_now(procs)
    per = {k: (after[k] - before[k]) / orders * 1e6 if orders else 0.0 for k in before}
    per["total"] = sum(per.values())
    return rate, per


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _make_keys(root: Path, accounts: list[str]) -> list[tuple[str, str]]:
    from tickplane.api import keys

    async def make() -> list[tuple[str, str]]:
        store = keys.SqliteKeyStore(root / keys.SQLITE_NAME)
        try:
            made = [await store.create(account) for account in accounts]
            return [(new.key.key_id, new.secret) for new in made]
        finally:
            await store.close()

    return asyncio.run(make())


def _recorder(json_out: bool, repeats: int) -> dict[str, Any]:
    path = HERE / "bench_recorder.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location("tickplane_bench_recorder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out: dict[str, Any] = module.run(json_out=True, repeats=repeats)
    return out


def run(
    json_out: bool = True,
    repeats: int = 3,
    *,
    seconds: float = SECONDS,
    connections: int = CONNECTIONS,
    workers: int = WORKERS,
    ws_connections: int = WS_CONNECTIONS,
    ws_batch: int = WS_BATCH,
    ws_in_flight: int = WS_IN_FLIGHT,
    ws_single_in_flight: int = WS_SINGLE_IN_FLIGHT,
    ws_deep_in_flight: int = WS_DEEP_IN_FLIGHT,
    recorder: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the gateway benchmarks once; return one JSON-ready dict (see the module
    docstring). Progress goes to stderr; ``json_out`` False also prints a table."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    console = Console(stderr=True)
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tickplane-bench-gateway-"))
    procs = Processes(root, workers)
    samples: dict[str, list[float]] = {
        "http": [],
        "p50": [],
        "p99": [],
        "bare": [],
        "ws": [],
        "ws_single": [],
        "ws_deep": [],
    }
    cpu: dict[str, dict[str, list[float]]] = {"ws": {}, "ws_single": {}}
    try:
        key, *ws_keys = _make_keys(
            root, ["bench", *(f"bench-ws-{i}" for i in range(ws_connections))]
        )
        procs.start()
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("gateway samples", total=5 * (repeats + 1))
            for i in range(repeats + 1):  # the first of each is a warm-up
                rate, lat = asyncio.run(http_sample(procs.gateway_port, key, connections, seconds))
                progress.advance(task)
                bare, _ = asyncio.run(http_sample(procs.bare_port, key, connections, seconds))
                progress.advance(task)
                ws, ws_cpu = _cpu_per_order(
                    procs,
                    lambda: asyncio.run(
                        ws_sample(procs.gateway_port, ws_keys, ws_batch, seconds, ws_in_flight)
                    ),
                )
                progress.advance(task)
                ws_single, ws_single_cpu = _cpu_per_order(
                    procs,
                    lambda: asyncio.run(
                        ws_sample(procs.gateway_port, ws_keys, 1, seconds, ws_single_in_flight)
                    ),
                )
                progress.advance(task)
                ws_deep = asyncio.run(
                    ws_sample(procs.gateway_port, ws_keys, ws_batch, seconds, ws_deep_in_flight)
                )
                progress.advance(task)
                if i == 0:
                    continue
                samples["http"].append(rate)
                samples["p50"].append(_pct(lat, 0.50) * 1e3)
                samples["p99"].append(_pct(lat, 0.99) * 1e3)
                samples["bare"].append(bare)
                samples["ws"].append(ws)
                samples["ws_single"].append(ws_single)
                samples["ws_deep"].append(ws_deep)
                for name, value in ws_cpu.items():
                    cpu["ws"].setdefault(name, []).append(value)
                for name, value in ws_single_cpu.items():
                    cpu["ws_single"].setdefault(name, []).append(value)
    finally:
        procs.stop()
        shutil.rmtree(root, ignore_errors=True)
    http = _median(samples["http"])
    bare = _median(samples["bare"])
    result: dict[str, Any] = {
        "http_orders_per_sec": round(http),
        "http_order_p50_ms": round(_median(samples["p50"]), 3),
        "http_order_p99_ms": round(_median(samples["p99"]), 3),
        "bare_http_per_sec": round(bare),
        "http_vs_bare": round(http / bare, 3) if bare else None,
        "ws_orders_per_sec": round(_median(samples["ws"])),
        "ws_single_orders_per_sec": round(_median(samples["ws_single"])),
        "ws_deep_orders_per_sec": round(_median(samples["ws_deep"])),
        "ws_cpu_us_per_order": {k: round(_median(v), 1) for k, v in cpu["ws"].items()},
        "ws_single_cpu_us_per_order": {
            k: round(_median(v), 1) for k, v in cpu["ws_single"].items()
        },
        "load_average": round(os.getloadavg()[0], 2),
    }
    result["targets"] = {
        name: {"target": target, "met": result[name] >= target} for name, target in TARGETS.items()
    }
    result["setup"] = {
        "seconds_per_sample": seconds,
        "repeats": repeats,
        "http_connections": connections,
        "uvicorn_workers": workers,
        "ws_connections": ws_connections,
        "ws_batch": ws_batch,
        "ws_frames_in_flight": ws_in_flight,
        "ws_single_frames_in_flight": ws_single_in_flight,
        "ws_deep_frames_in_flight": ws_deep_in_flight,
        "order": ORDER,
        "cpus": len(os.sched_getaffinity(0)),
        "engine": "fsync none, pin_cpu false, loopback TCP",
    }
    result["samples"] = {k: [round(v, 3) for v in vs] for k, vs in samples.items()}
    result["command"] = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    if recorder:
        result.update(_recorder(json_out, repeats))
    result["seconds"] = round(time.perf_counter() - started, 1)
    if not json_out:
        out = Console()
        for name in (
            "http_orders_per_sec",
            "http_order_p50_ms",
            "http_order_p99_ms",
            "bare_http_per_sec",
            "http_vs_bare",
            "ws_orders_per_sec",
            "ws_single_orders_per_sec",
            "ws_deep_orders_per_sec",
        ):
            out.print(f"{name:24} {result[name]}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``tickplane bench gateway`` is the usual one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=3, help="samples per figure")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="seconds per sample")
    parser.add_argument("--workers", type=int, default=WORKERS, help="uvicorn workers")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args(argv)
    result = run(
        json_out=args.json,
        repeats=args.repeats,
        seconds=args.seconds,
        workers=args.workers,
        connections=args.connections,
    )
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
