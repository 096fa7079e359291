"""`tickplane ui --gateway URL [--port N] [--engine-url URL]`: the terminal alone, against
any gateway."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["register", "streamlit_argv"]

APP = Path(__file__).resolve().parent / "app.py"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ui",
        help="run the Streamlit trading terminal against a gateway",
        description="Run the trading terminal (Streamlit) against the gateway at --gateway.",
    )
    p.add_argument(
        "--gateway",
        default=os.environ.get("TICKPLANE_UI_GATEWAY_URL", "http://127.0.0.1:8000"),
        help="the gateway's base URL (default: $TICKPLANE_UI_GATEWAY_URL or http://127.0.0.1:8000)",
    )
    p.add_argument("--port", type=int, default=8501, help="the terminal's HTTP port (8501)")
    p.add_argument("--address", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    p.add_argument(
        "--engine-url",
        default=os.environ.get("TICKPLANE_UI_ENGINE_URL", ""),
        help="optional: the engine's HTTP URL, for its /status and /metrics on Monitoring",
    )
    p.set_defaults(func=_run)


def streamlit_argv(port: int, address: str) -> list[str]:
    """How to start the terminal: the same command `tickplane up` uses."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def _run(args: argparse.Namespace) -> int:
    env = {**os.environ, "TICKPLANE_UI_GATEWAY_URL": args.gateway}
    if args.engine_url:
        env["TICKPLANE_UI_ENGINE_URL"] = args.engine_url
    print(f"terminal on http://{args.address}:{args.port} (gateway {args.gateway})", flush=True)
    try:
        return subprocess.call(streamlit_argv(args.port, args.address), env=env)
    except KeyboardInterrupt:
        return 0
