"""Recorder benchmarks: events per second into PostgreSQL, Kafka and Redis, each beside
a baseline measured in the same run.

The servers are started the way the tests start them (`tests/services/servers.py`,
`tests/kafka/broker.py`; the Kafka broker with its full JIT, as a measured broker
should run), on loopback, for this run only.

The stream is synthetic but shaped like the engine's: per round trip, a resting order
accepted, a marketable one accepted, their trade, both accounts' position changes, and
every fourth round a cancel (about 5.25 events a round), on 4 symbols and 8 accounts,
plus a top of book per trade. It is written in batches of `BATCH` events (the
recorder's `max_batch`), as the recorder's loop takes them off a backlog, through the
real sinks (`write()`: the exactly-once check, the fold, COPY + merge / the Kafka
transaction / the Lua script).

Baselines, same rows or records, same batches:
- PostgreSQL: one COPY per batch of one row per event (seq, type, JSON) into a plain
  table, one transaction each: the floor of getting the events into PostgreSQL at all.
- Kafka: aiokafka's plain producer, idempotent, acks=all, no transaction, one `send()`
  per record and a flush per batch: what the recorder would do without its
  transactions and batch building.
- Redis: one pipelined `SET` per event (no script, no seq check).

Each figure is the median of `repeats` samples after one warm-up. Run:
`python -m tests.benchmarks.bench_recorder` (one JSON object on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `tickplane bench` loads this file by path
    sys.path.insert(0, str(REPO))

from tests.benchmarks.measure import median  # noqa: E402
from tests.kafka.broker import KafkaBroker, fetch_libs  # noqa: E402
from tests.services.servers import PostgresServer, RedisServer  # noqa: E402
from tickplane.api.recorder.kafka_sink import KafkaSink  # noqa: E402
from tickplane.api.recorder.postgres_sink import PostgresSink  # noqa: E402
from tickplane.api.recorder.redis_sink import RedisSink  # noqa: E402
from tickplane.api.recorder.service import RecorderSettings  # noqa: E402
from tickplane.core.events import (  # noqa: E402
    BookLevel,
    Event,
    OrderAccepted,
    OrderCanceled,
    PositionChanged,
    TopOfBook,
    Trade,
)

__all__ = ["run"]

EVENTS = 100_000
# The recorder's own batch limit: what its loop takes at once off a backlog.
BATCH = int(RecorderSettings.model_fields["max_batch"].default)
SYMBOLS = ["GOOG", "AAPL", "MSFT", "AMZN"]
ACCOUNTS = [f"acct-{i}" for i in range(8)]
_json = msgspec.json.Encoder()


def stream(n: int) -> tuple[list[Event], list[TopOfBook]]:
    """About `n` sequenced events and a top of book per trade (see module docstring)."""
    events: list[Event] = []
    tops: list[TopOfBook] = []
    seq = 0
    oid = 0
    ts = time.time_ns()
    pos: dict[tuple[str, str], int] = {}
    i = 0
    while len(events) < n:
        sym = SYMBOLS[i % len(SYMBOLS)]
        maker, taker = ACCOUNTS[i % len(ACCOUNTS)], ACCOUNTS[(i + 3) % len(ACCOUNTS)]
        price = 10_000 + i % 17
        ts += 1000
        oid += 2
        seq += 1
        events.append(OrderAccepted(seq, ts, oid - 1, maker, sym, "sell", "limit", 10, price))
        seq += 1
        events.append(OrderAccepted(seq, ts, oid, taker, sym, "buy", "limit", 4, price))
        seq += 1
        events.append(Trade(seq, ts, sym, price, 4, oid, oid - 1, "buy", taker, maker))
        for acct, d in ((taker, 4), (maker, -4)):
            p = pos[(acct, sym)] = pos.get((acct, sym), 0) + d
            seq += 1
            events.append(PositionChanged(seq, ts, acct, sym, p, p * price, 0, -p * price))
        if i % 4 == 0:
            seq += 1
            events.append(OrderCanceled(seq, ts, oid - 1, maker, sym, 6, "canceled"))
        tops.append(
            TopOfBook(i + 1, ts, sym, [BookLevel(price - 1, 5, 1)], [BookLevel(price, 6, 1)], price)
        )
        i += 1
    return events, tops


def _batches(
    events: list[Event], tops: list[TopOfBook]
) -> list[tuple[list[Event], list[TopOfBook]]]:
    """The stream cut into BATCH-event batches, each with the tops of its time."""
    out = []
    t = 0
    for start in range(0, len(events), BATCH):
        chunk = events[start : start + BATCH]
        last_ts = chunk[-1].ts_event
        j = t
        while j < len(tops) and tops[j].ts_event <= last_ts:
            j += 1
        out.append((chunk, tops[t:j]))
        t = j
    return out


async def _timed(work: Callable[[], Awaitable[int]]) -> float:
    began = time.perf_counter()
    n = await work()
    return n / (time.perf_counter() - began)


# -- PostgreSQL ----------------------------------------------------------------------------


async def _pg_recorder(dsn: str, events: list[Event], tops: list[TopOfBook]) -> float:
    sink = PostgresSink(dsn, "bench-" + uuid.uuid4().hex[:8])
    await sink.open()
    batches = _batches(events, tops)

    async def work() -> int:
        return sum([await sink.write(ev, tp) for ev, tp in batches])

    try:
        return await _timed(work)
    finally:
        await sink.close()


async def _pg_baseline(dsn: str, events: list[Event]) -> float:
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_events (seq bigint, type text, body jsonb)"
    )
    await conn.execute("TRUNCATE bench_events")
    rows = [(e.seq, e.__struct_config__.tag, _json.encode(e.to_dict()).decode()) for e in events]

    async def work() -> int:
        for start in range(0, len(rows), BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "bench_events", records=rows[start : start + BATCH]
                )
        return len(rows)

    try:
        return await _timed(work)
    finally:
        await conn.close()


# -- Kafka ---------------------------------------------------------------------------------


async def _kafka_recorder(bootstrap: str, events: list[Event], tops: list[TopOfBook]) -> float:
    sink = KafkaSink(bootstrap, "bench-" + uuid.uuid4().hex[:8])
    await sink.open()
    batches = _batches(events, tops)

    async def work() -> int:
        return sum([await sink.write(ev, tp) for ev, tp in batches])

    try:
        return await _timed(work)
    finally:
        await sink.close()


async def _kafka_baseline(bootstrap: str, events: list[Event]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        linger_ms=5,
    )
    await producer.start()
    topic = "bench-baseline-" + uuid.uuid4().hex[:8]
    await producer.partitions_for(topic)  # auto-created before the clock starts

    async def work() -> int:
        for start in range(0, len(events), BATCH):
            for e in events[start : start + BATCH]:
                key = getattr(e, "symbol", None) or "*"
                await producer.send(
                    topic,
                    _json.encode(e.to_dict()),
                    key=key.encode(),
                    headers=[("seq", str(e.seq).encode())],
                )
            await producer.flush()
        return len(events)

    try:
        return await _timed(work)
    finally:
        await producer.stop()


# -- Redis ---------------------------------------------------------------------------------


async def _redis_recorder(url: str, events: list[Event], tops: list[TopOfBook]) -> float:
    sink = RedisSink(url, "bench-" + uuid.uuid4().hex[:8])
    await sink.open()
    batches = _batches(events, tops)

    async def work() -> int:
        return sum([await sink.write(ev, tp) for ev, tp in batches])

    try:
        return await _timed(work)
    finally:
        await sink.close()


async def _redis_baseline(url: str, events: list[Event]) -> float:
    r = aioredis.Redis.from_url(url)
    prefix = "bench-" + uuid.uuid4().hex[:8]

    async def work() -> int:
        for start in range(0, len(events), BATCH):
            pipe = r.pipeline(transaction=False)
            for e in events[start : start + BATCH]:
                pipe.set(f"{prefix}:{e.seq}", _json.encode(e.to_dict()))
            await pipe.execute()
        return len(events)

    try:
        return await _timed(work)
    finally:
        await r.aclose()


# -- the run -------------------------------------------------------------------------------


def _fresh_db(pg: PostgresServer) -> str:
    return pg.create_database("bench")


def run(json_out: bool = False, repeats: int = 3) -> dict[str, float]:
    """Start the servers, measure every figure (median of `repeats`), stop them.

    Nothing is printed on stdout (progress goes to stderr unless `json_out`)."""
    events, tops = stream(EVENTS)
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="tickplane-bench-recorder-") as tmp:
        base = Path(tmp)
        libs = fetch_libs(echo=not json_out)
        with (
            PostgresServer(base / "pg") as pg,
            RedisServer(base / "redis") as rd,
            KafkaBroker(libs, base / "kafka", jvm_options=()) as kafka,
        ):
            dsn = _fresh_db(pg)

            async def measure() -> None:
                for i in range(repeats + 1):  # the first round warms up
                    figures = {
                        "recorder_pg_events_per_sec": await _pg_recorder(dsn, events, tops),
                        "baseline_pg_copy_events_per_sec": await _pg_baseline(dsn, events),
                        "recorder_kafka_events_per_sec": await _kafka_recorder(
                            kafka.bootstrap, events, tops
                        ),
                        "baseline_kafka_send_events_per_sec": await _kafka_baseline(
                            kafka.bootstrap, events
                        ),
                        "recorder_redis_events_per_sec": await _redis_recorder(
                            rd.url, events, tops
                        ),
                        "baseline_redis_set_events_per_sec": await _redis_baseline(rd.url, events),
                    }
                    if i:
                        for k, v in figures.items():
                            add(k, v)
                    if not json_out:  # progress on stderr: stdout is for the JSON
                        label = f"round {i}{' (warm-up)' if not i else ''}: "
                        line = ", ".join(f"{k}={v:,.0f}" for k, v in figures.items())
                        print(label + line, file=sys.stderr, flush=True)

            asyncio.run(measure())

    out = {k: round(median(v), 1) for k, v in samples.items()}
    for sink, base_name in (
        ("pg", "baseline_pg_copy_events_per_sec"),
        ("kafka", "baseline_kafka_send_events_per_sec"),
        ("redis", "baseline_redis_set_events_per_sec"),
    ):
        out[f"recorder_{sink}_vs_baseline"] = round(
            out[f"recorder_{sink}_events_per_sec"] / out[base_name], 3
        )
    out["events"] = float(len(events))
    out["batch"] = float(BATCH)
    out["repeats"] = float(repeats)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="only the JSON result on stdout")
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    result = run(json_out=args.json, repeats=args.repeats)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
