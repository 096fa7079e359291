"""`tickplane backtest` and `tickplane strategy run` (registered by engine/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tickplane.core.accounts import ACCOUNT_RULE, is_account

__all__ = ["add_backtest", "add_strategy"]


def add_backtest(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `tickplane backtest`."""
    p = sub.add_parser(
        "backtest",
        help="run a strategy over historical data (LOBSTER, CSV bars)",
        description="Replay a LOBSTER day (a zip, or a message and an orderbook CSV) or a "
        "CSV of bars through the compiled book with a strategy's orders in it (queue "
        "position, order-entry latency, fees); print the results and write a report.",
    )
    p.add_argument("--strategy", required=True, help="built-in strategy name")
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="FILE",
        help="a LOBSTER zip, MESSAGE.csv ORDERBOOK.csv, or a CSV of bars",
    )
    p.add_argument(
        "--params",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="strategy parameters (NAME=VALUE ... or one JSON object)",
    )
    p.add_argument("--latency-us", type=float, default=0.0, help="order-entry latency (µs)")
    p.add_argument("--fee-bps", type=float, default=0.0, help="fee per fill, bps of notional")
    p.add_argument("--symbol", help="symbol name (default: from the data)")
    p.add_argument("--max-position", type=int, default=0, help="strategy limit (0: none)")
    p.add_argument("--max-orders-per-sec", type=int, default=0, help="strategy limit (0: none)")
    p.add_argument("--max-loss", type=int, default=0, help="loss limit, ticks x lots (0: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", type=Path, metavar="DIR", help="write plots and index.html here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_backtest)


def _account(value: str) -> str:
    """`--account`: an account name (the engine refuses a request naming any other)."""
    if not is_account(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an account name: {ACCOUNT_RULE}")
    return value


def add_strategy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `tickplane strategy run` and `tickplane strategy list`."""
    s = sub.add_parser("strategy", help="run strategies against an engine")
    ssub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = ssub.add_parser("list", help="the built-in strategies and their parameters")
    ls.set_defaults(func=_list)
    r = ssub.add_parser(
        "run",
        help="run a strategy live against an engine process",
        description="Connect to an engine (order entry and events), feed the strategy its "
        "market data and order events, send its orders as ACCOUNT; serve Prometheus "
        "metrics on --metrics-port. Stops on SIGINT/SIGTERM (canceling its orders).",
    )
    r.add_argument("--strategy", required=True, help="built-in strategy name")
    r.add_argument("--engine", required=True, help="order entry endpoint, tcp://HOST:PORT")
    r.add_argument("--events", help="event endpoint (default: order entry port + 1)")
    r.add_argument(
        "--account",
        required=True,
        type=_account,
        help=f"the account the orders belong to ({ACCOUNT_RULE})",
    )
    r.add_argument("--symbol", required=True, help="the symbol to trade")
    r.add_argument(
        "--params",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="strategy parameters (NAME=VALUE ... or one JSON object); "
        "TICKPLANE_STRATEGY_PARAMS (a JSON object, e.g. the Strategy resource's params) "
        "is read first",
    )
    r.add_argument("--max-position", type=int, default=0)
    r.add_argument("--max-orders-per-sec", type=int, default=0)
    r.add_argument("--max-loss", type=int, default=0)
    r.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: none)")
    r.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (0: never)")
    r.set_defaults(func=_run_live)


def _fail(message: str) -> int:
    print(f"tickplane: error: {message}", file=sys.stderr)
    return 2


def _limits(args: argparse.Namespace) -> object:
    from tickplane.engine.strategy.limits import StrategyLimits

    return StrategyLimits(
        max_position=args.max_position,
        max_orders_per_sec=args.max_orders_per_sec,
        max_loss=args.max_loss,
    )


def _backtest(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tickplane.engine.backtest import DataError, open_data, run_backtest
    from tickplane.engine.strategy.limits import StrategyLimits
    from tickplane.engine.strategy.params import ParamsError, parse_cli_params
    from tickplane.engine.strategy.registry import build

    if args.latency_us < 0:
        return _fail("--latency-us must be >= 0")
    try:
        params = parse_cli_params(args.params)
        data = open_data(args.data, symbol=args.symbol)
        limits = _limits(args)
        assert isinstance(limits, StrategyLimits)
        strategy = build(args.strategy, params, symbol=data.symbol, tick=data.tick, limits=limits)
    except (ParamsError, DataError) as exc:
        return _fail(str(exc))
    latency_ns = round(args.latency_us * 1000)
    console = Console(stderr=True)
    if args.no_progress:
        result = run_backtest(strategy, data, latency_ns=latency_ns, fee_bps=args.fee_bps)
    else:
        with Progress(
            TextColumn(f"backtest {args.strategy} on {data.symbol}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=args.json,
        ) as progress:
            task = progress.add_task("events", total=data.events)
            result = run_backtest(
                strategy,
                data,
                latency_ns=latency_ns,
                fee_bps=args.fee_bps,
                on_progress=lambda done: progress.update(task, completed=done),
            )
    summary = result.summary()
    if args.report is not None:
        from tickplane.engine.backtest.report import write_report

        index = write_report(result, args.report)
        console.print(f"report: {index}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"backtest: {summary['strategy']} on {summary['symbol']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in (
        "events",
        "trades",
        "filled_qty",
        "pnl",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "sharpe",
        "max_drawdown",
        "turnover",
        "fill_ratio",
        "position",
    ):
        table.add_row(key, str(summary[key]))
    Console().print(table)


def _list(args: argparse.Namespace) -> int:
    import msgspec

    from tickplane.engine.strategy.registry import BUILTIN

    out = {name: msgspec.to_builtins(cls.Params()) for name, cls in sorted(BUILTIN.items())}
    print(json.dumps(out, indent=2))
    return 0


def _run_live(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import logging
    import os

    from tickplane.engine.strategy.limits import StrategyLimits
    from tickplane.engine.strategy.live import LiveRunner, default_events_endpoint
    from tickplane.engine.strategy.params import ParamsError, parse_cli_params
    from tickplane.engine.strategy.registry import build

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        env = os.environ.get("TICKPLANE_STRATEGY_PARAMS", "").strip()
        params = parse_cli_params([env, *args.params] if env else args.params)
        limits = _limits(args)
        assert isinstance(limits, StrategyLimits)
        strategy = build(args.strategy, params, symbol=args.symbol, limits=limits)
        events = args.events or default_events_endpoint(args.engine)
    except (ParamsError, ValueError) as exc:
        return _fail(str(exc))
    runner = LiveRunner(
        strategy, args.engine, events, account=args.account, metrics_port=args.metrics_port
    )
    code = 0
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(runner.run(duration=args.duration or None))
    return code
