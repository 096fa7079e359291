"""`/v2/account/activities`: the account's fills as Alpaca's `FILL` activities.

They come from the projection's executions (the account's last `max_executions`
fills, README: Retention); the older history is the recorder's. Tickplane has trades
only: every other activity type (dividends, fees, transfers, ...) is an empty list.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from tickplane.api.alpaca import rendering
from tickplane.api.alpaca.deps import Ctx, CtxDep
from tickplane.api.alpaca.errors import AlpacaError, AlpacaRoute
from tickplane.api.alpaca.ids import account_uuid, execution_uuid, order_uuid
from tickplane.api.alpaca.orders import ERRORS
from tickplane.api.alpaca.schemas import AlpacaTradeActivity
from tickplane.api.alpaca.times import parse_time
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.projection import Execution

__all__ = ["activity_id", "router"]

router = APIRouter(route_class=AlpacaRoute, tags=["alpaca account"])

FILL = "FILL"
# Alpaca's activity types (alpaca-py's ActivityType): all but FILL are never Tickplane's.
KNOWN_TYPES = frozenset(
    [
        "FILL",
        "ACATC",
        "ACATS",
        "CFEE",
        "CIL",
        "CSD",
        "CSW",
        "DIV",
        "DIVCGL",
        "DIVCGS",
        "DIVNRA",
        "DIVROC",
        "DIVTXEX",
        "DIVWH",
        "EXTRD",
        "FEE",
        "FXTRD",
        "INT",
        "INTPNL",
        "JNLC",
        "JNLS",
        "MA",
        "MEM",
        "NC",
        "OCT",
        "OPASN",
        "OPCSH",
        "OPEXC",
        "OPEXP",
        "OPTRD",
        "PTC",
        "REORG",
        "SPIN",
        "SPLIT",
        "SWP",
        "VOF",
        "WH",
    ]
)
PAGE_SIZE = 100  # Alpaca's default and largest page


def activity_id(fill: Execution) -> str:
    """Alpaca's shape, `<time>::<uuid>`: the fill's UTC time to the millisecond (so ids
    sort by time), then its execution id (the stream's `execution_id`)."""
    moment = datetime.fromtimestamp(fill.ts_event / 1e9, tz=UTC)
    stamp = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
    return f"{stamp}::{execution_uuid(fill.seq, fill.order_id)}"


def _activity(fill: Execution, units: SymbolUnits, account_id: str) -> AlpacaTradeActivity:
    done = fill.leaves_qty == 0
    return AlpacaTradeActivity(
        id=activity_id(fill),
        account_id=account_id,
        transaction_time=rendering.iso(fill.ts_event),
        type="fill" if done else "partial_fill",
        price=units.price(fill.price) or "0",
        qty=units.shares(fill.qty),
        side="buy" if fill.side == "buy" else "sell",
        symbol=fill.symbol,
        leaves_qty=units.shares(fill.leaves_qty),
        order_id=order_uuid(fill.order_id),
        cum_qty=units.shares(fill.cum_qty),
        order_status="filled" if done else "partially_filled",
    )


def _types(text: str | None) -> set[str] | None:
    if text is None:
        return None
    wanted = {t.strip().upper() for t in text.split(",") if t.strip()}
    unknown = sorted(wanted - KNOWN_TYPES)
    if unknown:
        raise AlpacaError.invalid(f"unknown activity type {', '.join(unknown)}")
    return wanted


def _day(text: str | None) -> tuple[int, int] | None:
    """A date's [start, end) in int ns (UTC)."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise AlpacaError.invalid(f"date must be YYYY-MM-DD, not {text!r}") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9


async def _fills(
    ctx: Ctx,
    *,
    types: set[str] | None,
    day: str | None,
    after: str | None,
    until: str | None,
    direction: Literal["asc", "desc"],
    page_size: int,
    page_token: str | None,
) -> list[AlpacaTradeActivity]:
    if types is not None and FILL not in types:
        return []
    window = _day(day)
    after_ns = None if after is None else parse_time(after, "after")
    until_ns = None if until is None else parse_time(until, "until")
    fills = ctx.projection.executions(ctx.account)  # newest first
    if direction == "asc":
        fills.reverse()
    kept = []
    for fill in fills:
        if window is not None and not window[0] <= fill.ts_event < window[1]:
            continue
        if (after_ns is not None and fill.ts_event <= after_ns) or (
            until_ns is not None and fill.ts_event > until_ns
        ):
            continue
        kept.append(fill)
    if page_token is not None:
        ids = [activity_id(f) for f in kept]
        if page_token not in ids:
            raise AlpacaError.invalid("page_token is no activity of this listing")
        kept = kept[ids.index(page_token) + 1 :]
    every = await ctx.all_units()
    account_id = account_uuid(ctx.account)
    page = [f for f in kept if f.symbol in every][:page_size]
    return [_activity(f, every[f.symbol], account_id) for f in page]


Direction = Annotated[Literal["asc", "desc"], Query(description="by time; default desc")]
PageSize = Annotated[int, Query(ge=1, le=PAGE_SIZE)]
Since = Annotated[str | None, Query(description="after this time (RFC 3339)")]
Until = Annotated[str | None, Query(description="until this time (RFC 3339)")]
Day = Annotated[str | None, Query(alias="date", description="one UTC day (YYYY-MM-DD)")]
Token = Annotated[str | None, Query(description="the last id of the previous page")]


@router.get("/account/activities", responses=ERRORS)
async def list_activities(
    ctx: CtxDep,
    activity_types: Annotated[str | None, Query(description="comma-separated")] = None,
    day: Day = None,
    after: Since = None,
    until: Until = None,
    direction: Direction = "desc",
    page_size: PageSize = PAGE_SIZE,
    page_token: Token = None,
) -> list[AlpacaTradeActivity]:
    """The caller's account activities: its fills (`FILL`), newest first by default,
    `page_size` at a time (the next page: `page_token` = the last id of this one)."""
    return await _fills(
        ctx,
        types=_types(activity_types),
        day=day,
        after=after,
        until=until,
        direction=direction,
        page_size=page_size,
        page_token=page_token,
    )


@router.get("/account/activities/{activity_type}", responses=ERRORS)
async def list_activities_of_type(
    activity_type: str,
    ctx: CtxDep,
    day: Day = None,
    after: Since = None,
    until: Until = None,
    direction: Direction = "desc",
    page_size: PageSize = PAGE_SIZE,
    page_token: Token = None,
) -> list[AlpacaTradeActivity]:
    """The caller's activities of one type (`FILL`: its fills; any other: none)."""
    return await _fills(
        ctx,
        types=_types(activity_type),
        day=day,
        after=after,
        until=until,
        direction=direction,
        page_size=page_size,
        page_token=page_token,
    )
