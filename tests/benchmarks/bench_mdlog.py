"""The engine's market-data log: CPU time per top of book appended (engine/mdlog.py).

What the engine loop pays per published top (once per turn and touched symbol): the
record built and checksummed, the index updated, the buffer written every 10 ms or
1 MiB, a reservation now and then. `time.thread_time()` over 200,000 appends of a top
of 10 levels a side, median of 5 runs after a warm-up; `wire.encode` of the top (which
the engine pays to publish it anyway) is reported beside it, not included. Also what
opening a full log costs at the engine's start (`mdlog_open_cpu_s`: CPU seconds to
index `FULL` tops, about a full log at the default 256 MiB). The same appends and
encodings for tops that carry a turn's trades (`TopOfBook.trades`): one print
(`_1_trade`, a lone marketable order) and ten (`_10_trades`, a sweep); a top without
trades encodes as it did before they existed, so the plain figures are the
no-trade turn's.
Run: `python -m tests.benchmarks.bench_mdlog` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import tempfile
import time
from statistics import median

import msgspec

from tickplane.core import wire
from tickplane.core.events import BookLevel, TopOfBook, TradePrint
from tickplane.engine.mdlog import MarketDataLog

N = 200_000
FULL = 1_500_000


def _tops(trades: int) -> list[TopOfBook]:
    """N tops of 10 levels a side, each carrying `trades` prints."""
    now = time.time_ns()
    return [
        TopOfBook(
            i,
            now + i,
            "GOOG",
            [BookLevel(1000 - k, 10, 1) for k in range(10)],
            [BookLevel(1001 + k, 10, 1) for k in range(10)],
            1000,
            [TradePrint(1001 + k, 10, "buy", now + i - 5_000) for k in range(trades)],
        )
        for i in range(1, N + 1)
    ]


def _appends(tops: list[TopOfBook], repeats: int) -> tuple[float, float, float]:
    """CPU us per append (median of `repeats`), bytes per top in the log, CPU us per
    `wire.encode` of a top."""
    frames = [wire.encode(t) for t in tops]
    append_us: list[float] = []
    size = 0
    for r in range(repeats + 1):
        with tempfile.TemporaryDirectory() as d:
            log = MarketDataLog(d, 256 << 20)
            t0 = time.thread_time()
            for t, f in zip(tops, frames, strict=True):
                log.append(t, f)
            log.flush()
            dt = time.thread_time() - t0
            size = log._size
            log.close()
        if r:
            append_us.append(dt / N * 1e6)
    t0 = time.thread_time()
    for t in tops:
        wire.encode(t)
    encode_us = (time.thread_time() - t0) / N * 1e6
    return median(append_us), size / N, encode_us


def run(repeats: int = 5) -> dict[str, float]:
    tops = _tops(0)
    frames = [wire.encode(t) for t in tops]
    append_us, per_top, encode_us = _appends(tops, repeats)
    out: dict[str, float] = {}
    for n, suffix in ((1, "_1_trade"), (10, "_10_trades")):
        a, b, e = _appends(_tops(n), repeats)
        out["mdlog_append_cpu_us" + suffix] = round(a, 3)
        out["mdlog_bytes_per_top" + suffix] = round(b, 1)
        out["top_encode_cpu_us" + suffix] = round(e, 3)
    with tempfile.TemporaryDirectory() as d:
        log = MarketDataLog(d, 256 << 20)
        for i in range(1, FULL + 1):
            # the index keys on the top's md_seq; the frame's content does not matter here
            log.append(msgspec.structs.replace(tops[0], md_seq=i), frames[i % N])
        log.close()
        t0 = time.process_time()
        full = MarketDataLog(d, 256 << 20)
        open_s = time.process_time() - t0
        full.close()
    return {
        "mdlog_open_cpu_s": round(open_s, 2),
        "mdlog_append_cpu_us": round(append_us, 3),
        "mdlog_bytes_per_top": round(per_top, 1),
        "top_encode_cpu_us": round(encode_us, 3),
        **out,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
