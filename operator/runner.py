"""Runs the kopf operator: the Kubernetes client, the handlers, metrics, liveness, peering."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from kubernetes import client, config
from prometheus_client import start_http_server

from . import handlers

__all__ = ["OperatorOptions", "api_client", "run"]

log = logging.getLogger("tickplane.operator")


@dataclass
class OperatorOptions:
    """`tickplane operator`'s options (see its --help)."""

    namespaces: list[str] = field(default_factory=list)
    metrics_port: int = 9090
    liveness_port: int = 8080
    resync_seconds: float = 10.0
    peering: str | None = "tickplane"
    priority: int = 0
    engine_image: str | None = None
    cleanup_timeout: float = 60.0
    peering_lifetime: int = 30


def _is_active_peer(api: client.ApiClient, options: OperatorOptions, identity: str) -> bool:
    """Whether no live peer outranks this operator (kopf pauses its watches then; the
    periodic resync, which kopf does not know about, follows the same rule). Cluster-wide
    the peering is a ClusterKopfPeering; watching namespaces, a KopfPeering in each."""
    if options.peering is None:
        return True
    custom = client.CustomObjectsApi(api)
    objects: list[object] = []
    try:
        if options.namespaces:
            for ns in options.namespaces:
                objects.append(
                    custom.get_namespaced_custom_object(
                        "kopf.dev", "v1", ns, "kopfpeerings", options.peering
                    )
                )
        else:
            objects.append(
                custom.get_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", options.peering
                )
            )
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return True  # no peering object: kopf runs, and so do we
        raise
    now = datetime.datetime.now(datetime.UTC)
    for peering in objects:
        for peer_id, peer in (cast(dict[str, Any], peering).get("status") or {}).items():
            if peer_id == identity or not isinstance(peer, dict):
                continue
            seen = datetime.datetime.fromisoformat(str(peer.get("lastseen")))
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=datetime.UTC)
            alive = now - seen < datetime.timedelta(seconds=float(peer.get("lifetime", 60)))
            if alive and int(peer.get("priority", 0)) >= options.priority:
                return False
    return True


def api_client() -> client.ApiClient:
    """In a pod, the service account; elsewhere KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


async def run(options: OperatorOptions) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop."""
    ctx = handlers.OperatorContext(
        api=api_client(),
        default_image=options.engine_image or handlers.default_image(),
        resync_seconds=options.resync_seconds,
        cleanup_timeout=options.cleanup_timeout,
    )
    handlers.configure(ctx)
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    identity = f"tickplane-operator@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    tasks: list[asyncio.Task[None]] = []

    async def active() -> bool:
        return await asyncio.to_thread(_is_active_peer, ctx.api, options, identity)

    @kopf.on.startup(registry=registry)
    async def start_resync(**_: Any) -> None:
        tasks.append(
            asyncio.create_task(
                handlers.resync_forever(options.namespaces, active, options.resync_seconds)
            )
        )

    @kopf.on.cleanup(registry=registry)
    async def stop_resync(**_: Any) -> None:
        for task in tasks:
            task.cancel()

    @kopf.on.startup(registry=registry)
    def settings(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Watches end and restart every minute: a silently broken connection (an apiserver
        # restart) costs at most that, and the timer re-compares everything meanwhile.
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 90
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = 30
        settings.posting.level = logging.INFO
        # A crashed operator's peering entry holds its successor paused this long.
        settings.peering.lifetime = options.peering_lifetime
        # Progress of kopf's own handlers in annotations; the status is ours alone.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="kopf.tickplane.io"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kopf.tickplane.io", key="last-handled-configuration"
        )
        settings.persistence.finalizer = "tickplane.io/cancel-orders"

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the Kubernetes client (in-cluster or the kubeconfig).
        return kopf.login_via_client(**kwargs)

    # kopf's /healthz answers 500 when a probe raises: a stalled resync loop (a call that
    # hangs for ever) restarts the pod.
    @kopf.on.probe(id="resync", registry=registry)
    def probe(**_: Any) -> str:
        return ctx.check_alive()

    start_http_server(options.metrics_port)
    log.info(
        "operator: metrics on :%d, liveness on :%d/healthz, %s, peering %s",
        options.metrics_port,
        options.liveness_port,
        f"namespaces {options.namespaces}" if options.namespaces else "all namespaces",
        options.peering or "off (standalone)",
    )
    await kopf.operator(
        registry=registry,
        clusterwide=not options.namespaces,
        namespaces=options.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{options.liveness_port}/healthz",
        standalone=options.peering is None,
        peering_name=options.peering,
        priority=options.priority,
        identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
    )
    return 0
