"""Order book and matching benchmarks behind ``tickplane bench book --json``.

Everything is measured in one run and reported as one JSON object: medians of
``repeats`` timed runs (after one untimed warm-up), each on a new book.

Replay (a real NASDAQ day: GOOG 2012-06-21, LOBSTER level 10, turned once into a
self-consistent L3 stream by ``stream.py``), the same operations through:

- Tickplane's compiled market-data book, ``Book.apply`` over the numpy batch
  (``replay_batch_ops_per_sec``) and a Python loop of ``add/reduce/delete/execute``
  calls (``replay_percall_ops_per_sec``);
- nautilus_trader's L3 ``OrderBook``: ``apply_deltas`` over pre-built ``OrderBookDeltas``
  and a loop of ``apply_delta`` over pre-built ``OrderBookDelta`` objects;
- a plain-Python book (``pybook.py``) driven by the same loop as the per-call figure;
- a C floor (``cfloor.c``, built with ``cc -O3`` into ``~/.cache/tickplane/bench/``).

Every book must end in the same state (the top 10 levels per side: price, size, order
count): a mismatch raises, so a wrong conversion cannot produce a flattering figure.

Matching: a seeded random order flow (60% limit orders near the mid, 25% cancels of live
orders, 15% market or marketable limit orders) through ``MatchingEngine`` one call at a
time, for throughput and per-call latency; the flow is pre-simulated with ``pybook`` so
its cancels target live orders, and the engine's final book is checked against it.
Memory: ``memory_bytes()`` of an engine holding one million resting orders, measured in
a fresh process, with tracemalloc and RSS deltas as cross-checks.

Run: ``tickplane bench book --json``, or ``python tests/benchmarks/bench_book.py --json``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

try:
    from tests.benchmarks import nautilus_peer, pybook
    from tests.benchmarks import stream as replay_stream
    from tests.benchmarks.flow import MATCH_SEED, Flow, make_flow
except ModuleNotFoundError:  # run as a script: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.benchmarks import nautilus_peer, pybook
    from tests.benchmarks import stream as replay_stream
    from tests.benchmarks.flow import MATCH_SEED, Flow, make_flow

from tickplane.engine.lobster import load, sample_paths, shared_paths

__all__ = ["run"]

HERE = Path(__file__).resolve().parent
REPLAY_LEVELS = 10
MATCH_COMMANDS = 200_000
RESTING_ORDERS = 1_000_000
SYMBOL = 1
MID = 100_000  # ticks (memory probe)
Depth = dict[str, list[tuple[int, int, int]]]
Row = tuple[int, int, int, int, int]


class StateMismatch(AssertionError):
    """A book ended in a different state from the reference: its figure would be a lie."""


# Note: no dataclasses here. `tickplane bench book` loads this file with
# importlib.util.spec_from_file_location, and a dataclass in a module that is not in
# sys.modules fails under `from __future__ import annotations`.


# --- helpers ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Collect, then keep the garbage collector out of the timed section (as timeit does)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _depth_of(raw: Any) -> Depth:
    """Normalise a ``depth()``-like mapping to ``{"bids"/"asks": [(price, qty, orders)]}``."""
    out: Depth = {}
    for side in ("bids", "asks"):
        out[side] = [(int(lv[0]), int(lv[1]), int(lv[2])) for lv in raw[side]]
    return out


def _check_same(name: str, got: Depth, want: Depth) -> None:
    if got != want:
        raise StateMismatch(
            f"{name} ended in a different book from the reference (plain-Python book):\n"
            f"  got  {got}\n  want {want}"
        )


class Timed:
    """Repeated timings of one figure."""

    def __init__(self, seconds: list[float], units: int) -> None:
        self.seconds = seconds
        self.units = units

    @property
    def per_sec(self) -> float:
        return self.units / _median(self.seconds)

    def all_per_sec(self) -> list[float]:
        return [round(self.units / s) for s in self.seconds]


class Bench:
    """Runs the sections, shows progress on stderr, collects figures and skip reasons."""

    def __init__(self, repeats: int, console: Console, progress: Progress) -> None:
        self.repeats = repeats
        self.console = console
        self.progress = progress
        self.figures: dict[str, Any] = {}
        self.details: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}

    def timed(self, label: str, units: int, once: Callable[[], float]) -> Timed:
        """Warm up once, then time ``once`` (which returns seconds) ``repeats`` times."""
        task = self.progress.add_task(label, total=self.repeats + 1)
        once()
        self.progress.advance(task)
        seconds = []
        for _ in range(self.repeats):
            with _quiet_gc():
                seconds.append(once())
            self.progress.advance(task)
        return Timed(seconds, units)

    def skip(self, figures: list[str], reason: str) -> None:
        for name in figures:
            self.figures[name] = None
            self.skipped[name] = reason
        self.console.print(f"[yellow]skipped {', '.join(figures)}:[/] {reason}")


# --- replay -------------------------------------------------------------------------------


def _percall(book: Any, rows: list[Row]) -> float:
    """Apply the stream through per-call methods; returns the seconds it took."""
    add, reduce, delete, execute = book.add, book.reduce, book.delete, book.execute
    t0 = time.perf_counter()
    for op, side, oid, price, qty in rows:
        if op == 1:
            add(oid, side, price, qty)
        elif op == 3:
            delete(oid)
        elif op == 2:
            reduce(oid, qty)
        else:
            execute(oid, qty)
    return time.perf_counter() - t0


def _replay_python(b: Bench, rows: list[Row]) -> Depth:
    holder: list[pybook.PyBook] = []

    def once() -> float:
        holder[:] = [pybook.PyBook()]
        return _percall(holder[0], rows)

    t = b.timed("plain Python book", len(rows), once)
    b.figures["python_ops_per_sec"] = round(t.per_sec)
    b.details["python_ops_per_sec_all"] = t.all_per_sec()
    reference = holder[0].depth(10)
    b.details["final_book"] = {"live_orders": len(holder[0]), **reference}
    return reference


def _replay_tickplane(b: Bench, ops: npt.NDArray[np.void], rows: list[Row], ref: Depth) -> None:
    names = ["replay_batch_ops_per_sec", "replay_percall_ops_per_sec"]
    try:
        from tickplane.engine.book import MD_OP_DTYPE, Book
    except ImportError as exc:
        b.skip(names, f"tickplane.engine.book is not built ({exc}); run `make install`")
        return
    if MD_OP_DTYPE != replay_stream.MD_OP_DTYPE:
        raise StateMismatch(f"MD_OP_DTYPE is {MD_OP_DTYPE}, the stream uses another layout")
    holder: list[Any] = []

    def batch() -> float:
        book = Book()
        holder[:] = [book]
        t0 = time.perf_counter()
        applied = book.apply(ops)
        dt = time.perf_counter() - t0
        if applied != len(ops):
            raise StateMismatch(f"Book.apply applied {applied} of {len(ops)} operations")
        return dt

    t = b.timed("tickplane Book.apply (batch)", len(rows), batch)
    _check_same("tickplane Book (batch)", _depth_of(holder[0].depth(10)), ref)
    b.figures[names[0]] = round(t.per_sec)
    b.details["replay_batch_ops_per_sec_all"] = t.all_per_sec()

    def percall() -> float:
        book = Book()
        holder[:] = [book]
        return _percall(book, rows)

    t = b.timed("tickplane Book per call", len(rows), percall)
    _check_same("tickplane Book (per call)", _depth_of(holder[0].depth(10)), ref)
    b.figures[names[1]] = round(t.per_sec)
    b.details["replay_percall_ops_per_sec_all"] = t.all_per_sec()


def _replay_nautilus(
    b: Bench, stream: replay_stream.ReplayStream, ts_ns: npt.NDArray[np.int64], ref: Depth
) -> None:
    names = ["nautilus_batch_ops_per_sec", "nautilus_percall_ops_per_sec"]
    version = nautilus_peer.available()
    if version is None:
        b.skip(names, "nautilus_trader is not installed (pip install 'tickplane[bench]')")
        return
    b.details["nautilus_trader_version"] = version
    task = b.progress.add_task("nautilus: building OrderBookDelta objects", total=None)
    data = nautilus_peer.build(stream, ts_ns)
    b.progress.update(task, total=1, completed=1)
    for name, fn, label in (
        (names[0], nautilus_peer.run_batch, "nautilus apply_deltas (batch)"),
        (names[1], nautilus_peer.run_percall, "nautilus apply_delta per call"),
    ):
        _nautilus_figure(b, name, label, fn, data, ref)


def _nautilus_figure(
    b: Bench,
    name: str,
    label: str,
    fn: Callable[[nautilus_peer.NautilusDeltas], tuple[float, Any]],
    data: nautilus_peer.NautilusDeltas,
    ref: Depth,
) -> None:
    holder: list[Any] = []

    def once() -> float:
        seconds, book = fn(data)
        holder[:] = [book]
        return seconds

    t = b.timed(label, len(data.deltas), once)
    _check_same(label, nautilus_peer.top(holder[0], 10), ref)
    b.figures[name] = round(t.per_sec)
    b.details[f"{name}_all"] = t.all_per_sec()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "tickplane" / "bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build_cfloor() -> Path:
    """Compile cfloor.c with ``cc -O3`` (once per source/compiler) into the cache."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise FileNotFoundError("no C compiler (cc) on PATH")
    source = HERE / "cfloor.c"
    flags = ["-O3", "-std=c11"]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha1(source.read_bytes() + version.encode() + " ".join(flags).encode())
    binary = _cache_dir() / f"cfloor-{key.hexdigest()[:12]}"
    if not binary.exists():
        tmp = binary.with_suffix(".tmp")
        subprocess.run([cc, *flags, "-o", str(tmp), str(source)], check=True)
        tmp.replace(binary)
    return binary


