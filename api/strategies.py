"""Where the gateway learns about strategies: one small interface, two sources.

- `LocalStrategies`: the live runners of `tickplane strategy run` (as `tickplane up
  --strategy` starts them), asked over HTTP at their metrics port: `GET /status`, and
  `POST /pause` / `POST /resume` with the control token as a bearer header.
- `KubernetesStrategies`: the `Strategy` resources of one namespace through the kubernetes
  client: listed, paused and resumed by patching `spec.paused` (the operator then scales
  the strategy's Deployment); figures from their status.

A runner that does not answer is listed with state `unreachable` (its last known name and
account, or its URL and no account until it has answered once), never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import httpx
from pydantic import BaseModel, Field

__all__ = [
    "STRATEGY_GROUP",
    "STRATEGY_PLURAL",
    "STRATEGY_VERSION",
    "Action",
    "KubernetesStrategies",
    "LocalStrategies",
    "StrategyControlError",
    "StrategyNotFound",
    "StrategySource",
    "StrategyView",
]

Action = Literal["pause", "resume"]

# The `Strategy` resource (operator/resources.py); repeated here because the gateway
# depends on core only, never on the operator.
STRATEGY_GROUP = "tickplane.io"
STRATEGY_VERSION = "v1alpha1"
STRATEGY_PLURAL = "strategies"


_PAUSED_BY = {"manual": "paused by hand", "loss_limit": "paused by its loss limit"}


class StrategyView(BaseModel):
    """One strategy as the gateway shows it (figures are None where the source has none)."""

    name: str = Field(description="the runner's name, or the Strategy resource's name")
    account: str = Field(description="the account its orders belong to ('' if not known yet)")
    source: Literal["local", "kubernetes"]
    strategy: str | None = Field(default=None, description="the strategy type (market_maker)")
    symbols: list[str] = Field(default_factory=list)
    state: str = Field(
        description="starting, running, paused, stopping or unreachable (local); "
        "paused or the resource's phase, lower case (kubernetes)"
    )
    paused: bool = False
    pnl: float | None = Field(default=None, description="realized + unrealized - fees, tick-lots")
    realized_pnl: float | None = None
    position: int | None = Field(default=None, description="signed lots")
    open_orders: int | None = None
    orders: int | None = None
    fills: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


class StrategyNotFound(LookupError):
    """No strategy of that name in the source."""


class StrategyControlError(Exception):
    """The source could not pause or resume: `status` and `reason` for the API's answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class StrategySource(Protocol):
    """What the gateway's strategy routes need of a source."""

    async def strategies(self) -> list[StrategyView]:
        """Every strategy of the source (the routes filter by account)."""
        ...

    async def control(self, name: str, action: Action) -> StrategyView:
        """Pause or resume `name`; its view afterwards. StrategyNotFound, or
        StrategyControlError when the source refuses or cannot."""
        ...


# -- local runners ------------------------------------------------------------------------------


