"""The engine's market-data log: CPU time per top of book appended (engine/mdlog.py).

What the engine loop pays per published top (once per turn and touched symbol): the
record built and checksummed, the index updated, the buffer written every 10 ms or
1 MiB, a reservation now and then. `time.thread_time()` over 200,000 appends of a top
of 10 levels a side, median of 5 runs after a warm-up; `wire.encode` of the top (which
the engine pays to publish it anyway) is reported beside it, not included. Also what
opening a full log costs at the engine's start (`mdlog_open_cpu_s`: CPU seconds to
index `FULL` tops, about a full log at the default 256 MiB).
Run: `python -m tests.benchmarks.bench_mdlog` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import tempfile
import time
from statistics import median

import msgspec

from tickplane.core import wire
from tickplane.core.events import BookLevel, TopOfBook
from tickplane.engine.mdlog import MarketDataLog

N = 200_000
FULL = 1_500_000


def run(repeats: int = 5) -> dict[str, float]:
    now = time.time_ns()
    tops = [
        TopOfBook(
            i,
            now + i,
            "GOOG",
            [BookLevel(1000 - k, 10, 1) for k in range(10)],
            [BookLevel(1001 + k, 10, 1) for k in range(10)],
            1000,
        )
        for i in range(1, N + 1)
    ]
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
        "mdlog_append_cpu_us": round(median(append_us), 3),
        "mdlog_bytes_per_top": round(size / N, 1),
        "top_encode_cpu_us": round(encode_us, 3),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