def _replay_cfloor(b: Bench, ops: npt.NDArray[np.void], ref: Depth) -> None:
    name = "c_floor_ops_per_sec"
    try:
        binary = _build_cfloor()
    except (OSError, subprocess.CalledProcessError) as exc:
        b.skip([name], f"could not build the C floor: {exc}")
        return
    ops_file = _cache_dir() / f"ops-{os.getpid()}.bin"
    try:
        with ops_file.open("wb") as out:
            out.write(b"TPOPS01\0")
            out.write(np.uint64(len(ops)).tobytes())
            out.write(np.ascontiguousarray(ops).tobytes())
        task = b.progress.add_task("C floor (cc -O3)", total=1)
        done = subprocess.run(
            [str(binary), str(ops_file), str(b.repeats)], capture_output=True, text=True, check=True
        )
        b.progress.advance(task)
    finally:
        ops_file.unlink(missing_ok=True)
    result = json.loads(done.stdout)
    _check_same("C floor", _depth_of(result), ref)
    b.figures[name] = round(result["ops_per_sec"])
    b.details["c_floor_ops_per_sec_all"] = [round(v) for v in result["all_ops_per_sec"]]
    b.details["c_floor_binary"] = str(binary)


def _replay(b: Bench) -> None:
    full = shared_paths()
    path = sample_paths()[REPLAY_LEVELS]
    if full is None:
        b.console.print(
            "[yellow]the full LOBSTER sample is not beside this checkout: replaying the "
            "3,000-row excerpt, whose figures mean little[/]"
        )
    task = b.progress.add_task(f"loading {path.name}", total=None)
    day = load(zip_path=path)
    stream = replay_stream.build(day)
    b.progress.update(task, total=1, completed=1)
    ops = stream.ops
    rows: list[Row] = list(
        zip(
            ops["op"].tolist(),
            ops["side"].tolist(),
            ops["id"].tolist(),
            ops["price"].tolist(),
            ops["qty"].tolist(),
            strict=True,
        )
    )
    ts_ns = np.rint(day.messages["time"][stream.rows] * 1e9).astype(np.int64)
    b.details["replay_stream"] = {
        "dataset": path.name,
        "full_day": full is not None,
        "levels": day.levels,
        "messages": len(day),
        **stream.summary(),
    }
    reference = _replay_python(b, rows)
    _replay_tickplane(b, ops, rows, reference)
    _replay_nautilus(b, stream, ts_ns, reference)
    _replay_cfloor(b, ops, reference)


