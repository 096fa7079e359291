"""Order book and matching benchmarks behind ``tickplane bench book --json``.

Everything is measured in one run and reported as one JSON object: medians of
``repeats`` timed samples (after one untimed warm-up sample). A sample is as many runs,
each on a new book, as it takes to last ``MIN_SAMPLE_SECONDS`` (one run of the replay
stream through a compiled book takes milliseconds); building the books is not timed.

Replay (a real NASDAQ day: GOOG 2012-06-21, LOBSTER level 10, turned once by
``stream.py`` into an L3 stream that follows the real book: the file's messages plus
the deletes and adds that keep its top-10 window, so that after each message the book
equals that message's orderbook row), the same operations through:

- Tickplane's compiled market-data book, ``Book.apply`` over the numpy batch
  (``replay_batch_ops_per_sec``) and a Python loop of ``add/reduce/delete/execute``
  calls (``replay_percall_ops_per_sec``);
- nautilus_trader's L3 ``OrderBook``: ``apply_deltas`` over pre-built ``OrderBookDeltas``
  (``nautilus_batch_ops_per_sec``) and the same Python loop as ours, dispatching to
  ``add/update/delete`` with pre-built ``BookOrder`` objects
  (``nautilus_percall_ops_per_sec``); a loop of ``apply_delta`` is a detail;
- a plain-Python book (``pybook.py``) driven by the same loop as the per-call figure;
- a C floor (``cfloor.c``, built with ``cc -O3`` into ``~/.cache/tickplane/bench/``;
  its samples are timed inside the C process).

Checks, any failure of which raises (so a wrong conversion cannot produce a flattering
figure): the stream's own pass matched every orderbook row; the plain-Python book equals
the orderbook row (top 10, prices and sizes) at 20 evenly spaced checkpoints; and after
the whole stream every book's top 10 levels equal the orderbook's last row (prices and
sizes) and each other (order counts too).

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
from collections.abc import Callable
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
    from tests.benchmarks.measure import median, quiet_gc
except ModuleNotFoundError:  # run as a script: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.benchmarks import nautilus_peer, pybook
    from tests.benchmarks import stream as replay_stream
    from tests.benchmarks.flow import MATCH_SEED, Flow, make_flow
    from tests.benchmarks.measure import median, quiet_gc

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
#: A timed sample lasts at least this long (as many runs as it takes).
MIN_SAMPLE_SECONDS = 0.2
#: Rows at which the plain-Python book is compared with the orderbook file.
CHECKPOINTS = 20


class StateMismatch(AssertionError):
    """A book ended in a different state from the reference: its figure would be a lie."""


# Note: no dataclasses here. `tickplane bench book` loads this file with
# importlib.util.spec_from_file_location, and a dataclass in a module that is not in
# sys.modules fails under `from __future__ import annotations`.


# --- helpers ------------------------------------------------------------------------------


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


def _top(depth: Depth) -> dict[str, list[tuple[int, int]]]:
    """Prices and sizes only (what the orderbook file holds)."""
    return {side: [(p, q) for p, q, _ in levels] for side, levels in depth.items()}


def _check_replay(name: str, got: Depth, ref: Depth, lobster: dict[str, list[Any]]) -> None:
    """``got`` must equal the orderbook file's last row and the plain-Python book."""
    if _top(got) != lobster:
        raise StateMismatch(
            f"{name} ended in a different book from the orderbook file's last row:\n"
            f"  got  {_top(got)}\n  want {lobster}"
        )
    _check_same(name, got, ref)


class Timed:
    """Repeated timings of one figure: per sample, its seconds and how many runs."""

    def __init__(self, seconds: list[float], runs: list[int], units: int) -> None:
        self.seconds = seconds
        self.runs = runs
        self.units = units

    def rates(self) -> list[float]:
        return [self.units * k / s for s, k in zip(self.seconds, self.runs, strict=True)]

    @property
    def per_sec(self) -> float:
        return median(self.rates())

    def all_per_sec(self) -> list[float]:
        return [round(r) for r in self.rates()]


