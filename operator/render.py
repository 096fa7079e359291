"""What a `TradingEngine` and a `Strategy` become: the Kubernetes objects, as plain dicts.

Pure functions of the custom resource (no API calls), so the tests can compare them and the
reconciler can apply them server-side. The engine is a StatefulSet of one pod with
`OnDelete` updates: the template changes at once, but the running pod is replaced only
when the operator deletes it, one engine at a time behind the gate (handlers.py).

Every container has requests equal to limits and whole CPUs, so the pod is Guaranteed and
the kubelet's static CPU manager gives it exclusive cores; it runs as a non-root user on a
read-only root filesystem without privilege escalation or capabilities.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec

from tickplane.core.config import (
    EngineConfig,
    MarketConfig,
    RiskConfig,
    RiskLimits,
    SymbolConfig,
    VenueConfig,
)

from .resources import GROUP, VERSION, RiskLimitsSpec, StrategySpec, TradingEngineSpec

__all__ = [
    "ENGINE_CONTAINER",
    "EVENTS_PORT",
    "HTTP_PORT",
    "ORDER_ENTRY_PORT",
    "RUN_AS",
    "STRATEGY_METRICS_PORT",
    "engine_config",
    "engine_labels",
    "engine_objects",
    "owner_reference",
    "revision_hash",
    "strategy_objects",
]

ORDER_ENTRY_PORT = 5555
EVENTS_PORT = 5556
HTTP_PORT = 9100
RUN_AS = 10001
ENGINE_CONTAINER = "engine"
CONFIG_DIR = "/etc/tickplane"
JOURNAL_DIR = "/var/lib/tickplane"
ALPACA_DIR = "/etc/tickplane/alpaca"
REVISION_ANNOTATION = f"{GROUP}/revision"
MANAGED_BY = "tickplane-operator"
# The engine snapshots on SIGTERM (stop intake, flush the journal, snapshot): give it time.
TERMINATION_GRACE_SECONDS = 60


def engine_labels(name: str) -> dict[str, str]:
    """The labels of everything made for engine `name` (the selector is the last one)."""
    return {
        "app.kubernetes.io/name": "tickplane-engine",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "tickplane",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{GROUP}/engine": name,
    }


def strategy_labels(name: str, engine: str) -> dict[str, str]:
    """The labels of a strategy's Deployment and pods."""
    return {
        "app.kubernetes.io/name": "tickplane-strategy",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "tickplane",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{GROUP}/strategy": name,
        f"{GROUP}/engine": engine,
    }


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """Makes the garbage collector delete a child with its custom resource."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _limits(spec: RiskLimitsSpec) -> RiskLimits:
    return RiskLimits(**spec.model_dump())


def engine_config(name: str, spec: TradingEngineSpec) -> EngineConfig:
    """The engine process's configuration (core/config.py) for this resource."""
    venue = spec.venue
    market = spec.market_data
    return EngineConfig(
        name=name,
        symbols=[
            SymbolConfig(s.name, s.tick_size, s.lot_size, s.reference_price) for s in spec.symbols
        ],
        order_entry=f"tcp://0.0.0.0:{ORDER_ENTRY_PORT}",
        events=f"tcp://0.0.0.0:{EVENTS_PORT}",
        http_host="0.0.0.0",
        http_port=HTTP_PORT,
        journal_dir=f"{JOURNAL_DIR}/journal",
        fsync=spec.journal.fsync,
        event_log_bytes=spec.journal.event_log_bytes,
        md_log_bytes=spec.journal.md_log_bytes,
        pin_cpu=True,
        risk=RiskConfig(
            default=_limits(spec.risk.default),
            accounts={a: _limits(v) for a, v in spec.risk.accounts.items()},
            pairs={p: _limits(v) for p, v in spec.risk.pairs.items()},
        ),
        venue=VenueConfig(
            kind=venue.kind,
            paper=venue.paper,
            secret_dir=ALPACA_DIR if venue.kind == "alpaca" else None,
            unreachable=venue.unreachable,
            trail_poll_seconds=venue.trail_poll_seconds,
            rate_limit_min_backoff=venue.rate_limit_min_backoff,
            rate_limit_max_backoff=venue.rate_limit_max_backoff,
            early_updates_max=venue.early_updates_max,
        ),
        market=MarketConfig(source=market.source, rate=market.rate, speed=market.speed),
    ).validate()


def revision_hash(*objects: Any) -> str:
    """A short, stable hash of what the engine pod runs (its template and configuration)."""
    canonical = json.dumps(objects, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _meta(name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any]) -> Any:
    return {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]}


