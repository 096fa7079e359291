"""Repro (open defect, not a test): `EngineClient` loses replies it has received but
not yet read when the engine's connection goes (a SIGTERM's clean stop, a kill -9).

`EngineClient.connect` sets `ZMQ_IMMEDIATE` on its DEALER so that nothing queues for
an engine that is not there (a request sent while it is down fails fast instead of
reaching a restarted engine after the client gave up on it). But with IMMEDIATE,
libzmq terminates the connection's pipe without delay when the peer disconnects, and
the replies already in it, received from the engine but not yet read by the client's
event loop, are dropped. A client whose loop is busy (pipelining, or just slow) when
the engine stops is told nothing (EngineUnavailable at its timeout) of orders the
engine placed, journaled and acknowledged. The engine cannot prevent it; the client
would need another way to fail fast (no IMMEDIATE, and its own check that the engine
is connected before sending, e.g. ZMQ_EVENT_CONNECTED / DISCONNECTED on a monitor).

    .venv/bin/python -m tests.engine.repro_client_drops_unread_replies

prints the replies read after the peer closed: 20 without IMMEDIATE, 0 with it.
"""

from __future__ import annotations

import time

import zmq


def received_after_peer_closed(immediate: bool) -> int:
    """A ROUTER sends 20 frames to a DEALER that reads none of them yet, then closes
    (lingering, so every frame is sent); how many the DEALER reads afterwards."""
    server_ctx, client_ctx = zmq.Context(), zmq.Context()
    router = server_ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = client_ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IMMEDIATE, int(immediate))
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hello")
    identity, _ = router.recv_multipart()
    for _ in range(20):
        router.send_multipart([identity, b"x" * 1000])
    time.sleep(0.3)  # they reach the DEALER's pipe; the application reads nothing yet
    router.close(2000)
    server_ctx.term()
    time.sleep(0.3)  # the DEALER sees the disconnection
    n = 0
    while dealer.poll(200):
        dealer.recv()
        n += 1
    dealer.close(0)
    client_ctx.term()
    return n


if __name__ == "__main__":
    for immediate in (False, True):
        print(f"IMMEDIATE={int(immediate)}: {received_after_peer_closed(immediate)} of 20 read")
