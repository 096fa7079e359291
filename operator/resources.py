"""The custom resources' specs and statuses: one model, read by the operator and written
out as the CRDs' OpenAPI schemas (`tickplane.operator.crds`).

`TradingEngineSpec` and `StrategySpec` are what `kubectl apply` sends (camelCase on the
wire, snake_case in Python). Every validation the apiserver should make is in the models'
JSON schema: types, bounds, enums, defaults, and CEL rules (`x-kubernetes-validations`)
whose messages say what to fix. The operator validates the same dicts with the same models,
so a spec the apiserver admits is one the operator can read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tickplane.core.accounts import ACCOUNT_NAME, ACCOUNT_PATTERN, ACCOUNT_RULE
from tickplane.core.config import (
    DEFAULT_LOG_BYTES,
    MAX_EARLY_UPDATES,
    MAX_RATE_LIMIT_BACKOFF,
    MAX_TICKS,
    MIN_LOG_BYTES,
    SYMBOL_NAME,
)

__all__ = [
    "GROUP",
    "VERSION",
    "Condition",
    "CredentialsSecret",
    "EngineRef",
    "JournalSpec",
    "MarketDataSpec",
    "PlacementSpec",
    "ResourcesSpec",
    "RiskLimitsSpec",
    "RiskSpec",
    "StrategyLimitsSpec",
    "StrategySpec",
    "StrategyStatus",
    "SymbolSpec",
    "Toleration",
    "TradingEngineSpec",
    "TradingEngineStatus",
    "VenueSpec",
]

GROUP = "tickplane.io"
VERSION = "v1alpha1"

# Kubernetes object names (RFC 1123 labels): what a Secret, engine or account may be called.
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
# Regex bodies without backslashes, so CEL string literals can hold them as written.
_SYMBOL_NAME = SYMBOL_NAME
_SYMBOL = f"^{_SYMBOL_NAME}$"
# An account: the engine's and the gateway's rule (tickplane.core.accounts).
_ACCOUNT = ACCOUNT_PATTERN
# A risk.pairs key: the account and symbol that share one set of limits.
_PAIR = f"^{ACCOUNT_NAME}/{_SYMBOL_NAME}$"
MAX_SYMBOLS = 64


def _cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    return {"rule": rule, "message": message, **extra}


def _rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def _immutable(what: str) -> dict[str, Any]:
    return _rules(_cel("self == oldSelf", f"{what} is immutable: create a new resource instead"))


class _Model(BaseModel):
    """camelCase on the wire; unknown fields refused (the apiserver prunes them anyway)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# -- shared pieces ------------------------------------------------------------------------


class RiskLimitsSpec(_Model):
    """Pre-trade limits (docs/risk.md); unset is unlimited, 0 allows nothing."""

    max_order_qty: int | None = Field(default=None, ge=0, description="Lots per order.")
    max_order_notional: int | None = Field(
        default=None, ge=0, description="Tick-lots (quantity x price) per order."
    )
    max_position: int | None = Field(default=None, ge=0, description="Absolute lots, worst case.")
    price_band_bps: int | None = Field(
        default=None,
        ge=0,
        description="A limit price's largest distance from the reference, in bps.",
    )
    market_collar_bps: int | None = Field(
        default=None,
        ge=0,
        description="How far from the reference a market order (from its stop price a "
        "triggered stop) trades, in bps; the rest is canceled. Unset: priceBandBps.",
    )
    max_orders_per_second: int | None = Field(default=None, ge=0, description="Token-bucket rate.")
    order_burst: int | None = Field(default=None, ge=0, description="Token-bucket size.")
    max_open_orders: int | None = Field(default=None, ge=0, description="Resting orders and stops.")


# The operator's record of the condition transitions it has posted an Event for
# (operator/kube_events.py).
_ANNOUNCED = (
    "Per condition type, the STATUS/REASON whose Kubernetes Event the operator has posted; "
    "a condition that differs has its Event posted on the next reconcile."
)