def engine_objects(
    name: str, namespace: str, uid: str, spec: TradingEngineSpec, *, default_image: str
) -> tuple[str, list[dict[str, Any]]]:
    """(revision, [ConfigMap, Service, StatefulSet, PodDisruptionBudget, NetworkPolicy])."""
    labels = engine_labels(name)
    selector = {f"{GROUP}/engine": name}
    owner = owner_reference("TradingEngine", name, uid)
    config_json = msgspec.json.format(msgspec.json.encode(engine_config(name, spec))).decode()
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{name}-engine", namespace, labels, owner),
        "data": {"engine.json": config_json + "\n"},
    }
    ports = [
        {"name": "order-entry", "port": ORDER_ENTRY_PORT, "protocol": "TCP"},
        {"name": "events", "port": EVENTS_PORT, "protocol": "TCP"},
        {"name": "http", "port": HTTP_PORT, "protocol": "TCP"},
    ]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, labels, owner),
        "spec": {
            "clusterIP": "None",
            "selector": selector,
            # Clients find a restarting engine by name; readiness gates orders, not DNS.
            "publishNotReadyAddresses": True,
            "ports": [{**p, "targetPort": p["name"]} for p in ports],
        },
    }
    resources = {"cpu": str(spec.resources.cpus), "memory": spec.resources.memory}
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": f"{name}-engine"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "journal", "mountPath": JOURNAL_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    secret = spec.venue.credentials_secret
    if spec.venue.kind == "alpaca" and secret is not None:
        volumes.append(
            {
                "name": "alpaca",
                "secret": {
                    "secretName": secret.name,
                    "items": [
                        {"key": secret.key_id_key, "path": "key_id"},
                        {"key": secret.secret_key_key, "path": "secret_key"},
                    ],
                },
            }
        )
        mounts.append({"name": "alpaca", "mountPath": ALPACA_DIR, "readOnly": True})
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container = {
        "name": ENGINE_CONTAINER,
        "image": spec.image or default_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["tickplane", "engine", "--config", f"{CONFIG_DIR}/engine.json"],
        "ports": [{"name": p["name"], "containerPort": p["port"]} for p in ports],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {**probe, "failureThreshold": 3},
        # The process's own start (imports, the journal's lock) within ten minutes;
        # recovery after that is seen by readiness only: /healthz answers during it.
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 120},
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    placement = spec.placement
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the engine never calls the apiserver
        "enableServiceLinks": False,
        "securityContext": _pod_security(),
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [container],
        "volumes": volumes,
    }
    if placement.node_selector:
        pod_spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in placement.tolerations
        ]
    if placement.priority_class_name:
        pod_spec["priorityClassName"] = placement.priority_class_name
    if placement.runtime_class_name:
        pod_spec["runtimeClassName"] = placement.runtime_class_name
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.journal.size}},
    }
    if spec.journal.storage_class_name:
        claim_spec["storageClassName"] = spec.journal.storage_class_name
    revision = revision_hash(pod_spec, config_json)
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(name, namespace, labels, owner),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector},
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            # The journal is the engine's state: it outlives the resource (docs/kubernetes.md).
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {REVISION_ANNOTATION: revision},
                },
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": "journal", "labels": labels}, "spec": claim_spec}
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, namespace, labels, owner),
        # No voluntary eviction: only the operator restarts an engine (behind its gate).
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": selector}},
    }
    netpol = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace, labels, owner),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    # Order entry and events: Tickplane's own clients in this namespace
                    # (gateway, recorder, strategies) and the operator.
                    "from": [
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tickplane"}}}
                    ],
                    "ports": [
                        {"port": ORDER_ENTRY_PORT, "protocol": "TCP"},
                        {"port": EVENTS_PORT, "protocol": "TCP"},
                    ],
                },
                # HTTP (probes, /metrics, /status): from anywhere in the cluster, read-only.
                {"ports": [{"port": HTTP_PORT, "protocol": "TCP"}]},
            ],
        },
    }
    return revision, [configmap, service, statefulset, pdb, netpol]


STRATEGY_METRICS_PORT = 9200


def _container_name(symbol: str) -> str:
    return "strategy-" + symbol.lower().replace(".", "-")


def strategy_objects(
    name: str,
    namespace: str,
    uid: str,
    spec: StrategySpec,
    *,
    default_image: str,
    paused: bool,
) -> list[dict[str, Any]]:
    """[Deployment] of the strategy runtime (`tickplane strategy run`) pointed at its engine.

    The runtime trades one symbol; the pod has one container per symbol, all for the
    strategy's account, each serving its metrics (P&L...) on its own port from 9200.
    """
    engine = spec.engine_ref.name
    labels = strategy_labels(name, engine)
    owner = owner_reference("Strategy", name, uid)
    host = f"{engine}.{namespace}.svc"
    limit_flags = []
    for flag, value in (
        ("--max-position", spec.limits.max_position),
        ("--max-orders-per-sec", spec.limits.max_orders_per_second),
        ("--max-loss", spec.limits.max_loss),
    ):
        if value is not None:
            limit_flags.append(f"{flag}={value}")
    resources = {"cpu": "500m", "memory": "256Mi"}
    containers = []
    for i, symbol in enumerate(spec.symbols):
        containers.append(
            {
                "name": _container_name(symbol),
                "image": spec.image or default_image,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "tickplane",
                    "strategy",
                    "run",
                    f"--strategy={spec.type}",
                    f"--engine=tcp://{host}:{ORDER_ENTRY_PORT}",
                    f"--events=tcp://{host}:{EVENTS_PORT}",
                    f"--account={spec.account}",
                    f"--symbol={symbol}",
                    f"--metrics-port={STRATEGY_METRICS_PORT + i}",
                    *limit_flags,
                ],
                # The runtime reads its parameters from here (a JSON object).
                "env": [
                    {
                        "name": "TICKPLANE_STRATEGY_PARAMS",
                        "value": json.dumps(spec.parameters, sort_keys=True),
                    }
                ],
                "ports": [{"name": f"metrics-{i}", "containerPort": STRATEGY_METRICS_PORT + i}],
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": _container_security(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        )
    selector = {f"{GROUP}/strategy": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, labels, owner),
        "spec": {
            "replicas": 0 if paused else spec.replicas,
            "selector": {"matchLabels": selector},
            # One runtime per account and symbol at a time: never two through a rollout.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {REVISION_ANNOTATION: revision_hash(containers)},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # The runtime cancels its orders on SIGTERM before it exits.
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": _pod_security(),
                    "containers": containers,
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
    return [deployment]