class Bench:
    """Runs the sections, shows progress on stderr, collects figures and skip reasons."""

    def __init__(
        self,
        repeats: int,
        console: Console,
        progress: Progress,
        min_seconds: float = MIN_SAMPLE_SECONDS,
    ) -> None:
        self.repeats = repeats
        self.console = console
        self.progress = progress
        self.min_seconds = min_seconds
        self.figures: dict[str, Any] = {}
        self.details: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}

    def _sample(self, once: Callable[[], float]) -> tuple[float, int]:
        """Run ``once`` (which returns its timed seconds) until ``min_seconds`` add up."""
        total, runs = 0.0, 0
        while True:
            with quiet_gc():
                total += once()
            runs += 1
            if total >= self.min_seconds:
                return total, runs

    def timed(self, label: str, units: int, once: Callable[[], float]) -> Timed:
        """A warm-up sample, then ``repeats`` timed samples of ``once``."""
        task = self.progress.add_task(label, total=self.repeats + 1)
        self._sample(once)
        self.progress.advance(task)
        seconds: list[float] = []
        runs: list[int] = []
        for _ in range(self.repeats):
            sec, k = self._sample(once)
            seconds.append(sec)
            runs.append(k)
            self.progress.advance(task)
        return Timed(seconds, runs, units)

    def record(self, name: str, t: Timed) -> None:
        self.figures[name] = round(t.per_sec)
        self.details[f"{name}_all"] = t.all_per_sec()
        if max(t.runs) > 1:
            self.details[f"{name}_runs_per_sample"] = t.runs

    def skip(self, figures: list[str], reason: str) -> None:
        for name in figures:
            self.figures[name] = None
            self.skipped[name] = reason
        self.console.print(f"[yellow]skipped {', '.join(figures)}:[/] {reason}")


# --- replay -------------------------------------------------------------------------------


def _percall(book: Any, rows: list[Row]) -> float:
    """Apply the stream through per-call methods; returns the seconds it took.

    ``nautilus_peer.run_percall`` is the same loop (same unpacking and dispatch)."""
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


def _checkpoints(
    s: replay_stream.ReplayStream, rows: list[Row], orderbook: npt.NDArray[np.int64], k: int
) -> list[int]:
    """Apply the stream to a plain-Python book, comparing its top levels with the
    orderbook row at ``k`` evenly spaced rows (the last one included). Untimed."""
    n = int(orderbook.shape[0])
    marks = sorted({int(r) for r in np.linspace(0, n - 1, k).round()})
    book = pybook.PyBook()
    done = 0
    for row in marks:
        upto = s.upto(row)
        for op, side, oid, price, qty in rows[done:upto]:
            if op == 1:
                book.add(oid, side, price, qty)
            elif op == 3:
                book.delete(oid)
            else:
                book.reduce(oid, qty)
        done = upto
        want = replay_stream.row_depth(orderbook[row], s.levels)
        got = _top(book.depth(s.levels))
        if got != want:
            raise StateMismatch(
                f"the plain-Python book differs from orderbook row {row}:\n"
                f"  got  {got}\n  want {want}"
            )
    return marks


def _replay_python(b: Bench, rows: list[Row], lobster: dict[str, list[Any]]) -> Depth:
    holder: list[pybook.PyBook] = []

    def once() -> float:
        holder[:] = [pybook.PyBook()]
        return _percall(holder[0], rows)

    t = b.timed("plain Python book", len(rows), once)
    b.record("python_ops_per_sec", t)
    reference = holder[0].depth(10)
    _check_replay("plain-Python book", reference, reference, lobster)
    b.details["final_book"] = {"live_orders": len(holder[0]), **reference}
    return reference