class Condition(_Model):
    """A status condition as Kubernetes' own (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


# -- TradingEngine ---------------------------------------------------------------------------


class SymbolSpec(_Model):
    """A tradable symbol: prices are integers of `tickSize`, quantities of `lotSize`."""

    name: str = Field(min_length=1, max_length=16, pattern=_SYMBOL)
    tick_size: str = Field(
        default="0.01",
        max_length=32,
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        description="A decimal string.",
        json_schema_extra=_rules(
            _cel("double(self) > 0.0", "tickSize must be a positive decimal such as 0.01")
        ),
    )
    lot_size: int = Field(default=1, ge=1)
    reference_price: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TICKS,
        description="Ticks; seeds risk price bands before the first trade.",
    )


class CredentialsSecret(_Model):
    """A Secret in the engine's namespace holding Alpaca's key id and secret key."""

    name: str = Field(min_length=1, max_length=253, pattern=_DNS_LABEL)
    key_id_key: str = Field(default="key_id", min_length=1, max_length=253)
    secret_key_key: str = Field(default="secret_key", min_length=1, max_length=253)


class VenueSpec(_Model):
    """Where orders execute: matched by the engine (`internal`) or routed to Alpaca."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                # has(): the apiserver also checks the `{}` default before filling it in.
                "!has(self.kind) || self.kind != 'alpaca' || has(self.credentialsSecret)",
                "venue alpaca needs credentialsSecret: the name of a Secret with the Alpaca "
                "key id and secret key",
                fieldPath=".credentialsSecret",
                reason="FieldValueRequired",
            ),
            _cel(
                "!has(self.rateLimitMinBackoff) || !has(self.rateLimitMaxBackoff) || "
                "self.rateLimitMinBackoff <= self.rateLimitMaxBackoff",
                "rateLimitMinBackoff must be at most rateLimitMaxBackoff",
                fieldPath=".rateLimitMinBackoff",
            ),
        )
    )

    kind: Literal["internal", "alpaca"] = Field(
        default="internal", json_schema_extra=_immutable("kind")
    )
    paper: bool = Field(default=True, description="Alpaca's paper-trading environment.")
    credentials_secret: CredentialsSecret | None = None
    unreachable: Literal["reject", "internal"] = Field(
        default="reject",
        description="While Alpaca is unreachable: refuse orders, or match them here.",
    )
    trail_poll_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Seconds between reads of the open trailing stops at Alpaca (one request "
        "for all of them; it pushes nothing when their stop trails); 0 turns it off.",
    )
    rate_limit_min_backoff: float = Field(
        default=1.0,
        gt=0,
        le=MAX_RATE_LIMIT_BACKOFF,
        description="Seconds before a read Alpaca rate limited (429) is made again when "
        "Alpaca sends no Retry-After; doubles over the 429s in a row, up to "
        "rateLimitMaxBackoff.",
    )
    rate_limit_max_backoff: float = Field(
        default=60.0,
        gt=0,
        le=MAX_RATE_LIMIT_BACKOFF,
        description="The longest wait after a 429, Alpaca's Retry-After included (seconds).",
    )
    early_updates_max: int = Field(
        default=10_000,
        ge=1,
        le=MAX_EARLY_UPDATES,
        description="Stream updates of legs not known yet (ahead of their group's answer) "
        "kept while an order waits to name them; past it they are dropped and the orders "
        "read by REST instead.",
    )


class MarketDataSpec(_Model):
    """Liquidity for an internal venue with no outside flow (demos, test clusters)."""

    source: Literal["none", "synthetic", "lobster"] = "none"
    rate: float = Field(default=20.0, gt=0, description="Synthetic orders per second.")
    speed: float = Field(
        default=1.0, gt=0, description="LOBSTER replay speed (2 = twice real time)."
    )


class RiskSpec(_Model):
    """Limits for every account, per account, and per account and symbol (docs/risk.md,
    "Scopes": a pair's limits replace its account's for that symbol)."""

    default: RiskLimitsSpec = RiskLimitsSpec()
    accounts: dict[str, RiskLimitsSpec] = Field(
        default_factory=dict,
        description=f"Keyed by account name ({ACCOUNT_RULE}).",
        json_schema_extra={
            "maxProperties": 1000,
            **_rules(
                _cel(
                    f"self.all(k, k.matches('{_ACCOUNT}'))",
                    f"risk.accounts keys must be account names: {ACCOUNT_RULE}",
                    # The first bad key only, as for risk.pairs.
                    messageExpression=f"'risk.accounts ' + self.filter(k, !k.matches('{_ACCOUNT}'))"
                    f"[0] + ': a key must be an account name: {ACCOUNT_RULE}'",
                    reason="FieldValueInvalid",
                )
            ),
        },
    )
    pairs: dict[str, RiskLimitsSpec] = Field(
        default_factory=dict,
        description='Keyed "ACCOUNT/SYMBOL"; the symbol must be one of spec.symbols.',
        json_schema_extra={
            "maxProperties": 1000,
            **_rules(
                _cel(
                    f"self.all(k, k.matches('{_PAIR}'))",
                    "risk.pairs keys must be ACCOUNT/SYMBOL, such as alice/GOOG",
                    # The first bad key only: the estimated cost of joining them all is
                    # beyond the apiserver's budget (a key's length is unbounded).
                    messageExpression=f"'risk.pairs ' + self.filter(k, !k.matches('{_PAIR}'))"
                    "[0] + ': a key must be ACCOUNT/SYMBOL, such as alice/GOOG'",
                    reason="FieldValueInvalid",
                )
            ),
        },
    )


