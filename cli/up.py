"""`tickplane up`: the whole platform on one machine, with embedded defaults.

It starts the parts as child processes, the way they run on Kubernetes (one engine, one
gateway, the recorder when a service is given, the terminal), each talking to the others
only through its documented interface: the engine's ZeroMQ endpoints, the gateway's HTTP
API. Everything lives in `--data-dir`: the engine's journal and snapshots, the API keys
(SQLite unless `--database-url` is given), the generated engine configuration and one
log file per process. A fresh directory is a fresh platform; the same directory again
recovers the engine from its journal.

A demo key is created at every start (and the previous demo key revoked), because the
secret is shown only once and is never stored in plain text.

`--strategy NAME:SYMBOL[:ACCOUNT]` (repeatable) adds a live strategy runner per flag
(`tickplane strategy run`), started after the engine and stopped before it, trading as
ACCOUNT (default `strategy-NAME`); its status, metrics and pause/resume answer on port
`--engine-port + 5 + i`, and the gateway lists it at `/api/v1/strategies` (it gets the
runners' URLs and a control token made for this run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tickplane.core.accounts import is_account

__all__ = ["Part", "Platform", "register"]

DEMO_ACCOUNT = "demo"
ENGINE_NAME = "local"  # the local engine, as the recorder and the gateway name it
_MAX_ORDER_QTY = 100_000  # lots per order, for every account
_DEMO_KEY_FILE = "demo-key-id"  # the id only: the secret is shown once, never kept


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tickplane"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        help="run the platform locally (engine, gateway, terminal) with embedded defaults",
        description=(
            "Run Tickplane on this machine: an engine with a live synthetic market, the "
            "gateway and the terminal. No services are needed; give --database-url, "
            "--redis-url or --kafka to record the event stream into real ones."
        ),
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TICKPLANE_DATA_DIR", _default_data_dir())),
        help="journal, keys, configuration and logs (default: $TICKPLANE_DATA_DIR or "
        "~/.local/share/tickplane); a fresh directory is a fresh platform",
    )
    p.add_argument("--api-port", type=int, default=8000, help="gateway HTTP port (8000)")
    p.add_argument("--ui-port", type=int, default=8501, help="terminal HTTP port (8501)")
    p.add_argument("--no-ui", action="store_true", help="do not start the terminal")
    p.add_argument(
        "--engine-port",
        type=int,
        default=5555,
        help="the first of five ports: engine order entry, engine events, engine HTTP "
        "(health, metrics), gateway metrics, recorder metrics (5555-5559)",
    )
    p.add_argument(
        "--symbols",
        default="GOOG,AAPL",
        help="comma-separated symbols the engine trades (GOOG,AAPL)",
    )
    p.add_argument(
        "--market",
        choices=["synthetic", "none"],
        default="synthetic",
        help="liquidity the engine seeds its books with (synthetic order flow)",
    )
    p.add_argument(
        "--market-rate",
        type=float,
        default=20.0,
        help="synthetic orders per second, all symbols together (20)",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("TICKPLANE_DATABASE_URL"),
        help="PostgreSQL for keys and the recorder (default: keys in SQLite in --data-dir)",
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("TICKPLANE_REDIS_URL"), help="Redis for the recorder"
    )
    p.add_argument(
        "--kafka",
        default=os.environ.get("TICKPLANE_KAFKA"),
        help="Kafka bootstrap servers for the recorder",
    )
    p.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        type=_strategy_arg,
        default=[],
        metavar="NAME:SYMBOL[:ACCOUNT]",
        help="run a built-in strategy live on SYMBOL as ACCOUNT (default: strategy-NAME); "
        "repeatable; its status and metrics port is --engine-port + 5, + 6, ...",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="when ready, print one JSON object (urls, account, key id, secret) instead of "
        "the table",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for every part to be ready (120)",
    )
    p.set_defaults(func=_up)


# -- strategies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyRun:
    """One `--strategy NAME:SYMBOL[:ACCOUNT]`: what the runner part runs."""

    strategy: str
    symbol: str
    account: str

    @property
    def name(self) -> str:
        """The runner's name (its /status, the gateway's list): NAME-SYMBOL, dashed."""
        return f"{self.strategy}-{self.symbol}".lower().replace("_", "-")


def _strategy_arg(value: str) -> StrategyRun:
    from tickplane.engine.strategy.registry import BUILTIN

    name, _, rest = value.partition(":")
    symbol, _, account = rest.partition(":")
    if name not in BUILTIN or not symbol.strip():
        known = ", ".join(sorted(BUILTIN))
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected NAME:SYMBOL[:ACCOUNT] with NAME one of {known}"
        )
    account = account or f"strategy-{name}"
    if not is_account(account):
        raise argparse.ArgumentTypeError(f"{value!r}: {account!r} is not a valid account name")
    return StrategyRun(name, symbol.strip().upper(), account)


def _check_strategies(args: argparse.Namespace) -> str | None:
    """Why the --strategy flags cannot run on this engine (None: they can)."""
    seen: set[str] = set()
    for run in args.strategies:
        if run.symbol not in _symbols(args):
            return f"--strategy {run.strategy}:{run.symbol}: the engine trades only {args.symbols}"
        if run.name in seen:
            return f"--strategy {run.strategy}:{run.symbol} is given twice"
        seen.add(run.name)
    return None


def _strategy_port(args: argparse.Namespace, i: int) -> int:
    return int(args.engine_port) + 5 + i


# -- the parts ----------------------------------------------------------------------------------


@dataclass
class Part:
    """One child process of the platform, and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str | None
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C in the terminal reaches `up` only, which then
            # stops the parts in order (the engine last, so it can snapshot cleanly).
            start_new_session=True,
        )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def ready(self) -> bool:
        if self.ready_url is None:
            return self.exited() is None
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown: the engine flushes and snapshots), then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
        return self.proc.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _tickplane() -> list[str]:
    """How to run this same `tickplane` (the venv's, whatever PATH says)."""
    return [sys.executable, "-m", "tickplane.cli.main"]


