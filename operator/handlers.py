"""The kopf handlers: level-triggered reconciliation of `TradingEngine` and `Strategy`.

Every handler (resume, create, update, and a timer every `resync` seconds) runs the same
`reconcile_*` function, which reads the resource and its children fresh from the apiserver,
applies the children server-side, and writes the status: what is true now, whatever
happened before (a missed event, an operator restart, an apiserver restart).

A change of an engine's spec changes its revision (render.py). The StatefulSet's template
changes at once, but it updates `OnDelete`, so the running pod is replaced only when the
operator deletes it: one engine at a time per operator (the rolling gate), and, for
`updatePolicy: supervised`, only once the annotation `tickplane.io/approved-revision` names
the new revision. Deleting the pod sends the engine SIGTERM, on which it stops intake,
flushes its journal and snapshots (engine/service.py); the new pod recovers from the same
journal volume. The roll is over when a pod of the new revision is Ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tickplane.core.client import EngineClient, EngineError
from tickplane.core.config import ConfigError
from tickplane.core.engine_metrics import Scrape

from . import kube_events, metrics
from .figures import scrape, strategy_pnl
from .render import (
    ENGINE_CONTAINER,
    EVENTS_PORT,
    HTTP_PORT,
    MANAGED_BY,
    ORDER_ENTRY_PORT,
    REVISION_ANNOTATION,
    STRATEGY_METRICS_PORT,
    engine_objects,
    strategy_objects,
)
from .resources import GROUP, VERSION, StrategySpec, TradingEngineSpec

__all__ = ["OperatorContext", "configure", "reconcile_engine", "reconcile_strategy"]

log = logging.getLogger("tickplane.operator")

PAUSED_ANNOTATION = f"{GROUP}/paused"
APPROVED_ANNOTATION = f"{GROUP}/approved-revision"
FIELD_MANAGER = "tickplane-operator"
APPLY = "application/apply-patch+yaml"
ENGINES = "tradingengines"
STRATEGIES = "strategies"


@dataclass
class OperatorContext:
    """What the handlers share: the API client, settings, and per-engine memory."""

    api: client.ApiClient
    default_image: str
    resync_seconds: float = 10.0
    cleanup_timeout: float = 60.0
    scrape_figures: bool = True
    # One roll at a time: the decision to restart an engine and its status write.
    roll_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    samples: dict[tuple[str, str], Scrape] = field(default_factory=dict)
    #: When the resync loop last finished a round (time.monotonic()); the liveness probe.
    last_resync: float = field(default_factory=time.monotonic)

    def resync_age(self) -> float:
        """Seconds since the resync loop last finished a round (failed rounds count: a
        failing apiserver is not a reason to restart the operator, a hung loop is)."""
        return time.monotonic() - self.last_resync

    def check_alive(self) -> str:
        """The liveness probe: raise when the resync loop has stalled."""
        limit = max(60.0, 6 * self.resync_seconds)
        age = self.resync_age()
        if age > limit:
            raise RuntimeError(f"the resync loop has not finished a round for {age:.0f} s")
        return f"resync {age:.1f} s ago"

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        """Serializes the reconciliations of one resource (timer and change handlers)."""
        return self.locks.setdefault((namespace, name), asyncio.Lock())


_CTX: OperatorContext | None = None


def configure(ctx: OperatorContext) -> None:
    """Give the handlers their context (before kopf starts)."""
    global _CTX
    _CTX = ctx


def _ctx() -> OperatorContext:
    if _CTX is None:
        raise RuntimeError("tickplane.operator.handlers.configure() was not called")
    return _CTX


# -- small API helpers ----------------------------------------------------------------------


def _raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """A GET as a camelCase dict (as kubectl shows it), or None when it does not exist."""
    try:
        resp = call(*args, _preload_content=False, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], json.loads(resp.data))


def _apply(api: client.ApiClient, obj: dict[str, Any]) -> None:
    """Server-side apply one child object, owning every field it sets."""
    kind = obj["kind"]
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    calls: dict[str, Callable[..., Any]] = {
        "ConfigMap": client.CoreV1Api(api).patch_namespaced_config_map,
        "Service": client.CoreV1Api(api).patch_namespaced_service,
        "StatefulSet": client.AppsV1Api(api).patch_namespaced_stateful_set,
        "Deployment": client.AppsV1Api(api).patch_namespaced_deployment,
        "PodDisruptionBudget": client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget,
        "NetworkPolicy": client.NetworkingV1Api(api).patch_namespaced_network_policy,
    }
    calls[kind](
        name,
        namespace,
        obj,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY,
        _preload_content=False,
    )


def _patch_status(api: client.ApiClient, plural: str, ns: str, name: str, status: Any) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, plural, name, {"status": status}
    )


def _paused(obj: dict[str, Any]) -> bool:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"


def _merge_conditions(
    old: list[dict[str, Any]], new: dict[str, tuple[str, str, str]], generation: int
) -> list[dict[str, Any]]:
    """The conditions to write, from `new`'s (status, reason, message) per type: transition
    times kept when the status did not change."""
    previous = {c.get("type"): c for c in old}
    out: list[dict[str, Any]] = []
    for kind, (status, reason, message) in new.items():
        before = previous.get(kind)
        changed = before is None or before.get("status") != status
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": kube_events.timestamp()
                if changed or before is None
                else before.get("lastTransitionTime", kube_events.timestamp()),
                "observedGeneration": generation,
            }
        )
    return out


async def _write_status(
    api: client.ApiClient, plural: str, obj: dict[str, Any], status: dict[str, Any]
) -> None:
    """Announce the transitions of `status`'s conditions with Events (kube_events.py), then
    patch `status` and the record of what was announced onto `obj`."""
    announced = await asyncio.to_thread(kube_events.announce, api, obj, status["conditions"])
    meta = obj["metadata"]
    await asyncio.to_thread(
        _patch_status, api, plural, meta["namespace"], meta["name"],
        {**status, kube_events.ANNOUNCED: announced},
    )  # fmt: skip


def _pod_ready(pod: dict[str, Any] | None) -> bool:
    if pod is None or pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _pod_revision(pod: dict[str, Any] | None) -> str | None:
    if pod is None:
        return None
    return cast(str | None, (pod["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION))


def _unschedulable(pod: dict[str, Any]) -> str | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "unschedulable")
    return None


async def _timed(kind: str, work: Callable[[], Awaitable[None]]) -> None:
    began = time.perf_counter()
    try:
        await work()
    except Exception:
        metrics.RECONCILES.labels(kind, "error").inc()
        raise
    else:
        metrics.RECONCILES.labels(kind, "ok").inc()
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - began)


# -- TradingEngine ----------------------------------------------------------------------------


async def reconcile_engine(namespace: str, name: str) -> None:
    """Bring one TradingEngine's children and status in line with its spec."""
    ctx = _ctx()
    async with ctx.lock(namespace, name):
        await _timed("TradingEngine", lambda: _reconcile_engine(ctx, namespace, name))


