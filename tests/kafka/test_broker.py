"""The test broker is a real Kafka: topics, an idempotent producer, ordered consumption."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from . import broker
from .broker import KafkaBroker, KafkaBrokerError, metadata_broker_ids

SYMBOLS = ("AAPL", "GOOG", "MSFT")
PER_SYMBOL = 200


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str) -> dict[str, list[tuple[int, int]]]:
    """Send PER_SYMBOL messages per symbol, interleaved; return where each one landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    placed: dict[str, list[tuple[int, int]]] = defaultdict(list)
    try:
        pending = []
        for seq in range(PER_SYMBOL):
            for symbol in SYMBOLS:
                pending.append(
                    (symbol, await producer.send(topic, f"{seq}".encode(), key=symbol.encode()))
                )
        for symbol, fut in pending:
            meta = await fut
            placed[symbol].append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    return placed


async def consume(bootstrap: str, topic: str, count: int) -> list[tuple[str, int, int, int]]:
    """(key, seq, partition, offset) of the first ``count`` messages, from the start."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique("tests"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[str, int, int, int]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    got += [(r.key.decode(), int(r.value), r.partition, r.offset) for r in records]
    finally:
        await consumer.stop()
    return got


def test_keyed_messages_come_back_in_order(kafka: KafkaBroker) -> None:
    topic = unique("orders")
    asyncio.run(create_topic(kafka.bootstrap, topic, partitions=3))
    placed = asyncio.run(produce(kafka.bootstrap, topic))
    got = asyncio.run(consume(kafka.bootstrap, topic, len(SYMBOLS) * PER_SYMBOL))

    assert len(got) == len(SYMBOLS) * PER_SYMBOL
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, seq, _partition, _offset in got:
        by_key[key].append(seq)
    for symbol in SYMBOLS:
        # Every message of a key, each once, in the order it was sent.
        assert by_key[symbol] == list(range(PER_SYMBOL))
        # One key, one partition, consecutive offsets as acknowledged to the producer.
        partitions = {p for p, _ in placed[symbol]}
        assert len(partitions) == 1
        offsets = [o for _, o in placed[symbol]]
        assert offsets == sorted(offsets)
    assert {(p, o) for _, _, p, o in got} == {po for v in placed.values() for po in v}


def test_broker_is_one_kraft_node(kafka: KafkaBroker) -> None:
    assert metadata_broker_ids("127.0.0.1", kafka.port) == {1}
    props = kafka.properties_path.read_text()
    assert "process.roles=broker,controller" in props
    assert "zookeeper" not in props

    async def describe() -> dict[str, object]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            info: dict[str, object] = await admin.describe_cluster()
        finally:
            await admin.close()
        return info

    cluster = asyncio.run(describe())
    assert cluster["cluster_id"] == kafka.cluster_id


def test_a_bad_configuration_fails_loudly(kafka_libs: Path, tmp_path: Path) -> None:
    broker = KafkaBroker(kafka_libs, tmp_path, config={"num.network.threads": "none"})
    with pytest.raises(KafkaBrokerError, match="formatting Kafka's storage failed") as err:
        broker.start()
    assert "num.network.threads" in str(err.value)  # Kafka's own words on what is wrong
    assert broker.pid is None


def test_a_broker_that_exits_while_starting_fails_loudly(
    kafka_libs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KRaft refuses storage that was never formatted: the broker starts, then exits.
    monkeypatch.setattr(KafkaBroker, "_format", lambda self: None)
    broker = KafkaBroker(kafka_libs, tmp_path)
    with pytest.raises(KafkaBrokerError, match="exited with status") as err:
        broker.start()
    assert "meta.properties" in str(err.value)  # the tail of the broker's log
    assert broker.pid is None


def test_stop_ends_the_process_and_frees_the_port(kafka_libs: Path, tmp_path: Path) -> None:
    with KafkaBroker(kafka_libs, tmp_path) as broker:
        pid, port = broker.pid, broker.port
        assert pid is not None
    assert broker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 as the first byte encodes to '-' first; the id is drawn again.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(int=7)])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(draws))
    cid = broker.random_cluster_id()
    assert not cid.startswith("-") and len(cid) == 22