def _replay_tickplane(
    b: Bench, ops: npt.NDArray[np.void], rows: list[Row], ref: Depth, lobster: dict[str, Any]
) -> None:
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
    _check_replay("tickplane Book (batch)", _depth_of(holder[0].depth(10)), ref, lobster)
    b.record(names[0], t)

    def percall() -> float:
        book = Book()
        holder[:] = [book]
        return _percall(book, rows)

    t = b.timed("tickplane Book per call", len(rows), percall)
    _check_replay("tickplane Book (per call)", _depth_of(holder[0].depth(10)), ref, lobster)
    b.record(names[1], t)


def _replay_nautilus(
    b: Bench,
    stream: replay_stream.ReplayStream,
    ts_ns: npt.NDArray[np.int64],
    ref: Depth,
    lobster: dict[str, Any],
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
    holder: list[Any] = []
    for name, fn, label in (
        (names[0], nautilus_peer.run_batch, "nautilus apply_deltas (batch)"),
        (names[1], nautilus_peer.run_percall, "nautilus add/update/delete per call"),
        (
            "nautilus_apply_delta_ops_per_sec",
            nautilus_peer.run_apply_delta,
            "nautilus apply_delta loop",
        ),
    ):

        def once(fn: Callable[[Any], tuple[float, Any]] = fn) -> float:
            seconds, book = fn(data)
            holder[:] = [book]
            return seconds

        t = b.timed(label, len(data.deltas), once)
        _check_replay(label, nautilus_peer.top(holder[0], 10), ref, lobster)
        if name in names:
            b.record(name, t)
        else:  # a detail, not a headline figure
            b.details[name] = round(t.per_sec)
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
        tmp = binary.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([cc, *flags, "-o", str(tmp), str(source)], check=True)
        tmp.replace(binary)
    return binary


def run_cfloor(
    binary: Path, s: replay_stream.ReplayStream, repeats: int, min_seconds: float
) -> dict[str, Any]:
    """Run the C floor on ``s``; returns its JSON report."""
    ops_file = _cache_dir() / f"ops-{os.getpid()}.bin"
    capacity = int(s.stats.get("peak_live_orders", 0)) or len(s)
    try:
        with ops_file.open("wb") as out:
            out.write(b"TPOPS01\0")
            out.write(np.uint64(len(s)).tobytes())
            out.write(np.ascontiguousarray(s.ops).tobytes())
        done = subprocess.run(
            [str(binary), str(ops_file), str(repeats), repr(min_seconds), str(capacity)],
            capture_output=True,
            text=True,
        )
    finally:
        ops_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"the C floor failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _replay_cfloor(
    b: Bench, s: replay_stream.ReplayStream, ref: Depth, lobster: dict[str, Any]
) -> None:
    name = "c_floor_ops_per_sec"
    try:
        binary = _build_cfloor()
    except (OSError, subprocess.CalledProcessError) as exc:
        b.skip([name], f"could not build the C floor: {exc}")
        return
    task = b.progress.add_task("C floor (cc -O3)", total=1)
    result = run_cfloor(binary, s, b.repeats, b.min_seconds)
    b.progress.advance(task)
    _check_replay("C floor", _depth_of(result), ref, lobster)
    b.figures[name] = round(result["ops_per_sec"])
    b.details[f"{name}_all"] = [round(v) for v in result["all_ops_per_sec"]]
    b.details[f"{name}_runs_per_sample"] = result["passes"]
    b.details["c_floor_binary"] = str(binary)


def _stream_note(path: Path, full: bool, s: replay_stream.ReplayStream) -> str:
    st = s.stats
    return (
        f"{path.name}{'' if full else ' (3,000-row excerpt)'}: {st['source_messages']:,} "
        f"messages after row 0 became {len(s):,} L3 ops that follow the real book: "
        f"{st['seeds']} seed orders from row 0, the messages' own ops (ops on ids never "
        f"added act on the level's synthetic orders: {st['on_level']:,}), "
        f"{st['window_deletes']:,} deletes of orders on levels that fell below the top "
        f"{s.levels} and {st['adopted']:,} synthetic adds for levels that entered it; "
        f"the book equals the orderbook row after {st['rows_matched']:,} of "
        f"{st['rows_compared']:,} messages"
    )


