"""`tickplane`: the one command of the platform; each part adds its subcommands."""

from __future__ import annotations

import argparse
import sys

from tickplane.api import cli as api_cli
from tickplane.cli import up
from tickplane.engine import cli as engine_cli
from tickplane.operator import cli as operator_cli
from tickplane.ui import cli as ui_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickplane",
        description="Tickplane: a Kubernetes-native low-latency trading platform.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    engine_cli.register(sub)
    api_cli.register(sub)
    up.register(sub)
    operator_cli.register(sub)
    ui_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
