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
no-trade turn's. And a turn that changed the levels, which logs the L2 delta after its
top (a delta of one changed level: an order resting or leaving at one price, the usual
turn): `mdlog_append_cpu_us_top_and_delta`, the CPU of both appends (compare
`mdlog_append_cpu_us`, the top's alone), `mdlog_bytes_per_delta`, `delta_encode_cpu_us`
(paid to publish it anyway), and `mdlog_open_cpu_s_with_deltas`, the open of a log
of `FULL` such turns (bounded at the default 256 MiB: what it holds of them is full).
Run: `python -m tests.benchmarks.bench_mdlog` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import tempfile
import time
from statistics import median

import msgspec

from tickplane.core import wire
from tickplane.core.events import BookDelta, BookLevel, MarketData, TopOfBook, TradePrint
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


def _deltas() -> list[BookDelta]:
    """The deltas of `_tops(0)`'s md_seqs, one changed bid level each."""
    now = time.time_ns()
    return [
        BookDelta(i, now + i, "GOOG", [BookLevel(1000 - i % 10, 10 + i % 7, 1)], [])
        for i in range(1, N + 1)
    ]


def _appends(mds: list[MarketData], repeats: int) -> tuple[float, float, float]:
    """CPU us per turn's appends (median of `repeats`), bytes per turn in the log, CPU
    us per turn's `wire.encode`: N turns, each a top or a top and its delta."""
    frames = [wire.encode(md) for md in mds]
    append_us: list[float] = []
    size = 0
    for r in range(repeats + 1):
        with tempfile.TemporaryDirectory() as d:
            log = MarketDataLog(d, 256 << 20)
            t0 = time.thread_time()
            for md, f in zip(mds, frames, strict=True):
                log.append(md, f)
            log.flush()
            dt = time.thread_time() - t0
            size = log._size
            log.close()
        if r:
            append_us.append(dt / N * 1e6)
    t0 = time.thread_time()
    for md in mds:
        wire.encode(md)
    encode_us = (time.thread_time() - t0) / N * 1e6
    return median(append_us), size / N, encode_us


def _open_cpu_s(mds: list[MarketData]) -> float:
    """CPU seconds to open a log (256 MiB) written with `FULL` turns of `mds`' kind
    (md_seq renumbered)."""
    per_turn = len(mds) // N
    frames = [wire.encode(md) for md in mds[:per_turn]]
    with tempfile.TemporaryDirectory() as d:
        log = MarketDataLog(d, 256 << 20)
        for i in range(1, FULL + 1):
            # the index keys on the message's md_seq; the frame's content (but its tag)
            # does not matter here
            for k in range(per_turn):
                md = mds[k]
                log.append(msgspec.structs.replace(md, md_seq=i), frames[k])
        log.close()
        t0 = time.process_time()
        full = MarketDataLog(d, 256 << 20)
        open_s = time.process_time() - t0
        full.close()
    return open_s


def run(repeats: int = 5) -> dict[str, float]:
    tops = _tops(0)
    append_us, per_top, encode_us = _appends(list(tops), repeats)
    out: dict[str, float] = {}
    for n, suffix in ((1, "_1_trade"), (10, "_10_trades")):
        a, b, e = _appends(list(_tops(n)), repeats)
        out["mdlog_append_cpu_us" + suffix] = round(a, 3)
        out["mdlog_bytes_per_top" + suffix] = round(b, 1)
        out["top_encode_cpu_us" + suffix] = round(e, 3)
    announcing = [msgspec.structs.replace(t, has_delta=True) for t in tops]
    turns: list[MarketData] = [md for p in zip(announcing, _deltas(), strict=True) for md in p]
    a, b, e = _appends(turns, repeats)
    out["mdlog_append_cpu_us_top_and_delta"] = round(a, 3)
    out["mdlog_bytes_per_delta"] = round(b - per_top, 1)
    out["delta_encode_cpu_us"] = round(e - encode_us, 3)
    out["mdlog_open_cpu_s_with_deltas"] = round(_open_cpu_s(turns), 2)
    return {
        "mdlog_open_cpu_s": round(_open_cpu_s(list(tops)), 2),
        "mdlog_append_cpu_us": round(append_us, 3),
        "mdlog_bytes_per_top": round(per_top, 1),
        "top_encode_cpu_us": round(encode_us, 3),
        **out,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
