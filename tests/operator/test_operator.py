"""The operator, running as `tickplane operator`, against the real control plane.

There is no kubelet: the StatefulSet and Deployment controllers create pods that stay
Pending, and the tests write what a kubelet would (a pod's Ready condition).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import yaml
from kubernetes import client

from tests.controlplane.api import as_dict, eventually
from tests.engine.conftest import EngineProcess, free_port
from tickplane.core.config import EngineConfig, RiskLimits

from .support import (
    EXAMPLES,
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    mark_pod_ready,
    refused_events,
)

ENGINES = "tradingengines"
STRATEGIES = "strategies"


def engine_body(name: str, **spec: Any) -> dict[str, Any]:
    body = yaml.safe_load((EXAMPLES / "tradingengine.yaml").read_text())
    body["metadata"]["name"] = name
    body["spec"].update(spec)
    return dict(body)


class Cluster:
    """Short-hands over the API for one test namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    def create(self, plural: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return as_dict(
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)
        )

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name, body)

    def wait_condition(
        self, plural: str, name: str, kind: str, status: str, reason: str | None = None,
        timeout: float = 45.0,
    ) -> dict[str, Any]:  # fmt: skip
        def probe() -> dict[str, Any] | None:
            obj = self.get(plural, name)
            c = condition(obj, kind)
            if c and c["status"] == status and (reason is None or c["reason"] == reason):
                return obj
            return None

        return eventually(probe, timeout=timeout, what=f"{name} {kind}={status} {reason or ''}")

    def pod(self, name: str) -> client.V1Pod:
        return self.core.read_namespaced_pod(name, self.ns)

    def events(self, name: str, reason: str | None = None) -> list[client.CoreV1Event]:
        """The Kubernetes Events about the object `name` (with `reason`, if given)."""
        return [
            e
            for e in self.core.list_namespaced_event(self.ns).items
            if e.involved_object.name == name and reason in (None, e.reason)
        ]

    def ready_engine(self, name: str) -> dict[str, Any]:
        """Wait for the engine's pod, make it Ready, wait until the engine says Running."""
        eventually(lambda: self.pod(f"{name}-0"), what=f"pod {name}-0")
        mark_pod_ready(self.core, self.ns, f"{name}-0")
        return self.wait_condition(ENGINES, name, "Progressing", "False", "UpToDate")


