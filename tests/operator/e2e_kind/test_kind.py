"""End to end on a kind cluster with a real kubelet and the static CPU manager.

Run by `make e2e-kind` (which creates the cluster from manifests/kind/cluster.yaml, builds
and loads the image, and installs the chart); never by the default test command, which
has no Docker. Uses the current kubeconfig context (kind-tickplane).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
RELEASE_NAMESPACE = "tickplane"


def kubectl(*args: str, input: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def get(kind: str, name: str, namespace: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json")))


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except AssertionError:
            value = None
        if value is not None:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return dict(c)
    return {}


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


ENGINE = """
apiVersion: tickplane.io/v1alpha1
kind: TradingEngine
metadata: {name: e2e}
spec:
  symbols: [{name: GOOG, referencePrice: 58500}]
  marketData: {source: synthetic, rate: 200}
  resources: {cpus: 1, memory: 1Gi}
  placement:
    nodeSelector: {tickplane.io/tuned: "true"}
    tolerations: [{key: tickplane.io/dedicated, operator: Equal, value: engine, effect: NoSchedule}]
  journal: {size: 1Gi}
"""


def test_the_platform_is_up() -> None:
    for deployment in ("tickplane-operator", "tickplane-gateway", "tickplane-terminal"):
        kubectl(
            "rollout", "status", f"deployment/{deployment}", "-n", RELEASE_NAMESPACE,
            "--timeout=300s",
        )  # fmt: skip


def test_engine_runs_pinned_and_rolls(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=ENGINE)
    engine = eventually(
        lambda: e if condition(e := get("tradingengine", "e2e", namespace), "Ready").get("status")
        == "True" else None,
        timeout=300,
        what="the engine Ready (a real kubelet, /readyz)",
    )  # fmt: skip
    pod = get("pod", "e2e-0", namespace)
    assert pod["status"]["qosClass"] == "Guaranteed"
    node = get("node", pod["spec"]["nodeName"], "default")
    assert node["metadata"]["labels"].get("tickplane.io/tuned") == "true"
    # The static CPU manager gave the pod a core of its own; the engine pinned to it.
    pinned = eventually(
        lambda: e if condition(e := get("tradingengine", "e2e", namespace), "Pinned").get("status")
        == "True" else None,
        timeout=120,
        what="Pinned=True",
    )  # fmt: skip
    assert len(pinned["status"]["pinnedCpus"]) == 1
    assert pinned["status"]["lastSequence"] > 0  # the synthetic market trades
    eventually(
        lambda: True if (get("tradingengine", "e2e", namespace)["status"].get("ordersPerSecond")
                         or 0) > 0 else None,
        timeout=60,
        what="orders per second from the engine's metrics",
    )  # fmt: skip
    claim_uid = get("pvc", "journal-e2e-0", namespace)["metadata"]["uid"]
    before = engine["status"]["currentRevision"]
    last_seq = pinned["status"]["lastSequence"]

    kubectl(
        "patch", "tradingengine", "e2e", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"journal": {"fsync": "always"}}}),
    )  # fmt: skip
    rolled = eventually(
        lambda: (
            e
            if (e := get("tradingengine", "e2e", namespace))["status"].get("currentRevision")
            not in (None, before)
            and condition(e, "Ready").get("status") == "True"
            else None
        ),
        timeout=300,
        what="the roll to the new revision",
    )
    assert condition(rolled, "Progressing")["reason"] == "UpToDate"
    # Same journal volume; recovery kept every sequence number.
    assert get("pvc", "journal-e2e-0", namespace)["metadata"]["uid"] == claim_uid
    eventually(
        lambda: (
            True
            if (get("tradingengine", "e2e", namespace)["status"].get("lastSequence") or 0)
            >= last_seq
            else None
        ),
        timeout=120,
        what="the recovered engine's sequence",
    )
    columns = kubectl("get", "tradingengines", "-n", namespace)
    assert "GOOG" in columns and "Running" in columns
