"""The Redis sink: current positions, top of book and recent trades, for fast reads.

Keys, all under `tickplane:<engine>:` (the README documents them for readers):
`recorder:seq` (the last seq written), `recorder:md_seq` (a hash, symbol -> the md_seq
of its top written last), `positions:<account>` (a hash, symbol -> JSON), `top:<symbol>`
(the latest TopOfBook, JSON), `trades:<symbol>` (a list of JSON trades, newest first,
capped).

A batch is one Lua script call: it checks that `<p>:recorder:seq` still holds the seq
the sink last wrote (else it refuses, and the sink re-reads and drops what is already
there), applies every command and sets the new seq, atomically (Redis runs a script
alone). A duplicate delivery therefore pushes no trade twice. A top of book is set only
if its md_seq is above the symbol's in `recorder:md_seq`, in the same script, so an
older top never overwrites a newer one. The script touches keys
it is not given in KEYS: fine on a standalone Redis (the recorder's target), not on a
Redis Cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tickplane.core.events import Event, PositionChanged, TopOfBook, Trade

__all__ = ["RedisSink", "redis_prefix"]

# KEYS: the seq key, the md_seq hash. ARGV: expected seq, new seq, then commands as:
# n, cmd, arg1..arg(n-1); the command TOP (key, symbol, md_seq, value) sets a top of book
# only if it is newer than the symbol's last.
_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then
  return redis.error_reply('STALE ' .. cur)
end
local i = 3
local n = #ARGV
while i <= n do
  local k = tonumber(ARGV[i])
  if ARGV[i + 1] == 'TOP' then
    local md = tonumber(ARGV[i + 4])
    if md > tonumber(redis.call('HGET', KEYS[2], ARGV[i + 3]) or '0') then
      redis.call('SET', ARGV[i + 2], ARGV[i + 5])
      redis.call('HSET', KEYS[2], ARGV[i + 3], md)
    end
  else
    redis.call(unpack(ARGV, i + 1, i + k))
  end
  i = i + k + 1
end
redis.call('SET', KEYS[1], ARGV[2])
return cur
"""

_json = msgspec.json.Encoder()


def redis_prefix(engine: str) -> str:
    """The prefix of every key the recorder writes for `engine`."""
    return f"tickplane:{engine}"


class RedisSink:
    """Writes batches to Redis, exactly once per seq (see module doc)."""

    name = "redis"

    def __init__(self, url: str, engine: str, *, recent_trades: int = 100) -> None:
        self.url = url
        self.engine = engine
        self.prefix = redis_prefix(engine)
        self.seq_key = f"{self.prefix}:recorder:seq"
        self.md_key = f"{self.prefix}:recorder:md_seq"
        self.md_seq: dict[str, int] = {}  # symbol -> md_seq of its top written last
        self.recent_trades = recent_trades
        self.last_seq = 0
        self._r: aioredis.Redis | None = None
        self._sha: str | None = None

    async def open(self) -> int:
        r = aioredis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        try:
            self._sha = str(await r.script_load(_SCRIPT))
            raw = await r.get(self.seq_key)
            md = await r.hgetall(self.md_key)
        except BaseException:
            await r.aclose()
            raise
        self._r = r
        self.last_seq = int(raw or 0)
        self.md_seq = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in md.items()}
        return self.last_seq

    async def close(self) -> None:
        r, self._r = self._r, None
        if r is not None:
            with contextlib.suppress(Exception):  # a dead server: nothing to close cleanly
                await r.aclose()

    def _commands(self, events: Sequence[Event], tops: Sequence[TopOfBook]) -> list[Any]:
        args: list[Any] = []
        latest_pos: dict[tuple[str, str], PositionChanged] = {}
        trades: dict[str, list[bytes]] = {}
        for ev in events:
            if isinstance(ev, PositionChanged):
                latest_pos[(ev.account, ev.symbol)] = ev
            elif isinstance(ev, Trade):
                trades.setdefault(ev.symbol, []).append(
                    _json.encode(
                        {"seq": ev.seq, "ts_event": ev.ts_event, "price": ev.price,
                         "qty": ev.qty, "taker_side": ev.taker_side}
                    )
                )  # fmt: skip
        for (account, symbol), p in latest_pos.items():
            value = _json.encode(
                {"position": p.position, "cost_basis": p.cost_basis,
                 "realized_pnl": p.realized_pnl, "unrealized_pnl": p.unrealized_pnl,
                 "cash": p.cash, "seq": p.seq,
                 "ts_event": p.ts_event}
            )  # fmt: skip
            args += [4, "HSET", f"{self.prefix}:positions:{account}", symbol, value]
        for symbol, items in trades.items():
            key = f"{self.prefix}:trades:{symbol}"
            items = items[-self.recent_trades :]
            args += [2 + len(items), "LPUSH", key, *items]
            args += [4, "LTRIM", key, 0, self.recent_trades - 1]
        latest_top: dict[str, TopOfBook] = {t.symbol: t for t in tops}
        for symbol, t in latest_top.items():
            value = _json.encode(t.to_dict())
            args += [5, "TOP", f"{self.prefix}:top:{symbol}", symbol, t.md_seq, value]
        return args

    async def write(self, events: Sequence[Event], tops: Sequence[TopOfBook] = ()) -> int:
        """Write the events above `last_seq` and the tops; return how many events."""
        r = self._r
        if r is None or self._sha is None:
            raise ConnectionError("the Redis sink is not open")
        tops = [t for t in tops if t.md_seq > self.md_seq.get(t.symbol, 0)]
        for _ in range(2):
            fresh = [e for e in events if e.seq > self.last_seq]
            if not fresh and not tops:
                return 0
            new_seq = fresh[-1].seq if fresh else self.last_seq
            argv = [self.last_seq, new_seq, *self._commands(fresh, tops)]
            try:
                await r.evalsha(self._sha, 2, self.seq_key, self.md_key, *argv)
            except ResponseError as exc:
                text = str(exc)
                if not text.startswith("STALE "):
                    raise
                # Another writer, or our own commit whose reply was lost: resync, retry.
                self.last_seq = int(text.split()[1])
                continue
            self.last_seq = new_seq
            for t in tops:
                self.md_seq[t.symbol] = max(self.md_seq.get(t.symbol, 0), t.md_seq)
            return len(fresh)
        raise ConnectionError("the Redis sink's seq moved twice during one write")