class ResourcesSpec(_Model):
    """The engine container's CPUs (whole ones: the static CPU manager pins only those of a
    Guaranteed pod) and memory; requests equal limits."""

    cpus: int = Field(
        default=2,
        json_schema_extra=_rules(
            _cel(
                "self >= 1",
                "cpus must be a positive integer (whole CPUs, so the static CPU manager "
                "gives the engine exclusive cores)",
            )
        ),
    )
    memory: str = Field(
        default="2Gi",
        max_length=32,
        json_schema_extra=_rules(
            _cel(
                "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
                "memory must be a positive quantity such as 2Gi",
            )
        ),
    )


class Toleration(_Model):
    """A pod toleration (as core/v1's)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PlacementSpec(_Model):
    """Where the engine pod may run: tuned nodes by selector and taints."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 64}
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    priority_class_name: str | None = Field(default=None, max_length=253)
    runtime_class_name: str | None = Field(default=None, max_length=253)


class JournalSpec(_Model):
    """The journal's volume (a PersistentVolumeClaim), how often it is fsynced, and what
    the event and market-data logs beside it may take of it."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                # has(): the apiserver also checks the `{}` default before filling it in
                "!has(self.size) || !has(self.eventLogBytes) || !has(self.mdLogBytes) || "
                # doubles: no string to estimate the cost of, no int64 sum to overflow
                "quantity(self.size).asApproximateFloat() > "
                "double(self.eventLogBytes) + double(self.mdLogBytes)",
                "journal.eventLogBytes + journal.mdLogBytes must be less than journal.size: "
                "the logs share the journal's volume",
                fieldPath=".eventLogBytes",
            )
        )
    )

    # A StatefulSet's claim templates cannot change: a bigger journal is an expansion of
    # the claim itself (journal-<engine>-0), where the storage class allows it.
    size: str = Field(
        default="10Gi",
        max_length=32,
        pattern=_QUANTITY,
        json_schema_extra=_rules(
            _cel(
                "self == oldSelf",
                "journal.size is immutable: expand the claim journal-<engine>-0 instead",
            )
        ),
    )
    storage_class_name: str | None = Field(
        default=None, max_length=253, json_schema_extra=_immutable("journal.storageClassName")
    )
    fsync: Literal["always", "batch", "none"] = "batch"
    event_log_bytes: int = Field(
        default=DEFAULT_LOG_BYTES,
        ge=MIN_LOG_BYTES,
        description="Disk for published events beside the journal, replayable by seq: "
        "the event log holds the latest half to all of it. At least 1 MiB (1048576).",
    )
    md_log_bytes: int = Field(
        default=DEFAULT_LOG_BYTES,
        ge=0,
        description="Disk for published market data beside the journal, replayable by "
        "symbol and md_seq: the log holds the latest half to all of it. 0 (no market-data "
        "log) or at least 1 MiB (1048576).",
        json_schema_extra=_rules(
            _cel(
                f"self == 0 || self >= {MIN_LOG_BYTES}",
                "journal.mdLogBytes must be 0 (no market-data log) or at least 1 MiB (1048576)",
            )
        ),
    )


# Whether pair key `k` names one of the engine's symbols: the part after its "/" (the
# rule on risk.pairs allows one) is a symbol's name.
_TRADED = "self.symbols.exists(s, k.endsWith('/' + s.name))"


class TradingEngineSpec(_Model):
    """One matching engine: its symbols, venue, limits, CPUs, storage and placement."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            _cel(
                # On the spec, not on risk.pairs: a rule sees only its node and what is
                # below it. has(): the apiserver also checks `{}` before its defaults.
                f"!has(self.risk) || !has(self.risk.pairs) || self.risk.pairs.all(k, {_TRADED})",
                "risk.pairs: the symbol after the / must be one of spec.symbols",
                messageExpression=f"'risk.pairs ' + self.risk.pairs.filter(k, !{_TRADED})"
                "[0] + ': the symbol after the / must be one of spec.symbols'",
                fieldPath=".risk.pairs",
                reason="FieldValueInvalid",
            )
        )
    )

    symbols: list[SymbolSpec] = Field(
        min_length=1,
        max_length=MAX_SYMBOLS,
        json_schema_extra=_rules(
            _cel(
                "self.all(s, self.exists_one(t, t.name == s.name))",
                "symbols must be unique: each name may appear once",
            )
        ),
    )
    venue: VenueSpec = VenueSpec()
    market_data: MarketDataSpec = MarketDataSpec()
    risk: RiskSpec = RiskSpec()
    resources: ResourcesSpec = ResourcesSpec()
    placement: PlacementSpec = PlacementSpec()
    journal: JournalSpec = JournalSpec()
    image: str | None = Field(
        default=None, max_length=512, description="The engine image (default: the operator's)."
    )
    paused: bool = Field(
        default=False, description="Stop reconciling: nothing is created or rolled."
    )
    update_policy: Literal["automatic", "supervised"] = Field(
        default="automatic",
        description="supervised: a new revision rolls only once the annotation "
        "tickplane.io/approved-revision names it.",
    )


