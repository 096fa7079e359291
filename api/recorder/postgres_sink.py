"""The PostgreSQL sink: orders, executions, positions, accounts and market-data history.

One transaction per batch: it locks the sink's row of `recorder_progress`, drops the
events at or below its `last_seq` (a duplicate delivery or a replayed range), COPYs the
append-only rows (`copy_records_to_table`), merges orders, positions and accounts
from COPY-filled temporary staging tables, and moves `last_seq` to the batch's last
seq. The rows and the progress commit together or not at all: exactly once per seq.
Tops of book likewise, per (symbol, md_seq): each symbol's last md_seq is a row of
`recorder_md_progress`, locked, checked and moved in the same transaction.

Orders of a class (bracket, OTO, OCO, trailing stop) carry their class, parent, leg and
trail, and the status the gateway's projection gives them (`held` included; rows.py);
once the table holds a leg, `_END_LEGS` settles after each merge the legs whose parent
closed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from tickplane.api.db import migrate
from tickplane.api.recorder.rows import (
    STOP_TYPES,
    Batch,
    day_of,
    fold,
    order_status,
    ts_of,
    waits_for_parent,
)
from tickplane.core.events import Event, TopOfBook

__all__ = ["PostgresSink"]

log = logging.getLogger(__name__)

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_orders (
    id bigint, account text, symbol text, side text, order_type text, tif text,
    post_only boolean, client_order_id text, qty bigint, price bigint, stop_price bigint,
    open_set bigint, open_sub bigint, filled_add bigint, notional_add numeric,
    price_set bigint, stop_set bigint, hwm_set bigint, canceled boolean, triggered boolean,
    activated boolean, rejected boolean, reason text, status text, is_new boolean,
    created_seq bigint, created_ts_event bigint, last_seq bigint, last_ts_event bigint,
    order_class text, parent_id bigint, leg text, trail_price bigint,
    trail_percent double precision
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_positions (
    account text, symbol text, position bigint, cost_basis bigint, realized_pnl bigint,
    updated_seq bigint, updated_ts_event bigint, unrealized_pnl bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_accounts (
    account text, cash bigint, kill_switch boolean, updated_seq bigint
) ON COMMIT DELETE ROWS;
"""
_STAGE_ORDER_COLUMNS = (
    "id", "account", "symbol", "side", "order_type", "tif", "post_only", "client_order_id",
    "qty", "price", "stop_price", "open_set", "open_sub", "filled_add", "notional_add",
    "price_set", "stop_set", "hwm_set", "canceled", "triggered", "activated", "rejected",
    "reason", "status", "is_new",
    "created_seq", "created_ts_event", "last_seq", "last_ts_event",
    "order_class", "parent_id", "leg", "trail_price", "trail_percent",
)  # fmt: skip

