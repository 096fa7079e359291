"""The Kafka sink: the engine's events on topics, each once, in seq order per key.

Topics `tickplane.<engine>.orders`, `.executions`, `.positions`, `.marketdata` and
`.recorder-progress` (the README lists what each holds and its key): values the events'
JSON (`to_dict()`), keyed by symbol, headers `seq` (ASCII digits; `md_seq` for top of
book) and `type`.

Exactly once: every batch is one Kafka transaction holding its records and a record
of its last seq (and, once tops were written, each symbol's last md_seq) on the progress
topic. The producer is idempotent (acks=all) and has a
fixed `transactional.id` per engine, so a restarted recorder's `init_transactions`
fences the previous process (a zombie can no longer write) and aborts whatever it left
open; the last committed progress record is then exactly what the data topics hold.
The sink reads it back (read_committed) on open and drops events at or below it, so
neither a restart nor a duplicate delivery writes a record twice for read_committed
consumers; tops of book likewise per (symbol, md_seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from tickplane.core.events import (
    Event,
    KillSwitchChanged,
    OrderAccepted,
    OrderActivated,
    OrderCanceled,
    OrderRejected,
    OrderReplaced,
    OrderTrailed,
    PositionChanged,
    StopTriggered,
    SymbolHalted,
    SymbolResumed,
    TopOfBook,
    Trade,
)

__all__ = ["KafkaSink", "kafka_topics"]

log = logging.getLogger(__name__)

_json = msgspec.json.Encoder()
_partitioner = DefaultPartitioner()


def kafka_topics(engine: str) -> dict[str, str]:
    """The topic names for `engine`: orders, executions, positions, marketdata, progress."""
    p = f"tickplane.{engine}"
    return {
        "orders": f"{p}.orders",
        "executions": f"{p}.executions",
        "positions": f"{p}.positions",
        "marketdata": f"{p}.marketdata",
        "progress": f"{p}.recorder-progress",
    }


# Per message type: its tag, fields, topic, the field that keys it and the header that
# numbers it. A value is `{"type": tag, **fields}`, what `to_dict()` gives, built from
# `astuple` (nested structs such as book levels encode as arrays, as to_dict makes them).
_TOPIC_AND_KEY: dict[type[Event | TopOfBook], tuple[str, str]] = {
    OrderAccepted: ("orders", "symbol"),
    OrderCanceled: ("orders", "symbol"),
    OrderReplaced: ("orders", "symbol"),
    StopTriggered: ("orders", "symbol"),
    OrderActivated: ("orders", "symbol"),
    OrderTrailed: ("orders", "symbol"),
    OrderRejected: ("orders", "account"),  # a reject names no symbol
    KillSwitchChanged: ("orders", "account"),  # None (the whole engine) keys as "*"
    Trade: ("executions", "symbol"),
    PositionChanged: ("positions", "symbol"),
    SymbolHalted: ("marketdata", "symbol"),
    SymbolResumed: ("marketdata", "symbol"),
    TopOfBook: ("marketdata", "symbol"),
}
_SHAPES: dict[type[Event | TopOfBook], tuple[str, tuple[str, ...], str, str, tuple[str, bytes]]] = {
    cls: (
        str(cls.__struct_config__.tag),
        cls.__struct_fields__,
        kind,
        key,
        ("type", str(cls.__struct_config__.tag).encode()),
    )
    for cls, (kind, key) in _TOPIC_AND_KEY.items()
}


class KafkaSink:
    """Writes batches to Kafka in transactions, exactly once per seq (see module doc)."""

    name = "kafka"

    def __init__(
        self,
        bootstrap: str,
        engine: str,
        *,
        partitions: int = 3,
        replication_factor: int = 1,
        request_timeout: float = 10.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.engine = engine
        self.topics = kafka_topics(engine)
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.request_timeout = request_timeout
        self.last_seq = 0
        self.md_seq: dict[str, int] = {}  # symbol -> last md_seq written
        self._producer: AIOKafkaProducer | None = None
        self._parts: dict[str, list[int]] = {}
        self._route: dict[tuple[str, str], tuple[int, bytes]] = {}

    async def open(self) -> int:
        await self._create_topics()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            transactional_id=f"tickplane-recorder-{self.engine}",
            request_timeout_ms=int(self.request_timeout * 1000),
            max_batch_size=512 * 1024,
            max_request_size=4 * 1024 * 1024,
            linger_ms=5,
        )
        try:
            # init_transactions: fences an older producer of this id, aborts its leftovers.
            async with asyncio.timeout(self.request_timeout * 3):
                await producer.start()
                for topic in self.topics.values():
                    self._parts[topic] = sorted(await producer.partitions_for(topic))
            last, md = await self._read_progress()
        except BaseException:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.request_timeout):
                    await producer.stop()
            raise
        self._producer = producer
        self._route.clear()
        self.last_seq = last
        self.md_seq = md
        return last

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.request_timeout):
                    await producer.stop()

    async def _create_topics(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=int(self.request_timeout * 1000)
        )
        async with asyncio.timeout(self.request_timeout * 2):
            await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(
                    topic,
                    num_partitions=1 if kind == "progress" else self.partitions,
                    replication_factor=self.replication_factor,
                    topic_configs={"cleanup.policy": "compact"} if kind == "progress" else {},
                )
                for kind, topic in self.topics.items()
                if topic not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
        finally:
            await admin.close()

    async def _read_progress(self) -> tuple[int, dict[str, int]]:
        """The seq and md_seqs of the last committed progress record (0, {} without
        one)."""
        topic = self.topics["progress"]
        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            request_timeout_ms=int(self.request_timeout * 1000),
        )
        async with asyncio.timeout(self.request_timeout * 3):
            await consumer.start()
        try:
            consumer.assign([tp])
            async with asyncio.timeout(self.request_timeout * 3):
                end = (await consumer.end_offsets([tp]))[tp]
                back = 8  # a transaction is a record and a commit marker: look a bit back
                start = end
                while start > 0:
                    start = max(0, end - back)
                    consumer.seek(tp, start)
                    found: bytes | None = None
                    while await consumer.position(tp) < end:
                        got = await consumer.getmany(tp, timeout_ms=500)
                        for rec in got.get(tp, []):
                            if rec.offset < end and rec.value is not None:
                                found = rec.value
                    if found is not None:
                        return _progress_of(found)
                    back *= 4
        finally:
            await consumer.stop()
        return 0, {}

    def _route_of(self, topic: str, key: str) -> tuple[int, bytes]:
        """The partition of `key` in `topic` (Kafka's default partitioner) and the key's
        bytes, cached: a few symbols and accounts, thousands of records."""
        route = self._route.get((topic, key))
        if route is None:
            parts = self._parts[topic]
            raw = key.encode()
            route = self._route[(topic, key)] = (_partitioner(raw, parts, parts), raw)
        return route

    async def write(self, events: Sequence[Event], tops: Sequence[TopOfBook] = ()) -> int:
        """Write the events above `last_seq` and the tops in one transaction."""
        producer = self._producer
        if producer is None:
            raise ConnectionError("the Kafka sink is not open")
        fresh = [e for e in events if e.seq > self.last_seq]
        tops = [t for t in tops if t.md_seq > self.md_seq.get(t.symbol, 0)]
        if not fresh and not tops:
            return 0
        new_seq = fresh[-1].seq if fresh else self.last_seq
        md = dict(self.md_seq)
        for t in tops:
            md[t.symbol] = max(md.get(t.symbol, 0), t.md_seq)
        # No abort on failure: the runner closes this producer and opens a new one of
        # the same transactional id, whose init_transactions aborts what this left open
        # (an abort here could wait for ever on a broker that is gone).
        async with asyncio.timeout(self.request_timeout * 2):
            await producer.begin_transaction()
            await self._send(producer, fresh, tops, _progress_value(new_seq, md))
            await producer.commit_transaction()
        self.last_seq = new_seq
        self.md_seq = md
        return len(fresh)

    async def _send(
        self,
        producer: AIOKafkaProducer,
        events: Sequence[Event],
        tops: Sequence[TopOfBook],
        progress_value: bytes,
    ) -> None:
        # Batches built here, one per partition, instead of one send() per record: a
        # send() costs tens of microseconds of Python, a batch append a few.
        batches: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        topics = self.topics
        routes = self._route
        encode = _json.encode
        astuple = msgspec.structs.astuple
        # One loop for the events (header `seq`), one for the tops (`md_seq`); the
        # per-record work is kept to lookups, one dict, one encode and one append.
        for items, number in ((events, "seq"), (tops, "md_seq")):
            for ev in items:
                tag, names, kind, key_field, type_header = _SHAPES[type(ev)]
                topic = topics[kind]
                k = getattr(ev, key_field) or "*"
                route = routes.get((topic, k)) or self._route_of(topic, k)
                value: dict[str, Any] = {"type": tag}
                value.update(zip(names, astuple(ev), strict=False))
                raw = encode(value)
                headers = [(number, str(getattr(ev, number)).encode()), type_header]
                part, key = route
                b = batches.get((topic, part))
                if b is None:
                    b = batches[(topic, part)] = producer.create_batch()
                if b.append(key=key, value=raw, timestamp=None, headers=headers) is None:
                    futures.append(await producer.send_batch(b, topic, partition=part))
                    b = batches[(topic, part)] = producer.create_batch()
                    b.append(key=key, value=raw, timestamp=None, headers=headers)
        for (topic, part), b in batches.items():
            if b.record_count():
                futures.append(await producer.send_batch(b, topic, partition=part))
        progress = producer.create_batch()
        progress.append(key=self.engine.encode(), value=progress_value, timestamp=None, headers=[])
        futures.append(await producer.send_batch(progress, topics["progress"], partition=0))
        # Every delivery awaited, then the first failure raised as a new exception:
        # aiokafka hands one exception object to every batch, and raising it again and
        # again would grow its traceback without end.
        for result in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(result, BaseException):
                raise ConnectionError(f"{type(result).__name__}: {result}") from None


def _progress_value(seq: int, md_seq: dict[str, int]) -> bytes:
    """A progress record: the last seq as ASCII digits, or, once tops of book were
    written, `{"seq": N, "md_seq": {symbol: last md_seq}}`."""
    if not md_seq:
        return str(seq).encode()
    return _json.encode({"seq": seq, "md_seq": md_seq})


def _progress_of(value: bytes) -> tuple[int, dict[str, int]]:
    if not value.startswith(b"{"):
        return int(value), {}
    d = msgspec.json.decode(value, type=dict[str, Any])
    return int(d["seq"]), {str(k): int(v) for k, v in d.get("md_seq", {}).items()}