def _symbols(args: argparse.Namespace) -> list[str]:
    return [s.strip().upper() for s in args.symbols.split(",") if s.strip()]


def engine_config(args: argparse.Namespace) -> dict[str, Any]:
    """The engine's configuration for a laptop (tickplane.core.config.EngineConfig)."""
    symbols = _symbols(args)
    port = args.engine_port
    market: dict[str, Any] = {}
    if args.market == "synthetic":
        market = {"source": "synthetic", "rate": args.market_rate}
    return {
        "name": ENGINE_NAME,
        "symbols": [{"name": s} for s in symbols],
        "order_entry": f"tcp://127.0.0.1:{port}",
        "events": f"tcp://127.0.0.1:{port + 1}",
        "http_port": port + 2,
        "journal_dir": str((args.data_dir / "journal").resolve()),
        # One core is the laptop's, not the engine's: no pinning by default.
        "pin_cpu": False,
        "market": market,
        # A fat-finger guard, so a laptop shows what a risk reject looks like.
        "risk": {"default": {"max_order_qty": _MAX_ORDER_QTY}},
    }


class Platform:
    """The parts of a local platform, started in dependency order, stopped in reverse."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.parts: list[Part] = []
        # Made afresh at every start, handed to the runners and the gateway only.
        self.control_token = secrets.token_urlsafe(32)

    # The gateway's settings are its environment variables (api/settings.py).
    def gateway_env(self) -> dict[str, str]:
        port = self.args.engine_port
        env = {
            "TICKPLANE_GATEWAY_ENGINE_ORDER_ENTRY": f"tcp://127.0.0.1:{port}",
            "TICKPLANE_GATEWAY_ENGINE_EVENTS": f"tcp://127.0.0.1:{port + 1}",
            "TICKPLANE_GATEWAY_DATA_DIR": str(self.data_dir),
            "TICKPLANE_GATEWAY_PORT": str(self.args.api_port),
            "TICKPLANE_GATEWAY_METRICS_PORT": str(port + 3),
            # the recorder's rows of this engine (Alpaca market-data history)
            "TICKPLANE_GATEWAY_ENGINE_NAME": ENGINE_NAME,
        }
        if self.args.database_url:
            env["TICKPLANE_GATEWAY_DATABASE_URL"] = self.args.database_url
        if self.args.strategies:
            runners = [
                f"http://127.0.0.1:{_strategy_port(self.args, i)}"
                for i in range(len(self.args.strategies))
            ]
            env["TICKPLANE_GATEWAY_STRATEGY_RUNNERS"] = json.dumps(runners)
            env["TICKPLANE_GATEWAY_STRATEGY_CONTROL_TOKEN"] = self.control_token
        return env

    def strategy_parts(self, logs: Path) -> list[Part]:
        """One `tickplane strategy run` per --strategy, on the local engine."""
        port = self.args.engine_port
        parts = []
        for i, run in enumerate(self.args.strategies):
            metrics = _strategy_port(self.args, i)
            parts.append(
                Part(
                    f"strategy {run.name}",
                    [
                        *_tickplane(),
                        "strategy",
                        "run",
                        "--strategy",
                        run.strategy,
                        "--engine",
                        f"tcp://127.0.0.1:{port}",
                        "--account",
                        run.account,
                        "--symbol",
                        run.symbol,
                        "--metrics-port",
                        str(metrics),
                    ],
                    {
                        "TICKPLANE_STRATEGY_NAME": run.name,
                        "TICKPLANE_STRATEGY_CONTROL_TOKEN": self.control_token,
                    },
                    f"http://127.0.0.1:{metrics}/status",
                    logs / f"strategy-{run.name}.log",
                )
            )
        return parts

    def plan(self) -> list[Part]:
        args, logs = self.args, self.data_dir / "logs"
        config_path = self.data_dir / "engine.json"
        config_path.write_text(json.dumps(engine_config(args), indent=2) + "\n")
        parts = [
            Part(
                "engine",
                [*_tickplane(), "engine", "--config", str(config_path)],
                {},
                f"http://127.0.0.1:{args.engine_port + 2}/readyz",
                logs / "engine.log",
            ),
            # After the engine, before its clients: stopped (orders canceled) before it.
            *self.strategy_parts(logs),
            Part(
                "gateway",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "tickplane.api.main:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(args.api_port),
                    "--no-access-log",
                ],
                self.gateway_env(),
                f"http://127.0.0.1:{args.api_port}/api/v1/ready",
                logs / "gateway.log",
            ),
        ]
        sinks = {"--database-url": args.database_url, "--redis-url": args.redis_url}
        sinks["--kafka"] = args.kafka
        given = [arg for flag, value in sinks.items() if value for arg in (flag, value)]
        if given:
            port = args.engine_port
            parts.append(
                Part(
                    "recorder",
                    [
                        *_tickplane(),
                        "recorder",
                        "--engine-name",
                        ENGINE_NAME,
                        "--engine-order-entry",
                        f"tcp://127.0.0.1:{port}",
                        "--engine-events",
                        f"tcp://127.0.0.1:{port + 1}",
                        "--symbols",
                        ",".join(_symbols(args)),
                        "--metrics-port",
                        str(port + 4),
                        *given,
                    ],
                    {},
                    f"http://127.0.0.1:{port + 4}/metrics",
                    logs / "recorder.log",
                )
            )
        app = None if args.no_ui else _ui_app()
        if app is not None:
            parts.append(
                Part(
                    "terminal",
                    [
                        sys.executable,
                        "-m",
                        "streamlit",
                        "run",
                        str(app),
                        "--server.port",
                        str(args.ui_port),
                        "--server.address",
                        "127.0.0.1",
                        "--server.headless",
                        "true",
                        "--browser.gatherUsageStats",
                        "false",
                    ],
                    {
                        "TICKPLANE_UI_GATEWAY_URL": f"http://127.0.0.1:{args.api_port}",
                        # The engine's /status and /metrics, for the Monitoring page.
                        "TICKPLANE_UI_ENGINE_URL": f"http://127.0.0.1:{args.engine_port + 2}",
                        # The recorder's sequence lag, when there is a recorder.
                        "TICKPLANE_UI_RECORDER_URL": (
                            f"http://127.0.0.1:{args.engine_port + 4}" if given else ""
                        ),
                    },
                    f"http://127.0.0.1:{args.ui_port}/_stcore/health",
                    logs / "terminal.log",
                )
            )
        return parts

    def keys(self, *argv: str) -> dict[str, Any]:
        """Run `tickplane keys ...` against this platform's key store."""
        store = ["--data-dir", str(self.data_dir)]
        if self.args.database_url:
            store = ["--database-url", self.args.database_url]
        out = subprocess.run(
            [*_tickplane(), "keys", *argv, *store, *(["--json"] if argv[0] != "revoke" else [])],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"tickplane keys {argv[0]}: {out.stderr.strip() or out.stdout}")
        if argv[0] == "revoke":
            return {}
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def demo_key(self) -> dict[str, Any]:
        """A new key for the demo account; the previous demo key is revoked."""
        marker = self.data_dir / _DEMO_KEY_FILE
        if marker.exists():
            old = marker.read_text().strip()
            if old:
                # Already revoked, or the store was reset: nothing to undo.
                with contextlib.suppress(RuntimeError):
                    self.keys("revoke", old)
        key = self.keys("create", "--account", DEMO_ACCOUNT)
        marker.write_text(str(key["key_id"]) + "\n")
        return key


