"""`/api/v1/strategies`: the strategies of the caller's account (every account's for the
admin scope), with state and P&L, and pause/resume (api/strategies.py has the sources)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.requests import HTTPConnection

from tickplane.api.deps import Caller, CurrentAccount
from tickplane.api.errors import ERROR_RESPONSES, ApiError
from tickplane.api.settings import GatewaySettings, get_settings
from tickplane.api.strategies import (
    Action,
    KubernetesStrategies,
    LocalStrategies,
    StrategyControlError,
    StrategyNotFound,
    StrategySource,
    StrategyView,
    default_namespace,
    kubernetes_api,
)

__all__ = ["router", "source_for"]

router = APIRouter(prefix="/strategies", tags=["strategies"])

NamePath = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$",
        max_length=253,
        description="the strategy's name (as listed)",
    ),
]


def source_for(settings: GatewaySettings) -> StrategySource:
    """The source `settings.strategies_source` names."""
    if settings.strategies_source == "kubernetes":
        namespace = settings.strategies_namespace or default_namespace()
        return KubernetesStrategies(kubernetes_api(settings.strategies_kubeconfig), namespace)
    token = settings.strategy_control_token
    return LocalStrategies(
        settings.strategy_runners,
        token.get_secret_value() if token is not None else None,
        timeout=settings.strategy_timeout,
    )


async def get_source(conn: HTTPConnection) -> StrategySource:
    """The app's source, made on first use from its settings (tests may set their own)."""
    source: StrategySource | None = getattr(conn.app.state, "strategies", None)
    if source is None:
        settings = getattr(conn.app.state, "settings", None) or get_settings()
        source = source_for(settings)
        conn.app.state.strategies = source
    return source


SourceDep = Annotated[StrategySource, Depends(get_source)]


def _visible(caller: Caller, view: StrategyView) -> bool:
    return caller.scope == "admin" or view.account == caller.account


async def _listed(source: StrategySource) -> list[StrategyView]:
    try:
        return await source.strategies()
    except StrategyControlError as exc:
        raise ApiError(exc.status, exc.reason, exc.message) from None


@router.get("", responses=ERROR_RESPONSES)
async def list_strategies(caller: CurrentAccount, source: SourceDep) -> list[StrategyView]:
    """The strategies trading for the caller's account (every account's with an admin
    key): state, P&L (tick-lots), position. A runner that does not answer is listed as
    `unreachable`."""
    return [v for v in await _listed(source) if _visible(caller, v)]


async def _control(
    caller: Caller, source: StrategySource, name: str, action: Action
) -> StrategyView:
    missing = ApiError(404, "unknown_strategy", f"no strategy {name!r} of this account")
    if not any(v.name == name and _visible(caller, v) for v in await _listed(source)):
        raise missing
    try:
        return await source.control(name, action)
    except StrategyNotFound:
        raise missing from None
    except StrategyControlError as exc:
        raise ApiError(exc.status, exc.reason, exc.message) from None


@router.post("/{name}/pause", responses=ERROR_RESPONSES)
async def pause_strategy(name: NamePath, caller: CurrentAccount, source: SourceDep) -> StrategyView:
    """Pause: the strategy's open orders are canceled and it sends no new ones until
    resumed (on Kubernetes: `spec.paused`, its pods scaled to zero). Another account's
    strategy is a 404."""
    return await _control(caller, source, name, "pause")


@router.post("/{name}/resume", responses=ERROR_RESPONSES)
async def resume_strategy(
    name: NamePath, caller: CurrentAccount, source: SourceDep
) -> StrategyView:
    """Resume a paused strategy (a 409 when its own loss limit paused it)."""
    return await _control(caller, source, name, "resume")