class Endpoints(_Model):
    """Where clients reach the engine (the headless Service's DNS name)."""

    order_entry: str | None = None
    events: str | None = None
    http: str | None = None


class TradingEngineStatus(_Model):
    """What the operator observed: phase, conditions and the engine's live figures."""

    phase: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    announced_conditions: dict[str, str] | None = Field(
        default=None, description=_ANNOUNCED, json_schema_extra={"maxProperties": 16}
    )
    symbols: str | None = Field(default=None, description="The symbols, comma-separated.")
    revision: str | None = Field(default=None, description="The revision the spec asks for.")
    current_revision: str | None = Field(default=None, description="The running pod's revision.")
    endpoints: Endpoints | None = None
    orders_per_second: float | None = None
    p99_latency_seconds: float | None = None
    last_sequence: int | None = None
    pinned_cpus: list[int] | None = None


# -- Strategy ---------------------------------------------------------------------------------


class EngineRef(_Model):
    """The TradingEngine (same namespace) a strategy trades on."""

    name: str = Field(min_length=1, max_length=63, pattern=_DNS_LABEL)


class StrategyLimitsSpec(_Model):
    """The strategy runtime's own limits (engine/strategy/limits.py); unset is none."""

    max_position: int | None = Field(default=None, ge=1, description="Absolute lots.")
    max_orders_per_second: int | None = Field(default=None, ge=1)
    max_loss: int | None = Field(
        default=None, ge=1, description="Loss (ticks x lots) at which the strategy pauses."
    )


class StrategySpec(_Model):
    """A trading strategy run by the strategy runtime against one engine."""

    engine_ref: EngineRef = Field(json_schema_extra=_immutable("engineRef"))
    type: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z][a-z0-9_\-]*$",
        description="The strategy runtime's strategy type.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="Parameters of the strategy type, passed through as JSON.",
    )
    symbols: list[str] = Field(
        min_length=1,
        max_length=MAX_SYMBOLS,
        json_schema_extra={
            "items": {"type": "string", "minLength": 1, "maxLength": 16, "pattern": _SYMBOL},
            **_rules(
                _cel(
                    "self.all(s, self.exists_one(t, t == s))",
                    "symbols must be unique: each name may appear once",
                )
            ),
        },
    )
    account: str = Field(
        min_length=1,
        max_length=64,
        pattern=_ACCOUNT,
        json_schema_extra=_immutable("account"),
    )
    limits: StrategyLimitsSpec = StrategyLimitsSpec()
    replicas: int = Field(default=1, ge=0, le=64)
    paused: bool = False
    image: str | None = Field(default=None, max_length=512)


class StrategyStatus(_Model):
    """What the operator observed of the strategy's Deployment and its engine."""

    phase: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    announced_conditions: dict[str, str] | None = Field(
        default=None, description=_ANNOUNCED, json_schema_extra={"maxProperties": 16}
    )
    replicas: int | None = None
    ready_replicas: int | None = None
    selector: str | None = None
    engine: str | None = None
    pnl: float | None = Field(
        default=None,
        description="P&L over every symbol: realized + unrealized - fees (ticks x lots).",
    )
