"""The recorder against a real engine process, PostgreSQL, Redis and Kafka: every sink
ends up holding exactly the engine's events, once, through a kill -9 of the recorder,
outages of PostgreSQL and Kafka, and duplicate deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import asyncpg
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.engine.conftest import EngineProcess
from tests.kafka.broker import KafkaBroker
from tests.services.servers import PostgresServer, free_port
from tickplane.api.recorder.kafka_sink import KafkaSink
from tickplane.api.recorder.postgres_sink import PostgresSink
from tickplane.api.recorder.redis_sink import RedisSink
from tickplane.api.recorder.service import Recorder, RecorderSettings
from tickplane.core.client import EngineClient
from tickplane.core.events import (
    OrderAccepted,
    OrderRejected,
    OrderTrailed,
    PositionChanged,
    Trade,
)

from .checks import (
    check_kafka,
    check_market_data,
    check_postgres,
    check_redis,
    check_tops,
    class_flow,
    engine_events,
    engine_tops,
    kafka_records,
    kafka_seqs,
    md_now,
    md_progress,
    order_flow,
    pg_last_seq,
    redis_last_seq,
    redis_md_seq,
    reference_orders,
    settle,
    wait_for,
)
from .conftest import stop_process


def settings(
    engine: EngineProcess,
    database_url: str,
    redis_url: str,
    kafka: str,
    symbols: tuple[str, ...] = ("GOOG", "AAPL"),
) -> RecorderSettings:
    return RecorderSettings(
        engine_name=engine.name,
        engine_order_entry=engine.order_entry,
        engine_events=engine.events,
        symbols=list(symbols),
        database_url=database_url,
        redis_url=redis_url,
        kafka=kafka,
        max_backoff=0.5,
        kafka_timeout=2.0,
        metrics_port=0,
    )


def errors(sink: str) -> float:
    """tickplane_recorder_errors_total of `sink` in this process."""
    return REGISTRY.get_sample_value("tickplane_recorder_errors_total", {"sink": sink}) or 0.0


async def caught_up(engine: EngineProcess, database_url: str, redis_url: str, kafka: str) -> None:
    """Wait until every sink holds the engine's last seq."""
    async with EngineClient(engine.order_entry, engine.events) as client:
        last = (await engine_events(client))[-1].seq

    async def done() -> bool:
        return (
            await pg_last_seq(database_url, engine.name) == last
            and await redis_last_seq(redis_url, engine.name) == last
            and (await kafka_seqs(kafka, engine.name) or [0])[-1] >= last
        )

    await wait_for(done, 20, f"every sink to reach seq {last}", step=0.25)


async def check_all(
    engine: EngineProcess, database_url: str, redis_url: str, kafka: str, *, tops: bool = True
) -> int:
    """Every sink holds exactly the engine's events; with `tops` (a recorder running),
    the books are settled first and the tops of book checked too."""
    async with EngineClient(engine.order_entry, engine.events) as client:
        if tops:
            await settle(client)
            await caught_up(engine, database_url, redis_url, kafka)
            await check_tops(client, database_url, redis_url, kafka, engine.name)
        events = await engine_events(client)
    await check_postgres(database_url, engine.name, events)
    await check_redis(redis_url, engine.name, events)
    await check_kafka(kafka, engine.name, events)
    return len(events)


def test_events_reach_every_sink_exactly_once(
    engine: EngineProcess, database_url: str, redis: Any, rec_kafka: KafkaBroker
) -> None:
    async def main() -> None:
        # No symbols given: the tops of every symbol the engine trades are recorded.
        rec = Recorder(settings(engine, database_url, redis.url, rec_kafka.bootstrap, ()))
        task = asyncio.create_task(rec.run())
        try:
            async with EngineClient(engine.order_entry, engine.events) as client:
                await order_flow(client, 300, seed=1)
            await caught_up(engine, database_url, redis.url, rec_kafka.bootstrap)
            n = await check_all(engine, database_url, redis.url, rec_kafka.bootstrap)
            assert n > 300  # accepted, trades, positions, cancels... all arrived
        finally:
            rec.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(main())


