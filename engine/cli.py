"""The engine's subcommands of `tickplane`: `match`, `replay lobster`, `bench book`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import IO, Any

__all__ = ["register"]


#: `tickplane bench SUITE` runs tests/benchmarks/bench_SUITE.py: (SUITE, default repeats, help).
_BENCH_SUITES = (
    ("book", 5, "order book and matching benchmarks vs peers"),
    ("wire", 5, "engine process: round trip vs a ZeroMQ echo, pipelined throughput, recovery"),
    ("backtest", 3, "a full GOOG-day backtest of the market maker vs a peer's backtester"),
    ("gateway", 3, "gateway: HTTP and WebSocket orders through to the engine, vs bare HTTP"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the engine's subcommands to the `tickplane` parser."""
    p = sub.add_parser(
        "match",
        help="run a JSON Lines command stream through the matching engine",
        description="Run commands (../shared/contracts/matching.md) through the compiled "
        "matching engine; write the events as JSON Lines and the final book as JSON.",
    )
    p.add_argument("commands", help="commands, one JSON object a line ('-' = stdin)")
    p.add_argument("--events", default="-", help="where to write the events ('-' = stdout)")
    p.add_argument("--book", help="where to write the final book (BOOK.json)")
    p.set_defaults(func=_match)

    r = sub.add_parser("replay", help="replay market data through the order book")
    rsub = r.add_subparsers(dest="source", required=True, metavar="SOURCE")
    lob = rsub.add_parser(
        "lobster",
        help="replay a LOBSTER day and check the book against its orderbook file",
        description="Replay LOBSTER messages through the compiled book and compare the "
        "book with the orderbook file after every message (the known-window rule). "
        "Without files, replays the GOOG sample days (1, 5 and 10 levels).",
    )
    lob.add_argument("--zip", type=Path, help="a LOBSTER zip (message + orderbook files)")
    lob.add_argument("--messages", type=Path, help="the message CSV")
    lob.add_argument("--orderbook", type=Path, help="the orderbook CSV")
    lob.add_argument("--levels", type=int, help="levels in the orderbook file (inferred)")
    lob.add_argument("--json", action="store_true", help="print one JSON object per file")
    lob.add_argument(
        "--demo", action="store_true", help="replay every GOOG sample day with progress"
    )
    lob.set_defaults(func=_replay_lobster)

    e = sub.add_parser(
        "engine",
        help="run an engine process (order entry, events, journal)",
        description="Run one engine: ZeroMQ order entry and event stream, journal and "
        "snapshots, health and metrics over HTTP. Settings come from --config (JSON or "
        "TOML) and TICKPLANE_ENGINE_<SETTING> environment variables.",
    )
    e.add_argument("--config", type=Path, help="engine configuration file (JSON or TOML)")
    e.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    e.set_defaults(func=_engine)

    b = sub.add_parser("bench", help="benchmarks (tests/benchmarks)")
    bsub = b.add_subparsers(dest="suite", required=True, metavar="SUITE")
    for suite, repeats, help_ in _BENCH_SUITES:
        s = bsub.add_parser(suite, help=help_)
        s.add_argument("--json", action="store_true", help="print one JSON object")
        s.add_argument("--repeats", type=int, default=repeats, help="repetitions (median reported)")
        s.set_defaults(func=_bench, module=f"bench_{suite}")

    from tickplane.engine.strategy.command import add_backtest, add_strategy

    add_backtest(sub)
    add_strategy(sub)


# -- match ----------------------------------------------------------------------------------


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


def _match(args: argparse.Namespace) -> int:
    try:
        return _run_match(args)
    except OSError as exc:
        return _fail(f"{exc.filename or args.commands}: {exc.strerror or exc}")


def _run_match(args: argparse.Namespace) -> int:
    from tickplane.engine.match import Matcher, dumps

    matcher = Matcher()
    with ExitStack() as stack:
        src: IO[bytes] = (
            sys.stdin.buffer
            if args.commands == "-"
            else stack.enter_context(open(args.commands, "rb"))
        )
        out: IO[bytes] = (
            sys.stdout.buffer
            if args.events == "-"
            else stack.enter_context(open(args.events, "wb"))
        )
        bad = 0
        for line in _lines(src):
            for event in matcher.process(line):
                if event.get("reason") == "bad_json":
                    bad += 1
                    print(
                        f"{args.commands}:{event['line']}: not a JSON object, rejected (bad_json)",
                        file=sys.stderr,
                    )
                out.write(dumps(event))
    if args.book:
        Path(args.book).write_text(json.dumps(matcher.book(), separators=(",", ":")) + "\n")
    return 0