def _replay(b: Bench, path: Path | None = None) -> None:
    full = shared_paths() is not None
    if path is None:
        path = sample_paths()[REPLAY_LEVELS]
        if not full:
            b.console.print(
                "[yellow]the full LOBSTER sample is not beside this checkout: replaying the "
                "3,000-row excerpt, whose figures mean little[/]"
            )
    else:
        full = path.stat().st_size > 1_000_000  # the excerpts are a few hundred kB
    task = b.progress.add_task(f"loading {path.name} and building the stream", total=None)
    day = load(zip_path=path)
    s = replay_stream.build(day)
    b.progress.update(task, total=1, completed=1)
    if s.stats["rows_matched"] != s.stats["rows_compared"]:
        raise StateMismatch(
            f"the stream's book matched {s.stats['rows_matched']} of "
            f"{s.stats['rows_compared']} orderbook rows"
        )
    ops = s.ops
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
    marks = _checkpoints(s, rows, day.orderbook, CHECKPOINTS)
    lobster = replay_stream.row_depth(day.orderbook[-1], day.levels)
    ts_ns = np.rint(day.messages["time"][s.rows] * 1e9).astype(np.int64)
    b.figures["replay_ops"] = len(s)
    b.details["stream"] = _stream_note(path, full, s)
    b.details["replay_stream"] = {
        "dataset": path.name,
        "full_day": full,
        "levels": day.levels,
        "messages": len(day),
        "checkpoint_rows": marks,
        **s.summary(),
    }
    reference = _replay_python(b, rows, lobster)
    _replay_tickplane(b, ops, rows, reference, lobster)
    _replay_nautilus(b, s, ts_ns, reference, lobster)
    _replay_cfloor(b, s, reference, lobster)


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
        with quiet_gc():
            lat = np.asarray(_run_flow_latency(holder[0], f), dtype=np.int64) - overhead
        np.maximum(lat, 0, out=lat)
        p50s.append(float(np.percentile(lat, 50)))
        p99s.append(float(np.percentile(lat, 99)))
        b.progress.advance(task)
    check("MatchingEngine (latency run)")
    b.figures["match_p50_ns"] = round(median(p50s))
    b.figures["match_p99_ns"] = round(median(p99s))
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
    replay_zip: Path | None = None,
    min_seconds: float = MIN_SAMPLE_SECONDS,
    sections: tuple[str, ...] = ("replay", "matching", "memory"),
) -> dict[str, Any]:
    """Run every benchmark once and return the result (one JSON-ready dict).

    Args:
        json_out: the caller prints the result as JSON: print nothing on stdout (else
            print a table of the figures).
        repeats: timed repetitions per figure (the median is reported), after a warm-up.
        match_commands: commands in the random matching flow.
        resting_orders: resting orders for the memory figure.
        command: the command line to record (default: this process's).
        replay_zip: the LOBSTER zip to replay (default: the GOOG level-10 sample).
        min_seconds: the least a timed sample lasts (it repeats runs until then).
        sections: which benchmarks to run (the others' figures are absent from ``skipped``
            and ``None``).

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
    b = Bench(repeats, console, progress, min_seconds)
    started = time.perf_counter()
    with progress:
        if "replay" in sections:
            _replay(b, replay_zip)
        if "matching" in sections:
            _matching(b, match_commands)
        if "memory" in sections:
            _memory(b, resting_orders)
    f = b.figures
    result: dict[str, Any] = {
        "replay_ops": f.get("replay_ops"),
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
        "stream": b.details.pop("stream", None),
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