# --- matching -----------------------------------------------------------------------------


def _timer_overhead_ns(samples: int = 200_000) -> int:
    """Median cost of one ``perf_counter_ns`` pair, as it appears in the latency loop."""
    pc = time.perf_counter_ns
    deltas = [0] * samples
    for i in range(samples):
        t0 = pc()
        t1 = pc()
        deltas[i] = t1 - t0
    return int(statistics.median(deltas))


def _run_flow(eng: Any, f: Flow) -> float:
    submit, cancel = eng.submit, eng.cancel
    kind, oid, acct, side, otype = f.kind, f.oid, f.account, f.side, f.otype
    qty, price, tif, ts = f.qty, f.price, f.tif, f.ts
    t0 = time.perf_counter()
    for i in range(len(kind)):
        if kind[i]:
            cancel(oid[i], ts[i])
        else:
            submit(
                oid[i], acct[i], SYMBOL, side[i], otype[i], qty[i], price[i], 0, tif[i], 0, ts[i]
            )
    return time.perf_counter() - t0


def _run_flow_latency(eng: Any, f: Flow) -> list[int]:
    submit, cancel, pc = eng.submit, eng.cancel, time.perf_counter_ns
    kind, oid, acct, side, otype = f.kind, f.oid, f.account, f.side, f.otype
    qty, price, tif, ts = f.qty, f.price, f.tif, f.ts
    lat = [0] * len(kind)
    for i in range(len(kind)):
        if kind[i]:
            t0 = pc()
            cancel(oid[i], ts[i])
            t1 = pc()
        else:
            t0 = pc()
            submit(
                oid[i], acct[i], SYMBOL, side[i], otype[i], qty[i], price[i], 0, tif[i], 0, ts[i]
            )
            t1 = pc()
        lat[i] = t1 - t0
    return lat


