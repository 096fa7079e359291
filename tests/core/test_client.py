"""EngineClient's order entry against a bare ROUTER: what goes on the wire, and when."""

from __future__ import annotations

import asyncio

import zmq

from tickplane.core import wire
from tickplane.core.client import EngineClient


def _order(c: EngineClient, n: int) -> wire.NewOrder:
    return wire.NewOrder(c.next_req(), "a", "GOOG", "buy", "limit", n, 100)


def test_a_turn_s_first_request_goes_alone_the_rest_as_one_batch() -> None:
    async def main() -> None:
        ctx = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVTIMEO, 5000)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        try:
            async with EngineClient(f"tcp://127.0.0.1:{port}", timeout=5) as c:
                await asyncio.sleep(0)  # nothing to send yet: no frame
                msgs = [_order(c, n) for n in range(1, 6)]
                futs = [c.send(m) for m in msgs]
                # the first left at once, before the loop turned
                who, first = await asyncio.to_thread(router.recv_multipart)
                assert wire.decode_frame(first) == msgs[0]
                await asyncio.sleep(0)  # the turn ends: the other four, one frame
                who, rest = await asyncio.to_thread(router.recv_multipart)
                assert wire.decode_frame(rest) == wire.Batch(msgs[1:])
                # replies in any framing resolve their own futures
                replies = [wire.Ack(m.req, order_id=m.qty) for m in msgs]
                router.send_multipart([who, wire.encode(wire.Replies(replies[3:]))])
                router.send_multipart([who, wire.encode(replies[0])])
                router.send_multipart([who, wire.encode(wire.Replies(replies[1:3]))])
                got = await asyncio.gather(*futs)
                assert got == replies
                # a lone request in a later turn is a plain frame again
                later = c.send(_order(c, 9))
                _, frame = await asyncio.to_thread(router.recv_multipart)
                assert isinstance(wire.decode_frame(frame), wire.NewOrder)
                later.cancel()
        finally:
            router.close(0)
            ctx.term()

    asyncio.run(main())


def test_a_burst_longer_than_a_batch_is_split() -> None:
    async def main() -> None:
        ctx = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVTIMEO, 5000)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        try:
            async with EngineClient(f"tcp://127.0.0.1:{port}", timeout=5) as c:
                n = 2 * wire.MAX_BATCH + 3
                msgs = [_order(c, 1) for _ in range(n)]
                futs = [c.send(m) for m in msgs]
                await asyncio.sleep(0)
                seen: list[wire.Request] = []
                sizes = []
                while len(seen) < n:
                    _, frame = await asyncio.to_thread(router.recv_multipart)
                    got = wire.decode_frame(frame)
                    batch = got.requests if isinstance(got, wire.Batch) else [got]
                    sizes.append(len(batch))
                    seen.extend(batch)
                assert seen == msgs  # in the order sent
                assert max(sizes) == wire.MAX_BATCH
                for f in futs:
                    f.cancel()  # no replies: not waited for
        finally:
            router.close(0)
            ctx.term()

    asyncio.run(main())