_INSERT_NEW_ORDERS = """
INSERT INTO orders (engine, id, account, symbol, side, order_type, tif, post_only,
    client_order_id, qty, price, stop_price, hwm, open_qty, filled_qty, filled_notional,
    triggered, status, reason, created_seq, updated_seq, created_ts_event, updated_ts_event,
    order_class, parent_id, leg, trail_price, trail_percent)
SELECT $1, id, account, symbol, side, order_type, tif, post_only, client_order_id, qty,
    CASE WHEN price IS NOT NULL THEN COALESCE(price_set, price) END,
    COALESCE(stop_set, stop_price), hwm_set,
    open_set - open_sub, filled_add, notional_add,
    triggered, status, reason, created_seq, last_seq, created_ts_event, last_ts_event,
    order_class, parent_id, leg, trail_price, trail_percent
FROM stage_orders WHERE is_new
"""
# SET expressions read the row's old values: the new open and filled quantities are
# spelled out again in the status, which is derived as order_status does: `held` an
# untriggered stop, or a leg held before (a limit leg is held only until activated); a
# leg short of its quantity with nothing open stays partially filled (_END_LEGS).
_UPDATE_ORDERS = """
UPDATE orders o SET
    open_qty = GREATEST(COALESCE(s.open_set, o.open_qty) - s.open_sub, 0),
    filled_qty = o.filled_qty + s.filled_add,
    filled_notional = o.filled_notional + s.notional_add,
    price = CASE WHEN o.price IS NOT NULL THEN COALESCE(s.price_set, o.price) END,
    stop_price = COALESCE(s.stop_set, o.stop_price),
    hwm = COALESCE(s.hwm_set, o.hwm),
    trail_price = COALESCE(s.trail_price, o.trail_price),
    trail_percent = COALESCE(s.trail_percent, o.trail_percent),
    triggered = o.triggered OR s.triggered,
    reason = COALESCE(s.reason, o.reason),
    status = CASE
        WHEN o.status = 'rejected' THEN 'rejected'
        WHEN s.canceled OR o.status = 'canceled' THEN 'canceled'
        WHEN o.order_type IN ('stop', 'stop_limit', 'trailing_stop')
             AND NOT (o.triggered OR s.triggered)
            THEN 'held'
        WHEN o.status = 'held' AND o.order_type NOT IN ('stop', 'stop_limit', 'trailing_stop')
             AND NOT s.activated THEN 'held'
        WHEN COALESCE(s.open_set, o.open_qty) - s.open_sub = 0
             AND o.filled_qty + s.filled_add > 0
             AND (o.parent_id IS NULL OR o.filled_qty + s.filled_add >= o.qty) THEN 'filled'
        WHEN o.filled_qty + s.filled_add > 0 THEN 'partially_filled'
        ELSE 'new' END,
    updated_seq = s.last_seq,
    updated_ts_event = s.last_ts_event
FROM stage_orders s
WHERE NOT s.is_new AND o.engine = $1 AND o.id = s.id
"""
# A leg that has worked off what it was given (partially filled, nothing open) is done
# once its parent is closed: the parent was canceled, or filled with nothing more for
# the leg (the projection's rule; the engine sends no event for it). Run after the
# merge, when parents and legs both hold the batch's changes: the legs the batch
# changed, and the legs of the parents it changed.
_END_LEGS = """
UPDATE orders l SET status = 'filled'
FROM orders p
WHERE l.engine = $1 AND l.id IN (
        SELECT s.id FROM stage_orders s WHERE s.filled_add > 0 OR s.open_set = 0
        UNION ALL
        SELECT c.id FROM stage_orders s JOIN orders c ON c.engine = $1 AND c.parent_id = s.id
        WHERE s.canceled OR s.filled_add > 0)
  AND l.parent_id IS NOT NULL AND l.status = 'partially_filled' AND l.open_qty = 0
  AND p.engine = $1 AND p.id = l.parent_id
  AND p.status NOT IN ('new', 'held', 'partially_filled')
"""
# A reject of an order the table does not hold: an order rejected when it was new. Its
# fills are late fills (docs/venues.md): it stays rejected, with what it filled; a
# later batch's add to filled_qty and leave open_qty at 0 (_UPDATE_ORDERS).
_INSERT_REJECTED = """
INSERT INTO orders (engine, id, account, status, reason, filled_qty, filled_notional,
    created_seq, updated_seq, created_ts_event, updated_ts_event)
SELECT $1, s.id, s.account, 'rejected', s.reason, s.filled_add, s.notional_add,
    s.last_seq, s.last_seq, s.last_ts_event, s.last_ts_event
FROM stage_orders s
WHERE NOT s.is_new AND s.rejected
  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.engine = $1 AND o.id = s.id)
"""
_HAS_LEGS = "SELECT EXISTS (SELECT 1 FROM orders WHERE engine = $1 AND parent_id IS NOT NULL)"
_UPSERT_POSITIONS = """
INSERT INTO positions (engine, account, symbol, position, cost_basis, realized_pnl,
    updated_seq, updated_ts_event, unrealized_pnl)
SELECT $1, account, symbol, position, cost_basis, realized_pnl, updated_seq,
    updated_ts_event, unrealized_pnl FROM stage_positions
ON CONFLICT (engine, account, symbol) DO UPDATE SET
    position = EXCLUDED.position, cost_basis = EXCLUDED.cost_basis,
    realized_pnl = EXCLUDED.realized_pnl, updated_seq = EXCLUDED.updated_seq,
    updated_ts_event = EXCLUDED.updated_ts_event, unrealized_pnl = EXCLUDED.unrealized_pnl
"""
_UPSERT_ACCOUNTS = """
INSERT INTO accounts (engine, account, cash, kill_switch, created_seq, updated_seq)
SELECT $1, account, COALESCE(cash, 0), COALESCE(kill_switch, false), updated_seq,
    updated_seq FROM stage_accounts
ON CONFLICT (engine, account) DO UPDATE SET
    cash = COALESCE(EXCLUDED.cash, accounts.cash),
    kill_switch = COALESCE(EXCLUDED.kill_switch, accounts.kill_switch),
    updated_seq = EXCLUDED.updated_seq
"""
# Each symbol's last top of book written (tops are numbered per symbol, not sequenced).
_MD_PROGRESS = """
SELECT symbol, last_md_seq FROM recorder_md_progress WHERE engine = $1 AND sink = $2
"""
_MD_PROGRESS_LOCK = _MD_PROGRESS + " AND symbol = ANY($3::text[]) FOR UPDATE"
_MD_PROGRESS_SET = """
INSERT INTO recorder_md_progress (engine, sink, symbol, last_md_seq)
SELECT $1, $2, s, m FROM unnest($3::text[], $4::bigint[]) AS t(s, m)
ON CONFLICT (engine, sink, symbol) DO UPDATE SET
    last_md_seq = EXCLUDED.last_md_seq, updated_at = now()
"""


