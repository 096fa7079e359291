"""`EngineClient`'s request path against a real engine: many requests sent before any
reply is awaited (more than ZeroMQ's default queue of 1,000) each get their own reply;
with no engine, a request fails with EngineUnavailable once its timeout passed."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.ports import free_port
from tickplane.core import wire
from tickplane.core.client import EngineClient, EngineUnavailable


def test_pipelined_requests_get_their_own_replies(engine_endpoints: dict[str, str]) -> None:
    async def main() -> None:
        async with EngineClient(engine_endpoints["order_entry"], timeout=10) as client:
            reqs = [client.next_req() for _ in range(3000)]
            futures = [
                client.send(wire.GetSymbols(r) if r % 7 == 0 else wire.Ping(r)) for r in reqs
            ]
            replies = await asyncio.gather(*futures)
            assert [r.req for r in replies] == reqs
            assert all(isinstance(r, wire.Ack) for r in replies)
            assert all(isinstance(r, wire.Ack) and r.symbols for r in replies if r.req % 7 == 0)
            # and the plain awaitable API on the same client
            assert isinstance(await client.ping(), wire.Ack)

    asyncio.run(main())


def test_no_engine_is_unavailable_after_the_timeout() -> None:
    port = free_port()  # nothing listens there

    async def main() -> None:
        async with EngineClient(f"tcp://127.0.0.1:{port}", timeout=0.3) as client:
            start = time.monotonic()
            results = await asyncio.gather(client.ping(), client.ping(), return_exceptions=True)
            took = time.monotonic() - start
            assert all(isinstance(r, EngineUnavailable) for r in results), results
            assert 0.3 <= took < 3.0
            with pytest.raises(EngineUnavailable):
                await client.get_symbols()

    asyncio.run(main())
