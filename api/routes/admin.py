"""`/api/v1/admin`: kill switches and halts through the engine's `Control` (admin scope
only; a trader's key gets a 403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from tickplane.api.deps import AdminAccount, EngineDep, ProjectionDep, SettingsDep
from tickplane.api.engine import acked
from tickplane.api.errors import ERROR_RESPONSES, ApiError
from tickplane.api.schemas import ControlResult, HaltRequest, Symbol
from tickplane.core.accounts import ACCOUNT_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"])

AccountPath = Annotated[str, Path(pattern=ACCOUNT_PATTERN, description="an account name")]
SymbolPath = Annotated[Symbol, Path()]


async def _control(
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
    caller: AdminAccount,
    action: str,
    *,
    account: str | None = None,
    symbol: str | None = None,
    seconds: float | None = None,
) -> ControlResult:
    duration = None if seconds is None else max(1, int(seconds * 1e9))
    try:
        ack = await acked(
            engine.control(action, account=account, symbol=symbol, duration_ns=duration),
            settings.engine_timeout,
        )
    except ApiError as exc:
        if exc.reason == "unknown_symbol":
            exc.status = 404
        raise
    projection.note_write(caller.account, ack.last_seq)
    await projection.wait_for(ack.last_seq, settings.read_your_writes_timeout)
    events = []
    for ev in ack.events:
        d = ev.to_dict()
        d.pop("seq", None)
        events.append(d)
    return ControlResult(
        action=action,  # type: ignore[arg-type]
        account=account,
        symbol=symbol,
        events=events,
    )


@router.post("/accounts/{account}/kill", responses=ERROR_RESPONSES)
async def kill_account(
    account: AccountPath,
    caller: AdminAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> ControlResult:
    """Engage an account's kill switch: its open orders are canceled and new ones
    refused (403 `kill_switch`) until revived."""
    return await _control(engine, projection, settings, caller, "kill", account=account)


@router.post("/accounts/{account}/revive", responses=ERROR_RESPONSES)
async def revive_account(
    account: AccountPath,
    caller: AdminAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> ControlResult:
    """Release an account's kill switch."""
    return await _control(engine, projection, settings, caller, "revive", account=account)


@router.post("/engine/kill", responses=ERROR_RESPONSES)
async def kill_engine(
    caller: AdminAccount, engine: EngineDep, projection: ProjectionDep, settings: SettingsDep
) -> ControlResult:
    """Engage the engine-wide kill switch: every open order canceled, none taken."""
    return await _control(engine, projection, settings, caller, "kill")


@router.post("/engine/revive", responses=ERROR_RESPONSES)
async def revive_engine(
    caller: AdminAccount, engine: EngineDep, projection: ProjectionDep, settings: SettingsDep
) -> ControlResult:
    """Release the engine-wide kill switch."""
    return await _control(engine, projection, settings, caller, "revive")


@router.post("/symbols/{symbol}/halt", responses=ERROR_RESPONSES)
async def halt_symbol(
    symbol: SymbolPath,
    caller: AdminAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
    body: HaltRequest | None = None,
) -> ControlResult:
    """Halt a symbol (new orders and replaces refused, cancels pass) for `seconds`, or
    until resumed."""
    seconds = body.seconds if body is not None else None
    return await _control(
        engine, projection, settings, caller, "halt", symbol=symbol, seconds=seconds
    )


@router.post("/symbols/{symbol}/resume", responses=ERROR_RESPONSES)
async def resume_symbol(
    symbol: SymbolPath,
    caller: AdminAccount,
    engine: EngineDep,
    projection: ProjectionDep,
    settings: SettingsDep,
) -> ControlResult:
    """Resume a halted symbol."""
    return await _control(engine, projection, settings, caller, "resume", symbol=symbol)