async def _reconcile_engine(ctx: OperatorContext, namespace: str, name: str) -> None:
    api = ctx.api
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    obj = await asyncio.to_thread(
        _raw, custom.get_namespaced_custom_object, GROUP, VERSION, namespace, ENGINES, name
    )
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        ctx.samples.pop((namespace, name), None)
        # Also done on the DELETED event; here too, for a reconcile that raced it.
        with contextlib.suppress(KeyError):
            metrics.GUARANTEED.remove(namespace, name)
        return  # deleted: the garbage collector removes the children
    generation = int(obj["metadata"].get("generation", 0))
    status: dict[str, Any] = dict(obj.get("status") or {})
    old_conditions = list(status.get("conditions") or [])
    spec = TradingEngineSpec.model_validate(obj["spec"])

    async def hold(phase: str, kind: str, condition: tuple[str, str, str]) -> None:
        """Write `phase` and the `kind` condition, the other conditions as they are, and
        leave the children alone."""
        kept = {
            c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
            for c in old_conditions
        }
        conditions = _merge_conditions(old_conditions, {**kept, kind: condition}, generation)
        held = {"phase": phase, "observedGeneration": generation, "conditions": conditions}
        await _write_status(api, ENGINES, obj, held)

    if spec.paused or _paused(obj):
        await hold("Paused", "Progressing", ("False", "Paused", "reconciliation is paused"))
        return

    try:
        revision, children = engine_objects(
            name, namespace, obj["metadata"]["uid"], spec, default_image=ctx.default_image
        )
    except ConfigError as exc:
        # Admitted by the CRD's rules but refused by the engine's own checks: say so and
        # change nothing (the running engine keeps its last good configuration).
        await hold("Degraded", "Degraded", ("True", "InvalidSpec", str(exc)))
        return
    for child in children:
        await asyncio.to_thread(_apply, api, child)

    pod_name = f"{name}-0"
    pod = await asyncio.to_thread(_raw, core.read_namespaced_pod, pod_name, namespace)
    ready = _pod_ready(pod)
    pod_revision = _pod_revision(pod)
    current = status.get("currentRevision")
    if ready and pod_revision is not None:
        current = pod_revision

    # -- the roll ---------------------------------------------------------------------
    progressing: tuple[str, str, str]
    if current == revision:
        progressing = ("False", "UpToDate", f"revision {revision} is running")
    elif pod is None or pod_revision == revision:
        what = "starting" if current is None else f"rolling from {current}"
        progressing = ("True", "Rolling", f"revision {revision} {what}: waiting for Ready")
    else:
        approved = (obj["metadata"].get("annotations") or {}).get(APPROVED_ANNOTATION)
        if spec.update_policy == "supervised" and approved != revision:
            progressing = (
                "True",
                "AwaitingApproval",
                f"revision {revision} waits for the annotation "
                f"{APPROVED_ANNOTATION}={revision} (running {pod_revision})",
            )
        else:
            progressing = await _roll(ctx, obj, pod, revision, pod_revision)

    # -- the rest of the truth ----------------------------------------------------------
    rolling = progressing[0] == "True"
    if ready:
        ready_c = ("True", "PodReady", f"{pod_name} is Ready")
    elif pod is None:
        ready_c = ("False", "PodMissing", f"{pod_name} does not exist (being recreated)")
    else:
        why = _unschedulable(pod) if pod is not None else None
        ready_c = ("False", "PodNotReady", f"{pod_name} is not Ready" + (f": {why}" if why else ""))
    # Degraded: not serving although no roll explains it.
    degraded = ("False", "AsExpected", "") if ready or rolling else ("True", *ready_c[1:])

    qos = (pod or {}).get("status", {}).get("qosClass")
    if qos is not None:
        metrics.GUARANTEED.labels(namespace, name).set(1 if qos == "Guaranteed" else 0)
    figures = None
    if ready and ctx.scrape_figures and pod is not None and pod.get("status", {}).get("podIP"):
        url = f"http://{pod['status']['podIP']}:{HTTP_PORT}"
        try:
            figures, sample = await asyncio.to_thread(
                scrape, url, ctx.samples.get((namespace, name))
            )
            ctx.samples[(namespace, name)] = sample
        except (OSError, ValueError) as exc:
            log.debug("engine %s/%s: no figures from %s: %s", namespace, name, url, exc)
    if pod is None:
        pinned = ("Unknown", "PodMissing", "no engine pod")
    elif qos is not None and qos != "Guaranteed":
        pinned = ("False", "NotGuaranteed", f"the pod's QoS class is {qos}, not Guaranteed")
    elif figures is not None and figures.pinned_cpu is not None:
        pinned = (
            "True",
            "Pinned",
            f"hot loop on CPU {figures.pinned_cpu} of {figures.cpus} (QoS {qos})",
        )
    elif figures is not None:
        pinned = ("False", "NotPinned", f"the engine runs unpinned on CPUs {figures.cpus}")
    else:
        pinned = ("Unknown", "EngineUnreachable", f"QoS {qos}; the engine's /status is unread")

    conditions = _merge_conditions(
        old_conditions,
        {"Ready": ready_c, "Progressing": progressing, "Degraded": degraded, "Pinned": pinned},
        generation,
    )
    if degraded[0] == "True":
        phase = "Degraded"
    elif rolling:
        phase = "Progressing" if current is not None else "Pending"
    else:
        phase = "Running"
    host = f"{name}.{namespace}.svc"
    patch: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": conditions,
        "symbols": ",".join(s.name for s in spec.symbols),
        "revision": revision,
        "currentRevision": current,
        "endpoints": {
            "orderEntry": f"tcp://{host}:{ORDER_ENTRY_PORT}",
            "events": f"tcp://{host}:{EVENTS_PORT}",
            "http": f"http://{host}:{HTTP_PORT}",
        },
    }
    if figures is not None:
        patch |= {
            "pinnedCpus": [figures.pinned_cpu] if figures.pinned_cpu is not None else [],
            "lastSequence": figures.last_sequence,
            "ordersPerSecond": figures.orders_per_second,
            "p99LatencySeconds": figures.p99_latency_seconds,
        }
    await _write_status(api, ENGINES, obj, patch)


