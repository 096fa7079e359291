"""Pipelined order entry with the engine's ZeroMQ I/O thread floating on every CPU
against kept off the loop's CPU (what the engine does: docs/engine-service.md, "CPUs").

One ``tickplane engine`` (``pin_cpu: true``, fsync none), the pipelined flow of
``bench_wire.pipelined`` (one frame a request, a window of 1,000); before each sample
the engine's ``ZMQbg/*`` threads are given, from outside, either every CPU or every CPU
but the loop's, alternating, so that both see the same machine. Prints the medians and
the samples (requests per second).

    python -m tests.benchmarks.io_placement [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

import zmq

from tests.benchmarks import bench_wire as bw

SAMPLE = 100_000  # acked requests a sample


def _zmq_threads(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(t.name) for t in tasks.iterdir() if (t / "comm").read_text().startswith("ZMQbg/")]


def main(rounds: int) -> None:
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        raise SystemExit("needs two CPUs or more")
    eng = bw.Engine(Path(tempfile.mkdtemp()), "io", cpus, fsync="none")
    eng.start()
    try:
        assert eng.proc is not None
        hot = eng.status()["pinned_cpu"]
        client = max(cpus - {hot})
        placements = {"floating": cpus, "off the loop's CPU": cpus - {hot}}
        rates: dict[str, list[float]] = {name: [] for name in placements}
        with bw._pinned(client):
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            sock = bw._dealer(ctx, eng.order_entry)
            flow = bw.Flow(eng)
            flow.req = 1 << 40
            bw.pipelined(sock, flow, SAMPLE // 5, bw.WINDOW)  # warm-up
            for _ in range(rounds):
                for name, allowed in placements.items():
                    for tid in _zmq_threads(eng.proc.pid):
                        os.sched_setaffinity(tid, allowed)
                    r = bw.pipelined(sock, flow, SAMPLE, bw.WINDOW)
                    rates[name].append(r["acked"] / r["seconds"])
            sock.close(0)
            ctx.destroy(0)
    finally:
        eng.stop()
    for name, samples in rates.items():
        shown = " ".join(f"{x:,.0f}" for x in samples)
        print(f"{name}: median {statistics.median(samples):,.0f}/s ({shown})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
