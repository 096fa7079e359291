"""Instructions per engine turn, to run under callgrind (the count the machine's load
does not move): an `EngineService` in this process fed `n` one-request turns of one
kind, and only those turns counted.

- `quiet`: an order that rests, then its cancel (no trades);
- `trading`: a resting order, then one that takes it (a trade every second turn);
- `batched`: turns of 256 requests, 256 resting orders then their 256 cancels (what a
  pipelining client's turns look like), counted after 45 such pairs filled the
  finished-orders store to its default bound; `n` rounded down to whole pairs.

    valgrind --tool=callgrind --toggle-collect=functools_reduce \\
        .venv/bin/python -m tests.benchmarks.turn_instructions quiet 2000
    # instructions per turn (per request for `batched`): callgrind's `summary` / n

The counted turns run inside `functools.reduce` (what `--toggle-collect` keys on), after
two warm-up turns; start-up, imports and the close are not counted. The event and
market-data logs flush at 1 MiB only: their 10 ms flush follows wall time, which
valgrind's slowdown and the machine's load change. fsync none, no snapshots, the
collector off.
"""

from __future__ import annotations

import functools
import gc
import sys
import tempfile

from tickplane.core import wire
from tickplane.core.config import EngineConfig, SymbolConfig
from tickplane.engine import eventlog, mdlog
from tickplane.engine.service import EngineService

IDENT = b"\x00bench"


def main(kind: str, n: int) -> None:
    eventlog.FLUSH_SECONDS = mdlog.FLUSH_SECONDS = 3600.0
    root = tempfile.mkdtemp()
    cfg = EngineConfig(
        name="turns",
        order_entry="tcp://127.0.0.1:0",
        events="tcp://127.0.0.1:0",
        http_port=0,
        journal_dir=root + "/journal",
        symbols=[SymbolConfig("GOOG")],
        fsync="none",
        snapshot_every=0,
        pin_cpu=False,
    )
    svc = EngineService(cfg)
    svc.open()
    gc.disable()

    def turn(req: wire.Request) -> None:
        svc.process([(IDENT, wire.encode(req))])

    def pair(req: int, i: int) -> int:
        """Two turns (see the module docstring); the next request number."""
        if kind == "quiet":
            turn(wire.NewOrder(req, "a", "GOOG", "buy", "limit", 1, price=900))
            turn(wire.CancelOrder(req + 1, "a", svc.state.core.last_id))
        else:
            first, second = ("sell", "buy") if i % 2 else ("buy", "sell")  # flat positions
            turn(wire.NewOrder(req, "a", "GOOG", first, "limit", 1, price=1000))
            turn(wire.NewOrder(req + 1, "b", "GOOG", second, "limit", 1, price=1000))
        return req + 2

    if kind == "batched":
        batched(svc, n)
        return

    try:
        functools.reduce(pair, range(n // 2), pair(1, 0))
        if len(svc.state.core) != 0:
            raise SystemExit(f"{len(svc.state.core)} orders left open")
    finally:
        svc.close()


def batched(svc: EngineService, n: int, size: int = 256, warm: int = 45) -> None:
    """`batched` (module docstring): the frames are built before the counted turns."""

    def frames(first_id: int, req: int) -> tuple[list[tuple[bytes, bytes]], ...]:
        new = [
            (IDENT, wire.encode(wire.NewOrder(req + i, "a", "GOOG", "buy", "limit", 10, price=900)))
            for i in range(size)
        ]
        cancel = [
            (IDENT, wire.encode(wire.CancelOrder(req + size + i, "a", first_id + i)))
            for i in range(size)
        ]
        return new, cancel

    def pair(_: None, turns: tuple[list[tuple[bytes, bytes]], ...]) -> None:
        for batch in turns:
            svc.process(batch)

    try:
        req = 1
        for _ in range(warm):
            pair(None, frames(svc.state.core.last_id + 1, req))
            req += 2 * size
        first = svc.state.core.last_id + 1
        todo = [frames(first + i * size, req + i * 2 * size) for i in range(n // (2 * size))]
        functools.reduce(pair, todo, None)
        if len(svc.state.core) != 0:
            raise SystemExit(f"{len(svc.state.core)} orders left open")
    finally:
        svc.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
