"""Properties of the LOBSTER venue on random order flow (hypothesis): fills respect
limits, quantities, cancels and latency; the ledger agrees with the fills; and the
compiled feed that skips messages gives what a message-by-message run gives."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategy.synthetic import Msg, day
from tickplane.engine.backtest import run_backtest
from tickplane.engine.strategy import Fill, Order, Quote, Strategy

P = 1_000_000
TICK = 100
MS = 1_000_000


def random_flow(rng: random.Random, n: int) -> list[Msg]:
    """Adds, partial cancels, deletes and executions at the best, all consistent."""
    live: dict[int, list[int]] = {}  # id -> [direction, price, size]
    msgs: list[Msg] = [(0.001, 1, 1, 100, P - TICK, 1), (0.001, 1, 2, 100, P + TICK, -1)]
    live[1] = [1, P - TICK, 100]
    live[2] = [-1, P + TICK, 100]
    nid = 3
    t = 0.001
    for _ in range(n):
        t += rng.choice((0.0, 0.0005, 0.002, 0.01))
        bids = [p for d, p, _ in live.values() if d == 1]
        asks = [p for d, p, _ in live.values() if d == -1]
        roll = rng.random()
        if roll < 0.45 or not live:
            d = rng.choice((1, -1))
            if d == 1:
                hi = (min(asks) - TICK) if asks else P + 3 * TICK
                price = hi - TICK * rng.randint(0, 3)
            else:
                lo = (max(bids) + TICK) if bids else P - 3 * TICK
                price = lo + TICK * rng.randint(0, 3)
            live[nid] = [d, price, rng.randint(1, 60)]
            msgs.append((t, 1, nid, live[nid][2], price, d))
            nid += 1
            continue
        oid = rng.choice(sorted(live))
        d, price, size = live[oid]
        if roll < 0.7:
            cut = rng.randint(1, size)
            mtype = 3 if cut == size else 2
        else:
            best = max(bids) if d == 1 else min(asks)
            at_best = sorted(k for k, v in live.items() if v[0] == d and v[1] == best)
            oid = at_best[0]
            d, price, size = live[oid]
            cut, mtype = rng.randint(1, size), 4
        msgs.append((t, mtype, oid, size if mtype == 3 else cut, price, d))
        live[oid][2] -= cut
        if live[oid][2] <= 0 or mtype == 3:
            del live[oid]
    return msgs


class Random(Strategy):
    """Random orders and cancels on quotes; records what it was told, in order."""

    name = "random"

    def __init__(self, seed: int, every: bool) -> None:
        super().__init__(symbol="TEST", tick=TICK)
        self.rng = random.Random(seed)
        self.every = every
        self.log_: list[tuple[Any, ...]] = []
        self.canceled_at: dict[int, int] = {}
        self.bad: list[str] = []

    def on_quote(self, quote: Quote) -> None:
        r = self.rng.random()
        if r < 0.3 and quote.bid is not None and quote.ask is not None:
            side = self.rng.choice(("buy", "sell"))
            if self.rng.random() < 0.15:
                self.submit(side, self.rng.randint(1, 40))  # market
            else:
                ref = quote.bid if side == "buy" else quote.ask
                off = TICK * self.rng.randint(-2, 2)
                self.submit(
                    side,
                    self.rng.randint(1, 40),
                    ref + off,
                    tif=self.rng.choice(("gtc", "gtc", "ioc")),
                )
        elif r < 0.4 and self.open_orders():
            self.cancel(self.rng.choice(self.open_orders()))

    def on_fill(self, fill: Fill, order: Order) -> None:
        self.log_.append(("fill", fill.ts, fill.order_id, fill.price, fill.qty, fill.liquidity))
        if order.id in self.canceled_at:
            self.bad.append(f"order {order.id} filled after its cancel")

    def on_canceled(self, order: Order) -> None:
        self.canceled_at[order.id] = self.now()
        self.log_.append(("canceled", self.now(), order.id, order.reason))


class EveryMessage(Random):
    """The same strategy asking for every message (so the feed skips none)."""

    def on_book(self, book: Any) -> None:
        pass


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    latency_ms=st.sampled_from([0, 1, 7]),
    n=st.integers(20, 250),
)
def test_fills_respect_orders_and_the_fast_feed_changes_nothing(
    seed: int, latency_ms: int, n: int
) -> None:
    data = day(random_flow(random.Random(seed), n))
    s = Random(seed, every=False)
    r = run_backtest(s, data, latency_ns=latency_ms * MS, fee_bps=1.0)
    assert not s.bad, s.bad
    filled: dict[int, int] = {}
    for f in r.fills:
        o = s.orders[f.order_id]
        filled[o.id] = filled.get(o.id, 0) + f.qty
        assert f.qty > 0
        assert f.ts >= o.ts_submitted + latency_ms * MS  # nothing fills before it arrives
        if o.price is not None:
            assert f.price <= o.price if o.side == "buy" else f.price >= o.price
        if f.liquidity == "maker":
            assert f.price == o.price
    for oid, q in filled.items():
        assert q <= s.orders[oid].qty and q == s.orders[oid].filled
    signed = sum(f.qty if f.side == "buy" else -f.qty for f in r.fills)
    assert s.position == signed
    assert abs(s.ledger.fees - sum(f.fee for f in r.fills)) < 1e-6
    # The compiled feed skipped messages; a strategy that wants every one sees the same.
    twin = EveryMessage(seed, every=True)
    r2 = run_backtest(twin, data, latency_ns=latency_ms * MS, fee_bps=1.0)
    assert twin.log_ == s.log_
    assert r2.summary() == r.summary()
