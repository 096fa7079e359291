"""Type stubs for the compiled `tickplane.engine.router` (see router.pyx)."""

import zmq

def available() -> bool: ...
def for_socket(socket: zmq.Socket[bytes]) -> Router | PyzmqRouter: ...

_MAPS: str

def _loaded_libzmq() -> bytes | None: ...

class Router:
    """Moves [identity, frame] messages on a pyzmq ROUTER socket."""

    socket: zmq.Socket[bytes]
    dropped: int

    def __init__(self, socket: zmq.Socket[bytes]) -> None: ...
    def take(self, max_batch: int, identity: bytes | None = None) -> list[tuple[bytes, bytes]]: ...
    def send(self, replies: list[tuple[bytes, bytes]]) -> None: ...

class PyzmqRouter:
    """`Router`'s interface through pyzmq's calls."""

    socket: zmq.Socket[bytes]
    dropped: int

    def __init__(self, socket: zmq.Socket[bytes]) -> None: ...
    def take(self, max_batch: int, identity: bytes | None = None) -> list[tuple[bytes, bytes]]: ...
    def send(self, replies: list[tuple[bytes, bytes]]) -> None: ...