async def _roll(
    ctx: OperatorContext,
    obj: dict[str, Any],
    pod: dict[str, Any],
    revision: str,
    pod_revision: str | None,
) -> tuple[str, str, str]:
    """Restart the engine pod if no other engine is rolling; return Progressing."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    custom = client.CustomObjectsApi(ctx.api)
    async with ctx.roll_lock:
        engines = await asyncio.to_thread(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, ENGINES
        )
        for other in cast(dict[str, Any], engines).get("items", []):
            if other["metadata"]["name"] == name:
                continue
            for c in (other.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Progressing" and c.get("reason") == "Rolling":
                    return (
                        "True",
                        "WaitingForTurn",
                        f"revision {revision} waits: engine {other['metadata']['name']} "
                        "is rolling (one engine at a time)",
                    )
        # Claim the turn before the pod goes, so no other engine starts rolling meanwhile.
        claim = (
            "True",
            "Rolling",
            f"revision {revision} rolling from {pod_revision}: engine restarted",
        )
        old = list((obj.get("status") or {}).get("conditions") or [])
        kept = [c for c in old if c.get("type") != "Progressing"]
        generation = int(obj["metadata"].get("generation", 0))
        conditions = _merge_conditions(old, {"Progressing": claim}, generation)
        await asyncio.to_thread(
            _patch_status, ctx.api, ENGINES, namespace, name,
            {"conditions": [*kept, *conditions], "phase": "Progressing"},
        )  # fmt: skip
        core = client.CoreV1Api(ctx.api)
        try:
            await asyncio.to_thread(
                core.delete_namespaced_pod,
                pod["metadata"]["name"],
                namespace,
                body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(uid=pod["metadata"]["uid"])
                ),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        metrics.RESTARTS.inc()
        await asyncio.to_thread(
            kube_events.post,
            ctx.api,
            obj,
            "Normal",
            "Restarting",
            f"rolling to revision {revision}",
        )
        return claim


# -- Strategy ---------------------------------------------------------------------------------


async def reconcile_strategy(namespace: str, name: str) -> None:
    """Bring one Strategy's Deployment and status in line with its spec."""
    ctx = _ctx()
    async with ctx.lock(namespace, f"strategy/{name}"):
        await _timed("Strategy", lambda: _reconcile_strategy(ctx, namespace, name))