def _commands(module: Any, f: Flow) -> npt.NDArray[np.void]:
    cmds = np.zeros(len(f), dtype=module.COMMAND_DTYPE)
    kind = np.asarray(f.kind)
    cmds["op"] = np.where(kind == 1, int(module.Op.CANCEL), int(module.Op.NEW))
    for name, values in (
        ("id", f.oid),
        ("account", f.account),
        ("side", f.side),
        ("type", f.otype),
        ("qty", f.qty),
        ("price", f.price),
        ("tif", f.tif),
        ("ts", f.ts),
    ):
        cmds[name] = values
    cmds["symbol"] = SYMBOL
    return cmds


def _matching(b: Bench, n: int) -> None:
    names = ["match_orders_per_sec", "match_p50_ns", "match_p99_ns", "timer_overhead_ns"]
    try:
        from tickplane.engine import matching
    except ImportError as exc:
        b.skip(names, f"tickplane.engine.matching is not built ({exc}); run `make install`")
        return
    task = b.progress.add_task(f"generating {n:,} orders (seeded)", total=None)
    f = make_flow(n)
    b.progress.update(task, total=1, completed=1)
    holder: list[Any] = []

    def check(label: str) -> None:
        eng = holder[0]
        _check_same(label, _depth_of(eng.depth(SYMBOL, 10)), f.final)
        if len(eng) != f.live_orders:
            raise StateMismatch(f"{label}: {len(eng)} live orders, expected {f.live_orders}")

    def once() -> float:
        holder[:] = [matching.MatchingEngine()]
        return _run_flow(holder[0], f)

    t = b.timed("matching: per-call throughput", len(f), once)
    check("MatchingEngine (per call)")
    b.figures["match_orders_per_sec"] = round(t.per_sec)
    b.details["match_orders_per_sec_all"] = t.all_per_sec()

    overhead = _timer_overhead_ns()
    p50s: list[float] = []
    p99s: list[float] = []
    task = b.progress.add_task("matching: per-call latency", total=b.repeats)
    for _ in range(b.repeats):
        holder[:] = [matching.MatchingEngine()]
        with _quiet_gc():
            lat = np.asarray(_run_flow_latency(holder[0], f), dtype=np.int64) - overhead
        np.maximum(lat, 0, out=lat)
        p50s.append(float(np.percentile(lat, 50)))
        p99s.append(float(np.percentile(lat, 99)))
        b.progress.advance(task)
    check("MatchingEngine (latency run)")
    b.figures["match_p50_ns"] = round(_median(p50s))
    b.figures["match_p99_ns"] = round(_median(p99s))
    b.figures["timer_overhead_ns"] = overhead
    b.details["match_flow"] = {
        "commands": len(f),
        "submits": len(f) - sum(f.kind),
        "cancels": sum(f.kind),
        "trades_expected": f.trades,
        "live_orders_at_end": f.live_orders,
        "seed": MATCH_SEED,
    }

    if hasattr(matching, "COMMAND_DTYPE") and hasattr(matching, "Op"):
        cmds = _commands(matching, f)

        def batch() -> float:
            holder[:] = [matching.MatchingEngine()]
            t0 = time.perf_counter()
            holder[0].process(cmds)
            return time.perf_counter() - t0

        t = b.timed("matching: batch process()", len(f), batch)
        check("MatchingEngine (batch)")
        b.figures["match_batch_orders_per_sec"] = round(t.per_sec)


