"""EngineClient against a bare ROUTER (and PUB): what goes on the wire, and when."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import zmq

from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import BookDelta, BookLevel, MarketData, OrderRejected, TopOfBook


@contextmanager
def _fake_engine() -> Iterator[tuple[zmq.Socket[bytes], str]]:
    """A bare ROUTER standing in for the engine, and its endpoint: the test reads the
    client's frames off it and writes the replies itself."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVTIMEO, 5000)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield router, f"tcp://127.0.0.1:{port}"
    finally:
        router.close(0)
        ctx.term()


def _order(c: EngineClient, n: int) -> wire.NewOrder:
    return wire.NewOrder(c.next_req(), "a", "GOOG", "buy", "limit", n, 100)


def test_a_turn_s_first_request_goes_alone_the_rest_as_one_batch() -> None:
    async def main() -> None:
        with _fake_engine() as (router, endpoint):
            async with EngineClient(endpoint, timeout=5) as c:
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

    asyncio.run(main())


def test_a_burst_longer_than_a_batch_is_split() -> None:
    async def main() -> None:
        with _fake_engine() as (router, endpoint):
            async with EngineClient(endpoint, timeout=5) as c:
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

    asyncio.run(main())


def test_heads_and_full_replies_in_one_frame_each_get_their_own() -> None:
    """`send_head` and `send` in one turn (one Batch, one Replies frame): each future
    gets the reply as asked, a head or a full Ack; then a frame of heads only."""

    async def main() -> None:
        with _fake_engine() as (router, endpoint):
            async with EngineClient(endpoint, timeout=5) as c:
                msgs = [_order(c, n) for n in range(1, 5)]
                futs = [(c.send_head if m.qty % 2 else c.send)(m) for m in msgs]
                seen: list[wire.Request] = []
                while len(seen) < len(msgs):
                    who, frame = await asyncio.to_thread(router.recv_multipart)
                    got = wire.decode_frame(frame)
                    seen += got.requests if isinstance(got, wire.Batch) else [got]
                refused = OrderRejected(2, 2, 12, "a", "post_only")
                replies: list[wire.Reply] = [
                    wire.Ack(m.req, 10 + m.qty, [refused] if m.qty == 2 else [], last_seq=m.qty)
                    for m in msgs
                ]
                replies[2] = wire.Reject(msgs[2].req, "max_qty", "too many")
                router.send_multipart([who, wire.encode(wire.Replies(replies))])
                got = await asyncio.gather(*futs)
                assert got[1] == replies[1] and got[3] == replies[3]  # full, events and all
                assert got[2] == replies[2]
                head = got[0]
                assert isinstance(head, wire.AckHead)
                assert (head.req, head.order_id, head.last_seq) == (msgs[0].req, 11, 1)
                assert head.rejection() is None
                # heads alone; a refusal among the events found
                fut = c.send_head(_order(c, 2))
                _, frame = await asyncio.to_thread(router.recv_multipart)
                req = wire.decode_request(frame).req
                router.send_multipart([who, wire.encode(wire.Ack(req, 12, [refused]))])
                only = await fut
                assert isinstance(only, wire.AckHead) and only.rejection() == refused
                assert not c._heads  # nothing left behind

    asyncio.run(main())


def test_deltas_from_an_engine_before_they_were_replayed_pass_live() -> None:
    """An engine from before `TopOfBook.has_delta` and `Ack.deltas` (a bare ROUTER and
    PUB speaking as it did): the client replays its tops, gets no `deltas` (an old
    reply's frame ends before them) and yields each live delta once, after its top,
    though no top announced it."""
    top = [TopOfBook(n, n, "GOOG", [BookLevel(100, n, 1)], [], None) for n in (1, 2)]
    delta = BookDelta(2, 2, "GOOG", [BookLevel(100, 2, 1)], [])

    async def main() -> None:
        ctx = zmq.Context()
        router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
        for s in (router, pub):
            s.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.RCVTIMEO, 5000)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
        got: list[MarketData] = []

        async def consume(c: EngineClient) -> None:
            async for md in c.events(market_data=["GOOG"], md_from={"GOOG": 1}):
                assert isinstance(md, TopOfBook | BookDelta)
                got.append(md)
                if len(got) == 3:
                    return

        try:
            async with EngineClient(
                f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{pub_port}", timeout=5
            ) as c:
                task = asyncio.create_task(consume(c))
                # The catch-up: top 1, then nothing newer (the engine's reply to each
                # request, in its old frame: without the trailing `deltas`).
                for tops, start in (([top[0]], 1), ([], 2)):
                    who, frame = await asyncio.to_thread(router.recv_multipart)
                    req = wire.decode_frame(frame)
                    assert isinstance(req, wire.ReplayMarketData)
                    assert (req.from_md_seq, req.to_md_seq, req.deltas) == (start, 2**62, True)
                    reply = wire.encode(wire.Ack(req.req, tops=tops, md_seq=1))
                    old = msgspec.msgpack.encode(msgspec.msgpack.decode(reply[1:])[:-1])
                    router.send_multipart([who, reply[:1] + old])
                async with asyncio.timeout(5):
                    while not task.done():  # a SUB joins late: again until it is in
                        for md in (top[1], delta):
                            pub.send_multipart([b"m.GOOG", wire.encode(md)])
                        await asyncio.wait({task}, timeout=0.05)
                await task
        finally:
            router.close(0)
            pub.close(0)
            ctx.term()
        assert got == [top[0], top[1], delta]

    asyncio.run(main())