async def _reconcile_strategy(ctx: OperatorContext, namespace: str, name: str) -> None:
    api = ctx.api
    custom = client.CustomObjectsApi(api)
    obj = await asyncio.to_thread(
        _raw, custom.get_namespaced_custom_object, GROUP, VERSION, namespace, STRATEGIES, name
    )
    if obj is None or obj["metadata"].get("deletionTimestamp") or _paused(obj):
        return
    generation = int(obj["metadata"].get("generation", 0))
    old_conditions = list((obj.get("status") or {}).get("conditions") or [])
    spec = StrategySpec.model_validate(obj["spec"])
    engine_name = spec.engine_ref.name
    engine = await asyncio.to_thread(
        _raw, custom.get_namespaced_custom_object, GROUP, VERSION, namespace, ENGINES, engine_name
    )
    selector = f"{GROUP}/strategy={name}"
    patch: dict[str, Any] = {"observedGeneration": generation, "selector": selector}
    if engine is None:
        message = f"TradingEngine {engine_name!r} not found in namespace {namespace}; retrying"
        new = {
            "Ready": ("False", "EngineNotFound", message),
            "Progressing": ("False", "EngineNotFound", message),
            "Degraded": ("True", "EngineNotFound", message),
        }
        patch |= {"phase": "Pending", "engine": None, "replicas": 0}
    else:
        for child in strategy_objects(
            name,
            namespace,
            obj["metadata"]["uid"],
            spec,
            default_image=ctx.default_image,
            paused=spec.paused,
        ):
            await asyncio.to_thread(_apply, api, child)
        deployment = await asyncio.to_thread(
            _raw, client.AppsV1Api(api).read_namespaced_deployment, name, namespace
        )
        dstatus = (deployment or {}).get("status", {})
        want = 0 if spec.paused else spec.replicas
        have = int(dstatus.get("replicas") or 0)
        ready_n = int(dstatus.get("readyReplicas") or 0)
        updated = int(dstatus.get("updatedReplicas") or 0)
        observed = int(dstatus.get("observedGeneration") or 0)
        dgen = int((deployment or {}).get("metadata", {}).get("generation") or 0)
        engine_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (engine.get("status") or {}).get("conditions") or []
        )
        if spec.paused:
            ready_c = ("False", "Paused", "the strategy is paused (no replicas)")
        elif ready_n >= want > 0:
            ready_c = ("True", "ReplicasReady", f"{ready_n}/{want} replicas ready")
        else:
            ready_c = ("False", "ReplicasNotReady", f"{ready_n}/{want} replicas ready")
        if observed < dgen or updated < want or have != want:
            progressing = ("True", "Rolling", f"{updated}/{want} replicas updated")
        else:
            progressing = ("False", "UpToDate", "the Deployment is up to date")
        if not engine_ready:
            degraded = ("True", "EngineNotReady", f"TradingEngine {engine_name!r} is not Ready")
        else:
            degraded = ("False", "AsExpected", "")
        new = {"Ready": ready_c, "Progressing": progressing, "Degraded": degraded}
        phase = (
            "Paused"
            if spec.paused
            else "Running"
            if ready_c[0] == "True"
            else "Progressing"
            if progressing[0] == "True"
            else "Degraded"
        )
        patch |= {
            "phase": phase,
            "engine": engine_name,
            "replicas": have,
            "readyReplicas": ready_n,
        }
        if ctx.scrape_figures and ready_n:
            pnl = await asyncio.to_thread(_strategy_pnl, api, namespace, selector, spec)
            if pnl is not None:
                patch["pnl"] = pnl
    patch["conditions"] = _merge_conditions(old_conditions, new, generation)
    await _write_status(api, STRATEGIES, obj, patch)