def test_duplicate_delivery_writes_nothing_twice(
    engine: EngineProcess, database_url: str, redis: Any, rec_kafka: KafkaBroker
) -> None:
    async def main() -> None:
        rec = Recorder(settings(engine, database_url, redis.url, rec_kafka.bootstrap))
        task = asyncio.create_task(rec.run())
        try:
            async with EngineClient(engine.order_entry, engine.events) as client:
                await order_flow(client, 120, seed=2)
            await caught_up(engine, database_url, redis.url, rec_kafka.bootstrap)
        finally:
            rec.stop()
            await asyncio.wait_for(task, 30)
        async with EngineClient(engine.order_entry, engine.events) as client:
            events = await engine_events(client)
        # Fresh sinks (as after a restart) are handed ranges they already hold: all of
        # it, then an overlapping tail.
        sinks: list[PostgresSink | RedisSink | KafkaSink] = [
            PostgresSink(database_url, engine.name),
            RedisSink(redis.url, engine.name),
            KafkaSink(rec_kafka.bootstrap, engine.name),
        ]
        for sink in sinks:
            assert await sink.open() == events[-1].seq
            try:
                assert await sink.write(events) == 0
                assert await sink.write(events[len(events) // 2 :]) == 0
                if not isinstance(sink, KafkaSink):
                    # A second writer's view, its progress read before the other moved
                    # on: the check made atomically with the write still refuses.
                    sink.last_seq = events[len(events) // 3].seq
                    assert await sink.write(events) == 0
            finally:
                await sink.close()
        # Kafka's second writer is fenced instead: opening a new sink (a restarted
        # recorder) leaves the old one unable to commit anything.
        old, new = (KafkaSink(rec_kafka.bootstrap, engine.name) for _ in range(2))
        await old.open()
        await new.open()
        try:
            old.last_seq = events[len(events) // 3].seq
            with pytest.raises(ConnectionError, match="ProducerFenced"):
                await old.write(events)
        finally:
            await old.close()
            await new.close()
        await check_all(engine, database_url, redis.url, rec_kafka.bootstrap, tops=False)

    asyncio.run(main())


def test_kill_9_mid_stream_then_restart(
    engine: EngineProcess,
    database_url: str,
    redis: Any,
    rec_kafka: KafkaBroker,
    recorder_cmd: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    log = (tmp_path / "recorder.log").open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def spawn(metrics_port: int = 0) -> subprocess.Popen[bytes]:
        cmd = recorder_cmd("--metrics-port", str(metrics_port))
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    metrics_port = free_port()

    async def main() -> None:
        proc = spawn()
        try:
            async with EngineClient(engine.order_entry, engine.events) as client:
                enough = asyncio.Event()
                flow = asyncio.create_task(
                    order_flow(client, 5000, seed=3, pause=0.004, until=enough)
                )

                # Kill it once every sink has written part of the stream, while the
                # flow goes on.
                async def partway() -> bool:
                    return (
                        await pg_last_seq(database_url, engine.name) > 50
                        and await redis_last_seq(redis.url, engine.name) > 50
                        and len(await kafka_seqs(rec_kafka.bootstrap, engine.name)) > 50
                    )

                await wait_for(partway, 60, "the recorder to write some events")
                assert not flow.done(), "the flow ended before the kill: not mid-stream"
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                at_kill = await pg_last_seq(database_url, engine.name)
                restarted = spawn(metrics_port)
                try:
                    # The flow goes on until the restarted recorder writes past the kill.
                    async def resumed() -> bool:
                        return await pg_last_seq(database_url, engine.name) > at_kill + 50

                    await wait_for(resumed, 60, "the restarted recorder to write")
                    enough.set()
                    await flow
                    await caught_up(engine, database_url, redis.url, rec_kafka.bootstrap)
                    n = await check_all(engine, database_url, redis.url, rec_kafka.bootstrap)
                    # Its metrics: no lag, and what the restarted process wrote.
                    url = f"http://127.0.0.1:{metrics_port}/metrics"
                    text = await asyncio.to_thread(lambda: urlopen(url, timeout=5).read().decode())
                    samples = {
                        (s.name, s.labels.get("sink")): s.value
                        for m in text_string_to_metric_families(text)
                        for s in m.samples
                    }
                    for sink in ("postgres", "redis", "kafka"):
                        assert samples[("tickplane_recorder_lag_events", sink)] == 0
                        assert samples[("tickplane_recorder_last_seq", sink)] == n
                        written = samples[("tickplane_recorder_events_written_total", sink)]
                        assert 0 < written < n  # the rest was written before the kill
                    # SIGTERM: a clean stop, promptly.
                    restarted.terminate()
                    assert await asyncio.to_thread(restarted.wait, 20) == 0
                finally:
                    stop_process(restarted)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            log.close()

    asyncio.run(main())


def test_market_data_through_recorder_and_sink_outages(
    engine: EngineProcess,
    database_url: str,
    redis: Any,
    rec_kafka: KafkaBroker,
    rec_postgres: PostgresServer,
    recorder_cmd: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """Tops of book published while the recorder is killed, and while PostgreSQL and
    Kafka are down, all reach every sink afterwards, each (symbol, md_seq) once."""
    log = (tmp_path / "recorder.log").open("wb")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TICKPLANE_RECORDER_MAX_BACKOFF": "0.5",
        "TICKPLANE_RECORDER_KAFKA_TIMEOUT": "2",
    }

    def spawn() -> subprocess.Popen[bytes]:
        cmd = recorder_cmd("--metrics-port", "0")
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    procs: list[subprocess.Popen[bytes]] = []

    async def main() -> None:
        async with EngineClient(engine.order_entry, engine.events) as client:

            async def sinks_at() -> bool:
                want = await md_now(client)
                got = await md_progress(database_url, redis.url, rec_kafka.bootstrap, engine.name)
                return all(p == want for p in got)

            async def redis_at() -> bool:
                return await redis_md_seq(redis.url, engine.name) == await md_now(client)

            procs.append(spawn())
            await order_flow(client, 150, seed=11)

            async def some_tops() -> bool:
                pg, rd, kf = await md_progress(
                    database_url, redis.url, rec_kafka.bootstrap, engine.name
                )
                return all(len(p) == 2 for p in (pg, rd, kf))

            await wait_for(some_tops, 60, "the recorder to write tops of book")
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(10)
            before = await md_now(client)
            await order_flow(client, 150, seed=12)  # the recorder is down
            rec_postgres.stop()
            rec_kafka.stop()
            try:
                procs.append(spawn())
                await order_flow(client, 150, seed=13)  # PostgreSQL and Kafka are down
                # Redis, up all along, gets the tops of both outages meanwhile.
                await wait_for(redis_at, 30, "Redis to catch up")
            finally:
                rec_postgres.start()
                rec_kafka.restart()
            await order_flow(client, 100, seed=14)
            after = await md_now(client)
            assert all(after[s] > before[s] + 20 for s in after)  # the books moved
            await wait_for(sinks_at, 60, "every sink's tops", step=0.25)
            # The events too, before the recorder stops: its tops' progress says nothing
            # of the event stream's (a gap fill may still be under way).
            await caught_up(engine, database_url, redis.url, rec_kafka.bootstrap)
            counts = await check_market_data(
                client, database_url, redis.url, rec_kafka.bootstrap, engine.name
            )
            assert counts == after  # nothing lost: the engine's log holds every top
            procs[1].terminate()
            assert await asyncio.to_thread(procs[1].wait, 20) == 0
            # Delivered again to fresh sinks (a restart, a duplicate): nothing twice.
            tops = [t for s in ("GOOG", "AAPL") for t in await engine_tops(client, s)]
            for sink in (
                PostgresSink(database_url, engine.name),
                RedisSink(redis.url, engine.name),
                KafkaSink(rec_kafka.bootstrap, engine.name),
            ):
                await sink.open()
                try:
                    assert sink.md_seq == after
                    await sink.write([], tops)
                finally:
                    await sink.close()
            await check_market_data(
                client, database_url, redis.url, rec_kafka.bootstrap, engine.name
            )
        await check_all(engine, database_url, redis.url, rec_kafka.bootstrap, tops=False)

    try:
        asyncio.run(main())
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        log.close()


def test_an_engine_kill_9_makes_no_top_twice(
    engine: EngineProcess, database_url: str, redis: Any, rec_kafka: KafkaBroker
) -> None:
    """The engine killed right after a burst (its market-data log's buffer lost) and
    restarted: every top its log kept is recorded, no (symbol, md_seq) twice, and the
    numbers after the restart never name a top of before."""

    async def recorded_tops() -> dict[tuple[str, int], list[Any]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT symbol, md_seq, ts_event, bid_price, ask_price FROM md_top_of_book"
                " WHERE engine = $1",
                engine.name,
            )
        finally:
            await conn.close()
        out: dict[tuple[str, int], list[Any]] = {}
        for r in rows:
            out.setdefault((r["symbol"], r["md_seq"]), []).append(tuple(r.values())[2:])
        return out

    async def main() -> None:
        rec = Recorder(settings(engine, database_url, redis.url, rec_kafka.bootstrap))
        task = asyncio.create_task(rec.run())
        try:
            async with EngineClient(engine.order_entry, engine.events) as client:
                await order_flow(client, 200, seed=21)
                before = await md_now(client)
            engine.kill()  # at once: the log's last tops are still in its buffer
            engine.start()
            async with EngineClient(engine.order_entry, engine.events) as client:
                await order_flow(client, 200, seed=22)
                now = await md_now(client)

                async def caught_up() -> bool:
                    got = await md_progress(
                        database_url, redis.url, rec_kafka.bootstrap, engine.name
                    )
                    return all(p == now for p in got)

                await wait_for(caught_up, 60, "every sink's tops after the restart", step=0.25)
                kept = {s: await engine_tops(client, s) for s in ("GOOG", "AAPL")}
            stored = await recorded_tops()
            assert all(len(v) == 1 for v in stored.values()), "a top written twice"
            for s in ("GOOG", "AAPL"):
                for t in kept[s]:  # every top the engine's log kept, as it kept it
                    bid = t.bids[0].price if t.bids else None
                    ask = t.asks[0].price if t.asks else None
                    assert stored[(s, t.md_seq)] == [(t.ts_event, bid, ask)]
                mine = sorted(m for sym, m in stored if sym == s)
                after = [m for m in mine if m > before[s]]
                # after the restart: numbers past all of before's, the engine's own
                assert after and min(after) > before[s] and max(after) == now[s]
                assert after == [t.md_seq for t in kept[s] if t.md_seq > before[s]]
            kafka = [
                (json.loads(v)["symbol"], int(h["md_seq"]))
                for _, h, v in await kafka_records(rec_kafka.bootstrap, engine.name)
                if "md_seq" in h
            ]
            assert len(kafka) == len(set(kafka)), "a top sent to Kafka twice"
            logged = {(s, t.md_seq) for s in kept for t in kept[s]}
            for sink, held in (("PostgreSQL", set(stored)), ("Kafka", set(kafka))):
                assert logged <= held, f"{sink} misses tops the engine's log kept"
                # Beyond the log: only tops of before the kill that the sink took live
                # (lost with the log's buffer, so each sink may hold a different few).
                extra = {(s, m) for s, m in held - logged if m > before[s]}
                assert not extra, f"{sink} holds tops the engine never kept: {extra}"
        finally:
            rec.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(main())


def test_postgres_and_kafka_outage_is_ridden_out(
    engine: EngineProcess,
    database_url: str,
    redis: Any,
    rec_kafka: KafkaBroker,
    rec_postgres: PostgresServer,
    caplog: Any,
) -> None:
    async def main() -> None:
        rec = Recorder(settings(engine, database_url, redis.url, rec_kafka.bootstrap))
        task = asyncio.create_task(rec.run())
        try:
            async with EngineClient(engine.order_entry, engine.events) as client:
                await order_flow(client, 100, seed=4)
                await caught_up(engine, database_url, redis.url, rec_kafka.bootstrap)
                before = await redis_last_seq(redis.url, engine.name)
                errors_before = {n: errors(n) for n in ("postgres", "kafka")}
                rec_postgres.stop()
                rec_kafka.stop()
                try:
                    await order_flow(client, 150, seed=5)
                    # Redis is not held back by the others being down.
                    last = (await engine_events(client))[-1].seq

                    async def redis_done() -> bool:
                        return await redis_last_seq(redis.url, engine.name) == last

                    await wait_for(redis_done, 30, "Redis to keep up during the outage")
                    assert last > before

                    # The outage lasts until both sinks have failed and are retrying.
                    async def both_failed() -> bool:
                        return all(errors(n) > errors_before[n] for n in ("postgres", "kafka"))

                    await wait_for(both_failed, 30, "PostgreSQL and Kafka sinks to fail")
                finally:
                    rec_postgres.start()
                    rec_kafka.restart()
                await order_flow(client, 50, seed=6)
            await caught_up(engine, database_url, redis.url, rec_kafka.bootstrap)
            await check_all(engine, database_url, redis.url, rec_kafka.bootstrap)
        finally:
            rec.stop()
            await asyncio.wait_for(task, 30)

    with caplog.at_level("WARNING", logger="tickplane.recorder"):
        asyncio.run(main())
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "postgres:" in logged and "kafka:" in logged and "retrying" in logged


def test_postgres_rows_do_not_depend_on_batching(
    engine: EngineProcess, rec_postgres: PostgresServer
) -> None:
    """The same events written one at a time and in random batches: the same orders,
    executions and positions as applying them one by one."""

    async def main() -> None:
        async with EngineClient(engine.order_entry, engine.events) as client:
            await order_flow(client, 150, seed=7)
            events = await engine_events(client)
        rng = random.Random(7)
        for sizes in ([1], [rng.randint(2, 40) for _ in range(100)]):
            dsn = rec_postgres.create_database("rec")
            sink = PostgresSink(dsn, engine.name)
            await sink.open()
            try:
                i = 0
                for size in itertools.cycle(sizes):
                    if i >= len(events):
                        break
                    await sink.write(events[i : i + size])
                    i += size
            finally:
                await sink.close()
            await check_postgres(dsn, engine.name, events)

    asyncio.run(main())


def test_a_late_fill_of_a_rejected_order_keeps_it_rejected_with_its_fills(
    rec_postgres: PostgresServer,
) -> None:
    """An order rejected before it was accepted (its submit may have reached the venue),
    then filled there twice (docs/venues.md, "Late fills"): its row stays `rejected`,
    with what it filled and nothing open, whether the fills come in the reject's batch
    or in later ones; each fill is an execution."""
    venue = "venue:alpaca"
    events = [
        OrderRejected(1, 10, 7, "alice", "venue_unavailable"),
        Trade(2, 11, "GOOG", 101, 4, 7, 0, "buy", "alice", venue),
        PositionChanged(3, 11, "alice", "GOOG", 4, 404, 0, -404),
        Trade(4, 12, "GOOG", 102, 2, 7, 0, "buy", "alice", venue),
        PositionChanged(5, 12, "alice", "GOOG", 6, 608, 0, -608),
    ]

    async def main() -> None:
        for sizes in (len(events), 1):
            dsn = rec_postgres.create_database("rec")
            sink = PostgresSink(dsn, "late")
            await sink.open()
            try:
                for i in range(0, len(events), sizes):
                    await sink.write(events[i : i + sizes])
            finally:
                await sink.close()
            conn = await asyncpg.connect(dsn)
            try:
                row = await conn.fetchrow(
                    "SELECT status, reason, open_qty, filled_qty, filled_notional"
                    " FROM orders WHERE engine = 'late' AND id = 7"
                )
                fills = await conn.fetch(
                    "SELECT qty, price FROM executions"
                    " WHERE engine = 'late' AND order_id = 7 ORDER BY seq"
                )
                position = await conn.fetchval(
                    "SELECT position FROM positions WHERE engine = 'late' AND account = 'alice'"
                )
            finally:
                await conn.close()
            assert tuple(row) == ("rejected", "venue_unavailable", 0, 6, 608), sizes
            assert [tuple(f) for f in fills] == [(4, 101), (2, 102)]
            assert position == 6

    asyncio.run(main())


def test_trailing_stops_moving_stop_is_stored_once_per_seq(
    engine: EngineProcess, rec_postgres: PostgresServer, rec_kafka: KafkaBroker
) -> None:
    """A trailing stop's stop and watermark follow the trades (OrderTrailed): the orders
    row holds the last ones, whatever the batching, and a second delivery of the same
    events changes nothing; Kafka carries each OrderTrailed once."""

    async def main() -> None:
        async with EngineClient(engine.order_entry, engine.events) as client:

            async def cross(price: int) -> None:
                await client.submit("alice", "GOOG", "sell", "limit", 1, price=price)
                await client.submit("bob", "GOOG", "buy", "limit", 1, price=price)

            await cross(1_000)
            await client.submit("carol", "GOOG", "sell", "trailing_stop", 5, trail_price=10)
            await client.submit("carol", "GOOG", "buy", "trailing_stop", 5, trail_percent=1.0)
            for price in (1_004, 1_010, 1_002, 1_020, 1_015):
                await cross(price)
            await order_flow(client, 40, seed=11)
            events = await engine_events(client)
        trailed = [e for e in events if isinstance(e, OrderTrailed)]
        trailing = [
            e.id for e in events if isinstance(e, OrderAccepted) and e.order_type == "trailing_stop"
        ]
        assert len(trailing) == 2 and trailed and {e.id for e in trailed} <= set(trailing)
        rng = random.Random(3)
        for sizes in ([1], [rng.randint(2, 12) for _ in range(50)], [len(events)]):
            dsn = rec_postgres.create_database("rec")
            sink = PostgresSink(dsn, engine.name)
            await sink.open()
            try:
                i = 0
                for size in itertools.cycle(sizes):
                    if i >= len(events):
                        break
                    await sink.write(events[i : i + size])
                    i += size
                assert await sink.write(events) == 0  # delivered again: nothing written
            finally:
                await sink.close()
            await check_postgres(dsn, engine.name, events)  # stop_price and hwm included
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(
                    "SELECT id, stop_price, hwm FROM orders WHERE id = ANY($1::bigint[])",
                    trailing,
                )
            finally:
                await conn.close()
            last = {e.id: (e.stop_price, e.hwm) for e in trailed}
            stored = {r["id"]: (r["stop_price"], r["hwm"]) for r in rows}
            assert {i: stored[i] for i in last} == last
            assert stored[trailing[0]] == (1_010, 1_020)  # the sell's stop: the high less 10
        kafka = KafkaSink(rec_kafka.bootstrap, engine.name)
        await kafka.open()
        try:
            await kafka.write(events[: len(events) // 2])
            await kafka.write(events)  # the first half again: dropped
        finally:
            await kafka.close()
        await check_kafka(rec_kafka.bootstrap, engine.name, events)

    asyncio.run(main())


def test_order_classes_rows_equal_the_projections_view(
    engine: EngineProcess, rec_postgres: PostgresServer, rec_kafka: KafkaBroker
) -> None:
    """Brackets, an OTO, OCOs and trailing stops through a real engine: the orders rows
    hold each order's class, parent, leg role and trail, and the status, quantities and
    prices the gateway's projection shows (`held` legs until activated, a leg ended by
    its parent's close), whatever the batching, a second delivery writing nothing;
    Kafka carries their events (OrderActivated included) once."""

    async def main() -> None:
        async with EngineClient(engine.order_entry, engine.events) as client:
            ids = await class_flow(client)
            await order_flow(client, 60, seed=5)
            events = await engine_events(client)
        ref = reference_orders(events)

        def state(oid: int) -> tuple[Any, ...]:
            o = ref[oid]
            return (o["order_class"], o["leg"], o["status"], o["open_qty"], o["filled_qty"])

        # The flow reaches the states the recorder has to tell apart (so that the
        # comparison below can fail): legs held, activated, ended with their parents.
        b, oto, oco = ids["b_sl"], ids["oto"], ids["oco_sl"]
        assert state(b) == ("bracket", None, "filled", 0, 4)
        assert state(b + 1) == ("bracket", "take_profit", "canceled", 0, 2)
        assert state(b + 2) == ("bracket", "stop_loss", "filled", 0, 2)
        b = ids["b_cut"]
        assert state(b) == ("bracket", None, "canceled", 0, 4)
        assert state(b + 1) == ("bracket", "take_profit", "filled", 0, 4)
        assert state(b + 2)[2] == "canceled"
        b = ids["b_held"]
        assert state(b + 1)[2] == "canceled"
        assert state(b + 2) == ("bracket", "stop_loss", "held", 0, 0)
        assert ref[b + 2]["stop_price"] == 910 and ref[b + 2]["parent_id"] == b
        b = ids["b_part"]
        assert state(b) == ("bracket", None, "partially_filled", 4, 2)
        assert state(b + 1) == ("bracket", "take_profit", "new", 2, 0)
        assert state(b + 2) == ("bracket", "stop_loss", "held", 2, 0)
        assert state(oto + 1) == ("oto", "take_profit", "partially_filled", 3, 1)
        assert state(oco)[:3] == ("oco", None, "canceled")
        assert state(oco + 1) == ("oco", "stop_loss", "filled", 0, 3)
        assert state(ids["oco_open"] + 1) == ("oco", "stop_loss", "held", 2, 0)
        assert state(ids["stop"]) == (None, None, "held", 2, 0)
        # their trails as replaced (OrderReplaced), not as accepted (20, 2.5)
        assert (ref[ids["trail_sell"]]["trail_price"], ref[ids["trail_sell"]]["trail_percent"]) == (
            25,
            None,
        )
        assert (ref[ids["trail_buy"]]["trail_price"], ref[ids["trail_buy"]]["trail_percent"]) == (
            None,
            3.5,
        )
        assert ref[ids["trail_buy"]]["order_class"] == "simple"
        assert any(r["status"] == "rejected" and r["symbol"] is None for r in ref.values())

        rng = random.Random(13)
        for sizes in ([1], [rng.randint(2, 12) for _ in range(60)], [len(events)]):
            dsn = rec_postgres.create_database("rec")
            sink = PostgresSink(dsn, engine.name)
            await sink.open()
            try:
                i = 0
                for size in itertools.cycle(sizes):
                    if i >= len(events):
                        break
                    await sink.write(events[i : i + size])
                    i += size
                assert await sink.write(events) == 0  # delivered again: nothing written
            finally:
                await sink.close()
            await check_postgres(dsn, engine.name, events)  # every order as projected
        kafka = KafkaSink(rec_kafka.bootstrap, engine.name)
        await kafka.open()
        try:
            await kafka.write(events[: len(events) // 2])
            await kafka.write(events)  # the first half again: dropped
        finally:
            await kafka.close()
        await check_kafka(rec_kafka.bootstrap, engine.name, events)

    asyncio.run(main())


def test_recorder_without_a_sink_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKPLANE_RECORDER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tickplane.cli.main", "recorder", "--engine-name", "e1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no sink" in proc.stderr and "Traceback" not in proc.stderr


def test_postgres_history_is_partitioned_by_day(rec_postgres: PostgresServer) -> None:
    """Trades of days far from today get their day's partitions, one batch across two
    days included, and each row lands in its own day's."""
    day1 = 1_577_836_800 * 10**9  # 2020-01-01T00:00:00Z in ns
    day2 = day1 + 86_400 * 10**9

    def trade(seq: int, ts: int) -> Trade:
        return Trade(seq, ts, "GOOG", 100, 1, seq * 2, seq * 2 - 1, "buy", "a", "b")

    async def main() -> None:
        dsn = rec_postgres.create_database("rec")
        sink = PostgresSink(dsn, "days")
        await sink.open()
        try:
            await sink.write([trade(1, day1 + 5), trade(2, day1 + 6)])  # one day
            await sink.write([trade(3, day2 - 1), trade(4, day2)])  # across midnight
        finally:
            await sink.close()
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT seq, tableoid::regclass::text AS part FROM md_trades ORDER BY seq"
            )
            got = [(r["seq"], r["part"]) for r in rows]
            execs = await conn.fetchval("SELECT count(*) FROM executions_p20200102")
        finally:
            await conn.close()
        assert got == [
            (1, "md_trades_p20200101"),
            (2, "md_trades_p20200101"),
            (3, "md_trades_p20200101"),
            (4, "md_trades_p20200102"),
        ]
        assert execs == 2  # both sides of trade 4

    asyncio.run(main())


def test_minute_bars_are_kept_with_the_trades_whatever_the_batches(
    rec_postgres: PostgresServer,
) -> None:
    """md_minute_bars, merged batch by batch (a minute split across batches, a batch
    written twice), equals the minute bars computed here from the trades, and what
    `recorder_rebuild_minute_bars` makes of md_trades."""
    base = 1_577_836_800 * 10**9  # 2020-01-01T00:00:00Z in ns
    rng = random.Random(11)
    trades = [
        Trade(
            seq, base + seq * 7 * 10**9 + rng.randrange(10**9), rng.choice(["GOOG", "AAPL"]),
            rng.randint(90, 110), rng.randint(1, 9), seq * 2, seq * 2 - 1, "buy", "a", "b",
        )
        for seq in range(1, 121)
    ]  # fmt: skip
    expected: dict[tuple[str, datetime], list[int]] = {}
    for t in trades:  # (open, high, low, close, volume, trades, notional)
        key = (t.symbol, datetime.fromtimestamp(t.ts_event // 60_000_000_000 * 60, UTC))
        b = expected.setdefault(key, [t.price, t.price, t.price, t.price, 0, 0, 0])
        b[1], b[2], b[3] = max(b[1], t.price), min(b[2], t.price), t.price
        b[4], b[5], b[6] = b[4] + t.qty, b[5] + 1, b[6] + t.price * t.qty
    columns = "symbol, minute, open, high, low, close, volume, trades, notional"

    async def main() -> None:
        dsn = rec_postgres.create_database("rec")
        sink = PostgresSink(dsn, "bars")
        await sink.open()
        try:
            i = 0
            while i < len(trades):
                size = rng.randint(1, 15)
                await sink.write(trades[i : i + size])
                await sink.write(trades[max(0, i - 3) : i + size])  # again: nothing twice
                i += size
        finally:
            await sink.close()
        conn = await asyncpg.connect(dsn)
        try:
            kept = await conn.fetch(f"SELECT {columns} FROM md_minute_bars ORDER BY 1, 2")
            await conn.execute("SELECT recorder_rebuild_minute_bars('-infinity', 'infinity')")
            rebuilt = await conn.fetch(f"SELECT {columns} FROM md_minute_bars ORDER BY 1, 2")
        finally:
            await conn.close()
        want = [(s, m, *v) for (s, m), v in sorted(expected.items())]
        assert [tuple(r) for r in kept] == want
        assert [tuple(r) for r in rebuilt] == want

    asyncio.run(main())