class LocalStrategies:
    """The live runners at `urls` (their metrics ports' base URLs)."""

    def __init__(self, urls: list[str], token: str | None, *, timeout: float = 1.0) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.token = token
        self.timeout = timeout
        self._known: dict[str, StrategyView] = {}  # url -> last answer, for unreachable ones

    def _view(self, url: str, body: dict[str, Any]) -> StrategyView:
        view = StrategyView(
            name=str(body["name"]),
            account=str(body["account"]),
            source="local",
            strategy=body.get("strategy"),
            symbols=[str(body["symbol"])] if body.get("symbol") else [],
            state=str(body.get("state", "unknown")),
            paused=body.get("state") == "paused",
            pnl=body.get("pnl"),
            realized_pnl=body.get("realized_pnl"),
            position=body.get("position"),
            open_orders=body.get("open_orders"),
            orders=body.get("orders"),
            fills=body.get("fills"),
            params=body.get("params") or {},
            message=_PAUSED_BY.get(str(body.get("paused_by"))),
        )
        self._known[url] = view
        return view

    def _unreachable(self, url: str, why: str) -> StrategyView:
        known = self._known.get(url)
        message = f"the runner at {url} does not answer ({why})"
        if known is None:
            # host-port: a name the routes' path accepts, so an admin can address it.
            name = url.split("://", 1)[-1].replace(":", "-").replace("/", "-")
            return StrategyView(
                name=name, account="", source="local", state="unreachable", message=message
            )
        return StrategyView(
            name=known.name,
            account=known.account,
            source="local",
            strategy=known.strategy,
            symbols=known.symbols,
            state="unreachable",
            params=known.params,
            message=message,
        )

    async def _status(self, http: httpx.AsyncClient, url: str) -> StrategyView:
        try:
            resp = await http.get(f"{url}/status")
            resp.raise_for_status()
            body = resp.json()
            return self._view(url, body)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return self._unreachable(url, type(exc).__name__)

    async def strategies(self) -> list[StrategyView]:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            return list(await asyncio.gather(*(self._status(http, u) for u in self.urls)))

    async def control(self, name: str, action: Action) -> StrategyView:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            views = await asyncio.gather(*(self._status(http, u) for u in self.urls))
            url = next((u for u, v in zip(self.urls, views, strict=True) if v.name == name), None)
            if url is None:
                raise StrategyNotFound(name)
            if self.token is None:
                raise StrategyControlError(
                    503,
                    "strategy_control_off",
                    "the gateway has no strategy control token "
                    "(TICKPLANE_GATEWAY_STRATEGY_CONTROL_TOKEN)",
                )
            try:
                resp = await http.post(
                    f"{url}/{action}", headers={"Authorization": f"Bearer {self.token}"}
                )
                body = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise StrategyControlError(
                    503, "strategy_unreachable", f"the runner {name} does not answer ({exc})"
                ) from None
        if resp.status_code == 409:
            raise StrategyControlError(409, str(body.get("reason")), str(body.get("message")))
        if resp.status_code != 200:
            # The runner refused the gateway's token: a configuration error, not the caller's.
            raise StrategyControlError(
                503,
                "strategy_control_refused",
                f"the runner {name} refused control: {body.get('message')}",
            )
        return self._view(url, body)


# -- Kubernetes ---------------------------------------------------------------------------------

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def kubernetes_api(kubeconfig: Path | None = None) -> Any:
    """A kubernetes ApiClient: in-cluster when running in a pod, else the kubeconfig."""
    from kubernetes import client, config

    if kubeconfig is None and _SA_NAMESPACE.exists():
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    path = str(kubeconfig) if kubeconfig else None
    return config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]


def default_namespace() -> str:
    """The pod's own namespace, or `default` outside a cluster."""
    with contextlib.suppress(OSError):
        return _SA_NAMESPACE.read_text().strip() or "default"
    return "default"


class KubernetesStrategies:
    """The `Strategy` resources of `namespace`, through `api` (a kubernetes ApiClient)."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    @staticmethod
    def view(obj: dict[str, Any]) -> StrategyView:
        """A Strategy resource as a view (figures the operator wrote into its status)."""
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        paused = bool(spec.get("paused"))
        phase = str(status.get("phase") or "pending").lower()
        return StrategyView(
            name=obj["metadata"]["name"],
            account=str(spec.get("account", "")),
            source="kubernetes",
            strategy=spec.get("type"),
            symbols=[str(s) for s in spec.get("symbols") or []],
            state="paused" if paused else phase,
            paused=paused,
            pnl=status.get("pnl"),
            params=spec.get("parameters") or {},
        )

    def _error(self, exc: Exception, name: str | None = None) -> Exception:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException) and exc.status == 404 and name is not None:
            return StrategyNotFound(name)
        status = exc.status if isinstance(exc, ApiException) else None
        return StrategyControlError(
            503,
            "kubernetes_unavailable",
            f"the Kubernetes API did not serve the Strategy resources (status {status})",
        )

    async def strategies(self) -> list[StrategyView]:
        try:
            listed = await asyncio.to_thread(
                self.custom.list_namespaced_custom_object,
                STRATEGY_GROUP,
                STRATEGY_VERSION,
                self.namespace,
                STRATEGY_PLURAL,
            )
        except Exception as exc:  # the client raises ApiException, urllib3 errors, OSError
            raise self._error(exc) from None
        # The client's custom-object calls answer plain JSON dicts (typed as object).
        items: list[dict[str, Any]] = cast(dict[str, Any], listed).get("items", [])
        return [self.view(obj) for obj in items]

    async def control(self, name: str, action: Action) -> StrategyView:
        try:
            obj = await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                STRATEGY_GROUP,
                STRATEGY_VERSION,
                self.namespace,
                STRATEGY_PLURAL,
                name,
                {"spec": {"paused": action == "pause"}},
            )
        except Exception as exc:
            raise self._error(exc, name) from None
        return self.view(cast(dict[str, Any], obj))