def _strategy_pnl(
    api: client.ApiClient, namespace: str, selector: str, spec: StrategySpec
) -> float | None:
    """The P&L summed over the strategy's Ready pods and their containers (one a symbol)."""
    pods = _raw(client.CoreV1Api(api).list_namespaced_pod, namespace, label_selector=selector)
    total: float | None = None
    for pod in (pods or {}).get("items", []):
        ip = pod.get("status", {}).get("podIP")
        if not ip or not _pod_ready(pod):
            continue
        for i in range(len(spec.symbols)):
            url = f"http://{ip}:{STRATEGY_METRICS_PORT + i}/metrics"
            try:
                value = strategy_pnl(url)
            except (OSError, ValueError) as exc:
                log.debug("strategy %s: no P&L from %s: %s", selector, url, exc)
                continue
            if value is not None:
                total = (total or 0.0) + value
    return total


async def cancel_strategy_orders(namespace: str, spec: dict[str, Any], started: float) -> str:
    """The finalizer's cleanup: cancel the strategy's open orders on its engine.

    Nothing to do when the engine is gone. While it is unreachable, retry (the strategy
    stays until its orders are cancelled) for `cleanup_timeout` seconds, then let go with
    a warning: an engine that never comes back holds no orders that could trade.
    """
    ctx = _ctx()
    parsed = StrategySpec.model_validate(spec)
    engine_name = parsed.engine_ref.name
    custom = client.CustomObjectsApi(ctx.api)
    engine = await asyncio.to_thread(
        _raw, custom.get_namespaced_custom_object, GROUP, VERSION, namespace, ENGINES, engine_name
    )
    if engine is None:
        return f"engine {engine_name!r} is gone: no open orders to cancel"
    endpoint = f"tcp://{engine_name}.{namespace}.svc:{ORDER_ENTRY_PORT}"
    try:
        async with EngineClient(endpoint, timeout=5.0) as ec:
            reply = await ec.mass_cancel(parsed.account)
    except (EngineError, OSError) as exc:
        if time.monotonic() - started < ctx.cleanup_timeout:
            raise kopf.TemporaryError(
                f"engine {engine_name!r} unreachable: {exc}", delay=5
            ) from exc
        return f"gave up cancelling orders on {engine_name!r} after {ctx.cleanup_timeout:.0f} s"
    return f"cancelled the open orders of account {parsed.account!r}: {reply}"


