"""The Alpaca venue's trail poller: CPU time per read of a trailing stop (engine/venues/alpaca.py).

Alpaca pushes nothing when a trailing stop's stop trails, so the adapter reads each open
one (`GET /v2/orders/{id}` through alpaca-py) every `trail_poll_seconds`, on its own
thread in the engine's process. What one read costs that thread: its CPU clock
(`pthread_getcpuclockid`) over `SECONDS` of reads of `N` open trailing stops polled as
fast as the fake Alpaca (tests/engine/fake_alpaca.py, in this process) answers, divided
by the reads it made; median of 3 runs. Most of it is the HTTP request through
`requests` (a new connection each read: the fake closes every one), Python work that
holds the GIL the engine loop needs; alpaca-py's pydantic parse of the order is ~6 us.
Run: `python -m tests.benchmarks.bench_trail_poll` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from statistics import median

from tickplane.engine.venues.alpaca import AlpacaVenue
from tickplane.engine.venues.base import SymbolSpec, VenueAccepted, VenueEvent, VenueOrder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from fake_alpaca import FakeAlpaca  # tests/engine is not a package: found on the path

N = 20
SECONDS = 3.0


def _reads(fake: FakeAlpaca) -> int:
    with fake._cond:
        return sum(1 for m, p, _ in fake.requests if m == "GET" and p.startswith("/v2/orders/"))


def one_run() -> tuple[float, float]:
    """(CPU microseconds a read, reads a second)."""
    with FakeAlpaca(symbols=("AAPL",)) as fake:
        accepted = threading.Semaphore(0)

        def emit(event: VenueEvent) -> None:
            if isinstance(event, VenueAccepted):
                accepted.release()

        venue = AlpacaVenue(
            fake.key_id,
            fake.secret_key,
            url_override=fake.rest_url,
            stream_url_override=fake.stream_url,
            symbols={"AAPL": SymbolSpec("0.01")},
            probe_interval=0.05,
            trail_poll_seconds=0.001,
        )
        venue.start(emit)
        try:
            deadline = time.monotonic() + 10
            while not venue.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            fake.trade("AAPL", "100")
            for i in range(N):
                venue.submit(
                    VenueOrder(
                        100 + i, "", "AAPL", "sell", "trailing_stop", 1, None, None, "gtc",
                        trail_price=150,
                    )
                )  # fmt: skip
            for _ in range(N):
                if not accepted.acquire(timeout=10):
                    raise RuntimeError("the fake did not accept the trailing stops")
            poller = next(t for t in threading.enumerate() if t.name == "alpaca-trail")
            assert poller.ident is not None
            clock = time.pthread_getcpuclockid(poller.ident)
            reads0, cpu0, wall0 = _reads(fake), time.clock_gettime(clock), time.monotonic()
            time.sleep(SECONDS)
            reads1, cpu1, wall1 = _reads(fake), time.clock_gettime(clock), time.monotonic()
        finally:
            venue.stop()
    reads = reads1 - reads0
    return 1e6 * (cpu1 - cpu0) / reads, reads / (wall1 - wall0)


def run(repeats: int = 3) -> dict[str, float]:
    runs = [one_run() for _ in range(repeats)]
    return {
        "trail_read_cpu_us": round(median(r[0] for r in runs), 1),
        "trail_reads_per_sec": round(median(r[1] for r in runs)),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