def test_engine_objects_are_exactly_right(
    operator: OperatorProcess, control_plane: Any, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("nasdaq"))
    engine = c.get(ENGINES, "nasdaq")
    uid = engine["metadata"]["uid"]

    sts = eventually(lambda: c.apps.read_namespaced_stateful_set("nasdaq", namespace), what="sts")
    assert sts.spec.update_strategy.type == "OnDelete"
    assert sts.spec.replicas == 1 and sts.spec.service_name == "nasdaq"
    assert sts.metadata.owner_references[0].uid == uid
    pod_spec = sts.spec.template.spec
    assert pod_spec.node_selector == {"tickplane.io/tuned": "true"}
    assert pod_spec.tolerations[0].key == "tickplane.io/dedicated"
    assert pod_spec.automount_service_account_token is False
    assert pod_spec.security_context.run_as_non_root is True
    for container in [*pod_spec.containers, *(pod_spec.init_containers or [])]:
        res = container.resources
        assert res.requests == res.limits == {"cpu": "2", "memory": "2Gi"}
        sec = container.security_context
        assert sec.run_as_non_root and sec.read_only_root_filesystem
        assert sec.allow_privilege_escalation is False and sec.capabilities.drop == ["ALL"]
        assert container.liveness_probe.http_get.path == "/healthz"
        assert container.readiness_probe.http_get.path == "/readyz"
    claim = sts.spec.volume_claim_templates[0]
    assert claim.spec.resources.requests == {"storage": "10Gi"}

    cm = c.core.read_namespaced_config_map("nasdaq-engine", namespace)
    config = json.loads(cm.data["engine.json"])
    # The engine's own model reads it (`tickplane engine --config`).
    parsed = msgspec.json.decode(cm.data["engine.json"], type=EngineConfig).validate()
    assert parsed.journal_dir.startswith("/var/lib/tickplane") and parsed.pin_cpu
    assert [s["name"] for s in config["symbols"]] == ["GOOG", "AAPL"]
    assert config["name"] == "nasdaq" and config["fsync"] == "batch"
    assert config["risk"]["default"]["max_order_qty"] == 10000
    assert parsed.risk.default.market_collar_bps == 200
    # The example's pair limits, as the engine reads them (keyed ACCOUNT/SYMBOL).
    assert parsed.risk.pairs == {
        "mm-desk/GOOG": RiskLimits(
            max_order_qty=10000, max_position=50000, price_band_bps=500, market_collar_bps=200
        )
    }
    svc = c.core.read_namespaced_service("nasdaq", namespace)
    assert svc.spec.cluster_ip == "None"
    assert {p.port for p in svc.spec.ports} == {5555, 5556, 9100}
    # Applied after the StatefulSet (render.engine_objects' order): they may be a moment
    # behind it (read at once, the PDB was sometimes not there yet: 404).
    policy, networking = client.PolicyV1Api(api_client), client.NetworkingV1Api(api_client)
    pdb = eventually(
        lambda: policy.read_namespaced_pod_disruption_budget("nasdaq", namespace), what="pdb"
    )
    assert pdb.spec.max_unavailable == 0
    netpol = eventually(
        lambda: networking.read_namespaced_network_policy("nasdaq", namespace), what="netpol"
    )
    assert netpol.spec.pod_selector.match_labels == {"tickplane.io/engine": "nasdaq"}

    # The StatefulSet controller made the pod; the apiserver computed its QoS class.
    pod = eventually(lambda: c.pod("nasdaq-0"), what="pod nasdaq-0")
    assert pod.status.qos_class == "Guaranteed"
    pending = c.wait_condition(ENGINES, "nasdaq", "Ready", "False", "PodNotReady")
    assert pending["status"]["phase"] == "Pending"
    assert pending["status"]["symbols"] == "GOOG,AAPL"
    assert pending["status"]["endpoints"]["orderEntry"] == f"tcp://nasdaq.{namespace}.svc:5555"
    assert condition(pending, "Progressing")["reason"] == "Rolling"  # type: ignore[index]

    mark_pod_ready(c.core, namespace, "nasdaq-0")
    running = c.wait_condition(ENGINES, "nasdaq", "Ready", "True", "PodReady")
    running = c.wait_condition(ENGINES, "nasdaq", "Progressing", "False", "UpToDate")
    assert running["status"]["phase"] == "Running"
    assert running["status"]["currentRevision"] == running["status"]["revision"]
    assert running["status"]["observedGeneration"] == running["metadata"]["generation"]
    for kind in ("Ready", "Progressing", "Degraded", "Pinned"):
        got = condition(running, kind)
        assert got is not None and got["observedGeneration"] == running["metadata"]["generation"]
    assert condition(running, "Degraded")["status"] == "False"  # type: ignore[index]
    row = control_plane.kubectl("get", "te", "nasdaq", "-n", namespace).stdout.splitlines()[1]
    assert row.split()[1:6] == ["GOOG,AAPL", "internal", "2", "Running", "True"]
    # The transition's Event: posted whichever reconcile (a watch event's or the resync
    # loop's) saw the pod turn Ready.
    events = eventually(lambda: c.events("nasdaq", "PodReady") or None, what="a PodReady event")
    assert events[0].involved_object.kind == "TradingEngine"
    assert events[0].involved_object.uid == uid and events[0].type == "Normal"
    assert events[0].message == "Ready=True: nasdaq-0 is Ready"
    assert running["status"]["announcedConditions"]["Ready"] == "True/PodReady"
    assert "tickplane_operator_reconciles_total" in operator.metrics()
    assert _guaranteed(operator, namespace, "nasdaq") == "1.0"
    assert operator.health()["resync"].startswith("resync ")


