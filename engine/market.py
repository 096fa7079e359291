"""Order flow that keeps a live market in an internal-venue engine.

For a laptop demo or a test cluster with no outside market: for each configured symbol,
a mid price walks at random and two accounts trade around it, a market maker resting
limit orders a few ticks either side and a taker now and then crossing the spread. The
orders are ordinary requests: they go through risk, the journal and matching like any
client's, so recovery and the event stream need nothing special. The flow is seeded;
after a restart it carries on from a fresh seed (the past is in the journal), once it
has canceled the maker's orders the earlier run left resting, which it does not know.
"""

from __future__ import annotations

import random
from collections import deque

from tickplane.core import wire
from tickplane.core.config import MarketConfig, SymbolConfig

__all__ = ["LobsterMarket", "SyntheticMarket"]


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
        self._swept = False  # the maker's orders from before this instance canceled

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
        out = [] if self._swept else self._sweep()
        return out + self._step(self.rng.choice(self.symbols))

    def _sweep(self) -> list[wire.Request]:
        """Cancel the maker's orders an earlier run left resting (recovered from the
        journal): this instance does not know them, so they would rest for ever at
        stale prices, more of them after every restart."""
        self._swept = True
        maker = self.config.maker_account
        return [wire.MassCancel(self._next_req(), maker, s.name) for s in self.symbols]

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


class LobsterMarket:
    """A LOBSTER day's order flow replayed onto one symbol, in scaled real time.

    The book starts from the day's first orderbook row (one maker order per level);
    then each add becomes a maker limit order, each partial cancel a replace to the
    remaining size, each delete a cancel, and each visible execution a taker IOC order
    crossing at that price (it trades with whatever rests there first, client orders
    included, as on an exchange). Prices are converted from LOBSTER's 1/10000 dollar to
    the symbol's ticks; a message off the tick grid, or about an order placed before the
    day started, is skipped. At the end of the day the replay starts over. Each start
    (the engine's, or the day's again) first cancels the maker's orders left resting.
    """

    MAX_BURST = 500  # requests handed out per call, so one loop turn stays short

    def __init__(self, config: MarketConfig, symbol: SymbolConfig, now_ns: int) -> None:
        from decimal import Decimal

        from tickplane.engine.lobster import load, sample_paths

        self.config = config
        self.symbol = symbol.name
        unit = Decimal(symbol.tick_size) * 10_000
        if unit != int(unit) or unit <= 0:
            raise ValueError(f"tick size {symbol.tick_size} is finer than LOBSTER's prices")
        self.unit = int(unit)
        path = config.lobster_zip or str(sample_paths()[10])
        day = load(zip_path=path)
        m = day.messages
        self.times = m["time"].tolist()
        self.types = m["type"].tolist()
        self.ids = m["id"].tolist()
        self.sizes = m["size"].tolist()
        self.prices = m["price"].tolist()
        self.directions = m["direction"].tolist()
        self.row0 = day.orderbook[0].tolist()
        self.levels = day.levels
        self._req = 0
        self._start(now_ns)

    def _start(self, now_ns: int) -> None:
        self.i = 1  # row 0 is the starting book
        self.start_ns = now_ns
        self.engine_id: dict[int, int] = {}  # LOBSTER id -> engine order id
        self.remaining: dict[int, int] = {}  # LOBSTER id -> open size
        self._pending: dict[int, int] = {}  # request -> LOBSTER id
        self._seeded = False

    def _next_req(self) -> int:
        self._req += 1
        return self._req

    def _ticks(self, price: int) -> int | None:
        q, r = divmod(price, self.unit)
        return q if r == 0 and q > 0 else None

    def _due_ns(self, i: int) -> int:
        return self.start_ns + int((self.times[i] - self.times[0]) * 1e9 / self.config.speed)

    def timeout_ms(self, now_ns: int) -> float:
        if not self._seeded:
            return 0.0
        if self.i >= len(self.times):
            return 0.0
        return max(0.0, (self._due_ns(self.i) - now_ns) / 1e6)

    def due(self, now_ns: int) -> list[wire.Request]:
        c = self.config
        out: list[wire.Request] = []
        if not self._seeded:
            self._seeded = True
            # The book this replay left (a restart, or the day's end before it starts
            # over) goes first: those orders' LOBSTER ids are forgotten, so nothing
            # would cancel them, and the day's first book would rest on top of them.
            out.append(wire.MassCancel(self._next_req(), c.maker_account, self.symbol))
            for k in range(self.levels):
                for off, side in ((0, "sell"), (2, "buy")):
                    price, size = self.row0[4 * k + off], self.row0[4 * k + off + 1]
                    ticks = self._ticks(price) if size > 0 else None
                    if ticks is not None:
                        out.append(
                            wire.NewOrder(
                                self._next_req(),
                                c.maker_account,
                                self.symbol,
                                side,
                                "limit",
                                size,
                                ticks,
                            )
                        )
            return out
        if self.i >= len(self.times):
            self._start(now_ns)
            return out
        while (
            self.i < len(self.times)
            and len(out) < self.MAX_BURST
            and self._due_ns(self.i) <= now_ns
        ):
            req = self._message(self.i)
            if req is not None:
                out.append(req)
            self.i += 1
        return out

    def _message(self, i: int) -> wire.Request | None:
        c = self.config
        kind, lid, size = self.types[i], self.ids[i], self.sizes[i]
        ticks = self._ticks(self.prices[i])
        buy = self.directions[i] == 1
        if kind == 1 and ticks is not None:
            req = wire.NewOrder(
                self._next_req(),
                c.maker_account,
                self.symbol,
                "buy" if buy else "sell",
                "limit",
                size,
                ticks,
            )
            self._pending[req.req] = lid
            self.remaining[lid] = size
            return req
        oid = self.engine_id.get(lid)
        if kind == 4 and ticks is not None:
            if lid in self.remaining:
                self.remaining[lid] -= size
            return wire.NewOrder(
                self._next_req(),
                c.taker_account,
                self.symbol,
                "sell" if buy else "buy",
                "limit",
                size,
                ticks,
                tif="ioc",
            )
        if oid is None:
            return None
        if kind == 2 and self.remaining.get(lid, 0) > size:
            self.remaining[lid] -= size
            return wire.ReplaceOrder(
                self._next_req(), c.maker_account, oid, qty=self.remaining[lid]
            )
        if kind in (2, 3):
            self.remaining.pop(lid, None)
            self.engine_id.pop(lid, None)
            return wire.CancelOrder(self._next_req(), c.maker_account, oid)
        return None

    def on_reply(self, req: wire.Request, reply: wire.Reply) -> None:
        lid = self._pending.pop(req.req, None)
        if lid is not None and isinstance(reply, wire.Ack) and reply.order_id is not None:
            self.engine_id[lid] = reply.order_id
