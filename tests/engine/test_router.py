"""The order-entry ROUTER's traffic through libzmq's own calls (engine/router.pyx) moves
the same messages as pyzmq's, which the engine falls back to without them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tickplane.core.config import EngineConfig, SymbolConfig
from tickplane.engine import router
from tickplane.engine.service import EngineService


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    server.setsockopt(zmq.SNDHWM, 1_000_000)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.RCVTIMEO, 5000)
    client.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield server, client
    finally:
        server.close(0)
        client.close(0)
        ctx.term()


def _arrived(server: zmq.Socket[bytes]) -> None:
    assert server.poll(5000, zmq.POLLIN), "nothing arrived"


def _send_all(client: zmq.Socket[bytes], messages: list[list[bytes]]) -> None:
    for parts in messages:
        client.send_multipart(parts)
    # a marker last: once it is in, everything before it is too (one connection, in order)
    client.send(b"end")


def _drain(take: Any, server: zmq.Socket[bytes]) -> list[bytes]:
    """Frames taken in batches of 3 until the marker."""
    frames: list[bytes] = []
    while b"end" not in frames:
        _arrived(server)
        frames += [frame for _, frame in take(3)]
    return frames


def test_libzmq_is_found_here() -> None:
    # The engine's pods and CI run pyzmq's wheels, whose libzmq is a library of its own:
    # the fast path must be the one they take.
    assert router.available()


def test_take_and_send(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    server, client = pair
    io = router.Router(server)
    assert io.take(10) == []  # nothing there: no wait, no error
    _send_all(client, [[b"a"], [b"b", b"x", b"y"], [b""], [b"c"], [b"d", b"e"]])
    frames = _drain(io.take, server)
    assert frames == [b"a", b"", b"c", b"end"]
    assert io.dropped == 2  # the messages of three and two frames, each dropped whole
    client.send(b"first")
    _arrived(server)
    identity = server.recv()  # the loop's blocking receive takes the identity itself
    (got,) = io.take(1, identity)
    assert got == (identity, b"first")
    io.send([(identity, b"one"), (identity, b""), (b"gone", b"dropped"), (identity, b"two")])
    assert [client.recv() for _ in range(3)] == [b"one", b"", b"two"]


def test_the_engine_takes_the_same_messages_either_way(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]], tmp_path: Path
) -> None:
    server, client = pair
    svc = EngineService(
        EngineConfig(
            name="router-test",
            journal_dir=str(tmp_path / "journal"),
            symbols=[SymbolConfig("GOOG")],
            http_port=0,
            pin_cpu=False,
        )
    )
    messages = [[b"%d" % i] * (1 + i % 3 if i % 4 == 0 else 1) for i in range(40)]
    seen: dict[str, tuple[list[bytes], float]] = {}
    for way in ("libzmq", "pyzmq"):
        svc._io = router.Router(server) if way == "libzmq" else router.PyzmqRouter(server)
        before = svc.metrics.bad_frames.value
        _send_all(client, messages)
        frames = _drain(svc._take, server)
        seen[way] = frames, svc.metrics.bad_frames.value - before
    expected = [parts[0] for parts in messages if len(parts) == 1] + [b"end"]
    long = sum(len(parts) > 1 for parts in messages)
    assert long == 6
    assert seen["libzmq"] == seen["pyzmq"] == (expected, long)


def test_without_proc_there_is_no_libzmq_to_find(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # where /proc is missing (a laptop's macOS), the engine falls back, it does not fail
    monkeypatch.setattr(router, "_MAPS", str(tmp_path / "no-such-file"))
    assert router._loaded_libzmq() is None


def test_the_libzmq_is_the_one_pyzmq_loaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = Path(zmq.__file__).resolve().parent.parent
    bundled = f"{site}/pyzmq.libs/libzmq-abc.so.5"
    maps = tmp_path / "maps"

    def mapped(*paths: str) -> bytes | None:
        maps.write_text("".join(f"7f00-7f01 r-xp 00000000 fd:00 1 {p}\n" for p in paths))
        return router._loaded_libzmq()

    monkeypatch.setattr(router, "_MAPS", str(maps))
    assert mapped("/usr/lib/libc.so.6", bundled, "/opt/x/libzmq.so.5") == bundled.encode()
    assert (
        mapped("/usr/lib/x86_64-linux-gnu/libzmq.so.5") == b"/usr/lib/x86_64-linux-gnu/libzmq.so.5"
    )
    assert mapped("/a/libzmq.so.5", "/b/libzmq.so.5") is None  # which is pyzmq's? not ours to guess
    assert mapped("/usr/lib/libc.so.6") is None