def test_a_refused_event_is_posted_once_the_apiserver_takes_it(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    """A transition's Event that the apiserver refuses is not lost: the status records it as
    not announced, and a later reconcile posts it."""
    c = Cluster(api_client, namespace)
    with refused_events(api_client, namespace, "PodReady"):
        c.create(ENGINES, engine_body("refused"))
        running = c.ready_engine("refused")
        assert condition(running, "Ready")["reason"] == "PodReady"  # type: ignore[index]
        # The reconcile that wrote Ready=True had its post refused, and so has every
        # reconcile since (every 2 s, and on every watch event).
        assert c.events("refused", "PodReady") == []
        announced = c.get(ENGINES, "refused")["status"].get("announcedConditions") or {}
        assert announced.get("Ready") != "True/PodReady"
        # The other transitions were announced.
        assert c.events("refused", "UpToDate")

    def ready_announced() -> bool | None:
        record = c.get(ENGINES, "refused")["status"].get("announcedConditions") or {}
        return True if record.get("Ready") == "True/PodReady" else None

    # The record is written after the post: once it says so, the Event is there.
    eventually(ready_announced, what="the PodReady Event, late")
    events = c.events("refused", "PodReady")
    assert len(events) == 1 and events[0].message == "Ready=True: refused-0 is Ready"


def test_pod_loss_is_degraded_then_recovers(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("e1"))
    c.ready_engine("e1")
    old_uid = c.pod("e1-0").metadata.uid
    c.core.delete_namespaced_pod("e1-0", namespace)
    degraded = c.wait_condition(ENGINES, "e1", "Degraded", "True")
    assert degraded["status"]["phase"] == "Degraded"
    new = eventually(
        lambda: p if (p := c.pod("e1-0")).metadata.uid != old_uid else None, what="new pod"
    )
    # kopf posts events in the background: wait for the Warning.
    eventually(
        lambda: (
            True
            if {
                e.reason
                for e in c.core.list_namespaced_event(namespace).items
                if e.involved_object.name == "e1" and e.type == "Warning"
            }
            & {"PodMissing", "PodNotReady"}
            else None
        ),
        what="a Warning event for the lost pod",
    )
    mark_pod_ready(c.core, namespace, new.metadata.name)
    c.wait_condition(ENGINES, "e1", "Degraded", "False")


def test_updates_roll_one_engine_at_a_time(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    for name in ("a", "b"):
        c.create(ENGINES, engine_body(name))
    for name in ("a", "b"):
        c.ready_engine(name)
    uids = {n: c.pod(f"{n}-0").metadata.uid for n in ("a", "b")}
    revisions = {n: c.get(ENGINES, n)["status"]["revision"] for n in ("a", "b")}
    for name in ("a", "b"):
        c.patch(ENGINES, name, {"spec": {"journal": {"fsync": "always"}}})

    def one_rolling() -> tuple[str, str] | None:
        states = {n: condition(c.get(ENGINES, n), "Progressing") or {} for n in ("a", "b")}
        reasons = {n: s.get("reason") for n, s in states.items()}
        assert list(reasons.values()).count("Rolling") < 2, f"both engines rolling: {reasons}"
        if sorted(reasons.values()) == ["Rolling", "WaitingForTurn"]:
            first = next(n for n, r in reasons.items() if r == "Rolling")
            return first, "b" if first == "a" else "a"
        return None

    first, second = eventually(one_rolling, what="one engine rolling, one waiting")
    assert c.pod(f"{second}-0").metadata.uid == uids[second]  # untouched while waiting
    new = eventually(
        lambda: p if (p := c.pod(f"{first}-0")).metadata.uid != uids[first] else None,
        what=f"{first}'s new pod",
    )
    assert new.metadata.annotations["tickplane.io/revision"] != revisions[first]
    mark_pod_ready(c.core, namespace, f"{first}-0")
    done = c.wait_condition(ENGINES, first, "Progressing", "False", "UpToDate")
    assert done["status"]["currentRevision"] != revisions[first]
    c.wait_condition(ENGINES, second, "Progressing", "True", "Rolling")
    eventually(
        lambda: True if c.pod(f"{second}-0").metadata.uid != uids[second] else None,
        what=f"{second}'s new pod",
    )
    mark_pod_ready(c.core, namespace, f"{second}-0")
    c.wait_condition(ENGINES, second, "Progressing", "False", "UpToDate")


def test_supervised_engine_waits_for_approval(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("sup", updatePolicy="supervised"))
    c.ready_engine("sup")
    uid = c.pod("sup-0").metadata.uid
    c.patch(ENGINES, "sup", {"spec": {"resources": {"cpus": 3}}})
    waiting = c.wait_condition(ENGINES, "sup", "Progressing", "True", "AwaitingApproval")
    revision = waiting["status"]["revision"]
    assert revision in condition(waiting, "Progressing")["message"]  # type: ignore[index]
    sts = c.apps.read_namespaced_stateful_set("sup", namespace)
    assert sts.spec.template.spec.containers[0].resources.limits["cpu"] == "3"
    assert c.pod("sup-0").metadata.uid == uid  # the running engine is left alone
    c.patch(
        ENGINES, "sup", {"metadata": {"annotations": {"tickplane.io/approved-revision": revision}}}
    )
    new = eventually(
        lambda: p if (p := c.pod("sup-0")).metadata.uid != uid else None, what="restarted pod"
    )
    assert new.spec.containers[0].resources.requests["cpu"] == "3"
    assert new.status.qos_class == "Guaranteed"
    mark_pod_ready(c.core, namespace, "sup-0")
    done = c.wait_condition(ENGINES, "sup", "Progressing", "False", "UpToDate")
    assert done["status"]["currentRevision"] == revision


def test_pause_annotation_stops_reconciling(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("p"))
    c.ready_engine("p")
    c.patch(ENGINES, "p", {"metadata": {"annotations": {"tickplane.io/paused": "true"}}})
    eventually(
        lambda: True if c.get(ENGINES, "p")["status"].get("phase") == "Paused" else None,
        what="phase Paused",
    )
    c.patch(ENGINES, "p", {"spec": {"resources": {"memory": "3Gi"}}})
    c.wait_condition(ENGINES, "p", "Progressing", "False", "Paused")
    sts = c.apps.read_namespaced_stateful_set("p", namespace)
    assert sts.spec.template.spec.containers[0].resources.limits["memory"] == "2Gi"
    c.patch(ENGINES, "p", {"metadata": {"annotations": {"tickplane.io/paused": None}}})
    eventually(
        lambda: (
            True
            if c.apps.read_namespaced_stateful_set("p", namespace)
            .spec.template.spec.containers[0]
            .resources.limits["memory"]
            == "3Gi"
            else None
        ),
        what="the change applied after the pause",
    )


def test_deleting_an_engine_removes_its_objects_but_keeps_the_journal(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("gone"))
    eventually(lambda: c.pod("gone-0"), what="pod")
    engine = c.get(ENGINES, "gone")
    assert not engine["metadata"].get("finalizers")  # nothing to clean up: no finalizer
    # The StatefulSet controller made the journal's claim (no provisioner: Pending).
    eventually(
        lambda: c.core.read_namespaced_persistent_volume_claim("journal-gone-0", namespace),
        what="the journal claim",
    )
    c.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, ENGINES, "gone")

    def children_gone() -> bool | None:
        left = [
            *c.apps.list_namespaced_stateful_set(namespace).items,
            *c.core.list_namespaced_service(namespace).items,
            *c.core.list_namespaced_config_map(
                namespace, label_selector="tickplane.io/engine=gone"
            ).items,
        ]
        return True if not left else None

    eventually(children_gone, timeout=60, what="the garbage collector")
    assert c.core.read_namespaced_persistent_volume_claim("journal-gone-0", namespace)
    # Its QoS series goes too (no finalizer was needed for that).
    eventually(
        lambda: True if _guaranteed(operator, namespace, "gone") is None else None,
        what="the engine's tickplane_operator_engine_guaranteed series removed",
    )


def _guaranteed(operator: OperatorProcess, namespace: str, engine: str) -> str | None:
    """The operator's `tickplane_operator_engine_guaranteed` value for one engine."""
    series = f'tickplane_operator_engine_guaranteed{{engine="{engine}",namespace="{namespace}"}}'
    for line in operator.metrics().splitlines():
        if line.startswith(series + " "):
            return line.split()[-1]
    return None


def test_strategy_waits_for_its_engine_then_runs(
    operator: OperatorProcess, control_plane: Any, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    strategy = yaml.safe_load((EXAMPLES / "strategy.yaml").read_text())
    strategy["spec"]["engineRef"]["name"] = "later"
    c.create(STRATEGIES, strategy)
    pending = c.wait_condition(STRATEGIES, "mm-goog", "Ready", "False", "EngineNotFound")
    assert "'later' not found" in condition(pending, "Ready")["message"]  # type: ignore[index]
    assert c.apps.list_namespaced_deployment(namespace).items == []
    # Retried: the engine appears, the Deployment follows.
    c.create(ENGINES, engine_body("later"))
    dep = eventually(
        lambda: c.apps.read_namespaced_deployment("mm-goog", namespace), what="the Deployment"
    )
    assert dep.spec.replicas == 1
    container = dep.spec.template.spec.containers[0]
    assert container.name == "strategy-goog"
    assert container.resources.requests == container.resources.limits
    assert container.security_context.read_only_root_filesystem is True
    assert container.command[:3] == ["tickplane", "strategy", "run"]
    for arg in (
        "--strategy=market_maker",
        f"--engine=tcp://later.{namespace}.svc:5555",
        f"--events=tcp://later.{namespace}.svc:5556",
        "--account=mm-desk",
        "--symbol=GOOG",
        "--max-position=5000",
        "--max-loss=1000000",
    ):
        assert arg in container.command
    params = {e.name: e.value for e in container.env}["TICKPLANE_STRATEGY_PARAMS"]
    assert json.loads(params) == {"max_inventory": 1000, "qty": 100}
    control_plane.kubectl("scale", "-n", namespace, "strategy/mm-goog", "--replicas=2")
    eventually(
        lambda: (
            True
            if c.apps.read_namespaced_deployment("mm-goog", namespace).spec.replicas == 2
            else None
        ),
        what="the Deployment scaled",
    )
    scaled = eventually(
        lambda: s if (s := c.get(STRATEGIES, "mm-goog"))["status"].get("replicas") == 2 else None,
        what="status.replicas from the Deployment",
    )
    assert scaled["status"]["selector"] == "tickplane.io/strategy=mm-goog"
    assert "tickplane.io/cancel-orders" in scaled["metadata"]["finalizers"]
    # Deletion: the engine exists but is unreachable (no pod runs), so the finalizer
    # retries, then lets go after --cleanup-timeout (3 s in the tests).
    c.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, STRATEGIES, "mm-goog")

    def gone() -> bool | None:
        try:
            c.get(STRATEGIES, "mm-goog")
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return None

    eventually(gone, timeout=60, what="the strategy's finalizer")


def test_operator_restart_converges(
    operator: OperatorProcess, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("r"))
    c.ready_engine("r")
    operator.kill()
    try:
        c.patch(ENGINES, "r", {"spec": {"resources": {"memory": "4Gi"}}})
    finally:
        operator.start()
    eventually(
        lambda: (
            True
            if c.apps.read_namespaced_stateful_set("r", namespace)
            .spec.template.spec.containers[0]
            .resources.limits["memory"]
            == "4Gi"
            else None
        ),
        what="the change made while the operator was down",
    )

    def rolled_and_ready() -> bool | None:
        # The old pod may still be there (being deleted by the roll): only the new
        # revision's pod is marked Ready; a 404 in between is retried by `eventually`.
        pod = c.pod("r-0")
        if pod.spec.containers[0].resources.limits["memory"] != "4Gi":
            return None
        mark_pod_ready(c.core, namespace, "r-0")
        return True

    eventually(rolled_and_ready, what="the rolled pod, made Ready")
    c.wait_condition(ENGINES, "r", "Progressing", "False", "UpToDate")


def test_apiserver_restart_converges(
    operator: OperatorProcess, control_plane: Any, api_client: client.ApiClient, namespace: str
) -> None:
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("s"))
    c.ready_engine("s")
    control_plane.stop_apiserver()
    control_plane.start_apiserver()
    c.patch(ENGINES, "s", {"spec": {"resources": {"memory": "5Gi"}}})
    eventually(
        lambda: (
            True
            if c.apps.read_namespaced_stateful_set("s", namespace)
            .spec.template.spec.containers[0]
            .resources.limits["memory"]
            == "5Gi"
            else None
        ),
        timeout=90,
        what="the change after the apiserver restart",
    )
    assert operator.running


