"""What a sink is, and the loop that feeds one from the engine's event stream.

Each sink runs its own loop with its own subscription, so an outage of one (PostgreSQL
down) never holds back the others. The loop:

1. opens the sink, which returns the last seq it holds (its own durable progress);
2. reads the engine's events from that seq + 1 (`EngineClient.events`: gaps, and the
   range missed while it was away, come from the engine's replay service) into a
   bounded queue, with the recorded symbols' tops of book from each one's last md_seq
   + 1 (gaps and missed ranges from the engine's market-data log the same way);
3. writes what the queue holds as one batch (the bigger the backlog, the bigger the
   batch), the sink dropping any seq it already holds;
4. on an error: a log line, `tickplane_recorder_errors_total`, a backoff (doubling up to
   `max_backoff`), then back to 1 with the same pending batch. The reader keeps
   reading meanwhile; when the queue is full it stops, ZeroMQ drops what overflows its
   buffer, and the client fills that gap through replay once the sink is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from tickplane.api.recorder import metrics
from tickplane.core.client import EngineClient
from tickplane.core.events import Event, TopOfBook

__all__ = ["Sink", "SinkRunner"]

log = logging.getLogger("tickplane.recorder")


class Sink(Protocol):
    """A destination of the event stream that records its own last seq atomically."""

    name: str
    last_seq: int
    #: symbol -> the last md_seq it holds (filled by `open`, moved by `write`)
    md_seq: dict[str, int]

    async def open(self) -> int:
        """Connect (creating the schema, topics... it needs); return its last seq."""
        ...

    async def write(self, events: Sequence[Event], tops: Sequence[TopOfBook] = ()) -> int:
        """Write the events above its last seq and the tops above their symbol's last
        md_seq, atomically with the new progress; return how many events it wrote."""
        ...

    async def close(self) -> None: ...


class SinkRunner:
    """Feeds one sink from one engine until `stop()` (see the module docstring)."""

    def __init__(
        self,
        sink: Sink,
        client: EngineClient,
        *,
        symbols: Sequence[str] = (),
        max_batch: int = 20_000,
        queue_size: int = 200_000,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.sink = sink
        self.client = client
        self.symbols = list(symbols)
        self.max_batch = max_batch
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._queue: asyncio.Queue[Event | TopOfBook] = asyncio.Queue(queue_size)
        self._seen = 0  # highest seq the reader has taken from the engine
        self._next = 1  # first seq the reader still needs
        self._taken = 0  # highest seq taken into a batch: the writer sees each seq once
        self._md_next: dict[str, int] = {}  # per symbol, the first md_seq the reader needs
        self._md_taken: dict[str, int] = {}  # per symbol, as _taken
        self._stopping = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        #: Set once the sink has been opened the first time (tests and readiness).
        self.opened = asyncio.Event()

    @property
    def name(self) -> str:
        return self.sink.name

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Open, write, recover, until stopped."""
        name = self.sink.name
        pending_events: list[Event] = []
        pending_tops: list[TopOfBook] = []
        backoff = self.min_backoff
        try:
            while not self._stopping.is_set():
                try:
                    last = await self.sink.open()
                    log.info("%s: open, last seq %d", name, last)
                    metrics.SINK_UP.labels(name).set(1)
                    metrics.LAST_SEQ.labels(name).set(last)
                    self._taken = max(last, pending_events[-1].seq if pending_events else 0)
                    self._md_taken = dict(self.sink.md_seq)
                    for t in pending_tops:
                        self._md_taken[t.symbol] = max(self._md_taken.get(t.symbol, 0), t.md_seq)
                    self._start_reader(last + 1)
                    self.opened.set()
                    while not self._stopping.is_set():
                        if not pending_events and not pending_tops:
                            await self._take(pending_events, pending_tops)
                        if pending_events or pending_tops:
                            began = time.perf_counter()
                            written = await self.sink.write(pending_events, pending_tops)
                            metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - began)
                            metrics.EVENTS_WRITTEN.labels(name).inc(written)
                            metrics.TOPS_WRITTEN.labels(name).inc(len(pending_tops))
                            pending_events.clear()
                            pending_tops.clear()
                            backoff = self.min_backoff
                        metrics.LAST_SEQ.labels(name).set(self.sink.last_seq)
                        metrics.LAG.labels(name).set(max(0, self._seen - self.sink.last_seq))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    metrics.ERRORS.labels(name).inc()
                    metrics.SINK_UP.labels(name).set(0)
                    log.warning(
                        "%s: %s: %s; retrying in %.1f s (last seq written %d, %d events pending)",
                        name, type(exc).__name__, exc, backoff, self.sink.last_seq,
                        len(pending_events),
                    )  # fmt: skip
                    await self.sink.close()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(backoff):
                            await self._stopping.wait()
                    backoff = min(backoff * 2, self.max_backoff)
        finally:
            metrics.SINK_UP.labels(name).set(0)
            await self._stop_reader()
            await self.sink.close()

    async def _take(self, events: list[Event], tops: list[TopOfBook]) -> None:
        """Wait for at least one item (or a stop), then take what is queued, up to a batch."""
        q = self._queue
        if q.empty():
            getter = asyncio.ensure_future(q.get())
            stopper = asyncio.ensure_future(self._stopping.wait())
            try:
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if getter not in done:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
                if getter.cancelled() or getter.exception() is not None:
                    return
            self._add(getter.result(), events, tops)
        while len(events) + len(tops) < self.max_batch:  # a backlog of tops counts too
            try:
                item = q.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._add(item, events, tops)

    def _add(self, item: Event | TopOfBook, events: list[Event], tops: list[TopOfBook]) -> None:
        if isinstance(item, TopOfBook):
            if item.md_seq > self._md_taken.get(item.symbol, 0):
                self._md_taken[item.symbol] = item.md_seq
                tops.append(item)
        elif item.seq > self._taken:  # a restarted reader may replay what is queued
            self._taken = item.seq
            events.append(item)

    # -- the reader ----------------------------------------------------------------------

    def _start_reader(self, from_seq: int) -> None:
        if self._reader is not None and not self._reader.done():
            return  # still reading from before the sink's outage: keep its queue
        self._next = from_seq
        self._md_next = {s: self.sink.md_seq.get(s, 0) + 1 for s in self.symbols}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read(self) -> None:
        backoff = self.min_backoff
        while True:
            try:
                stream = self.client.events(
                    self._next,
                    market_data=self.symbols,
                    md_from=dict(self._md_next),
                    on_md_missing=self._md_missing,
                    deltas=False,  # the recorder keeps tops only
                )
                async for item in stream:
                    if isinstance(item, TopOfBook):
                        self._md_next[item.symbol] = item.md_seq + 1
                        await self._queue.put(item)
                        continue
                    seq: int = item.seq  # type: ignore[union-attr]
                    self._next = seq + 1
                    self._seen = max(self._seen, seq)
                    metrics.LAG.labels(self.sink.name).set(max(0, self._seen - self.sink.last_seq))
                    await self._queue.put(item)  # type: ignore[arg-type]
                    backoff = self.min_backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # EngineError mostly; never leave the writer starved
                log.warning(
                    "%s: engine stream: %s: %s; resubscribing from seq %d in %.1f s",
                    self.sink.name, type(exc).__name__, exc, self._next, backoff,
                )  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _md_missing(self, symbol: str, count: int) -> None:
        metrics.TOPS_MISSING.labels(self.sink.name).inc(count)
