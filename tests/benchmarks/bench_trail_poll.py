"""The Alpaca venue's trail poller: CPU time per poll round (engine/venues/alpaca.py).

Alpaca pushes nothing when a trailing stop's stop trails, so the adapter reads the open
orders (`GET /v2/orders?status=open` through alpaca-py, one request whatever the number
of trailing stops) every `trail_poll_seconds`, on its own thread in the engine's
process. What one round costs that thread: its CPU clock (`pthread_getcpuclockid`) over
`SECONDS` of rounds with `N` open trailing stops, polled as fast as the fake Alpaca
(tests/engine/fake_alpaca.py, in this process) answers, divided by the rounds; median
of 3 runs. Beside it, the same for reading one order (`GET /v2/orders/{id}`, what the
poller did per trailing stop before, and still does for those a full page of open
orders leaves out): the baseline, measured in the same run. Most of either is the HTTP
request through `requests` (a new connection each time: the fake closes every one),
Python work that holds the GIL the engine loop needs.
Run: `python -m tests.benchmarks.bench_trail_poll` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from statistics import median

from tickplane.engine.venues import alpaca as alpaca_venue
from tickplane.engine.venues.alpaca import AlpacaVenue
from tickplane.engine.venues.base import SymbolSpec, VenueAccepted, VenueEvent, VenueOrder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from fake_alpaca import FakeAlpaca  # tests/engine is not a package: found on the path

N = 20
LIMIT = alpaca_venue._OPEN_LIST_LIMIT
SECONDS = 3.0


def _reads(fake: FakeAlpaca, path: str) -> int:
    with fake._cond:
        return sum(1 for m, p, _ in fake.requests if m == "GET" and p == path)


def one_run(one_by_one: bool) -> tuple[float, float]:
    """(CPU microseconds a round, rounds a second); `one_by_one`: a round reads each
    trailing stop on its own (the open orders' page set to 1 order: the fallback)."""
    alpaca_venue._OPEN_LIST_LIMIT = 1 if one_by_one else LIMIT
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
            rounds0, cpu0, wall0 = (
                _reads(fake, "/v2/orders"),
                time.clock_gettime(clock),
                time.monotonic(),
            )
            time.sleep(SECONDS)  # a CPU-time sample over a fixed span, not a condition
            rounds1, cpu1, wall1 = (
                _reads(fake, "/v2/orders"),
                time.clock_gettime(clock),
                time.monotonic(),
            )
        finally:
            venue.stop()
            alpaca_venue._OPEN_LIST_LIMIT = LIMIT
    rounds = rounds1 - rounds0
    return 1e6 * (cpu1 - cpu0) / rounds, rounds / (wall1 - wall0)


def run(repeats: int = 3) -> dict[str, float]:
    listed = [one_run(False) for _ in range(repeats)]
    single = [one_run(True) for _ in range(repeats)]
    per_round = median(r[0] for r in listed)
    one_by_one = median(r[0] for r in single)
    return {
        "trailing_stops": N,
        "trail_round_cpu_us": round(per_round, 1),
        "trail_rounds_per_sec": round(median(r[1] for r in listed)),
        "trail_round_one_by_one_cpu_us": round(one_by_one, 1),
        "one_by_one_vs_listed": round(one_by_one / per_round, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