class EngineAt(EngineProcess):
    """An engine process whose HTTP server listens on its own loopback address."""

    @property
    def http(self) -> str:
        return f"http://{self.settings['http_host']}:{self.settings['http_port']}"


def test_live_figures_from_the_running_engine(
    operator: OperatorProcess,
    control_plane: Any,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The pod's address is given to a real engine (on a loopback address of its own, at
    the pod's HTTP port); the operator reads its /status and /metrics into the status.

    The engine starts after the pod is Ready: nothing Kubernetes watches changes then, so
    the resync loop alone finds Pinned turning True, and posts its Event."""
    c = Cluster(api_client, namespace)
    c.create(ENGINES, engine_body("live", marketData={"source": "synthetic", "rate": 200}))
    eventually(lambda: c.pod("live-0"), what="pod live-0")
    address = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
    c.core.patch_namespaced_pod_status(
        "live-0", namespace, {"status": {"podIP": address, "podIPs": [{"ip": address}]}}
    )
    mark_pod_ready(c.core, namespace, "live-0")
    c.wait_condition(ENGINES, "live", "Ready", "True", "PodReady")
    c.wait_condition(ENGINES, "live", "Pinned", "Unknown", "EngineUnreachable")
    config = c.core.read_namespaced_config_map("live-engine", namespace).data["engine.json"]
    settings = json.loads(config) | {
        "order_entry": f"tcp://127.0.0.1:{free_port()}",
        "events": f"tcp://127.0.0.1:{free_port()}",
        "http_host": address,
        "journal_dir": str(tmp_path / "journal"),
    }
    assert settings["http_port"] == 9100  # the pod's port, where the operator looks
    engine = EngineAt(tmp_path, settings)
    engine.start()
    try:
        pinned = c.wait_condition(ENGINES, "live", "Pinned", "True", "Pinned")
        event = eventually(lambda: c.events("live", "Pinned") or None, what="the Pinned Event")
        assert str(event[0].message).startswith("Pinned=True: hot loop on CPU ")
        status = pinned["status"]
        assert len(status["pinnedCpus"]) == 1 and status["lastSequence"] > 0
        running = eventually(
            lambda: (
                s
                if ((s := c.get(ENGINES, "live"))["status"].get("ordersPerSecond") or 0) > 0
                else None
            ),
            what="orders per second from two scrapes",
        )
        assert running["status"]["lastSequence"] >= status["lastSequence"]
        row = control_plane.kubectl("get", "te", "live", "-n", namespace).stdout.splitlines()
        assert float(row[1].split()[6]) > 0  # the ORDERS/S column
    finally:
        assert engine.stop() == 0, engine.log_text()
