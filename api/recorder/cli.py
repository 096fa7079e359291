"""`tickplane recorder`: run the recorder process (see api/recorder/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

__all__ = ["register"]

_FLAGS = {
    "engine_name": "--engine-name",
    "engine_order_entry": "--engine-order-entry",
    "engine_events": "--engine-events",
    "database_url": "--database-url",
    "redis_url": "--redis-url",
    "kafka": "--kafka",
    "metrics_port": "--metrics-port",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `recorder` to the `tickplane` parser."""
    p = sub.add_parser(
        "recorder",
        help="record an engine's events into PostgreSQL, Redis and Kafka",
        description="Subscribe to one engine's sequenced events and write them, exactly "
        "once per sequence number, to every sink given (flags, else "
        "TICKPLANE_RECORDER_<SETTING> variables).",
    )
    p.add_argument("--engine-name", help="the engine's name (default: engine-0)")
    p.add_argument("--engine-order-entry", help="its order-entry endpoint (replay requests)")
    p.add_argument("--engine-events", help="its events endpoint")
    p.add_argument(
        "--symbols",
        help="comma-separated symbols whose top of book to record (default: all the engine's)",
    )
    p.add_argument("--database-url", help="PostgreSQL DSN (enables the PostgreSQL sink)")
    p.add_argument("--redis-url", help="Redis URL (enables the Redis sink)")
    p.add_argument("--kafka", help="Kafka bootstrap servers (enables the Kafka sink)")
    p.add_argument("--metrics-port", type=int, help="Prometheus metrics port (default 9102)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: the sinks' client libraries are not needed by other subcommands.
    from tickplane.api.recorder.service import Recorder, RecorderSettings

    given = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.symbols is not None:
        given["symbols"] = [s for s in args.symbols.split(",") if s]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        recorder = Recorder(RecorderSettings(**given))
    except (ValidationError, ValueError) as exc:
        print(f"tickplane recorder: {exc}", file=sys.stderr)
        return 2
    asyncio.run(recorder.run())
    return 0