# -- kopf registration -------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry) -> None:
    """Register every handler in `registry` (so tests and `tickplane operator` share them).

    Change handlers for the resources, and watch-event handlers for them and for the pods
    and Deployments the operator owns (a pod that turns Ready, or disappears, changes the
    engine's status at once). None of these adds a finalizer; the periodic comparison is
    `resync_forever` (kopf's timers would put a finalizer on every resource).
    """
    engines = (GROUP, VERSION, ENGINES)
    strategies = (GROUP, VERSION, STRATEGIES)

    # kopf passes every handler many keyword arguments; these take the two they need.
    async def engine_changed(**kwargs: Any) -> None:
        await reconcile_engine(kwargs["namespace"], kwargs["name"])

    async def strategy_changed(**kwargs: Any) -> None:
        await reconcile_strategy(kwargs["namespace"], kwargs["name"])

    for resource, handler in ((engines, engine_changed), (strategies, strategy_changed)):
        kopf.on.resume(*resource, registry=registry)(handler)
        kopf.on.create(*resource, registry=registry)(handler)
        kopf.on.update(*resource, registry=registry)(handler)

    async def child_event(**kwargs: Any) -> None:
        if kwargs.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
            return
        namespace: str = kwargs["namespace"]
        labels: dict[str, str] = dict(kwargs.get("labels") or {})
        strategy = labels.get(f"{GROUP}/strategy")
        engine = labels.get(f"{GROUP}/engine")
        if strategy:
            await reconcile_strategy(namespace, strategy)
        elif engine:
            await reconcile_engine(namespace, engine)

    owned = {"app.kubernetes.io/managed-by": MANAGED_BY}
    kopf.on.event("v1", "pods", labels=owned, registry=registry)(child_event)
    kopf.on.event("apps", "v1", "deployments", labels=owned, registry=registry)(child_event)

    deletion_started: dict[str, float] = {}

    async def strategy_deleted(**kwargs: Any) -> str:
        uid: str = kwargs["uid"]
        started = deletion_started.setdefault(uid, time.monotonic())
        message = await cancel_strategy_orders(kwargs["namespace"], dict(kwargs["spec"]), started)
        deletion_started.pop(uid, None)
        return message

    # The only finalizer: a strategy's open orders must be cancelled before it goes.
    kopf.on.delete(*strategies, registry=registry)(strategy_deleted)

    async def engine_gone(**kwargs: Any) -> None:
        # An engine's series goes with it (its children go by owner references). A watch
        # event, not on.delete: that would need a finalizer, for no cleanup that matters.
        if kwargs.get("type") == "DELETED":
            with contextlib.suppress(KeyError):
                metrics.GUARANTEED.remove(kwargs["namespace"], kwargs["name"])

    kopf.on.event(*engines, registry=registry)(engine_gone)


async def resync_forever(
    namespaces: list[str], active: Callable[[], Awaitable[bool]], interval: float
) -> None:
    """Level-triggered: compare every resource with its children every `interval` seconds
    (whatever events were missed), while `active()` says this operator is the active one."""
    ctx = _ctx()
    custom = client.CustomObjectsApi(ctx.api)

    async def names(plural: str) -> list[tuple[str, str]]:
        items: list[dict[str, Any]] = []
        if namespaces:
            for ns in namespaces:
                got = await asyncio.to_thread(
                    custom.list_namespaced_custom_object, GROUP, VERSION, ns, plural
                )
                items += cast(dict[str, Any], got).get("items", [])
        else:
            got = await asyncio.to_thread(custom.list_cluster_custom_object, GROUP, VERSION, plural)
            items = cast(dict[str, Any], got).get("items", [])
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    while True:
        await asyncio.sleep(interval)
        try:
            if not await active():
                continue
            for ns, name in await names(ENGINES):
                await reconcile_engine(ns, name)
            for ns, name in await names(STRATEGIES):
                await reconcile_strategy(ns, name)
        except Exception:  # the next round tries again; the error is counted and logged
            log.exception("resync failed")
        finally:
            ctx.last_resync = time.monotonic()


def default_image() -> str:
    """The image engine and strategy pods run unless their spec names one."""
    return os.environ.get("TICKPLANE_OPERATOR_ENGINE_IMAGE", "ghcr.io/tickplane/tickplane:0.1.0")


__all__ += ["ENGINE_CONTAINER", "default_image", "register", "resync_forever"]