class PostgresSink:
    """Writes batches of events to PostgreSQL, exactly once per seq (see module doc)."""

    name = "postgres"

    def __init__(self, dsn: str, engine: str, *, partitions_ahead: int = 2) -> None:
        self.dsn = dsn
        self.engine = engine
        self.partitions_ahead = partitions_ahead
        self.last_seq = 0
        self._conn: asyncpg.Connection[Any] | None = None
        self._days: set[int] = set()  # days (rows.Batch.days) whose partitions exist
        self._native = False  # natively partitioned (not TimescaleDB hypertables)
        self.md_seq: dict[str, int] = {}  # symbol -> last md_seq written
        self.legs = False  # the table holds a leg of a bracket, OTO or OCO

    async def open(self) -> int:
        """Connect, migrate, prepare; return the last seq this sink wrote."""
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self.dsn, timeout=10)
        try:
            # The minute-bar backfill (migration 0017) is the gateway's, which reads the
            # bars: the sink records meanwhile (a step and a batch take turns).
            await migrate(conn, backfill=False)
            await conn.execute(_STAGING)
            # Every join of this session is one batch's staging rows against a big table
            # by primary key: index lookups are always right. The planner, whose
            # statistics lag a fast-growing table, would otherwise hash-join the whole
            # engine's orders for a batch of a few thousand (seen: 200 ms at 76k orders).
            await conn.execute("SET enable_hashjoin = off; SET enable_mergejoin = off")
            # A commit need not wait for its WAL flush: a batch lost in a PostgreSQL
            # crash loses its progress row with it, and is replayed from the engine.
            await conn.execute("SET synchronous_commit = off")
            await conn.execute(
                "INSERT INTO recorder_progress (engine, sink) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                self.engine,
                self.name,
            )
            self._native = bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p"
                    " JOIN pg_class c ON c.oid = p.partrelid WHERE c.oid = 'executions'::regclass)"
                )
            )
            today = (datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days
            self._days.clear()
            await self._ensure_partitions(
                conn, {today + d for d in range(-1, self.partitions_ahead + 1)}
            )
            last = await conn.fetchval(
                "SELECT last_seq FROM recorder_progress WHERE engine = $1 AND sink = $2",
                self.engine,
                self.name,
            )
            md = await conn.fetch(_MD_PROGRESS, self.engine, self.name)
            legs = await conn.fetchval(_HAS_LEGS, self.engine)
        except BaseException:
            await conn.close(timeout=2)
            raise
        self._conn = conn
        self.md_seq = {r["symbol"]: int(r["last_md_seq"]) for r in md}
        self.last_seq = int(last)
        self.legs = bool(legs)
        return self.last_seq

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close(timeout=2)
            except Exception:  # a dead server: nothing left to close cleanly
                conn.terminate()

    async def _ensure_partitions(self, conn: asyncpg.Connection[Any], days: set[int]) -> None:
        todo = days - self._days
        if not todo:
            return
        await conn.fetchval(
            "SELECT recorder_ensure_partitions($1::date, $2::date)",
            day_of(min(todo)),
            day_of(max(todo)),
        )
        self._days |= todo

    def _table(self, parent: str, b: Batch) -> str:
        """Where a batch's rows go: straight into the day's partition when they are all of
        one day (COPY then skips routing each row), else the partitioned parent."""
        if self._native and len(b.days) == 1:
            (day,) = b.days
            return f"{parent}_p{day_of(day):%Y%m%d}"
        return parent

    async def write(self, events: Sequence[Event], tops: Sequence[TopOfBook] = ()) -> int:
        """Write the events above `last_seq` and the tops; return how many events."""
        conn = self._conn
        if conn is None:
            raise ConnectionError("the PostgreSQL sink is not open")
        fresh = [e for e in events if e.seq > self.last_seq]
        tops = _fresh_tops(tops, self.md_seq)
        if not fresh and not tops:
            return 0
        batch = fold(self.engine, fresh, tops)
        await self._ensure_partitions(conn, batch.days)
        async with conn.transaction():
            last = int(
                await conn.fetchval(
                    "SELECT last_seq FROM recorder_progress WHERE engine = $1 AND sink = $2"
                    " FOR UPDATE",
                    self.engine,
                    self.name,
                )
            )
            md: dict[str, int] = {}
            if tops:
                symbols = sorted({t.symbol for t in tops})
                rows = await conn.fetch(_MD_PROGRESS_LOCK, self.engine, self.name, symbols)
                md = {r["symbol"]: int(r["last_md_seq"]) for r in rows}
            held = _fresh_tops(tops, md)
            if last != self.last_seq or len(held) != len(tops):
                # Someone else (another recorder, or a commit whose reply we lost) moved
                # it: fold again from what the tables really hold.
                fresh = [e for e in fresh if e.seq > last]
                tops = held
                batch = fold(self.engine, fresh, tops)
                self.legs = bool(await conn.fetchval(_HAS_LEGS, self.engine))
            await self._write_batch(conn, batch)
            if fresh:
                await conn.execute(
                    "UPDATE recorder_progress SET last_seq = $3, updated_at = now()"
                    " WHERE engine = $1 AND sink = $2",
                    self.engine,
                    self.name,
                    batch.last_seq,
                )
            for top in tops:
                md[top.symbol] = max(md.get(top.symbol, 0), top.md_seq)
            if tops:
                names = sorted({t.symbol for t in tops})
                await conn.execute(
                    _MD_PROGRESS_SET, self.engine, self.name, names, [md[n] for n in names]
                )
        if fresh:
            self.last_seq = batch.last_seq
        else:
            self.last_seq = max(self.last_seq, last)
        self.md_seq.update(md)
        return len(fresh)

    async def _write_batch(self, conn: asyncpg.Connection[Any], b: Batch) -> None:
        if b.executions:
            await conn.copy_records_to_table(self._table("executions", b), records=b.executions)
        if b.md_trades:
            await conn.copy_records_to_table(self._table("md_trades", b), records=b.md_trades)
            await _add_minute_bars(conn, self.engine, b)
        if b.tops:
            await conn.copy_records_to_table(self._table("md_top_of_book", b), records=b.tops)
        if b.orders:
            await conn.copy_records_to_table(
                "stage_orders", records=_order_rows(b), columns=_STAGE_ORDER_COLUMNS
            )
            await conn.execute(_INSERT_NEW_ORDERS, self.engine)
            await conn.execute(_UPDATE_ORDERS, self.engine)
            await conn.execute(_INSERT_REJECTED, self.engine)
            self.legs = self.legs or b.legs
            if self.legs:  # nothing to end before the engine's first bracket, OTO or OCO
                await conn.execute(_END_LEGS, self.engine)
        if b.positions:
            rows = [
                (p.account, p.symbol, p.position, p.cost_basis, p.realized_pnl, p.seq,
                 p.ts_event, p.unrealized_pnl)
                for p in b.positions.values()
            ]  # fmt: skip
            await conn.copy_records_to_table("stage_positions", records=rows)
            await conn.execute(_UPSERT_POSITIONS, self.engine)
        if b.accounts:
            rows2 = [(a, cash, kill, seq) for a, (cash, kill, seq) in b.accounts.items()]
            await conn.copy_records_to_table("stage_accounts", records=rows2)
            await conn.execute(_UPSERT_ACCOUNTS, self.engine)


# A batch's minutes merged into md_minute_bars (api/migrations/0016): a minute already
# there keeps its open unless the batch has an earlier trade of it (by seq), takes the
# batch's close if the batch has a later one, and adds volume, trades and notional.
_ADD_MINUTE_BARS = """
INSERT INTO md_minute_bars AS m
SELECT $1::text, * FROM unnest($2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[],
                         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
                         $10::numeric[], $11::bigint[], $12::bigint[])
ON CONFLICT (engine, symbol, minute) DO UPDATE SET
    open = CASE WHEN excluded.first_seq < m.first_seq THEN excluded.open ELSE m.open END,
    close = CASE WHEN excluded.last_seq > m.last_seq THEN excluded.close ELSE m.close END,
    high = greatest(m.high, excluded.high),
    low = least(m.low, excluded.low),
    volume = m.volume + excluded.volume,
    trades = m.trades + excluded.trades,
    notional = m.notional + excluded.notional,
    first_seq = least(m.first_seq, excluded.first_seq),
    last_seq = greatest(m.last_seq, excluded.last_seq)
"""


async def _add_minute_bars(conn: asyncpg.Connection[Any], engine: str, b: Batch) -> None:
    """The batch's trades counted into their minutes' bars (one statement)."""
    keys = list(b.minute_bars)
    bars = list(b.minute_bars.values())
    await conn.execute(
        _ADD_MINUTE_BARS,
        engine,
        [symbol for symbol, _ in keys],
        [ts_of(start) for _, start in keys],
        [m.open for m in bars],
        [m.high for m in bars],
        [m.low for m in bars],
        [m.close for m in bars],
        [m.volume for m in bars],
        [m.trades for m in bars],
        [m.notional for m in bars],
        [m.first_seq for m in bars],
        [m.last_seq for m in bars],
    )


def _fresh_tops(tops: Sequence[TopOfBook], held: dict[str, int]) -> list[TopOfBook]:
    """The tops above the last md_seq `held` for their symbol."""
    return [t for t in tops if t.md_seq > held.get(t.symbol, 0)]


def _order_rows(b: Batch) -> list[tuple[object, ...]]:
    """The staging rows of a batch's order changes. `trail_price` / `trail_percent`
    are a new order's trail (as a replace in the batch left it) or, for a row the table
    holds, the trail a replace gave it (None: unchanged)."""
    rows: list[tuple[object, ...]] = []
    for ch in b.orders.values():
        a = ch.accepted
        if a is not None:
            open_qty = (ch.open_set or 0) - ch.open_sub
            held = (a.order_type in STOP_TYPES and not ch.triggered) or (
                waits_for_parent(a) and not ch.activated
            )
            short_leg = a.parent_id is not None and ch.filled_add < a.qty
            status = order_status(open_qty, ch.filled_add, ch.canceled, False, held, short_leg)
            rows.append(
                (ch.order_id, ch.account, a.symbol, a.side, a.order_type, a.tif, a.post_only,
                 a.client_order_id, a.qty, a.price, a.stop_price, ch.open_set, ch.open_sub,
                 ch.filled_add, ch.notional_add, ch.price_set, ch.stop_set, ch.hwm_set,
                 ch.canceled, ch.triggered, ch.activated,
                 False, ch.reason, status, True, a.seq, a.ts_event, ch.last_seq,
                 ch.last_ts_event, a.order_class, a.parent_id, a.leg,
                 a.trail_price if ch.trail_price_set is None else ch.trail_price_set,
                 a.trail_percent if ch.trail_percent_set is None else ch.trail_percent_set)
            )  # fmt: skip
        else:
            rows.append(
                (ch.order_id, ch.account, None, None, None, None, None, None, None, None,
                 None, ch.open_set, ch.open_sub, ch.filled_add, ch.notional_add,
                 ch.price_set, ch.stop_set, ch.hwm_set, ch.canceled, ch.triggered,
                 ch.activated, ch.rejected, ch.reason, None, False, None, None, ch.last_seq,
                 ch.last_ts_event, None, None, None, ch.trail_price_set, ch.trail_percent_set)
            )  # fmt: skip
    return rows