# --- memory -------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_probe(n: int) -> dict[str, Any]:
    """Rest ``n`` non-crossing orders in a new engine; report what they cost.

    Meant to run in a fresh process (``--memory-probe N``) so RSS is not blurred by the
    other benchmarks' allocations.
    """
    from tickplane.engine.matching import MatchingEngine

    gc.collect()
    eng = MatchingEngine()
    rss0 = _rss_bytes()
    tracemalloc.start()
    mem0 = eng.memory_bytes()
    submit = eng.submit
    for i in range(n):
        side = i & 1
        level = (i >> 1) % 1000
        price = MID - 1 - level if side == 0 else MID + 1 + level
        submit(i + 1, 1 + (i % 16), SYMBOL, side, 0, 100, price, 0, 0, 0, i)
    mem1 = eng.memory_bytes()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = _rss_bytes()
    if len(eng) != n:
        raise StateMismatch(f"{len(eng)} orders rest after {n} non-crossing submits")
    return {
        "resting_orders": n,
        "bytes_per_resting_order": round((mem1 - mem0) / n, 1),
        "memory_bytes_before": mem0,
        "memory_bytes_after": mem1,
        "tracemalloc_bytes_per_order": round(traced / n, 1),
        "rss_bytes_per_order": round((rss1 - rss0) / n, 1),
    }


def _memory(b: Bench, n: int) -> None:
    name = "bytes_per_resting_order"
    try:
        import tickplane.engine.matching  # noqa: F401
    except ImportError as exc:
        b.skip([name], f"tickplane.engine.matching is not built ({exc})")
        return
    task = b.progress.add_task(f"memory: {n:,} resting orders (fresh process)", total=1)
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(n)],
        capture_output=True,
        text=True,
    )
    b.progress.advance(task)
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe failed:\n{done.stderr}")
    probe = json.loads(done.stdout)
    b.figures[name] = probe.pop(name)
    b.figures["rss_bytes_per_resting_order"] = probe["rss_bytes_per_order"]
    b.figures["tracemalloc_bytes_per_resting_order"] = probe["tracemalloc_bytes_per_order"]
    b.details["memory"] = probe


