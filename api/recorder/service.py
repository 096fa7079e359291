"""The recorder process: one engine's events into PostgreSQL, Redis and Kafka.

    settings = RecorderSettings(engine_name="engine-0", database_url=..., kafka=...)
    await Recorder(settings).run()      # until SIGTERM / SIGINT / stop()

A sink is enabled by giving its address; any subset runs. Each has its own loop
(`SinkRunner`), so one being down never holds back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from prometheus_client import start_http_server
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickplane.api.recorder.kafka_sink import KafkaSink
from tickplane.api.recorder.postgres_sink import PostgresSink
from tickplane.api.recorder.redis_sink import RedisSink
from tickplane.api.recorder.sink import Sink, SinkRunner
from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineError

__all__ = ["Recorder", "RecorderSettings"]

log = logging.getLogger("tickplane.recorder")


class RecorderSettings(BaseSettings):
    """Where the engine and the sinks are: defaults, then `TICKPLANE_RECORDER_<SETTING>`."""

    model_config = SettingsConfigDict(env_prefix="TICKPLANE_RECORDER_", extra="forbid")

    # The engine: its name (tables, keys and topics are per engine) and endpoints.
    engine_name: str = "engine-0"
    engine_order_entry: str = "tcp://127.0.0.1:5555"
    engine_events: str = "tcp://127.0.0.1:5556"
    engine_timeout: float = Field(default=5.0, gt=0)
    # Symbols whose top of book is recorded (market-data history, Redis, Kafka); empty:
    # every symbol the engine trades (asked once at start).
    symbols: list[str] = Field(default_factory=list)

    # Sinks: each one runs when its address is given.
    database_url: str | None = None
    redis_url: str | None = None
    kafka: str | None = None  # bootstrap servers, host:port[,host:port]
    kafka_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)  # 3 on a real cluster
    kafka_timeout: float = Field(default=10.0, gt=0)  # per request; a batch gets twice
    # Per symbol, in Redis (at most 1000: a Lua call takes a few thousand arguments).
    recent_trades: int = Field(default=100, ge=1, le=1000)

    # Events per write at most: under a backlog, bigger batches amortise each
    # transaction (a Kafka commit, a PostgreSQL commit) over more events.
    max_batch: int = Field(default=20_000, ge=1)
    max_backoff: float = Field(default=5.0, gt=0)
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9102, ge=0, le=65535)  # 0: no metrics server


class Recorder:
    """The sinks of `settings`, each fed by its own `SinkRunner`."""

    def __init__(self, settings: RecorderSettings) -> None:
        self.settings = settings
        s = settings
        sinks: list[Sink] = []
        if s.database_url:
            sinks.append(PostgresSink(s.database_url, s.engine_name))
        if s.redis_url:
            sinks.append(RedisSink(s.redis_url, s.engine_name, recent_trades=s.recent_trades))
        if s.kafka:
            sinks.append(
                KafkaSink(
                    s.kafka,
                    s.engine_name,
                    partitions=s.kafka_partitions,
                    replication_factor=s.kafka_replication_factor,
                    request_timeout=s.kafka_timeout,
                )
            )
        if not sinks:
            raise ValueError("no sink: give a database URL, a Redis URL or Kafka servers")
        self.client = EngineClient(s.engine_order_entry, s.engine_events, timeout=s.engine_timeout)
        self._stopping = asyncio.Event()
        self.runners = [
            SinkRunner(
                sink,
                self.client,
                symbols=s.symbols,
                max_batch=s.max_batch,
                max_backoff=s.max_backoff,
            )
            for sink in sinks
        ]

    def stop(self) -> None:
        self._stopping.set()
        for r in self.runners:
            r.stop()

    async def _engine_symbols(self) -> list[str] | None:
        """Every symbol the engine trades, asked until it answers (None: stopped)."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                reply = await self.client.get_symbols()
                if isinstance(reply, wire.Ack) and reply.symbols is not None:
                    names = [s.name for s in reply.symbols]
                    log.info("recording the tops of book of %s", ", ".join(names))
                    return names
                log.warning("engine refused GetSymbols: %s; retrying in %.1f s", reply, backoff)
            except EngineError as exc:
                log.warning("engine: %s; retrying in %.1f s", exc, backoff)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stopping.wait()
            backoff = min(backoff * 2, self.settings.max_backoff)
        return None

    async def run(self) -> None:
        """Run every sink until `stop()` (or SIGTERM/SIGINT when run by `tickplane`)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port, self.settings.metrics_host)
        names = ", ".join(r.name for r in self.runners)
        log.info("recording engine %s into %s", self.settings.engine_name, names)
        self.client.connect()
        try:
            if not self.settings.symbols:
                symbols = await self._engine_symbols()
                if symbols is None:
                    return  # stopped while waiting for the engine
                for r in self.runners:
                    r.symbols = symbols
            await asyncio.gather(*(r.run() for r in self.runners))
        finally:
            await self.client.close()
