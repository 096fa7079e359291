"""Free loopback ports for servers the tests start in other processes.

A port chosen by binding port 0 comes from the kernel's ephemeral range, the range every
outgoing connection also takes its local port from: between the choice and the server's
own bind, any client connecting anywhere can be given it (seen in CI as `[Errno 98]
address already in use`). So the ports handed out here are picked at random below that
range, where only a listener that asks for the number can land, and are checked free.
A port is not handed out again while it is among the last `_RECENT` handed out: a
free port is free until its server binds it, so two picks before the first bind (an
engine's three ports) could otherwise get the same number (seen in CI: an engine's
event socket refused the port its order entry had just bound). Only recent ones: kept
for the whole run, they filled the range until no run of free ports was left (seen in
CI, near the end of the suite).
"""

from __future__ import annotations

import random
import socket
from collections import deque

__all__ = ["free_port", "free_ports"]

LOOPBACK = "127.0.0.1"
_LOWEST = 10_000  # above the well-known and registered ports servers usually default to
_RECENT = 4096  # ports: far more than any fixture picks before its servers bind
_given: set[int] = set()  # the last `_RECENT` ports handed out by this process
_order: deque[int] = deque()  # the same, oldest first


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _free(base: int, n: int) -> bool:
    if any(port in _given for port in range(base, base + n)):
        return False
    socks: list[socket.socket] = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_ports(n: int) -> int:
    """A base port with `n` consecutive ports after it free on the loopback interface,
    outside the ephemeral range (see the module's docstring)."""
    top = _ephemeral_start() - n
    if top <= _LOWEST:
        raise RuntimeError(f"no room for {n} ports below the ephemeral range")
    for _ in range(200):
        base = random.randrange(_LOWEST, top)
        if _free(base, n):
            for port in range(base, base + n):
                _given.add(port)
                _order.append(port)
            while len(_order) > _RECENT:
                _given.discard(_order.popleft())
            return base
    raise RuntimeError(f"no run of {n} free ports below {top + n}")


def free_port() -> int:
    """One free loopback port outside the ephemeral range."""
    return free_ports(1)
