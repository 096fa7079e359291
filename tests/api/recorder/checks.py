"""Order flow for the recorder tests, and checks that each sink holds exactly the
engine's events (compared with the engine's own replay of them)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tickplane.api.projection import Projection
from tickplane.api.recorder.kafka_sink import kafka_topics
from tickplane.api.recorder.redis_sink import redis_prefix
from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import (
    Event,
    OrderAccepted,
    OrderRejected,
    PositionChanged,
    TopOfBook,
    Trade,
)

ACCOUNTS = ["alice", "bob", "carol"]
SYMBOLS = ["GOOG", "AAPL"]


async def order_flow(
    client: EngineClient,
    n: int,
    seed: int,
    *,
    pause: float = 0.0,
    until: asyncio.Event | None = None,
) -> None:
    """`n` requests (fewer if `until` is set first): resting limits near a mid,
    marketable ones, cancels, replaces and a few bad orders (rejects), from three
    accounts on two symbols."""
    rng = random.Random(seed)
    live: list[tuple[str, int]] = []
    for i in range(n):
        if until is not None and until.is_set():
            return
        account = rng.choice(ACCOUNTS)
        symbol = rng.choice(SYMBOLS)
        r = rng.random()
        if r < 0.15 and live:
            acct, oid = live.pop(rng.randrange(len(live)))
            await client.cancel(acct, oid)
        elif r < 0.22 and live:
            acct, oid = rng.choice(live)
            await client.replace(acct, oid, qty=rng.randint(1, 20), price=rng.randint(990, 1010))
        elif r < 0.25:
            await client.submit(account, symbol, "buy", "limit", 5, price=-1)  # rejected
        else:
            side = rng.choice(["buy", "sell"])
            price = rng.randint(990, 1010)
            rep = await client.submit(
                account, symbol, side, "limit", rng.randint(1, 20), price=price,
                client_order_id=f"c{seed}-{i}",
            )  # fmt: skip
            new_id = getattr(rep, "order_id", None)  # an Ack's; a Reject has none
            if isinstance(new_id, int):
                live.append((account, new_id))
        if pause:
            await asyncio.sleep(pause)  # pacing the flow so the test can act mid-stream


def _order_id(reply: wire.Reply) -> int:
    order_id = getattr(reply, "order_id", None)
    assert isinstance(order_id, int), reply
    return order_id


async def class_flow(client: EngineClient) -> dict[str, int]:
    """Brackets, an OTO, OCOs, a stop and trailing stops that end in every state a held
    order has (on books nothing else trades in yet): returns their ids by name.

    GOOG: bracket `b_sl` (its parent filled, the take-profit filled in part, the
    stop-loss triggered for the rest: a leg short of its quantity filled because its
    parent is closed, the other canceled); `b_cut` (its parent filled 4 of 10, the
    take-profit filled those 4, the parent canceled: the take-profit filled with no
    event of its own, the stop-loss canceled); `b_held` (nothing filled: legs held, one
    canceled, the other's stop replaced); `b_part` (2 of 6 filled: the take-profit in
    the book, the stop-loss activated and still held); an OTO `oto` (its parent filled,
    its leg filled in part); a bracket the engine rejects. AAPL: an OCO `oco_sl` (its
    limit filled in part, then its stop triggered and filled the rest: the limit
    canceled), an OCO `oco_open` (limit working, stop held), a plain stop, a sell
    trailing stop by price and a buy one by percent, each trail then replaced (wider, so
    that the flow after them triggers neither: 20 ticks to 25; 2.5% to 3.5%, with a
    quantity of 3)."""
    tp, sl = wire.TakeProfit, wire.StopLoss
    ids: dict[str, int] = {}

    async def new(account: str, symbol: str, side: str, qty: int, price: int, **kw: Any) -> int:
        return _order_id(
            await client.submit(account, symbol, side, "limit", qty, price=price, **kw)
        )

    ids["b_sl"] = await new(
        "dave", "GOOG", "buy", 4, 1_000, order_class="bracket", take_profit=tp(1_050),
        stop_loss=sl(950),
    )  # fmt: skip
    await new("erin", "GOOG", "sell", 4, 1_000)  # the parent fills: both legs work 4
    await new("erin", "GOOG", "buy", 2, 1_050)  # the take-profit fills 2
    await new("frank", "GOOG", "buy", 5, 940)
    await new("erin", "GOOG", "sell", 1, 945)
    await new("frank", "GOOG", "buy", 1, 945)  # prints 945: the stop-loss sells 2 at 940
    ids["b_cut"] = await new(
        "dave", "GOOG", "buy", 10, 960, order_class="bracket", take_profit=tp(1_040),
        stop_loss=sl(930),
    )  # fmt: skip
    await new("erin", "GOOG", "sell", 4, 960)
    await new("erin", "GOOG", "buy", 4, 1_040)
    _order_id(await client.cancel("dave", ids["b_cut"]))
    ids["b_held"] = await new(
        "dave", "GOOG", "buy", 5, 950, order_class="bracket", take_profit=tp(1_050),
        stop_loss=sl(900),
    )  # fmt: skip
    _order_id(await client.cancel("dave", ids["b_held"] + 1))  # its take-profit
    _order_id(await client.replace("dave", ids["b_held"] + 2, stop_price=910))
    ids["b_part"] = await new(
        "dave", "GOOG", "buy", 6, 970, order_class="bracket", take_profit=tp(1_030),
        stop_loss=sl(935),
    )  # fmt: skip
    await new("erin", "GOOG", "sell", 2, 970)
    ids["oto"] = await new("dave", "GOOG", "buy", 4, 975, order_class="oto", take_profit=tp(1_025))
    await new("erin", "GOOG", "sell", 4, 975)
    await new("erin", "GOOG", "buy", 1, 1_025)
    bad = await client.submit(
        "dave", "GOOG", "buy", "limit", 1, price=1_000, order_class="bracket",
        take_profit=tp(900), stop_loss=sl(950),
    )  # fmt: skip
    assert getattr(bad, "order_id", None) is None, bad  # rejected: bad_legs
    ids["oco_sl"] = await new(
        "dave", "AAPL", "sell", 5, 1_030, order_class="oco", take_profit=tp(1_030),
        stop_loss=sl(960),
    )  # fmt: skip
    await new("erin", "AAPL", "buy", 2, 1_030)  # the limit fills 2: the stop works 3
    await new("frank", "AAPL", "buy", 5, 950)
    await new("erin", "AAPL", "sell", 1, 955)
    await new("frank", "AAPL", "buy", 1, 955)  # prints 955: the stop sells 3 at 950
    ids["oco_open"] = await new(
        "dave", "AAPL", "sell", 2, 1_040, order_class="oco", take_profit=tp(1_040),
        stop_loss=sl(930),
    )  # fmt: skip
    ids["stop"] = _order_id(await client.submit("dave", "AAPL", "sell", "stop", 2, stop_price=900))
    ids["trail_sell"] = _order_id(
        await client.submit("dave", "AAPL", "sell", "trailing_stop", 3, trail_price=20)
    )
    ids["trail_buy"] = _order_id(
        await client.submit("dave", "GOOG", "buy", "trailing_stop", 2, trail_percent=2.5)
    )
    _order_id(await client.replace("dave", ids["trail_sell"], trail_price=25))
    _order_id(await client.replace("dave", ids["trail_buy"], qty=3, trail_percent=3.5))
    return ids


async def engine_events(client: EngineClient) -> list[Event]:
    """Every trading event the engine has published, from its replay service."""
    # Paged until the engine has no more (its replay stops at its last seq).
    return await client.replay(1, 2**62)


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, step: float = 0.1
) -> None:
    """Poll `check` until it is true or `timeout` passes (then fail saying `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except (OSError, asyncpg.PostgresError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(step)


# -- the reference: the gateway's projection of the same events ----------------------------

# The orders columns and the projection's OrderRecord fields they hold. Not compared: the
# recorder's `qty` (as accepted; the projection's follows replaces), `reason` (the
# recorder also keeps a refused cancel's reason on a closed order) and seqs/timestamps.
ORDER_COLUMNS = {
    "account": "account", "symbol": "symbol", "side": "side", "order_type": "type",
    "tif": "time_in_force", "client_order_id": "client_order_id", "status": "status",
    "open_qty": "open_qty", "filled_qty": "filled_qty", "filled_notional": "filled_notional",
    "price": "limit_price", "stop_price": "stop_price", "hwm": "hwm",
    "order_class": "order_class", "parent_id": "parent_id", "leg": "leg",
    "trail_price": "trail_price", "trail_percent": "trail_percent",
}  # fmt: skip


def reference_orders(events: list[Event]) -> dict[int, dict[str, Any]]:
    """Each order's final state as the gateway's projection derives it, one event at a
    time (independent of the sink's batch fold and SQL merge), in the orders table's
    column names; plus a row for each new order the engine rejected (the recorder keeps
    one, with no symbol; the projection none)."""
    proj = Projection(cast(EngineClient, None), max_closed_orders=10**9)
    proj.apply_all(events)
    orders: dict[int, dict[str, Any]] = {}
    for account in proj.accounts():
        for o in proj.orders(account):
            orders[o.id] = {col: getattr(o, f) for col, f in ORDER_COLUMNS.items()}
    accepted: set[int] = set()
    for ev in events:
        if isinstance(ev, OrderAccepted):
            accepted.add(ev.id)
        elif isinstance(ev, OrderRejected) and ev.id not in accepted:
            orders[ev.id] = {
                "status": "rejected", "open_qty": 0, "filled_qty": 0, "price": None,
                "account": ev.account, "symbol": None, "stop_price": None, "hwm": None,
                "order_class": None, "parent_id": None, "leg": None,
            }  # fmt: skip
    return orders


def reference_positions(events: list[Event]) -> dict[tuple[str, str], PositionChanged]:
    out: dict[tuple[str, str], PositionChanged] = {}
    for ev in events:
        if isinstance(ev, PositionChanged):
            out[(ev.account, ev.symbol)] = ev
    return out


# -- per sink ------------------------------------------------------------------------------


async def pg_last_seq(dsn: str, engine: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        v = await conn.fetchval(
            "SELECT last_seq FROM recorder_progress WHERE engine = $1 AND sink = 'postgres'",
            engine,
        )
        return int(v or 0)
    finally:
        await conn.close()


async def check_postgres(dsn: str, engine: str, events: list[Event]) -> None:
    trades = [e for e in events if isinstance(e, Trade)]
    conn = await asyncpg.connect(dsn)
    try:
        last = await conn.fetchval(
            "SELECT last_seq FROM recorder_progress WHERE engine = $1 AND sink = 'postgres'",
            engine,
        )
        assert last == events[-1].seq
        rows = await conn.fetch(
            "SELECT seq, liquidity, order_id, account, price, qty FROM executions"
            " WHERE engine = $1 ORDER BY seq, liquidity",
            engine,
        )
        want = sorted(
            [(t.seq, "maker", t.maker, t.maker_account, t.price, t.qty) for t in trades]
            + [(t.seq, "taker", t.taker, t.taker_account, t.price, t.qty) for t in trades]
        )
        assert [tuple(r) for r in rows] == want
        md = await conn.fetch(
            "SELECT seq, symbol, price, qty, taker_side FROM md_trades WHERE engine = $1"
            " ORDER BY seq",
            engine,
        )
        assert [tuple(r) for r in md] == [
            (t.seq, t.symbol, t.price, t.qty, t.taker_side) for t in trades
        ]
        ref = reference_orders(events)
        got = {
            r["id"]: dict(r)
            for r in await conn.fetch(
                f"SELECT id, {', '.join(ORDER_COLUMNS)} FROM orders WHERE engine = $1",
                engine,
            )
        }
        assert set(got) == set(ref)
        for oid, want_o in ref.items():
            g = got[oid]
            assert {k: g[k] for k in want_o} == want_o, f"order {oid}"
        pos = {
            (r["account"], r["symbol"]): (
                r["position"], r["cost_basis"], r["realized_pnl"], r["unrealized_pnl"]
            )
            for r in await conn.fetch(
                "SELECT account, symbol, position, cost_basis, realized_pnl, unrealized_pnl"
                " FROM positions WHERE engine = $1",
                engine,
            )
        }  # fmt: skip
        assert pos == {
            k: (p.position, p.cost_basis, p.realized_pnl, p.unrealized_pnl)
            for k, p in reference_positions(events).items()
        }
    finally:
        await conn.close()


async def redis_last_seq(url: str, engine: str) -> int:
    r = aioredis.Redis.from_url(url)
    try:
        return int(await r.get(f"{redis_prefix(engine)}:recorder:seq") or 0)
    finally:
        await r.aclose()


async def check_redis(url: str, engine: str, events: list[Event], cap: int = 100) -> None:
    p = redis_prefix(engine)
    r = aioredis.Redis.from_url(url)
    try:
        assert int(await r.get(f"{p}:recorder:seq") or 0) == events[-1].seq
        for (account, symbol), pc in reference_positions(events).items():
            raw = await r.hget(f"{p}:positions:{account}", symbol)
            assert raw is not None
            got = json.loads(raw)
            assert (got["position"], got["unrealized_pnl"], got["seq"]) == (
                pc.position, pc.unrealized_pnl, pc.seq
            )  # fmt: skip
        for symbol in SYMBOLS:
            trades = [e for e in events if isinstance(e, Trade) and e.symbol == symbol]
            listed = [json.loads(x)["seq"] for x in await r.lrange(f"{p}:trades:{symbol}", 0, -1)]
            assert listed == [t.seq for t in reversed(trades)][:cap]
    finally:
        await r.aclose()


async def kafka_records(bootstrap: str, engine: str) -> list[tuple[str, dict[str, bytes], bytes]]:
    """Every committed record of the engine's data topics: (topic, headers, value)."""
    topics = kafka_topics(engine)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[str, dict[str, bytes], bytes]] = []
    try:
        tps = []
        existing = await consumer.topics()
        kinds = [
            k for k in ("orders", "executions", "positions", "marketdata") if topics[k] in existing
        ]
        if kinds:
            # A producer's metadata lookup names a topic's partitions (the consumer's
            # covers only topics it subscribes to).
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                for kind in kinds:
                    parts = await producer.partitions_for(topics[kind])
                    tps += [TopicPartition(topics[kind], p) for p in parts]
            finally:
                await producer.stop()
        if not tps:
            return out  # the sink has not created its topics yet
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                got = await consumer.getmany(tp, timeout_ms=1000)
                for rec in got.get(tp, []):
                    out.append((tp.topic, dict(rec.headers), rec.value))
    finally:
        await consumer.stop()
    return out


async def kafka_seqs(bootstrap: str, engine: str) -> list[int]:
    return sorted(int(h["seq"]) for _, h, _ in await kafka_records(bootstrap, engine) if "seq" in h)


async def check_kafka(bootstrap: str, engine: str, events: list[Event]) -> None:
    """Kafka holds each event once, as its JSON. A transaction's commit returns before
    its markers reach every partition, so a read_committed read right after it may not
    see the last records yet: read until every seq is there (a duplicate fails at once)."""
    by_seq: dict[int, list[bytes]] = {}

    async def complete() -> bool:
        by_seq.clear()
        for _, headers, value in await kafka_records(bootstrap, engine):
            if "seq" in headers:
                by_seq.setdefault(int(headers["seq"]), []).append(value)
        return len(by_seq) >= len(events) or any(len(v) > 1 for v in by_seq.values())

    await wait_for(complete, 30, f"{len(events)} events in Kafka")
    dupes = [s for s, v in by_seq.items() if len(v) > 1]
    assert not dupes, f"seqs written twice: {dupes[:10]}"
    assert sorted(by_seq) == [e.seq for e in events]
    for ev in events:
        assert json.loads(by_seq[ev.seq][0]) == ev.to_dict()


async def settle(client: EngineClient) -> None:
    """One order per symbol: a change of every book once the recorder is subscribed, so
    each sink's last top of book is the book's current one (tops are not replayable)."""
    for symbol in SYMBOLS:
        await client.submit("settle", symbol, "buy", "limit", 1, price=1000)


async def check_tops(
    client: EngineClient, dsn: str, redis_url: str, bootstrap: str, engine: str
) -> None:
    """Each symbol's latest top of book in Redis and in PostgreSQL's history is the
    engine's book now (they follow the last seq shortly); Kafka holds no top twice."""
    r = aioredis.Redis.from_url(redis_url)
    conn = await asyncpg.connect(dsn)
    try:
        for symbol in SYMBOLS:
            reply = await client.get_book(symbol, depth=10)
            book = reply.book  # type: ignore[union-attr]
            assert book is not None
            bids = [[lv.price, lv.qty, lv.orders] for lv in book.bids]
            asks = [[lv.price, lv.qty, lv.orders] for lv in book.asks]

            async def recorded(symbol: str = symbol, bids: Any = bids, asks: Any = asks) -> bool:
                raw = await r.get(f"{redis_prefix(engine)}:top:{symbol}")
                top = json.loads(raw) if raw else {}
                row = await conn.fetchrow(
                    "SELECT md_seq, bid_price, ask_price FROM md_top_of_book"
                    " WHERE engine = $1 AND symbol = $2 ORDER BY md_seq DESC LIMIT 1",
                    engine,
                    symbol,
                )
                return (
                    top.get("bids") == bids
                    and top.get("asks") == asks
                    and row is not None
                    and row["md_seq"] == top["md_seq"]
                    and row["bid_price"] == (bids[0][0] if bids else None)
                    and row["ask_price"] == (asks[0][0] if asks else None)
                )

            await wait_for(recorded, 10, f"the top of book of {symbol} in Redis and PostgreSQL")
    finally:
        await r.aclose()
        await conn.close()
    tops = [
        (json.loads(v)["symbol"], int(h["md_seq"]))
        for _, h, v in await kafka_records(bootstrap, engine)
        if "md_seq" in h
    ]
    assert tops and len(tops) == len(set(tops))


async def md_now(client: EngineClient) -> dict[str, int]:
    """Each symbol's last md_seq at the engine now."""
    out = {}
    for s in SYMBOLS:
        reply = await client.get_book(s)
        assert reply.book is not None  # type: ignore[union-attr]
        out[s] = reply.book.md_seq  # type: ignore[union-attr]
    return out


async def engine_tops(client: EngineClient, symbol: str) -> list[TopOfBook]:
    """Every top of book of `symbol` the engine keeps (its market-data log), in order."""
    out: list[TopOfBook] = []
    nxt = 1
    while True:
        page, covered = await client.replay_market_data(symbol, nxt, 2**62)
        if covered < nxt:
            return out
        out += [md for md in page if isinstance(md, TopOfBook)]
        nxt = covered + 1


async def md_progress(
    dsn: str, redis_url: str, bootstrap: str, engine: str
) -> list[dict[str, int]]:
    """Each sink's last md_seq per symbol: PostgreSQL, Redis, Kafka."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT symbol, last_md_seq FROM recorder_md_progress WHERE engine = $1", engine
        )
    finally:
        await conn.close()
    kafka: dict[str, int] = {}
    for _, h, v in await kafka_records(bootstrap, engine):
        if "md_seq" in h:
            sym = json.loads(v)["symbol"]
            kafka[sym] = max(kafka.get(sym, 0), int(h["md_seq"]))
    return [
        {r["symbol"]: int(r["last_md_seq"]) for r in rows},
        await redis_md_seq(redis_url, engine),
        kafka,
    ]


async def redis_md_seq(url: str, engine: str) -> dict[str, int]:
    """The Redis sink's last md_seq per symbol."""
    r = aioredis.Redis.from_url(url)
    try:
        raw = await r.hgetall(f"{redis_prefix(engine)}:recorder:md_seq")
    finally:
        await r.aclose()
    return {k.decode(): int(v) for k, v in raw.items()}


async def check_market_data(
    client: EngineClient, dsn: str, redis_url: str, bootstrap: str, engine: str
) -> dict[str, int]:
    """PostgreSQL's market-data history and Kafka's marketdata topic hold exactly the
    engine's tops of book, each (symbol, md_seq) once, Kafka's with their trades;
    Redis holds each symbol's last; the tops' trades are the tape PostgreSQL's
    `md_trades` holds from the sequenced stream. Returns how many tops each symbol has."""
    want = {s: await engine_tops(client, s) for s in SYMBOLS}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT symbol, md_seq, ts_event, bid_price, bid_qty, ask_price, ask_qty,"
            " last_price FROM md_top_of_book WHERE engine = $1 ORDER BY symbol, md_seq",
            engine,
        )
        tape = await conn.fetch(
            "SELECT symbol, price, qty, taker_side, ts_event FROM md_trades"
            " WHERE engine = $1 ORDER BY symbol, seq",
            engine,
        )
    finally:
        await conn.close()
    prints = [
        (s, p.price, p.qty, p.taker_side, p.ts_event)
        for s in sorted(SYMBOLS)
        for t in want[s]
        for p in t.trades
    ]
    assert prints and prints == [tuple(r.values()) for r in tape]
    got_pg = [tuple(r.values()) for r in rows]
    want_pg = []
    for s in sorted(SYMBOLS):
        for t in want[s]:
            bid = t.bids[0] if t.bids else None
            ask = t.asks[0] if t.asks else None
            want_pg.append(
                (s, t.md_seq, t.ts_event, bid.price if bid else None, bid.qty if bid else None,
                 ask.price if ask else None, ask.qty if ask else None, t.last_price)
            )  # fmt: skip
    assert len(got_pg) == len(set((r[0], r[1]) for r in got_pg)), "a top written twice"
    assert got_pg == want_pg
    kafka: dict[tuple[str, int], list[Any]] = {}
    for _, h, v in await kafka_records(bootstrap, engine):
        if "md_seq" in h:
            value = json.loads(v)
            kafka.setdefault((value["symbol"], int(h["md_seq"])), []).append(value)
    assert all(len(v) == 1 for v in kafka.values()), "a top written twice to Kafka"
    assert kafka == {(s, t.md_seq): [t.to_dict()] for s in SYMBOLS for t in want[s]}
    r = aioredis.Redis.from_url(redis_url)
    try:
        for s in SYMBOLS:
            raw = await r.get(f"{redis_prefix(engine)}:top:{s}")
            assert raw is not None and json.loads(raw) == want[s][-1].to_dict()
    finally:
        await r.aclose()
    return {s: len(want[s]) for s in SYMBOLS}
