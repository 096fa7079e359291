"""Engine configuration: one typed model, read from a file and the environment.

The operator renders it into a ConfigMap (JSON); `tickplane engine --config FILE`
reads it; every field can be overridden by an environment variable
`TICKPLANE_ENGINE_<FIELD>` (upper case; a string setting's value as written, any
other setting's as JSON: numbers, true/false, lists and objects), which is how a
Kubernetes pod injects per-pod values such as the engine's name.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from .accounts import ACCOUNT_RULE, is_account

__all__ = [
    "CircuitBreakerConfig",
    "ConfigError",
    "EngineConfig",
    "MarketConfig",
    "RiskConfig",
    "RiskLimits",
    "SymbolConfig",
    "VenueConfig",
    "load_engine_config",
]

ENV_PREFIX = "TICKPLANE_ENGINE_"
# The longest wait after a 429 (`VenueConfig.rate_limit_max_backoff`): an hour. Past
# it, an orphan would stay open at Alpaca, or a missed fill unreported, for longer.
MAX_RATE_LIMIT_BACKOFF = 3600.0
# The most stream updates of unknown legs the Alpaca adapter keeps
# (`VenueConfig.early_updates_max`): ~4 KB each decoded (tracemalloc, the fake's
# orders), so about 4 GB at the bound.
MAX_EARLY_UPDATES = 1_000_000
# The event and market-data logs' bounds (`event_log_bytes`, `md_log_bytes`): the
# default, and the least (the market-data log may also be 0: none).
DEFAULT_LOG_BYTES = 256 << 20
MIN_LOG_BYTES = 1 << 20
# The largest price or quantity the engine's core takes (engine/matching.pyx): a
# reference price above it could never be traded.
MAX_TICKS = 1_000_000_000_000
# Levels a side in every top-of-book message: each touched symbol's top goes out every
# turn, and a market-data replay page holds 2000 of them (core/wire.py).
MAX_TOP_LEVELS = 1000
#: A symbol's name, without anchors: the engine's configuration and the operator's CRD
#: (RE2-compatible and free of backslashes, so a CEL string literal holds it as written).
SYMBOL_NAME = r"[A-Z0-9][A-Z0-9.-]{0,15}"
#: The rule in words, for error messages.
SYMBOL_RULE = "1-16 upper-case letters, digits, . or -, starting with a letter or digit"
_SYMBOL = re.compile(SYMBOL_NAME)


class ConfigError(ValueError):
    """A configuration that cannot run, with what to fix."""


def _check_limit(name: str, value: int | None, minimum: int = 0) -> None:
    if value is not None and (type(value) is not int or value < minimum):
        raise ValueError(f"{name} must be an integer >= {minimum} or None, not {value!r}")


class RiskLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Limits of an account, or of one (account, symbol) pair. None is unlimited; 0 allows
    nothing (for `max_position`: only orders that cannot take the position further out)."""

    max_order_qty: int | None = None  # lots per order
    max_order_notional: int | None = None  # tick-lots per order (qty * price)
    max_position: int | None = None  # |lots| in the worst case (see docs/risk.md)
    price_band_bps: int | None = None  # a limit price's distance from the reference
    # how far from the reference a market order, or from its stop price a triggered
    # stop, may trade (None: price_band_bps); the rest is canceled `market_collar`
    market_collar_bps: int | None = None
    max_orders_per_second: int | None = None  # token bucket refill rate
    order_burst: int | None = None  # token bucket size (None: max_orders_per_second)
    max_open_orders: int | None = None  # resting orders and held stops

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            _check_limit(name, getattr(self, name))


class CircuitBreakerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Halt a symbol for `halt_ns` when a trade's price is more than `move_bps` away from
    the lowest or highest trade price of the last `window_ns` nanoseconds."""

    move_bps: int
    window_ns: int
    halt_ns: int

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            _check_limit(name, getattr(self, name), 1)


class RiskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Pre-trade risk (docs/risk.md): limits for every account unless overridden."""

    default: RiskLimits = msgspec.field(default_factory=RiskLimits)
    accounts: dict[str, RiskLimits] = msgspec.field(default_factory=dict)
    # "ACCOUNT/SYMBOL" -> limits of that pair
    pairs: dict[str, RiskLimits] = msgspec.field(default_factory=dict)
    circuit_breaker: CircuitBreakerConfig | None = None


class VenueConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where orders execute: `internal` (this engine matches them) or `alpaca` (routed to
    Alpaca through alpaca-py; fills come back from its trade_updates stream).

    Alpaca credentials come from `secret_dir` (a mounted Kubernetes Secret with files
    `key_id` and `secret_key`) or else the environment (`APCA_API_KEY_ID`,
    `APCA_API_SECRET_KEY`); never from this file."""

    kind: Literal["internal", "alpaca"] = "internal"
    paper: bool = True
    url_override: str | None = None  # e.g. a local server speaking Alpaca's protocol
    stream_url_override: str | None = None
    secret_dir: str | None = None
    # While Alpaca is unreachable: refuse new orders, or match them here instead.
    unreachable: Literal["reject", "internal"] = "reject"
    # Seconds between reads of each open trailing stop at Alpaca (it pushes nothing when
    # its stop trails): a move is journaled and published as OrderTrailed. 0: off.
    trail_poll_seconds: float = 1.0
    # A read Alpaca rate limits (429: a resume's look-up, a reconciliation round) is
    # made again after Alpaca's Retry-After (at most the max), else after a backoff
    # doubling from the min to the max over the 429s in a row. Seconds.
    rate_limit_min_backoff: float = 1.0
    rate_limit_max_backoff: float = 60.0
    # Stream updates of unknown legs (a group's legs ahead of its parent's answer, a
    # replacement's ahead of its PATCH's) kept while an order of ours waits to name
    # them; past it they are dropped and the orders waiting read by REST instead
    # (docs/venues.md). 1 to MAX_EARLY_UPDATES.
    early_updates_max: int = 10_000


class MarketConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Liquidity for an internal-venue engine with no outside flow (demos, test
    clusters), from a market maker and a taker account (engine/market.py): `synthetic`,
    orders around a random-walk mid; `lobster`, a LOBSTER day's order flow replayed
    in (scaled) real time onto one symbol. Off unless `source` is set."""

    source: Literal["none", "synthetic", "lobster"] = "none"
    lobster_zip: str | None = None  # default: the GOOG sample day (10 levels)
    speed: float = 1.0  # lobster: replay speed (2.0 = twice real time)
    rate: float = 20.0  # orders per second, all symbols together
    symbols: list[str] = msgspec.field(default_factory=list)  # empty: every symbol
    start_price: int = 10_000  # ticks, for symbols without a reference_price
    spread: int = 1  # ticks from the mid to the maker's best quote
    levels: int = 10  # how far (ticks) beyond the spread the maker quotes
    max_qty: int = 100
    take_ratio: float = 0.2  # share of the flow that crosses the spread
    maker_account: str = "market-maker"
    taker_account: str = "market-taker"
    seed: int = 1


class SymbolConfig(msgspec.Struct, forbid_unknown_fields=True):
    """A tradable symbol: prices are integers of `tick_size`, quantities of `lot_size`."""

    name: str
    tick_size: str = "0.01"  # a decimal string, exact
    lot_size: int = 1
    reference_price: int | None = None  # ticks; seeds risk price bands before a trade

    @property
    def tick(self) -> Decimal:
        return Decimal(self.tick_size)

    def problem(self) -> str | None:
        """What is wrong with this symbol's settings, or None."""
        if _SYMBOL.fullmatch(self.name) is None:
            return f"symbol {self.name!r}: a name is {SYMBOL_RULE}"
        try:
            tick = self.tick
        except InvalidOperation:
            tick = Decimal("NaN")
        if not tick.is_finite() or tick <= 0:
            return (
                f'symbol {self.name}: tick_size must be a decimal > 0 such as "0.01", '
                f"not {self.tick_size!r}"
            )
        if self.lot_size <= 0:
            return f"symbol {self.name}: lot_size must be an integer > 0, not {self.lot_size}"
        ref = self.reference_price
        if ref is not None and not 0 < ref <= MAX_TICKS:
            return (
                f"symbol {self.name}: reference_price must be ticks, 1 to {MAX_TICKS}, "
                f"or unset, not {ref}"
            )
        return None


MAX_BATCH_LIMIT: Final = 65_536  # the most requests one turn of the engine may take


class EngineConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Everything an engine process needs. Defaults run a laptop engine on loopback."""

    name: str = "engine-0"
    symbols: list[SymbolConfig] = msgspec.field(
        default_factory=lambda: [SymbolConfig("GOOG"), SymbolConfig("AAPL")]
    )
    # ZeroMQ endpoints the engine binds: order entry (ROUTER) and events (PUB).
    order_entry: str = "tcp://127.0.0.1:5555"
    events: str = "tcp://127.0.0.1:5556"
    # HTTP: /healthz, /readyz, /metrics, /status. 0 = no HTTP server.
    http_port: int = 9100
    http_host: str = "127.0.0.1"
    journal_dir: str = "journal"
    # always: fsync before every ack; batch: one fsync per batch of commands (the
    # batch is acked after it); none: written to the OS only (survives kill -9, not a
    # power loss). See docs/journal.md.
    fsync: Literal["always", "batch", "none"] = "batch"
    max_batch: int = 256  # commands taken from the socket before one journal commit
    snapshot_every: int = 100_000  # journal entries between snapshots (0: only at SIGTERM)
    replay_buffer: int = 1_000_000  # recent events kept in memory for gap fill
    # Finished orders whose final state GetOrder answers (engine/finished.py), the
    # oldest dropped first; 0 = none (and no cost). ~420 bytes each, and every snapshot
    # writes them on the loop's thread: 4 ms at 10,000, 184 ms at 500,000, a stall of
    # the order path every `snapshot_every` entries (docs/engine-service.md, Queries).
    finished_orders: int = 10_000
    # Disk for published tops of book, replayable by (symbol, md_seq) (engine/mdlog.py):
    # the log holds the latest half to all of it. 0 = no market-data log.
    md_log_bytes: int = DEFAULT_LOG_BYTES
    # Disk for published events, replayable by seq beyond `replay_buffer`
    # (engine/eventlog.py): the log holds the latest half to all of it; older ranges
    # are answered `replay_unavailable`. At least 1 MiB.
    event_log_bytes: int = DEFAULT_LOG_BYTES
    pin_cpu: bool = True  # pin the hot loop to one of the CPUs this process may use
    top_levels: int = 10  # levels in market-data top-of-book messages
    starting_cash: int = 0  # tick-lots given to a new account
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    venue: VenueConfig = msgspec.field(default_factory=VenueConfig)
    market: MarketConfig = msgspec.field(default_factory=MarketConfig)

    def symbol(self, name: str) -> SymbolConfig | None:
        for s in self.symbols:
            if s.name == name:
                return s
        return None

    def validate(self) -> EngineConfig:
        names = [s.name for s in self.symbols]
        if not names:
            raise ConfigError("symbols: at least one symbol is needed")
        if len(set(names)) != len(names):
            raise ConfigError(f"symbols: names must be unique, got {names}")
        for s in self.symbols:
            problem = s.problem()
            if problem is not None:
                raise ConfigError(problem)
        self._check_process()
        for account in self.risk.accounts:
            # Limits keyed by a name no account can have would never apply.
            if not is_account(account):
                raise ConfigError(
                    f"risk.accounts: {account!r} is not an account name: {ACCOUNT_RULE}"
                )
        for pair in self.risk.pairs:
            account, _, symbol = pair.partition("/")
            if not is_account(account) or not symbol or "/" in symbol:
                raise ConfigError(
                    f"risk.pairs: {pair!r} is not ACCOUNT/SYMBOL (an account: {ACCOUNT_RULE})"
                )
            if symbol not in names:
                # Its limits would never apply: most likely a typo in the symbol.
                raise ConfigError(
                    f"risk.pairs: {pair!r}: {symbol} is not one of the symbols {names}"
                )
        if self.market.source != "none":
            if self.market.rate <= 0 or self.market.levels < 0 or self.market.spread < 1:
                raise ConfigError("market: rate > 0, spread >= 1 and levels >= 0 are needed")
            if self.market.speed <= 0:
                raise ConfigError("market.speed must be > 0")
            m = self.market
            if m.max_qty < 1 or m.start_price < 1 or not 0 <= m.take_ratio <= 1:
                raise ConfigError(
                    "market: max_qty >= 1, start_price >= 1 and 0 <= take_ratio <= 1 are "
                    f"needed, not {m.max_qty}, {m.start_price} and {m.take_ratio}"
                )
            unknown = set(self.market.symbols) - set(names)
            if unknown:
                raise ConfigError(f"market.symbols: not configured symbols {sorted(unknown)}")
            for role in ("maker_account", "taker_account"):
                # its orders name it on the wire, where the engine refuses other names
                account = getattr(self.market, role)
                if not is_account(account):
                    raise ConfigError(
                        f"market.{role}: {account!r} is not an account name: {ACCOUNT_RULE}"
                    )
        if not 0 < self.max_batch <= MAX_BATCH_LIMIT:
            # a longer turn only delays its first reply: a turn's requests wait for each other
            raise ConfigError(f"max_batch: 1 to {MAX_BATCH_LIMIT}, not {self.max_batch}")
        if self.replay_buffer < 0 or self.snapshot_every < 0 or self.finished_orders < 0:
            raise ConfigError("replay_buffer, snapshot_every, finished_orders must be >= 0")
        if self.md_log_bytes != 0 and self.md_log_bytes < MIN_LOG_BYTES:
            raise ConfigError("md_log_bytes: 0 (no market-data log) or at least 1 MiB")
        if self.event_log_bytes < MIN_LOG_BYTES:
            raise ConfigError("event_log_bytes: at least 1 MiB")
        if not self.venue.trail_poll_seconds >= 0:
            raise ConfigError("venue.trail_poll_seconds: 0 (off) or a number of seconds > 0")
        least, most = self.venue.rate_limit_min_backoff, self.venue.rate_limit_max_backoff
        if not 0 < least <= most <= MAX_RATE_LIMIT_BACKOFF:
            raise ConfigError(
                "venue.rate_limit_min_backoff and venue.rate_limit_max_backoff: seconds with "
                f"0 < min <= max <= {MAX_RATE_LIMIT_BACKOFF:g} (an order waits that long to "
                f"be looked at again), not {least!r} and {most!r}"
            )
        early = self.venue.early_updates_max
        if not 1 <= early <= MAX_EARLY_UPDATES:
            raise ConfigError(
                f"venue.early_updates_max: 1 to {MAX_EARLY_UPDATES} stream updates of "
                f"unknown legs kept, not {early!r}"
            )
        return self

    def _check_process(self) -> None:
        """The process's own settings: its name, endpoints, ports and sizes."""
        if not self.name or len(self.name) > 64 or not self.name.isprintable() or " " in self.name:
            raise ConfigError(f"name: 1-64 printable characters without spaces, not {self.name!r}")
        for key in ("order_entry", "events", "http_host", "journal_dir"):
            if not getattr(self, key):
                raise ConfigError(f"{key}: must not be empty")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(
                f"http_port: a TCP port 1-65535, or 0 for no HTTP server, not {self.http_port}"
            )
        if not 1 <= self.top_levels <= MAX_TOP_LEVELS:
            raise ConfigError(
                f"top_levels: 1 to {MAX_TOP_LEVELS} levels a side, not {self.top_levels}"
            )
        if self.starting_cash < 0:
            raise ConfigError(f"starting_cash: tick-lots >= 0, not {self.starting_cash}")