# -- replay lobster ---------------------------------------------------------------------------


def _replay_lobster(args: argparse.Namespace) -> int:
    from tickplane.engine.lobster import load, sample_paths
    from tickplane.engine.lobster_replay import replay

    given = args.zip is not None or args.messages is not None or args.orderbook is not None
    if args.zip is not None and (args.messages is not None or args.orderbook is not None):
        return _fail("give --zip, or --messages with --orderbook, not both")
    if given and args.zip is None and (args.messages is None or args.orderbook is None):
        return _fail("--messages and --orderbook go together")
    try:
        if given:
            days = [
                load(
                    zip_path=args.zip,
                    messages=args.messages,
                    orderbook=args.orderbook,
                    levels=args.levels,
                )
            ]
            results = [replay(d) for d in days]
        elif args.json and not args.demo:
            results = [replay(load(zip_path=p)) for _, p in sorted(sample_paths().items())]
        else:
            results = _replay_demo(sorted(sample_paths().items()))
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        for r in results:
            print(json.dumps(r.to_dict()))
    elif given:
        _summary(results)
    return 0 if all(r.rows_matched == r.rows_compared for r in results) else 1


def _replay_demo(paths: list[tuple[int, Path]]) -> list[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tickplane.engine.lobster import load
    from tickplane.engine.lobster_replay import replay

    console = Console(stderr=True)
    console.print(
        "[bold]Tickplane[/] replaying a real NASDAQ day (GOOG, 2012-06-21, "
        "LOBSTER) through the compiled order book\n"
    )
    results = []
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        for levels, path in paths:
            task = progress.add_task(f"{levels:>2} levels: loading", total=None)
            day = load(zip_path=path)
            progress.update(
                task, description=f"{levels:>2} levels: replaying", total=len(day), completed=0
            )
            results.append(
                replay(
                    day,
                    chunk=max(len(day) // 100, 1000),
                    on_progress=partial(_advance, progress, task),
                )
            )
            progress.update(task, description=f"{levels:>2} levels: done")
    _summary(results)
    return results


def _advance(progress: Any, task: Any, done: int) -> None:
    progress.update(task, completed=done)


def _summary(results: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="LOBSTER replay: book vs the exchange's own orderbook file")
    for col in ("file", "levels", "messages", "rows matched", "apply time", "messages/s"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in results:
        ok = r.rows_matched == r.rows_compared
        table.add_row(
            " ".join(r.name.split("_")[:2]),
            str(r.levels),
            f"{r.messages:,}",
            f"[{'green' if ok else 'red'}]{100 * r.match_ratio:.2f}%[/] of {r.rows_compared:,}",
            f"{r.apply_seconds * 1e3:.1f} ms",
            f"{r.msgs_per_sec / 1e6:.1f} M",
        )
    Console().print(table)


# -- engine ------------------------------------------------------------------------------------


def _engine(args: argparse.Namespace) -> int:
    import logging

    from tickplane.core.config import ConfigError, load_engine_config
    from tickplane.engine.journal import JournalError
    from tickplane.engine.service import EngineService
    from tickplane.engine.state import SnapshotError

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_engine_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        EngineService(config).run()
    except (JournalError, SnapshotError, OSError) as exc:
        return _fail(str(exc))
    return 0


# -- bench ------------------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    # OpenBLAS's idle worker threads spin on one of the machine's two cores; nothing
    # here uses BLAS. Set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    # The benchmarks live with the tests in a source checkout, not in the package.
    candidates = [Path.cwd(), Path(__file__).resolve().parents[1]]
    found = [c / f"tests/benchmarks/{args.module}.py" for c in candidates]
    path = next((f for f in found if f.exists()), None)
    if path is None:
        return _fail(f"tests/benchmarks/{args.module}.py not found: run from a source checkout")
    spec = importlib.util.spec_from_file_location(f"tickplane_{args.module}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while executing
    spec.loader.exec_module(module)
    result = module.run(json_out=args.json, repeats=args.repeats)
    if args.json:
        print(json.dumps(result))
    return 0


def _fail(message: str) -> int:
    print(f"tickplane: error: {message}", file=sys.stderr)
    return 2