def _ui_app() -> Path | None:
    """The terminal's Streamlit entry point, once the terminal exists."""
    try:
        import tickplane.ui as ui
    except ImportError:
        return None
    app = Path(ui.__file__).resolve().parent / "app.py"
    return app if app.exists() else None


def _wait_ready(parts: Sequence[Part], timeout: float, on_wait: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    for part in parts:
        on_wait(f"starting the {part.name}")
        while not part.ready():
            code = part.exited()
            if code is not None:
                raise RuntimeError(
                    f"the {part.name} exited with code {code} while starting; "
                    f"its log ({part.log}) ends with:\n{part.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the {part.name} was not ready within {timeout:.0f} s; "
                    f"its log ({part.log}) ends with:\n{part.tail()}"
                )
            time.sleep(0.1)


def _up(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=args.json)
    problem = _check_strategies(args)
    if problem is not None:
        console.print(f"[red]tickplane up: {problem}[/red]")
        return 2
    args.data_dir.mkdir(parents=True, exist_ok=True)
    platform = Platform(args)
    stopping = False

    def _stop_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop_signal)
    parts: list[Part] = []
    try:
        with console.status("starting Tickplane") as status:
            for part in platform.plan():
                part.start()
                parts.append(part)
                _wait_ready([part], args.ready_timeout, lambda m: status.update(m))
            status.update("creating the demo key")
            key = platform.demo_key()
        urls = {
            "gateway": f"http://127.0.0.1:{args.api_port}",
            "engine": f"tcp://127.0.0.1:{args.engine_port}",
            "docs": f"http://127.0.0.1:{args.api_port}/docs",
            "terminal": (
                f"http://127.0.0.1:{args.ui_port}"
                if any(p.name == "terminal" for p in parts)
                else None
            ),
            "metrics": f"http://127.0.0.1:{args.engine_port + 2}/metrics",
            "gateway_metrics": f"http://127.0.0.1:{args.engine_port + 3}/metrics",
            "recorder_metrics": (
                f"http://127.0.0.1:{args.engine_port + 4}/metrics"
                if any(p.name == "recorder" for p in parts)
                else None
            ),
        }
        strategies = [
            {
                "name": run.name,
                "strategy": run.strategy,
                "symbol": run.symbol,
                "account": run.account,
                "url": f"http://127.0.0.1:{_strategy_port(args, i)}",
            }
            for i, run in enumerate(args.strategies)
        ]
        if args.json:
            print(
                json.dumps(
                    {
                        **urls,
                        "strategies": strategies,
                        "data_dir": str(platform.data_dir),
                        "account": key["account"],
                        "key_id": key["key_id"],
                        "secret": key["secret"],
                    }
                ),
                flush=True,
            )
        else:
            table = Table(title="Tickplane is up", show_header=False)
            for name, url in urls.items():
                if url:
                    table.add_row(name, url)
            for st in strategies:
                table.add_row(f"strategy {st['name']}", f"{st['url']}/status  (as {st['account']})")
            table.add_row("data", str(platform.data_dir))
            table.add_row("account", str(key["account"]))
            table.add_row("APCA-API-KEY-ID", str(key["key_id"]))
            table.add_row("APCA-API-SECRET-KEY", str(key["secret"]))
            console.print(table)
            console.print(
                "Try: curl -H 'APCA-API-KEY-ID: "
                f"{key['key_id']}' -H 'APCA-API-SECRET-KEY: {key['secret']}' "
                f"{urls['gateway']}/api/v1/account    (Ctrl-C stops everything)"
            )
        while True:
            for part in parts:
                code = part.exited()
                if code is not None:
                    raise RuntimeError(
                        f"the {part.name} exited with code {code}; its log ({part.log}) "
                        f"ends with:\n{part.tail()}"
                    )
            time.sleep(0.5)
    except KeyboardInterrupt:
        return _shutdown(console, parts, 0)
    except RuntimeError as exc:
        console.print(f"[red]tickplane up: {exc}[/red]")
        return _shutdown(console, parts, 1)


def _shutdown(console: Any, parts: list[Part], code: int) -> int:
    """Stop the parts in reverse order: clients first, the engine (journal, snapshot) last."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with console.status("stopping"):
        for part in reversed(parts):
            rc = part.stop()
            if rc not in (0, None, -signal.SIGTERM) and code == 0 and part.name == "engine":
                console.print(f"the engine stopped with code {rc}; see {part.log}")
                code = 1
    return code
