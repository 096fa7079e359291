"""The order-entry ROUTER's message path: CPU time per message (engine/router.pyx).

The engine takes [identity, frame] messages off its ROUTER and sends its replies back,
through libzmq's own calls (`Router.take`, `Router.send`) or, as the fallback and the
baseline measured in the same run, through pyzmq's (`PyzmqRouter`, the engine's
fallback: what it did before). A DEALER in this process
queues `BATCH` order-sized frames over `inproc` (a sent frame is in the ROUTER's queue
at once, so nothing is waited for; over TCP the I/O thread's part is the same either
way), then the thread's CPU clock times draining them; replies the same (`BATCH`
ack-sized replies a turn, drained by the DEALER between turns, untimed). Median over
`ROUNDS` turns' per-message figures, the two ways alternated turn by turn.
Run: `python -m tests.benchmarks.bench_router` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from statistics import median

import zmq

from tickplane.engine import router as router_module
from tickplane.engine.router import PyzmqRouter, Router

BATCH = 256  # the engine's default max_batch
ROUNDS = 200
ORDER_FRAME = b"o" * 46  # an order frame's size (tickplane bench wire: order_frame_bytes)
ACK_FRAME = b"a" * 78  # an ack's (ack_frame_bytes)


def _take_rounds(
    take: Callable[[int], list[tuple[bytes, bytes]]], client: zmq.Socket[bytes]
) -> float:
    for _ in range(BATCH - 1):
        client.send(ORDER_FRAME)
    client.send(b"last")  # inproc: every frame is in the server's queue once sent
    got: list[tuple[bytes, bytes]] = []
    t0 = time.thread_time_ns()
    while len(got) < BATCH:
        got += take(BATCH - len(got))
    took = time.thread_time_ns() - t0
    if got[-1][1] != b"last":
        raise RuntimeError("the frames came out of order")
    return took / BATCH / 1000


def _send_rounds(
    send: Callable[[list[tuple[bytes, bytes]]], None],
    server: zmq.Socket[bytes],
    client: zmq.Socket[bytes],
) -> float:
    client.send(b"hello")
    identity, _ = server.recv_multipart()
    replies = [(identity, ACK_FRAME)] * BATCH
    t0 = time.thread_time_ns()
    send(replies)
    took = time.thread_time_ns() - t0
    for _ in range(BATCH):
        client.recv()
    return took / BATCH / 1000


def run() -> dict[str, object]:
    if not router_module.available():
        raise SystemExit("libzmq's own calls are not available here (router.available())")
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    server.setsockopt(zmq.SNDHWM, 1_000_000)  # the engine's
    server.bind("inproc://bench-router")
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.SNDHWM, 1_000_000)
    client.setsockopt(zmq.RCVHWM, 1_000_000)
    client.setsockopt(zmq.RCVTIMEO, 5000)
    client.connect("inproc://bench-router")
    ways: dict[str, Router | PyzmqRouter] = {"libzmq": Router(server), "pyzmq": PyzmqRouter(server)}
    takes: dict[str, list[float]] = {w: [] for w in ways}
    sends: dict[str, list[float]] = {w: [] for w in ways}
    try:
        for _ in range(ROUNDS):
            for way, io in ways.items():
                takes[way].append(_take_rounds(io.take, client))
                sends[way].append(_send_rounds(io.send, server, client))
    finally:
        client.close(0)
        server.close(0)
        ctx.term()
    take_us = {w: round(median(v), 3) for w, v in takes.items()}
    send_us = {w: round(median(v), 3) for w, v in sends.items()}
    return {
        "take_us_per_message": take_us,
        "send_us_per_reply": send_us,
        "take_pyzmq_vs_libzmq": round(take_us["pyzmq"] / take_us["libzmq"], 2),
        "send_pyzmq_vs_libzmq": round(send_us["pyzmq"] / send_us["libzmq"], 2),
        "batch": BATCH,
        "rounds": ROUNDS,
        "command": "python -m tests.benchmarks.bench_router",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
