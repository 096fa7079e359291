"""A synthetic order flow that keeps a live market in an internal-venue engine.

For a laptop demo or a test cluster with no outside market: for each configured symbol,
a mid price walks at random and two accounts trade around it, a market maker resting
limit orders a few ticks either side and a taker now and then crossing the spread. The
orders are ordinary requests: they go through risk, the journal and matching like any
client's, so recovery and the event stream need nothing special. The flow is seeded;
after a restart it carries on from a fresh seed (the past is in the journal).
"""

from __future__ import annotations

import random
from collections import deque

from tickplane.core import wire
from tickplane.core.config import MarketConfig, SymbolConfig

__all__ = ["SyntheticMarket"]


class _Symbol:
    def __init__(self, name: str, mid: int) -> None:
        self.name = name
        self.mid = mid
        self.resting: deque[int] = deque()  # the maker's order ids, oldest first


class SyntheticMarket:
    """Produces the next requests when they are due (see the module docstring)."""

    def __init__(self, config: MarketConfig, symbols: list[SymbolConfig], now_ns: int) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.interval_ns = int(1e9 / config.rate)
        self.next_ns = now_ns
        names = config.symbols or [s.name for s in symbols]
        ref = {s.name: s.reference_price for s in symbols}
        self.symbols = [_Symbol(n, ref.get(n) or config.start_price) for n in names]
        self._req = 0
        self._pending: dict[int, _Symbol] = {}

    def timeout_ms(self, now_ns: int) -> float:
        return max(0.0, (self.next_ns - now_ns) / 1e6)

    def due(self, now_ns: int) -> list[wire.Request]:
        """The requests whose time has come (at most one per interval; none when late
        by more than a second, so a stalled engine does not catch up in a burst)."""
        if now_ns < self.next_ns:
            return []
        if now_ns - self.next_ns > 1_000_000_000:
            self.next_ns = now_ns
        self.next_ns += self.interval_ns
        return self._step(self.rng.choice(self.symbols))

    def on_reply(self, req: wire.Request, reply: wire.Reply) -> None:
        """Learn the ids of the maker's resting orders."""
        sym = self._pending.pop(req.req, None)
        if sym is not None and isinstance(reply, wire.Ack) and reply.order_id is not None:
            sym.resting.append(reply.order_id)

    def _next_req(self) -> int:
        self._req += 1
        return self._req

    def _step(self, s: _Symbol) -> list[wire.Request]:
        c, rng = self.config, self.rng
        s.mid = max(c.spread + c.levels + 1, s.mid + rng.choice((-1, 0, 0, 1)))
        out: list[wire.Request] = []
        if len(s.resting) > 2 * c.levels:
            out.append(wire.CancelOrder(self._next_req(), c.maker_account, s.resting.popleft()))
        roll = rng.random()
        if roll < c.take_ratio:
            side = rng.choice(("buy", "sell"))
            price = s.mid + (c.spread * 2 if side == "buy" else -c.spread * 2)
            out.append(
                wire.NewOrder(
                    self._next_req(),
                    c.taker_account,
                    s.name,
                    side,
                    "limit",
                    rng.randint(1, c.max_qty),
                    price,
                    tif="ioc",
                )
            )
        else:
            side = rng.choice(("buy", "sell"))
            offset = c.spread + rng.randint(0, c.levels)
            price = s.mid - offset if side == "buy" else s.mid + offset
            req = wire.NewOrder(
                self._next_req(),
                c.maker_account,
                s.name,
                side,
                "limit",
                rng.randint(1, c.max_qty),
                price,
            )
            self._pending[req.req] = s
            out.append(req)
        return out