# --- the report ---------------------------------------------------------------------------


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if a and b else None


def _environment(repeats: int) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "numpy": np.__version__,
        "repeats": repeats,
    }


def _print_table(result: dict[str, Any], console: Console) -> None:
    table = Table(title="Tickplane book benchmarks")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, (int, float)) or value is None:
            shown = "skipped" if value is None else f"{value:,}"
            table.add_row(key, shown)
    console.print(table)


def run(
    json_out: bool = True,
    repeats: int = 5,
    *,
    match_commands: int = MATCH_COMMANDS,
    resting_orders: int = RESTING_ORDERS,
    command: str | None = None,
) -> dict[str, Any]:
    """Run every benchmark once and return the result (one JSON-ready dict).

    Args:
        json_out: the caller prints the result as JSON: print nothing on stdout (else
            print a table of the figures).
        repeats: timed repetitions per figure (the median is reported), after a warm-up.
        match_commands: commands in the random matching flow.
        resting_orders: resting orders for the memory figure.
        command: the command line to record (default: this process's).

    Progress goes to stderr. Figures that cannot run here are ``None``, with the reason
    under ``skipped``. Raises ``StateMismatch`` if a book ends in the wrong state.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    b = Bench(repeats, console, progress)
    started = time.perf_counter()
    with progress:
        _replay(b)
        _matching(b, match_commands)
        _memory(b, resting_orders)
    f = b.figures
    result: dict[str, Any] = {
        "replay_batch_ops_per_sec": f.get("replay_batch_ops_per_sec"),
        "replay_percall_ops_per_sec": f.get("replay_percall_ops_per_sec"),
        "nautilus_batch_ops_per_sec": f.get("nautilus_batch_ops_per_sec"),
        "nautilus_percall_ops_per_sec": f.get("nautilus_percall_ops_per_sec"),
        "python_ops_per_sec": f.get("python_ops_per_sec"),
        "c_floor_ops_per_sec": f.get("c_floor_ops_per_sec"),
        "match_orders_per_sec": f.get("match_orders_per_sec"),
        "match_batch_orders_per_sec": f.get("match_batch_orders_per_sec"),
        "match_p50_ns": f.get("match_p50_ns"),
        "match_p99_ns": f.get("match_p99_ns"),
        "timer_overhead_ns": f.get("timer_overhead_ns"),
        "bytes_per_resting_order": f.get("bytes_per_resting_order"),
        "rss_bytes_per_resting_order": f.get("rss_bytes_per_resting_order"),
        "tracemalloc_bytes_per_resting_order": f.get("tracemalloc_bytes_per_resting_order"),
        "batch_vs_nautilus": _ratio(
            f.get("replay_batch_ops_per_sec"), f.get("nautilus_batch_ops_per_sec")
        ),
        "percall_vs_nautilus": _ratio(
            f.get("replay_percall_ops_per_sec"), f.get("nautilus_percall_ops_per_sec")
        ),
        "batch_vs_python": _ratio(f.get("replay_batch_ops_per_sec"), f.get("python_ops_per_sec")),
        "batch_vs_c_floor": _ratio(f.get("replay_batch_ops_per_sec"), f.get("c_floor_ops_per_sec")),
        "environment": _environment(repeats),
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seconds": round(time.perf_counter() - started, 1),
        "skipped": b.skipped,
        "details": b.details,
    }
    if not json_out:
        _print_table(result, Console())
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--match-commands", type=int, default=MATCH_COMMANDS)
    parser.add_argument("--resting-orders", type=int, default=RESTING_ORDERS)
    parser.add_argument("--memory-probe", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return 0
    result = run(
        args.json,
        args.repeats,
        match_commands=args.match_commands,
        resting_orders=args.resting_orders,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