def _takes_text(annotation: Any) -> bool:
    """Whether a setting's value is a string (`str`, a `Literal` of strings, either or
    None): its environment variable is taken as written, never as JSON."""
    t = msgspec.inspect.type_info(annotation)
    options = t.types if isinstance(t, msgspec.inspect.UnionType) else (t,)
    return all(
        isinstance(o, msgspec.inspect.StrType | msgspec.inspect.NoneType)
        or (isinstance(o, msgspec.inspect.LiteralType) and all(type(v) is str for v in o.values))
        for o in options
    )


def load_engine_config(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> EngineConfig:
    """Defaults, then the file (JSON, or TOML by extension), then the environment."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: {exc.strerror}") from None
        try:
            data = msgspec.toml.decode(raw) if p.suffix == ".toml" else msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected an object at the top level")
    environ = os.environ if env is None else env
    fields = {f.name: f for f in msgspec.structs.fields(EngineConfig)}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in fields:
            raise ConfigError(f"{key}: no engine setting {name!r}")
        if _takes_text(fields[name].type):
            data[name] = value  # as written: NAME=123 is the name "123"
            continue
        try:
            data[name] = msgspec.json.decode(value)
        except msgspec.DecodeError:
            data[name] = value  # not JSON: the conversion below says what was expected
    try:
        cfg = msgspec.convert(data, EngineConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"engine configuration: {exc}") from None
    return cfg.validate()
